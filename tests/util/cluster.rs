//! A topic master cluster for end-to-end tests: a private DHT, the owner's
//! topic, two backup remotes (a bare repository on disk and one behind
//! `git http-backend`), the master as its own process, and writers with
//! their own keys and repositories.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::dht::{DhtNet, Machine, read_lines};
use super::git_http::GitHttpServer;
use super::*;

pub const STEP: Duration = Duration::from_secs(180);

/// A writer: its own xus home (with a writer key) and its own repository.
pub struct Writer {
    pub machine: Machine,
    pub key: String,
    pub repo: PathBuf,
    pub _dir: tempfile::TempDir,
}

impl Writer {
    pub fn new(repo_from: Option<&Path>) -> Self {
        let machine = Machine::new();
        let out = run_xus_with(machine.xus().args(["writer", "new"]), STEP);
        assert!(out.status.success(), "writer new: {}", text(&out.stderr));
        let key = text(&out.stdout).trim().to_owned();
        assert_eq!(key.len(), 64, "a public key in hex: {key:?}");
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo");
        match repo_from {
            Some(from) => {
                let status = std::process::Command::new("cp")
                    .arg("-a")
                    .arg(from)
                    .arg(&repo)
                    .status()
                    .expect("cp");
                assert!(status.success(), "copying the repository");
            }
            None => {
                std::fs::create_dir_all(&repo).expect("mkdir");
                git(&repo, &["init", "-q", "-b", "main"]);
            }
        }
        Self {
            machine,
            key,
            repo,
            _dir: dir,
        }
    }

    pub fn write(&self, rel: &str, data: impl AsRef<[u8]>) {
        let path = self.repo.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, data).expect("write");
    }

    pub fn commit(&self, message: &str) -> String {
        git(&self.repo, &["add", "-A"]);
        git(&self.repo, &["commit", "-q", "-m", message]);
        git(&self.repo, &["rev-parse", "HEAD"])
    }

    pub fn push_command(&self, master: &str) -> std::process::Command {
        let mut command = self.machine.xus();
        command.args([
            "push",
            "--master",
            master,
            "--branch",
            "main",
            "--listen",
            "127.0.0.1:0",
            "--repo",
        ]);
        command.arg(&self.repo);
        command
    }

    pub fn push(&self, master: &str) -> Output {
        run_xus_with(&mut self.push_command(master), STEP)
    }
}

/// Everything a master needs, and the master process once started.
pub struct Cluster {
    pub net: DhtNet,
    pub dir: tempfile::TempDir,
    pub owner: Machine,
    pub topic: String,
    pub http_port: u16,
    pub git_http: GitHttpServer,
    pub file_backup: PathBuf,
    pub http_backup: String,
    pub master: Option<RunningMaster>,
}

pub struct RunningMaster {
    pub guard: ChildGuard,
    /// Held so that the master's stdout stays open while it runs.
    pub _lines: mpsc::Receiver<String>,
    pub log: PathBuf,
    /// What it printed before it was ready.
    pub startup: Vec<String>,
}

impl Cluster {
    pub fn new(writers: &[&Writer]) -> Self {
        let net = DhtNet::start(16);
        let dir = tempfile::tempdir().expect("tempdir");
        let owner = Machine::new();
        let topic = owner.new_topic("world");
        let secret = owner.path().join("topics").join("world.secret");
        let http_root = dir.path().join("http-repos");
        std::fs::create_dir_all(&http_root).expect("mkdir");
        git(&http_root, &["init", "-q", "--bare", "world.git"]);
        git(
            &http_root.join("world.git"),
            &["config", "http.receivepack", "true"],
        );
        let git_http = GitHttpServer::start(&http_root);
        let http_backup = git_http.url("world.git");
        let file_backup = dir.path().join("backup-disk").join("world.git");
        let http_port = free_port();
        let writers: Vec<String> = writers.iter().map(|w| format!("\"{}\"", w.key)).collect();
        let config = format!(
            r#"data_dir = "data"

[listen]
bittorrent = "127.0.0.1:0"
http = "127.0.0.1:{http_port}"

[dht]
bootstrap = ["{bootstrap}"]
bind = "127.0.0.1"
request_timeout_ms = 300

[limits]
backup_wait_secs = 20
backup_retry_max_secs = 2

[[topic]]
name = "world"
secret_file = "{secret}"
writers = [{writers}]
backups = ["{file_backup}", "{http_backup}"]
"#,
            bootstrap = net.bootstrap(),
            secret = secret.display(),
            writers = writers.join(", "),
            file_backup = file_backup.display(),
        );
        std::fs::write(dir.path().join("master.toml"), config).expect("config");
        Self {
            net,
            dir,
            owner,
            topic,
            http_port,
            git_http,
            file_backup,
            http_backup,
            master: None,
        }
    }

