//! Measures update torrents on a real step: the update from `FROM` to `TO`
//! in an existing repository at zstd levels 3, 9 and 19, against the raw
//! objects it carries and `git pack-objects --revs --thin` for the same
//! step (so the `git` command is needed here, unlike in xus itself).
//!
//! ```text
//! cargo run --release --example update_measure -- REPO FROM TO
//! ```
//!
//! Make REPO by committing one release, then the next, in order.

use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::Context;
use xus::git::object::ObjectId;
use xus::torrent::update::{UpdateSettings, apply_update, build_update};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [repo_path, from, to] = args.as_slice() else {
        anyhow::bail!("usage: update_measure REPO FROM TO");
    };
    let repo = git2::Repository::open(repo_path).with_context(|| format!("opening {repo_path}"))?;
    let resolve = |rev: &str| -> anyhow::Result<ObjectId> {
        let oid = repo.revparse_single(rev)?.peel_to_commit()?.id();
        ObjectId::from_git(oid).context("SHA-1 repositories only")
    };
    let (from, to) = (resolve(from)?, resolve(to)?);
    let thin = thin_pack_bytes(repo.path(), from, to)?;
    for level in [3, 9, 19] {
        let settings = UpdateSettings {
            level,
            ..UpdateSettings::default()
        };
        let start = Instant::now();
        let update = build_update(&repo, from, to, &settings)?;
        let built = start.elapsed();
        let start = Instant::now();
        apply_update(&repo, &update.payload)?;
        let applied = start.elapsed();
        println!(
            "level {level}: {} objects, raw {} B, update {} B, git thin pack {thin} B ({:.2}x), build {built:.2?}, apply {applied:.2?}",
            update.stats.objects,
            update.stats.bytes_raw,
            update.payload.len(),
            update.payload.len() as f64 / thin as f64,
        );
    }
    Ok(())
}

/// Bytes of `git pack-objects --revs --thin` from `from` to `to`.
fn thin_pack_bytes(git_dir: &std::path::Path, from: ObjectId, to: ObjectId) -> anyhow::Result<u64> {
    let mut child = Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(["pack-objects", "--revs", "--thin", "--stdout", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("running git pack-objects")?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().context("git's stdin")?;
        writeln!(stdin, "{to}\n^{from}")?;
    }
    let out = child.wait_with_output()?;
    anyhow::ensure!(out.status.success(), "git pack-objects failed");
    Ok(out.stdout.len() as u64)
}
