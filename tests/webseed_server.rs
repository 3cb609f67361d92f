//! The webseed over Git, end to end: `xus webseed` (and `xus seed
//! --webseed-listen`) on 127.0.0.1, spoken to with raw HTTP/1.1 over a
//! `TcpStream`, so that nothing between the test and the server normalises a
//! path (`..`, `%2e%2e`, `//`) before the server sees it.
//!
//! What must hold: a published commit's files come back byte for byte, with
//! ranges as RFC 9110 says; nothing else does, not even objects that sit in
//! the repository; no request path leaves the commit's tree; names that are
//! not UTF-8 are found under their raw bytes and their `%XX` torrent path,
//! with the same bytes; and the served
//! `.torrent` has the same infohash as `xus torrent` and points back here.

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use util::clients::Lines;
use util::fixtures::{Entry, Prng, blob, commit_tree, set_main, tree};
use util::*;
use xus::torrent::format::{CommitTorrent, info_from_torrent_file, webseeds_from_torrent_file};

/// Size of the file the range tests cut up: several of the server's
/// 256 KiB read chunks, not a multiple of any.
const BIG: usize = 700_001;

/// A repository whose `main` is a commit with plain, nested, non-UTF-8 and
/// percent-holding names, over an (unpublished) parent holding a file the
/// child does not have.
struct Fixture {
    repo: TestRepo,
    /// The commit served.
    commit: String,
    /// Its parent: in the repository, never published.
    parent: String,
    /// `data/big.bin`.
    big: Vec<u8>,
    /// Blob ids by name.
    hello_id: String,
    big_id: String,
}

const HELLO: &[u8] = b"hello, world\n";
const LATIN1: &[u8] = b"latin-1 name\n";
const INNER: &[u8] = b"in a non-UTF-8 directory\n";
const PERCENT: &[u8] = b"one hundred percent\n";
const SECRET: &[u8] = b"only in the parent\n";

fn fixture() -> Fixture {
    let repo = TestRepo::new();
    let p = repo.path();
    let hello_id = blob(p, HELLO);
    let secret = blob(p, SECRET);
    let parent_tree = tree(
        p,
        &[
            Entry::file("hello.txt", &hello_id),
            Entry::file("secret.txt", &secret),
        ],
    );
    let parent = commit_tree(p, &parent_tree, &[], "parent");
    let big = Prng(9).bytes(BIG);
    let big_id = blob(p, &big);
    let data = tree(p, &[Entry::file("big.bin", &big_id)]);
    let inner = tree(p, &[Entry::file("inner.txt", &blob(p, INNER))]);
    let t = tree(
        p,
        &[
            Entry::file("hello.txt", &hello_id),
            Entry::dir("data", &data),
            Entry::file(b"caf\xe9.txt", &blob(p, LATIN1)),
            Entry::dir(b"d\x80r", &inner),
            Entry::file("100%.txt", &blob(p, PERCENT)),
            Entry::file("naïve.txt", &hello_id),
        ],
    );
    let commit = commit_tree(p, &t, &[&parent], "child");
    set_main(p, &commit);
    Fixture {
        repo,
        commit,
        parent,
        big,
        hello_id,
        big_id,
    }
}

/// A running `xus webseed`.
struct Webseed {
    guard: ChildGuard,
    addr: SocketAddr,
    /// The `webseed` line: the url-list base.
    url: String,
    /// `(commit, infohash)` per `serving` line.
    served: Vec<(String, String)>,
}

/// Starts `xus webseed --repo REPO --listen 127.0.0.1:0 EXTRA...` and reads
/// its `serving` lines up to the `webseed` line.
fn spawn_webseed(repo: &Path, extra: &[&str]) -> Webseed {
    let mut ws = spawn_webseed_on(repo, "127.0.0.1:0", extra);
    ws.addr = ws
        .url
        .strip_prefix("http://")
        .and_then(|rest| rest.strip_suffix('/'))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("webseed URL {:?} is not http://<addr>/", ws.url));
    ws
}

