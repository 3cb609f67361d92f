//! Git, the bottom layer: object ids and the tree format (pure), the
//! repository helpers, reading blobs for peers, writing packs, and the
//! per-repository `.git/xus/` directory ([`state_dir::StateDir`]). Knows nothing of torrents.

pub mod blobs;
pub mod integrity;
pub mod object;
pub mod pack;
pub mod pack_leftovers;
pub mod repo;
pub mod state_dir;
