//! `xus verify` (issue 17 item 5): a repository with a corrupted pack, a
//! deleted loose object, an edited and a deleted work-tree file is reported
//! broken, then `xus verify --repair` makes it whole from a real seed:
//! `git fsck` clean, the checkout exact, only the broken blobs' pieces
//! downloaded, and nothing lost (the damaged pack and the edited file are
//! kept under `.git/xus/damaged/`).

mod util;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use util::*;

const T: Duration = Duration::from_secs(120);
const BLOB: usize = 300_000;

fn git_stdin(dir: &Path, args: &[&str], input: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("git");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    let out = child.wait_with_output().expect("git output");
    assert!(out.status.success(), "git {args:?} failed");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn the_pack(git_dir: &Path) -> PathBuf {
    let packs: Vec<PathBuf> = std::fs::read_dir(git_dir.join("objects/pack"))
        .expect("pack dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "pack"))
        .collect();
    assert_eq!(packs.len(), 1, "{packs:?}");
    packs[0].clone()
}

fn loose(git_dir: &Path, id: &str) -> PathBuf {
    git_dir.join("objects").join(&id[..2]).join(&id[2..])
}

/// A clone whose objects are one pack plus `loose_blob` alone as a loose
/// object, as a repository that fetched a pack then wrote one object gets.
fn clone_with_one_loose_object(src: &Path, dst: &Path, loose_blob: &str) {
    let out = Command::new("git")
        .args(["clone", "-q", "--no-local"])
        .arg(src)
        .arg(dst)
        .output()
        .expect("git clone");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let git_dir = dst.join(".git");
    let pack = the_pack(&git_dir);
    let bytes = std::fs::read(&pack).expect("pack");
    std::fs::remove_file(&pack).expect("remove pack");
    std::fs::remove_file(pack.with_extension("idx")).expect("remove idx");
    let _ = std::fs::remove_file(pack.with_extension("rev"));
    git_stdin(dst, &["unpack-objects", "-q"], &bytes);
    let all = git(dst, &["rev-list", "--objects", "--all"]);
    let ids: String = all
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|id| *id != loose_blob)
        .map(|id| format!("{id}\n"))
        .collect();
    git_stdin(
        dst,
        &["pack-objects", "-q", ".git/objects/pack/pack"],
        ids.as_bytes(),
    );
    git(dst, &["prune-packed"]);
    assert!(loose(&git_dir, loose_blob).exists());
}

/// Flips one byte in the middle of `blob`'s entry in the pack.
fn corrupt_in_pack(git_dir: &Path, blob: &str) {
    let pack = the_pack(git_dir);
    let listing = git(
        git_dir,
        &[
            "verify-pack",
            "-v",
            pack.with_extension("idx").to_str().expect("utf8"),
        ],
    );
    let line = listing
        .lines()
        .find(|l| l.starts_with(blob))
        .unwrap_or_else(|| panic!("{blob} not in the pack:\n{listing}"));
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(2)
        .take(3)
        .map(|f| f.parse().expect("a number"))
        .collect();
    let (in_pack, offset) = (fields[1], fields[2]);
    let mut bytes = std::fs::read(&pack).expect("pack");
    let at = usize::try_from(offset + in_pack / 2).expect("offset");
    bytes[at] ^= 0x5a;
    // Packs are read-only; the damage comes from below Git.
    let mut perms = std::fs::metadata(&pack).expect("meta").permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&pack, perms).expect("chmod");
    std::fs::write(&pack, bytes).expect("write pack");
}

