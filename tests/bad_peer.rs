//! A peer that sends bad pieces is dropped and the fetch goes on; with only
//! bad peers, the fetch gives up and writes nothing.
//!
//! The bad peer is a real client: aria2c seeding, without checking them,
//! files whose every byte was altered.

mod util;

use std::path::Path;
use std::time::Duration;
use util::clients::Aria2;
use util::*;

const T: Duration = Duration::from_secs(120);

/// A commit and a `.torrent` of it, plus a corrupted checkout served by aria2c.
struct Setup {
    src: TestRepo,
    commit: String,
    torrent: std::path::PathBuf,
    _work: tempfile::TempDir,
    bad: Aria2,
}

fn setup() -> Setup {
    let src = TestRepo::new();
    for i in 0..4u8 {
        src.write(format!("f{i}.bin"), vec![i; 700_000]);
    }
    let commit = src.commit("data");
    let work = tempfile::tempdir().expect("tempdir");
    let torrent = work.path().join("c.torrent");
    xus_ok(
        &[
            "torrent",
            &commit,
            "--repo",
            src.path().to_str().expect("utf8"),
            "-o",
            torrent.to_str().expect("utf8"),
        ],
        T,
    );
    let seed_dir = work.path().join("bad");
    let checkout = seed_dir.join(&commit);
    std::fs::create_dir_all(&checkout).expect("mkdir");
    for i in 0..4u8 {
        std::fs::write(checkout.join(format!("f{i}.bin")), vec![!i; 700_000]).expect("write");
    }
    let bad = Aria2::seed_unverified(&torrent, &seed_dir, &work.path().join("aria2.log"));
    Setup {
        src,
        commit,
        torrent,
        _work: work,
        bad,
    }
}

fn refs(repo: &Path) -> String {
    git(repo, &["for-each-ref"])
}

#[test]
fn bad_peer_is_dropped_and_the_fetch_completes_from_a_good_one() {
    let s = setup();
    let good = spawn_seed(s.src.path(), &[&s.commit]);
    let dst = tempfile::tempdir().expect("tempdir");
    let repo = dst.path().join("r");
    let bad_peer = s.bad.addr.to_string();
    let good_peer = good.addr.to_string();
    xus_ok(
        &[
            "fetch",
            s.torrent.to_str().expect("utf8"),
            "--repo",
            repo.to_str().expect("utf8"),
            "--listen",
            "127.0.0.1:0",
            "--peer",
            &bad_peer,
            "--peer",
            &good_peer,
            "--branch",
            "main",
        ],
        T,
    );
    assert_eq!(git(&repo, &["rev-parse", "main"]), s.commit);
    assert_fsck_clean(&repo);
}

#[test]
fn only_bad_peers_means_no_commit_and_nothing_written() {
    let s = setup();
    let dst = tempfile::tempdir().expect("tempdir");
    let repo = dst.path().join("r");
    let bad_peer = s.bad.addr.to_string();
    let out = run_xus(
        &[
            "fetch",
            s.torrent.to_str().expect("utf8"),
            "--repo",
            repo.to_str().expect("utf8"),
            "--listen",
            "127.0.0.1:0",
            "--peer",
            &bad_peer,
            "--branch",
            "main",
            "--stall-timeout",
            "6",
        ],
        T,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("no progress for 6 s"), "{stderr}");
    // The scenario is real: the bad peer did send pieces, and they failed.
    assert!(stderr.contains("did not validate"), "{stderr}");
    assert_eq!(refs(&repo), "", "no ref may point at an unverified commit");
    let objects = git(&repo, &["count-objects", "-v"]);
    assert!(
        objects.contains("count: 0\n"),
        "nothing written to Git:\n{objects}"
    );
    assert_fsck_clean(&repo);
}
