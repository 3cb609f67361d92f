//! A private DHT on 127.0.0.1 for end-to-end tests, and per-machine xus
//! homes. Every node here is bootstrapped from loopback only; every `xus`
//! process runs with the loopback guard on (see `xus_command`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{ChildGuard, xus_command};

/// Request timeout the test processes use: loopback answers in well under it.
pub const DHT_TIMEOUT_MS: &str = "300";

/// `xus dht serve --nodes N` on 127.0.0.1, killed on drop.
pub struct DhtNet {
    pub guard: ChildGuard,
    /// Every node's address.
    pub nodes: Vec<String>,
}

impl DhtNet {
    /// Starts `count` nodes on 127.0.0.1 that know each other and nobody else.
    pub fn start(count: usize) -> Self {
        Self::start_with(xus_command(), std::net::Ipv4Addr::LOCALHOST, count)
    }

    /// Starts `count` nodes on `bind` with `command` (a `xus` command, in a
    /// test's network namespace for any address but loopback).
    pub fn start_with(command: Command, bind: std::net::Ipv4Addr, count: usize) -> Self {
        Self::spawn(command, bind, count, None)
    }

    /// Like [`DhtNet::start_with`], the nodes joining an existing DHT
    /// through `bootstrap`.
    pub fn join_with(
        command: Command,
        bind: std::net::Ipv4Addr,
        count: usize,
        bootstrap: &str,
    ) -> Self {
        Self::spawn(command, bind, count, Some(bootstrap))
    }

    fn spawn(
        mut command: Command,
        bind: std::net::Ipv4Addr,
        count: usize,
        bootstrap: Option<&str>,
    ) -> Self {
        let prefix = format!("{bind}:");
        command.args([
            "dht",
            "serve",
            "--bind",
            &bind.to_string(),
            "--nodes",
            &count.to_string(),
        ]);
        if let Some(node) = bootstrap {
            command.args(["--bootstrap", node]);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning xus dht serve");
        let stdout = child.stdout.take().expect("stdout");
        let guard = ChildGuard {
            child,
            name: "xus dht serve".into(),
        };
        let lines = read_lines(stdout);
        let mut nodes = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while nodes.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines
                .recv_timeout(left)
                .expect("xus dht serve printed its nodes");
            if let Some(addr) = line.strip_prefix("dht ") {
                assert!(addr.starts_with(&prefix), "node off {bind}: {addr}");
                nodes.push(addr.to_string());
            }
        }
        Self { guard, nodes }
    }

    /// The node others join through.
    pub fn bootstrap(&self) -> &str {
        &self.nodes[0]
    }

    /// The DHT flags of a `xus` process joining this network.
    pub fn flags(&self) -> Vec<String> {
        vec![
            "--bootstrap".into(),
            self.bootstrap().to_string(),
            "--dht-bind".into(),
            "127.0.0.1".into(),
            "--dht-timeout-ms".into(),
            DHT_TIMEOUT_MS.into(),
        ]
    }
}

/// One machine's xus home (topics, seen heads), in a temp dir.
pub struct Machine {
    pub home: tempfile::TempDir,
}

impl Machine {
    pub fn new() -> Self {
        Self {
            home: tempfile::tempdir().expect("xus home"),
        }
    }

    pub fn path(&self) -> &Path {
        self.home.path()
    }

    /// A `xus` command running as this machine.
    pub fn xus(&self) -> Command {
        let mut command = xus_command();
        command.env("XUS_HOME", self.home.path());
        command
    }

    /// `xus topic new NAME`; returns the topic id.
    pub fn new_topic(&self, name: &str) -> String {
        let out = super::run_xus_with(
            self.xus().args(["topic", "new", name]),
            Duration::from_secs(30),
        );
        assert!(
            out.status.success(),
            "topic new: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let words: Vec<&str> = stdout.split_whitespace().collect();
        assert_eq!(words.first(), Some(&"topic"), "{stdout}");
        words[2].to_string()
    }

    /// The topic secret seed stored for NAME (tests that forge heads).
    pub fn topic_seed(&self, name: &str) -> [u8; 32] {
        let text =
            std::fs::read_to_string(self.path().join("topics").join(format!("{name}.secret")))
                .expect("topic secret");
        let bytes = hex(text.trim());
        bytes.try_into().expect("32-byte seed")
    }

    /// Where this machine stores the head it saw for a topic's branch.
    pub fn head_file(&self, topic: &str, branch: &str) -> PathBuf {
        let branch_hex = xus_codec::hex::encode(branch.as_bytes());
        self.path().join("heads").join(topic).join(branch_hex)
    }
}

/// Lines of a child's output, on a channel.
pub fn read_lines(stream: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Decodes the lowercase hex xus prints and stores, panicking on anything else.
pub fn hex(text: &str) -> Vec<u8> {
    xus_codec::hex::decode(text).unwrap_or_else(|e| panic!("hex {text:?}: {e}"))
}
