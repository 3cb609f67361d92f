//! Discovery without trackers: BitTorrent peers (BEP 5) and signed branch
//! heads (BEP 44 mutable items, BEP 46 style) on the mainline DHT.
//!
//! The crate knows nothing of Git. It speaks infohashes, topic keys, branch
//! names and a small head value (`{commit, ih}`); the xus core joins those to
//! repositories and to the BitTorrent session.
//!
//! Everything read from the DHT is untrusted: signatures are checked with
//! strict ed25519 verification (the one rule of xus, see `docs/FORMAT.md`), values
//! are parsed by a strict, bounded decoder, and [`HeadLookup::choose`] refuses
//! rollbacks against the highest sequence number the caller has seen.
//!
//! ```
//! use tracker_free::{Branch, Head, InfoHash, TopicSecret};
//!
//! let secret = TopicSecret::from_seed([7; 32]);
//! let branch = Branch::new("main").expect("a short branch name");
//! let head = Head::new(vec![2; 20], InfoHash([1; 20]));
//! let signed = secret.sign_head(&branch, &head, 42);
//! assert_eq!(signed.seq, 42);
//! // What a reader would get back from the DHT verifies and decodes the same.
//! let read = tracker_free::SignedHead::verify(
//!     secret.topic(), branch, signed.seq, signed.value.clone(), signed.signature,
//! ).expect("a valid signature");
//! assert_eq!(read.head, head);
//! ```

#![deny(missing_docs)]

mod config;
mod head;
mod index;
mod node;
mod observe;
mod topic;

pub use config::{ConfigError, DhtConfig, PUBLIC_BOOTSTRAP_NODES};
pub use head::{
    Branch, BranchError, Head, HeadChoice, HeadError, HeadHistory, HeadLookup, HeadUpdate,
    InfoHash, MAX_HEAD_UPDATES, MAX_MASTER_URL_LEN, MAX_VALUE_LEN, Refusal, SignedHead, ValueForm,
    check_git_branch_name, is_master_url,
};
pub use index::{IndexDefault, IndexError, SignedIndex, TopicIndex, merge_indexes};
pub use node::{AnnounceError, Dht, PeerStream, PublishError, StartError};
pub use observe::{LookupKind, LookupObserver, LookupOutcome};
pub use topic::{TopicError, TopicKey, TopicSecret};