/// [`spawn_webseed`] on a given address; `addr` is that address as given.
fn spawn_webseed_on(repo: &Path, listen: &str, extra: &[&str]) -> Webseed {
    let mut child = xus_command()
        .args(["webseed", "--repo"])
        .arg(repo)
        .args(["--listen", listen])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawning xus webseed");
    let stdout = child.stdout.take().expect("stdout");
    let guard = ChildGuard {
        child,
        name: "xus webseed".into(),
    };
    let mut lines = Lines::new("xus webseed", stdout);
    let mut served = Vec::new();
    let url = lines.expect(
        "`webseed <url>`",
        Duration::from_secs(120),
        String::new,
        |line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["serving", commit, ih] => {
                    served.push((commit.to_string(), ih.to_string()));
                    None
                }
                ["webseed", url] => Some(url.to_string()),
                _ => None,
            }
        },
    );
    let addr = listen.parse().expect("a socket address");
    Webseed {
        guard,
        addr,
        url,
        served,
    }
}

/// One HTTP response, read whole (`Connection: close`).
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `METHOD TARGET HTTP/1.1` with `headers`, exactly as written (no
/// normalisation of the target), and reads the whole response.
fn http(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> Response {
    let mut stream = TcpStream::connect(addr).expect("connecting to the webseed");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut request =
        format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .expect("sending the request");
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("reading the response to {method} {target}: {e}"));
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no header end in the response to {method} {target}: {:?}",
                String::from_utf8_lossy(&raw)
            )
        });
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

fn get(addr: SocketAddr, target: &str) -> Response {
    http(addr, "GET", target, &[])
}

fn get_range(addr: SocketAddr, target: &str, range: &str) -> Response {
    http(addr, "GET", target, &[("Range", range)])
}

/// `xus torrent COMMIT -o PATH EXTRA...`; returns stdout.
fn xus_torrent(repo: &Path, commit: &str, path: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "torrent",
        commit,
        "--repo",
        repo.to_str().expect("utf8"),
        "-o",
        path.to_str().expect("utf8"),
    ];
    args.extend_from_slice(extra);
    xus_ok(&args, Duration::from_secs(120))
}

fn line_value<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no `{key}` line in {out}"))
}

#[test]
fn full_gets_and_heads_return_the_blobs() {
    let f = fixture();
    let ws = spawn_webseed(f.repo.path(), &[]);
    assert_eq!(ws.served.len(), 1, "{:?}", ws.served);
    assert_eq!(ws.served[0].0, f.commit);
    let c = &f.commit;

    for (path, data, id) in [
        ("hello.txt", HELLO, &f.hello_id),
        ("data/big.bin", &f.big[..], &f.big_id),
    ] {
        let target = format!("/{c}/{path}");
        let r = get(ws.addr, &target);
        assert_eq!(r.status, 200, "{target}: {:?}", r.headers);
        assert!(r.body == data, "{target}: body differs from the blob");
        assert_eq!(r.header("etag"), Some(format!("\"{id}\"").as_str()));
        assert_eq!(
            r.header("content-length"),
            Some(data.len().to_string().as_str())
        );
        assert_eq!(r.header("accept-ranges"), Some("bytes"));

        let h = http(ws.addr, "HEAD", &target, &[]);
        assert_eq!(h.status, 200, "HEAD {target}");
        assert!(h.body.is_empty(), "HEAD {target} has a body");
        assert_eq!(
            h.header("content-length"),
            Some(data.len().to_string().as_str())
        );
        assert_eq!(h.header("etag"), r.header("etag"));
    }
    // The same blob at another (UTF-8, non-ASCII) path, percent-encoded as
    // clients send it.
    let r = get(ws.addr, &format!("/{c}/na%C3%AFve.txt"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, HELLO);
    // A revalidation with the blob id: nothing to send again.
    let etag = format!("\"{}\"", f.hello_id);
    let r = http(
        ws.addr,
        "GET",
        &format!("/{c}/hello.txt"),
        &[("If-None-Match", &etag)],
    );
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());

    let mut ws = ws;
    let status = ws.guard.terminate(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "xus webseed did not exit cleanly on SIGTERM: {status:?}"
    );
}

