//! Pins what the stock BitTorrent clients CI installs (libtorrent 2.0 through
//! python3-libtorrent, Transmission 3.00, aria2c 1.36, qbittorrent-nox 4.5)
//! write to disk for BEP 47 symlink entries (`attr: l`, `symlink path`) of a
//! v1 torrent seeded on 127.0.0.1:
//!
//! - libtorrent and qBittorrent create real symlinks, a target given relative
//!   to the torrent's root rewritten relative to the link's directory
//!   (`dir/link-up` -> `../a.txt`); a target escaping the torrent
//!   (`["..", "..", "etc", "passwd"]`) becomes a link to itself;
//! - aria2c writes a 0-byte regular file in place of each link;
//! - Transmission creates nothing for them (nor for any 0-byte file);
//! - none of them writes outside its download directory.
//!
//! xus's commit-torrent format does not carry Git symlinks as BEP 47 entries
//! because of these facts (docs/FORMAT.md, "Symlinks and BEP 47"). When a
//! Debian update of a client changes one of them this test fails: revisit
//! that decision, then update the expectations here.
//!
//! Driver: `tests/drivers/bep47_clients.py`, run by `/usr/bin/python3`. A
//! client that is not installed fails the test; nothing is skipped.

mod util;

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use util::clients::{SYSTEM_PYTHON, log_tail, require_libtorrent, require_program};

/// The clients the driver runs, in its order.
const CLIENTS: [&str; 4] = ["libtorrent", "transmission", "aria2", "qbittorrent"];

/// The driver's torrents: `good` (links to a file of the torrent) and `evil`
/// (a link whose target climbs out of the torrent).
const TORRENTS: [&str; 2] = ["good", "evil"];

/// Seconds one download may take in the driver (each took under 15 s).
const DOWNLOAD_TIMEOUT_S: u64 = 60;

/// Seconds the driver gives the whole run before failing by itself (it took
/// about a minute).
const DRIVER_DEADLINE_S: u64 = 600;

/// This test's own deadline for the driver, past the driver's.
const DEADLINE: Duration = Duration::from_secs(DRIVER_DEADLINE_S + 60);

/// What a client left at one path of a torrent.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Seen {
    /// A regular file with the torrent's bytes (this many).
    Data(u64),
    /// A regular 0-byte file where the torrent has a symlink.
    FileForLink,
    /// A symlink with this target, as `readlink` shows it, resolving inside
    /// the download directory.
    Link(&'static str),
    /// Nothing.
    Missing,
}

/// What `client` left for each entry of torrent `torrent`, as measured with
/// the Debian 12 packages.
fn expected(client: &str, torrent: &str) -> Vec<(&'static str, Seen)> {
    use Seen::*;
    let link = |target: &'static str| match client {
        "libtorrent" | "qbittorrent" => Link(target),
        "aria2" => FileForLink,
        "transmission" => Missing,
        other => panic!("no expectation for client {other}"),
    };
    // The 0-byte regular file: Transmission never creates 0-length files.
    let empty = if client == "transmission" {
        Missing
    } else {
        Data(0)
    };
    match torrent {
        "good" => vec![
            ("a.txt", Data(6)),
            ("dir/b.bin", Data(40_960)),
            ("dir/empty", empty),
            // `symlink path: ["a.txt"]`, relative to the torrent's root.
            ("dir/link-up", link("../a.txt")),
            ("link-to-a", link("a.txt")),
        ],
        // `symlink path: ["..", "..", "etc", "passwd"]`.
        "evil" => vec![
            ("a.txt", Data(6)),
            ("dir/b.bin", Data(40_960)),
            ("evil", link("evil")),
        ],
        other => panic!("no expectation for torrent {other}"),
    }
}

/// The driver's name for what is at a path (its `dl_tree` values), or None
/// for nothing.
fn tree_value(seen: Seen) -> Option<String> {
    match seen {
        Seen::Data(size) => Some(format!("file:{size}")),
        Seen::FileForLink => Some("file:0".into()),
        Seen::Link(target) => Some(format!("symlink->{target}")),
        Seen::Missing => None,
    }
}

