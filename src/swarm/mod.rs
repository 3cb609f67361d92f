//! Sharing with peers: the BitTorrent engine and its Git-backed storage,
//! DHT discovery and announcing, webseeds (served from Git, and used
//! through a loopback bridge), and the fetch and seed pipelines built on
//! them. Built on [`crate::torrent`] and [`crate::topic`]; nothing here
//! prints: results go to a given writer, steps to a report or `tracing`.

pub mod announcer;
pub mod dial_policy;
pub mod discovery;
pub mod engine;
pub mod fetch;
pub mod metrics_server;
pub mod output;
pub mod piece_check;
pub mod repair;
pub mod repo_status;
pub mod reseed;
pub mod seed;
pub mod seeder;
pub mod session;
pub mod storage;
pub mod update_server;
pub mod webseed_server;
pub mod webseed_source;

pub use session::{Swarm, SwarmOptions};

/// Aborts a background task when what needs it ends (a fetch's DHT search,
/// its webseed policy).
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
