//! End to end with real processes on 127.0.0.1: `xus seed` -> `xus fetch`.

mod util;

use std::time::Duration;
use util::*;

const T: Duration = Duration::from_secs(120);

#[test]
fn fetch_by_magnet_rebuilds_the_exact_commit() {
    let src = TestRepo::new();
    src.write("README.md", "hello\n");
    src.write("src/lib.rs", vec![b'x'; 300_000]);
    let commit = src.commit("first");
    let seeder = spawn_seed(src.path(), &[]);
    assert_eq!(seeder.seeded[0].commit, commit);

    let dst = tempfile::tempdir().expect("tempdir");
    let repo = dst.path().join("clone");
    let out = xus_ok(
        &[
            "fetch",
            &seeder.seeded[0].magnet,
            "--repo",
            repo.to_str().expect("utf8"),
            "--branch",
            "main",
            "--checkout",
        ],
        T,
    );
    assert!(out.contains(&commit), "{out}");
    assert_eq!(git(&repo, &["rev-parse", "main"]), commit);
    assert_fsck_clean(&repo);
    let archive = git_archive(src.path(), &commit);
    assert_same_files(archive.path(), &repo, true);
}

#[test]
fn fetch_by_infohash_and_by_torrent_file_into_a_bare_repository() {
    let src = TestRepo::new();
    src.write("a.txt", "alpha\n");
    let first = src.commit("first");
    git(src.path(), &["checkout", "-q", "-b", "side"]);
    src.write("b.txt", vec![b'b'; 100_000]);
    let side = src.commit("side");
    git(src.path(), &["checkout", "-q", "main"]);

    // --all-branches seeds both tips; HEAD (main) is not repeated.
    let seeder = spawn_seed(src.path(), &["--all-branches"]);
    let mut commits: Vec<&str> = seeder.seeded.iter().map(|s| s.commit.as_str()).collect();
    commits.sort();
    let mut expected = vec![first.as_str(), side.as_str()];
    expected.sort();
    assert_eq!(commits, expected);
    let peer = seeder.addr.to_string();

    let dst = tempfile::tempdir().expect("tempdir");
    let bare = dst.path().join("bare.git");
    let bare_str = bare.to_str().expect("utf8");
    let by_hash = seeder
        .seeded
        .iter()
        .find(|s| s.commit == first)
        .expect("main is seeded");
    let out = xus_ok(
        &[
            "fetch",
            &by_hash.info_hash,
            "--repo",
            bare_str,
            "--bare",
            "--peer",
            &peer,
            "--branch",
            "main",
        ],
        T,
    );
    assert!(out.contains(&first), "{out}");
    assert_eq!(git(&bare, &["rev-parse", "--is-bare-repository"]), "true");
    assert_eq!(git(&bare, &["rev-parse", "main"]), first);

    let torrent = dst.path().join("side.torrent");
    xus_ok(
        &[
            "torrent",
            "side",
            "--repo",
            src.path().to_str().expect("utf8"),
            "-o",
            torrent.to_str().expect("utf8"),
        ],
        T,
    );
    xus_ok(
        &[
            "fetch",
            torrent.to_str().expect("utf8"),
            "--repo",
            bare_str,
            "--peer",
            &peer,
            "--branch",
            "side",
        ],
        T,
    );
    assert_eq!(git(&bare, &["rev-parse", "side"]), side);
    assert_eq!(
        git(
            &bare,
            &["for-each-ref", "--format=%(refname)", "refs/xus/commits"]
        ),
        {
            let mut refs = [
                format!("refs/xus/commits/{first}"),
                format!("refs/xus/commits/{side}"),
            ];
            refs.sort();
            refs.join("\n")
        }
    );
    assert_fsck_clean(&bare);
}

#[test]
fn seed_shuts_down_cleanly_on_sigterm() {
    let src = TestRepo::new();
    src.write("x", "x\n");
    src.commit("x");
    let mut seeder = spawn_seed(src.path(), &[]);
    let status = seeder
        .guard
        .terminate(Duration::from_secs(10))
        .expect("xus seed exits within 10 s of SIGTERM");
    assert!(status.success(), "xus seed exited with {status}");
}

