//! Drivers for stock BitTorrent clients (libtorrent, aria2c, Transmission) on loopback.
//!
//! Every client is confined to 127.0.0.1: DHT, local peer discovery, peer
//! exchange, UPnP and NAT-PMP are off, uTP is off (it stalls on loopback for
//! Transmission), and no torrent carries a tracker. A client that is not
//! installed fails the test with the Debian package to install; nothing is
//! skipped. Each process is a [`ChildGuard`], killed when dropped, and every
//! wait has a deadline whose panic message carries the client's own log.
//!
//! Facts these drivers rely on (see `/work/shared/INTEROP.md` and the notes
//! at each client): Transmission 3.00 never dials 127.0.0.0/8 peers and aria2c
//! takes no peer address, so a seeder has to dial them; libtorrent takes
//! peers from `x.pe` in a magnet or from the command line.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::ChildGuard;

/// How long a client may take to start and report that it is ready.
pub const STARTUP: Duration = Duration::from_secs(30);

/// The interpreter python3-libtorrent is installed for (Debian's; another
/// `python3` first on PATH cannot import it).
pub const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// The libtorrent driver script.
pub fn lt_driver() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers/lt_peer.py")
}

/// The full path of `program` on PATH, or a panic naming the Debian package
/// that provides it.
pub fn require_program(program: &str, package: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| {
            std::fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
        .unwrap_or_else(|| {
            panic!(
                "{program} not found on PATH: install Debian package {package} \
                 (apt-get install {package}); this test does not skip"
            )
        })
}

/// Panics unless `/usr/bin/python3` can import libtorrent.
pub fn require_libtorrent() {
    let out = Command::new(SYSTEM_PYTHON)
        .args(["-c", "import libtorrent; print(libtorrent.__version__)"])
        .output();
    match out {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "python3-libtorrent cannot be imported by {SYSTEM_PYTHON}: install Debian package \
             python3-libtorrent (apt-get install python3-libtorrent); this test does not skip\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "{SYSTEM_PYTHON} cannot run ({e}): install Debian packages python3 and \
             python3-libtorrent; this test does not skip"
        ),
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0 and
/// released), for clients that must be told their port.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// The last `lines` lines of a log file, for failure messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            format!(
                "--- last {} lines of {} ---\n{}",
                all.len() - start,
                path.display(),
                all[start..].join("\n")
            )
        }
        Err(e) => format!("--- {} unreadable: {e} ---", path.display()),
    }
}

/// A file to send a child's output to.
fn log_file(path: &Path) -> Stdio {
    Stdio::from(File::create(path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display())))
}

/// Lines a child writes to stdout, read by a thread, with everything seen so
/// far kept for failure messages.
pub struct Lines {
    what: String,
    rx: Receiver<String>,
    /// Every line received so far.
    pub seen: Vec<String>,
}

impl Lines {
    /// Starts reading `stream` line by line.
    pub fn new(what: &str, stream: impl Read + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            what: what.to_owned(),
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits up to `timeout` for a line `f` accepts and returns what it made
    /// of it; panics on timeout or end of output, showing the lines seen and
    /// `context()` (typically a log tail).
    pub fn expect<T>(
        &mut self,
        waiting_for: &str,
        timeout: Duration,
        context: impl Fn() -> String,
        mut f: impl FnMut(&str) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let why = match self.rx.recv_timeout(left) {
                Ok(line) => {
                    let found = f(&line);
                    self.seen.push(line);
                    match found {
                        Some(v) => return v,
                        None => continue,
                    }
                }
                Err(RecvTimeoutError::Timeout) => format!("nothing within {timeout:?}"),
                Err(RecvTimeoutError::Disconnected) => "its output ended".to_owned(),
            };
            panic!(
                "{} never printed {waiting_for} ({why})\n--- its stdout ---\n{}\n{}",
                self.what,
                self.seen.join("\n"),
                context()
            );
        }
    }

    /// Takes whatever has arrived without waiting.
    pub fn drain(&mut self) {
        while let Ok(line) = self.rx.try_recv() {
            self.seen.push(line);
        }
    }
}

