//! `xus seed`: serve commits to the swarm straight from the object database
//! (the service itself is [`crate::swarm::seed`]).

use crate::swarm::output::Output;
pub use crate::swarm::seed::SeedOptions;

/// Seeds until Ctrl-C or SIGTERM; see [`crate::swarm::seed::run`] for what
/// it prints.
pub async fn run(options: SeedOptions, out: &mut Output<'_>) -> anyhow::Result<()> {
    crate::swarm::seed::run(options, super::shutdown_signal(), out).await
}