#[test]
fn ranges_start_middle_suffix_and_past_the_end() {
    let f = fixture();
    let ws = spawn_webseed(f.repo.path(), &[]);
    let target = format!("/{}/data/big.bin", f.commit);
    let len = f.big.len();
    let cases = [
        ("bytes=0-99".to_owned(), 0, 100),
        ("bytes=1000-300999".to_owned(), 1000, 300_000),
        ("bytes=-500".to_owned(), len - 500, 500),
        (format!("bytes={}-", len - 10), len - 10, 10),
        (format!("bytes={}-{}", len - 5, len + 100), len - 5, 5),
        (format!("bytes={}-{}", len - 1, len - 1), len - 1, 1),
    ];
    for (range, start, count) in cases {
        let r = get_range(ws.addr, &target, &range);
        assert_eq!(r.status, 206, "{range}: {:?}", r.headers);
        let end = start + count - 1;
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {start}-{end}/{len}").as_str()),
            "{range}"
        );
        assert_eq!(
            r.header("content-length"),
            Some(count.to_string().as_str()),
            "{range}"
        );
        assert!(
            r.body == f.big[start..start + count],
            "{range}: wrong bytes"
        );
    }
    for range in [
        format!("bytes={len}-"),
        format!("bytes={}-{}", len + 10, len + 20),
    ] {
        let r = get_range(ws.addr, &target, &range);
        assert_eq!(r.status, 416, "{range}: {:?}", r.headers);
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes */{len}").as_str()),
            "{range}"
        );
        assert!(r.body.is_empty(), "{range}");
    }
}

#[test]
fn only_published_commits_are_served() {
    let f = fixture();
    let ws = spawn_webseed(f.repo.path(), &[]);
    let c = &f.commit;
    let p = &f.parent;
    let tree_id = git(f.repo.path(), &["rev-parse", &format!("{c}^{{tree}}")]);
    let not_found = [
        // A commit nobody has.
        "/0123456789abcdef0123456789abcdef01234567/hello.txt".to_owned(),
        "/0123456789abcdef0123456789abcdef01234567.torrent".to_owned(),
        // The parent is in the repository, with a file of its own and one
        // it shares with the published commit: neither is served.
        format!("/{p}/secret.txt"),
        format!("/{p}/hello.txt"),
        format!("/{p}.torrent"),
        // Objects of the published commit named as commits.
        format!("/{}/hello.txt", f.hello_id),
        format!("/{tree_id}/hello.txt"),
        format!("/{tree_id}.torrent"),
        // Names the published commit does not have, and a directory.
        format!("/{c}/secret.txt"),
        format!("/{c}/data"),
        format!("/{c}/hello.txt/x"),
        format!("/{c}/HELLO.TXT"),
        // Not a commit id at all.
        "/hello.txt".to_owned(),
        "/".to_owned(),
    ];
    for target in &not_found {
        let r = get(ws.addr, target);
        assert_eq!(r.status, 404, "{target}: {:?}", r.headers);
        assert!(
            !r.body.windows(SECRET.len()).any(|w| w == SECRET),
            "{target}"
        );
    }
    assert_eq!(get(ws.addr, &format!("/{c}/hello.txt")).status, 200);
}

