//! Peers and heads found on a private loopback DHT, with no address typed
//! by hand: publish and seed, fetch by name from two machines, follow a
//! moving branch, and refuse forged, rolled-back and malformed heads.

mod util;

use std::net::UdpSocket;
use std::process::Stdio;
use std::time::{Duration, Instant};

use util::dht::{DhtNet, Machine, read_lines};
use util::*;

const STEP: Duration = Duration::from_secs(120);

fn args(list: &[&str], dht: &[String]) -> Vec<String> {
    let mut out: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    out.extend(dht.iter().cloned());
    out
}

fn ok(machine: &Machine, list: &[&str], dht: &[String]) -> (String, String) {
    let out = run_xus_with(machine.xus().args(args(list, dht)), STEP);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success(),
        "xus {list:?} failed\nstdout: {stdout}\nstderr: {stderr}"
    );
    (stdout, stderr)
}

/// `published <url> <commit> <infohash> seq <n>` → (commit, infohash).
fn published(stdout: &str) -> (String, String) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("published "))
        .unwrap_or_else(|| panic!("no published line in {stdout:?}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    (words[2].to_string(), words[3].to_string())
}

fn fetched_commit(stdout: &str) -> String {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("fetched "))
        .unwrap_or_else(|| panic!("no fetched line in {stdout:?}"));
    line.split_whitespace().nth(1).expect("commit").to_string()
}

#[test]
fn two_machines_fetch_by_name_and_a_follower_catches_up() {
    let net = DhtNet::start(24);
    let dht = net.flags();
    let owner = Machine::new();
    let topic = owner.new_topic("world");
    let repo = TestRepo::new();
    repo.write("map/level1.dat", vec![7u8; 300_000]);
    repo.write("README", "hello\n");
    let first = repo.commit("first");

    let seed_extra = args(&["--rescan", "1"], &dht);
    let seed_extra: Vec<&str> = seed_extra.iter().map(String::as_str).collect();
    let _seed = spawn_seed_with(owner.xus(), repo.path(), &seed_extra);
    let repo_path = repo.path().display().to_string();
    let (stdout, _) = ok(
        &owner,
        &["publish", "--repo", &repo_path, "--branch", "main"],
        &dht,
    );
    assert_eq!(published(&stdout).0, first);

    // Two machines that know only the topic id and the DHT.
    let url = format!("xus://{topic}/main");
    let fetchers: Vec<(Machine, tempfile::TempDir)> = (0..2)
        .map(|_| (Machine::new(), tempfile::tempdir().expect("dest")))
        .collect();
    std::thread::scope(|scope| {
        for (machine, dest) in &fetchers {
            let (url, dht) = (&url, &dht);
            scope.spawn(move || {
                let dest = dest.path().join("clone").display().to_string();
                let (stdout, stderr) = ok(machine, &["fetch", url, "--repo", &dest], dht);
                assert!(
                    !stderr.contains("--peer"),
                    "fetch asked for an address: {stderr}"
                );
                stdout
            });
        }
    });
    for (_, dest) in &fetchers {
        let clone = dest.path().join("clone");
        assert_eq!(
            git(
                &clone,
                &["rev-parse", &format!("refs/xus/topics/{topic}/main")]
            ),
            first
        );
        assert_fsck_clean(&clone);
    }

    // `xus status` on a reader: what it follows, against the DHT now.
    let reader = &fetchers[0];
    let reader_repo = reader.1.path().join("clone").display().to_string();
    let (status, _) = ok(&reader.0, &["status", "--repo", &reader_repo], &dht);
    assert!(
        status.contains(&format!("follows {url}\n"))
            && status.contains(&format!("  local     {first}"))
            && status.contains(&format!("  seen      {first} seq"))
            && status.contains(&format!("  published {first} seq"))
            && status.contains(": up to date")
            && status.contains("seed none"),
        "{status}"
    );
    let peers: usize = status
        .lines()
        .find_map(|line| line.strip_prefix("  peers     "))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no peers line: {status}"));
    assert!(
        peers >= 1,
        "the owner's seed announces the commit: {status}"
    );
    // The owner's repository: its seed, and nothing followed; offline.
    let (status, _) = ok(&owner, &["status", "--repo", &repo_path, "--offline"], &[]);
    assert!(
        status.contains("follows nothing") && status.contains("torrent(s), running"),
        "{status}"
    );

    // A follower keeps its branch at the head while the owner moves it.
    let follower = Machine::new();
    let follow_dir = tempfile::tempdir().expect("follow dir");
    let follow_repo = follow_dir.path().join("clone").display().to_string();
    let mut child = follower
        .xus()
        .args(args(
            &["follow", &url, "--repo", &follow_repo, "--interval", "1"],
            &dht,
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawning xus follow");
    let lines = read_lines(child.stdout.take().expect("stdout"));
    let _follow = ChildGuard {
        child,
        name: "xus follow".into(),
    };
    let wait_line = |expected: &str| {
        let deadline = Instant::now() + STEP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("follow never printed {expected:?}"));
            if line.starts_with(expected) {
                return;
            }
        }
    };
    wait_line(&format!("updated main {first}"));

    repo.write("map/level1.dat", {
        let mut data = vec![7u8; 300_000];
        data[150_000..150_010].copy_from_slice(b"new bridge");
        data
    });
    let second = repo.commit("second");
    let (stdout, _) = ok(
        &owner,
        &["publish", "--repo", &repo_path, "--branch", "main"],
        &dht,
    );
    assert_eq!(published(&stdout).0, second);
    wait_line(&format!("updated main {second}"));
    let (status, _) = ok(&reader.0, &["status", "--repo", &reader_repo], &dht);
    assert!(
        status.contains(&format!("  published {second} seq")) && status.contains(": behind"),
        "the reader that did not follow is behind: {status}"
    );
    let clone = follow_dir.path().join("clone");
    assert_eq!(git(&clone, &["rev-parse", "refs/heads/main"]), second);
    assert_fsck_clean(&clone);
}

