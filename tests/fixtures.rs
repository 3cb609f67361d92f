//! The fixture corpus end to end: every tricky commit goes `xus seed` ->
//! `xus fetch` into an empty repository and must come out as the very same
//! commit, fsck-clean, with a checkout equal to `git archive` of the source.

mod util;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use util::fixtures::{self, Fixture};
use util::*;

const T: Duration = Duration::from_secs(300);

/// The torrent of a fixture, built by the library from the source.
fn torrent_of(fx: &Fixture) -> xus::torrent::format::CommitTorrent {
    let repo = git2::Repository::open(fx.repo.path()).expect("open source");
    let id = xus::git::object::ObjectId::from_hex(&fx.commit).expect("hex");
    xus::torrent::format::build(&repo, id).expect("build")
}

/// What one fetch left behind.
struct Fetched {
    _dir: tempfile::TempDir,
    repo: PathBuf,
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `xus fetch SOURCE --repo DIR --checkout EXTRA...`, asserting success.
fn fetch(source: &str, repo: &Path, extra: &[&str]) -> (String, String) {
    let mut args = vec![
        "fetch",
        source,
        "--repo",
        repo.to_str().expect("utf8 path"),
        "--checkout",
        "--listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    let out = run_xus(&args, T);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "xus {args:?} failed ({})\nstdout: {stdout}\nstderr: {}",
        out.status,
        stderr_of(&out)
    );
    (stdout, stderr_of(&out))
}

/// `git fsck` output with what differs between two repositories of the
/// same commit (paths, dangling objects, notices) left out.
fn fsck_report(repo: &Path) -> String {
    let out = git_output(repo, &["fsck", "--full", "--no-dangling"]);
    assert!(
        out.status.success(),
        "git fsck failed in {}: {}",
        repo.display(),
        stderr_of(&out)
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr_of(&out)
    );
    let mut lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("notice:") && !l.starts_with("Checking"))
        .collect();
    lines.sort();
    lines.join("\n")
}

/// Checks a fetched repository against its fixture.
fn check_fetched(fx: &Fixture, repo: &Path, stdout: &str) {
    assert!(
        stdout.contains(&format!("fetched {}", fx.commit)),
        "{}: unexpected fetch output {stdout:?}",
        fx.name
    );
    assert_eq!(
        git(repo, &["rev-parse", "HEAD"]),
        fx.commit,
        "{}: HEAD",
        fx.name
    );
    assert_eq!(
        git(
            repo,
            &["rev-parse", &format!("refs/xus/commits/{}", fx.commit)]
        ),
        fx.commit,
        "{}: kept ref",
        fx.name
    );
    assert_eq!(
        git(repo, &["cat-file", "commit", &fx.commit]),
        git(fx.repo.path(), &["cat-file", "commit", &fx.commit]),
        "{}: raw commit",
        fx.name
    );
    let parents = git(repo, &["rev-list", "--parents", "-n1", &fx.commit]);
    if parents.split_whitespace().count() > 1 {
        let shallow = std::fs::read_to_string(repo.join(".git/shallow")).unwrap_or_default();
        assert!(
            shallow.lines().any(|l| l == fx.commit),
            "{}: parents are absent but the commit is not in .git/shallow ({shallow:?})",
            fx.name
        );
        // History commands must work on the shallow copy.
        git(repo, &["log", "--format=%H", &fx.commit]);
    }
    if fx.strict {
        assert_fsck_clean(repo);
    } else {
        assert_eq!(
            fsck_report(repo),
            fsck_report(fx.repo.path()),
            "{}: fetched repository's fsck report differs from the source's",
            fx.name
        );
    }
    let archive = git_archive(fx.repo.path(), &fx.commit);
    assert_same_files(archive.path(), repo, true);
}

/// Seeds the fixture, fetches it by magnet into an empty repository with
/// `--checkout`, and checks everything.
fn round_trip(fx: &Fixture) -> Fetched {
    if fx.strict {
        assert_fsck_clean(fx.repo.path());
    }
    let started = Instant::now();
    let seeder = spawn_seed(fx.repo.path(), &[&fx.commit]);
    assert_eq!(seeder.seeded.len(), 1, "{}", fx.name);
    assert_eq!(seeder.seeded[0].commit, fx.commit, "{}", fx.name);
    let seeded_at = started.elapsed();
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("clone");
    let (stdout, _) = fetch(&seeder.seeded[0].magnet, &repo, &[]);
    let fetched_at = started.elapsed();
    check_fetched(fx, &repo, &stdout);
    eprintln!(
        "{}: seeding ready after {seeded_at:?}, fetched after {fetched_at:?}, checked after {:?}",
        fx.name,
        started.elapsed()
    );
    Fetched { _dir: dir, repo }
}