#[test]
fn traversal_attempts_never_escape_the_commit() {
    let f = fixture();
    let ws = spawn_webseed(f.repo.path(), &[]);
    let c = &f.commit;
    let attempts = [
        "/../../../../etc/passwd".to_owned(),
        "/%2e%2e/%2e%2e/%2e%2e/etc/passwd".to_owned(),
        "/%2E%2E/%2E%2E/etc/passwd".to_owned(),
        "//etc/passwd".to_owned(),
        "///etc/passwd".to_owned(),
        "/etc/passwd".to_owned(),
        format!("/{c}//etc/passwd"),
        format!("/{c}/../../../../etc/passwd"),
        format!("/{c}/%2e%2e/%2e%2e/%2e%2e/etc/passwd"),
        format!("/{c}/..%2f..%2f..%2fetc%2fpasswd"),
        format!("/{c}/%2e%2e%2f%2e%2e%2fetc%2fpasswd"),
        format!("/{c}/..%5c..%5cetc%5cpasswd"),
        format!("/{c}/..\\..\\etc\\passwd"),
        format!("/{c}/%2fetc%2fpasswd"),
        format!("/{c}/.git/config"),
        format!("/{c}/%2egit/config"),
        // Paths that would name a real file once normalised: still refused,
        // since a client of this server never sends them.
        format!("/{c}/data/../hello.txt"),
        format!("/{c}/data/%2e%2e/hello.txt"),
        format!("/{c}/./hello.txt"),
        format!("/{c}/%2e/hello.txt"),
        format!("/{c}/data%2fbig.bin"),
        format!("/{c}/data%2Fbig.bin"),
        format!("/{c}/hello.txt%00"),
        format!("/{c}/hello.txt%00.png"),
        format!("/{c}/../{c}/hello.txt"),
        format!("/{}/../{c}/hello.txt", f.parent),
        format!("/{c}/hello.txt/"),
        format!("/{c}/hello.txt/."),
        format!("/{c}/hello.txt/.."),
        format!("/{c}/%"),
        format!("/{c}/%zz"),
        format!("/{c}/%c0%ae%c0%ae/etc/passwd"),
        // The absolute form of a request target.
        "http://127.0.0.1/etc/passwd".to_owned(),
        format!("http://127.0.0.1/{c}/../../etc/passwd"),
    ];
    for target in &attempts {
        let r = get(ws.addr, target);
        assert!(
            matches!(r.status, 400 | 404),
            "{target} answered {} {:?}",
            r.status,
            r.headers
        );
        let body = String::from_utf8_lossy(&r.body);
        assert!(
            !body.contains("root:") && !body.contains("[core]"),
            "{target} leaked {body:?}"
        );
        assert!(r.body.len() < 64, "{target}: unexpected body {body:?}");
    }
    // Still serving after all that.
    assert_eq!(get(ws.addr, &format!("/{c}/hello.txt")).body, HELLO);
}

#[test]
fn non_utf8_names_are_served_under_raw_names_and_torrent_paths() {
    let f = fixture();
    let ws = spawn_webseed(f.repo.path(), &[]);
    let c = &f.commit;
    // The torrent spells the names with `%XX` for each invalid byte.
    let torrent = get(ws.addr, &format!("/{c}.torrent"));
    assert_eq!(torrent.status, 200);
    let info = info_from_torrent_file(&torrent.body).expect("info dictionary");
    let parsed = CommitTorrent::parse(info).expect("a valid commit torrent");
    let paths: Vec<String> = parsed.files.iter().map(|f| f.path.join("/")).collect();
    for expected in ["caf%E9.txt", "d%80r/inner.txt", "100%.txt"] {
        assert!(
            paths.iter().any(|p| p == expected),
            "{expected} not in {paths:?}"
        );
    }
    // Each file under both forms, with the same bytes: the raw name byte
    // (what nginx over a checkout and Git hosts serve, and what xus asks for
    // first) and the torrent's `%XX` text encoded again, as BEP 19 clients
    // send it. Hex digits of either case decode to the same byte.
    for (forms, data) in [
        (&["caf%E9.txt", "caf%e9.txt", "caf%25E9.txt"][..], LATIN1),
        (&["d%80r/inner.txt", "d%2580r/inner.txt"], INNER),
        (&["100%25.txt"], PERCENT),
    ] {
        let mut etags = Vec::new();
        for target in forms {
            let r = get(ws.addr, &format!("/{c}/{target}"));
            assert_eq!(r.status, 200, "{target}: {:?}", r.headers);
            assert_eq!(r.body, data, "{target}");
            etags.push(r.header("etag").map(str::to_owned));
        }
        assert!(
            etags.iter().all(|e| e.is_some() && *e == etags[0]),
            "{etags:?}"
        );
    }
    // Other spellings name nothing: the escape in lowercase (not the
    // torrent's text), the UTF-8 of é (another name), the raw byte of
    // another name, a raw byte where the name has text, and a mixed path
    // whose raw directory holds no such file.
    for (target, status) in [
        ("caf%25e9.txt", 404),
        ("caf%C3%A9.txt", 404),
        ("caf%E8.txt", 404),
        ("100%FF.txt", 404),
        ("d%80r/hello.txt", 404),
        ("d%80r/%2e%2e/hello.txt", 400),
    ] {
        let r = get(ws.addr, &format!("/{c}/{target}"));
        assert_eq!(r.status, status, "{target}: {:?}", r.headers);
    }
}

