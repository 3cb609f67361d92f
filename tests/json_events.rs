//! `--json` on `xus fetch` (issue 17 item 3): every line on stdout is one
//! JSON object naming its `event`, with the fields README documents, and
//! the values agree with what was fetched. (The head and update events of a
//! fetch through the DHT are checked in `tests/update_swarm.rs`.)

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
