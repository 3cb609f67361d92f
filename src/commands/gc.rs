//! `xus gc`: removes what killed xus processes left in a repository, which
//! Git's own `gc` does not know to remove (temporary packs of an import cut
//! short, update quarantines, inflated blobs). Every fetch does the same before it writes a pack; this is for a
//! repository no fetch will touch soon.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

/// Prints `removed <path>` per file or directory, then `removed <n> file(s), <bytes> bytes`.
pub fn run(repo: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let repository = git2::Repository::open(repo)
        .with_context(|| format!("{} is not a Git repository", repo.display()))?;
    let (mut removed, mut bytes) = crate::git::pack_leftovers::remove_abandoned(repository.path())
        .with_context(|| format!("looking for temporary packs in {}", repo.display()))?;
    let (dirs, dir_bytes) = crate::git::state_dir::remove_abandoned_dirs(repository.path())
        .with_context(|| format!("looking for abandoned directories in {}", repo.display()))?;
    removed.extend(dirs);
    bytes += dir_bytes;
    for path in &removed {
        writeln!(out, "removed {}", path.display())?;
    }
    writeln!(out, "removed {} file(s), {bytes} bytes", removed.len())?;
    Ok(())
}