#[test]
fn fetch_by_infohash_finds_peers_on_the_dht() {
    let net = DhtNet::start(20);
    let dht = net.flags();
    let repo = TestRepo::new();
    repo.write("a.bin", vec![1u8; 100_000]);
    let commit = repo.commit("one");
    let extra: Vec<&str> = dht.iter().map(String::as_str).collect();
    let seed = spawn_seed(repo.path(), &extra);
    let dest = tempfile::tempdir().expect("dest");
    let dest_repo = dest.path().join("r").display().to_string();
    let machine = Machine::new();
    let (stdout, _) = ok(
        &machine,
        &["fetch", &seed.seeded[0].info_hash, "--repo", &dest_repo],
        &dht,
    );
    assert_eq!(fetched_commit(&stdout), commit);
    assert_fsck_clean(&dest.path().join("r"));
}

#[test]
fn the_loopback_guard_refuses_the_public_routers() {
    let machine = Machine::new();
    let topic = machine.new_topic("t");
    let out = run_xus_with(
        machine
            .xus()
            .args(["fetch", &format!("xus://{topic}/main"), "--repo", "unused"]),
        STEP,
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("public bootstrap routers"), "{stderr}");
}

#[test]
fn a_rolled_back_head_is_refused() {
    let net = DhtNet::start(20);
    let dht = net.flags();
    let owner = Machine::new();
    let topic = owner.new_topic("t");
    let repo = TestRepo::new();
    repo.write("f", "one\n");
    repo.commit("one");
    let repo_path = repo.path().display().to_string();
    let publish = ["publish", "--repo", &repo_path, "--branch", "main"];
    ok(&owner, &publish, &dht);
    let old_head = std::fs::read_to_string(owner.head_file(&topic, "main")).expect("old head");
    repo.write("f", "two\n");
    let second = repo.commit("two");
    let extra: Vec<&str> = dht.iter().map(String::as_str).collect();
    let _seed = spawn_seed_with(owner.xus(), repo.path(), &extra);
    ok(&owner, &publish, &dht);

    let reader = Machine::new();
    let dest = tempfile::tempdir().expect("dest");
    let dest_repo = dest.path().join("r").display().to_string();
    let url = format!("xus://{topic}/main");
    let (stdout, _) = ok(&reader, &["fetch", &url, "--repo", &dest_repo], &dht);
    assert_eq!(fetched_commit(&stdout), second);

    // A fresh DHT that only holds the older, correctly signed head: a
    // replay. The reader refuses it and stays at what it saw.
    let replay_net = DhtNet::start(20);
    put_stored_head(&replay_net, &topic, "main", &old_head);
    let out = run_xus_with(
        reader.xus().args(args(
            &["fetch", &url, "--repo", &dest_repo],
            &replay_net.flags(),
        )),
        STEP,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("rollback"), "{stderr}");
    assert_eq!(
        git(
            &dest.path().join("r"),
            &["rev-parse", &format!("refs/xus/topics/{topic}/main")]
        ),
        second
    );
}

