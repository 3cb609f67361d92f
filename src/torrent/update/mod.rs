//! Update torrents: what moves when a branch head goes from commit A to
//! commit B, instead of all of B (specified in `docs/FORMAT.md`, "Update
//! torrents").
//!
//! A commit torrent carries every blob of its commit raw, and a reader can
//! only reuse what it has piece by piece, by path. An update carries exactly
//! the objects of B that A lacks (blobs, trees, the commit), each compressed
//! with zstd against an object of A as a prefix ("patch-from", long-distance
//! matching), the base chosen the way Git chooses delta bases: same path,
//! then a renamed or moved file (same name, then similar size among the same
//! extension). A one-line edit of a large file costs bytes, not the file; a
//! relinked binary whose bytes shift costs what changed. The payload is one
//! file in an ordinary single-file torrent, so stock clients seed it too.
//!
//! # Invariants
//!
//! - **Deterministic.** The payload, and so the update torrent's infohash, is
//!   a pure function of (A, B, [`UpdateSettings`], the zstd version): objects
//!   in a fixed walk order, bases chosen by fixed rules with fixed tie-breaks,
//!   single-threaded zstd with fixed parameters.
//! - **Nothing trusted before it is verified.** [`payload::decode`] is
//!   bounded and strict and decompresses nothing; [`apply_update`] refuses a
//!   payload whose `from` the repository lacks, bounds every decompression by
//!   the declared size (a zstd bomb fails at its first byte past it), checks
//!   every rebuilt object against its Git id, checks that everything `to`
//!   reaches is in the update or the repository and that the update carries
//!   nothing else, and writes nothing: it returns the objects. The caller
//!   writes them ([`Applied::write`]) only once it has rebuilt B's commit
//!   torrent and matched its infohash against the signed head.
//! - **Bounded cost.** Counts, sizes and candidate lists have limits
//!   ([`payload::Limits`], [`UpdateSettings`]), so neither a hostile payload
//!   nor a huge tree makes either side do unbounded work.
//!
//! `payload` is the byte format (pure), `build` reads a repository to make
//! an update, `apply` rebuilds and verifies one, `torrent` wraps a payload in
//! its info dictionary.

mod apply;
mod build;
pub mod payload;
mod rebuild;
mod store;
mod torrent;

pub use apply::{Applied, apply_update, apply_update_with};
pub use build::{
    MAX_CANDIDATES, MAX_COMMITS, Update, UpdateSettings, UpdateStats, build_history, build_update,
};
pub use payload::{Frame, Limits, ObjectKind, Payload, PayloadError};
pub use rebuild::Quarantine;
pub use store::{StoredUpdate, UpdateStore};
pub use torrent::{MAX_UPDATE_INFO_BYTES, TorrentError, UPDATE_VERSION, UpdateTorrent};

use crate::git::object::{ObjectError, ObjectId};
use crate::git::pack::PackError;
use crate::torrent::format::{BuildError, FormatError};

/// The `from` of an update that starts from nothing (all zeros, Git's null
/// id): it carries `to`'s whole history, for a reader that holds nothing of
/// the branch yet (a `git clone`). No base comes from the repository.
pub const NOTHING: ObjectId = ObjectId([0; 20]);

