//! The commit torrent: the deterministic mapping between a Git commit and a
//! BitTorrent torrent, both ways. Builds the info dictionary from a commit
//! (`format`), parses it back strictly, imports a verified payload into Git
//! (`import`), and reuses what is already local (`scavenge`). Built on
//! [`crate::git`]; knows nothing of peers.

pub mod bencode;
pub mod cache;
pub mod format;
pub mod import;
pub mod info_hash;
pub mod magnet;
pub mod scavenge;
pub mod staged;
pub mod update;
pub mod weak;
