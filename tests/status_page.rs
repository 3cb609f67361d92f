//! The master's status page (issue 17 item 1) as a browser shows it: a
//! running master after a push, its `GET /` rendered by headless Chromium
//! (Debian's chromium-headless-shell). The DOM Chromium builds must hold a
//! section per topic and a row per branch, backup remote and push, each
//! number equal to `/status`'s; the page must work without JavaScript and
//! reload itself. A screenshot is kept in `target/test-artifacts/`.

mod util;

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use util::cluster::*;
use util::http_get;

/// Debian's headless Chromium.
const CHROMIUM: &str = "/usr/bin/chromium-headless-shell";

/// Runs headless Chromium on `url` with `args` and returns its stdout.
/// (Headless Chromium reads the DOM and takes screenshots through the
/// page's script engine, so it cannot turn JavaScript off; the page has no
/// script at all, which the test checks in its raw text.)
fn chromium(url: &str, args: &[&str]) -> String {
    let profile = tempfile::tempdir().expect("profile");
    let out = Command::new(CHROMIUM)
        .args(["--headless", "--no-sandbox", "--disable-gpu"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("{CHROMIUM} (chromium-headless-shell): {e}"));
    assert!(
        out.status.success(),
        "chromium failed: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The element that starts with `opening` (exactly), up to its closing tag
/// `</tag>`.
fn element<'a>(dom: &'a str, opening: &str, tag: &str) -> &'a str {
    let start = dom
        .find(opening)
        .unwrap_or_else(|| panic!("no {opening} in the page:\n{dom}"));
    let end = dom[start..]
        .find(&format!("</{tag}>"))
        .unwrap_or_else(|| panic!("{opening} is not closed"));
    &dom[start..start + end]
}

/// The `data-value` of the cell of class `class` in `row`.
fn value_of<'a>(row: &'a str, class: &str) -> &'a str {
    let marker = format!("class=\"{class}\" data-value=\"");
    let start = row
        .find(&marker)
        .unwrap_or_else(|| panic!("no {class} cell in {row}"))
        + marker.len();
    let end = row[start..].find('"').expect("attribute end");
    &row[start..start + end]
}

fn number(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[test]
fn the_status_page_shows_what_status_says_in_headless_chromium() {
    let writer = Writer::new(None);
    writer.write("README", "a status page\n");
    let commit = writer.commit("one");
    let mut cluster = Cluster::new(&[&writer]);
    cluster.start_master();
    assert_eq!(pushed(&writer.push(&cluster.url())), commit);

    let (code, _, raw) = http_get(&cluster.url());
    assert_eq!(code, 200, "{raw}");
    assert!(
        raw.contains("<meta http-equiv=\"refresh\""),
        "the page reloads itself"
    );
    assert!(!raw.contains("<script"), "no script");
    assert!(!raw.contains("src=\"http"), "no external resource");

    let dom = chromium(&cluster.url(), &["--dump-dom"]);
    let (_, _, status) = http_get(&format!("{}status", cluster.url()));
    let status: Value = serde_json::from_str(&status).expect("status JSON");

    let topics = status["topics"].as_array().expect("topics");
    assert!(!topics.is_empty());
    for topic in topics {
        let name = topic["name"].as_str().expect("name");
        let id = topic["id"].as_str().expect("id");
        let section = element(
            &dom,
            &format!("<section class=\"topic\" data-topic=\"{name}\" data-id=\"{id}\">"),
            "section",
        );
        let branches = topic["branches"].as_array().expect("branches");
        assert!(!branches.is_empty());
        for branch in branches {
            let row = element(
                section,
                &format!(
                    "<tr class=\"branch\" data-branch=\"{}\">",
                    branch["name"].as_str().expect("name")
                ),
                "tr",
            );
            assert!(
                row.contains(branch["commit"].as_str().expect("commit")),
                "{row}"
            );
            assert_eq!(value_of(row, "seq num"), number(&branch["seq"]), "{row}");
            assert!(branch["seq"].is_i64(), "the head was published");
            let age: i64 = value_of(row, "age num").parse().expect("an age");
            let commit_time = branch["commit_time"].as_i64().expect("commit_time");
            let expected = status["time"].as_i64().expect("time") - commit_time;
            assert!(
                (age - expected).abs() <= 60,
                "age {age}, /status {expected}"
            );
        }
        let backups = topic["backups"].as_array().expect("backups");
        assert_eq!(backups.len(), 2);
        for remote in backups {
            let row = element(
                section,
                &format!(
                    "<tr class=\"backup\" data-remote=\"{}\">",
                    remote["url"].as_str().expect("url")
                ),
                "tr",
            );
            assert_eq!(
                value_of(row, "refs-behind num"),
                number(&remote["refs_behind"])
            );
            assert_eq!(
                value_of(row, "commits-behind num"),
                number(&remote["commits_behind"])
            );
            assert_eq!(
                value_of(row, "last-success"),
                number(&remote["last_success"])
            );
            assert!(row.contains("in sync"), "{row}");
        }
    }

    for field in ["uploaded_bytes", "downloaded_bytes", "peers"] {
        let cell = element(
            &dom,
            &format!("<td class=\"num\" data-field=\"{field}\""),
            "td",
        );
        let shown = cell
            .split("data-value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("data-value");
        let key = if field == "peers" {
            field
        } else {
            &field[..field.len() - 6]
        };
        assert_eq!(shown, number(&status["swarm"][key]), "{field}");
    }
    assert!(
        status["swarm"]["downloaded"].as_u64().expect("downloaded") > 0,
        "the master downloaded the push"
    );

    // The last hour's upload: a sample at start and one now in /status, a
    // line per series on the page, each rate bounded by what was sent.
    let history = status["upload_history"].as_array().expect("upload_history");
    assert!(history.len() >= 2, "{history:?}");
    let last = history.last().expect("now");
    assert_eq!(last["time"], status["time"]);
    assert_eq!(last["peers"], status["swarm"]["uploaded"]);
    assert_eq!(last["webseed"], status["webseed_sent_bytes"]);
    assert!(
        history
            .windows(2)
            .all(|w| w[0]["time"].as_u64() < w[1]["time"].as_u64())
    );
    let chart = element(&dom, "<svg id=\"upload-chart\"", "svg");
    let uploaded = status["swarm"]["uploaded"].as_u64().expect("uploaded");
    for series in ["peers", "webseed"] {
        let line = chart
            .split(&format!("data-series=\"{series}\" data-rates=\""))
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no {series} line in {chart}"));
        let rates: Vec<u64> = line
            .split_whitespace()
            .map(|r| r.parse().expect("a rate"))
            .collect();
        assert!(!rates.is_empty(), "{chart}");
        if series == "peers" {
            assert!(rates.iter().all(|&r| r <= uploaded), "{rates:?} {uploaded}");
        }
    }

    let pushes = element(&dom, "<table class=\"pushes\">", "table");
    let row = element(pushes, "<tr class=\"push\" data-result=\"accepted\">", "tr");
    assert!(row.contains(&commit), "{row}");
    assert!(row.contains(&writer.key), "{row}");
    let recent = status["recent_pushes"].as_array().expect("recent_pushes");
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0]["writer"].as_str(), Some(writer.key.as_str()));

    let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    let shot = artifacts.join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &cluster.url(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,1400",
            "--hide-scrollbars",
        ],
    );
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    eprintln!("screenshot: {}", shot.display());
}
