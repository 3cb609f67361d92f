//! A fetch finds the pieces of a changed file in older versions kept at
//! other paths: a directory renamed for a new version (as Python wheels
//! rename `pkg-1.2.dist-info/`), a file renamed and edited.

mod util;

use std::time::Duration;
use util::fixtures::Prng;
use util::*;

const T: Duration = Duration::from_secs(180);

/// `data` with a line put in front (every later byte moves) and ten bytes
/// overwritten at `at`.
fn edited(data: &[u8], at: usize) -> Vec<u8> {
    let mut out = b"a line added at the top\n".to_vec();
    out.extend_from_slice(data);
    out[at..at + 10].copy_from_slice(b"0123456789");
    out
}

fn fetch(magnet: &str, repo: &std::path::Path, extra: &[&str]) -> String {
    let mut args = vec!["fetch", magnet, "--repo", repo.to_str().expect("utf8")];
    args.extend_from_slice(extra);
    let out = run_xus(&args, T);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "fetch failed:\n{stderr}");
    stderr
}

#[test]
fn renamed_directory_and_renamed_file_are_patched_from_their_old_paths() {
    let src = TestRepo::new();
    let record = Prng(1).bytes(2 << 20);
    let draft = Prng(2).bytes(2 << 20);
    src.write("site/a-1.0.dist-info/RECORD", &record);
    src.write("notes/draft.txt", &draft);
    src.write("README", "unchanged\n");
    let first = src.commit("first");

    std::fs::remove_dir_all(src.path().join("site/a-1.0.dist-info")).expect("rm");
    std::fs::remove_file(src.path().join("notes/draft.txt")).expect("rm");
    let new_record = edited(&record, 1 << 20);
    let final_text = edited(&draft, 300_000);
    src.write("site/a-1.1.dist-info/RECORD", &new_record);
    src.write("notes/final.txt", &final_text);
    let second = src.commit("second: a 1.1, the draft is final");

    let seeder = spawn_seed(src.path(), &[&first, &second]);
    let dst = tempfile::tempdir().expect("tempdir");
    let repo = dst.path().join("r");
    fetch(&seeder.seeded[0].magnet, &repo, &["--branch", "main"]);
    let stderr = fetch(
        &seeder.seeded[1].magnet,
        &repo,
        &["--branch", "main", "--checkout"],
    );

    let changed = (new_record.len() + final_text.len()) as u64;
    let patched = reported(&stderr, "patched from older versions");
    let downloaded = reported(&stderr, "downloaded");
    eprintln!("patched {patched} of {changed} changed bytes, downloaded {downloaded}");
    assert_eq!(reported(&stderr, "of local blobs reused"), 10, "{stderr}");
    assert!(
        patched > changed * 9 / 10,
        "both renamed files come from their old paths:\n{stderr}"
    );
    assert!(
        downloaded < changed / 10,
        "only the edited pieces are downloaded:\n{stderr}"
    );
    assert_eq!(git(&repo, &["rev-parse", "main"]), second);
    assert_fsck_clean(&repo);
    let archive = git_archive(src.path(), &second);
    assert_same_files(archive.path(), &repo, true);
}
