//! Piece storage for librqbit backed by Git: the bytes of every torrent file
//! come from a blob in the object database, from the metadata itself, or
//! (while fetching) from the torrent's staging file, which holds downloaded
//! bytes at their offsets in the torrent and is hashed and moved into Git
//! only once the whole commit is verified.
//!
//! A torrent read wholly from Git (every file a local blob or metadata) starts
//! complete, with no hashing at start: each piece is checked the first time
//! it is read instead ([`FirstReadCheck`]).

use std::sync::Arc;

use anyhow::Context;
use librqbit::storage::{StorageFactory, TorrentStorage};
use librqbit::{ManagedTorrentShared, TorrentMetadata};

use crate::git::blobs::BlobSource;
use crate::git::object::ObjectId;
use crate::swarm::piece_check::FirstReadCheck;
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
        let all_local = self
            .files
            .iter()
            .all(|b| matches!(b, Backing::Blob(_) | Backing::Inline(_)));
        let first_read_check = if all_local {
            Some(Arc::new(first_read_check(&self.info_hash, metadata)?))
        } else {
            None
        };
        Ok(GitStorage {
            source: self.source.clone(),
            files: self.files.clone(),
            file_offsets: Arc::new(
                metadata
                    .file_infos
                    .iter()
                    .map(|f| f.offset_in_torrent)
                    .collect(),
            ),
            first_read_check,
        })
    }

    fn clone_box(&self) -> librqbit::storage::BoxStorageFactory {
        use librqbit::storage::StorageFactoryExt;
        self.clone().boxed()
    }
}

/// The piece layout and hashes of `metadata`, for checking pieces on first read.
fn first_read_check(
    info_hash: &InfoHash,
    metadata: &TorrentMetadata,
) -> anyhow::Result<FirstReadCheck> {
    let lengths = metadata.info.lengths();
    let hashes = (0..lengths.total_pieces())
        .map(|piece| {
            metadata
                .info
                .info()
                .get_hash(piece)
                .and_then(|hash| <[u8; 20]>::try_from(hash).ok())
                .with_context(|| format!("torrent {info_hash} has no hash for piece {piece}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    FirstReadCheck::new(
        info_hash.to_string(),
        u64::from(lengths.default_piece_length()),
        lengths.total_length(),
        hashes,
    )
    .with_context(|| format!("torrent {info_hash}: piece hashes disagree with its length"))
}

/// The storage of one torrent.
#[derive(Clone)]
pub struct GitStorage {
    source: Arc<BlobSource>,
    files: Arc<Vec<Backing>>,
    /// Where each file starts in the torrent's byte stream.
    file_offsets: Arc<Vec<u64>>,
    /// Set when every file is read from Git: pieces are checked on first read.
    first_read_check: Option<Arc<FirstReadCheck>>,
}

impl GitStorage {
    fn backing(&self, file_id: usize) -> anyhow::Result<&Backing> {
        self.files
            .get(file_id)
            .with_context(|| format!("no file {file_id} in this torrent"))
    }

    /// Reads `buf.len()` bytes of file `file_id` at `offset`, unchecked.
    fn read_file(&self, file_id: usize, offset: u64, buf: &mut [u8]) -> anyhow::Result<()> {
        match self.backing(file_id)? {
            Backing::Blob(id) => Ok(self.source.read_at(*id, offset, buf)?),
            Backing::Inline(data) => copy_range(data, offset, buf),
            Backing::Staged { file, base } => file.read_at(base + offset, buf),
        }
    }

    /// Reads `buf.len()` bytes at `offset` in the torrent's byte stream,
    /// across file boundaries, unchecked.
    fn read_torrent(&self, mut offset: u64, mut buf: &mut [u8]) -> anyhow::Result<()> {
        // The last file starting at or before `offset`; empty files share
        // their start with the next, so skip forward past them as we go.
        let mut file_id = self
            .file_offsets
            .partition_point(|&start| start <= offset)
            .saturating_sub(1);
        while !buf.is_empty() {
            let start = *self
                .file_offsets
                .get(file_id)
                .with_context(|| format!("offset {offset} is past the last file"))?;
            let end = self
                .file_offsets
                .get(file_id + 1)
                .copied()
                .unwrap_or(u64::MAX);
            let available = end.saturating_sub(offset);
            if available == 0 {
                file_id += 1;
                continue;
            }
            let take = buf
                .len()
                .min(usize::try_from(available).unwrap_or(usize::MAX));
            let (now, rest) = buf.split_at_mut(take);
            self.read_file(file_id, offset - start, now)?;
            offset += take as u64;
            buf = rest;
            file_id += 1;
        }
        Ok(())
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
        if let Some(check) = &self.first_read_check {
            let start = self
                .file_offsets
                .get(file_id)
                .with_context(|| format!("no file {file_id} in this torrent"))?;
            check.ensure_checked(start.saturating_add(offset), buf.len(), |at, piece| {
                self.read_torrent(at, piece)
            })?;
        }
        self.read_file(file_id, offset, buf)
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

    /// Every file comes from Git and every piece is checked on first read,
    /// so librqbit skips hashing the whole torrent at start.
    fn holds_all_pieces_verified_on_read(&self) -> bool {
        self.first_read_check.is_some()
    }
}
