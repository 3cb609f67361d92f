//! Stock BitTorrent clients download a commit from `xus webseed` alone: no
//! peer, no DHT, no tracker, only the torrent's `url-list` (BEP 19), all on
//! 127.0.0.1. libtorrent (python3-libtorrent), aria2c and Transmission 3.00
//! must each end up with exactly the files of `git archive`.
//!
//! The torrent is made by `xus torrent --webseed http://127.0.0.1:PORT/`, so
//! the clients build `<url>/<commit>/<path, percent-encoded>` themselves:
//! the fixture has nested directories, a non-ASCII name, a space and a `%`
//! in names, and a file spanning many pieces.
//!
//! A client that is not installed fails its test with the Debian package to
//! install (see `.ci/run`); nothing is skipped. Drivers: `util::clients`
//! and `tests/drivers/lt_peer.py`.

mod util;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use util::clients::*;
use util::*;

/// Deadline for one download.
const TRANSFER: Duration = Duration::from_secs(120);

/// Size of the file that spans many pieces (not a multiple of the 16 KiB
/// piece length the payload gets).
const BIG_FILE: usize = 1_500_000 + 4_321;

/// A name stock clients must percent-encode: non-ASCII UTF-8, a space and
/// a `%` (which the server must get back as a `%`).
const ODD_NAME: &str = "docs/naïve café 100%.txt";

/// A commit with nested subdirectories, an executable, a file over 1 MiB
/// and a name that needs encoding (no symlinks or submodules: those are not
/// torrent files, and no non-UTF-8 names: stock clients write those as the
/// torrent's `%XX` text, which `git archive` does not).
fn webseed_commit() -> (TestRepo, String) {
    use std::os::unix::fs::PermissionsExt;
    let repo = TestRepo::new();
    repo.write("README.md", "# webseed fixture\n\nServed over HTTP only.\n");
    repo.write("src/main.rs", "fn main() {\n    println!(\"xus\");\n}\n");
    repo.write("src/net/peer.rs", util::fixtures::Prng(1).bytes(20_000));
    repo.write("tools/run.sh", "#!/bin/sh\necho \"xus webseed\"\n");
    let script = repo.path().join("tools/run.sh");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    repo.write("assets/big.bin", util::fixtures::Prng(2).bytes(BIG_FILE));
    repo.write(ODD_NAME, "Grüße, こんにちは\n");
    let commit = repo.commit("webseed fixture");
    let listing = git(repo.path(), &["ls-tree", "-r", "-z", &commit]);
    assert!(
        listing.contains("100755 blob") && listing.contains(ODD_NAME),
        "fixture is not what the tests expect:\n{listing}"
    );
    (repo, commit)
}

/// A running `xus webseed` and the base URL it printed.
struct Webseed {
    _guard: ChildGuard,
    url: String,
}

/// Starts `xus webseed COMMIT --listen 127.0.0.1:0` and waits for its URL.
fn spawn_webseed(repo: &Path, commit: &str) -> Webseed {
    let mut child = xus_command()
        .args(["webseed", commit, "--repo"])
        .arg(repo)
        .args(["--listen", "127.0.0.1:0"])
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
    let url = lines.expect(
        "`webseed <url>`",
        Duration::from_secs(120),
        String::new,
        |l| l.strip_prefix("webseed ").map(str::to_owned),
    );
    assert!(
        lines
            .seen
            .iter()
            .any(|l| l.starts_with(&format!("serving {commit} "))),
        "xus webseed does not serve {commit}: {:?}",
        lines.seen
    );
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    Webseed { _guard: guard, url }
}

