//! Interoperability with stock clients over a DHT made only of xus's own
//! nodes, all on 127.0.0.1 (issue 16): twenty `xus dht serve` nodes, and
//! nothing else. libtorrent finds a `xus seed` by its bare infohash through
//! that DHT alone (BEP 5), and reads the head `xus publish` signed into it
//! (BEP 44) as a BEP 46 dictionary, in one decode.
//!
//! Before xus vendored `mainline` with its transaction-id patch
//! (`vendor/mainline/XUS-PATCH.md`), its nodes dropped every libtorrent
//! query (2-byte transaction ids), so this network gave libtorrent 0 peers
//! in 60 s; these tests then needed libtorrent nodes mixed in. A raw KRPC
//! test pins the rule itself: queries with transaction ids of 0 to 32 bytes
//! are answered with the same id.
//!
//! xus and libtorrent enter the network through different nodes. Nothing is
//! skipped: without python3-libtorrent or the driver the tests fail, naming
//! what to install.

mod util;

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use util::clients::{
    QBittorrent, SYSTEM_PYTHON, Transmission, TransmissionNet, require_libtorrent, run_with_timeout,
};
use util::dht::{DHT_TIMEOUT_MS, DhtNet, Machine};
use util::netns::NetNs;
use util::*;

/// Nodes of the DHT, every one a `xus dht serve` node.
const NODES: usize = 20;

/// How long the libtorrent downloader may look for the seed and download.
const DOWNLOAD_TIMEOUT_S: u64 = 40;

/// How long the libtorrent reader may look for the item.
const GET_ITEM_TIMEOUT_S: u64 = 30;

/// The libtorrent DHT driver script.
fn lt_dht_driver() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers/lt_dht.py");
    assert!(
        path.is_file(),
        "the libtorrent DHT driver {} is missing",
        path.display()
    );
    path
}

/// A loopback DHT of `xus dht serve` nodes only.
struct XusDht {
    net: DhtNet,
}

impl XusDht {
    fn start() -> Self {
        let net = DhtNet::start(NODES);
        eprintln!("DHT of {NODES} xus nodes ({}...)", net.nodes[0]);
        Self { net }
    }

    /// DHT flags of a xus process: joins through the first node.
    fn xus_flags(&self) -> Vec<String> {
        vec![
            "--bootstrap".into(),
            self.net.nodes[0].clone(),
            "--dht-bind".into(),
            "127.0.0.1".into(),
            "--dht-timeout-ms".into(),
            DHT_TIMEOUT_MS.into(),
        ]
    }

    /// Bootstrap flags of a libtorrent client: the last node, not xus's.
    fn lt_flags(&self) -> Vec<String> {
        vec!["--bootstrap".into(), self.net.nodes[NODES - 1].clone()]
    }
}

/// Runs `lt_dht.py ARGS` to completion (the driver has its own `--timeout`;
/// this deadline is a backstop) and panics, with its whole output, unless it
/// succeeded.
fn run_lt_dht(args: &[String], deadline: Duration) -> String {
    require_libtorrent();
    let driver = lt_dht_driver();
    let out: Output = run_with_timeout(
        Command::new(SYSTEM_PYTHON)
            .arg(&driver)
            .args(args)
            .env("PYTHONUNBUFFERED", "1"),
        deadline,
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "lt_dht.py {args:?} failed ({})\n--- stdout ---\n{stdout}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
    );
    stdout
}

