//! [`StateDir`]: everything xus keeps inside a repository, in one place.
//!
//! ```text
//! <git dir>/xus/
//!   torrents/<commit>.info   built info dictionaries (a cache: rebuilt when absent or wrong)
//!   partial/<infohash>       bytes of an unfinished download, at their torrent offsets
//!   session/                 librqbit's scratch directory for `xus seed`
//!   updates/<a>..<b>.xup     update payloads built or fetched here, seeded while a head lists them
//!   quarantine-XXXXXX/       an update's objects while its commit torrent is checked; removed after
//!   seed.addr                what a running `xus seed` serves (read by `xus publish`)
//!   inflated-XXXXXX/         large blobs inflated for serving; removed when the reader ends
//! ```
//!
//! Nothing here is needed for Git itself: deleting the directory loses only
//! caches and unfinished downloads.

use std::fmt::Display;
use std::path::{Path, PathBuf};

use crate::git::object::ObjectId;

/// The `xus/` directory of one repository (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// The state directory of the repository whose git directory is
    /// `git_dir` (what `git2::Repository::path` gives).
    pub fn of(git_dir: &Path) -> Self {
        Self {
            root: git_dir.join("xus"),
        }
    }

    /// `<git dir>/xus`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the built torrent of `commit` is cached.
    pub fn torrent_cache(&self, commit: ObjectId) -> PathBuf {
        self.root.join("torrents").join(format!("{commit}.info"))
    }

    /// Where the downloaded bytes of the torrent `info_hash` are staged.
    pub fn staging(&self, info_hash: impl Display) -> PathBuf {
        self.root.join("partial").join(info_hash.to_string())
    }

    /// Where update payloads are kept (see `torrent::update::store`).
    pub fn updates(&self) -> PathBuf {
        self.root.join("updates")
    }

    /// librqbit's scratch directory for a long-running seed.
    pub fn session(&self) -> PathBuf {
        self.root.join("session")
    }

    /// What a running `xus seed` serves: its address, then one infohash a
    /// line.
    pub fn seed_addr(&self) -> PathBuf {
        self.root.join("seed.addr")
    }

    /// Creates a fresh directory for inflated blobs; it is removed when the
    /// returned value drops.
    ///
    /// # Errors
    ///
    /// The directory cannot be created.
    pub fn inflated(&self) -> std::io::Result<tempfile::TempDir> {
        std::fs::create_dir_all(&self.root)?;
        tempfile::Builder::new()
            .prefix("inflated-")
            .tempdir_in(&self.root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_stays_under_the_git_dir() {
        let git_dir = Path::new("/repo/.git");
        let state = StateDir::of(git_dir);
        let commit = ObjectId([7; 20]);
        for path in [
            state.torrent_cache(commit),
            state.staging("ab"),
            state.session(),
            state.seed_addr(),
        ] {
            assert!(path.starts_with("/repo/.git/xus"), "{}", path.display());
        }
        assert_eq!(
            state
                .torrent_cache(commit)
                .file_name()
                .and_then(|n| n.to_str()),
            Some(format!("{commit}.info").as_str())
        );
    }

    #[test]
    fn inflated_directories_go_away_when_dropped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = StateDir::of(dir.path());
        let inflated = state.inflated().expect("created");
        let path = inflated.path().to_owned();
        assert!(path.starts_with(state.root()) && path.is_dir());
        drop(inflated);
        assert!(!path.exists());
    }
}
