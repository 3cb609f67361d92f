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
