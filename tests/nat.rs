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

mod util;

use std::path::Path;
use std::time::{Duration, Instant};

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