/// Why an update cannot be built, or a payload is refused. Every message
/// names the object and what was wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// The payload's bytes are malformed or over a limit.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// The update torrent is malformed or disagrees with its payload.
    #[error(transparent)]
    Torrent(#[from] TorrentError),
    /// A commit is too large or too deep for the v1 walk.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The commit torrent of `to` could not be rebuilt from the update.
    #[error("rebuilding the commit torrent from the update")]
    Rebuild(#[from] BuildError),
    /// The object database failed.
    #[error("reading {what} {id} from the repository")]
    Git {
        /// What was being read.
        what: &'static str,
        /// Its id.
        id: ObjectId,
        /// libgit2's error.
        source: git2::Error,
    },
    /// Writing the verified objects failed.
    #[error("writing the update's objects into the repository")]
    Pack(#[from] PackError),
    /// The quarantine an update is checked in could not be made or moved.
    #[error("quarantining the update's objects in {dir}")]
    Quarantine {
        /// The directory.
        dir: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Recording shallow boundaries failed.
    #[error("recording the shallow boundary in {path}")]
    Shallow {
        /// The shallow file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The reader does not have the commit the update starts from.
    #[error("the update starts from commit {0}, which this repository does not have")]
    MissingFrom(ObjectId),
    /// An update from a commit to itself.
    #[error("an update from commit {0} to itself carries nothing")]
    SameCommit(ObjectId),
    /// An object of the wrong type where another is needed.
    #[error("object {id} is a {actual}, expected a {expected}")]
    WrongKind {
        /// The object.
        id: ObjectId,
        /// What is needed there.
        expected: &'static str,
        /// What it is.
        actual: String,
    },
    /// A base the reader has nowhere.
    #[error(
        "base {base} of update object {id} is in neither the repository nor earlier in the update"
    )]
    MissingBase {
        /// The object to rebuild.
        id: ObjectId,
        /// Its base.
        base: ObjectId,
    },
    /// A base in the repository too large to read for one object.
    #[error("base {base} of update object {id} is {size} bytes, over the limit of {limit}")]
    BaseTooLarge {
        /// The object to rebuild.
        id: ObjectId,
        /// Its base.
        base: ObjectId,
        /// The base's size.
        size: u64,
        /// The bound.
        limit: u64,
    },
    /// A frame that is corrupt, needs another base, or does not decompress
    /// to exactly its declared size (a zstd bomb stops at the bound).
    #[error("update object {id} does not decompress to its declared {size} bytes: {reason}")]
    Decompress {
        /// The object.
        id: ObjectId,
        /// Its declared size.
        size: u64,
        /// What zstd or the size check said.
        reason: String,
    },
    /// Rebuilt bytes that are not the object they claim to be.
    #[error("update object declared as {kind} {id} rebuilds to {actual}")]
    IdMismatch {
        /// The declared id.
        id: ObjectId,
        /// The declared kind.
        kind: ObjectKind,
        /// The id of what was rebuilt.
        actual: ObjectId,
    },
    /// Something `to` reaches that neither the update nor the repository has.
    #[error("{kind} {id}, named by {parent}, is in neither the update nor the repository")]
    Missing {
        /// What the tree entry says it is.
        kind: &'static str,
        /// The missing object.
        id: ObjectId,
        /// The tree (or commit) naming it.
        parent: ObjectId,
    },
    /// An object carried that `to` never reaches.
    #[error("update object {0} is not reachable from the commit it rebuilds")]
    Unreferenced(ObjectId),
    /// A malformed tree, or one with an unsafe name.
    #[error("tree {id} is malformed")]
    BadTree {
        /// The tree.
        id: ObjectId,
        /// What is wrong.
        source: ObjectError,
    },
    /// A commit without a valid tree header.
    #[error("commit {id} is malformed")]
    BadCommit {
        /// The commit.
        id: ObjectId,
        /// What is wrong.
        source: ObjectError,
    },
    /// zstd refused to compress.
    #[error("compressing {kind} {id}: {reason}")]
    Compress {
        /// The object's kind.
        kind: ObjectKind,
        /// The object.
        id: ObjectId,
        /// zstd's error.
        reason: String,
    },
    /// An object, or the update as a whole, over the payload limits (size,
    /// running total of sizes, or object count): the commit must travel in
    /// its commit torrent instead.
    #[error("at {kind} {id}, {what} would be {size}, over the update limit of {limit}")]
    TooLarge {
        /// The object's kind.
        kind: ObjectKind,
        /// The object.
        id: ObjectId,
        /// What is counted: bytes of the object, bytes of all objects, or
        /// objects.
        what: &'static str,
        /// The count.
        size: u64,
        /// The bound.
        limit: u64,
    },
}
