//! The webseed's view of Git: which commits are published, and the bytes of
//! their torrent files, read straight from the object database.
//!
//! The `webseed` crate serves HTTP and knows nothing of Git; [`GitWebseed`]
//! implements its [`ByteSource`] trait. Only commits handed to
//! [`GitWebseed::publish`] are answered: an object that merely sits in the
//! repository (an unpublished commit, a private branch, a blob) is `404`, so
//! running a webseed never exposes more than what is seeded.
//!
//! Requests name files by the paths stock clients see in the torrent
//! (`CommitTorrent::files[i].path`), where a name byte that is not UTF-8 is
//! written `%XX` (see `docs/FORMAT.md`). The server percent-decodes the URL
//! once, so a client that encodes that `%` as `%25`, as BEP 19 clients do,
//! asks for exactly the torrent's string; matching is exact, never fuzzy.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, RwLock};

use webseed::{ByteSource, CommitId, FileInfo};

use crate::git::blobs::{BlobError, BlobSource};
use crate::git::object::ObjectId;
use crate::torrent::format::CommitTorrent;

/// Serves the files and torrents of published commits from a repository.
///
/// Shared between the HTTP server (reads, many threads) and whoever decides
/// what is published (`xus webseed` at start, `xus seed` whenever it starts
/// seeding a commit), hence the lock around the published set. The lock is
/// held only to look a commit up or insert one, never while reading bytes.
pub struct GitWebseed {
    blobs: Arc<BlobSource>,
    published: RwLock<HashMap<ObjectId, Arc<PublishedCommit>>>,
}

/// A published commit: its torrent and the index that finds a file by path
/// in constant time (a request must not scan 300,000 files).
pub struct PublishedCommit {
    torrent: Arc<CommitTorrent>,
    index: PathIndex,
}

impl PublishedCommit {
    /// The torrent this commit is served by.
    pub fn torrent(&self) -> &Arc<CommitTorrent> {
        &self.torrent
    }
}

/// Maps a torrent path to its file index.
///
/// Keyed by a keyed 64-bit hash of the path rather than the path itself, so
/// the index costs a few words per file instead of a second copy of every
/// path string; a lookup always compares the candidate's real path, so a
/// hash collision can only cost a miss on the fast path, never a wrong file.
struct PathIndex {
    hasher: RandomState,
    first: HashMap<u64, usize>,
    /// Files whose hash another file already took (practically never any).
    collided: Vec<usize>,
}

impl PathIndex {
    fn build(files: &[crate::torrent::format::TorrentFile]) -> Self {
        let hasher = RandomState::new();
        let mut first = HashMap::with_capacity(files.len());
        let mut collided = Vec::new();
        for (i, file) in files.iter().enumerate() {
            let key = hasher.hash_one(file.path.as_slice());
            if *first.entry(key).or_insert(i) != i {
                collided.push(i);
            }
        }
        Self {
            hasher,
            first,
            collided,
        }
    }

    fn find(
        &self,
        files: &[crate::torrent::format::TorrentFile],
        path: &[String],
    ) -> Option<usize> {
        let matches = |i: &usize| files.get(*i).is_some_and(|f| f.path == path);
        let key = self.hasher.hash_one(path);
        self.first
            .get(&key)
            .copied()
            .filter(matches)
            .or_else(|| self.collided.iter().copied().find(matches))
    }
}

/// Where the bytes of a file found by [`GitWebseed::lookup`] come from,
/// resolved once per request so chunk reads go straight to them.
#[derive(Clone)]
pub enum FileHandle {
    /// A blob of the object database.
    Blob(ObjectId),
    /// The commit file of an empty payload (`<commit>.commit`): the raw
    /// commit object, held by the published torrent.
    Commit(Arc<CommitTorrent>),
}