/// Waits up to `timeout` for `guard` to exit; panics with `context()` when it
/// does not.
pub fn wait_exit(
    guard: &mut ChildGuard,
    timeout: Duration,
    context: impl Fn() -> String,
) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = guard.child.try_wait().expect("polling a child") {
            return status;
        }
        if Instant::now() > deadline {
            panic!(
                "{} did not finish within {timeout:?}\n{}",
                guard.name,
                context()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a command to completion under a timeout (killing it past the
/// deadline) and returns its output.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    let what = format!("{cmd:?}");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {what}: {e}"));
    let mut guard = ChildGuard {
        child,
        name: what.clone(),
    };
    // Read both pipes on threads so a chatty child cannot block on a full pipe.
    let mut stdout = guard.child.stdout.take().expect("stdout");
    let mut stderr = guard.child.stderr.take().expect("stderr");
    let out_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let status = wait_exit(&mut guard, timeout, String::new);
    Output {
        status,
        stdout: out_thread.join().unwrap_or_default(),
        stderr: err_thread.join().unwrap_or_default(),
    }
}

// ---------------------------------------------------------------------------
// libtorrent (python3-libtorrent 2.0, through tests/drivers/lt_peer.py)
// ---------------------------------------------------------------------------

/// What libtorrent downloads.
pub enum LtSource<'a> {
    /// A `.torrent` file.
    Torrent(&'a Path),
    /// A magnet link (libtorrent dials its `x.pe` peers).
    Magnet(&'a str),
}

/// A running libtorrent session with one torrent.
pub struct Libtorrent {
    pub guard: ChildGuard,
    pub lines: Lines,
    /// Where it accepts peers.
    pub addr: SocketAddr,
    /// Its stderr (alerts and progress).
    pub log: PathBuf,
}

impl Libtorrent {
    fn spawn(mode: &str, args: &[String], log: &Path) -> Self {
        Self::spawn_in(
            Command::new(SYSTEM_PYTHON),
            Ipv4Addr::LOCALHOST,
            mode,
            args,
            log,
        )
    }

    /// Runs the driver through `python` (the system Python, maybe inside a
    /// namespace), accepting peers on `ip`.
    fn spawn_in(
        mut python: Command,
        ip: Ipv4Addr,
        mode: &str,
        args: &[String],
        log: &Path,
    ) -> Self {
        require_libtorrent();
        let driver = lt_driver();
        assert!(
            driver.is_file(),
            "libtorrent driver {} is missing",
            driver.display()
        );
        let mut child = python
            .arg(&driver)
            .arg(mode)
            .args(args)
            // The driver gives up by itself well after any test's deadline.
            .args(["--timeout", "600"])
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file(log))
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {SYSTEM_PYTHON} {}: {e}", driver.display()));
        let stdout = child.stdout.take().expect("stdout");
        let guard = ChildGuard {
            child,
            name: format!("libtorrent {mode}"),
        };
        let mut lines = Lines::new(&format!("libtorrent {mode}"), stdout);
        let log_path = log.to_owned();
        let port: u16 = lines.expect(
            "its `listening <port>` line",
            STARTUP,
            || log_tail(&log_path, 40),
            |l| {
                l.strip_prefix("listening ")
                    .and_then(|p| p.trim().parse().ok())
            },
        );
        Self {
            guard,
            lines,
            addr: SocketAddr::from((ip, port)),
            log: log.to_owned(),
        }
    }

    /// Starts downloading `magnet` inside `ns` on `ip`, finding peers only
    /// by local service discovery (BEP 14): no DHT, no peer given.
    pub fn download_by_lsd(
        ns: &super::netns::NetNs,
        ip: Ipv4Addr,
        save: &Path,
        magnet: &str,
        log: &Path,
    ) -> Self {
        let args = [
            "--save".to_owned(),
            save.display().to_string(),
            "--magnet".into(),
            magnet.to_owned(),
            "--listen".into(),
            ip.to_string(),
            "--lsd".into(),
        ];
        Self::spawn_in(ns.command(SYSTEM_PYTHON), ip, "download", &args, log)
    }

    /// Starts downloading `source` into `save` (files land in
    /// `save/<torrent name>/`), dialing `peers` as well.
    pub fn download(save: &Path, source: LtSource<'_>, peers: &[SocketAddr], log: &Path) -> Self {
        Self::download_with(save, source, peers, log, &[])
    }

    /// [`Libtorrent::download`] speaking uTP (BEP 29) only: TCP is off both
    /// ways, so every byte crosses a uTP connection.
    pub fn download_utp_only(save: &Path, source: LtSource<'_>, log: &Path) -> Self {
        Self::download_with(save, source, &[], log, &["--utp-only"])
    }

    fn download_with(
        save: &Path,
        source: LtSource<'_>,
        peers: &[SocketAddr],
        log: &Path,
        extra: &[&str],
    ) -> Self {
        let mut args = vec!["--save".to_owned(), save.display().to_string()];
        args.extend(extra.iter().map(|a| a.to_string()));
        match source {
            LtSource::Torrent(t) => args.extend(["--torrent".into(), t.display().to_string()]),
            LtSource::Magnet(m) => args.extend(["--magnet".into(), m.to_owned()]),
        }
        for p in peers {
            args.extend(["--peer".into(), p.to_string()]);
        }
        Self::spawn("download", &args, log)
    }

    /// Seeds `torrent` from files already under `save/<torrent name>/`, and
    /// returns once libtorrent has checked every piece.
    pub fn seed(save: &Path, torrent: &Path, log: &Path) -> Self {
        let args = vec![
            "--save".to_owned(),
            save.display().to_string(),
            "--torrent".into(),
            torrent.display().to_string(),
        ];
        let mut lt = Self::spawn("seed", &args, log);
        let log_path = lt.log.clone();
        lt.lines.expect(
            "`seeding <infohash>` (every piece of the checkout verified)",
            STARTUP,
            || log_tail(&log_path, 40),
            |l| l.strip_prefix("seeding ").map(str::to_owned),
        );
        lt
    }

    /// Waits until every piece is downloaded, verified and flushed; returns
    /// the infohash libtorrent reports.
    pub fn wait_finished(&mut self, timeout: Duration) -> String {
        self.wait_finished_with_transports(timeout).0
    }

    /// [`Libtorrent::wait_finished`], also returning how many peers it saw
    /// over TCP and over uTP.
    pub fn wait_finished_with_transports(&mut self, timeout: Duration) -> (String, (u32, u32)) {
        let log_path = self.log.clone();
        let transports = self.lines.expect(
            "`transports tcp=<n> utp=<n>`",
            timeout,
            || log_tail(&log_path, 60),
            |l| {
                assert!(
                    !l.starts_with("error "),
                    "libtorrent driver: {l}\n{}",
                    log_tail(&log_path, 60)
                );
                let rest = l.strip_prefix("transports tcp=")?;
                let (tcp, utp) = rest.split_once(" utp=")?;
                Some((tcp.trim().parse().ok()?, utp.trim().parse().ok()?))
            },
        );
        let ih = self.lines.expect(
            "`finished <infohash>`",
            timeout,
            || log_tail(&log_path, 60),
            |l| {
                assert!(
                    !l.starts_with("error "),
                    "libtorrent driver: {l}\n{}",
                    log_tail(&log_path, 60)
                );
                l.strip_prefix("finished ").map(str::to_owned)
            },
        );
        let status = wait_exit(&mut self.guard, Duration::from_secs(20), || {
            log_tail(&log_path, 20)
        });
        assert!(
            status.success(),
            "libtorrent driver exited with {status}\n{}",
            log_tail(&self.log, 40)
        );
        (ih, transports)
    }

    /// The driver's log, for failure messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log, 60)
    }
}

// ---------------------------------------------------------------------------
// aria2c
// ---------------------------------------------------------------------------

/// A running `aria2c` downloading one `.torrent`. aria2c takes no peer
/// address and ignores `x.pe`: a seeder must dial [`Aria2::addr`].
pub struct Aria2 {
    pub guard: ChildGuard,
    pub lines: Lines,
    /// Where it accepts peers.
    pub addr: SocketAddr,
    /// Its own log (`--log`, level info).
    pub log: PathBuf,
}

impl Aria2 {
    /// Starts `aria2c` on `torrent`, saving under `dir` (files land in
    /// `dir/<torrent name>/`); returns once aria2c reports it is listening
    /// for peers, which it does only after the torrent is set up.
    pub fn download(torrent: &Path, dir: &Path, log: &Path) -> Self {
        Self::start(torrent, dir, log, &["--seed-time=0"])
    }

    /// Starts `aria2c` seeding whatever is in `dir/<torrent name>/` without
    /// checking it (`--bt-seed-unverified`): with altered files, a real
    /// client that sends bad pieces.
    pub fn seed_unverified(torrent: &Path, dir: &Path, log: &Path) -> Self {
        Self::start(
            torrent,
            dir,
            log,
            &[
                "--bt-seed-unverified=true",
                "--check-integrity=false",
                "--seed-ratio=0.0",
            ],
        )
    }

    fn start(torrent: &Path, dir: &Path, log: &Path, mode_args: &[&str]) -> Self {
        let program = require_program("aria2c", "aria2");
        let port = free_port();
        let mut child = Command::new(program)
            .args([
                "--no-conf=true",
                "--enable-color=false",
                "--console-log-level=notice",
                "--summary-interval=0",
                "--show-console-readout=false",
                "--log-level=info",
                "--interface=127.0.0.1",
                "--disable-ipv6=true",
                "--enable-dht=false",
                "--enable-dht6=false",
                "--bt-enable-lpd=false",
                "--enable-peer-exchange=false",
                "--bt-exclude-tracker=*",
                "--bt-save-metadata=false",
                "--file-allocation=none",
                "--auto-file-renaming=false",
            ])
            .arg(format!("--log={}", log.display()))
            .arg(format!("--listen-port={port}"))
            .arg(format!("--dir={}", dir.display()))
            .args(mode_args)
            .arg(format!("--torrent-file={}", torrent.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file(&log.with_extension("stderr")))
            .spawn()
            .unwrap_or_else(|e| panic!("spawning aria2c: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let guard = ChildGuard {
            child,
            name: "aria2c".into(),
        };
        let mut lines = Lines::new("aria2c", stdout);
        let log_path = log.to_owned();
        let reported: u16 = lines.expect(
            "`IPv4 BitTorrent: listening on TCP port N`",
            STARTUP,
            || log_tail(&log_path, 40),
            |l| {
                l.split_once("IPv4 BitTorrent: listening on TCP port ")
                    .and_then(|(_, p)| p.trim().parse().ok())
            },
        );
        assert_eq!(
            reported, port,
            "aria2c listens on another port than --listen-port"
        );
        Self {
            guard,
            lines,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log: log.to_owned(),
        }
    }

    /// Waits for aria2c to finish the download and exit (it stops seeding at
    /// once with `--seed-time=0`); panics unless it exits 0.
    pub fn wait_success(&mut self, timeout: Duration) {
        let log_path = self.log.clone();
        let status = wait_exit(&mut self.guard, timeout, || log_tail(&log_path, 60));
        // Give the reader thread a moment to pass on the final lines.
        std::thread::sleep(Duration::from_millis(100));
        self.lines.drain();
        assert!(
            status.success(),
            "aria2c exited with {status}\n--- its stdout ---\n{}\n{}",
            self.lines.seen.join("\n"),
            log_tail(&self.log, 60)
        );
        assert!(
            self.lines
                .seen
                .iter()
                .any(|l| l.contains("Download complete")),
            "aria2c exited 0 without `Download complete`:\n{}",
            self.lines.seen.join("\n")
        );
    }
}

// ---------------------------------------------------------------------------
// Transmission 3.00 (transmission-daemon driven by transmission-remote)
// ---------------------------------------------------------------------------

/// A running `transmission-daemon` with a loopback-only configuration, or
/// one inside a test's network namespace ([`TransmissionNet`]).
/// Transmission never dials 127.0.0.0/8 peers: on loopback a seeder must dial
/// [`Transmission::peer_addr`].
pub struct Transmission {
    pub guard: ChildGuard,
    remote: PathBuf,
    /// The namespace it runs in (`transmission-remote` runs there too).
    netns: Option<String>,
    /// `127.0.0.1:<rpc port>`, as transmission-remote wants it.
    pub rpc: String,
    /// Where it accepts peers.
    pub peer_addr: SocketAddr,
    /// The daemon's log (stderr in the foreground).
    pub log: PathBuf,
}

/// Where a [`Transmission`] runs: its address, its namespace, and the DHT
/// nodes it starts from (none: the DHT is off).
pub struct TransmissionNet<'a> {
    /// Peer address and RPC address.
    pub bind: std::net::Ipv4Addr,
    /// The namespace to run in (required for any DHT: Transmission's
    /// default bootstrap hosts are public).
    pub netns: Option<&'a super::netns::NetNs>,
    /// DHT nodes written to its `dht.dat`, the only ones it knows.
    pub dht_nodes: &'a [std::net::SocketAddrV4],
}

impl Transmission {
    /// Writes `root/config/settings.json` and starts the daemon on
    /// loopback, DHT off; returns once its log reports the peer port bound
    /// and its RPC answers.
    pub fn start(root: &Path) -> Self {
        Self::start_in(
            root,
            TransmissionNet {
                bind: std::net::Ipv4Addr::LOCALHOST,
                netns: None,
                dht_nodes: &[],
            },
        )
    }

    /// [`Transmission::start`] where `net` says.
    pub fn start_in(root: &Path, net: TransmissionNet<'_>) -> Self {
        let daemon = require_program("transmission-daemon", "transmission-daemon");
        let remote = require_program("transmission-remote", "transmission-cli");
        assert!(
            net.dht_nodes.is_empty() || net.netns.is_some(),
            "Transmission's DHT bootstraps from public hosts: run it in a test namespace"
        );
        let config = root.join("config");
        let default_dir = root.join("default-downloads");
        std::fs::create_dir_all(&config).expect("mkdir config");
        std::fs::create_dir_all(&default_dir).expect("mkdir downloads");
        let peer_port = free_port();
        let rpc_port = free_port();
        let dht = !net.dht_nodes.is_empty();
        if dht {
            // dht.dat: `d2:id20:<id>5:nodes<6n>:<compact IPv4 nodes>e`.
            let mut nodes = Vec::new();
            for node in net.dht_nodes {
                nodes.extend_from_slice(&node.ip().octets());
                nodes.extend_from_slice(&node.port().to_be_bytes());
            }
            let mut dat = b"d2:id20:".to_vec();
            dat.extend_from_slice(b"transmission-test-id");
            dat.extend_from_slice(format!("5:nodes{}:", nodes.len()).as_bytes());
            dat.extend_from_slice(&nodes);
            dat.push(b'e');
            std::fs::write(config.join("dht.dat"), dat).expect("writing dht.dat");
        }
        let bind = net.bind;
        let settings = format!(
            r#"{{
    "bind-address-ipv4": "{bind}",
    "bind-address-ipv6": "::1",
    "blocklist-enabled": false,
    "cache-size-mb": 0,
    "dht-enabled": {dht},
    "download-dir": "{dir}",
    "encryption": 0,
    "incomplete-dir": "{dir}",
    "incomplete-dir-enabled": false,
    "lpd-enabled": false,
    "message-level": 3,
    "peer-port": {peer_port},
    "peer-port-random-on-start": false,
    "pex-enabled": false,
    "port-forwarding-enabled": false,
    "rename-partial-files": false,
    "rpc-authentication-required": false,
    "rpc-bind-address": "{bind}",
    "rpc-enabled": true,
    "rpc-host-whitelist-enabled": false,
    "rpc-port": {rpc_port},
    "rpc-whitelist": "127.0.0.1,{bind}",
    "rpc-whitelist-enabled": true,
    "script-torrent-done-enabled": false,
    "speed-limit-down-enabled": false,
    "speed-limit-up-enabled": false,
    "start-added-torrents": true,
    "utp-enabled": false,
    "watch-dir-enabled": false
}}
"#,
            dir = json_string(&default_dir),
        );
        std::fs::write(config.join("settings.json"), settings).expect("writing settings.json");
        let log = root.join("transmission-daemon.log");
        let mut command = match net.netns {
            Some(ns) => ns.command(&daemon),
            None => Command::new(&daemon),
        };
        let child = command
            .arg("-f")
            .arg("-g")
            .arg(&config)
            .env("HOME", root)
            .stdin(Stdio::null())
            .stdout(log_file(&root.join("transmission-daemon.stdout")))
            .stderr(log_file(&log))
            .spawn()
            .unwrap_or_else(|e| panic!("spawning transmission-daemon: {e}"));
        let mut tr = Self {
            guard: ChildGuard {
                child,
                name: "transmission-daemon".into(),
            },
            remote,
            netns: net.netns.map(|ns| ns.name().to_owned()),
            rpc: format!("{bind}:{rpc_port}"),
            peer_addr: SocketAddr::from((bind, peer_port)),
            log,
        };
        // The daemon's own report that it holds the peer port.
        let bound = format!("to port {peer_port} on {bind}");
        tr.wait_until("the peer port bound", STARTUP, |tr| {
            let text = std::fs::read_to_string(&tr.log).unwrap_or_default();
            assert!(
                !text.contains("Couldn't bind port"),
                "transmission-daemon could not bind its ports\n{}",
                tr.log_tail()
            );
            text.contains(&bound).then_some(())
        });
        tr.wait_until("its RPC to answer", STARTUP, |tr| {
            tr.try_remote(&["-si"]).ok().map(|_| ())
        });
        tr
    }

    /// Runs `transmission-remote <rpc> ARGS`, returning stdout or the error.
    pub fn try_remote(&self, args: &[&str]) -> Result<String, String> {
        let mut command = match &self.netns {
            Some(name) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", name]).arg(&self.remote);
                command
            }
            None => Command::new(&self.remote),
        };
        let out = run_with_timeout(command.arg(&self.rpc).args(args), Duration::from_secs(20));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        // transmission-remote exits 0 on some RPC failures: look at stderr too.
        if out.status.success() && !stderr.contains("Error") {
            Ok(stdout)
        } else {
            Err(format!(
                "transmission-remote {args:?} failed ({})\n{stdout}{stderr}",
                out.status
            ))
        }
    }

    /// Like [`Self::try_remote`], panicking on failure.
    pub fn remote(&self, args: &[&str]) -> String {
        self.try_remote(args)
            .unwrap_or_else(|e| panic!("{e}\n{}", self.log_tail()))
    }

    /// Adds `torrent`, downloading into `dir` (files land in
    /// `dir/<torrent name>/`), and waits until Transmission has checked the
    /// (absent) local data and is ready for peers.
    pub fn add(&mut self, torrent: &Path, dir: &Path, info_hash: &str) {
        let out = self.remote(&[
            "-a",
            torrent.to_str().expect("utf8 path"),
            "-w",
            dir.to_str().expect("utf8 path"),
        ]);
        assert!(
            out.contains("success"),
            "Transmission refused {}: {out}\n{}",
            torrent.display(),
            self.log_tail()
        );
        self.wait_until("the torrent to leave verification", STARTUP, |tr| {
            let state = tr.state(info_hash);
            (!state.contains("Verif") && !state.is_empty()).then_some(())
        });
    }

    /// Adds a magnet link (metadata from peers, BEP 9), downloading into
    /// `dir`.
    pub fn add_magnet(&mut self, magnet: &str, dir: &Path) {
        let out = self.remote(&["-a", magnet, "-w", dir.to_str().expect("utf8 path")]);
        assert!(
            out.contains("success"),
            "Transmission refused {magnet}: {out}\n{}",
            self.log_tail()
        );
    }

    /// `transmission-remote -t IH -i`.
    pub fn info(&self, info_hash: &str) -> String {
        self.remote(&["-t", info_hash, "-i"])
    }

    /// The `State:` line of a torrent (empty when there is none).
    pub fn state(&self, info_hash: &str) -> String {
        field(&self.info(info_hash), "State:")
    }

    /// Waits until the torrent is 100 % done.
    pub fn wait_complete(&mut self, info_hash: &str, timeout: Duration) {
        self.wait_until("the download to reach 100%", timeout, |tr| {
            let info = tr.info(info_hash);
            assert!(
                field(&info, "Error:").is_empty(),
                "Transmission reports an error:\n{info}\n{}",
                tr.log_tail()
            );
            (field(&info, "Percent Done:") == "100%").then_some(())
        });
    }

    /// Stops a torrent (closing and flushing its files) and waits until it is stopped.
    pub fn stop(&mut self, info_hash: &str) {
        self.remote(&["-t", info_hash, "-S"]);
        self.wait_until("the torrent to stop", STARTUP, |tr| {
            (tr.state(info_hash) == "Stopped").then_some(())
        });
    }

    /// Polls `f` every 500 ms until it returns `Some`; panics after `timeout`
    /// with every torrent's details and the daemon's log.
    pub fn wait_until<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&Self) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f(self) {
                return v;
            }
            if let Ok(Some(status)) = self.guard.child.try_wait() {
                panic!(
                    "transmission-daemon exited ({status}) while waiting for {what}\n{}",
                    self.log_tail()
                );
            }
            if Instant::now() > deadline {
                let info = self.try_remote(&["-t", "all", "-i"]).unwrap_or_else(|e| e);
                panic!(
                    "Transmission: timed out after {timeout:?} waiting for {what}\n{info}\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The daemon's log, for failure messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log, 60)
    }
}

