//! `GET /metrics` (issue 17 item 2) as Prometheus reads it: the text is
//! parsed by the Prometheus Python client's strict OpenMetrics parser
//! (`tests/drivers/openmetrics.py`, Debian's python3-prometheus-client),
//! and its values are checked against what happened: a push, a fetch, the
//! master's own `/status`, the bytes of the commit.

mod util;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use util::clients::SYSTEM_PYTHON;
use util::cluster::*;
use util::*;

/// One sample as the parser reports it.
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// The samples of one scrape.
struct Scrape(Vec<Sample>);

impl Scrape {
    /// The sample `name{labels}` (exactly those labels).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?} in the scrape"))
    }

    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut wanted: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        wanted.sort();
        self.0
            .iter()
            .find(|s| s.name == name && s.labels == wanted)
            .map(|s| s.value)
    }

    /// The sum of every `name` sample whose labels include `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
            })
            .map(|s| s.value)
            .sum()
    }

    fn has_family(&self, prefix: &str) -> bool {
        self.0.iter().any(|s| s.name.starts_with(prefix))
    }
}

/// Scrapes `url` and parses the text strictly, as Prometheus would.
fn scrape(url: &str) -> Scrape {
    let (status, content_type, body) = http_get(url);
    assert_eq!(status, 200, "{body}");
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{content_type}"
    );
    let driver = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/drivers/openmetrics.py");
    let mut parser = Command::new(SYSTEM_PYTHON)
        .arg(driver)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (python3-prometheus-client)");
    parser
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("feeding the parser");
    let out = parser.wait_with_output().expect("parser");
    assert!(
        out.status.success(),
        "the OpenMetrics parser refused the text:\n{}\n{body}",
        text(&out.stderr)
    );
    let samples: Vec<Value> = serde_json::from_slice(&out.stdout).expect("samples");
    Scrape(
        samples
            .into_iter()
            .map(|s| {
                let mut labels: Vec<(String, String)> = s["labels"]
                    .as_object()
                    .expect("labels")
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().expect("label").to_owned()))
                    .collect();
                labels.sort();
                Sample {
                    name: s["name"].as_str().expect("name").to_owned(),
                    labels,
                    value: s["value"].as_f64().expect("value"),
                }
            })
            .collect(),
    )
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// Bytes of the commit's files.
const DATA: usize = 300_000;

