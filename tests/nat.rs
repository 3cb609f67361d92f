//! Readers behind NAT (issue 14, item 3): a home network whose router
//! masquerades outgoing connections and drops every connection that starts
//! outside, as home routers do ([`util::netns::Lan::add_nat_site`]).
//!
//! A reader there dials out, so it fetches from a public seed (a master is
//! the same engine and listener); the seed can never dial it. Two readers
//! behind two different NATs cannot reach each other at all (the test
//! checks both ways of trying): without holepunching (BEP 55, which librqbit
//! lacks) each takes every byte from the public peer. librqbit's peer
//! exchange would not even tell them about each other: it lists only the
//! peers a session dialled, and a seed dials neither.
//!
//! A writer there pushes to a public master (issue 14, item 2): the master
//! cannot dial it back, so the writer uploads each commit's info dictionary
//! over HTTP and dials the master's BitTorrent port itself; the pieces flow
//! over the writer's connection.

mod util;

use std::path::Path;
use std::time::{Duration, Instant};

use util::dht::DhtNet;
use util::netns::{Lan, NetNs};
use util::*;

/// How long a fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(120);

/// A commit with a few files.
fn nat_commit() -> (TestRepo, String) {
    let repo = TestRepo::new();
    repo.write("README.md", "# behind the router\n");
    repo.write("assets/map.bin", noise(2 << 20, 16));
    let commit = repo.commit("nat fixture");
    (repo, commit)
}

