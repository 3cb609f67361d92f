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
