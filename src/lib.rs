//! xus: share Git repositories over BitTorrent, with no tracker.
//!
//! Every commit becomes a deterministic torrent ([`format`]); peers seed it
//! straight from the object database ([`storage`]) and fetch it back into Git
//! ([`import`]), verifying every piece and rebuilding the exact commit before
//! any ref moves.

pub mod bencode;
pub mod cache;
pub mod cli;
pub mod commands;
pub mod engine;
pub mod format;
pub mod gitobj;
pub mod import;
pub mod magnet;
pub mod pack;
pub mod repo;
pub mod scavenge;
pub mod storage;
pub mod weak;