#[test]
fn a_master_reports_pushes_backups_traffic_and_the_dht() {
    let writer = Writer::new(None);
    writer.write("data.bin", noise(DATA, 7));
    let commit = writer.commit("one");
    let mut cluster = Cluster::new(&[&writer]);
    cluster.start_master();
    let url = format!("{}metrics", cluster.url());

    let start = scrape(&url);
    for result in [
        "accepted",
        "already",
        "contained",
        "not_fast_forward",
        "refused",
        "invalid",
        "failed",
    ] {
        assert_eq!(
            start.value("xus_pushes_total", &[("result", result)]),
            0.0,
            "{result}"
        );
    }

    assert_eq!(pushed(&writer.push(&cluster.url())), commit);
    let pushed_once = scrape(&url);
    assert_eq!(
        pushed_once.value("xus_pushes_total", &[("result", "accepted")]),
        1.0
    );
    assert!(
        pushed_once.value("xus_downloaded_bytes_total", &[("source", "peers")]) >= DATA as f64,
        "the master downloaded the push from the writer"
    );
    assert!(pushed_once.value("xus_head_publishes_total", &[("result", "ok")]) >= 1.0);
    assert_eq!(
        pushed_once.value("xus_head_publishes_total", &[("result", "failed")]),
        0.0
    );
    // Every DHT operation counted once, in its outcome and in its histogram.
    let head_puts = pushed_once.sum("xus_dht_operations_total", &[("kind", "head_put")]);
    assert!(
        pushed_once.value(
            "xus_dht_operations_total",
            &[("kind", "head_put"), ("outcome", "stored")]
        ) >= 1.0
    );
    assert_eq!(
        pushed_once.value(
            "xus_dht_operation_duration_seconds_count",
            &[("kind", "head_put")]
        ),
        head_puts
    );
    assert!(
        pushed_once.value(
            "xus_dht_operation_duration_seconds_sum",
            &[("kind", "head_put")]
        ) > 0.0
    );

    // The backup rows are /status's remotes, in sync.
    let status = cluster.status_json();
    let remotes = status["topics"][0]["backups"].as_array().expect("backups");
    assert_eq!(remotes.len(), 2, "{status}");
    for remote in remotes {
        let remote = remote["url"].as_str().expect("url");
        let labels = [("topic", "world"), ("remote", remote)];
        assert_eq!(pushed_once.value("xus_backup_refs_behind", &labels), 0.0);
        assert_eq!(pushed_once.value("xus_backup_commits_behind", &labels), 0.0);
        assert_eq!(pushed_once.value("xus_backup_lag_seconds", &labels), 0.0);
        assert_eq!(pushed_once.value("xus_backup_failing", &labels), 0.0);
        let success = pushed_once.value("xus_backup_last_success_timestamp_seconds", &labels);
        assert!((now() - success).abs() < 600.0, "last success at {success}");
    }

    // A fresh reader fetches the commit from the master alone: the master
    // sent it (to peers or as a webseed), and /status's byte count is the
    // same counter.
    let sent_before = pushed_once.sum("xus_uploaded_bytes_total", &[]);
    let (fetched, _reader) = cluster.fetch_fresh();
    assert_eq!(fetched, commit);
    let before_status = scrape(&url);
    let status = cluster.status_json();
    let after_status = scrape(&url);
    let sent = before_status.sum("xus_uploaded_bytes_total", &[]) - sent_before;
    assert!(
        sent >= DATA as f64,
        "the master sent {sent} bytes for a {DATA}-byte commit"
    );
    let from_status = status["uploaded_bytes"].as_f64().expect("uploaded_bytes");
    let peers = |s: &Scrape| s.value("xus_uploaded_bytes_total", &[("source", "peers")]);
    assert!(
        peers(&before_status) <= from_status && from_status <= peers(&after_status),
        "/status says {from_status} bytes uploaded, /metrics {} then {}",
        peers(&before_status),
        peers(&after_status)
    );
    assert!(after_status.find("xus_peers", &[]).is_some());

    // The same push again: answered as already there.
    assert_eq!(pushed(&writer.push(&cluster.url())), commit);
    let again = scrape(&url);
    assert_eq!(
        again.value("xus_pushes_total", &[("result", "already")]),
        1.0
    );
    assert_eq!(
        again.value("xus_pushes_total", &[("result", "accepted")]),
        1.0
    );
}

#[test]
fn a_seed_serves_metrics_on_its_own_address() {
    let src = TestRepo::new();
    src.write("data.bin", noise(DATA, 11));
    src.commit("one");
    let seeder = spawn_seed(src.path(), &["--metrics-listen", "127.0.0.1:0"]);
    let url = seeder
        .printed
        .iter()
        .find_map(|l| l.strip_prefix("metrics "))
        .unwrap_or_else(|| panic!("no metrics line in {:?}", seeder.printed))
        .to_owned();
    let start = scrape(&url);
    assert_eq!(start.sum("xus_uploaded_bytes_total", &[]), 0.0);
    assert!(
        !start.has_family("xus_pushes"),
        "a seed answers no pushes, so it shows none"
    );

    let dst = tempfile::tempdir().expect("tempdir");
    let repo = dst.path().join("r");
    let out = run_xus(
        &[
            "fetch",
            &seeder.seeded[0].magnet,
            "--repo",
            repo.to_str().expect("utf8"),
            "--listen",
            "127.0.0.1:0",
        ],
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_fsck_clean(&repo);
    let after = scrape(&url);
    let sent = after.value("xus_uploaded_bytes_total", &[("source", "peers")]);
    assert!(
        sent >= DATA as f64,
        "the seed sent {sent} bytes for a {DATA}-byte commit"
    );

    let (status, _, _) = http_get(&url.replace("/metrics", "/status"));
    assert_eq!(status, 404, "the metrics address serves nothing else");
}
