//! Hundreds of bad BitTorrent connections (half a handshake then gone,
//! nothing at all, or silence held open) must not stop a seed from serving
//! the next real peer: each incoming handshake has a short deadline of its
//! own, failed ones are dropped at once, and one address may only hold a
//! few pending handshakes.
//!
//! The attacker connects from 127.0.0.2 (all of 127/8 is loopback on
//! Linux), the real fetch from 127.0.0.1, as two machines would; the IPv6
//! case runs in network namespaces, the attacker holding a whole /64.

mod util;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use util::*;

/// Generous: a wedged listener never answers (for minutes); a healthy one
/// answers in well under a second.
const FETCH_DEADLINE: Duration = Duration::from_secs(30);

/// What "completes within seconds" means for the fetch after the flood
/// (issue 15): well above the 0.2 s it takes, and far below the minutes a
/// wedged listener took.
const WITHIN_SECONDS: Duration = Duration::from_secs(10);

/// Connects to `to` from 127.0.0.2.
async fn connect_from_elsewhere(to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind("127.0.0.2:0".parse().expect("address"))?;
    socket.connect(to).await
}

/// 300 connections that send the first 12 bytes of a handshake and close,
/// 300 that close without a byte, and 64 that stay open and silent (handed
/// back, to be held until the fetch is done).
async fn flood(to: SocketAddr) -> Vec<TcpStream> {
    for _ in 0..300 {
        if let Ok(mut stream) = connect_from_elsewhere(to).await {
            let _ = stream.write_all(b"\x13BitTorrent ").await;
        }
    }
    for _ in 0..300 {
        drop(connect_from_elsewhere(to).await);
    }
    let mut held = Vec::new();
    for _ in 0..64 {
        if let Ok(stream) = connect_from_elsewhere(to).await {
            held.push(stream);
        }
    }
    held
}

#[test]
fn a_flood_of_bad_handshakes_does_not_stop_a_seed() {
    let src = TestRepo::new();
    src.write("data.bin", noise(1 << 20, 5));
    src.write("README", "flooded\n");
    let commit = src.commit("data");
    let seeder = spawn_seed(src.path(), &[]);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let held = runtime.block_on(flood(seeder.addr));
    let flooded = Instant::now();
    assert_eq!(held.len(), 64, "the flood could not even connect");

    fetch_within_seconds(&seeder, &commit, "after the flood");

    // The silent connections are closed by the seed: those over the
    // per-address cap at once, the rest at the handshake deadline.
    let mut closed_after: Vec<Duration> = runtime.block_on(async {
        let mut reads = tokio::task::JoinSet::new();
        for mut stream in held {
            reads.spawn(async move {
                let mut byte = [0u8; 1];
                let deadline = (flooded + CLOSED_WITHIN).into();
                match tokio::time::timeout_at(deadline, stream.read(&mut byte)).await {
                    Ok(Ok(0) | Err(_)) => Some(flooded.elapsed()),
                    _ => None,
                }
            });
        }
        reads.join_all().await.into_iter().flatten().collect()
    });
    closed_after.sort();
    eprintln!("silent connections closed after {closed_after:?}");
    assert_eq!(
        closed_after.len(),
        64,
        "silent connections still open {CLOSED_WITHIN:?} after the flood"
    );
    let at_once = closed_after
        .iter()
        .filter(|t| **t < Duration::from_secs(2))
        .count();
    assert!(
        at_once >= 64 - 16,
        "only {at_once} connections over the per-address cap of 16 were closed at once"
    );
}

/// A normal fetch of `commit` from `seeder` (from 127.0.0.1): it must
/// complete within [`WITHIN_SECONDS`] and be `git fsck` clean; `when` says
/// what it comes after, for the messages.
fn fetch_within_seconds(seeder: &Seeder, commit: &str, when: &str) {
    let dst = tempfile::tempdir().expect("tempdir");
    let repo = dst.path().join("r");
    let started = Instant::now();
    let out = run_xus(
        &[
            "fetch",
            &seeder.seeded[0].magnet,
            "--repo",
            repo.to_str().expect("utf8"),
            "--branch",
            "main",
            "--listen",
            "127.0.0.1:0",
            "--metadata-timeout",
            &FETCH_DEADLINE.as_secs().to_string(),
        ],
        FETCH_DEADLINE + Duration::from_secs(30),
    );
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "the fetch {when} failed after {took:?}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("fetch {when} took {took:?}");
    assert!(
        took < WITHIN_SECONDS,
        "the fetch {when} took {took:?}: a listener that serves new peers through a \
         flood answers within seconds"
    );
    assert_eq!(git(&repo, &["rev-parse", "main"]), commit);
    assert_fsck_clean(&repo);
}

/// The seed's handshake deadline (5 s) plus a margin.
const CLOSED_WITHIN: Duration = Duration::from_secs(10);

/// Holds one silent connection from each of `sources` (addresses of the
/// host it runs on) to `target` for up to `wait` seconds and reports how many
/// the server closed within a second, and when each was closed (seconds
/// after it was opened): `fast N total M closed K` then `at T1 T2 ...`.
const SILENT_FROM_MANY: &str = r#"
import select, socket, sys, time
host, port, wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
opened = {}
for source in sys.argv[4:]:
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.connect((host, port))
    opened[s] = time.monotonic()