#[test]
fn fetch_refuses_to_move_a_branch_backwards_without_force() {
    let src = TestRepo::new();
    src.write("a", "1\n");
    let old = src.commit("old");
    src.write("a", "2\n");
    let new = src.commit("new");
    let seeder = spawn_seed(src.path(), &[&old, &new]);
    let dst = tempfile::tempdir().expect("tempdir");
    let repo = dst.path().join("r");
    let repo_str = repo.to_str().expect("utf8");
    let magnet = |c: &str| {
        seeder
            .seeded
            .iter()
            .find(|s| s.commit == c)
            .expect("seeded")
            .magnet
            .clone()
    };
    xus_ok(
        &[
            "fetch",
            &magnet(&old),
            "--repo",
            repo_str,
            "--branch",
            "main",
        ],
        T,
    );
    xus_ok(
        &[
            "fetch",
            &magnet(&new),
            "--repo",
            repo_str,
            "--branch",
            "main",
        ],
        T,
    );
    assert_eq!(git(&repo, &["rev-parse", "main"]), new);
    // Going back is not a fast-forward: refused, branch unchanged.
    let out = run_xus(
        &[
            "fetch",
            &magnet(&old),
            "--repo",
            repo_str,
            "--branch",
            "main",
        ],
        T,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("not a fast-forward"),
        "{stderr}"
    );
    assert_eq!(git(&repo, &["rev-parse", "main"]), new);
    xus_ok(
        &[
            "fetch",
            &magnet(&old),
            "--repo",
            repo_str,
            "--branch",
            "main",
            "--force",
        ],
        T,
    );
    assert_eq!(git(&repo, &["rev-parse", "main"]), old);
    assert_fsck_clean(&repo);
}

