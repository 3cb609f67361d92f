//! Every address xus dials passes one policy: never unspecified, broadcast
//! or multicast, at most 50 peers from one request, and only loopback under
//! the test guard (`XUS_LOOPBACK_ONLY=1`, which `xus_command` sets).

mod util;

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use util::*;

const T: Duration = Duration::from_secs(60);
const NO_SUCH_TORRENT: &str = "abababababababababababababababababababab";

/// A magnet naming 700 peers (each a real listener here) makes xus dial at
/// most 50 of them.
#[test]
fn a_magnet_with_700_peers_dials_at_most_50() {
    let listeners: Vec<TcpListener> = (0..700)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    let mut magnet = format!("magnet:?xt=urn:btih:{NO_SUCH_TORRENT}");
    for listener in &listeners {
        let port = listener.local_addr().expect("address").port();
        magnet.push_str(&format!("&x.pe=127.0.0.1:{port}"));
    }
    let repo = tempfile::tempdir().expect("tempdir");
    let out = run_xus(
        &[
            "fetch",
            &magnet,
            "--repo",
            repo.path().join("r").to_str().expect("utf8"),
            "--no-dht",
            "--listen",
            "127.0.0.1:0",
            "--metadata-timeout",
            "5",
        ],
        T,
    );
    assert!(!out.status.success(), "no peer has this torrent");
    // The kernel completes each dial into a listener's backlog, accepted
    // or not.
    let dialled = listeners
        .iter()
        .filter(|listener| {
            listener.set_nonblocking(true).expect("nonblocking");
            listener.accept().is_ok()
        })
        .count();
    eprintln!("{dialled} of 700 listed peers dialled");
    assert!(
        (1..=50).contains(&dialled),
        "{dialled} of the 700 peers were dialled:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// With no network but loopback (a namespace of its own) and the guard on,
/// xus refuses, before any connect(), the addresses no peer can hold and
/// everything outside loopback, from every place an address can come from;
/// it says so for each.
#[test]
fn refused_addresses_are_never_dialled() {
    let strace = util::clients::require_program("strace", "strace");
    util::clients::require_program("unshare", "util-linux");
    util::clients::require_program("ip", "iproute2");
    let repo = tempfile::tempdir().expect("tempdir");
    let trace = repo.path().join("connect.trace");
    let magnet = format!(
        "magnet:?xt=urn:btih:{NO_SUCH_TORRENT}&dn=x\
         &x.pe=0.0.0.0:6881&x.pe=255.255.255.255:6881&x.pe=224.0.0.1:6881\
         &x.pe=10.11.12.13:6881&ws=http%3A%2F%2F10.9.9.9%2F&ws=http%3A%2F%2F0.0.0.0%3A8080%2F"
    );
    let script = format!(
        "ip link set lo up && exec {} -f -qq -e trace=connect -o {} \"$@\"",
        strace.display(),
        trace.display()
    );
    let mut command = Command::new("unshare");
    command
        .args(["--net", "sh", "-c", &script, "sh", xus_bin()])
        .args(["fetch", &magnet, "--repo"])
        .arg(repo.path().join("r"))
        .args([
            "--peer",
            "10.1.2.3:6881",
            "--no-dht",
            "--listen",
            "127.0.0.1:0",
            "--metadata-timeout",
            "3",
        ])
        .env("XUS_LOOPBACK_ONLY", "1")
        .env("XUS_HOME", repo.path().join("home"));
    let out = run_xus_with(&mut command, T);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    for (what, why) in [
        ("10.1.2.3:6881", "not a loopback address"),
        ("0.0.0.0:6881", "unspecified"),
        ("255.255.255.255:6881", "broadcast or multicast"),
        ("224.0.0.1:6881", "broadcast or multicast"),
        ("10.11.12.13:6881", "not a loopback address"),
        ("http://10.9.9.9/", "not a loopback address"),
        ("http://0.0.0.0:8080/", "unspecified"),
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(&format!("not dialling {what}:")) && l.contains(why)),
            "no refusal of {what} ({why}) reported:\n{stderr}"
        );
    }
    let connects = std::fs::read_to_string(&trace).expect("the strace log");
    assert!(
        connects.contains("connect("),
        "strace saw no connect() at all (xus dials its own loopback feed):\n{connects}"
    );
    for address in [
        "10.1.2.3",
        "0.0.0.0",
        "255.255.255.255",
        "224.0.0.1",
        "10.11.12.13",
        "10.9.9.9",
    ] {
        let dialled: Vec<&str> = connects
            .lines()
            .filter(|l| l.contains(&format!("inet_addr(\"{address}\")")))
            .collect();
        assert!(dialled.is_empty(), "{address} was dialled: {dialled:?}");
    }
}