#[test]
fn signed_commit() {
    let fx = fixtures::signed_commit();
    let raw = git(fx.repo.path(), &["cat-file", "commit", &fx.commit]);
    assert!(raw.contains("\ngpgsig -----BEGIN PGP SIGNATURE-----\n"));
    round_trip(&fx);
}

#[test]
fn odd_headers() {
    let fx = fixtures::odd_headers_commit();
    let fetched = round_trip(&fx);
    let raw = git(&fetched.repo, &["cat-file", "commit", &fx.commit]);
    for header in [
        "\nencoding ISO-8859-1\n",
        "\nmergetag object ",
        "\nx-xus-unknown",
    ] {
        assert!(raw.contains(header), "{header:?} lost: {raw}");
    }
}

#[test]
fn executable_bits() {
    round_trip(&fixtures::executable_bits());
}

#[test]
fn symlinks() {
    let fx = fixtures::symlinks();
    let fetched = round_trip(&fx);
    // Links pointing out of the tree are only data: nothing outside the
    // checkout was followed or written.
    let escape = std::fs::read_link(fetched.repo.join("sub/escape")).expect("readlink");
    assert_eq!(escape, Path::new("../../../../../../etc/passwd"));
    let absolute = std::fs::read_link(fetched.repo.join("absolute")).expect("readlink");
    assert_eq!(absolute, Path::new("/etc/shadow"));
}

#[test]
fn submodule_gitlink() {
    let fx = fixtures::submodule_gitlink();
    let fetched = round_trip(&fx);
    assert_eq!(
        git(&fetched.repo, &["ls-tree", "HEAD", "vendor/lib"]),
        "160000 commit 1234567890abcdef1234567890abcdef12345678\tvendor/lib"
    );
}

#[test]
fn empty_subtrees() {
    let fx = fixtures::empty_subtrees();
    let fetched = round_trip(&fx);
    assert_eq!(
        git(&fetched.repo, &["ls-tree", "HEAD", "empty"]),
        format!("040000 tree {}\tempty", fixtures::EMPTY_TREE)
    );
}

#[test]
fn non_utf8_names() {
    round_trip(&fixtures::non_utf8_names());
}

/// The same corpus entry, fetched from the `.torrent` file with `--peer`
/// instead of a magnet link.
#[test]
fn non_utf8_names_from_torrent_file() {
    let fx = fixtures::non_utf8_names();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("commit.torrent");
    let out = xus_ok(
        &[
            "torrent",
            &fx.commit,
            "--repo",
            fx.repo.path().to_str().expect("utf8"),
            "-o",
            file.to_str().expect("utf8"),
        ],
        T,
    );
    assert!(out.contains(&format!("commit {}", fx.commit)), "{out}");
    let seeder = spawn_seed(fx.repo.path(), &[&fx.commit]);
    assert!(out.contains(&format!("infohash {}", seeder.seeded[0].info_hash)));
    let repo = dir.path().join("clone");
    let peer = seeder.addr.to_string();
    let (stdout, _) = fetch(file.to_str().expect("utf8"), &repo, &["--peer", &peer]);
    check_fetched(&fx, &repo, &stdout);
}

#[test]
fn empty_file() {
    round_trip(&fixtures::empty_file());
}

#[test]
fn zero_byte_payload() {
    let fx = fixtures::zero_byte_payload();
    let t = torrent_of(&fx);
    let last = t.files.last().expect("files");
    assert_eq!(last.path, vec![format!("{}.commit", fx.commit)]);
    assert_eq!(last.blob, None);
    assert_eq!(t.files.len(), 4, "three empty files and the commit file");
    assert_eq!(t.links.len(), 1);
    let fetched = round_trip(&fx);
    let meta = std::fs::metadata(fetched.repo.join("sub/empty-2")).expect("empty file");
    assert_eq!(meta.len(), 0);
}

