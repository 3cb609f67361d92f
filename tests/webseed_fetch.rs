//! `xus fetch` with webseeds: from the xus webseed alone (a `.torrent` with
//! a url-list, and a bare magnet with `ws=`), from nginx serving a checkout
//! in the `<commit>/<path>` layout (names that are not UTF-8 included).
//! Every piece still verifies; the commit must come out identical.

mod util;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use util::dht::read_lines;
use util::*;

const STEP: Duration = Duration::from_secs(120);

/// `xus webseed --listen 127.0.0.1:0 REV` on `repo`; returns its URL.
fn spawn_webseed(repo: &Path) -> (ChildGuard, String) {
    let mut child = xus_command()
        .args(["webseed", "--listen", "127.0.0.1:0", "--repo"])
        .arg(repo)
        .arg("HEAD")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawning xus webseed");
    let lines = read_lines(child.stdout.take().expect("stdout"));
    let guard = ChildGuard {
        child,
        name: "xus webseed".into(),
    };
    loop {
        let line = lines
            .recv_timeout(STEP)
            .expect("xus webseed printed its URL");
        if let Some(url) = line.strip_prefix("webseed ") {
            return (guard, url.to_string());
        }
    }
}

fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn sample_repo() -> (TestRepo, String) {
    let repo = TestRepo::new();
    repo.write("assets/big.bin", noise(3_000_000, 7));
    repo.write("assets/small.txt", "small\n");
    repo.write("name with spaces/é.txt", "accent\n");
    repo.write("empty", "");
    let commit = repo.commit("webseed sample");
    (repo, commit)
}

fn fetch(args: &[&str]) -> (String, String) {
    let out = run_xus(args, STEP);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success(),
        "xus {args:?} failed\nstdout: {stdout}\nstderr: {stderr}"
    );
    (stdout, stderr)
}

/// Bytes the fetch reports from webseeds.
fn webseed_bytes(stderr: &str) -> u64 {
    stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("downloaded ")?
                .strip_suffix(")")?
                .split_once(" bytes from webseeds")
        })
        .map(|(n, _)| n.parse().expect("byte count"))
        .unwrap_or(0)
}

fn check_clone(dest: &Path, source: &Path, commit: &str) {
    assert_eq!(git(dest, &["rev-parse", "refs/heads/main"]), commit);
    assert_fsck_clean(dest);
    assert_same_files(git_archive(source, commit).path(), dest, true);
}

#[test]
fn fetch_from_the_xus_webseed_alone() {
    let (repo, commit) = sample_repo();
    let (_server, url) = spawn_webseed(repo.path());
    let dir = tempfile::tempdir().expect("dir");
    let torrent = dir.path().join("c.torrent").display().to_string();
    let made = xus_ok(
        &[
            "torrent",
            "--repo",
            &repo.path().display().to_string(),
            "--webseed",
            &url,
            "-o",
            &torrent,
        ],
        STEP,
    );
    // A .torrent whose url-list names the webseed, no peer, no DHT.
    let dest = dir.path().join("a");
    let dest_s = dest.display().to_string();
    let (stdout, stderr) = fetch(&[
        "fetch",
        &torrent,
        "--no-dht",
        "--repo",
        &dest_s,
        "--branch",
        "main",
        "--checkout",
    ]);
    assert!(stdout.starts_with(&format!("fetched {commit}")), "{stdout}");
    assert!(webseed_bytes(&stderr) >= 3_000_000, "{stderr}");
    check_clone(&dest, repo.path(), &commit);

    // A bare magnet with ws=: the metadata comes from the webseed too.
    let magnet = made
        .lines()
        .find_map(|l| l.strip_prefix("magnet "))
        .expect("magnet line")
        .to_string();
    assert!(magnet.contains("&ws="), "{magnet}");
    let dest = dir.path().join("b");
    let dest_s = dest.display().to_string();
    let (stdout, _) = fetch(&[
        "fetch",
        &magnet,
        "--no-dht",
        "--repo",
        &dest_s,
        "--branch",
        "main",
        "--checkout",
    ]);
    assert!(stdout.starts_with(&format!("fetched {commit}")), "{stdout}");
    check_clone(&dest, repo.path(), &commit);
}