/// The whole download directory `client` should leave: the torrent's
/// directory, the entries it creates and their parent directories, nothing
/// else.
fn expected_tree(name: &str, entries: &[(&str, Seen)]) -> BTreeMap<String, String> {
    let mut tree = BTreeMap::from([(name.to_owned(), "dir".to_owned())]);
    for (path, seen) in entries {
        let Some(value) = tree_value(*seen) else {
            continue;
        };
        let mut dir = Path::new(path).parent();
        while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
            tree.insert(format!("{name}/{}", d.display()), "dir".into());
            dir = d.parent();
        }
        tree.insert(format!("{name}/{path}"), value);
    }
    tree
}

/// Whether the driver's observation of one entry is `seen`.
fn matches(observed: &Value, seen: Seen) -> bool {
    let kind = observed["kind"].as_str();
    match seen {
        Seen::Data(size) => {
            kind == Some("file")
                && observed["size"].as_u64() == Some(size)
                && observed["content_ok"] == Value::Bool(true)
        }
        Seen::FileForLink => kind == Some("file") && observed["size"].as_u64() == Some(0),
        Seen::Link(target) => {
            kind == Some("symlink")
                && observed["target"].as_str() == Some(target)
                && observed["resolves_inside_dl"] == Value::Bool(true)
        }
        Seen::Missing => kind == Some("missing"),
    }
}

/// Every way `record` (the driver's result for one client and torrent)
/// differs from what the format decision assumes.
fn check(client: &str, torrent: &str, record: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let entries = expected(client, torrent);
    if record["completed"] != Value::Bool(true) {
        problems.push(format!(
            "did not complete the download: final state {}, errors {}",
            record["final_state"], record["errors"]
        ));
    }
    let observed = record["entries"].as_object().cloned().unwrap_or_default();
    for (path, seen) in &entries {
        let got = observed.get(*path).cloned().unwrap_or(Value::Null);
        if !matches(&got, *seen) {
            problems.push(format!("{path}: expected {seen:?}, observed {got}"));
        }
    }
    let name = record["name"].as_str().unwrap_or("?");
    let want_tree = expected_tree(name, &entries);
    let got_tree: BTreeMap<String, String> = record["dl_tree"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("?").to_owned()))
                .collect()
        })
        .unwrap_or_default();
    if got_tree != want_tree {
        problems.push(format!(
            "download directory differs:\n  expected {want_tree:?}\n  observed {got_tree:?}"
        ));
    }
    if record["created_outside_dl"]
        .as_object()
        .is_none_or(|m| !m.is_empty())
    {
        problems.push(format!(
            "created something outside its download directory: {}",
            record["created_outside_dl"]
        ));
    }
    if record["etc_passwd_changed"] != Value::Bool(false) {
        problems.push(format!(
            "/etc/passwd changed during the download (etc_passwd_changed = {})",
            record["etc_passwd_changed"]
        ));
    }
    problems
}