#[test]
fn a_malformed_head_is_refused_and_changes_nothing() {
    let net = DhtNet::start(20);
    let owner = Machine::new();
    let topic = owner.new_topic("t");
    // Correctly signed by the owner, but not a {commit, ih} dict.
    let seed = owner.topic_seed("t");
    put_item(&net, seed, "main", b"d2:ih3:abce", 10);
    let reader = Machine::new();
    let dest = tempfile::tempdir().expect("dest");
    let dest_repo = dest.path().join("r");
    let out = run_xus_with(
        reader.xus().args(args(
            &[
                "fetch",
                &format!("xus://{topic}/main"),
                "--repo",
                &dest_repo.display().to_string(),
            ],
            &net.flags(),
        )),
        STEP,
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refused a head"), "{stderr}");
    assert!(
        stderr.contains("not a {commit, ih, up} dictionary"),
        "{stderr}"
    );
    assert!(!dest_repo.exists(), "a refused head created the repository");
}

#[test]
fn a_forged_head_is_refused_and_changes_nothing() {
    let forger = ForgingNode::start();
    let owner = Machine::new();
    let topic = owner.new_topic("t");
    let reader = Machine::new();
    let dest = tempfile::tempdir().expect("dest");
    let dest_repo = dest.path().join("r");
    let dht = vec![
        "--bootstrap".to_string(),
        forger.addr.clone(),
        "--dht-bind".into(),
        "127.0.0.1".into(),
        "--dht-timeout-ms".into(),
        "300".into(),
    ];
    let out = run_xus_with(
        reader.xus().args(args(
            &[
                "fetch",
                &format!("xus://{topic}/main"),
                "--repo",
                &dest_repo.display().to_string(),
            ],
            &dht,
        )),
        STEP,
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad signature"), "{stderr}");
    assert!(!dest_repo.exists(), "a forged head created the repository");
    assert!(
        forger.answered_gets() > 0,
        "the forging node was never asked"
    );
}

/// Stores a head file as written by `xus` (seq, value, signature) into
/// `net`, unchanged: the signature still verifies.
/// Heads written before BEP 46 form carry the head dictionary inside a
/// byte string. A reader still follows one (and verifies its signature over
/// that form), and the owner's next publish of the same commit signs it
/// again as a dictionary, at a newer seq, instead of storing the old form.
#[test]
fn a_head_in_the_old_byte_string_form_is_followed_then_re_signed() {
    let net = DhtNet::start(20);
    let dht = net.flags();
    let owner = Machine::new();
    let topic = owner.new_topic("t");
    let repo = TestRepo::new();
    repo.write("f", "one\n");
    let commit = repo.commit("one");
    let extra: Vec<&str> = dht.iter().map(String::as_str).collect();
    let _seed = spawn_seed_with(owner.xus(), repo.path(), &extra);
    let repo_path = repo.path().display().to_string();
    let publish = ["publish", "--repo", &repo_path, "--branch", "main"];
    ok(&owner, &publish, &dht);
    let stored = std::fs::read_to_string(owner.head_file(&topic, "main")).expect("head");
    let value = util::dht::hex(&stored_field(&stored, "value"));
    let seq: i64 = stored_field(&stored, "seq").parse().expect("seq");
    // The same head, signed as xus did before: `v` a byte string.
    put_item(&net, owner.topic_seed("t"), "main", &value, seq + 1);

    let reader = Machine::new();
    let dest = tempfile::tempdir().expect("dest");
    let dest_repo = dest.path().join("r").display().to_string();
    let url = format!("xus://{topic}/main");
    let (stdout, stderr) = ok(&reader, &["fetch", &url, "--repo", &dest_repo], &dht);
    assert_eq!(fetched_commit(&stdout), commit, "{stderr}");
    let seen = std::fs::read_to_string(reader.head_file(&topic, "main")).expect("seen head");
    assert_eq!(
        stored_field(&seen, "seq"),
        (seq + 1).to_string(),
        "the reader followed another head than the old-form one"
    );
    assert_fsck_clean(&dest.path().join("r"));

    ok(&owner, &publish, &dht);
    let again = std::fs::read_to_string(owner.head_file(&topic, "main")).expect("head");
    let new_seq: i64 = stored_field(&again, "seq").parse().expect("seq");
    assert!(
        new_seq > seq + 1,
        "the old-form head was stored again (seq {new_seq}) instead of re-signed"
    );
    assert_eq!(util::dht::hex(&stored_field(&again, "value")), value);
}

/// One field (`seq`, `value`, `signature`) of a head file as xus stores it.
fn stored_field(stored: &str, name: &str) -> String {
    stored
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} in stored head"))
        .to_string()
}

fn put_stored_head(net: &DhtNet, topic: &str, branch: &str, stored: &str) {
    let key: [u8; 32] = util::dht::hex(topic).try_into().expect("key");
    let signature: [u8; 64] = util::dht::hex(&stored_field(stored, "signature"))
        .try_into()
        .expect("signature");
    // The stored value is the head dictionary, signed in BEP 46 form (the
    // dictionary itself as `v`).
    let item = mainline::MutableItem::new_signed_unchecked_bencoded(
        key,
        signature,
        &util::dht::hex(&stored_field(stored, "value")),
        stored_field(stored, "seq").parse().expect("seq"),
        Some(branch.as_bytes()),
    );
    put(net, item);
}

/// Signs and stores an arbitrary value as `seed`'s head of `branch`.
fn put_item(net: &DhtNet, seed: [u8; 32], branch: &str, value: &[u8], seq: i64) {
    let item = mainline::MutableItem::new(
        mainline::SigningKey::from_bytes(&seed),
        value,
        seq,
        Some(branch.as_bytes()),
    );
    put(net, item);
}

/// Stores `item` through a throwaway client bootstrapped from `net` only.
fn put(net: &DhtNet, item: mainline::MutableItem) {
    let client = mainline::Dht::builder()
        .bootstrap(&[net.bootstrap()])
        .bind_address(std::net::Ipv4Addr::LOCALHOST)
        .request_timeout(Duration::from_millis(300))
        .build()
        .expect("test DHT client")
        .as_async();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        assert!(
            client.bootstrapped().await,
            "test client reached the loopback DHT"
        );
        client
            .put_mutable(item, None)
            .await
            .expect("storing the test item");
    });
}

