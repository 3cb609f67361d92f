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
    dir: crate::git::state_dir::OwnedDir,
    git_dir: PathBuf,
    shallow: Vec<ObjectId>,
}

impl Quarantine {
    /// An empty quarantine beside the repository whose git directory is
    /// `git_dir`, seeing every object of it.
    ///
    /// # Errors
    ///
    /// The directory cannot be made.
    pub fn new(git_dir: &Path) -> Result<Self, UpdateError> {
        let state = StateDir::of(git_dir);
        let dir = state
            .owned_dir(crate::git::state_dir::QUARANTINE_PREFIX)
            .map_err(io(state.root()))?;
        git2::Repository::init_bare(dir.path()).map_err(|source| UpdateError::Git {
            what: "quarantine beside",
            id: ObjectId([0; 20]),
            source,
        })?;
        let objects = std::fs::canonicalize(git_dir.join("objects")).map_err(io(git_dir))?;
        let info = dir.path().join("objects").join("info");
        std::fs::create_dir_all(&info).map_err(io(&info))?;
        std::fs::write(info.join("alternates"), format!("{}\n", objects.display()))
            .map_err(io(&info))?;
        Ok(Self {
            dir,
            git_dir: git_dir.to_owned(),
            shallow: Vec::new(),
        })
    }

    /// The quarantine's git directory: open it to apply the next update of
    /// a chain against what the earlier ones brought.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes the objects of `applied` (verified by [`super::apply_update`])
    /// into the quarantine, and remembers its shallow boundaries.
    ///
    /// # Errors
    ///
    /// The pack cannot be written.
    pub fn add(&mut self, applied: &Applied) -> Result<(), UpdateError> {
        applied.write_pack(self.dir.path())?;
        self.shallow.extend(&applied.shallow);
        Ok(())
    }

    /// Builds the commit torrent of `commit` from the quarantine and the
    /// repository. `hints` (an older commit's cached torrent) save re-hashing
    /// unchanged pieces.
    ///
    /// # Errors
    ///
    /// The quarantine cannot be opened or the torrent cannot be built.
    pub fn commit_torrent(
        &self,
        commit: ObjectId,
        hints: &[CommitTorrent],
    ) -> Result<CommitTorrent, UpdateError> {
        let repo =
            git2::Repository::open_bare(self.dir.path()).map_err(|source| UpdateError::Git {
                what: "quarantine for",
                id: commit,
                source,
            })?;
        Ok(format::build_with_hints(&repo, commit, hints)?)
    }

    /// Moves the quarantined packs into the repository (each pack first,
    /// then its index: Git sees a pack only once its index is there) and
    /// records the shallow boundaries.
    ///
    /// # Errors
    ///
    /// A rename or the shallow file fails.
    pub fn accept(self) -> Result<(), UpdateError> {
        let from = self.dir.path().join("objects").join("pack");
        let to = self.git_dir.join("objects").join("pack");
        let mut packs = Vec::new();
        for entry in std::fs::read_dir(&from).map_err(io(&from))? {
            let path = entry.map_err(io(&from))?.path();
            if path.extension().is_some_and(|e| e == "pack") {
                packs.push(path);
            }
        }
        std::fs::create_dir_all(&to).map_err(io(&to))?;
        for pack in packs {
            let idx = pack.with_extension("idx");
            let name = |p: &Path| to.join(p.file_name().unwrap_or_default());
            std::fs::rename(&pack, name(&pack)).map_err(io(&to))?;
            std::fs::rename(&idx, name(&idx)).map_err(io(&to))?;
        }
        let mut shallow = self.shallow;
        shallow.sort();
        shallow.dedup();
        crate::git::repo::add_shallow(&self.git_dir, &shallow).map_err(|source| {
            UpdateError::Shallow {
                path: self.git_dir.join("shallow"),
                source,
            }
        })
    }
}

fn io(dir: &Path) -> impl Fn(std::io::Error) -> UpdateError {
    let dir = dir.to_owned();
    move |source| UpdateError::Quarantine {
        dir: dir.clone(),
        source,
    }
}