#[test]
fn served_torrent_points_here_with_the_infohash_of_xus_torrent() {
    let f = fixture();
    let ws = spawn_webseed(f.repo.path(), &[]);
    let c = &f.commit;
    let dir = tempfile::tempdir().expect("tempdir");
    let out = xus_torrent(f.repo.path(), c, &dir.path().join("plain.torrent"), &[]);
    let info_hash = line_value(&out, "infohash").to_owned();
    assert_eq!(ws.served, vec![(c.clone(), info_hash.clone())]);

    let r = get(ws.addr, &format!("/{c}.torrent"));
    assert_eq!(r.status, 200, "{:?}", r.headers);
    assert_eq!(r.header("content-type"), Some("application/x-bittorrent"));
    let info = info_from_torrent_file(&r.body).expect("info dictionary");
    let parsed = CommitTorrent::parse(info).expect("a valid commit torrent");
    assert_eq!(parsed.info_hash.to_hex(), info_hash);
    assert_eq!(parsed.commit.to_hex(), *c);
    assert_eq!(
        webseeds_from_torrent_file(&r.body).expect("url-list"),
        vec![ws.url.clone()]
    );
    let plain = std::fs::read(dir.path().join("plain.torrent")).expect("read");
    assert_eq!(
        info,
        info_from_torrent_file(&plain).expect("info"),
        "the served info dictionary differs from `xus torrent`'s"
    );
    let h = http(ws.addr, "HEAD", &format!("/{c}.torrent"), &[]);
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty());
    assert_eq!(
        h.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
}

#[test]
fn public_url_goes_into_served_torrents() {
    let f = fixture();
    // The printed URL is the public one: reach the server by a known port.
    let listen = format!("127.0.0.1:{}", util::clients::free_port());
    let ws = spawn_webseed_on(
        f.repo.path(),
        &listen,
        &["--public-url", "https://seed.example.org/git"],
    );
    assert_eq!(ws.url, "https://seed.example.org/git/");
    let r = get(ws.addr, &format!("/{}.torrent", f.commit));
    assert_eq!(r.status, 200);
    assert_eq!(
        webseeds_from_torrent_file(&r.body).expect("url-list"),
        vec!["https://seed.example.org/git/".to_owned()]
    );
    drop(ws);

    let bad = run_xus(
        &[
            "webseed",
            "--repo",
            f.repo.path().to_str().expect("utf8"),
            "--listen",
            "127.0.0.1:0",
            "--public-url",
            "ftp://x",
        ],
        Duration::from_secs(60),
    );
    assert!(!bad.status.success(), "ftp:// accepted as a public URL");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("ftp://x"));
}

#[test]
fn xus_torrent_webseeds_leave_the_infohash_alone() {
    let f = fixture();
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = dir.path().join("plain.torrent");
    let seeded = dir.path().join("seeded.torrent");
    let c = &f.commit;
    let out_plain = xus_torrent(f.repo.path(), c, &plain, &[]);
    let urls = [
        "http://127.0.0.1:8080/",
        "https://mirror.example.org/x?y=1&z",
    ];
    let out_seeded = xus_torrent(
        f.repo.path(),
        c,
        &seeded,
        &["--webseed", urls[0], "--webseed", urls[1]],
    );
    assert_eq!(
        line_value(&out_plain, "infohash"),
        line_value(&out_seeded, "infohash")
    );
    let plain = std::fs::read(&plain).expect("read");
    let seeded = std::fs::read(&seeded).expect("read");
    assert_eq!(
        info_from_torrent_file(&plain).expect("info"),
        info_from_torrent_file(&seeded).expect("info")
    );
    assert_eq!(
        webseeds_from_torrent_file(&plain).expect("none"),
        Vec::<String>::new()
    );
    assert_eq!(webseeds_from_torrent_file(&seeded).expect("url-list"), urls);

    let magnet = line_value(&out_seeded, "magnet");
    assert!(
        magnet.contains("&ws=http%3A%2F%2F127.0.0.1%3A8080%2F"),
        "{magnet}"
    );
    assert!(
        magnet.contains("&ws=https%3A%2F%2Fmirror.example.org%2Fx%3Fy%3D1%26z"),
        "{magnet}"
    );
    let parsed = xus::torrent::magnet::Magnet::parse(magnet).expect("the magnet parses");
    assert_eq!(
        parsed.info_hash.to_hex(),
        line_value(&out_plain, "infohash")
    );
    assert!(!line_value(&out_plain, "magnet").contains("ws="));

    let bad = run_xus(
        &[
            "torrent",
            c,
            "--repo",
            f.repo.path().to_str().expect("utf8"),
            "-o",
            dir.path().join("bad.torrent").to_str().expect("utf8"),
            "--webseed",
            "not a url",
        ],
        Duration::from_secs(60),
    );
    assert!(!bad.status.success(), "a bad webseed URL was accepted");
    assert!(!dir.path().join("bad.torrent").exists());
}

