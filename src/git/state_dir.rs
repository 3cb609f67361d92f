//! [`StateDir`]: everything xus keeps inside a repository, in one place.
//!
//! ```text
//! <git dir>/xus/
//!   torrents/<commit>.info   built info dictionaries (a cache: rebuilt when absent or wrong)
//!   partial/<infohash>       bytes of an unfinished download, at their torrent offsets
//!   session/                 librqbit's scratch directory for `xus seed`
//!   updates/<a>..<b>.xup     update payloads built or fetched here, seeded while a head lists them
//!   quarantine-XXXXXX/       an update's objects while its commit torrent is checked; removed after
//!                            (each such directory holds `owner.lock`, locked while its process lives)
//!   seed.addr                what a running `xus seed` serves (read by `xus publish`)
//!   inflated-XXXXXX/         large blobs inflated for serving; removed when the reader ends
//! ```
//!
//! Nothing here is needed for Git itself: deleting the directory loses only
//! caches and unfinished downloads.

use std::fmt::Display;
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

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

    /// Where `xus verify --repair` sets aside what it found broken (damaged
    /// packs, corrupt loose objects, edited work-tree files), one directory
    /// per repair named by its start time: never deleted by xus.
    pub fn damaged(&self, started_unix: u64) -> PathBuf {
        self.root.join("damaged").join(started_unix.to_string())
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
    pub fn inflated(&self) -> std::io::Result<OwnedDir> {
        self.owned_dir(INFLATED_PREFIX)
    }

    /// Creates a fresh `<prefix>XXXXXX/` directory here, locked by this
    /// process until the returned value drops (when it is removed). A
    /// process killed meanwhile leaves it unlocked, for
    /// [`remove_abandoned_dirs`].
    ///
    /// # Errors
    ///
    /// The directory or its lock cannot be made.
    pub fn owned_dir(&self, prefix: &str) -> std::io::Result<OwnedDir> {
        std::fs::create_dir_all(&self.root)?;
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&self.root)?;
        // Locked under a name the sweep ignores, then renamed: a sweep never
        // sees an unlocked `owner.lock` of a live process.
        let staging = dir.path().join("owner.new");
        let lock = File::create(&staging)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(std::io::Error::other("a fresh directory's lock is taken"));
            }
            // A file system without locks: the sweep cannot lock it either,
            // and keeps the directory.
            Err(TryLockError::Error(_)) => {}
        }
        std::fs::rename(&staging, dir.path().join(OWNER_LOCK))?;
        Ok(OwnedDir { dir, _lock: lock })
    }
}

/// Prefixes of the directories [`StateDir::owned_dir`] makes.
const INFLATED_PREFIX: &str = "inflated-";
/// See [`INFLATED_PREFIX`].
pub const QUARANTINE_PREFIX: &str = "quarantine-";

/// The lock file inside an owned directory.
const OWNER_LOCK: &str = "owner.lock";

/// An owned directory with no `owner.lock` (made by an older xus, or killed
/// in the microseconds before the lock was renamed into place) is abandoned
/// once this old.
const UNLOCKED_AGE: Duration = Duration::from_secs(600);

/// A directory of the state dir that one live process owns (see
/// [`StateDir::owned_dir`]); removed on drop.
#[derive(Debug)]
pub struct OwnedDir {
    dir: tempfile::TempDir,
    _lock: File,
}

impl OwnedDir {
    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Removes the quarantines and inflated-blob directories that killed
/// processes left in `git_dir`'s state directory: those whose
/// `owner.lock` this process can lock (nobody holds it), or that have none
/// and are older than ten minutes. Returns what was removed and how many
/// bytes it held.
pub fn remove_abandoned_dirs(git_dir: &Path) -> std::io::Result<(Vec<PathBuf>, u64)> {
    let root = StateDir::of(git_dir).root;
    let entries = match std::fs::read_dir(&root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let mut removed = Vec::new();
    let mut bytes = 0;
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let owned = entry.file_name().to_str().is_some_and(|name| {
            name.starts_with(INFLATED_PREFIX) || name.starts_with(QUARANTINE_PREFIX)
        });
        if !owned || !entry.file_type().is_ok_and(|t| t.is_dir()) || !abandoned(&path) {
            continue;
        }
        let size = size_of_tree(&path);
        if std::fs::remove_dir_all(&path).is_ok() {
            bytes += size;
            removed.push(path);
        }
    }
    Ok((removed, bytes))
}

/// Whether nobody owns the directory `dir` any more.
fn abandoned(dir: &Path) -> bool {
    match File::open(dir.join(OWNER_LOCK)) {
        // A directory whose owner died never gets another one, so the lock
        // need not be held through the removal.
        Ok(lock) => matches!(lock.try_lock(), Ok(())),
        Err(_) => crate::git::pack_leftovers::older_than(dir, UNLOCKED_AGE),
    }
}

/// Bytes of the files under `dir` (what removing it frees).
fn size_of_tree(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.file_type() {
            Ok(t) if t.is_dir() => size_of_tree(&entry.path()),
            Ok(_) => entry.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
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

    #[test]
    fn abandoned_directories_go_and_owned_ones_stay() {
        let dir = tempfile::tempdir().expect("temp dir");
        let git_dir = dir.path();
        let state = StateDir::of(git_dir);
        // Owned by this very process: kept.
        let live = state.owned_dir(QUARANTINE_PREFIX).expect("owned");
        std::fs::write(live.path().join("pack"), b"live").expect("write");
        // What a killed process leaves: the lock file, unlocked.
        let dead = state.root().join(format!("{QUARANTINE_PREFIX}dead"));
        std::fs::create_dir_all(dead.join("objects")).expect("mkdir");
        std::fs::write(dead.join(OWNER_LOCK), b"").expect("write");
        std::fs::write(dead.join("objects/pack"), b"12345").expect("write");
        // No lock file and young: maybe a process in its first microseconds.
        let young = state.root().join(format!("{INFLATED_PREFIX}young"));
        std::fs::create_dir_all(&young).expect("mkdir");
        // Not ours at all.
        let other = state.root().join("partial");
        std::fs::create_dir_all(&other).expect("mkdir");

        let (removed, bytes) = remove_abandoned_dirs(git_dir).expect("sweep");
        assert_eq!(removed, vec![dead.clone()]);
        assert_eq!(bytes, 5);
        assert!(live.path().join("pack").exists() && young.exists() && other.exists());
        let kept = live.path().to_owned();
        drop(live);
        assert!(
            !kept.exists(),
            "an owned directory goes when its owner drops it"
        );
    }
}