/// A DHT node that answers every `get` with a head whose signature is
/// garbage, and every other query with an empty node list.
struct ForgingNode {
    addr: String,
    gets: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl ForgingNode {
    fn start() -> Self {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let socket = UdpSocket::bind("127.0.0.1:0").expect("udp");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let addr = socket.local_addr().expect("addr").to_string();
        let gets = std::sync::Arc::new(AtomicUsize::new(0));
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (gets2, stop2) = (gets.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let Some((t, q)) = krpc_query(&buf[..n]) else {
                    continue;
                };
                let mut r = b"d1:rd2:id20:forgedforgedforgedfo".to_vec();
                if q == b"get" {
                    gets2.fetch_add(1, Ordering::Relaxed);
                    let value = b"d6:commit20:aaaaaaaaaaaaaaaaaaaa2:ih20:bbbbbbbbbbbbbbbbbbbbe";
                    r.extend_from_slice(b"1:k32:");
                    r.extend_from_slice(&[9u8; 32]);
                    r.extend_from_slice(b"5:nodes0:3:seqi99e3:sig64:");
                    r.extend_from_slice(&[0x55u8; 64]);
                    r.extend_from_slice(b"5:token4:tokn1:v");
                    r.extend_from_slice(format!("{}:", value.len()).as_bytes());
                    r.extend_from_slice(value);
                } else {
                    r.extend_from_slice(b"5:nodes0:");
                }
                r.extend_from_slice(format!("e1:t{}:", t.len()).as_bytes());
                r.extend_from_slice(&t);
                r.extend_from_slice(b"1:y1:re");
                let _ = socket.send_to(&r, from);
            }
        });
        Self {
            addr,
            gets,
            _stop: stop,
        }
    }

    fn answered_gets(&self) -> usize {
        self.gets.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for ForgingNode {
    fn drop(&mut self) {
        self._stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The transaction id and query name of a KRPC query.
fn krpc_query(msg: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let value =
        xus::torrent::bencode::decode(msg, xus::torrent::bencode::Limits::default()).ok()?;
    let t = value.get(b"t")?.as_bytes()?.to_vec();
    let q = value.get(b"q")?.as_bytes()?.to_vec();
    Some((t, q))
}

#[test]
fn a_peer_that_appears_after_the_download_started_still_serves_it() {
    let net = DhtNet::start(20);
    let dht = net.flags();
    let repo = TestRepo::new();
    repo.write("late.bin", vec![3u8; 200_000]);
    let commit = repo.commit("late");
    let dir = tempfile::tempdir().expect("dir");
    let torrent = dir.path().join("late.torrent").display().to_string();
    xus_ok(
        &[
            "torrent",
            "--repo",
            &repo.path().display().to_string(),
            "-o",
            &torrent,
        ],
        STEP,
    );
    // The fetch starts with nobody serving the commit...
    let reader = Machine::new();
    let dest = dir.path().join("dest").display().to_string();
    let mut child = reader
        .xus()
        .args(args(&["fetch", &torrent, "--repo", &dest], &dht))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawning xus fetch");
    let lines = read_lines(child.stdout.take().expect("stdout"));
    let mut fetch = ChildGuard {
        child,
        name: "xus fetch".into(),
    };
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        fetch.child.try_wait().expect("wait").is_none(),
        "fetch gave up before any peer existed"
    );
    // ...and a seed that shows up later on the DHT completes it.
    let extra: Vec<&str> = dht.iter().map(String::as_str).collect();
    let _seed = spawn_seed(repo.path(), &extra);
    let line = lines.recv_timeout(STEP).expect("fetch finished");
    assert!(line.starts_with(&format!("fetched {commit}")), "{line}");
    assert!(fetch.child.wait().expect("exit").success());
    assert_fsck_clean(&dir.path().join("dest"));
}