    /// Adds a line under `[limits]` (before the master starts).
    pub fn limit(&self, line: &str) {
        let text = std::fs::read_to_string(self.config()).expect("config");
        let text = text.replace("[limits]\n", &format!("[limits]\n{line}\n"));
        std::fs::write(self.config(), text).expect("config");
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("master.toml")
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data").join("world.git")
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.http_port)
    }

    /// Starts the master and waits for `master http ...`.
    pub fn start_master(&mut self) {
        assert!(self.master.is_none(), "master already running");
        let log = self.dir.path().join(format!(
            "master-{}.log",
            Instant::now().elapsed().as_nanos()
        ));
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut child = self
            .owner
            .xus()
            .args(["master", "--config"])
            .arg(self.config())
            .env("XUS_LOG", "info,librqbit=warn")
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("spawning xus master");
        let stdout = child.stdout.take().expect("stdout");
        let guard = ChildGuard {
            child,
            name: "xus master".into(),
        };
        let lines = read_lines(stdout);
        let mut startup = Vec::new();
        let deadline = Instant::now() + STEP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "the master did not get ready; printed {startup:?}\nlog:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
            let ready = line.starts_with("master http ");
            startup.push(line);
            if ready {
                break;
            }
        }
        self.master = Some(RunningMaster {
            guard,
            _lines: lines,
            log,
            startup,
        });
    }

    pub fn master_log(&self) -> String {
        self.master
            .as_ref()
            .map(|m| std::fs::read_to_string(&m.log).unwrap_or_default())
            .unwrap_or_default()
    }

    pub fn stop_master(&mut self) {
        if let Some(mut master) = self.master.take() {
            let status = master.guard.terminate(Duration::from_secs(30));
            assert!(
                status.is_some_and(|s| s.success()),
                "the master did not stop cleanly on SIGTERM: {status:?}"
            );
        }
    }

    pub fn kill_master(&mut self) {
        if let Some(mut master) = self.master.take() {
            let _ = master.guard.child.kill();
            let _ = master.guard.child.wait();
        }
    }

    /// `xus master status` as text.
    pub fn status(&self) -> String {
        let out = run_xus_with(
            self.owner
                .xus()
                .args(["master", "status", "--config"])
                .arg(self.config()),
            STEP,
        );
        assert!(out.status.success(), "status: {}", text(&out.stderr));
        text(&out.stdout)
    }

    /// `GET /status` as JSON.
    pub fn status_json(&self) -> serde_json::Value {
        let out = run_xus_with(
            self.owner
                .xus()
                .args(["master", "status", "--json", "--config"])
                .arg(self.config()),
            STEP,
        );
        assert!(out.status.success(), "status: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("status JSON")
    }

    /// A new machine fetches `xus://topic/main` through the DHT alone.
    pub fn fetch_fresh(&self) -> (String, tempfile::TempDir) {
        let machine = Machine::new();
        let repo = tempfile::tempdir().expect("tempdir");
        let head = format!("xus://{}/main", self.topic);
        let out = run_xus_with(
            machine
                .xus()
                .args(["fetch", &head, "--bare", "--repo"])
                .arg(repo.path())
                .args(self.net.flags()),
            STEP,
        );
        assert!(
            out.status.success(),
            "fetch {head}: {}\nmaster log:\n{}",
            text(&out.stderr),
            self.master_log()
        );
        let commit = text(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("fetched "))
            .and_then(|l| l.split_whitespace().next())
            .map(str::to_owned)
            .expect("a fetched line");
        assert_fsck_clean(repo.path());
        (commit, repo)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_master();
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `git rev-parse` in a bare repository; `None` when the ref is missing.
pub fn rev(git_dir: &Path, name: &str) -> Option<String> {
    let out = git_output(git_dir, &["rev-parse", "--verify", "-q", name]);
    out.status
        .success()
        .then(|| text(&out.stdout).trim().to_owned())
}

pub fn refs_under(git_dir: &Path, prefix: &str) -> Vec<String> {
    git(
        git_dir,
        &["for-each-ref", "--format=%(refname) %(objectname)", prefix],
    )
    .lines()
    .map(str::to_owned)
    .collect()
}

pub fn ls_remote(url: &str) -> String {
    let out = std::process::Command::new("git")
        .args(["ls-remote", url])
        .output()
        .expect("git ls-remote");
    assert!(
        out.status.success(),
        "ls-remote {url}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// `pushed <topic>/<branch> <commit> seq <n>` → commit.
pub fn pushed(out: &Output) -> String {
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "push failed\nstdout: {stdout}\nstderr: {}",
        text(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("pushed "))
        .unwrap_or_else(|| panic!("no pushed line in {stdout:?}"));
    line.split_whitespace().nth(2).expect("commit").to_owned()
}
