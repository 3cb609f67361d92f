//! The topic master: owns topics, accepts signed pushes from writers, keeps
//! every branch in several backup Git remotes and restores from them after a
//! wipe, seeds every head and keeps its DHT item fresh.

mod accept;
pub mod answer;
pub mod backup;
pub mod config;
pub mod daemon;
mod http;
pub mod webseeds;

pub use daemon::run;