print("connected", flush=True)
closed = {}
deadline = time.monotonic() + wait
while len(closed) < len(opened) and time.monotonic() < deadline:
    ready, _, _ = select.select([s for s in opened if s not in closed], [], [], 0.1)
    for s in ready:
        try:
            data = s.recv(1)
        except OSError:
            data = b""
        if not data:
            closed[s] = time.monotonic()
fast = sum(1 for s, t in closed.items() if t - opened[s] < 1.0)
print("fast %d total %d closed %d" % (fast, len(opened), len(closed)), flush=True)
print("at " + " ".join("%.2f" % (t - opened[s]) for s, t in sorted(closed.items(), key=lambda i: i[1])), flush=True)
"#;

/// Issue 15 item 1: one IPv6 host holds a whole /64 and can pick a new
/// address for every connection, so the cap of pending handshakes per
/// address counts a /64 as one address (librqbit patch
/// `xus-handshake-bucket.patch`). 64 silent connections, each from its own
/// address of one /64: 16 may wait for the handshake deadline, the other 48
/// are closed at once. Counted per address, all 64 would wait.
#[test]
fn an_ipv6_64_counts_as_one_address_for_pending_handshakes() {
    let lan = util::netns::Lan::new("hs64", 2);
    lan.enable_ipv6();
    let home = tempfile::tempdir().expect("tempdir");
    let src = TestRepo::new();
    src.write("a.txt", "hello\n");
    src.commit("one");
    let listen = format!("[{}]:0", lan.address6(1));
    let seed = spawn_seed_with(
        lan.host(1).xus(home.path()),
        src.path(),
        &["--listen", &listen, "--no-lsd"],
    );
    let sources: Vec<String> = (0..64)
        .map(|i| format!("fd88::1:{:x}", 0x100 + i))
        .collect();
    for source in &sources {
        let status = lan
            .host(2)
            .command("ip")
            .args([
                "-6",
                "addr",
                "add",
                &format!("{source}/64"),
                "dev",
                "eth0",
                "nodad",
            ])
            .status()
            .expect("ip addr add");
        assert!(status.success(), "adding {source}");
    }
    let out = lan
        .host(2)
        .command("python3")
        .args(["-c", SILENT_FROM_MANY])
        .arg(lan.address6(1).to_string())
        .arg(seed.addr.port().to_string())
        .arg("9")
        .args(&sources)
        .output()
        .expect("python3");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("64 silent connections from one /64: {}", report.trim());
    let fast = reported_count(&report, "fast");
    assert_eq!(
        fast, 48,
        "closed at once: {fast} of 64 (16 may wait per /64): {report}"
    );
}

/// The number after `key` in a [`SILENT_FROM_MANY`] report.
fn reported_count(report: &str, key: &str) -> usize {
    let mut words = report.split_whitespace();
    words
        .find(|word| *word == key)
        .and_then(|_| words.next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `{key}` count in {report:?}"))
}

/// When each connection was closed, in seconds, from a [`SILENT_FROM_MANY`]
/// report.
fn reported_close_times(report: &str) -> Vec<f64> {
    report
        .lines()
        .find_map(|line| line.strip_prefix("at"))
        .unwrap_or_else(|| panic!("no close times in {report:?}"))
        .split_whitespace()
        .map(|t| t.parse().unwrap_or_else(|_| panic!("bad time {t:?}")))
        .collect()
}

/// Issue 15 item 1, the total cap: 300 silent connections, each from an
/// address of its own (so the per-address cap never applies), may not all
/// hold a pending handshake. The seed takes 256; the other 44 wait in the
/// kernel's accept queue, unread, until the first 256 reach the 5 s
/// deadline, and are closed at the next deadline. Without the cap all 300
/// would be closed at the first. A normal fetch queued behind them still
/// completes within seconds.
#[test]
fn pending_handshakes_are_capped_in_all() {
    use xus::swarm::engine::PENDING_HANDSHAKES_IN_ALL;
    let src = TestRepo::new();
    src.write("README", "capped\n");
    let commit = src.commit("one");
    let seeder = spawn_seed(src.path(), &[]);
    let sources: Vec<String> = (0..300)
        .map(|i| format!("127.1.{}.{}", i / 250, 1 + i % 250))
        .collect();
    let mut silent = std::process::Command::new("python3")
        .args(["-c", SILENT_FROM_MANY])
        .arg(seeder.addr.ip().to_string())
        .arg(seeder.addr.port().to_string())
        .arg("16")
        .args(&sources)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut stdout = std::io::BufReader::new(silent.stdout.take().expect("stdout"));
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).expect("python3 output");
    assert_eq!(first.trim(), "connected", "the silent connections failed");

    fetch_within_seconds(&seeder, &commit, "behind 300 silent connections");

    let mut report = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut report).expect("python3 output");
    assert!(silent.wait().expect("python3").success(), "{report}");
    eprintln!(
        "300 silent connections from 300 addresses: {}",
        report.trim()
    );
    assert_eq!(reported_count(&report, "closed"), 300, "{report}");
    let times = reported_close_times(&report);
    let at_first_deadline = times.iter().filter(|t| **t < 7.5).count();
    assert!(
        at_first_deadline <= PENDING_HANDSHAKES_IN_ALL,
        "{at_first_deadline} connections held a pending handshake at once (cap \
         {PENDING_HANDSHAKES_IN_ALL}): {report}"
    );
    assert!(
        at_first_deadline >= PENDING_HANDSHAKES_IN_ALL - 16,
        "only {at_first_deadline} connections were taken before the first deadline: {report}"
    );
}