/// Peers a swarm tells xus about (PEX, BEP 11) pass the same policy: a peer
/// (`tests/drivers/pex_peer.py`) lists a non-loopback address, multicast,
/// the unspecified address and a loopback control listener in one ut_pex
/// message. Under the guard, in a namespace of its own with strace watching
/// every connect(), xus dials the control (so the message was read) and none
/// of the others.
#[test]
fn peers_learnt_through_pex_pass_the_same_policy() {
    let strace = util::clients::require_program("strace", "strace");
    util::clients::require_program("unshare", "util-linux");
    util::clients::require_program("ip", "iproute2");
    let driver = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers/pex_peer.py");
    assert!(driver.is_file(), "{} is missing", driver.display());
    let src = TestRepo::new();
    src.write("data.bin", vec![7u8; 200_000]);
    let commit = src.commit("data");
    let work = tempfile::tempdir().expect("tempdir");
    let torrent = work.path().join("c.torrent");
    let made = xus_ok(
        &[
            "torrent",
            &commit,
            "--repo",
            src.path().to_str().expect("utf8"),
            "-o",
            torrent.to_str().expect("utf8"),
        ],
        T,
    );
    let info_hash = made
        .lines()
        .find_map(|l| l.strip_prefix("infohash "))
        .expect("an infohash line")
        .to_owned();
    let trace = work.path().join("connect.trace");
    let pex_log = work.path().join("pex_peer.log");
    // Fixed ports: the namespace is new and empty. The peer runs detached
    // (a subshell's child), so strace, which waits for its own children,
    // ends with xus; it exits by itself after 30 s.
    let script = format!(
        "ip link set lo up && \
         ({python} {driver} --infohash {info_hash} --port 40001 --control-port 40002 \
           --list 10.20.30.40:6881 224.0.0.1:6881 0.0.0.0:6881 --exit-after 30 > {log} 2>&1 &) && \
         for _ in $(seq 100); do grep -q listening {log} && break; sleep 0.05; done; \
         exec {strace} -f -qq -e trace=connect -o {trace} \"$@\"",
        python = util::clients::SYSTEM_PYTHON,
        driver = driver.display(),
        log = pex_log.display(),
        strace = strace.display(),
        trace = trace.display(),
    );
    let mut command = Command::new("unshare");
    command
        .args(["--net", "sh", "-c", &script, "sh", xus_bin()])
        .arg("fetch")
        .arg(&torrent)
        .arg("--repo")
        .arg(work.path().join("r"))
        .args([
            "--peer",
            "127.0.0.1:40001",
            "--no-dht",
            "--listen",
            "127.0.0.1:0",
            "--stall-timeout",
            "8",
        ])
        .env("XUS_LOOPBACK_ONLY", "1")
        .env("XUS_HOME", work.path().join("home"));
    let out = run_xus_with(&mut command, T);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the PEX peer has no piece: {stderr}");
    let pex = std::fs::read_to_string(&pex_log).expect("the PEX peer's log");
    assert!(
        pex.lines().any(|l| l == "pex sent"),
        "the PEX peer never sent its message:\n{pex}\n{stderr}"
    );
    assert!(
        pex.lines().any(|l| l == "control dialled"),
        "xus never dialled the loopback peer PEX listed (was the message read?):\n{pex}\n{stderr}"
    );
    let connects = std::fs::read_to_string(&trace).expect("the strace log");
    for address in ["10.20.30.40", "224.0.0.1", "0.0.0.0"] {
        let dialled: Vec<&str> = connects
            .lines()
            .filter(|l| l.contains(&format!("inet_addr(\"{address}\")")))
            .collect();
        assert!(
            dialled.is_empty(),
            "{address}, learnt through PEX, was dialled: {dialled:?}"
        );
    }
}

