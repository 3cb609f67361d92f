//! Piece storage for librqbit backed by Git: the bytes of every torrent file
//! come from a blob in the object database, from the metadata itself, or
//! (while fetching) from the torrent's staging file, which holds downloaded
//! bytes at their offsets in the torrent and is hashed and moved into Git
//! only once the whole commit is verified.

use std::sync::Arc;

use anyhow::Context;
use librqbit::storage::{StorageFactory, TorrentStorage};
use librqbit::{ManagedTorrentShared, TorrentMetadata};

use crate::git::blobs::BlobSource;
use crate::git::object::ObjectId;
use crate::torrent::info_hash::InfoHash;
use crate::torrent::staged::StagedFile;

/// Where the bytes of one torrent file live.
#[derive(Clone)]
pub enum Backing {
    /// A blob already in the object database: read from Git, writes ignored
    /// (whatever a peer sends for it is checked against the same bytes).
    Blob(ObjectId),
    /// Bytes known from the metadata (the commit file of an empty payload).
    Inline(Arc<[u8]>),
    /// A file being downloaded, kept in the torrent's staging file at
    /// `base` (its offset in the torrent's byte stream).
    Staged {
        /// The staging file of the whole torrent.
        file: Arc<StagedFile>,
        /// Where this torrent file starts in it.
        base: u64,
    },
}

/// Builds [`GitStorage`] for exactly one torrent, refusing any other.
#[derive(Clone)]
pub struct GitStorageFactory {
    info_hash: InfoHash,
    source: Arc<BlobSource>,
    files: Arc<Vec<Backing>>,
}

impl GitStorageFactory {
    /// A factory for the torrent `info_hash` whose files are `files`, in torrent order.
    pub fn new(info_hash: InfoHash, source: Arc<BlobSource>, files: Vec<Backing>) -> Self {
        Self {
            info_hash,
            source,
            files: Arc::new(files),
        }
    }
}

impl StorageFactory for GitStorageFactory {
    type Storage = GitStorage;

    fn create(
        &self,
        shared: &ManagedTorrentShared,
        metadata: &TorrentMetadata,
    ) -> anyhow::Result<GitStorage> {
        anyhow::ensure!(
            shared.info_hash.0 == self.info_hash.0,
            "storage prepared for {} cannot hold torrent {}",
            self.info_hash,
            shared.info_hash.as_string()
        );
        anyhow::ensure!(
            metadata.file_infos.len() == self.files.len(),
            "torrent has {} files, storage was prepared for {}",
            metadata.file_infos.len(),
            self.files.len()
        );
        Ok(GitStorage {
            source: self.source.clone(),
            files: self.files.clone(),
        })
    }

    fn clone_box(&self) -> librqbit::storage::BoxStorageFactory {
        use librqbit::storage::StorageFactoryExt;
        self.clone().boxed()
    }
}

/// The storage of one torrent.
#[derive(Clone)]
pub struct GitStorage {
    source: Arc<BlobSource>,
    files: Arc<Vec<Backing>>,
}

impl GitStorage {
    fn backing(&self, file_id: usize) -> anyhow::Result<&Backing> {
        self.files
            .get(file_id)
            .with_context(|| format!("no file {file_id} in this torrent"))
    }
}

fn copy_range(data: &[u8], offset: u64, buf: &mut [u8]) -> anyhow::Result<()> {
    let start = usize::try_from(offset)?;
    let slice = start
        .checked_add(buf.len())
        .and_then(|end| data.get(start..end))
        .with_context(|| {
            format!(
                "read of {} bytes at {offset} past the end ({} bytes)",
                buf.len(),
                data.len()
            )
        })?;
    buf.copy_from_slice(slice);
    Ok(())
}

impl TorrentStorage for GitStorage {
    fn init(&mut self, _: &ManagedTorrentShared, _: &TorrentMetadata) -> anyhow::Result<()> {
        Ok(())
    }

    fn pread_exact(&self, file_id: usize, offset: u64, buf: &mut [u8]) -> anyhow::Result<()> {
        match self.backing(file_id)? {
            Backing::Blob(id) => Ok(self.source.read_at(*id, offset, buf)?),
            Backing::Inline(data) => copy_range(data, offset, buf),
            Backing::Staged { file, base } => file.read_at(base + offset, buf),
        }
    }

    fn pwrite_all(&self, file_id: usize, offset: u64, buf: &[u8]) -> anyhow::Result<()> {
        match self.backing(file_id)? {
            Backing::Blob(_) | Backing::Inline(_) => Ok(()),
            Backing::Staged { file, base } => file.write_at(base + offset, buf),
        }
    }

    fn remove_file(&self, _: usize, _: &std::path::Path) -> anyhow::Result<()> {
        Ok(())
    }

    fn remove_directory_if_empty(&self, _: &std::path::Path) -> anyhow::Result<()> {
        Ok(())
    }

    /// Staging files are never grown ahead of the data: a file only reaches
    /// bytes a peer really sent, so the start-up check of a resumed fetch
    /// stops at the end of what arrived instead of hashing a sparse file of
    /// whatever size the metadata claims.
    fn ensure_file_length(&self, file_id: usize, _length: u64) -> anyhow::Result<()> {
        self.backing(file_id).map(|_| ())
    }

    fn take(&self) -> anyhow::Result<Box<dyn TorrentStorage>> {
        Ok(Box::new(self.clone()))
    }
}
