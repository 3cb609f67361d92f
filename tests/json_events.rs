//! `--json` (issue 17 item 3): every line on stdout is one JSON object
//! naming its `event`, with the fields README documents, and the values
//! agree with what happened: `xus fetch`, `xus torrent`, `xus topic`. (The
//! head and update events of a fetch through the DHT are checked in
//! `tests/update_swarm.rs`, `xus push`'s in `tests/exit_status.rs`.)

mod util;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use util::*;

/// Every stdout line parsed, by event name (the last of each kind).
pub fn events(stdout: &str) -> (Vec<String>, BTreeMap<String, Value>) {
    let mut order = Vec::new();
    let mut by_name = BTreeMap::new();
    for line in stdout.lines() {
        let value: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"));
        let name = value["event"]
            .as_str()
            .unwrap_or_else(|| panic!("no event name: {line}"))
            .to_owned();
        order.push(name.clone());
        by_name.insert(name, value);
    }
    (order, by_name)
}

#[test]
fn a_fetch_reports_every_step_as_a_json_line() {
    const SIZE: usize = 2 << 20;
    let src = TestRepo::new();
    src.write("data.bin", noise(SIZE, 3));
    let commit = src.commit("one");
    let seeder = spawn_seed(src.path(), &[]);
    let dst = tempfile::tempdir().expect("tempdir");
    let repo = dst.path().join("r");
    let out = run_xus(
        &[
            "fetch",
            &seeder.seeded[0].magnet,
            "--json",
            "--repo",
            repo.to_str().expect("utf8"),
            "--listen",
            "127.0.0.1:0",
        ],
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_fsck_clean(&repo);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (order, events) = events(&stdout);
    for name in [
        "asking_for_metadata",
        "metadata_received",
        "plan",
        "download_ended",
        "downloaded",
        "timing",
        "transferred",
        "fetched",
    ] {
        assert!(events.contains_key(name), "no {name} event in\n{stdout}");
    }
    assert_eq!(order.last().map(String::as_str), Some("fetched"));
    let ih = &seeder.seeded[0].info_hash;
    assert_eq!(events["asking_for_metadata"]["info_hash"], ih.as_str());
    assert!(events["metadata_received"]["after"].as_f64().is_some());
    assert_eq!(events["plan"]["commit"], commit.as_str());
    assert_eq!(events["plan"]["total"], SIZE);
    assert_eq!(events["plan"]["files"], 1);
    assert_eq!(events["download_ended"]["complete"], true);
    assert_eq!(events["downloaded"]["from_peers"], SIZE);
    assert!(events["timing"]["download"].as_f64().is_some());
    assert!(events["timing"]["import"].as_f64().is_some());
    assert_eq!(events["transferred"]["commit"], SIZE);
    assert!(
        events["transferred"]["metadata"]
            .as_u64()
            .is_some_and(|m| m > 0)
    );
    assert_eq!(events["fetched"]["commit"], commit.as_str());
    assert_eq!(events["fetched"]["info_hash"], ih.as_str());
    if let Some(progress) = events.get("progress") {
        assert_eq!(progress["total"], SIZE);
        assert!(progress["peers"].as_u64().is_some());
    }
}

#[test]
fn torrent_and_topic_list_print_json_objects() {
    let src = TestRepo::new();
    src.write("README", "one\n");
    let first = src.commit("one");
    src.write("README", "two\n");
    let second = src.commit("two");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("c.torrent");
    let repo = src.path().to_str().expect("utf8").to_owned();
    let out = run_xus(
        &[
            "torrent",
            "--json",
            "--repo",
            &repo,
            "--output",
            file.to_str().expect("utf8"),
        ],
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (order, printed) = events(&stdout);
    assert_eq!(order, ["torrent"]);
    let torrent = &printed["torrent"];
    assert_eq!(torrent["commit"], second.as_str());
    let ih = torrent["info_hash"].as_str().expect("info_hash");
    assert_eq!(ih.len(), 40);
    assert!(torrent["magnet"].as_str().expect("magnet").contains(ih));
    assert!(file.exists());

    let update = dir.path().join("u.torrent");
    let out = run_xus(
        &[
            "torrent",
            "--json",
            "--repo",
            &repo,
            "--from",
            &first,
            "--output",
            update.to_str().expect("utf8"),
            &second,
        ],
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (order, printed) = events(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(order, ["update_torrent"]);
    let event = &printed["update_torrent"];
    assert_eq!(event["from"], first.as_str());
    assert_eq!(event["to"], second.as_str());
    assert!(event["payload"].as_u64().is_some_and(|n| n > 0));

    let home = tempfile::tempdir().expect("home");
    for name in ["alpha", "beta"] {
        let out = xus_command()
            .env("XUS_HOME", home.path())
            .args(["topic", "new", name])
            .output()
            .expect("topic new");
        assert!(out.status.success());
    }
    let out = xus_command()
        .env("XUS_HOME", home.path())
        .args(["--json", "topic", "list"])
        .output()
        .expect("topic list");
    assert!(out.status.success());
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let names: Vec<&str> = lines.iter().filter_map(|l| l["name"].as_str()).collect();
    assert_eq!(names, ["alpha", "beta"]);
    for line in &lines {
        assert_eq!(line["event"], "topic");
        assert_eq!(line["id"].as_str().map(str::len), Some(64));
    }
}