/// One line for the summary: what each entry became.
fn describe(record: &Value) -> String {
    let entries = record["entries"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(path, o)| match o["kind"].as_str() {
                    Some("symlink") => format!("{path} -> {}", o["target"].as_str().unwrap_or("?")),
                    Some("file") => format!("{path} file({})", o["size"]),
                    Some(kind) => format!("{path} {kind}"),
                    None => format!("{path} ?"),
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    format!(
        "{} {} s{} [{entries}]",
        record["torrent"].as_str().unwrap_or("?"),
        record["seconds"],
        if record["completed"] == Value::Bool(true) {
            ""
        } else {
            " INCOMPLETE"
        }
    )
}

/// The driver in its own process group: on drop, a driver still running is
/// sent SIGTERM (it then stops every client it started) and, if still
/// running after a grace period, killed; any process left in its group is
/// killed by pid.
struct Driver {
    child: Child,
    pgid: u32,
}

impl Driver {
    /// Waits up to `timeout` for the driver to exit.
    fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("polling the driver") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the driver if it is still running, then kills whatever is left
    /// in its process group; returns what was left.
    fn stop(&mut self) -> Vec<String> {
        if self.wait(Duration::ZERO).is_none() {
            let pid = self.child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            if self.wait(Duration::from_secs(30)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        let left = group_members(self.pgid);
        for (pid, _) in &left {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        left.into_iter()
            .map(|(pid, cmd)| format!("{pid} {cmd}"))
            .collect()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The live processes of process group `pgid` (pid, command line).
fn group_members(pgid: u32) -> Vec<(u32, String)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // After the command name in parentheses: state, ppid, pgrp, ...
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() < 3 || fields[0] == "Z" || fields[2] != pgid.to_string() {
            continue;
        }
        let cmd = std::fs::read(entry.path().join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        out.push((pid, cmd.trim().to_owned()));
    }
    out
}

/// Runs the driver in `work` under [`DEADLINE`] and returns its stdout;
/// panics, with its stderr, unless it succeeded and left no process behind.
fn run_driver(work: &Path) -> String {
    let driver: PathBuf =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers/bep47_clients.py");
    assert!(driver.is_file(), "driver {} is missing", driver.display());
    let stderr_path = work.join("driver.stderr");
    let stderr = std::fs::File::create(&stderr_path).expect("creating the driver's stderr file");
    let child = Command::new(SYSTEM_PYTHON)
        .arg(&driver)
        .arg(work.join("run"))
        .env("PYTHONUNBUFFERED", "1")
        .env("BEP47_CLIENTS", CLIENTS.join(","))
        .env("BEP47_TIMEOUT", DOWNLOAD_TIMEOUT_S.to_string())
        .env("BEP47_DEADLINE", DRIVER_DEADLINE_S.to_string())
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {SYSTEM_PYTHON} {}: {e}", driver.display()));
    let pgid = child.id();
    let mut driver_proc = Driver { child, pgid };
    let mut stdout = driver_proc.child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let status = driver_proc.wait(DEADLINE);
    let left = driver_proc.stop();
    let out = String::from_utf8_lossy(&reader.join().unwrap_or_default()).into_owned();
    let status = status.unwrap_or_else(|| {
        panic!(
            "the driver did not finish within {DEADLINE:?}\n--- stdout ---\n{out}\n{}",
            log_tail(&stderr_path, 60)
        )
    });
    assert!(
        status.success(),
        "the driver failed ({status})\n--- stdout ---\n{out}\n{}",
        log_tail(&stderr_path, 60)
    );
    assert!(
        left.is_empty(),
        "the driver left processes running (now killed): {left:?}"
    );
    out
}

#[test]
fn stock_clients_handle_bep47_symlinks_as_the_format_decision_assumes() {
    let started = Instant::now();
    require_libtorrent();
    for (program, package) in [
        ("transmission-daemon", "transmission-daemon"),
        ("aria2c", "aria2"),
        ("qbittorrent-nox", "qbittorrent-nox"),
    ] {
        require_program(program, package);
    }
    let work = tempfile::tempdir().expect("tempdir");
    let out = run_driver(work.path());

    let records: Vec<Value> = out
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("driver line {l}: {e}")))
        .collect();
    let versions = records
        .iter()
        .find(|r| r["kind"] == "env")
        .map(|r| r["versions"].clone())
        .unwrap_or(Value::Null);
    let result = |client: &str, torrent: &str| {
        records
            .iter()
            .find(|r| r["kind"] == "result" && r["client"] == client && r["torrent"] == torrent)
    };

    let mut problems = Vec::new();
    let mut summary = Vec::new();
    for client in CLIENTS {
        let mut line = Vec::new();
        for torrent in TORRENTS {
            let Some(record) = result(client, torrent) else {
                problems.push(format!(
                    "{client} / {torrent}: the driver printed no result"
                ));
                continue;
            };
            let found = check(client, torrent, record);
            if !found.is_empty() {
                problems.push(format!(
                    "{client} / {torrent}:\n  - {}\n  observation: {record}",
                    found.join("\n  - ")
                ));
            }
            line.push(describe(record));
        }
        summary.push(format!("{client}: {}", line.join("; ")));
    }
    assert!(
        problems.is_empty(),
        "stock clients no longer handle BEP 47 symlinks the way docs/FORMAT.md \
         (\"Symlinks and BEP 47\") assumes; revisit that decision, then this test.\n\
         versions: {versions}\n\n{}",
        problems.join("\n\n")
    );

    eprintln!("BEP 47 symlinks in stock clients (versions: {versions}):");
    for line in summary {
        eprintln!("  {line}");
    }
    eprintln!(
        "stock_symlinks: all as expected in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
