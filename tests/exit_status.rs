//! Errors for scripts (issue 17 item 3): each kind of failure ends with its
//! own exit status, and with `--json` as one JSON object on stderr whose
//! `kind` names it. Every kind but `failed` (the catch-all) is caused here
//! for real: a magnet that does not parse, a file that is not there, a
//! fetch nobody can serve, a master refusing an unknown writer, Ctrl-C.

mod util;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use util::cluster::*;
use util::*;

const T: Duration = Duration::from_secs(60);

/// The JSON error object on the last line of stderr, checked against the
/// exit status it names.
fn json_error(out: &Output) -> Value {
    let stderr = text(&out.stderr);
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON error on stderr:\n{stderr}"));
    let error: Value = serde_json::from_str(line).expect("a JSON object");
    assert_eq!(error["event"], "error", "{line}");
    assert_eq!(
        out.status.code().map(i64::from),
        error["exit_status"].as_i64(),
        "{line}"
    );
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(error["causes"].as_array().is_some_and(|c| !c.is_empty()));
    error
}

fn fetch(source: &str, extra: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("r");
    let mut args = vec![
        "--json",
        "fetch",
        source,
        "--repo",
        repo.to_str().expect("utf8"),
        "--listen",
        "127.0.0.1:0",
        "--no-dht",
    ];
    args.extend_from_slice(extra);
    run_xus(&args, T)
}

#[test]
fn bad_input_exits_2() {
    let out = fetch("magnet:?xt=urn:btih:zz", &[]);
    let error = json_error(&out);
    assert_eq!(error["kind"], "bad_input");
    assert_eq!(out.status.code(), Some(2));
    // Without --json: the same status, the message for a person.
    let plain = run_xus(&["fetch", "magnet:?xt=urn:btih:zz", "--no-dht"], T);
    assert_eq!(plain.status.code(), Some(2));
    assert!(text(&plain.stderr).contains("xus: error: "));
}

#[test]
fn not_found_exits_3() {
    let out = fetch("/nonexistent/x.torrent", &[]);
    assert_eq!(json_error(&out)["kind"], "not_found");
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn network_exits_4() {
    // A peer that accepts and never speaks.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let peer = silent.local_addr().expect("addr");
    let magnet = format!("magnet:?xt=urn:btih:{}&x.pe={peer}", "ab".repeat(20));
    let out = fetch(&magnet, &["--metadata-timeout", "1"]);
    let error = json_error(&out);
    assert_eq!(error["kind"], "network", "{error}");
    assert_eq!(out.status.code(), Some(4));
    // A master that is not there.
    let writer = Writer::new(None);
    writer.write("README", "x\n");
    writer.commit("one");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/", closed.local_addr().expect("addr"));
    drop(closed);
    let mut push = writer.push_command(&url);
    push.arg("--json");
    let out = run_xus_with(&mut push, T);
    assert_eq!(json_error(&out)["kind"], "network");
}

#[test]
fn a_master_refusing_exits_5() {
    let listed = Writer::new(None);
    let stranger = Writer::new(None);
    stranger.write("README", "not listed\n");
    stranger.commit("one");
    let mut cluster = Cluster::new(&[&listed]);
    cluster.start_master();
    let mut push = stranger.push_command(&cluster.url());
    push.arg("--json");
    let out = run_xus_with(&mut push, T);
    let error = json_error(&out);
    assert_eq!(error["kind"], "refused", "{error}");
    assert_eq!(out.status.code(), Some(5));
    // The master's answer itself is the push event on stdout.
    let answer = push_answer(&out, &stranger);
    assert_eq!(answer["result"], "refused");
    // A listed writer's push: accepted, with the answer's fields.
    listed.write("README", "listed\n");
    let commit = listed.commit("one");
    let mut push = listed.push_command(&cluster.url());
    push.arg("--json");
    let out = run_xus_with(&mut push, T);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let answer = push_answer(&out, &listed);
    assert_eq!(answer["result"], "accepted");
    assert_eq!(answer["commit"], commit.as_str());
    assert_eq!(answer["branch"], "main");
    assert!(answer["seq"].as_i64().is_some());
    // The backup remotes holding it when the master answered: at least one.
    assert!(answer["backups"].as_array().is_some_and(|b| !b.is_empty()));
}

/// The events of `xus --json push`: `offered` first (the tip offered),
/// `progress` with bytes uploaded that never go down, and the master's
/// answer last, as the `push` event it returns.
fn push_answer(out: &Output, writer: &Writer) -> Value {
    let events: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    let names: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(names.first(), Some(&"offered"), "{names:?}");
    assert_eq!(names.last(), Some(&"push"), "{names:?}");
    let offered = &events[0];
    assert_eq!(
        offered["tip"],
        git(&writer.repo, &["rev-parse", "HEAD"]).as_str()
    );
    assert_eq!(offered["branch"], "main");
    assert!(offered["commits"].as_u64().is_some_and(|n| n >= 1));
    assert!(
        offered["master"]
            .as_str()
            .is_some_and(|m| m.starts_with("http://"))
    );
    let mut last = 0;
    for progress in events.iter().filter(|e| e["event"] == "progress") {
        let uploaded = progress["uploaded"].as_u64().expect("uploaded bytes");
        assert!(uploaded >= last, "{names:?}");
        last = uploaded;
    }
    events.last().cloned().expect("the push event")
}

#[test]
fn ctrl_c_exits_130() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let peer = silent.local_addr().expect("addr");
    let magnet = format!("magnet:?xt=urn:btih:{}&x.pe={peer}", "cd".repeat(20));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = xus_command()
        .args(["--json", "fetch", &magnet, "--repo"])
        .arg(dir.path().join("r"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--no-dht",
            "--metadata-timeout",
            "60",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("xus fetch");
    // The fetch is waiting for metadata once it says it asks.
    std::thread::sleep(Duration::from_secs(2));
    let pid = child.id().to_string();
    let sent = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(sent.success());
    let deadline = Instant::now() + T;
    while child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "the fetch ignored SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    let error = json_error(&out);
    assert_eq!(error["kind"], "interrupted", "{error}");
    assert_eq!(out.status.code(), Some(130));
}
