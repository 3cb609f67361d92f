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

/// Reads JSON events from a running service until one named `name`; every
/// line on the way must be a JSON object naming its event.
fn wait_event(
    lines: &std::sync::mpsc::Receiver<String>,
    name: &str,
    seen: &mut Vec<Value>,
) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = lines.recv_timeout(left).unwrap_or_else(|_| {
            let names: Vec<&str> = seen.iter().filter_map(|e| e["event"].as_str()).collect();
            panic!("no {name} event; saw {names:?}")
        });
        let value: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"));
        assert!(value["event"].is_string(), "no event name: {line}");
        seen.push(value.clone());
        if value["event"] == name {
            return value;
        }
    }
}

/// The long-running commands and the DHT ones: `seed` (seeding, webseed,
/// metrics, listening, uploaded), `publish` (published, magnet, then
/// update on the next head), `follow` (following, the fetch's events,
/// fetched, updated, a warning while no head exists), `status` (one status
/// object), and a fetch that stays to seed (seeding_for, uploaded), all on
/// a private loopback DHT.
#[test]
fn seed_publish_follow_and_status_print_json_events() {
    use util::dht::{DhtNet, Machine};
    let net = DhtNet::start(16);
    let dht = net.flags();
    let owner = Machine::new();
    let topic = owner.new_topic("world");
    let repo = TestRepo::new();
    repo.write("data.bin", noise(400_000, 5));
    let first = repo.commit("first");
    let repo_path = repo.path().to_str().expect("utf8").to_owned();

    let mut seed = owner.xus();
    seed.args([
        "--json",
        "seed",
        "--repo",
        &repo_path,
        "--listen",
        "127.0.0.1:0",
        "--rescan",
        "1",
        "--webseed-listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "127.0.0.1:0",
    ])
    .args(&dht);
    let (mut seed_guard, seed_lines) = spawn_with_lines(seed, "xus seed");
    let mut seed_events = Vec::new();
    let listening = wait_event(&seed_lines, "listening", &mut seed_events);
    let names: Vec<&str> = seed_events
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert_eq!(names, ["seeding", "webseed", "metrics", "listening"]);
    let seeding = &seed_events[0];
    assert_eq!(seeding["commit"], first.as_str());
    let info_hash = seeding["info_hash"].as_str().expect("info_hash").to_owned();
    assert!(
        seeding["magnet"]
            .as_str()
            .expect("magnet")
            .contains(&info_hash)
    );
    assert!(
        seed_events[1]["url"]
            .as_str()
            .expect("url")
            .starts_with("http://127.0.0.1:")
    );
    assert!(
        seed_events[2]["url"]
            .as_str()
            .expect("url")
            .ends_with("/metrics")
    );
    let address: std::net::SocketAddr = listening["address"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .expect("a socket address");
    assert_ne!(address.port(), 0);

    let publish = |expect_update: bool| {
        let out = run_xus_with(
            owner
                .xus()
                .args([
                    "--json", "publish", "--repo", &repo_path, "--branch", "main",
                ])
                .args(&dht),
            Duration::from_secs(120),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let (order, events) = events(&stdout);
        assert_eq!(
            order.contains(&"update".to_owned()),
            expect_update,
            "{stdout}"
        );
        assert_eq!(
            &order[order.len() - 2..],
            ["published", "magnet"],
            "{stdout}"
        );
        events
    };
    let published = publish(false);
    let url = format!("xus://{topic}/main");
    assert_eq!(published["published"]["url"], url.as_str());
    assert_eq!(published["published"]["commit"], first.as_str());
    assert_eq!(published["published"]["info_hash"], info_hash.as_str());
    let first_seq = published["published"]["seq"].as_i64().expect("seq");
    // The first head lists a history torrent for clones.
    assert_eq!(published["history"]["commit"], first.as_str());
    assert!(
        published["history"]["bytes"]
            .as_u64()
            .is_some_and(|b| b > 0)
    );
    assert!(
        published["magnet"]["link"]
            .as_str()
            .expect("link")
            .contains(&topic)
    );

    // A follower of a branch nobody published warns, as an event.
    let follower = Machine::new();
    let nowhere = follower.new_topic("nowhere");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut lonely = follower.xus();
    lonely
        .args([
            "--json",
            "follow",
            &format!("xus://{nowhere}/main"),
            "--interval",
            "1",
        ])
        .args(["--repo", dir.path().join("lonely").to_str().expect("utf8")])
        .args(&dht);
    let (_lonely_guard, lonely_lines) = spawn_with_lines(lonely, "xus follow (nothing)");
    let mut lonely_events = Vec::new();
    let warning = wait_event(&lonely_lines, "warning", &mut lonely_events);
    assert!(
        warning["message"]
            .as_str()
            .expect("message")
            .contains("no head"),
        "{warning}"
    );
    assert_eq!(lonely_events[0]["event"], "following");

    let follow_repo = dir.path().join("clone");
    let mut follow = follower.xus();
    follow
        .args([
            "--json",
            "follow",
            &url,
            "--interval",
            "1",
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--repo", follow_repo.to_str().expect("utf8")])
        .args(&dht);
    let (_follow_guard, follow_lines) = spawn_with_lines(follow, "xus follow");
    let mut follow_events = Vec::new();
    let updated = wait_event(&follow_lines, "updated", &mut follow_events);
    assert_eq!(follow_events[0]["event"], "following");
    assert_eq!(follow_events[0]["url"], url.as_str());
    assert_eq!(follow_events[0]["branch"], "main");
    let fetched = follow_events
        .iter()
        .find(|e| e["event"] == "fetched")
        .expect("a fetched event before updated");
    assert_eq!(fetched["commit"], first.as_str());
    assert_eq!(fetched["info_hash"], info_hash.as_str());
    assert!(
        follow_events.iter().any(|e| e["event"] == "head_resolved"),
        "the fetch's own events too"
    );
    assert_eq!(updated["branch"], "main");
    assert_eq!(updated["commit"], first.as_str());
    assert_eq!(updated["seq"], first_seq);

    // The next head lists an update from the first; the follower moves.
    repo.write("data.bin", {
        let mut data = noise(400_000, 5);
        data[1000..1010].copy_from_slice(b"changed!!!");
        data
    });
    let second = repo.commit("second");
    let published = publish(true);
    assert_eq!(published["update"]["from"], first.as_str());
    assert_eq!(published["update"]["to"], second.as_str());
    assert!(published["update"]["bytes"].as_u64().is_some_and(|b| b > 0));
    assert!(published["update"].get("magnet").is_none());
    assert_eq!(published["published"]["commit"], second.as_str());
    let updated = wait_event(&follow_lines, "updated", &mut follow_events);
    assert_eq!(updated["commit"], second.as_str());
    assert_fsck_clean(&follow_repo);

    // `xus status --json`: one object, the follower up to date.
    let out = run_xus_with(
        follower
            .xus()
            .args([
                "--json",
                "status",
                "--repo",
                follow_repo.to_str().expect("utf8"),
            ])
            .args(&dht),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (order, status) = events(&stdout);
    assert_eq!(order, ["status"]);
    let status = &status["status"];
    let followed = &status["followed"][0];
    assert_eq!(followed["url"], url.as_str());
    assert_eq!(followed["local"], second.as_str());
    assert_eq!(followed["owned"], false);
    assert_eq!(followed["published"]["found"], true);
    assert_eq!(followed["published"]["commit"], second.as_str());
    assert_eq!(followed["published"]["standing"], "up_to_date", "{stdout}");
    assert!(followed["published"]["peers"].as_u64().is_some());
    assert!(status["repository"].as_str().is_some());

    // A fetch that stays to seed says so, then what it uploaded.
    let out = run_xus(
        &[
            "--json",
            "fetch",
            seeding["magnet"].as_str().expect("magnet"),
            "--repo",
            dir.path().join("stayer").to_str().expect("utf8"),
            "--listen",
            "127.0.0.1:0",
            "--no-dht",
            "--seed-for",
            "1",
        ],
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (order, stayed) = events(&stdout);
    assert_eq!(
        &order[order.len() - 3..],
        ["fetched", "seeding_for", "uploaded"],
        "{stdout}"
    );
    assert_eq!(stayed["seeding_for"]["commit"], first.as_str());
    assert_eq!(stayed["seeding_for"]["seconds"], 1);
    assert!(stayed["uploaded"]["bytes"].as_u64().is_some());

    // The seed serves the update the new head lists, with its magnet.
    let served = loop {
        let update = wait_event(&seed_lines, "update", &mut seed_events);
        if update["from"] == first.as_str() {
            break update;
        }
    };
    assert_eq!(served["to"], second.as_str());
    assert_eq!(served["info_hash"], published["update"]["info_hash"]);
    assert!(
        served["magnet"]
            .as_str()
            .is_some_and(|m| m.starts_with("magnet:"))
    );

    // The seed's last word when stopped.
    let status = seed_guard.terminate(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "the seed stops cleanly"
    );
    let uploaded = wait_event(&seed_lines, "uploaded", &mut seed_events);
    assert!(
        uploaded["bytes"].as_u64().is_some_and(|b| b > 0),
        "the follower took from the seed"
    );
}

/// The events of a fetch with no peer but a webseed (the metadata and every
/// byte over HTTP), an address the dial policy refuses, and a second fetch
/// of a commit already here.
#[test]
fn webseed_refused_peer_and_already_have_events_parse() {
    const SIZE: usize = 1 << 20;
    let src = TestRepo::new();
    src.write("data.bin", noise(SIZE, 9));
    let commit = src.commit("one");
    let mut webseed = xus_command();
    webseed
        .args(["webseed", "--listen", "127.0.0.1:0", "--repo"])
        .arg(src.path())
        .arg("HEAD");
    let (_webseed, lines) = spawn_with_lines(webseed, "xus webseed");
    let url = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("xus webseed printed its URL");
        if let Some(url) = line.strip_prefix("webseed ") {
            break url.to_owned();
        }
    };
    let dst = tempfile::tempdir().expect("tempdir");
    let written = dst.path().join("c.torrent");
    let out = run_xus(
        &[
            "torrent",
            "--json",
            "--repo",
            src.path().to_str().expect("utf8"),
            "--output",
            written.to_str().expect("utf8"),
        ],
        Duration::from_secs(60),
    );
    let (_, made) = events(&String::from_utf8_lossy(&out.stdout));
    let ih = made["torrent"]["info_hash"]
        .as_str()
        .expect("info_hash")
        .to_owned();
    let magnet = format!("magnet:?xt=urn:btih:{ih}&dn={commit}&ws={url}&x.pe=224.0.0.1:6881");
    let repo = dst.path().join("r");
    let fetch = || {
        let out = run_xus(
            &[
                "--json",
                "fetch",
                &magnet,
                "--no-dht",
                "--repo",
                repo.to_str().expect("utf8"),
                "--listen",
                "127.0.0.1:0",
            ],
            Duration::from_secs(120),
        );
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let stdout = fetch();
    let (_, first) = events(&stdout);
    assert_eq!(first["not_dialled"]["what"], "224.0.0.1:6881", "{stdout}");
    assert!(
        first["not_dialled"]["why"]
            .as_str()
            .is_some_and(|w| !w.is_empty())
    );
    assert_eq!(
        first["metadata_from_webseed"]["info_hash"],
        ih.as_str(),
        "{stdout}"
    );
    assert!(
        first["metadata_from_webseed"]["url"]
            .as_str()
            .is_some_and(|u| u.starts_with(&url))
    );
    assert_eq!(first["webseeds_only"]["count"], 1, "{stdout}");
    assert_eq!(first["webseed_bytes"]["bytes"], SIZE, "{stdout}");
    assert_eq!(first["webseed_bytes"]["http_errors"], 0);
    assert_eq!(first["transferred"]["webseed"], SIZE);
    assert_eq!(first["fetched"]["commit"], commit.as_str());
    assert_fsck_clean(&repo);

    let stdout = fetch();
    let (order, again) = events(&stdout);
    assert_eq!(again["already_have"]["commit"], commit.as_str(), "{stdout}");
    assert!(
        !order.contains(&"plan".to_owned()),
        "nothing planned: {stdout}"
    );
    assert_eq!(order.last().map(String::as_str), Some("fetched"));
}
