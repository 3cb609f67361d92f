//! Shared helpers for end-to-end tests: real `xus` processes, real Git
//! repositories built with the git CLI, and comparisons that explain
//! themselves when they fail. Children are killed when their guard drops.

#![allow(dead_code)]

pub mod clients;
pub mod cluster;
pub mod dht;
pub mod fixtures;
pub mod git_http;
pub mod netns;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The `xus` binary under test.
pub fn xus_bin() -> &'static str {
    env!("CARGO_BIN_EXE_xus")
}

/// A `xus` command that can never leave loopback: the DHT guard is on (any
/// setting that would reach the public routers is an error), and xus's home
/// is a scratch directory of this test process unless the caller sets
/// `XUS_HOME` itself.
pub fn xus_command() -> Command {
    let mut command = Command::new(xus_bin());
    command
        .env("XUS_LOOPBACK_ONLY", "1")
        .env("XUS_HOME", scratch_home());
    command
}

/// The default `XUS_HOME` of this test process.
fn scratch_home() -> PathBuf {
    static HOME: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    HOME.get_or_init(|| tempfile::tempdir().expect("scratch XUS_HOME"))
        .path()
        .to_owned()
}

/// A child process killed (and reaped) on drop.
pub struct ChildGuard {
    pub child: Child,
    pub name: String,
}

