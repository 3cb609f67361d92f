//! Reads blob bytes from a repository for many threads at once.
//!
//! `git2::Repository` is `Send` but not `Sync`, and a packed blob must be
//! inflated whole before any byte of it can be served, so serving pieces
//! straight from Git needs a pool of handles and a cache of inflated blobs.
//! Small blobs live in a memory LRU bounded in bytes. Large blobs (at least
//! [`SPILL_BYTES`]) are inflated once into a temporary file beside the
//! repository and read from there: peers ask for pieces in any order, and an
//! LRU of whole large blobs would inflate the same blob again and again
//! (measured: 1 GiB in eight 128 MiB blobs with a 256 MiB cache served at
//! under half the speed). The temporary files go when the source is dropped.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use git2::ObjectType;

use crate::git::object::ObjectId;
use crate::git::state_dir::StateDir;

/// Default bound on cached blob bytes.
pub const DEFAULT_CACHE_BYTES: u64 = 256 * 1024 * 1024;
/// Blobs at least this large are served from an inflated copy on disk.
pub const SPILL_BYTES: usize = 8 * 1024 * 1024;

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
    /// Writing or reading the inflated copy of a large blob failed.
    #[error("inflated copy of blob {id} in {dir}")]
    Spill {
        /// The blob.
        id: ObjectId,
        /// Where inflated copies are kept.
        dir: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A read past the end of a blob.
    #[error("read of {len} bytes at {offset} is past the end of blob {id} ({size} bytes)")]
    OutOfRange {
        /// The blob.
        id: ObjectId,
        /// Requested offset.
        offset: u64,
        /// Requested length.
        len: usize,
        /// The blob's size.
        size: u64,
    },
}

/// A shared, thread-safe reader of blobs with an LRU cache.
pub struct BlobSource {
    path: PathBuf,
    handles: Mutex<Vec<git2::Repository>>,
    cache: Mutex<Cache>,
    spilled: Mutex<Spilled>,
}

/// Large blobs inflated to disk. The lock is held while a blob inflates, so
/// each is inflated once even when many threads want it.
struct Spilled {
    dir: Option<crate::git::state_dir::OwnedDir>,
    files: std::collections::HashMap<ObjectId, (Arc<std::fs::File>, u64)>,
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
            spilled: Mutex::new(Spilled {
                dir: None,
                files: std::collections::HashMap::new(),
            }),
        }))
    }

    /// Copies `buf.len()` bytes of blob `id` from `offset` into `buf`.
    pub fn read_at(&self, id: ObjectId, offset: u64, buf: &mut [u8]) -> Result<(), BlobError> {
        use std::os::unix::fs::FileExt;
        let spilled = self
            .lock_spilled()
            .files
            .get(&id)
            .map(|(f, size)| (f.clone(), *size));
        let (file, size) = match spilled {
            Some(found) => found,
            None => {
                let size = self.size(id)?;
                if size < SPILL_BYTES as u64 {
                    let data = self.get(id)?;
                    let range = usize::try_from(offset)
                        .ok()
                        .and_then(|start| Some(start..start.checked_add(buf.len())?))
                        .filter(|r| r.end <= data.len());
                    let Some(range) = range else {
                        return Err(self.out_of_range(id, offset, buf.len(), data.len() as u64));
                    };
                    buf.copy_from_slice(&data[range]);
                    return Ok(());
                }
                self.spill(id)?
            }
        };
        if offset.saturating_add(buf.len() as u64) > size {
            return Err(self.out_of_range(id, offset, buf.len(), size));
        }
        file.read_exact_at(buf, offset)
            .map_err(|source| self.spill_error(id, source))
    }

    fn out_of_range(&self, id: ObjectId, offset: u64, len: usize, size: u64) -> BlobError {
        BlobError::OutOfRange {
            id,
            offset,
            len,
            size,
        }
    }

    fn spill_error(&self, id: ObjectId, source: std::io::Error) -> BlobError {
        BlobError::Spill {
            id,
            dir: StateDir::of(&self.path).root().to_owned(),
            source,
        }
    }

    fn lock_spilled(&self) -> std::sync::MutexGuard<'_, Spilled> {
        self.spilled.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The size of blob `id`, from its header (no inflation).
    fn size(&self, id: ObjectId) -> Result<u64, BlobError> {
        self.with_repo(|repo| {
            let odb = repo
                .odb()
                .map_err(|source| BlobError::Read { id, source })?;
            let (size, kind) = odb
                .read_header(id.to_git())
                .map_err(|source| BlobError::Read { id, source })?;
            if kind != ObjectType::Blob {
                return Err(BlobError::NotBlob(id));
            }
            Ok(size as u64)
        })
    }

    /// Inflates a large blob into the spill directory (once) and opens it.
    fn spill(&self, id: ObjectId) -> Result<(Arc<std::fs::File>, u64), BlobError> {
        let mut spilled = self.lock_spilled();
        if let Some((file, size)) = spilled.files.get(&id) {
            return Ok((file.clone(), *size));
        }
        let io = |source| self.spill_error(id, source);
        if spilled.dir.is_none() {
            spilled.dir = Some(StateDir::of(&self.path).inflated().map_err(io)?);
        }
        let dir = spilled
            .dir
            .as_ref()
            .map(|d| d.path().to_owned())
            .unwrap_or_default();
        let data = self.with_blob(id, |bytes| {
            let path = dir.join(id.to_hex());
            std::fs::write(&path, bytes).map_err(io)?;
            let file = std::fs::File::open(&path).map_err(io)?;
            Ok((Arc::new(file), bytes.len() as u64))
        })?;
        spilled.files.insert(id, data.clone());
        Ok(data)
    }

    /// Inflates blob `id` and hands its bytes to `f`, refusing other object types.
    fn with_blob<T>(
        &self,
        id: ObjectId,
        f: impl FnOnce(&[u8]) -> Result<T, BlobError>,
    ) -> Result<T, BlobError> {
        self.with_repo(|repo| {
            let odb = repo
                .odb()
                .map_err(|source| BlobError::Read { id, source })?;
            let object = odb
                .read(id.to_git())
                .map_err(|source| BlobError::Read { id, source })?;
            if object.kind() != ObjectType::Blob {
                return Err(BlobError::NotBlob(id));
            }
            f(object.data())
        })
    }

    /// The bytes of a small blob `id`, from the memory cache when they are there.
    fn get(&self, id: ObjectId) -> Result<Arc<[u8]>, BlobError> {
        if let Some(data) = self.lock_cache().entries.get(&id) {
            return Ok(data.clone());
        }
        let data: Arc<[u8]> = self.with_blob(id, |bytes| Ok(Arc::from(bytes)))?;
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
