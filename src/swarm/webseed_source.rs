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
//! asks for exactly the torrent's string. A file whose name is not UTF-8 is
//! also found by its raw name (`%E9` decoded to the byte `0xE9`), as a static
//! server over a checkout serves it and as xus asks for it first.
//!
//! Matching is exact, never fuzzy: a request decoding to UTF-8 text `s`
//! finds the file whose torrent path is `s`, and one decoding to bytes that
//! are not UTF-8 finds the file whose raw name has exactly those bytes. The
//! only text that can name two files is the torrent spelling: `a%E9` is both
//! a file literally named `a%E9` and the torrent path of `a\xe9`. Format v1
//! refuses a commit holding both (`xus torrent` says so), so within one
//! published commit it names at most one; a raw `a\xe9` never reaches a file
//! literally named `a%E9`.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, RwLock};

use webseed::{ByteSource, CommitId, FileInfo};

use crate::git::blobs::{BlobError, BlobSource};
use crate::git::object::ObjectId;
use crate::torrent::format::{CommitTorrent, TorrentFile, torrent_component};

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
        Ok(Some(file_info(&entry, file)))
    }

    fn lookup_raw(
        &self,
        commit: &CommitId,
        path: &[Vec<u8>],
    ) -> Result<Option<FileInfo<FileHandle>>, WebseedSourceError> {
        let Some(entry) = self.published_id(commit) else {
            return Ok(None);
        };
        // The torrent path these raw names have: at most one file of a
        // commit has it (format v1 refuses a commit where two would).
        let shown: Vec<String> = path.iter().map(|c| torrent_component(c)).collect();
        let files = &entry.torrent.files;
        let Some(file) = entry.index.find(files, &shown).and_then(|i| files.get(i)) else {
            return Ok(None);
        };
        // The same torrent path is not the same name: a byte `0xE9` asked
        // must be that byte in the file's raw name, not the text `%E9`.
        // UTF-8 components already equal the torrent path's.
        let exact = path
            .iter()
            .zip(&file.raw_path)
            .all(|(asked, raw)| std::str::from_utf8(asked).is_ok() || asked == raw);
        Ok(exact.then(|| file_info(&entry, file)))
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
                crate::metrics::global().webseed_sent(buf.len() as u64);
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
                crate::metrics::global().webseed_sent(buf.len() as u64);
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

/// What the server needs of a file found in `entry`: its length, `ETag` and
/// where its bytes are.
fn file_info(entry: &PublishedCommit, file: &TorrentFile) -> FileInfo<FileHandle> {
    let (etag, handle) = match file.blob {
        Some(blob) => (blob.to_hex(), FileHandle::Blob(blob)),
        // The commit file's bytes are the commit object: its id names them.
        None => (
            entry.torrent.commit.to_hex(),
            FileHandle::Commit(Arc::clone(&entry.torrent)),
        ),
    };
    FileInfo {
        len: file.length,
        etag,
        handle,
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

    fn raw(components: &[&[u8]]) -> Vec<Vec<u8>> {
        components.iter().map(|c| c.to_vec()).collect()
    }

    /// The bytes found by a lookup, `None` when nothing is.
    fn found(
        webseed: &GitWebseed,
        found: Result<Option<FileInfo<FileHandle>>, WebseedSourceError>,
    ) -> Option<Vec<u8>> {
        found.expect("lookup").map(|f| read_all(webseed, &f))
    }

    #[test]
    fn non_utf8_names_are_found_by_raw_name_and_torrent_path() {
        let (dir, first, _) = repo();
        let (webseed, _) = source(dir.path(), first);
        let c = commit_id(first);
        let latin = Some(b"latin-1 name\n".to_vec());
        // The raw name, as a checkout on disk has it (`%E9` in the URL).
        let by_raw = webseed.lookup_raw(&c, &raw(&[b"caf\xe9.txt"]));
        assert_eq!(found(&webseed, by_raw), latin);
        // The torrent path (`%25E9` in the URL).
        let by_path = webseed.lookup(&c, &path(&["caf%E9.txt"]));
        assert_eq!(found(&webseed, by_path), latin);
        // Another byte, or the byte in a name that does not exist, is nothing.
        for missing in [
            &[&b"caf\xe8.txt"[..]][..],
            &[b"caf\xe9.txt", b"x"],
            &[b"sub\xff", b"deep.txt"],
        ] {
            assert!(
                found(&webseed, webseed.lookup_raw(&c, &raw(missing))).is_none(),
                "{missing:?} was found"
            );
        }
    }

    /// A name that literally holds the text `%E9` and names that are not
    /// UTF-8 share torrent spellings; each request still reaches only the
    /// file it names.
    #[test]
    fn raw_names_never_reach_a_file_spelled_like_their_escape() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = git2::Repository::init(dir.path()).expect("init");
        let blob = |data: &[u8]| repo.blob(data).expect("blob");
        let (text, x, y) = (blob(b"literal\n"), blob(b"x\n"), blob(b"y\n"));
        let dir_with = |name: &str, id| {
            let mut sub = repo.treebuilder(None).expect("treebuilder");
            sub.insert(name, id, 0o100644).expect("insert");
            sub.write().expect("write tree")
        };
        let (raw_dir, text_dir) = (dir_with("x", x), dir_with("y", y));
        let mut root = repo.treebuilder(None).expect("treebuilder");
        root.insert("caf%E9.txt", text, 0o100644).expect("insert");
        // `d\x80r/x` and `d%80r/y`: different torrent paths, so v1 allows both.
        root.insert(b"d\x80r".as_slice(), raw_dir, 0o040000)
            .expect("insert");
        root.insert("d%80r", text_dir, 0o040000).expect("insert");
        let commit = commit_root(&repo, &root, "percent");
        let (webseed, _) = source(dir.path(), commit);
        let c = commit_id(commit);
        let bytes = |b: &[u8]| Some(b.to_vec());
        // The text name is found as text (`%25E9` in the URL), never by the byte.
        let text_name = webseed.lookup(&c, &path(&["caf%E9.txt"]));
        assert_eq!(found(&webseed, text_name), bytes(b"literal\n"));
        let by_byte = webseed.lookup_raw(&c, &raw(&[b"caf\xe9.txt"]));
        assert_eq!(found(&webseed, by_byte), None);
        // The raw directory by its byte; the text directory is not it.
        let raw_x = webseed.lookup_raw(&c, &raw(&[b"d\x80r", b"x"]));
        assert_eq!(found(&webseed, raw_x), bytes(b"x\n"));
        let raw_y = webseed.lookup_raw(&c, &raw(&[b"d\x80r", b"y"]));
        assert_eq!(found(&webseed, raw_y), None);
        // Text `d%80r` names the text directory's file, and the raw
        // directory's by its torrent path: one file per torrent path.
        let text_y = webseed.lookup(&c, &path(&["d%80r", "y"]));
        assert_eq!(found(&webseed, text_y), bytes(b"y\n"));
        let text_x = webseed.lookup(&c, &path(&["d%80r", "x"]));
        assert_eq!(found(&webseed, text_x), bytes(b"x\n"));

        // A commit where one torrent path would name two files is never
        // published: format v1 refuses to build its torrent.
        let mut both = repo.treebuilder(None).expect("treebuilder");
        both.insert("caf%E9.txt", text, 0o100644).expect("insert");
        both.insert(b"caf\xe9.txt".as_slice(), x, 0o100644)
            .expect("insert");
        let clash = commit_root(&repo, &both, "clash");
        assert!(crate::torrent::format::build(&repo, clash).is_err());
    }

    /// Commits the tree `root` builds, with no parent, as a fixed author.
    fn commit_root(
        repo: &git2::Repository,
        root: &git2::TreeBuilder<'_>,
        message: &str,
    ) -> ObjectId {
        let tree = repo
            .find_tree(root.write().expect("tree"))
            .expect("find tree");
        let sig = git2::Signature::new("t", "t@example.invalid", &git2::Time::new(0, 0))
            .expect("signature");
        let commit = repo
            .commit(None, &sig, &sig, message, &tree, &[])
            .expect("commit");
        ObjectId::from_git(commit).expect("sha1")
    }

    #[test]
    fn serves_the_commit_file_of_an_empty_payload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = git2::Repository::init(dir.path()).expect("init");
        let empty = repo.blob(b"").expect("blob");
        let mut root = repo.treebuilder(None).expect("treebuilder");
        root.insert("empty", empty, 0o100644).expect("insert");
        let commit = commit_root(&repo, &root, "empty");
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