/// nginx from Debian serving a plain checkout laid out as `<commit>/<path>`,
/// the raw-file layout of Git hosts.
struct Nginx {
    guard: ChildGuard,
    url: String,
    _root: tempfile::TempDir,
}

impl Nginx {
    fn serve_checkout(repo: &Path, commit: &str) -> Self {
        let nginx = "/usr/sbin/nginx";
        assert!(
            Path::new(nginx).exists(),
            "nginx is missing: apt-get install nginx-light"
        );
        let root = tempfile::tempdir().expect("nginx root");
        let www = root.path().join("www");
        let tree = git_archive(repo, commit);
        std::fs::create_dir_all(&www).expect("www");
        let status = Command::new("cp")
            .arg("-a")
            .arg(tree.path())
            .arg(www.join(commit))
            .status()
            .expect("cp");
        assert!(status.success());
        // nginx workers run as an unprivileged user: let them read.
        let status = Command::new("chmod")
            .args(["-R", "a+rX"])
            .arg(root.path())
            .status()
            .expect("chmod");
        assert!(status.success());
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").expect("free port");
            l.local_addr().expect("addr").port()
        };
        let prefix = root.path().display();
        let conf = format!(
            "daemon off;\nworker_processes 1;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {prefix}/body;\n  proxy_temp_path {prefix}/proxy;\n\
             fastcgi_temp_path {prefix}/fastcgi;\n  uwsgi_temp_path {prefix}/uwsgi;\n  scgi_temp_path {prefix}/scgi;\n\
             server {{ listen 127.0.0.1:{port}; root {prefix}/www; }}\n}}\n"
        );
        let conf_path = root.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("nginx.conf");
        let child = Command::new(nginx)
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning nginx");
        let guard = ChildGuard {
            child,
            name: "nginx".into(),
        };
        let url = format!("http://127.0.0.1:{port}/");
        wait_for("nginx to listen", STEP, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Self {
            guard,
            url,
            _root: root,
        }
    }
}

impl Drop for Nginx {
    /// SIGTERM first: a SIGKILLed nginx master leaves its workers running.
    fn drop(&mut self) {
        self.guard.terminate(Duration::from_secs(10));
    }
}

#[test]
fn fetch_from_nginx_serving_a_checkout() {
    let (repo, commit) = sample_repo();
    // The empty file of the tree is there on disk too; a commit whose
    // payload is empty would need the `.commit` file only xus serves.
    let server = Nginx::serve_checkout(repo.path(), &commit);
    let dir = tempfile::tempdir().expect("dir");
    let torrent = dir.path().join("c.torrent").display().to_string();
    xus_ok(
        &[
            "torrent",
            "--repo",
            &repo.path().display().to_string(),
            "--webseed",
            &server.url,
            "-o",
            &torrent,
        ],
        STEP,
    );
    let dest = dir.path().join("n");
    let dest_s = dest.display().to_string();
    let (stdout, stderr) = fetch(&[
        "fetch",
        &torrent,
        "--no-dht",
        "--repo",
        &dest_s,
        "--branch",
        "main",
        "--checkout",
    ]);
    assert!(stdout.starts_with(&format!("fetched {commit}")), "{stdout}");
    assert!(webseed_bytes(&stderr) >= 3_000_000, "{stderr}");
    check_clone(&dest, repo.path(), &commit);
    drop(server);
}

/// The status nginx (or any server) answers `GET <path>` with, over a raw
/// socket so that the path goes out exactly as written.
fn status_of(base: &str, path: &str) -> u16 {
    use std::io::{Read, Write};
    let addr = base
        .strip_prefix("http://")
        .and_then(|rest| rest.strip_suffix('/'))
        .expect("http://<addr>/");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read");
    let head = String::from_utf8_lossy(&response);
    head.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"))
}