/// A few files: nested directories, an executable, a binary file spanning
/// several 16 KiB pieces.
fn small_repo() -> (TestRepo, String) {
    use std::os::unix::fs::PermissionsExt;
    let repo = TestRepo::new();
    repo.write("README.md", "# found through the DHT\n");
    repo.write("src/lib.rs", "pub fn answer() -> u32 {\n    42\n}\n");
    repo.write(
        "docs/deep/notes.txt",
        "libtorrent <- xus, by infohash only\n",
    );
    repo.write("bin/run.sh", "#!/bin/sh\necho xus\n");
    std::fs::set_permissions(
        repo.path().join("bin/run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    let blob: Vec<u8> = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    repo.write("data/blob.bin", blob);
    let commit = repo.commit("dht interop fixture");
    (repo, commit)
}

fn report(test: &str, started: Instant) {
    eprintln!("{test}: {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn libtorrent_finds_xus_seed_through_dht_alone() {
    require_libtorrent();
    let started = Instant::now();
    let net = XusDht::start();
    let (repo, commit) = small_repo();
    let archive = git_archive(repo.path(), &commit);
    let machine = Machine::new();
    machine.new_topic("interop");

    let mut extra = net.xus_flags();
    extra.extend(["--rescan".to_owned(), "1".to_owned()]);
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let seeder = spawn_seed_with(machine.xus(), repo.path(), &extra);
    let seeded = seeder
        .seeded
        .first()
        .unwrap_or_else(|| panic!("xus seed printed no `seeding` line"))
        .clone();
    assert_eq!(seeded.commit, commit);
    eprintln!(
        "xus seed at {} announces {} on the DHT ({:.1} s in)",
        seeder.addr,
        seeded.info_hash,
        started.elapsed().as_secs_f64()
    );

    // Only the infohash: no peer, no tracker. libtorrent must find the seed
    // through the DHT and the metadata from the seed (BEP 9).
    let work = tempfile::tempdir().expect("tempdir");
    let save = work.path().join("save");
    std::fs::create_dir(&save).expect("mkdir");
    let mut args = vec!["download".to_owned()];
    args.extend(net.lt_flags());
    args.extend([
        "--infohash".to_owned(),
        seeded.info_hash.clone(),
        "--save".to_owned(),
        save.display().to_string(),
        "--timeout".to_owned(),
        DOWNLOAD_TIMEOUT_S.to_string(),
    ]);
    let download_started = Instant::now();
    let stdout = run_lt_dht(&args, Duration::from_secs(DOWNLOAD_TIMEOUT_S + 15));
    assert!(
        stdout.lines().any(|l| l == "done"),
        "lt_dht.py download succeeded without `done`: {stdout}"
    );
    eprintln!(
        "libtorrent found the seed and downloaded in {:.1} s",
        download_started.elapsed().as_secs_f64()
    );
    drop(seeder);

    // The torrent's name is the commit id: exactly one entry, `<commit>/`,
    // holding exactly `git archive`'s files (libtorrent honours BEP 47 `x`).
    let entries: Vec<String> = std::fs::read_dir(&save)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        entries,
        vec![commit.clone()],
        "libtorrent left other entries than <commit>/ in {}",
        save.display()
    );
    assert_same_files(archive.path(), &save.join(&commit), true);
    report("libtorrent <- xus seed, by infohash over the DHT", started);
}

#[test]
fn libtorrent_reads_the_head_xus_published() {
    require_libtorrent();
    let started = Instant::now();
    let net = XusDht::start();
    let (repo, commit) = small_repo();
    let machine = Machine::new();
    let topic = machine.new_topic("interop");

    let out = run_xus_with(
        machine
            .xus()
            .args(["publish", "--repo"])
            .arg(repo.path())
            .args(["--branch", "main"])
            .args(net.xus_flags()),
        Duration::from_secs(30),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "xus publish failed ({})\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // published xus://<topic>/main <commit> <infohash> seq <n>
    let (url, published_commit, info_hash, seq) = stdout
        .lines()
        .find_map(
            |line| match line.split_whitespace().collect::<Vec<_>>()[..] {
                ["published", url, commit, ih, "seq", seq] => Some((
                    url.to_owned(),
                    commit.to_owned(),
                    ih.to_owned(),
                    seq.parse::<u64>().expect("seq"),
                )),
                _ => None,
            },
        )
        .unwrap_or_else(|| panic!("no `published` line from xus publish: {stdout}"));
    assert_eq!(url, format!("xus://{topic}/main"));
    assert_eq!(published_commit, commit);
    assert_eq!(info_hash.len(), 40, "{info_hash}");
    eprintln!(
        "xus published {info_hash} seq {seq} under {url} ({:.1} s in)",
        started.elapsed().as_secs_f64()
    );

    // libtorrent's dht_get_mutable_item with the topic key and salt "main":
    // libtorrent checks the signature and decodes the value; a BEP 46 head
    // is then already the dictionary carrying `ih` (`form=dict`).
    let mut args = vec!["get-item".to_owned()];
    args.extend(net.lt_flags());
    args.extend([
        "--key".to_owned(),
        topic.clone(),
        "--salt".to_owned(),
        "main".to_owned(),
        "--timeout".to_owned(),
        GET_ITEM_TIMEOUT_S.to_string(),
    ]);
    let get_started = Instant::now();
    let stdout = run_lt_dht(&args, Duration::from_secs(GET_ITEM_TIMEOUT_S + 15));
    let (got_seq, got_ih, form) = stdout
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix("item seq=")?;
            let (seq, rest) = rest.split_once(" ih=")?;
            let (ih, form) = rest.split_once(" form=")?;
            Some((
                seq.parse::<u64>().expect("seq"),
                ih.to_owned(),
                form.to_owned(),
            ))
        })
        .unwrap_or_else(|| panic!("no `item` line from lt_dht.py get-item: {stdout}"));
    eprintln!(
        "libtorrent read the item in {:.1} s",
        get_started.elapsed().as_secs_f64()
    );
    assert_eq!(
        got_ih, info_hash,
        "libtorrent read another infohash than xus published"
    );
    assert_eq!(
        got_seq, seq,
        "libtorrent read another seq than xus published"
    );
    assert_eq!(
        form, "dict",
        "libtorrent's decode gave a byte string, not the head dictionary (BEP 46)"
    );
    report("libtorrent reads a head xus published", started);
}

/// One KRPC query to `node` with transaction id `t`; the answer's bytes, or
/// `None` when none came within a second.
fn krpc(socket: &UdpSocket, node: &str, query: &[u8], t: &[u8]) -> Option<Vec<u8>> {
    // `query` is a dictionary's inside after `t` (keys in order: a, q, t, y).
    let mut message = b"d".to_vec();
    message.extend_from_slice(query);
    message.extend_from_slice(format!("1:t{}:", t.len()).as_bytes());
    message.extend_from_slice(t);
    message.extend_from_slice(b"1:y1:qe");
    socket.send_to(&message, node).expect("send");
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(1);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("timeout");
        match socket.recv_from(&mut buf) {
            Ok((n, _)) => {
                let answer = xus::torrent::bencode::decode(
                    &buf[..n],
                    xus::torrent::bencode::Limits::default(),
                )
                .expect("a node's answer is bencode");
                // Answers to earlier queries may still arrive: only ours counts.
                if answer.get(b"t").and_then(|v| v.as_bytes()) == Some(t) {
                    return Some(buf[..n].to_vec());
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break;
            }
            Err(e) => panic!("recv: {e}"),
        }
    }
    None
}

/// BEP 5 leaves the transaction id's length open: libtorrent and qBittorrent
/// send 2 bytes, aria2 4, others 1 to 8. A `xus dht serve` node answers a
/// ping, a find_node and a get_peers with any id of up to 32 bytes, echoing
/// it byte for byte (upstream `mainline` answered 4-byte ids only), and
/// drops a longer one rather than answer with an id it cut.
#[test]
fn a_xus_dht_node_answers_queries_whatever_the_transaction_id_length() {
    let net = DhtNet::start(1);
    let node = &net.nodes[0];
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let id = [b'q'; 20];
    let mut queries: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut ping = b"1:ad2:id20:".to_vec();
    ping.extend_from_slice(&id);
    ping.extend_from_slice(b"e1:q4:ping");
    queries.push(("ping", ping));
    let mut find_node = b"1:ad2:id20:".to_vec();
    find_node.extend_from_slice(&id);
    find_node.extend_from_slice(b"6:target20:");
    find_node.extend_from_slice(&[7u8; 20]);
    find_node.extend_from_slice(b"e1:q9:find_node");
    queries.push(("find_node", find_node));
    let mut get_peers = b"1:ad2:id20:".to_vec();
    get_peers.extend_from_slice(&id);
    get_peers.extend_from_slice(b"9:info_hash20:");
    get_peers.extend_from_slice(&[9u8; 20]);
    get_peers.extend_from_slice(b"e1:q9:get_peers");
    queries.push(("get_peers", get_peers));

    for (name, query) in &queries {
        for len in [0usize, 1, 2, 3, 4, 6, 8, 20, 32] {
            let t: Vec<u8> = (0..len).map(|i| 0xa0 ^ (i as u8) ^ (len as u8)).collect();
            let answer = krpc(&socket, node, query, &t).unwrap_or_else(|| {
                panic!("{name} with a {len}-byte transaction id got no answer from {node}")
            });
            let decoded =
                xus::torrent::bencode::decode(&answer, xus::torrent::bencode::Limits::default())
                    .expect("bencode");
            assert_eq!(
                decoded.get(b"y").and_then(|v| v.as_bytes()),
                Some(&b"r"[..]),
                "{name} with a {len}-byte id: not a response: {}",
                String::from_utf8_lossy(&answer)
            );
        }
        let too_long = vec![0x55u8; 33];
        assert_eq!(
            krpc(&socket, node, query, &too_long),
            None,
            "{name} with a 33-byte transaction id was answered"
        );
    }
}

/// `xus seed` of `repo`'s HEAD inside `ns`, on `ip` for peers and the DHT,
/// joined through `bootstrap`; returns once it announces its commit.
fn seed_in_namespace(
    ns: &NetNs,
    home: &Path,
    repo: &TestRepo,
    ip: Ipv4Addr,
    bootstrap: &str,
) -> (Seeder, Seeded) {
    let listen = format!("{ip}:0");
    let bind = ip.to_string();
    let extra = [
        "--listen",
        &listen,
        "--bootstrap",
        bootstrap,
        "--dht-bind",
        &bind,
        "--dht-timeout-ms",
        DHT_TIMEOUT_MS,
        "--rescan",
        "1",
    ];
    let seeder = spawn_seed_with(ns.xus(home), repo.path(), &extra);
    let seeded = seeder.seeded.first().expect("a `seeding` line").clone();
    (seeder, seeded)
}

/// Transmission 3.00 has a DHT of its own (not libtorrent's), refuses
/// 127.0.0.0/8 as peers and DHT nodes, and bootstraps from public hosts. So
/// this test runs in a network namespace of its own (no route out; the DHT
/// nodes, the seed and Transmission each on an address of their own
/// there, on its loopback interface): 24 `xus dht serve` nodes, a `xus
/// seed` joined through the first, and Transmission knowing the other 23
/// (its `dht.dat`: it calls its DHT "broken", and does not search, until it
/// holds over 8 nodes) and given only the bare infohash. It finds the seed
/// through the DHT, gets the metadata from it (BEP 9) and downloads the
/// commit.
#[test]
fn transmission_finds_xus_seed_through_a_dht_of_xus_nodes() {
    let started = Instant::now();
    let dht_ip = Ipv4Addr::new(10, 77, 1, 1);
    let seed_ip = Ipv4Addr::new(10, 77, 2, 1);
    let transmission_ip = Ipv4Addr::new(10, 77, 3, 1);
    let ns = NetNs::new("tr-dht", &[dht_ip, seed_ip, transmission_ip]);
    let home = tempfile::tempdir().expect("xus home");
    let net = DhtNet::start_with(ns.xus(home.path()), dht_ip, 24);
    let (repo, commit) = small_repo();
    let archive = git_archive(repo.path(), &commit);
    let (seeder, seeded) = seed_in_namespace(&ns, home.path(), &repo, seed_ip, net.bootstrap());
    assert_eq!(seeded.commit, commit);
    eprintln!(
        "xus seed at {} announces {} ({:.1} s in)",
        seeder.addr,
        seeded.info_hash,
        started.elapsed().as_secs_f64()
    );

    let nodes: Vec<SocketAddrV4> = net.nodes[1..]
        .iter()
        .map(|n| n.parse().expect("node address"))
        .collect();
    let work = tempfile::tempdir().expect("tempdir");
    let mut transmission = Transmission::start_in(
        work.path(),
        TransmissionNet {
            bind: transmission_ip,
            netns: Some(&ns),
            dht_nodes: &nodes,
        },
    );
    let save = work.path().join("save");
    std::fs::create_dir(&save).expect("mkdir");
    let download_started = Instant::now();
    transmission.add_magnet(&format!("magnet:?xt=urn:btih:{}", seeded.info_hash), &save);
    transmission.wait_complete(&seeded.info_hash, Duration::from_secs(150));
    eprintln!(
        "Transmission found the seed through the DHT and downloaded in {:.1} s",
        download_started.elapsed().as_secs_f64()
    );
    transmission.stop(&seeded.info_hash);
    // Transmission 3.00 ignores BEP 47's `x` attribute: contents only.
    assert_same_files(archive.path(), &save.join(&commit), false);
    report(
        "Transmission <- xus seed, by infohash over a DHT of xus nodes",
        started,
    );
}

/// qBittorrent 4.5's DHT is libtorrent's, with its stricter defaults: one
/// routing-table entry per /24 and one search result per IP. So this test
/// gives each of 16 `xus dht serve` nodes an address in a /24 of its own, in
/// a network namespace of the test's own (qBittorrent's bootstrap hosts are
/// public; none is reachable from there). qBittorrent is started with a
/// magnet holding the bare infohash and 4 of the nodes (`dht=`), not the
/// one the seed joined through; it finds the seed through the DHT, gets the
/// metadata from it and downloads the commit.
#[test]
fn qbittorrent_finds_xus_seed_through_a_dht_of_xus_nodes() {
    let started = Instant::now();
    let node_ips: Vec<Ipv4Addr> = (0..16).map(|k| Ipv4Addr::new(10, 77, 10 + k, 1)).collect();
    let seed_ip = Ipv4Addr::new(10, 77, 2, 1);
    let qbittorrent_ip = Ipv4Addr::new(10, 77, 4, 1);
    let mut addresses = node_ips.clone();
    addresses.extend([seed_ip, qbittorrent_ip]);
    let ns = NetNs::new("qbt-dht", &addresses);
    let home = tempfile::tempdir().expect("xus home");
    let first = DhtNet::start_with(ns.xus(home.path()), node_ips[0], 1);
    let others: Vec<DhtNet> = node_ips[1..]
        .iter()
        .map(|ip| DhtNet::join_with(ns.xus(home.path()), *ip, 1, first.bootstrap()))
        .collect();
    let (repo, commit) = small_repo();
    let archive = git_archive(repo.path(), &commit);
    let (_seeder, seeded) = seed_in_namespace(&ns, home.path(), &repo, seed_ip, first.bootstrap());
    assert_eq!(seeded.commit, commit);

    let mut magnet = format!("magnet:?xt=urn:btih:{}", seeded.info_hash);
    for node in others.iter().rev().take(4) {
        magnet.push_str(&format!("&dht={}", node.bootstrap()));
    }
    let work = tempfile::tempdir().expect("tempdir");
    let save = work.path().join("save");
    std::fs::create_dir(&save).expect("mkdir");
    let download_started = Instant::now();
    let qbittorrent = QBittorrent::start_in(
        work.path(),
        &ns,
        qbittorrent_ip,
        &save,
        std::slice::from_ref(&magnet),
    );
    let expected = util::tree_contents(archive.path());
    let got = save.join(&commit);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if got.is_dir() {
            let files = util::tree_contents(&got);
            let same = files.len() == expected.len()
                && expected
                    .iter()
                    .all(|(path, (data, _))| files.get(path).is_some_and(|(d, _)| d == data));
            if same {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "qBittorrent did not download {magnet} within 120 s\n{}",
            qbittorrent.log_tail(work.path())
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!(
        "qBittorrent found the seed through the DHT and downloaded in {:.1} s",
        download_started.elapsed().as_secs_f64()
    );
    report(
        "qBittorrent <- xus seed, by infohash over a DHT of xus nodes",
        started,
    );
}
