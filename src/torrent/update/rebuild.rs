//! The last check before an update is written: the commit torrent of `to`,
//! rebuilt from the update's verified objects and the repository's, must be
//! the torrent the signed head names.
//!
//! As `git receive-pack` does, the objects go first into a quarantine: a
//! throw-away repository inside `<git dir>/xus/` whose object database
//! borrows the real one's (`objects/info/alternates`). The torrent is built
//! there (the builder's hashing threads each open the repository by path,
//! so the objects must be on disk); only when its infohash matches is the
//! pack moved into the real repository. Refs never see a quarantined object.

use std::path::{Path, PathBuf};

use super::{Applied, UpdateError};
use crate::git::object::ObjectId;
use crate::git::state_dir::StateDir;
use crate::torrent::format::{self, CommitTorrent};

/// An update's objects written beside the repository, not yet in it.
/// Dropping it deletes them.
pub struct Quarantine {
    dir: tempfile::TempDir,
    git_dir: PathBuf,
    shallow: Vec<ObjectId>,
}

impl Quarantine {
    /// Moves the quarantined pack into the repository (pack first, then its
    /// index: Git sees a pack only once its index is there) and records the
    /// update's shallow boundaries.
    ///
    /// # Errors
    ///
    /// A rename or the shallow file fails.
    pub fn accept(self) -> Result<(), UpdateError> {
        let from = self.dir.path().join("objects").join("pack");
        let to = self.git_dir.join("objects").join("pack");
        let io = |source| UpdateError::Quarantine {
            dir: from.clone(),
            source,
        };
        let mut packs = Vec::new();
        for entry in std::fs::read_dir(&from).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.extension().is_some_and(|e| e == "pack") {
                packs.push(path);
            }
        }
        std::fs::create_dir_all(&to).map_err(io)?;
        for pack in packs {
            let idx = pack.with_extension("idx");
            let name = |p: &Path| to.join(p.file_name().unwrap_or_default());
            std::fs::rename(&pack, name(&pack)).map_err(io)?;
            std::fs::rename(&idx, name(&idx)).map_err(io)?;
        }
        crate::git::repo::add_shallow(&self.git_dir, &self.shallow).map_err(|source| {
            UpdateError::Shallow {
                path: self.git_dir.join("shallow"),
                source,
            }
        })
    }
}

/// Writes `applied` into a quarantine beside the repository at `git_dir`
/// and builds the commit torrent of `applied.to` there. `hints` (the torrent
/// of `from`, when cached) save re-hashing unchanged pieces. The caller
/// compares the torrent with the signed head, then [`Quarantine::accept`]s
/// or drops it.
///
/// # Errors
///
/// The quarantine cannot be made or written, or the torrent cannot be built.
pub fn rebuild_commit_torrent(
    git_dir: &Path,
    applied: &Applied,
    hints: &[CommitTorrent],
) -> Result<(CommitTorrent, Quarantine), UpdateError> {
    let state = StateDir::of(git_dir);
    let io = |dir: &Path| {
        let dir = dir.to_owned();
        move |source| UpdateError::Quarantine { dir, source }
    };
    std::fs::create_dir_all(state.root()).map_err(io(state.root()))?;
    let dir = tempfile::Builder::new()
        .prefix("quarantine-")
        .tempdir_in(state.root())
        .map_err(io(state.root()))?;
    let git_error = |what: &'static str| {
        let id = applied.to;
        move |source| UpdateError::Git { what, id, source }
    };
    let repo = git2::Repository::init_bare(dir.path()).map_err(git_error("quarantine for"))?;
    let objects = std::fs::canonicalize(git_dir.join("objects")).map_err(io(git_dir))?;
    let info = dir.path().join("objects").join("info");
    std::fs::create_dir_all(&info).map_err(io(&info))?;
    std::fs::write(info.join("alternates"), format!("{}\n", objects.display()))
        .map_err(io(&info))?;
    applied.write_pack(dir.path())?;
    let torrent = format::build_with_hints(&repo, applied.to, hints)?;
    Ok((
        torrent,
        Quarantine {
            dir,
            git_dir: git_dir.to_owned(),
            shallow: applied.shallow.clone(),
        },
    ))
}
