//! The trait between the server and whatever stores the bytes.

use crate::commit::CommitId;

/// What the server serves: the files and torrents of published commits.
///
/// The core implements it over the Git object database. Every method is synchronous, because Git
/// libraries are: the server calls them on Tokio's blocking pool, never more than
/// [`ServerOptions::max_concurrent_reads`](crate::ServerOptions::max_concurrent_reads) at once, so
/// an implementation may block on disk or inflate objects freely.
pub trait ByteSource: Send + Sync + 'static {
    /// What [`lookup`](Self::lookup) hands back for [`read_at`](Self::read_at) to use, such as
    /// a blob id, so a file is resolved once per request rather than once per chunk.
    type Handle: Send + Sync + 'static;

    /// The source's own failure; the server answers `500` and logs it with its causes.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Looks up one file of a published commit.
    ///
    /// `path` holds the decoded components of the request path below the commit: never empty,
    /// each valid UTF-8 and never `""`, `"."`, `".."`, nor containing `/` or NUL (the server
    /// refuses such requests before calling). `Ok(None)` answers `404`: unknown commit,
    /// unpublished commit, or no such file (a directory is not a file either).
    fn lookup(
        &self,
        commit: &CommitId,
        path: &[String],
    ) -> Result<Option<FileInfo<Self::Handle>>, Self::Error>;

    /// Looks up one file of a published commit named by raw name bytes: `path` holds the
    /// decoded components of a request path of which at least one is not UTF-8 (`%E9` for the
    /// byte `0xE9`), with the same guarantees as [`lookup`](Self::lookup)'s otherwise.
    ///
    /// Static servers over a checkout and Git hosts' raw URLs name a file whose name is not
    /// UTF-8 that way, so clients that know a file's raw name ask for it so. A source whose
    /// names are all UTF-8 keeps the default, which finds nothing (`404`). A source that
    /// answers must make sure one request reaches only the file it names: compare the bytes
    /// of the components that are not UTF-8 with raw names, never a lossy or escaped form of
    /// them with something else.
    fn lookup_raw(
        &self,
        commit: &CommitId,
        path: &[Vec<u8>],
    ) -> Result<Option<FileInfo<Self::Handle>>, Self::Error> {
        let _ = (commit, path);
        Ok(None)
    }

    /// Reads up to `buf.len()` bytes of `file` from `offset` into `buf` and returns how many
    /// were read.
    ///
    /// `offset + buf.len()` never exceeds `file.len`, and `buf` is never empty. Returning `0`
    /// (or an error) before the end aborts the response, since the status line and length are
    /// already sent: the client sees a truncated body and retries.
    fn read_at(
        &self,
        file: &FileInfo<Self::Handle>,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, Self::Error>;

    /// The `.torrent` file of a published commit, with `url_list` as its BEP 19 `url-list`, or
    /// `Ok(None)` (`404`) when the commit is unknown or not published.
    ///
    /// The server passes the base URL clients reached it by, so the torrent points back here.
    fn torrent(
        &self,
        commit: &CommitId,
        url_list: &[String],
    ) -> Result<Option<Vec<u8>>, Self::Error>;
}

/// One file found by [`ByteSource::lookup`]: enough to answer headers before any byte is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo<H> {
    /// The file's size in bytes; `Content-Length` and range checks rely on it staying true.
    pub len: u64,
    /// An identifier that changes whenever the bytes do (the blob id for Git), sent quoted as
    /// the `ETag`. Must be visible ASCII without `"`; otherwise no `ETag` is sent.
    pub etag: String,
    /// The source's own key for reading the file, passed back to [`ByteSource::read_at`].
    pub handle: H,
}
