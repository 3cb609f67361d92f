//! Interoperability with libtorrent over a DHT, all on 127.0.0.1: a private
//! DHT mixing nodes of the `mainline` crate (`xus dht serve`) and libtorrent
//! nodes (`tests/drivers/lt_dht.py nodes`). libtorrent finds a `xus seed` by
//! its bare infohash through the DHT alone (BEP 5), and reads the head `xus
//! publish` signed into it (BEP 44).
//!
//! Why the network looks like this (see `/work/shared/INTEROP.md`):
//! - `mainline` nodes drop libtorrent's requests (2-byte transaction ids), so
//!   libtorrent only ever hears from libtorrent nodes. The libtorrent nodes
//!   are therefore told about each other directly, and a libtorrent lookup
//!   converges on the libtorrent nodes closest to the target.
//! - A `mainline` client (xus) does talk to libtorrent nodes, but it only
//!   learns of them from a libtorrent node: mainline nodes never hear from
//!   them. So every xus process bootstraps from a mainline node *and* a
//!   libtorrent node; its lookups then rank both kinds together and its
//!   announce / put lands on the 20 closest nodes that answer, of either
//!   kind. The libtorrent node closest to the target is among those 20
//!   unless all 20 mainline nodes are closer than all [`LT_NODES`]
//!   libtorrent nodes (odds 1 in C(36, 16), about 7e9). With xus bootstrapped
//!   from mainline nodes only, libtorrent finds nothing (measured).
//! - [`LT_NODES`] = 16 is twice libtorrent's bucket size (8) and fewer than
//!   the 20 nodes xus stores on, so only some libtorrent nodes hold each
//!   announce or item (9 to 11 of 16 measured) and libtorrent has to route
//!   to them as it would on the real DHT; 16 sessions in one process are
//!   cheap (one process, under 1% CPU idle).
//!
//! xus and libtorrent enter the network through different nodes. Nothing is
//! skipped: without python3-libtorrent or the driver the tests fail, naming
//! what to install.

mod util;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use util::clients::{Lines, SYSTEM_PYTHON, log_tail, require_libtorrent, run_with_timeout};
use util::dht::{DHT_TIMEOUT_MS, DhtNet, Machine};
use util::*;

/// Nodes of the `mainline` crate.
const MAINLINE_NODES: usize = 20;

/// libtorrent nodes (see the module comment for the count).
const LT_NODES: usize = 16;

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

/// `lt_dht.py nodes`: libtorrent DHT nodes on 127.0.0.1 that know each other
/// and were bootstrapped from the given nodes. Killed on drop; the driver
/// also exits when its stdin (held here) closes.
struct LtNodes {
    _guard: ChildGuard,
    nodes: Vec<String>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl LtNodes {
    fn start(count: usize, bootstrap: &[&str]) -> Self {
        require_libtorrent();
        let driver = lt_dht_driver();
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("lt_nodes.log");
        let mut command = Command::new(SYSTEM_PYTHON);
        command
            .arg(&driver)
            .args(["nodes", "--count", &count.to_string()]);
        for node in bootstrap {
            command.args(["--bootstrap", node]);
        }
        let mut child = command
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log).expect("log file")))
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {SYSTEM_PYTHON} {}: {e}", driver.display()));
        let stdout = child.stdout.take().expect("stdout");
        let guard = ChildGuard {
            child,
            name: "libtorrent DHT nodes".into(),
        };
        let mut lines = Lines::new("lt_dht.py nodes", stdout);
        let mut nodes = Vec::new();
        lines.expect(
            "its `ready` line",
            Duration::from_secs(60),
            || log_tail(&log, 40),
            |line| {
                if let Some(addr) = line.strip_prefix("node ") {
                    assert!(addr.starts_with("127.0.0.1:"), "node off loopback: {addr}");
                    nodes.push(addr.to_owned());
                }
                (line == "ready").then_some(())
            },
        );
        assert_eq!(nodes.len(), count, "lt_dht.py nodes printed {nodes:?}");
        Self {
            _guard: guard,
            nodes,
            log,
            _dir: dir,
        }
    }
}

/// The mixed loopback DHT: mainline nodes plus libtorrent nodes that were
/// bootstrapped from them.
struct MixedDht {
    mainline: DhtNet,
    libtorrent: LtNodes,
}

impl MixedDht {
    fn start() -> Self {
        let mainline = DhtNet::start(MAINLINE_NODES);
        let libtorrent = LtNodes::start(LT_NODES, &[mainline.bootstrap()]);
        let net = Self {
            mainline,
            libtorrent,
        };
        eprintln!(
            "mixed DHT: {MAINLINE_NODES} mainline nodes ({}...), {LT_NODES} libtorrent nodes ({}...)",
            net.mainline.nodes[0], net.libtorrent.nodes[0]
        );
        net
    }

    /// DHT flags of a xus process: one mainline and one libtorrent node to
    /// join through (xus learns libtorrent nodes only from libtorrent nodes).
    fn xus_flags(&self) -> Vec<String> {
        vec![
            "--bootstrap".into(),
            self.mainline.nodes[0].clone(),
            "--bootstrap".into(),
            self.libtorrent.nodes[0].clone(),
            "--dht-bind".into(),
            "127.0.0.1".into(),
            "--dht-timeout-ms".into(),
            DHT_TIMEOUT_MS.into(),
        ]
    }

    /// Bootstrap flags of a libtorrent client: other entry points than xus's.
    fn lt_flags(&self) -> Vec<String> {
        vec![
            "--bootstrap".into(),
            self.mainline.nodes[MAINLINE_NODES - 1].clone(),
            "--bootstrap".into(),
            self.libtorrent.nodes[LT_NODES - 1].clone(),
        ]
    }

    /// The libtorrent nodes' log, for failure messages.
    fn lt_log(&self) -> String {
        log_tail(&self.libtorrent.log, 20)
    }
}

/// Runs `lt_dht.py ARGS` to completion (the driver has its own `--timeout`;
/// this deadline is a backstop) and panics, with its whole output, unless it
/// succeeded.
fn run_lt_dht(args: &[String], deadline: Duration, net: &MixedDht) -> String {
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
        "lt_dht.py {args:?} failed ({})\n--- stdout ---\n{stdout}\n--- stderr ---\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        net.lt_log()
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
    let net = MixedDht::start();
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
    let stdout = run_lt_dht(&args, Duration::from_secs(DOWNLOAD_TIMEOUT_S + 15), &net);
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
    let net = MixedDht::start();
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
    // libtorrent checks the signature, the driver decodes the byte-string
    // value (a bencoded dict) into the `ih` it carries.
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
    let stdout = run_lt_dht(&args, Duration::from_secs(GET_ITEM_TIMEOUT_S + 15), &net);
    let (got_seq, got_ih) = stdout
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix("item seq=")?;
            let (seq, ih) = rest.split_once(" ih=")?;
            Some((seq.parse::<u64>().expect("seq"), ih.to_owned()))
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
    report("libtorrent reads a head xus published", started);
}