/// What a `xus dht serve` node bootstrapped from a lying node sends, in a
/// network namespace of its own under strace: the liar (and the control it
/// names) list `listed` as nodes to ask. Returns the strace log of every
/// datagram sent; panics unless the control was queried (the lists were
/// read).
fn dht_sends_after_lies(listed: &[&str], guard: bool) -> String {
    let strace = util::clients::require_program("strace", "strace");
    util::clients::require_program("unshare", "util-linux");
    util::clients::require_program("ip", "iproute2");
    util::clients::require_program("timeout", "coreutils");
    let driver =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers/lying_dht_node.py");
    assert!(driver.is_file(), "{} is missing", driver.display());
    let work = tempfile::tempdir().expect("tempdir");
    let trace = work.path().join("send.trace");
    let liar_log = work.path().join("liar.log");
    // Fixed ports: the namespace is new and empty. The node runs for 6 s,
    // long enough to bootstrap and ask every node it was told of.
    let script = format!(
        "ip link set lo up && \
         ({python} {driver} --port 40011 --control-port 40012 --list {listed} \
           --exit-after 20 > {log} 2>&1 &) && \
         for _ in $(seq 100); do grep -q listening {log} && break; sleep 0.05; done; \
         exec {strace} -f -qq -e trace=sendto,sendmsg,sendmmsg -o {trace} \
           timeout -s INT 6 \"$@\"",
        python = util::clients::SYSTEM_PYTHON,
        driver = driver.display(),
        listed = listed.join(" "),
        log = liar_log.display(),
        strace = strace.display(),
        trace = trace.display(),
    );
    let mut command = Command::new("unshare");
    command
        .args(["--net", "sh", "-c", &script, "sh", xus_bin()])
        .args(["dht", "serve", "--bind", "127.0.0.1"])
        .args(["--bootstrap", "127.0.0.1:40011"])
        .env("XUS_HOME", work.path().join("home"));
    if guard {
        command.env("XUS_LOOPBACK_ONLY", "1");
    } else {
        command.env_remove("XUS_LOOPBACK_ONLY");
        command.env_remove("XUS_DHT_LOOPBACK_ONLY");
    }
    let _ = run_xus_with(&mut command, T);
    let liar = std::fs::read_to_string(&liar_log).expect("the liar's log");
    assert!(
        liar.lines().any(|l| l == "control queried"),
        "the node never asked the control node the liar named (were the lists read?):\n{liar}"
    );
    std::fs::read_to_string(&trace).expect("the strace log")
}

/// Datagrams in `trace` sent to `address`.
fn sent_to<'a>(trace: &'a str, address: &str) -> Vec<&'a str> {
    trace
        .lines()
        .filter(|l| l.contains(&format!("inet_addr(\"{address}\")")))
        .collect()
}

/// Issue 15: the DHT node's own datagrams obey the dial rule too. Other
/// nodes name the nodes a lookup asks next, so one lying node could make
/// every xus node send to any address: a multicast group, broadcast, the
/// unspecified address, and under the test guard anything off loopback.
/// (`vendor/mainline`'s third change, a destination filter in its socket.)
#[test]
fn a_lying_dht_node_cannot_make_xus_send_anywhere() {
    let listed = [
        "10.20.30.40:6881",
        "224.0.0.1:6881",
        "255.255.255.255:6881",
        "0.0.0.0:6881",
    ];
    let guarded = dht_sends_after_lies(&listed, true);
    for address in ["10.20.30.40", "224.0.0.1", "255.255.255.255", "0.0.0.0"] {
        let sent = sent_to(&guarded, address);
        assert!(
            sent.is_empty(),
            "under the guard, {address} (named by a lying node) got datagrams: {sent:?}"
        );
    }
    // Without the guard an address on another network is a node like any
    // other (a LAN DHT); the rest never are.
    let open = dht_sends_after_lies(&listed, false);
    assert!(
        !sent_to(&open, "10.20.30.40").is_empty(),
        "without the guard the node never asked 10.20.30.40 (control):\n{open}"
    );
    for address in ["224.0.0.1", "255.255.255.255", "0.0.0.0"] {
        let sent = sent_to(&open, address);
        assert!(
            sent.is_empty(),
            "{address} (named by a lying node) got datagrams: {sent:?}"
        );
    }
}