/// `xus fetch MAGNET --peer SEED` inside `ns`, LSD and DHT off; panics
/// unless it succeeds.
fn fetch_in(ns: &NetNs, home: &Path, magnet: &str, seed: &str, repo: &Path) {
    let out = run_xus_with(
        ns.xus(home)
            .args(["fetch", magnet, "--repo"])
            .arg(repo)
            .args(["--branch", "main", "--no-dht", "--no-lsd", "--peer", seed])
            .args(["--listen", "0.0.0.0:0"]),
        FETCH_TIMEOUT,
    );
    assert!(
        out.status.success(),
        "fetch from behind the NAT failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What a TCP connection attempt from `from` to `to` meets.
#[derive(Debug, PartialEq, Eq)]
enum Reach {
    /// Connected.
    Open,
    /// The host answered with a reset: the packet got there.
    Refused,
    /// No answer within 3 s, or no route: dropped on the way.
    Blocked,
}

fn try_connect(from: &NetNs, to: &str) -> Reach {
    let (host, port) = to.rsplit_once(':').expect("host:port");
    let script = format!(
        "import socket,sys\n\
         try:\n    socket.create_connection(('{host}', {port}), timeout=3)\n\
         except ConnectionRefusedError:\n    sys.exit(2)\n\
         except OSError:\n    sys.exit(1)"
    );
    let status = from
        .command("python3")
        .args(["-c", &script])
        .status()
        .expect("python3");
    match status.code() {
        Some(0) => Reach::Open,
        Some(2) => Reach::Refused,
        _ => Reach::Blocked,
    }
}

#[test]
fn a_reader_behind_nat_fetches_from_a_public_seed() {
    let mut lan = Lan::new("nat", 1);
    let site = lan.add_nat_site(1);
    let homes = tempfile::tempdir().expect("tempdir");
    let (src, commit) = nat_commit();
    let (seed, magnet) = lan.seed(1, &homes.path().join("seed"), src.path(), &["--no-lsd"]);

    // The NAT is real: the reader reaches the seed; the seed, even given a
    // route into the home network, reaches nothing there (a port nobody
    // listens on would answer with a reset, were the packet let in).
    let reader = lan.behind(site, 1);
    assert_eq!(try_connect(reader, &seed.addr.to_string()), Reach::Open);
    lan.route_into_site(1, site);
    let inside = format!("{}:9", lan.behind_address(site, 1));
    assert_eq!(try_connect(lan.host(1), &inside), Reach::Blocked);
    assert_eq!(
        try_connect(lan.host(1), &format!("{}:9", lan.router_address(site))),
        Reach::Refused,
        "control: the router itself answers"
    );

    let dst = tempfile::tempdir().expect("tempdir");
    let repo = dst.path().join("r");
    let started = Instant::now();
    fetch_in(
        reader,
        &homes.path().join("reader"),
        &magnet,
        &seed.addr.to_string(),
        &repo,
    );
    eprintln!(
        "reader behind NAT ({} outside) fetched in {:.1} s",
        lan.router_address(site),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(git(&repo, &["rev-parse", "main"]), commit);
    assert_fsck_clean(&repo);
}

#[test]
fn readers_behind_two_nats_both_fetch_through_a_public_peer() {
    let mut lan = Lan::new("nat2", 1);
    let (one, two) = (lan.add_nat_site(1), lan.add_nat_site(1));
    let homes = tempfile::tempdir().expect("tempdir");
    let (src, commit) = nat_commit();
    let (seed, magnet) = lan.seed(1, &homes.path().join("seed"), src.path(), &["--no-lsd"]);
    let seed_addr = seed.addr.to_string();
    // Neither reader can open a connection to the other, whether it dials
    // the other's private address or its router's public one.
    for to in [lan.behind_address(two, 1), lan.router_address(two)] {
        assert_eq!(
            try_connect(lan.behind(one, 1), &format!("{to}:9")),
            if to == lan.router_address(two) {
                Reach::Refused
            } else {
                Reach::Blocked
            },
            "from behind NAT 1 to {to}"
        );
    }

    let dst = tempfile::tempdir().expect("tempdir");
    std::thread::scope(|scope| {
        for (site, name) in [(one, "one"), (two, "two")] {
            let (lan, homes, magnet, seed_addr, dst) = (&lan, &homes, &magnet, &seed_addr, &dst);
            scope.spawn(move || {
                fetch_in(
                    lan.behind(site, 1),
                    &homes.path().join(name),
                    magnet,
                    seed_addr,
                    &dst.path().join(name),
                );
            });
        }
    });
    for name in ["one", "two"] {
        let repo = dst.path().join(name);
        assert_eq!(git(&repo, &["rev-parse", "main"]), commit);
        assert_fsck_clean(&repo);
    }
}

/// The master's HTTP port inside its namespace (nothing else listens there).
const MASTER_HTTP_PORT: u16 = 8080;

/// A topic master on LAN host 1 (its own DHT of four nodes there, two
/// backup remotes on disk) whose topic `world` lists one writer.
struct LanMaster {
    topic: String,
    url: String,
    bittorrent_port: u16,
    dht: DhtNet,
    backups: [std::path::PathBuf; 2],
    data: std::path::PathBuf,
    _process: ChildGuard,
    _lines: std::sync::mpsc::Receiver<String>,
}

impl LanMaster {
    fn start(lan: &Lan, dir: &Path, writer_key: &str) -> Self {
        let owner = dir.join("owner");
        let ip = lan.address(1);
        let out = run_xus_with(
            lan.host(1).xus(&owner).args(["topic", "new", "world"]),
            FETCH_TIMEOUT,
        );
        assert!(out.status.success(), "topic new: {out:?}");
        let topic = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(2)
            .expect("topic new prints `topic NAME ID`")
            .to_owned();
        let dht = DhtNet::start_with(lan.host(1).xus(&owner), ip, 4);
        let backups = [dir.join("backup-a.git"), dir.join("backup-b.git")];
        let config = dir.join("master.toml");
        std::fs::write(
            &config,
            format!(
                r#"data_dir = "data"

[listen]
bittorrent = "{ip}:0"
http = "{ip}:{MASTER_HTTP_PORT}"
lsd = false

[dht]
bootstrap = ["{bootstrap}"]
bind = "{ip}"
request_timeout_ms = 300

[limits]
backup_wait_secs = 20

[[topic]]
name = "world"
secret_file = "{secret}"
writers = ["{writer_key}"]
backups = ["{a}", "{b}"]
"#,
                bootstrap = dht.bootstrap(),
                secret = owner.join("topics").join("world.secret").display(),
                a = backups[0].display(),
                b = backups[1].display(),
            ),
        )
        .expect("master config");
        let mut command = lan.host(1).xus(&owner);
        command
            .args(["master", "--init", "--config"])
            .arg(&config)
            .env("XUS_LOG", "info,librqbit=warn");
        let (process, lines) = spawn_with_lines(command, "xus master");
        let deadline = Instant::now() + FETCH_TIMEOUT;
        let ready = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines
                .recv_timeout(left)
                .expect("the master did not get ready");
            if line.starts_with("master http ") {
                break line;
            }
        };
        // `master http URL bittorrent ADDR`
        let bittorrent_port = ready
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no BitTorrent port in {ready:?}"));
        Self {
            topic,
            url: format!("http://{ip}:{MASTER_HTTP_PORT}/"),
            bittorrent_port,
            dht,
            backups,
            data: dir.join("data").join("world.git"),
            _process: process,
            _lines: lines,
        }
    }

    /// `xus push` of `repo`'s `main` from `ns`, as the writer whose home
    /// is `home`; panics unless the master accepts it.
    fn push_from(&self, ns: &NetNs, home: &Path, repo: &Path) {
        let started = Instant::now();
        let out = run_xus_with(
            ns.xus(home)
                .args(["push", "--master", &self.url, "--branch", "main"])
                .args(["--listen", "0.0.0.0:0", "--repo"])
                .arg(repo),
            FETCH_TIMEOUT,
        );
        assert!(
            out.status.success(),
            "push to the master failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("pushed in {:.1} s", started.elapsed().as_secs_f64());
    }
}

/// `xus writer new` in `ns` with home `home`; returns the public key.
fn new_writer(ns: &NetNs, home: &Path) -> String {
    let out = run_xus_with(ns.xus(home).args(["writer", "new"]), FETCH_TIMEOUT);
    assert!(out.status.success(), "writer new: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn a_writer_behind_nat_pushes_to_a_public_master() {
    let mut lan = Lan::new("natpush", 1);
    let site = lan.add_nat_site(1);
    let reader_site = lan.add_nat_site(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let writer_home = dir.path().join("writer");
    let writer_key = new_writer(lan.behind(site, 1), &writer_home);
    let master = LanMaster::start(&lan, dir.path(), &writer_key);

    // The NAT is real: the master's host, given a route into the home
    // network, reaches nothing there.
    lan.route_into_site(1, site);
    let inside = format!("{}:9", lan.behind_address(site, 1));
    assert_eq!(try_connect(lan.host(1), &inside), Reach::Blocked);

    let (src, commit) = nat_commit();
    master.push_from(lan.behind(site, 1), &writer_home, src.path());
    assert_eq!(git(&master.data, &["rev-parse", "main"]), commit);
    assert_fsck_clean(&master.data);
    for backup in &master.backups {
        assert_eq!(
            git(backup, &["rev-parse", "main"]),
            commit,
            "{}",
            backup.display()
        );
    }

    // A reader behind another NAT finds the head on the master's DHT and
    // fetches the commit from the master (item 3: readers behind NAT fetch
    // from the master too).
    let repo = dir.path().join("reader-repo");
    let out = run_xus_with(
        lan.behind(reader_site, 1)
            .xus(&dir.path().join("reader"))
            .args(["fetch", &format!("xus://{}/main", master.topic), "--repo"])
            .arg(&repo)
            .args([
                "--branch",
                "main",
                "--no-lsd",
                "--bootstrap",
                master.dht.bootstrap(),
            ])
            .args(["--listen", "0.0.0.0:0"]),
        FETCH_TIMEOUT,
    );
    assert!(
        out.status.success(),
        "fetch from behind the NAT failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(git(&repo, &["rev-parse", "main"]), commit);
    assert_fsck_clean(&repo);
}

/// Issue 14, item 7: a head a master signs carries the master's URL, and a
/// fresh reader that cannot reach any BitTorrent peer (here a firewall drops
/// everything to the master's BitTorrent port) fetches `xus://TOPIC/main`
/// from the master's webseed, with no `--webseed` given.
#[test]
fn a_reader_without_peers_fetches_a_head_from_the_webseed_it_names() {
    let lan = Lan::new("headws", 3);
    let dir = tempfile::tempdir().expect("tempdir");
    let writer_home = dir.path().join("writer");
    let writer_key = new_writer(lan.host(2), &writer_home);
    let master = LanMaster::start(&lan, dir.path(), &writer_key);
    let (src, commit) = nat_commit();
    master.push_from(lan.host(2), &writer_home, src.path());

    lan.block_port(3, 1, master.bittorrent_port);
    let master_bt = format!("{}:{}", lan.address(1), master.bittorrent_port);
    assert_eq!(try_connect(lan.host(3), &master_bt), Reach::Blocked);

    let reader_home = dir.path().join("reader");
    let repo = dir.path().join("reader-repo");
    let started = Instant::now();
    let out = run_xus_with(
        lan.host(3)
            .xus(&reader_home)
            .args(["fetch", &format!("xus://{}/main", master.topic), "--repo"])
            .arg(&repo)
            .args([
                "--branch",
                "main",
                "--no-lsd",
                "--bootstrap",
                master.dht.bootstrap(),
            ])
            .args(["--listen", "0.0.0.0:0"]),
        FETCH_TIMEOUT,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "fetch failed:\n{stderr}");
    eprintln!(
        "fetched through the head's webseed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(stderr.contains(&master.url), "{stderr}");
    assert_eq!(git(&repo, &["rev-parse", "main"]), commit);
    assert_fsck_clean(&repo);
}
