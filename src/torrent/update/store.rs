//! Update payloads kept beside the repository (`<git dir>/xus/updates/`),
//! so an update is compressed once and served again after a restart, and a
//! reader that fetched one can seed it.
//!
//! A stored payload is trusted no more than a downloaded one: its torrent is
//! recomputed from its bytes on every load, so a damaged file gives another
//! infohash, which callers compare with the one a head lists.

use std::path::PathBuf;
use std::sync::Arc;

use super::build::{UpdateSettings, build_update};
use super::{UpdateError, UpdateTorrent};
use crate::git::object::ObjectId;
use crate::git::state_dir::StateDir;

/// An update torrent and its payload, ready to seed.
#[derive(Debug, Clone)]
pub struct StoredUpdate {
    /// The torrent, computed from the payload.
    pub torrent: UpdateTorrent,
    /// The payload bytes.
    pub payload: Arc<[u8]>,
}

/// The update payloads of one repository.
#[derive(Debug, Clone)]
pub struct UpdateStore {
    dir: PathBuf,
}

impl UpdateStore {
    /// The store of the repository whose git directory is `git_dir`.
    pub fn of(git_dir: &std::path::Path) -> Self {
        Self {
            dir: StateDir::of(git_dir).updates(),
        }
    }

    fn path(&self, from: ObjectId, to: ObjectId) -> PathBuf {
        self.dir.join(UpdateTorrent::file_name(from, to))
    }

    /// The stored update from `from` to `to`, if there is a readable one.
    pub fn load(&self, from: ObjectId, to: ObjectId) -> Option<StoredUpdate> {
        let payload = std::fs::read(self.path(from, to)).ok()?;
        let torrent = UpdateTorrent::new(from, to, &payload).ok()?;
        Some(StoredUpdate {
            torrent,
            payload: payload.into(),
        })
    }

    /// Keeps `payload` (atomically: a crash leaves the old file or none).
    ///
    /// # Errors
    ///
    /// The directory or file cannot be written.
    pub fn save(&self, from: ObjectId, to: ObjectId, payload: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.path(from, to);
        let tmp = path.with_extension("xup-tmp");
        std::fs::write(&tmp, payload)?;
        std::fs::rename(&tmp, &path)
    }

    /// The stored update, or a freshly built one (then stored; a store that
    /// cannot be written only costs a rebuild next time).
    ///
    /// # Errors
    ///
    /// See [`build_update`].
    pub fn load_or_build(
        &self,
        repo: &git2::Repository,
        from: ObjectId,
        to: ObjectId,
        settings: &UpdateSettings,
    ) -> Result<StoredUpdate, UpdateError> {
        if let Some(stored) = self.load(from, to) {
            return Ok(stored);
        }
        let update = build_update(repo, from, to, settings)?;
        let torrent = update.torrent()?;
        if let Err(error) = self.save(from, to, &update.payload) {
            tracing::warn!(%from, %to, %error, "cannot store the update; it will be built again");
        }
        Ok(StoredUpdate {
            torrent,
            payload: update.payload.into(),
        })
    }
}
