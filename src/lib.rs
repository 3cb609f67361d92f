//! xus: share Git repositories over BitTorrent, with no tracker.
//!
//! Every commit becomes a deterministic torrent ([`format`]); peers seed it
//! straight from the object database ([`storage`]) and fetch it back into Git
//! ([`import`]), verifying every piece and rebuilding the exact commit before
//! any ref moves.
//!
//! Everything a user types or a peer sends goes through a bounded parser
//! first; a magnet link, for instance:
//!
//! ```
//! use xus::magnet::Magnet;
//!
//! let m = Magnet::parse(
//!     "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&x.pe=127.0.0.1:6881",
//! )
//! .expect("a valid magnet link");
//! assert_eq!(m.info_hash.to_hex(), "0123456789abcdef0123456789abcdef01234567");
//! assert_eq!(m.peers, vec!["127.0.0.1:6881".parse().expect("address")]);
//! assert!(Magnet::parse("magnet:?dn=no-infohash").is_err());
//! ```

pub mod bencode;
pub mod cache;
pub mod cli;
pub mod commands;
pub mod discovery;
pub mod engine;
pub mod format;
pub mod gitobj;
pub mod head_address;
pub mod hex;
pub mod home;
pub mod import;
pub mod magnet;
pub mod master;
pub mod pack;
pub mod push_request;
pub mod repo;
pub mod scavenge;
pub mod storage;
pub mod weak;
pub mod webseed_source;
pub mod writer_key;
