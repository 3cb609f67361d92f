//! A fetch never downloads what the repository already has: local blobs,
//! pieces found in older versions of a changed file (rsync style), and pieces
//! verified before an interruption.

mod util;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use util::*;

const T: Duration = Duration::from_secs(180);

/// Deterministic pseudo-random bytes (xorshift), fast enough for megabytes.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn fetch(magnet: &str, repo: &std::path::Path, extra: &[&str]) -> (String, String) {
    let mut args = vec!["fetch", magnet, "--repo", repo.to_str().expect("utf8")];
    args.extend_from_slice(extra);
    let out = run_xus(&args, T);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "fetch failed:\n{stderr}");
    (stdout, stderr)
}

#[test]
fn changed_file_is_patched_from_its_older_version() {
    let src = TestRepo::new();
    let original = noise(4 << 20, 7);
    src.write("big.bin", &original);
    src.write("other.txt", "unchanged\n");
    let first = src.commit("first");

    // Insert bytes near the start (shifting everything after) and overwrite a
    // few bytes in the middle.
    let mut changed = b"inserted at the front".to_vec();
    changed.extend_from_slice(&original);
    changed[2 << 20..(2 << 20) + 10].copy_from_slice(b"0123456789");
    src.write("big.bin", &changed);
    let second = src.commit("second");

    let seeder = spawn_seed(src.path(), &[&first, &second]);
    let dst = tempfile::tempdir().expect("tempdir");
    let repo = dst.path().join("r");
    fetch(&seeder.seeded[0].magnet, &repo, &["--branch", "main"]);
    let (_, stderr) = fetch(
        &seeder.seeded[1].magnet,
        &repo,
        &["--branch", "main", "--checkout"],
    );

    let total = changed.len() as u64 + 10;
    let patched = reported(&stderr, "patched from older versions");
    let reused = reported(&stderr, "of local blobs reused");
    let downloaded = reported(&stderr, "downloaded");
    assert_eq!(reused, 10, "other.txt is reused whole:\n{stderr}");
    assert!(
        patched > total * 9 / 10,
        "most of big.bin comes from its older version:\n{stderr}"
    );
    assert!(
        downloaded < total / 10,
        "only the changed pieces are downloaded:\n{stderr}"
    );
    assert_eq!(git(&repo, &["rev-parse", "main"]), second);
    assert_fsck_clean(&repo);
    let archive = git_archive(src.path(), &second);
    assert_same_files(archive.path(), &repo, true);
}

#[test]
fn interrupted_fetch_leaves_a_valid_repository_and_resumes() {
    let src = TestRepo::new();
    src.write("a.bin", noise(24 << 20, 1));
    src.write("b.bin", noise(24 << 20, 2));
    let commit = src.commit("big");
    // 8 MiB/s: the download takes about six seconds.
    let seeder = spawn_seed(src.path(), &["--max-upload", "8192"]);
    let magnet = seeder.seeded[0].magnet.clone();
    let dst = tempfile::tempdir().expect("tempdir");
    let repo = dst.path().join("r");

    let mut child = xus_command()
        .args([
            "fetch",
            &magnet,
            "--repo",
            repo.to_str().expect("utf8"),
            "--branch",
            "main",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fetch");
    let stderr = child.stderr.take().expect("stderr");
    let mut guard = ChildGuard {
        child,
        name: "xus fetch".into(),
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Wait until some bytes have arrived, then kill it hard.
    let deadline = Instant::now() + T;
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("fetch reports progress");
        if let Some(rest) = line.strip_prefix("progress ") {
            let have: u64 = rest
                .split('/')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            if have > 4 << 20 {
                break;
            }
        }
    }
    guard.child.kill().expect("kill fetch");
    let _ = guard.child.wait();

    // Nothing points at a partial commit, and the repository is valid.
    assert!(
        git_output(&repo, &["rev-parse", "--verify", "-q", "main"])
            .stdout
            .is_empty()
    );
    assert!(git(&repo, &["for-each-ref", "refs/xus"]).is_empty());
    assert_fsck_clean(&repo);

    let (stdout, stderr) = fetch(&magnet, &repo, &["--branch", "main"]);
    assert!(stdout.contains(&commit));
    let verified = reported(&stderr, "already verified");
    assert!(verified >= 4 << 20, "the second run resumes:\n{stderr}");
    assert_eq!(git(&repo, &["rev-parse", "main"]), commit);
    assert_fsck_clean(&repo);
    assert!(
        !repo
            .join(".git/xus/partial")
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(false),
        "staging files are removed after import"
    );
}

/// The temporary pack files (`tmp_xus_*`) in a repository.
fn temporary_packs(repo: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(repo.join(".git/objects/pack"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("tmp_xus_"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// An import killed while it writes its pack leaves a temporary pack; the
/// next fetch removes it (no process holds its lock any more), and so does
/// `xus gc`.
#[test]
fn a_killed_import_leaves_no_temporary_pack_for_long() {
    let src = TestRepo::new();
    src.write("big.bin", noise(96 << 20, 11));
    let commit = src.commit("big");
    let seeder = spawn_seed(src.path(), &[]);
    let magnet = seeder.seeded[0].magnet.clone();
    let dst = tempfile::tempdir().expect("tempdir");
    let repo = dst.path().join("r");

    let child = xus_command()
        .args(["fetch", &magnet, "--repo"])
        .arg(&repo)
        .args(["--branch", "main", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn fetch");
    let mut guard = ChildGuard {
        child,
        name: "xus fetch".into(),
    };
    let started = Instant::now();
    // Killed once a `.pack` is being written: the empty `.new` that exists
    // for the microseconds before the writer locks and renames it is only
    // swept after ten minutes (an unlocked `.new` might be a live writer's),
    // which CI once hit by killing in that window.
    while !temporary_packs(&repo)
        .iter()
        .any(|p| p.extension().is_some_and(|e| e == "pack"))
    {
        assert!(
            guard.child.try_wait().expect("poll").is_none(),
            "the fetch ended before its pack was seen"
        );
        assert!(started.elapsed() < T, "no temporary pack within {T:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
    guard.child.kill().expect("kill fetch");
    let _ = guard.child.wait();
    let left = temporary_packs(&repo);
    assert!(!left.is_empty(), "SIGKILL left nothing to clean");

    fetch(&magnet, &repo, &["--branch", "main"]);
    assert_eq!(git(&repo, &["rev-parse", "main"]), commit);
    assert_eq!(temporary_packs(&repo), Vec::<std::path::PathBuf>::new());
    assert_fsck_clean(&repo);

    // What a killed process left where no fetch will come: `xus gc`. An
    // update quarantine of a killed process (its lock file unlocked) goes
    // too.
    std::fs::write(repo.join(".git/objects/pack/tmp_xus_1_0.pack"), b"PACK").expect("write");
    let quarantine = repo.join(".git/xus/quarantine-killed");
    std::fs::create_dir_all(&quarantine).expect("mkdir");
    std::fs::write(quarantine.join("owner.lock"), b"").expect("write");
    std::fs::write(quarantine.join("objects"), b"123456").expect("write");
    let out = run_xus(&["gc", "--repo", repo.to_str().expect("utf8")], T);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("removed 2 file(s), 10 bytes"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(temporary_packs(&repo), Vec::<std::path::PathBuf>::new());
    assert!(
        !quarantine.exists(),
        "the killed process's quarantine is left"
    );
}
