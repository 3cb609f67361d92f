//! Keeps the packs a fetch wrote safe from a concurrent `git gc` until Git
//! has pointed refs at them. Their objects are unreachable until then, and
//! `git repack -a -d` would drop them. Each new pack gets a `.keep` file;
//! the first is handed to Git with `lock <file>` (gitremote-helpers(7):
//! Git deletes it once the refs are updated; it keeps only one lock per
//! fetch), and the helper deletes every one it made when Git closes its
//! input, which Git does after updating the refs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The `.keep` files this helper made.
#[derive(Default)]
pub(super) struct PackLocks {
    made: Vec<PathBuf>,
}

/// The packs under `git_dir` now.
pub(super) fn packs(git_dir: &Path) -> BTreeSet<PathBuf> {
    std::fs::read_dir(git_dir.join("objects").join("pack"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| path.extension().is_some_and(|e| e == "pack"))
                .collect()
        })
        .unwrap_or_default()
}

impl PackLocks {
    /// Writes a `.keep` beside every pack under `git_dir` that `before`
    /// did not list (and that has none); returns the first, for Git's
    /// `lock` line.
    pub(super) fn lock_new(
        &mut self,
        git_dir: &Path,
        before: &BTreeSet<PathBuf>,
    ) -> Option<PathBuf> {
        let mut first = None;
        for pack in packs(git_dir).difference(before) {
            let keep = pack.with_extension("keep");
            let made = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&keep)
                .and_then(|mut file| {
                    std::io::Write::write_all(&mut file, b"git-remote-xus: fetched, refs pending\n")
                });
            match made {
                Ok(()) => {
                    first.get_or_insert_with(|| keep.clone());
                    self.made.push(keep);
                }
                Err(error) => {
                    tracing::warn!(keep = %keep.display(), %error, "cannot keep a fetched pack from gc")
                }
            }
        }
        first
    }
}

impl Drop for PackLocks {
    fn drop(&mut self) {
        for keep in &self.made {
            // Git may have deleted the one it was handed already.
            let _ = std::fs::remove_file(keep);
        }
    }
}