/// Returned when a published file cannot be read; the server answers `500`
/// and logs it, since the request itself was fine.
#[derive(Debug, thiserror::Error)]
pub enum WebseedSourceError {
    /// The object database could not give the blob's bytes (missing blob,
    /// unreadable pack, inflated copy unwritable).
    #[error("reading a published file")]
    Blob(#[from] BlobError),
    /// A read past the end of the commit file, which the server never asks.
    #[error("read of {len} bytes at {offset} is past the end of commit file {commit}")]
    CommitOutOfRange {
        /// The commit whose raw object is the file.
        commit: ObjectId,
        /// Requested offset.
        offset: u64,
        /// Requested length.
        len: usize,
    },
}

impl GitWebseed {
    /// A webseed that publishes nothing yet, reading blobs through `blobs`
    /// (shared with the BitTorrent engine in `xus seed`, so both use one
    /// cache of inflated blobs).
    pub fn new(blobs: Arc<BlobSource>) -> Self {
        Self {
            blobs,
            published: RwLock::new(HashMap::new()),
        }
    }

    /// Starts answering for `torrent`'s commit. Publishing a commit again
    /// replaces its entry (same commit, same torrent: nothing changes).
    ///
    /// The path index is built before the lock is taken, so publishing a
    /// large commit never stalls requests for the others.
    pub fn publish(&self, torrent: Arc<CommitTorrent>) {
        let index = PathIndex::build(&torrent.files);
        let commit = torrent.commit;
        let entry = Arc::new(PublishedCommit { torrent, index });
        self.write_published().insert(commit, entry);
        tracing::debug!(%commit, "published on the webseed");
    }

    /// The published entry of `commit`, if any.
    pub fn published(&self, commit: ObjectId) -> Option<Arc<PublishedCommit>> {
        self.read_published().get(&commit).cloned()
    }

    /// How many commits are published.
    pub fn published_count(&self) -> usize {
        self.read_published().len()
    }

    /// The entry of a commit id from a request; SHA-256 ids (64 digits) are
    /// never published, since v1 torrents carry SHA-1 commits only.
    fn published_id(&self, commit: &CommitId) -> Option<Arc<PublishedCommit>> {
        ObjectId::from_hex(commit.as_str()).and_then(|id| self.published(id))
    }