#[test]
fn empty_root_tree() {
    let fx = fixtures::empty_root_tree();
    let t = torrent_of(&fx);
    assert_eq!(t.files.len(), 1, "only the commit file");
    assert_eq!(t.trees.len(), 1);
    let fetched = round_trip(&fx);
    assert!(tree_contents(&fetched.repo).is_empty());
}

/// 256 levels is the v1 limit on nesting: the deepest commit xus accepts.
#[test]
fn deep_nesting() {
    let fx = fixtures::deep_nesting(256);
    let t = torrent_of(&fx);
    let deepest = t.files.iter().map(|f| f.raw_path.len()).max();
    assert_eq!(deepest, Some(257), "a file inside the 256th directory");
    round_trip(&fx);
}

#[test]
fn ten_thousand_files() {
    let fx = fixtures::many_files(10_000);
    assert_eq!(torrent_of(&fx).files.len(), 10_000);
    let fetched = round_trip(&fx);
    assert_eq!(tree_contents(&fetched.repo).len(), 10_000);
}

#[test]
fn two_hundred_megabyte_file() {
    let started = Instant::now();
    let fx = fixtures::large_file(200 * 1024 * 1024);
    eprintln!("200 MB fixture built in {:?}", started.elapsed());
    let t = torrent_of(&fx);
    assert_eq!(t.piece_length, 256 * 1024);
    assert!(t.piece_count() > 800, "{} pieces", t.piece_count());
    // The big file starts and ends inside a piece shared with a small one.
    let big = &t.files[1];
    assert!(!big.offset.is_multiple_of(t.piece_length));
    assert!(!(big.offset + big.length).is_multiple_of(t.piece_length));
    eprintln!("200 MB torrent built in {:?}", started.elapsed());
    round_trip(&fx);
}

#[test]
fn merge_commit() {
    let fx = fixtures::merge_commit();
    let parents = git(
        fx.repo.path(),
        &["rev-list", "--parents", "-n1", &fx.commit],
    );
    assert_eq!(parents.split_whitespace().count(), 3, "{parents}");
    round_trip(&fx);
}

#[test]
fn old_file_mode() {
    let fx = fixtures::old_file_mode();
    let fetched = round_trip(&fx);
    let listing = git(&fetched.repo, &["cat-file", "-p", "HEAD^{tree}"]);
    // `cat-file -p` shows the canonical mode; the raw tree keeps 100664.
    let raw = git_output(&fetched.repo, &["cat-file", "tree", "HEAD^{tree}"]).stdout;
    assert!(
        raw.windows(7).any(|w| w == b"100664 "),
        "mode lost: {listing}"
    );
}

#[test]
fn shared_objects() {
    let fx = fixtures::shared_objects();
    let t = torrent_of(&fx);
    assert_eq!(t.files.len(), 6, "every path is a file");
    assert_eq!(t.trees.len(), 2, "the shared subtree is carried once");
    round_trip(&fx);
}

/// Fetching a child commit into a repository that already holds its parent
/// reuses the parent's blobs and downloads only what changed.
#[test]
fn second_commit_reuses_blobs_already_fetched() {
    let (src, first, second) = fixtures::related_commits(8, 1 << 20);
    let seeder = spawn_seed(src.path(), &[&first, &second]);
    assert_eq!(seeder.seeded.len(), 2);
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("clone");
    let (out, _) = fetch(&seeder.seeded[0].magnet, &repo, &[]);
    assert!(out.contains(&first), "{out}");
    let (out, stderr) = fetch(&seeder.seeded[1].magnet, &repo, &[]);
    assert!(out.contains(&second), "{out}");
    assert_eq!(git(&repo, &["rev-parse", "HEAD"]), second);
    assert_fsck_clean(&repo);
    assert!(
        !repo.join(".git/shallow").exists(),
        "the parent is present, nothing is shallow"
    );
    let archive = git_archive(src.path(), &second);
    assert_same_files(archive.path(), &repo, true);

    let number_before = |text: &str, marker: &str| -> u64 {
        let at = text
            .find(marker)
            .unwrap_or_else(|| panic!("no {marker:?} in fetch output:\n{text}"));
        let digits: String = text[..at]
            .trim_end()
            .chars()
            .rev()
            .take_while(char::is_ascii_digit)
            .collect();
        digits
            .chars()
            .rev()
            .collect::<String>()
            .parse()
            .unwrap_or_else(|_| panic!("no number before {marker:?} in:\n{text}"))
    };
    let total = number_before(&stderr, "bytes in ");
    let reused = number_before(&stderr, "bytes of local blobs reused");
    let downloaded = number_before(&stderr, "bytes from peers");
    eprintln!("second fetch: total {total}, reused {reused}, downloaded {downloaded}");
    assert_eq!(total, 8 << 20);
    assert!(reused > 0, "nothing reused:\n{stderr}");
    assert_eq!(reused, 7 << 20, "the seven unchanged files are reused");
    assert!(
        downloaded < total,
        "downloaded {downloaded} of {total}:\n{stderr}"
    );
    // Only the changed file's pieces (plus the at most two pieces it shares
    // with its neighbours) travel.
    let piece = 16 * 1024;
    assert!(
        downloaded <= (1 << 20) + 2 * piece,
        "downloaded {downloaded} bytes for one changed 1 MiB file:\n{stderr}"
    );
}