impl ChildGuard {
    /// Sends SIGTERM and waits up to `timeout` for a clean exit.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `git` in `dir` with a fixed identity and clock, panicking on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_output(dir, args);
    assert!(
        out.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs `git` and returns its whole output.
pub fn git_output(dir: &Path, args: &[&str]) -> Output {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Test Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.invalid")
        .env("GIT_COMMITTER_NAME", "Test Committer")
        .env("GIT_COMMITTER_EMAIL", "committer@example.invalid")
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("running git")
}

/// Deterministic incompressible bytes, different for each `seed`: file
/// contents that neither zstd nor a delta can shrink.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// A fresh repository in a temporary directory.
pub struct TestRepo {
    pub dir: tempfile::TempDir,
}

impl TestRepo {
    /// `git init` in a new temporary directory.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        git(dir.path(), &["init", "-q", "-b", "main"]);
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file (creating parent directories).
    pub fn write(&self, rel: impl AsRef<Path>, data: impl AsRef<[u8]>) {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, data).expect("write");
    }

    /// `git add -A && git commit`, returning the commit id.
    pub fn commit(&self, message: &str) -> String {
        git(self.path(), &["add", "-A"]);
        git(
            self.path(),
            &["commit", "-q", "--allow-empty", "-m", message],
        );
        git(self.path(), &["rev-parse", "HEAD"])
    }
}

/// Runs `xus` to completion under a timeout.
pub fn run_xus(args: &[&str], timeout: Duration) -> Output {
    run_xus_with(xus_command().args(args), timeout)
}

/// Runs a prepared `xus` command (see [`xus_command`]) to completion under
/// a timeout.
pub fn run_xus_with(command: &mut Command, timeout: Duration) -> Output {
    let args: Vec<String> = command
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning xus");
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("collecting xus output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("collecting xus output");
            panic!(
                "xus {args:?} did not finish within {timeout:?}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `xus`, asserting success, returning stdout.
pub fn xus_ok(args: &[&str], timeout: Duration) -> String {
    let out = run_xus(args, timeout);
    assert!(
        out.status.success(),
        "xus {args:?} failed ({})\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One commit a `xus seed` process serves.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub commit: String,
    pub info_hash: String,
    pub magnet: String,
}

/// A running `xus seed`.
pub struct Seeder {
    pub guard: ChildGuard,
    pub addr: SocketAddr,
    pub seeded: Vec<Seeded>,
    /// Every line it printed up to its listening line.
    pub printed: Vec<String>,
}

/// Spawns `command` with its stdout piped; its lines arrive on the
/// receiver as it prints them.
pub fn spawn_with_lines(mut command: Command, name: &str) -> (ChildGuard, mpsc::Receiver<String>) {
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let guard = ChildGuard {
        child,
        name: name.into(),
    };
    (guard, rx)
}

/// Starts `xus seed --repo REPO --listen 127.0.0.1:0 EXTRA...` and waits for
/// its `listening` line. Off the DHT (`--no-dht`) unless EXTRA names a
/// `--bootstrap` node.
pub fn spawn_seed(repo: &Path, extra: &[&str]) -> Seeder {
    spawn_seed_with(xus_command(), repo, extra)
}

/// [`spawn_seed`] from a prepared command (to set `XUS_HOME`, say).
pub fn spawn_seed_with(command: Command, repo: &Path, extra: &[&str]) -> Seeder {
    spawn_seed_logging(command, repo, extra, Stdio::inherit())
}

/// [`spawn_seed_with`], its stderr sent to `stderr` (a log file to read).
pub fn spawn_seed_logging(
    mut command: Command,
    repo: &Path,
    extra: &[&str],
    stderr: impl Into<Stdio>,
) -> Seeder {
    let mut args = vec![
        "seed".to_owned(),
        "--repo".into(),
        repo.display().to_string(),
    ];
    if !extra.contains(&"--listen") {
        args.extend(["--listen".into(), "127.0.0.1:0".into()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    if !extra.contains(&"--bootstrap") {
        args.push("--no-dht".into());
    }
    command.args(&args).stderr(stderr);
    let (guard, rx) = spawn_with_lines(command, "xus seed");
    let mut seeded = Vec::new();
    let mut printed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("xus seed {args:?} never printed its listening line"));
        printed.push(line.clone());
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["seeding", commit, ih, magnet] => seeded.push(Seeded {
                commit: commit.to_string(),
                info_hash: ih.to_string(),
                magnet: magnet.to_string(),
            }),
            ["listening", addr] => {
                return Seeder {
                    guard,
                    addr: addr.parse().expect("listen address"),
                    seeded,
                    printed,
                };
            }
            _ => {}
        }
    }
}

/// The number after `label` in xus fetch's report, e.g. "123 bytes patched".
pub fn reported(stderr: &str, label: &str) -> u64 {
    stderr
        .split([',', ';', '\n'])
        .find(|part| part.contains(label))
        .and_then(|part| part.split_whitespace().find_map(|w| w.parse().ok()))
        .unwrap_or_else(|| panic!("no {label:?} in fetch report:\n{stderr}"))
}

/// Asserts `git fsck --full --strict` is clean.
pub fn assert_fsck_clean(repo: &Path) {
    let out = git_output(repo, &["fsck", "--full", "--strict", "--no-dangling"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !stdout.contains("error") && !stdout.contains("missing"),
        "git fsck failed in {}:\n{stdout}\n{stderr}",
        repo.display()
    );
}

/// Every file under `dir` (skipping `.git`), as relative path -> (bytes, executable).
/// Symlinks map to their target with a `symlink:` prefix.
pub fn tree_contents(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, bool)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let entry = entry.expect("entry");
            let path = entry.path();
            let rel = path.strip_prefix(dir).expect("prefix").to_owned();
            if rel == Path::new(".git") {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).expect("metadata");
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).expect("readlink");
                let mut bytes = b"symlink:".to_vec();
                bytes.extend_from_slice(target.as_os_str().as_encoded_bytes());
                out.insert(rel, (bytes, false));
            } else if meta.is_dir() {
                todo.push(path);
            } else {
                let exec = meta.permissions().mode() & 0o100 != 0;
                out.insert(rel, (std::fs::read(&path).expect("read"), exec));
            }
        }
    }
    out
}

/// The files `git archive REV` produces, extracted into a temporary directory.
pub fn git_archive(repo: &Path, rev: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let tar = dir.path().join("a.tar");
    git(repo, &["archive", "-o", tar.to_str().expect("utf8"), rev]);
    let status = Command::new("tar")
        .args(["-xf", "a.tar"])
        .current_dir(dir.path())
        .status()
        .expect("tar");
    assert!(status.success());
    std::fs::remove_file(&tar).expect("rm tar");
    dir
}

/// Asserts two directory trees hold the same files, listing the differences.
pub fn assert_same_files(expected: &Path, actual: &Path, check_exec: bool) {
    let a = tree_contents(expected);
    let b = tree_contents(actual);
    let mut problems = Vec::new();
    for (path, (data, exec)) in &a {
        match b.get(path) {
            None => problems.push(format!("missing {}", path.display())),
            Some((d, e)) if d != data => problems.push(format!(
                "content differs: {} ({} vs {} bytes)",
                path.display(),
                data.len(),
                d.len()
            )),
            Some((_, e)) if check_exec && e != exec => {
                problems.push(format!("exec bit differs: {}", path.display()))
            }
            _ => {}
        }
    }
    for path in b.keys() {
        if !a.contains_key(path) {
            problems.push(format!("unexpected {}", path.display()));
        }
    }
    assert!(
        problems.is_empty(),
        "{} vs {}:\n{}",
        expected.display(),
        actual.display(),
        problems.join("\n")
    );
}

/// Waits until `f` returns `Some`, polling, or panics after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `GET url` (`http://host:port/path`) over one HTTP/1.1 connection: the
/// status, the `Content-Type` and the body.
pub fn http_get(url: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (host, path) = rest.split_once('/').expect("a path");
    let mut stream = std::net::TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        stream,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("answer");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a header end");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let content_type = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    (status, content_type, body.to_owned())
}