    fn read_published(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, HashMap<ObjectId, Arc<PublishedCommit>>> {
        // The map is consistent after any panic (inserts are single calls).
        self.published.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_published(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<ObjectId, Arc<PublishedCommit>>> {
        self.published.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl ByteSource for GitWebseed {
    type Handle = FileHandle;
    type Error = WebseedSourceError;

    fn lookup(
        &self,
        commit: &CommitId,
        path: &[String],
    ) -> Result<Option<FileInfo<FileHandle>>, WebseedSourceError> {
        let Some(entry) = self.published_id(commit) else {
            return Ok(None);
        };
        let files = &entry.torrent.files;
        let Some(file) = entry.index.find(files, path).and_then(|i| files.get(i)) else {
            return Ok(None);
        };
        let (etag, handle) = match file.blob {
            Some(blob) => (blob.to_hex(), FileHandle::Blob(blob)),
            // The commit file's bytes are the commit object: its id names them.
            None => (
                entry.torrent.commit.to_hex(),
                FileHandle::Commit(Arc::clone(&entry.torrent)),
            ),
        };
        Ok(Some(FileInfo {
            len: file.length,
            etag,
            handle,
        }))
    }

    fn read_at(
        &self,
        file: &FileInfo<FileHandle>,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, WebseedSourceError> {
        match &file.handle {
            FileHandle::Blob(blob) => {
                self.blobs.read_at(*blob, offset, buf)?;
                Ok(buf.len())
            }
            FileHandle::Commit(torrent) => {
                let raw = &torrent.commit_raw;
                let range = usize::try_from(offset)
                    .ok()
                    .and_then(|start| Some(start..start.checked_add(buf.len())?))
                    .filter(|r| r.end <= raw.len())
                    .ok_or(WebseedSourceError::CommitOutOfRange {
                        commit: torrent.commit,
                        offset,
                        len: buf.len(),
                    })?;
                buf.copy_from_slice(&raw[range]);
                Ok(buf.len())
            }
        }
    }

    fn torrent(
        &self,
        commit: &CommitId,
        url_list: &[String],
    ) -> Result<Option<Vec<u8>>, WebseedSourceError> {
        Ok(self
            .published_id(commit)
            .map(|entry| entry.torrent.torrent_file(url_list)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A repository with one commit (a nested file, a non-UTF-8 name, a file
    /// at two paths) and a second commit that stays unpublished.
    fn repo() -> (tempfile::TempDir, ObjectId, ObjectId) {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = git2::Repository::init(dir.path()).expect("init");
        let blob = |data: &[u8]| repo.blob(data).expect("blob");
        let hello = blob(b"hello, world\n");
        let odd = blob(b"latin-1 name\n");
        let mut sub = repo.treebuilder(None).expect("treebuilder");
        sub.insert("deep.txt", hello, 0o100644).expect("insert");
        let sub = sub.write().expect("write tree");
        let mut root = repo.treebuilder(None).expect("treebuilder");
        root.insert("hello.txt", hello, 0o100644).expect("insert");
        root.insert(b"caf\xe9.txt".as_slice(), odd, 0o100644)
            .expect("insert");
        root.insert("sub", sub, 0o040000).expect("insert");
        let root = root.write().expect("write tree");
        let tree = repo.find_tree(root).expect("tree");
        let sig = git2::Signature::new("t", "t@example.invalid", &git2::Time::new(0, 0))
            .expect("signature");
        let first = repo
            .commit(None, &sig, &sig, "first", &tree, &[])
            .expect("commit");
        let parent = repo.find_commit(first).expect("commit");
        let second = repo
            .commit(None, &sig, &sig, "second", &tree, &[&parent])
            .expect("commit");
        let id = |oid| ObjectId::from_git(oid).expect("sha1");
        (dir, id(first), id(second))
    }

    fn source(dir: &std::path::Path, publish: ObjectId) -> (GitWebseed, Arc<CommitTorrent>) {
        let repo = git2::Repository::open(dir).expect("open");
        let torrent = Arc::new(crate::torrent::format::build(&repo, publish).expect("torrent"));
        let blobs = BlobSource::open(dir, 1 << 20).expect("blob source");
        let webseed = GitWebseed::new(blobs);
        webseed.publish(torrent.clone());
        (webseed, torrent)
    }

    fn commit_id(id: ObjectId) -> CommitId {
        CommitId::parse(&id.to_hex()).expect("commit id")
    }

    fn path(components: &[&str]) -> Vec<String> {
        components.iter().map(|c| (*c).to_owned()).collect()
    }

    fn read_all(webseed: &GitWebseed, file: &FileInfo<FileHandle>) -> Vec<u8> {
        let mut buf = vec![0; usize::try_from(file.len).expect("small")];
        let n = webseed.read_at(file, 0, &mut buf).expect("read");
        assert_eq!(n, buf.len());
        buf
    }

    #[test]
    fn serves_published_files_by_torrent_path() {
        let (dir, first, _) = repo();
        let (webseed, torrent) = source(dir.path(), first);
        let commit = commit_id(first);
        for (components, data) in [
            (&["hello.txt"][..], &b"hello, world\n"[..]),
            (&["sub", "deep.txt"][..], &b"hello, world\n"[..]),
            (&["caf%E9.txt"][..], &b"latin-1 name\n"[..]),
        ] {
            let file = webseed
                .lookup(&commit, &path(components))
                .expect("lookup")
                .unwrap_or_else(|| panic!("{components:?} not found"));
            assert_eq!(file.len, data.len() as u64);
            assert_eq!(read_all(&webseed, &file), data);
            let blob = ObjectId::for_object("blob", data);
            assert_eq!(file.etag, blob.to_hex());
        }
        let mut middle = [0u8; 5];
        let file = webseed
            .lookup(&commit, &path(&["hello.txt"]))
            .expect("lookup")
            .expect("found");
        webseed.read_at(&file, 7, &mut middle).expect("read");
        assert_eq!(&middle, b"world");
        let served = webseed
            .torrent(&commit, &["http://x/".to_owned()])
            .expect("torrent")
            .expect("published");
        assert_eq!(served, torrent.torrent_file(&["http://x/".to_owned()]));
    }

    #[test]
    fn answers_nothing_that_is_not_published() {
        let (dir, first, second) = repo();
        let (webseed, _) = source(dir.path(), first);
        let commit = commit_id(first);
        for missing in [
            &["sub"][..],
            &["nope.txt"],
            &["caf\u{e9}.txt"],
            &["caf%e9.txt"],
            &["caf%25E9.txt"],
            &["sub", "hello.txt"],
            &["hello.txt", "x"],
        ] {
            assert!(
                webseed
                    .lookup(&commit, &path(missing))
                    .expect("lookup")
                    .is_none(),
                "{missing:?} was found"
            );
        }
        // The second commit is in the repository, with the same files.
        let unpublished = commit_id(second);
        assert!(
            webseed
                .lookup(&unpublished, &path(&["hello.txt"]))
                .expect("lookup")
                .is_none()
        );
        assert!(
            webseed
                .torrent(&unpublished, &[])
                .expect("torrent")
                .is_none()
        );
        let sha256 = CommitId::parse(&"ab".repeat(32)).expect("id");
        assert!(webseed.torrent(&sha256, &[]).expect("torrent").is_none());
        assert_eq!(webseed.published_count(), 1);
        assert!(webseed.published(second).is_none());
    }

    #[test]
    fn serves_the_commit_file_of_an_empty_payload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = git2::Repository::init(dir.path()).expect("init");
        let empty = repo.blob(b"").expect("blob");
        let mut root = repo.treebuilder(None).expect("treebuilder");
        root.insert("empty", empty, 0o100644).expect("insert");
        let tree = repo
            .find_tree(root.write().expect("tree"))
            .expect("find tree");
        let sig = git2::Signature::new("t", "t@example.invalid", &git2::Time::new(0, 0))
            .expect("signature");
        let commit = repo
            .commit(None, &sig, &sig, "empty", &tree, &[])
            .expect("commit");
        let commit = ObjectId::from_git(commit).expect("sha1");
        let (webseed, torrent) = source(dir.path(), commit);
        let name = crate::torrent::format::commit_file_name(commit);
        let file = webseed
            .lookup(&commit_id(commit), &[name])
            .expect("lookup")
            .expect("the commit file");
        assert_eq!(file.etag, commit.to_hex());
        assert_eq!(read_all(&webseed, &file), torrent.commit_raw);
        let empty = webseed
            .lookup(&commit_id(commit), &path(&["empty"]))
            .expect("lookup")
            .expect("the empty file");
        assert_eq!(empty.len, 0);
        let mut past = [0u8; 1];
        assert!(webseed.read_at(&file, file.len, &mut past).is_err());
    }

    #[test]
    fn index_survives_hash_collisions() {
        let (dir, first, _) = repo();
        let (_, torrent) = source(dir.path(), first);
        // Force every path into one bucket: lookups must still compare paths.
        let mut index = PathIndex::build(&torrent.files);
        let key = index.hasher.hash_one(torrent.files[0].path.as_slice());
        index.first = HashMap::from([(key, 0)]);
        index.collided = (1..torrent.files.len()).collect();
        for (i, file) in torrent.files.iter().enumerate() {
            assert_eq!(index.find(&torrent.files, &file.path), Some(i));
        }
        assert_eq!(index.find(&torrent.files, &path(&["nope"])), None);
    }
}
