//! The topic master: owns topics, accepts signed pushes from writers, keeps
//! every branch in several backup Git remotes and restores from them after a
//! wipe, seeds every head and keeps its DHT item fresh. Also the writer's
//! side of a push ([`push_client`]), which speaks to it.
//!
//! Inside, data flows one way: `daemon` (the main loop) and `http` (the
//! routes) use `accept` (one push), and all of them share `state`, which
//! imports none of them.

mod accept;
pub mod backup;
mod backup_metrics;
pub mod config;
pub mod daemon;
mod head_torrents;
mod http;
mod offered;
pub mod push_client;
mod resume;
mod slow_body;
mod state;
mod status;
mod status_page;
mod upload_history;
pub mod webseeds;

pub use daemon::run;
