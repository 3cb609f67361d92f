//! Built torrents kept beside the repository, so a commit is hashed once.
//!
//! A cache entry is the info dictionary at `<git dir>/xus/torrents/<commit>.info`.
//! It is parsed (and so fully validated) on every load and ignored when it
//! does not describe the commit asked for.

use std::path::PathBuf;

use crate::git::object::ObjectId;
use crate::git::state_dir::StateDir;
use crate::torrent::format::{self, BuildError, CommitTorrent};

fn entry_path(repo: &git2::Repository, commit: ObjectId) -> PathBuf {
    StateDir::of(repo.path()).torrent_cache(commit)
}

/// Cached torrents of `commit`'s parents: most commits change a few files,
/// so most of their pieces can be taken from the parent's torrent.
fn parent_torrents(repo: &git2::Repository, commit: ObjectId) -> Vec<CommitTorrent> {
    let Ok(commit) = repo.find_commit(commit.to_git()) else {
        return Vec::new();
    };
    commit
        .parent_ids()
        .filter_map(ObjectId::from_git)
        .filter_map(|parent| std::fs::read(entry_path(repo, parent)).ok())
        .filter_map(|bytes| CommitTorrent::parse(&bytes).ok())
        .collect()
}

/// The torrent of `commit`, from the cache or freshly built (and then cached;
/// a cache that cannot be written only costs a rebuild next time).
pub fn load_or_build(
    repo: &git2::Repository,
    commit: ObjectId,
) -> Result<CommitTorrent, BuildError> {
    let path = entry_path(repo, commit);
    if let Ok(bytes) = std::fs::read(&path)
        && let Ok(torrent) = CommitTorrent::parse(&bytes)
        && torrent.commit == commit
    {
        return Ok(torrent);
    }
    let torrent = format::build_with_hints(repo, commit, &parent_torrents(repo, commit))?;
    store(repo.path(), &torrent);
    Ok(torrent)
}

/// The cached torrent of `commit`, if there is a valid one.
pub fn load(git_dir: &std::path::Path, commit: ObjectId) -> Option<CommitTorrent> {
    let bytes = std::fs::read(StateDir::of(git_dir).torrent_cache(commit)).ok()?;
    CommitTorrent::parse(&bytes)
        .ok()
        .filter(|torrent| torrent.commit == commit)
}

/// Caches a torrent built elsewhere (a fetch that rebuilt it from an
/// update); a cache that cannot be written only costs a rebuild later.
pub fn store(git_dir: &std::path::Path, torrent: &CommitTorrent) {
    let path = StateDir::of(git_dir).torrent_cache(torrent.commit);
    if let Some(dir) = path.parent()
        && std::fs::create_dir_all(dir).is_ok()
    {
        let tmp = path.with_extension("tmp");
        if std::fs::write(&tmp, &torrent.info_bytes).is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
    }
}