impl Drop for Transmission {
    fn drop(&mut self) {
        // A clean exit writes its resume files; the guard kills it otherwise.
        let _ = self.guard.terminate(Duration::from_secs(5));
    }
}

/// The value after `label` on the first line that starts with it (trimmed).
fn field(info: &str, label: &str) -> String {
    info.lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .map(|v| v.trim().to_owned())
        .unwrap_or_default()
}

/// A path as a JSON string body (escaping `\` and `"`).
fn json_string(path: &Path) -> String {
    path.display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}

// ---------------------------------------------------------------------------
// qBittorrent 4.5 (qbittorrent-nox; its torrents given on the command line)
// ---------------------------------------------------------------------------

/// A running `qbittorrent-nox` in a test's network namespace, DHT on, LSD and
/// PEX off, downloading the magnet links it was started with. Its DHT is
/// libtorrent's with qBittorrent's settings: one routing-table entry per
/// /24 and one search result per IP, and public bootstrap hosts (unreachable
/// in the namespace); the magnet's `dht=` entries are its way in.
pub struct QBittorrent {
    pub guard: ChildGuard,
    /// Its log (stdout and stderr).
    pub log: PathBuf,
}

impl QBittorrent {
    /// Writes `root/qBittorrent/config/qBittorrent.conf` (peers on `bind`,
    /// downloads into `save`) and starts it with `magnets` to download.
    pub fn start_in(
        root: &Path,
        netns: &super::netns::NetNs,
        bind: std::net::Ipv4Addr,
        save: &Path,
        magnets: &[String],
    ) -> Self {
        let program = require_program("qbittorrent-nox", "qbittorrent-nox");
        let config = root.join("qBittorrent").join("config");
        std::fs::create_dir_all(&config).expect("mkdir qBittorrent config");
        let save = save.to_str().expect("utf8 path");
        let settings = format!(
            "[LegalNotice]\nAccepted=true\n\n\
             [BitTorrent]\n\
             Session\\DHTEnabled=true\n\
             Session\\LSDEnabled=false\n\
             Session\\PeXEnabled=false\n\
             Session\\InterfaceAddress={bind}\n\
             Session\\Port={port}\n\
             Session\\DefaultSavePath={save}\n\
             Session\\AnonymousModeEnabled=false\n\n\
             [Preferences]\n\
             Connection\\UPnP=false\n\
             WebUI\\Address=127.0.0.1\n\
             WebUI\\LocalHostAuth=false\n",
            port = free_port(),
        );
        std::fs::write(config.join("qBittorrent.conf"), settings)
            .expect("writing qBittorrent.conf");
        let log = root.join("qbittorrent.log");
        let child = netns
            .command(program)
            .arg(format!("--profile={}", root.display()))
            .arg(format!("--save-path={save}"))
            .arg("--skip-dialog=true")
            .args(magnets)
            .env("HOME", root)
            .stdin(Stdio::null())
            .stdout(log_file(&log))
            .stderr(log_file(&root.join("qbittorrent.stderr")))
            .spawn()
            .unwrap_or_else(|e| panic!("spawning qbittorrent-nox: {e}"));
        Self {
            guard: ChildGuard {
                child,
                name: "qbittorrent-nox".into(),
            },
            log,
        }
    }

    /// Its logs, for failure messages (qBittorrent also keeps one under its
    /// profile: `qBittorrent/data/logs/qbittorrent.log`).
    pub fn log_tail(&self, root: &Path) -> String {
        format!(
            "{}\n{}",
            log_tail(&self.log, 20),
            log_tail(&root.join("qBittorrent/data/logs/qbittorrent.log"), 40)
        )
    }
}
