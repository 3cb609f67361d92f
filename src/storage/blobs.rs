//! Reads blob bytes from a repository for many threads at once, through a
//! cache bounded in bytes.
//!
//! `git2::Repository` is `Send` but not `Sync`, and a packed blob must be
//! inflated whole before any byte of it can be served, so serving pieces
//! straight from Git needs both a pool of handles and a cache of inflated
//! blobs. Memory stays under `max(cache bytes, largest blob being served)`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use git2::ObjectType;

use crate::gitobj::ObjectId;

/// Default bound on cached blob bytes.
pub const DEFAULT_CACHE_BYTES: u64 = 256 * 1024 * 1024;

/// Returned when a blob cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// Opening the repository failed.
    #[error("opening repository {path}")]
    Open {
        /// The repository path.
        path: PathBuf,
        /// libgit2's error.
        source: git2::Error,
    },
    /// The blob is missing or unreadable.
    #[error("reading blob {id}")]
    Read {
        /// The blob.
        id: ObjectId,
        /// libgit2's error.
        source: git2::Error,
    },
    /// The object is not a blob.
    #[error("object {0} is not a blob")]
    NotBlob(ObjectId),
}

/// A shared, thread-safe reader of blobs with an LRU cache.
pub struct BlobSource {
    path: PathBuf,
    handles: Mutex<Vec<git2::Repository>>,
    cache: Mutex<Cache>,
}

struct Cache {
    entries: lru::LruCache<ObjectId, Arc<[u8]>>,
    bytes: u64,
    max_bytes: u64,
}

impl BlobSource {
    /// Opens the repository at `path` (a `.git` directory or a work tree).
    pub fn open(path: &Path, max_cache_bytes: u64) -> Result<Arc<Self>, BlobError> {
        let repo = git2::Repository::open(path).map_err(|source| BlobError::Open {
            path: path.to_owned(),
            source,
        })?;
        Ok(Arc::new(Self {
            path: repo.path().to_owned(),
            handles: Mutex::new(vec![repo]),
            cache: Mutex::new(Cache {
                entries: lru::LruCache::unbounded(),
                bytes: 0,
                max_bytes: max_cache_bytes,
            }),
        }))
    }

    /// Whether the object database holds `id` (of any type).
    pub fn contains(&self, id: ObjectId) -> Result<bool, BlobError> {
        self.with_repo(|repo| {
            repo.odb()
                .map(|odb| crate::repo::has_object(&odb, id))
                .map_err(|source| BlobError::Read { id, source })
        })
    }

    /// The bytes of blob `id`, from the cache when they are there.
    pub fn get(&self, id: ObjectId) -> Result<Arc<[u8]>, BlobError> {
        if let Some(data) = self.lock_cache().entries.get(&id) {
            return Ok(data.clone());
        }
        let data: Arc<[u8]> = self.with_repo(|repo| {
            let odb = repo
                .odb()
                .map_err(|source| BlobError::Read { id, source })?;
            let object = odb
                .read(id.to_git())
                .map_err(|source| BlobError::Read { id, source })?;
            if object.kind() != ObjectType::Blob {
                return Err(BlobError::NotBlob(id));
            }
            Ok(Arc::from(object.data()))
        })?;
        let mut cache = self.lock_cache();
        if cache.entries.put(id, data.clone()).is_none() {
            cache.bytes += data.len() as u64;
        }
        while cache.bytes > cache.max_bytes && cache.entries.len() > 1 {
            match cache.entries.pop_lru() {
                Some((_, old)) => cache.bytes -= old.len() as u64,
                None => break,
            }
        }
        Ok(data)
    }

    /// The repository's `.git` directory.
    pub fn git_dir(&self) -> &Path {
        &self.path
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        // A panic while holding the lock leaves a consistent map; keep going.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` with a repository handle from the pool, opening one if all are busy.
    fn with_repo<T>(
        &self,
        f: impl FnOnce(&git2::Repository) -> Result<T, BlobError>,
    ) -> Result<T, BlobError> {
        let pooled = self.handles.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let repo = match pooled {
            Some(repo) => repo,
            None => git2::Repository::open(&self.path).map_err(|source| BlobError::Open {
                path: self.path.clone(),
                source,
            })?,
        };
        let result = f(&repo);
        self.handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(repo);
        result
    }
}
