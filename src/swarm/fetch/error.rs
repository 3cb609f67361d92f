//! [`FetchError`]: what callers of the fetch pipeline match on.

use crate::git::object::ObjectId;
use crate::torrent::import::ImportError;
use crate::torrent::info_hash::InfoHash;

/// Returned by the fetch pipeline. The variants callers act on are typed;
/// everything else (I/O, the engine, HTTP) is [`FetchError::Other`], with
/// its causes.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// A commit refused by `require_parents`: its history must come first.
    #[error("commit {commit} has parent {parent}, which is not here: its history must come first")]
    MissingParent {
        /// The refused commit.
        commit: ObjectId,
        /// A parent the repository lacks.
        parent: ObjectId,
    },
    /// The torrent holds another commit than the head or request named.
    #[error(
        "the head names commit {expected} but its torrent {info_hash} holds commit {found}; refusing it"
    )]
    WrongCommit {
        /// The commit named.
        expected: ObjectId,
        /// The torrent.
        info_hash: InfoHash,
        /// The commit it holds.
        found: ObjectId,
    },
    /// No piece arrived for the stall timeout; what verified is kept.
    #[error(
        "no progress for {seconds} s with {peers} peers: {have} of {total} bytes verified and kept; run again to resume"
    )]
    Stalled {
        /// The stall timeout.
        seconds: u64,
        /// Peers connected then.
        peers: usize,
        /// Bytes verified.
        have: u64,
        /// Payload size.
        total: u64,
    },
    /// Bytes are missing and nobody is known to ask for them.
    #[error("{missing} bytes are missing and no peer is known: give one with --peer ADDR")]
    NoPeer {
        /// Bytes still missing.
        missing: u64,
    },
    /// The topic has no head on the DHT (and none was seen before).
    #[error("no head of {url} was found on the DHT")]
    HeadNotFound {
        /// `xus://TOPIC/BRANCH`.
        url: String,
    },
    /// Verifying, writing objects or moving refs failed; a branch that
    /// would not fast-forward is [`ImportError::NotFastForward`].
    #[error(transparent)]
    Import(#[from] ImportError),
    /// Anything else, with its causes.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl FetchError {
    /// Whether the fetch failed because a branch would not fast-forward,
    /// or cannot be shown to (retrying the same head cannot help).
    pub fn is_not_fast_forward(&self) -> bool {
        matches!(
            self,
            Self::Import(ImportError::NotFastForward { .. } | ImportError::AncestryUnknown { .. })
        )
    }
}