/// Percent-decodes a magnet value.
fn decode(value: &str) -> String {
    String::from_utf8(xus_codec::percent::decode(value).expect("percent-encoded")).expect("utf8")
}

#[test]
fn xus_seed_serves_every_commit_it_seeds_on_its_webseed() {
    let f = fixture();
    let p = f.repo.path();
    let mut child = xus_command()
        .args(["seed", "--repo"])
        .arg(p)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--no-dht",
            "--all-branches",
            "--rescan",
            "1",
            "--webseed-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawning xus seed");
    let stdout = child.stdout.take().expect("stdout");
    let mut guard = ChildGuard {
        child,
        name: "xus seed".into(),
    };
    let mut lines = Lines::new("xus seed", stdout);
    let mut seeding = Vec::new();
    let mut webseed = None;
    lines.expect(
        "`listening <addr>`",
        Duration::from_secs(120),
        String::new,
        |line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["seeding", commit, ih, magnet] => {
                    seeding.push((commit.to_string(), ih.to_string(), magnet.to_string()));
                    None
                }
                ["webseed", url] => {
                    webseed = Some(url.to_string());
                    None
                }
                ["listening", _] => Some(()),
                _ => None,
            }
        },
    );
    let url = webseed.expect("a `webseed <url>` line before `listening`");
    let addr: SocketAddr = url
        .strip_prefix("http://")
        .and_then(|r| r.strip_suffix('/'))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("webseed URL {url:?}"));
    assert_eq!(seeding.len(), 1, "{seeding:?}");
    let (commit, info_hash, magnet) = &seeding[0];
    assert_eq!(*commit, f.commit);
    let ws: Vec<String> = magnet
        .split('&')
        .filter_map(|kv| kv.strip_prefix("ws="))
        .map(decode)
        .collect();
    assert_eq!(ws, vec![url.clone()], "{magnet}");

    let r = get(addr, &format!("/{commit}/data/big.bin"));
    assert_eq!(r.status, 200);
    assert!(r.body == f.big);
    let t = get(addr, &format!("/{commit}.torrent"));
    let info = info_from_torrent_file(&t.body).expect("info");
    assert_eq!(
        CommitTorrent::parse(info)
            .expect("torrent")
            .info_hash
            .to_hex(),
        *info_hash
    );
    // The parent is not seeded, so not served either.
    assert_eq!(get(addr, &format!("/{}/secret.txt", f.parent)).status, 404);

    // A branch that appears later is picked up by the rescan, seeded and
    // served on the same webseed.
    let later = blob(p, b"added later\n");
    let later_tree = tree(
        p,
        &[
            Entry::file("later.txt", &later),
            Entry::file("hello.txt", &f.hello_id),
        ],
    );
    let later_commit = commit_tree(p, &later_tree, &[&f.commit], "later");
    assert_eq!(get(addr, &format!("/{later_commit}/later.txt")).status, 404);
    git(p, &["update-ref", "refs/heads/later", &later_commit]);
    let (later_ih, later_magnet) = lines.expect(
        "`seeding <later commit> ...`",
        Duration::from_secs(120),
        String::new,
        |line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["seeding", c, ih, magnet] if *c == later_commit => {
                    Some((ih.to_string(), magnet.to_string()))
                }
                _ => None,
            }
        },
    );
    assert!(later_magnet.contains("&ws="), "{later_magnet}");
    let r = get(addr, &format!("/{later_commit}/later.txt"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"added later\n");
    let t = get(addr, &format!("/{later_commit}.torrent"));
    let info = info_from_torrent_file(&t.body).expect("info");
    assert_eq!(
        CommitTorrent::parse(info)
            .expect("torrent")
            .info_hash
            .to_hex(),
        later_ih
    );

    let status = guard.terminate(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "xus seed did not exit cleanly on SIGTERM: {status:?}"
    );
}
