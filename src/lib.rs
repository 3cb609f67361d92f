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
//! use xus::torrent::magnet::Magnet;
//!
//! let m = Magnet::parse(
//!     "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&x.pe=127.0.0.1:6881",
//! )
//! .expect("a valid magnet link");
//! assert_eq!(m.info_hash.to_hex(), "0123456789abcdef0123456789abcdef01234567");
//! assert_eq!(m.peers, vec!["127.0.0.1:6881".parse().expect("address")]);
//! assert!(Magnet::parse("magnet:?dn=no-infohash").is_err());
//! ```
//!
//! # Layers
//!
//! Each module uses only those listed before it, never one after:
//!
//! | layer | owns |
//! | --- | --- |
//! | [`hex`] | the one strict hex codec (from the `xus-codec` crate) |
//! | [`git`] | object ids and trees (pure), repository helpers, blob reading, pack writing, `.git/xus/` |
//! | [`torrent`] | the commit torrent: bencode, format, build, parse, magnet links, import into Git, reuse of older versions |
//! | [`topic`] | xus's home, head addresses, writer keys, push requests and answers |
//! | [`swarm`] | the BitTorrent engine and its Git storage, DHT discovery and announcing, webseeds, the fetch and seed pipelines |
//! | [`master`] | the topic master, and the writer's side of a push |
//! | [`commands`], [`cli`] | thin adapters: parse options, call the library, print |
//!
//! The leaf crates `tracker-free` (DHT) and `webseed` (HTTP) know nothing
//! of this crate; `swarm` and `topic` join them to Git.

pub mod bounded_file;
pub mod cli;
pub mod commands;
pub mod error_kind;
pub mod git;
pub mod hex;
pub mod master;
pub mod metrics;
pub mod swarm;
pub mod topic;
pub mod torrent;