/// Commits v1 cannot express are refused when building, with the reason.
#[test]
fn unshareable_commits_are_refused_clearly() {
    let repo = TestRepo::new();
    let p = repo.path();
    let data = fixtures::blob(p, b"x\n");
    // Two names that escape to the same torrent path.
    let collide = fixtures::tree(
        p,
        &[
            fixtures::Entry::file(b"a\xff", &data),
            fixtures::Entry::file("a%FF", &data),
        ],
    );
    let collide = fixtures::commit_tree(p, &collide, &[], "collision");
    // A backslash is an ordinary byte to Git on Linux, a separator elsewhere.
    let backslash = fixtures::tree(p, &[fixtures::Entry::file("a\\b", &data)]);
    let backslash = fixtures::commit_tree(p, &backslash, &[], "backslash");
    // One level deeper than v1 allows.
    let deep = fixtures::deep_nesting(257);
    let cases = [
        (p, collide.as_str(), "same torrent path"),
        (p, backslash.as_str(), "unsafe path component"),
        (deep.repo.path(), deep.commit.as_str(), "deeper than 256"),
    ];
    for (repo, commit, reason) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("t.torrent");
        let out = run_xus(
            &[
                "torrent",
                commit,
                "--repo",
                repo.to_str().expect("utf8"),
                "-o",
                file.to_str().expect("utf8"),
            ],
            T,
        );
        let stderr = stderr_of(&out);
        assert!(!out.status.success(), "{commit} was accepted");
        assert!(stderr.contains(reason), "{commit}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!file.exists());
    }
}

/// `xus torrent` gives the same infohash whatever the number of cores that
/// hash pieces and whether the parent's torrent is cached (its piece hashes
/// are then reused as hints).
#[test]
fn infohash_independent_of_cores_and_cache() {
    let (src, first, second) = fixtures::related_commits(8, 1 << 20);
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = src.path().to_str().expect("utf8").to_owned();
    let cache = src.path().join(".git/xus");
    let infohash = |rev: &str, one_core: bool| -> String {
        let file = dir.path().join("t.torrent");
        let mut args = vec![xus_bin(), "torrent", rev, "--repo", &repo, "-o"];
        args.push(file.to_str().expect("utf8"));
        let out = if one_core {
            std::process::Command::new("taskset")
                .args(["-c", "0"])
                .args(&args)
                .output()
        } else {
            std::process::Command::new(args[0])
                .args(&args[1..])
                .output()
        }
        .expect("running xus torrent");
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("infohash "))
            .unwrap_or_else(|| panic!("no infohash line in {stdout:?}"))
            .to_owned()
    };
    let reference = infohash(&second, true);
    let mut seen = Vec::new();
    for one_core in [true, false] {
        for parent_cached in [false, true] {
            let _ = std::fs::remove_dir_all(&cache);
            if parent_cached {
                infohash(&first, one_core);
            }
            seen.push((one_core, parent_cached, infohash(&second, one_core)));
        }
    }
    for (one_core, parent_cached, ih) in seen {
        assert_eq!(
            ih, reference,
            "one core: {one_core}, parent cached: {parent_cached}"
        );
    }
}
