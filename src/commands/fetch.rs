//! `xus fetch`: download a commit into a repository (the pipeline is
//! [`crate::swarm::fetch`]).

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use super::report::StderrReport;
use crate::swarm::discovery::{self, DhtOptions};
use crate::swarm::engine::RateLimits;
use crate::swarm::fetch::{self, FetchReport, FetchRequest, Source};
use crate::swarm::{Swarm, SwarmOptions};
use crate::topic::home::Home;
use crate::torrent::import;

/// Options of `xus fetch`: what the user typed, before it is checked.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// `.torrent` path, magnet link, infohash, or a topic head
    /// (`xus://TOPIC/BRANCH`, BEP 46 magnet).
    pub source: String,
    /// Where the commit goes and how long to try.
    pub request: FetchRequest,
    /// Where to accept peers.
    pub listen: SocketAddr,
    /// Speed caps.
    pub rates: RateLimits,
    /// Which DHT to use when peers must be found.
    pub dht: DhtOptions,
    /// Never start the DHT.
    pub no_dht: bool,
    /// xus's directory (topics, seen heads, config).
    pub home: Home,
}

/// Downloads, verifies and imports; prints `fetched <commit> <infohash>`.
pub async fn run(options: FetchOptions, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    // Everything that can be refused is refused before anything is created.
    let source = fetch::parse_source(&options.source, &options.home)?;
    import::check_ref_options(&options.request.refs, options.request.bare)?;
    let is_head = matches!(source, Source::Head(_));
    anyhow::ensure!(
        !(is_head && options.no_dht),
        "{} is a topic head, which is read from the DHT: drop --no-dht",
        options.source
    );
    let needs_dht =
        !options.no_dht && (is_head || (options.request.peers.is_empty() && !source.names_peers()));
    let dht = if needs_dht {
        Some(discovery::config(&options.dht, &options.home)?)
    } else {
        None
    };
    let swarm = Swarm::start(&SwarmOptions {
        listen: options.listen,
        rates: options.rates,
        dht,
        feed: !options.request.webseeds.is_empty() || source.names_webseeds(),
    })
    .await?;
    let report: Arc<dyn FetchReport> = Arc::new(StderrReport::new());
    let result =
        fetch::fetch_source(&swarm, source, &options.request, &options.home, &report).await;
    swarm.stop().await;
    let fetched = result?;
    writeln!(out, "fetched {} {}", fetched.commit, fetched.info_hash)?;
    out.flush()?;
    Ok(())
}