/// `xus torrent COMMIT --webseed URL -o PATH`; returns the infohash, and
/// checks the file names the webseed and nothing else (no tracker).
fn write_torrent(repo: &Path, commit: &str, url: &str, path: &Path) -> String {
    let out = xus_ok(
        &[
            "torrent",
            commit,
            "--repo",
            repo.to_str().expect("utf8"),
            "--webseed",
            url,
            "-o",
            path.to_str().expect("utf8"),
        ],
        Duration::from_secs(120),
    );
    let bytes = std::fs::read(path).expect("reading the torrent");
    assert_eq!(
        xus::torrent::format::webseeds_from_torrent_file(&bytes).expect("url-list"),
        vec![url.to_owned()]
    );
    assert!(
        !bytes.windows(10).any(|w| w == b"8:announce"),
        "the torrent names a tracker"
    );
    out.lines()
        .find_map(|l| l.strip_prefix("infohash "))
        .unwrap_or_else(|| panic!("no infohash line in {out}"))
        .trim()
        .to_owned()
}

/// The source repository, its commit, `git archive` of it, a running
/// webseed and a torrent that names only that webseed.
struct Setup {
    src: TestRepo,
    commit: String,
    archive: tempfile::TempDir,
    webseed: Webseed,
    work: tempfile::TempDir,
    torrent: std::path::PathBuf,
    info_hash: String,
    downloads: std::path::PathBuf,
}

fn setup() -> Setup {
    let (src, commit) = webseed_commit();
    let archive = git_archive(src.path(), &commit);
    let webseed = spawn_webseed(src.path(), &commit);
    let work = tempfile::tempdir().expect("tempdir");
    let torrent = work.path().join("commit.torrent");
    let info_hash = write_torrent(src.path(), &commit, &webseed.url, &torrent);
    let downloads = work.path().join("downloads");
    std::fs::create_dir(&downloads).expect("mkdir");
    Setup {
        src,
        commit,
        archive,
        webseed,
        work,
        torrent,
        info_hash,
        downloads,
    }
}

/// Asserts a client saved exactly one entry, `<commit>/`, under `root`, and
/// that it holds exactly the files of `git archive`.
fn assert_download(root: &Path, commit: &str, archive: &Path, check_exec: bool) {
    let entries: Vec<String> = std::fs::read_dir(root)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        entries,
        vec![commit.to_owned()],
        "the client left other entries than <commit>/ in {}",
        root.display()
    );
    assert_same_files(archive, &root.join(commit), check_exec);
}

fn report(test: &str, started: Instant) {
    eprintln!("{test}: {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn libtorrent_downloads_a_commit_from_the_webseed_alone() {
    require_libtorrent();
    let started = Instant::now();
    let s = setup();
    let mut lt = Libtorrent::download(
        &s.downloads,
        LtSource::Torrent(&s.torrent),
        &[],
        &s.work.path().join("libtorrent.log"),
    );
    let info_hash = lt.wait_finished(TRANSFER);
    assert_eq!(info_hash, s.info_hash);
    drop(s.webseed);
    // libtorrent honours BEP 47 `attr` "x".
    assert_download(&s.downloads, &s.commit, s.archive.path(), true);
    drop(s.src);
    report("libtorrent <- xus webseed", started);
}

#[test]
fn aria2c_downloads_a_commit_from_the_webseed_alone() {
    require_program("aria2c", "aria2");
    let started = Instant::now();
    let s = setup();
    let mut aria = Aria2::download(&s.torrent, &s.downloads, &s.work.path().join("aria2.log"));
    aria.wait_success(TRANSFER);
    drop(s.webseed);
    // aria2c ignores BEP 47 attributes: no exec bits.
    assert_download(&s.downloads, &s.commit, s.archive.path(), false);
    drop(s.src);
    report("aria2c <- xus webseed", started);
}

#[test]
fn transmission_downloads_a_commit_from_the_webseed_alone() {
    require_program("transmission-daemon", "transmission-daemon");
    require_program("transmission-remote", "transmission-cli");
    let started = Instant::now();
    let s = setup();
    let mut tr = Transmission::start(&s.work.path().join("transmission"));
    tr.add(&s.torrent, &s.downloads, &s.info_hash);
    tr.wait_complete(&s.info_hash, TRANSFER);
    tr.stop(&s.info_hash);
    drop(s.webseed);
    // Transmission 3.00 ignores BEP 47 attributes: no exec bits.
    assert_download(&s.downloads, &s.commit, s.archive.path(), false);
    drop(s.src);
    report("Transmission <- xus webseed", started);
}