fn events(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

#[test]
fn verify_reports_damage_and_repair_fetches_only_the_broken_blobs() {
    let src = TestRepo::new();
    src.write("assets/packed.bin", noise(BLOB, 1));
    src.write("assets/untouched.bin", noise(BLOB, 2));
    src.write("assets/loose.bin", noise(BLOB, 3));
    src.write("src/main.rs", "fn main() {}\n");
    src.write("docs/readme.md", "read me\n");
    let commit = src.commit("one");
    let packed = git(src.path(), &["rev-parse", "HEAD:assets/packed.bin"]);
    let loose_blob = git(src.path(), &["rev-parse", "HEAD:assets/loose.bin"]);
    let seeder = spawn_seed(src.path(), &[]);

    let dir = tempfile::tempdir().expect("tempdir");
    let dst = dir.path().join("work");
    clone_with_one_loose_object(src.path(), &dst, &loose_blob);
    let git_dir = dst.join(".git");
    assert_fsck_clean(&dst);
    corrupt_in_pack(&git_dir, &packed);
    std::fs::remove_file(loose(&git_dir, &loose_blob)).expect("delete loose object");
    std::fs::write(dst.join("src/main.rs"), "fn main() { edited(); }\n").expect("edit");
    std::fs::remove_file(dst.join("docs/readme.md")).expect("delete file");
    let fsck = git_output(&dst, &["fsck", "--full"]);
    assert!(!fsck.status.success(), "the damage is real");

    let repo = dst.to_str().expect("utf8");
    let out = run_xus(&["--json", "verify", "--repo", repo], T);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found = events(&String::from_utf8_lossy(&out.stdout));
    let broken: Vec<(String, String)> = found
        .iter()
        .filter(|e| e["event"] == "broken")
        .map(|e| {
            let what = e["what"].as_str().expect("what").to_owned();
            let which = e["id"].as_str().or(e["path"].as_str()).expect("which");
            (what, which.to_owned())
        })
        .collect();
    for expected in [
        ("corrupt_object", packed.as_str()),
        ("missing_object", loose_blob.as_str()),
        ("damaged_pack", ""),
        ("changed_file", ""),
        ("missing_file", ""),
    ] {
        assert!(
            broken
                .iter()
                .any(|(what, which)| what == expected.0 && which.starts_with(expected.1)),
            "no {expected:?} in {broken:?}"
        );
    }
    let paths: Vec<&str> = found
        .iter()
        .filter(|e| e["what"] == "changed_file" || e["what"] == "missing_file")
        .filter_map(|e| e["path"].as_str())
        .collect();
    assert_eq!(
        paths,
        ["docs/readme.md", "src/main.rs"],
        "only the two files"
    );
    let verified = found.last().expect("events");
    assert_eq!(verified["event"], "verified");
    assert_eq!(verified["commit"], commit.as_str());
    assert_eq!(verified["problems"], broken.len());

    let out = run_xus(
        &[
            "--json",
            "verify",
            "--repair",
            "--repo",
            repo,
            "--source",
            &seeder.seeded[0].magnet,
            "--no-dht",
            "--listen",
            "127.0.0.1:0",
        ],
        T,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let repaired = events(&stdout);
    let named =
        |name: &str| -> Vec<&Value> { repaired.iter().filter(|e| e["event"] == name).collect() };
    assert_eq!(named("repaired").len(), 1, "{stdout}");
    assert_fsck_clean(&dst);
    assert_eq!(
        git(&dst, &["status", "--porcelain"]),
        "",
        "an exact checkout"
    );
    assert_same_files(src.path(), &dst, true);

    // Only the two broken blobs moved (whole pieces of 16 KiB around them).
    let downloaded = named("downloaded");
    let from_peers = downloaded
        .last()
        .and_then(|d| d["from_peers"].as_u64())
        .expect("a downloaded event");
    let broken_bytes = 2 * BLOB as u64;
    eprintln!("repair downloaded {from_peers} bytes from peers for {broken_bytes} broken bytes");
    assert!(from_peers >= broken_bytes, "{from_peers}");
    assert!(
        from_peers <= broken_bytes + 4 * 16 * 1024,
        "{from_peers} bytes downloaded for {broken_bytes} broken"
    );

    // Nothing lost: the damaged pack and the edited file are kept.
    let aside: Vec<String> = named("set_aside")
        .iter()
        .filter_map(|e| e["path"].as_str().map(str::to_owned))
        .collect();
    assert!(aside.iter().any(|p| p.ends_with(".pack")), "{aside:?}");
    assert!(aside.iter().all(|p| Path::new(p).exists()), "{aside:?}");
    let restored = named("restored");
    let edited = restored
        .iter()
        .find(|e| e["path"] == "src/main.rs")
        .and_then(|e| e["backup"].as_str())
        .expect("the edited file's backup");
    assert_eq!(
        std::fs::read_to_string(edited).expect("backup"),
        "fn main() { edited(); }\n"
    );
    assert!(
        restored
            .iter()
            .any(|e| e["path"] == "docs/readme.md" && e["backup"].is_null()),
        "{restored:?}"
    );

    // And a plain verify now says so, in text.
    let out = run_xus(&["verify", "--repo", repo], T);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!("verified {commit}: ")) && text.contains(", 0 problem(s)"),
        "{text}"
    );
}