/// A seed serving from Git starts without hashing its torrents (issue 13,
/// item 2): each piece is checked when first uploaded instead. Serves
/// `src`'s HEAD after `spoil` changed the repository, fetches it with a
/// short stall limit, and returns the seed's log once the fetch has failed.
fn fetch_from_a_spoiled_seed(src: &TestRepo, spoil: impl FnOnce(&str)) -> String {
    let commit = git(src.path(), &["rev-parse", "HEAD"]);
    let dst = tempfile::tempdir().expect("tempdir");
    // The torrent is built (and cached) while the objects are sound.
    xus_ok(
        &[
            "torrent",
            "HEAD",
            "--repo",
            src.path().to_str().expect("utf8"),
            "-o",
            dst.path().join("t.torrent").to_str().expect("utf8"),
        ],
        T,
    );
    spoil(&commit);
    let log = dst.path().join("seed.log");
    let seeder = spawn_seed_logging(
        xus_command(),
        src.path(),
        &[],
        std::fs::File::create(&log).expect("seed log"),
    );
    assert_eq!(
        seeder.seeded[0].commit, commit,
        "the seed starts although an object is bad: it no longer hashes everything at start"
    );
    let repo = dst.path().join("clone");
    let out = run_xus(
        &[
            "fetch",
            &seeder.seeded[0].magnet,
            "--repo",
            repo.to_str().expect("utf8"),
            "--stall-timeout",
            "4",
        ],
        T,
    );
    assert!(
        !out.status.success(),
        "the fetch got every piece although one is bad: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(seeder);
    std::fs::read_to_string(&log).expect("seed log")
}

fn two_file_repo() -> TestRepo {
    let src = TestRepo::new();
    src.write("good.bin", noise(300_000, 1));
    src.write("bad.bin", noise(300_000, 2));
    src.commit("two files");
    src
}

#[test]
fn a_seed_refuses_and_reports_a_corrupted_object() {
    let src = two_file_repo();
    let log = fetch_from_a_spoiled_seed(&src, |_| {
        // bad.bin's loose object gets the bytes of another blob of the same
        // size: still a well-formed object, but not the one its id names.
        let bad = git(src.path(), &["rev-parse", "HEAD:bad.bin"]);
        let other_file = src.path().join("other.bin");
        std::fs::write(&other_file, noise(300_000, 3)).expect("other blob");
        let other = git(src.path(), &["hash-object", "-w", "other.bin"]);
        let loose = |id: &str| {
            src.path()
                .join(".git/objects")
                .join(&id[..2])
                .join(&id[2..])
        };
        let _ = std::fs::remove_file(loose(&bad));
        std::fs::copy(loose(&other), loose(&bad)).expect("corrupting the loose object");
    });
    assert!(
        log.contains("cannot be read, so it is not served") && log.contains("hash mismatch"),
        "the seed does not report the corrupted object:\n{log}"
    );
}

#[test]
fn a_seed_refuses_and_reports_pieces_its_cached_torrent_gets_wrong() {
    let src = two_file_repo();
    let log = fetch_from_a_spoiled_seed(&src, |commit| {
        // A stale cache entry: one byte of the first piece hash changed.
        let cached = src
            .path()
            .join(".git/xus/torrents")
            .join(format!("{commit}.info"));
        let mut info = std::fs::read(&cached).expect("cached torrent");
        let at = info
            .windows(8)
            .position(|w| w == b"6:pieces")
            .expect("pieces key");
        let colon = at
            + 8
            + info[at + 8..]
                .iter()
                .position(|&b| b == b':')
                .expect("length");
        info[colon + 1] ^= 0xff;
        std::fs::write(&cached, info).expect("spoiling the cache");
    });
    assert!(
        log.contains("does not match its hash"),
        "the seed does not report the piece its torrent gets wrong:\n{log}"
    );
}

/// `xus fetch --seed-for` keeps serving what it fetched (issue 13, item 5):
/// with the first seed gone, a second reader gets the commit from the first.
#[test]
fn a_fetcher_seeding_for_a_while_serves_the_next_reader() {
    let src = TestRepo::new();
    src.write("a.bin", noise(700_000, 11));
    src.write("docs/b.txt", "b\n");
    let commit = src.commit("first");
    let seeder = spawn_seed(src.path(), &[]);
    let dst = tempfile::tempdir().expect("tempdir");
    let first = dst.path().join("first");
    let mut command = xus_command();
    command.args([
        "fetch",
        &seeder.seeded[0].magnet,
        "--repo",
        first.to_str().expect("utf8"),
        "--listen",
        "127.0.0.1:0",
        "--no-dht",
        "--seed-for",
        "120",
    ]);
    let (mut fetcher, rx) = spawn_with_lines(command, "xus fetch --seed-for");
    let seeding = loop {
        let line = rx
            .recv_timeout(T)
            .expect("xus fetch --seed-for never said it seeds");
        if line.starts_with("seeding ") {
            break line;
        }
    };
    // "seeding <commit> <infohash> on <addr> for <n> s"
    let words: Vec<&str> = seeding.split_whitespace().collect();
    assert_eq!(words[1], commit, "{seeding}");
    let info_hash = words[2].to_owned();
    let addr = words[4].to_owned();
    drop(seeder);

    let second = dst.path().join("second");
    xus_ok(
        &[
            "fetch",
            &info_hash,
            "--repo",
            second.to_str().expect("utf8"),
            "--peer",
            &addr,
            "--branch",
            "main",
            "--checkout",
        ],
        T,
    );
    assert_eq!(git(&second, &["rev-parse", "main"]), commit);
    assert_fsck_clean(&second);
    assert_same_files(git_archive(src.path(), &commit).path(), &second, true);

    let status = fetcher
        .terminate(Duration::from_secs(10))
        .expect("xus fetch --seed-for stops within 10 s of SIGTERM");
    assert!(
        status.success(),
        "xus fetch --seed-for exited with {status}"
    );
    let uploaded: u64 = rx
        .recv_timeout(Duration::from_secs(5))
        .ok()
        .and_then(|line| {
            line.strip_prefix("uploaded ")?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .expect("an 'uploaded N bytes' line");
    assert!(
        uploaded >= 700_000,
        "the first reader uploaded only {uploaded} bytes"
    );
}