/// Issue 15 item 10: a checkout on disk (and a Git host) holds a name that
/// is not UTF-8 under its raw bytes (`caf\xe9.txt`, asked as `caf%E9.txt`),
/// while the torrent spells it `caf%E9.txt` (asked as `caf%25E9.txt`). xus
/// used to ask for the latter only, got 404s and stalled.
#[test]
fn non_utf8_names_fetched_from_nginx_over_a_checkout() {
    use std::os::unix::ffi::OsStrExt;
    let fixture = util::fixtures::non_utf8_names();
    let (repo, commit) = (&fixture.repo, &fixture.commit);
    let server = Nginx::serve_checkout(repo.path(), commit);
    // What nginx has: the raw name, not the torrent's text.
    assert_eq!(
        status_of(&server.url, &format!("/{commit}/caf%E9.txt")),
        200
    );
    assert_eq!(
        status_of(&server.url, &format!("/{commit}/caf%25E9.txt")),
        404
    );
    let dir = tempfile::tempdir().expect("dir");
    let torrent = dir.path().join("c.torrent").display().to_string();
    xus_ok(
        &[
            "torrent",
            "--repo",
            &repo.path().display().to_string(),
            "--webseed",
            &server.url,
            "-o",
            &torrent,
        ],
        STEP,
    );
    let dest = dir.path().join("n");
    let dest_s = dest.display().to_string();
    let started = std::time::Instant::now();
    // No peer, no DHT: nginx is the only source. A stall gives up after
    // 20 s, well before the test's own bound.
    let (stdout, stderr) = fetch(&[
        "fetch",
        &torrent,
        "--no-dht",
        "--repo",
        &dest_s,
        "--branch",
        "main",
        "--checkout",
        "--stall-timeout",
        "20",
    ]);
    let took = started.elapsed();
    assert!(stdout.starts_with(&format!("fetched {commit}")), "{stdout}");
    assert!(took < Duration::from_secs(20), "took {took:?}\n{stderr}");
    assert!(webseed_bytes(&stderr) > 0, "{stderr}");
    check_clone(&dest, repo.path(), commit);
    let latin1 = std::ffi::OsStr::from_bytes(b"caf\xe9.txt");
    assert_eq!(
        std::fs::read(dest.join(latin1)).expect("caf\\xe9.txt checked out"),
        b"latin-1 name\n"
    );
    let inner = std::ffi::OsStr::from_bytes(b"d\x80r/\xc3\x28");
    assert_eq!(
        std::fs::read(dest.join(inner)).expect("d\\x80r/\\xc3\\x28 checked out"),
        b"in a non-UTF-8 directory\n"
    );
    drop(server);
}

#[test]
fn a_webseed_speeds_up_a_slow_peer() {
    let repo = TestRepo::new();
    for i in 0..3 {
        repo.write(format!("part{i}.bin"), noise(2_000_000, 11 + i));
    }
    let commit = repo.commit("slow");
    // One peer capped at 512 KiB/s: about 12 s for this commit alone.
    let seed = spawn_seed(repo.path(), &["--max-upload", "512"]);
    let (_server, url) = spawn_webseed(repo.path());
    let peer = seed.addr.to_string();
    let magnet = seed.seeded[0].magnet.clone();
    let dir = tempfile::tempdir().expect("dir");
    let timed = |name: &str, extra: &[&str]| {
        let dest = dir.path().join(name).display().to_string();
        let mut args = vec![
            "fetch",
            magnet.as_str(),
            "--no-dht",
            "--peer",
            peer.as_str(),
            "--repo",
            &dest,
        ];
        args.extend_from_slice(extra);
        let started = std::time::Instant::now();
        let (stdout, stderr) = fetch(&args);
        assert!(stdout.starts_with(&format!("fetched {commit}")), "{stdout}");
        assert_fsck_clean(&dir.path().join(name));
        (started.elapsed(), stderr)
    };
    let (helped, stderr) = timed("helped", &["--webseed", &url]);
    assert!(stderr.contains("using webseeds as well"), "{stderr}");
    assert!(webseed_bytes(&stderr) > 0, "{stderr}");
    let (alone, _) = timed("alone", &[]);
    eprintln!("slow peer + webseed: {helped:?}; slow peer alone: {alone:?}");
    assert!(
        helped < alone,
        "slow peer + webseed took {helped:?}, slow peer alone {alone:?}\n{stderr}"
    );
}
