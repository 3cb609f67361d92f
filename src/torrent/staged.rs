//! The bytes of a torrent being downloaded, outside the object database
//! until verified: one sparse file per torrent, each byte at its offset in
//! the torrent's stream (one file, not one per torrent file, so a commit of
//! ten thousand files costs one file create, not ten thousand).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;

/// A staging file, opened lazily. Reads of a file that does not exist yet
/// fail, which makes librqbit's start-up check skip it instead of hashing
/// zeros.
pub struct StagedFile {
    path: PathBuf,
    handle: Mutex<Option<Arc<File>>>,
}

impl StagedFile {
    /// A staging file at `path` (created on first write).
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            handle: Mutex::new(None),
        }
    }

    /// Where the bytes are kept.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open(&self, create: bool) -> anyhow::Result<Arc<File>> {
        let mut handle = self.handle.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(file) = handle.as_ref() {
            return Ok(file.clone());
        }
        if create && let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(&self.path)
            .with_context(|| format!("opening staging file {}", self.path.display()))?;
        let file = Arc::new(file);
        *handle = Some(file.clone());
        Ok(file)
    }

    /// Reads exactly `buf.len()` bytes at `offset`.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> anyhow::Result<()> {
        self.open(false)?
            .read_exact_at(buf, offset)
            .with_context(|| format!("reading {} at {offset}", self.path.display()))
    }

    /// Writes all of `buf` at `offset`.
    pub fn write_at(&self, offset: u64, buf: &[u8]) -> anyhow::Result<()> {
        self.open(true)?
            .write_all_at(buf, offset)
            .with_context(|| format!("writing {} at {offset}", self.path.display()))
    }
}
