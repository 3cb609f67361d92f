//! IPv6 (issue 14, item 6): a seed, a fetch from it as a peer, and a fetch
//! from its webseed alone, all over IPv6: on `::1` (under the loopback
//! guard, which counts `::1` as loopback), and between two machines of a
//! LAN in network namespaces that reach each other at `fd88::1` and
//! `fd88::2`. The seed listens on its IPv6 address only, so nothing can
//! have gone over IPv4.
//!
//! The DHT stays IPv4: `mainline` 8 has no BEP 32 (its socket refuses an
//! IPv6 address, `KrpcSocket::new`), so `--dht-bind` and `xus dht serve
//! --bind` take IPv4 addresses, and peers found on the DHT are IPv4 peers.
//! A seed listening on `[::]` is reachable both ways.

mod util;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use util::netns::Lan;
use util::*;

const T: Duration = Duration::from_secs(120);

/// A commit of a few files, one of them 3 MiB.
fn commit() -> (TestRepo, String) {
    let repo = TestRepo::new();
    repo.write("README.md", "# over IPv6\n");
    repo.write("assets/terrain.bin", noise(3 << 20, 6));
    let commit = repo.commit("ipv6 fixture");
    (repo, commit)
}

/// `magnet` without its `x.pe` peers: a fetch of it has only the `ws=`
/// webseed to ask.
fn without_peers(magnet: &str) -> String {
    let (head, query) = magnet.split_once('?').expect("a magnet");
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.starts_with("x.pe="))
        .collect();
    assert!(
        kept.iter().any(|p| p.starts_with("ws=")),
        "the seed's magnet names no webseed: {magnet}"
    );
    format!("{head}?{}", kept.join("&"))
}

/// `xus fetch SOURCE --repo REPO --branch main` with `command` (LSD and
/// DHT off, listening on `listen`); returns stderr, panicking unless it
/// succeeds with `commit` and a clean `git fsck`.
fn fetch(mut command: Command, source: &str, repo: &Path, listen: &str, commit: &str) -> String {
    let started = Instant::now();
    let out = run_xus_with(
        command.args(["fetch", source, "--repo"]).arg(repo).args([
            "--branch", "main", "--no-dht", "--no-lsd", "--listen", listen,
        ]),
        T,
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "fetch of {source} failed:\n{stderr}");
    eprintln!(
        "fetched {source:.60}... in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(git(repo, &["rev-parse", "main"]), commit);
    assert_fsck_clean(repo);
    stderr
}

/// The bytes the fetch report gives for `source` (`commit` for peers,
/// `webseed`), from its `bytes: ...` line.
fn bytes_from(stderr: &str, source: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("bytes:"))
        .unwrap_or_else(|| panic!("no bytes line in:\n{stderr}"));
    reported(line, source)
}

#[test]
fn seed_fetch_and_webseed_over_ipv6_loopback() {
    let (src, commit) = commit();
    let seed = spawn_seed(
        src.path(),
        &[
            "--listen",
            "[::1]:0",
            "--webseed-listen",
            "[::1]:0",
            "--no-lsd",
        ],
    );
    assert!(seed.addr.is_ipv6(), "listening on {}", seed.addr);
    let magnet = &seed.seeded[0].magnet;
    let dst = tempfile::tempdir().expect("tempdir");

    let stderr = fetch(
        xus_command(),
        magnet,
        &dst.path().join("by-peer"),
        "[::1]:0",
        &commit,
    );
    assert!(bytes_from(&stderr, "commit") >= 3 << 20, "{stderr}");
    assert_eq!(bytes_from(&stderr, "webseed"), 0, "{stderr}");

    let stderr = fetch(
        xus_command(),
        &without_peers(magnet),
        &dst.path().join("by-webseed"),
        "[::1]:0",
        &commit,
    );
    assert!(bytes_from(&stderr, "webseed") >= 3 << 20, "{stderr}");
}

#[test]
fn two_machines_share_a_commit_over_ipv6_addresses() {
    let lan = Lan::new("v6", 2);
    lan.enable_ipv6();
    let homes = tempfile::tempdir().expect("tempdir");
    let (src, commit) = commit();
    let seed_ip = lan.address6(1);
    let listen = format!("[{seed_ip}]:0");
    let seed = spawn_seed_with(
        lan.host(1).xus(&homes.path().join("seed")),
        src.path(),
        &["--listen", &listen, "--webseed-listen", &listen, "--no-lsd"],
    );
    assert_eq!(seed.addr.ip(), std::net::IpAddr::V6(seed_ip));
    let magnet = &seed.seeded[0].magnet;
    assert!(
        magnet.contains(&format!("{seed_ip}")) || magnet.contains("fd88"),
        "the magnet names the seed's IPv6 address: {magnet}"
    );
    let reader = format!("[{}]:0", lan.address6(2));
    let dst = tempfile::tempdir().expect("tempdir");

    let stderr = fetch(
        lan.host(2).xus(&homes.path().join("reader")),
        magnet,
        &dst.path().join("by-peer"),
        &reader,
        &commit,
    );
    assert!(bytes_from(&stderr, "commit") >= 3 << 20, "{stderr}");

    let stderr = fetch(
        lan.host(2).xus(&homes.path().join("reader")),
        &without_peers(magnet),
        &dst.path().join("by-webseed"),
        &reader,
        &commit,
    );
    assert!(bytes_from(&stderr, "webseed") >= 3 << 20, "{stderr}");
}

/// What the DHT does not do: an IPv6 bind address is refused with a clear
/// error, not taken for something else.
#[test]
fn the_dht_says_it_is_ipv4_only() {
    let out = run_xus_with(
        xus_command().args(["dht", "serve", "--bind", "::1"]),
        Duration::from_secs(30),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an IPv6 DHT node started: {stderr}");
    assert!(stderr.contains("::1"), "{stderr}");
}
