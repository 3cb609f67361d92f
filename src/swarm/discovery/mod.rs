//! Glue between the DHT (`tracker-free`) and the BitTorrent session: which
//! DHT to join, and finding peers for a torrent and feeding them to the
//! engine. Announcing is [`crate::swarm::announcer`]'s job.

pub mod feed;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tracker_free::{Dht, DhtConfig, InfoHash};

use crate::topic::home::{DhtSection, Home};

pub use feed::PeerFeed;

pub use crate::swarm::dial_policy::LOOPBACK_ONLY_ENV;

/// DHT settings given on the command line; each overrides `config.toml`.
#[derive(Debug, Clone, Default)]
pub struct DhtOptions {
    /// `HOST:PORT` nodes to join through.
    pub bootstrap: Vec<String>,
    /// UDP port.
    pub port: Option<u16>,
    /// Address to bind.
    pub bind: Option<Ipv4Addr>,
    /// KRPC request timeout.
    pub request_timeout: Option<Duration>,
}

/// The DHT configuration for this run: flags over `config.toml` over the
/// defaults (public routers), checked against the loopback guard.
pub fn config(options: &DhtOptions, home: &Home) -> anyhow::Result<DhtConfig> {
    config_from(options, home.config()?.dht)
}

/// [`config`] with the file's `[dht]` section given: a topic master reads it
/// from its own configuration file rather than from xus's home.
pub fn config_from(options: &DhtOptions, file: DhtSection) -> anyhow::Result<DhtConfig> {
    let mut config = DhtConfig::default();
    if !options.bootstrap.is_empty() {
        config.bootstrap = Some(options.bootstrap.clone());
    } else if let Some(nodes) = file.bootstrap {
        config.bootstrap = Some(nodes);
    }
    config.port = options.port.or(file.port);
    config.bind = options.bind.or(file.bind);
    if let Some(timeout) = options
        .request_timeout
        .or(file.request_timeout_ms.map(Duration::from_millis))
    {
        config.request_timeout = timeout;
    }
    config.server_mode = file.server_mode.unwrap_or(false);
    config.loopback_only = crate::swarm::dial_policy::loopback_only();
    if config.loopback_only {
        config
            .require_loopback()
            .with_context(|| format!("{LOOPBACK_ONLY_ENV}=1 is set"))?;
    }
    Ok(config)
}

/// Starts this machine's DHT node. Queries may start at once (they go to
/// the bootstrap nodes while the routing table fills); a bootstrap that
/// reaches nobody is reported in the background.
pub async fn start(config: &DhtConfig) -> anyhow::Result<Arc<Dht>> {
    let dht = Arc::new(
        Dht::start(config)
            .context("starting the DHT node")?
            .observed_by(crate::metrics::dht_observer()),
    );
    let (watch, bootstrap) = (dht.clone(), config.bootstrap.clone());
    tokio::spawn(async move {
        if !watch.bootstrapped().await {
            tracing::warn!(?bootstrap, "no DHT bootstrap node answered");
        }
    });
    Ok(dht)
}

/// How long after it starts a peer search looks again every second.
pub const EAGER_SEARCH: Duration = Duration::from_secs(30);

/// Looks `infohash` up on the DHT again and again, handing every peer found
/// to `feed`, until the task is aborted. Lookups start back to back and stay
/// a second apart for [`EAGER_SEARCH`] (peers fetching the same thing at the
/// same moment announce themselves then, and find each other only if they
/// look again soon), then space out, since a small cluster's swarm changes
/// slowly.
pub fn spawn_peer_search(
    dht: Arc<Dht>,
    infohash: InfoHash,
    feed: Arc<PeerFeed>,
    first_peer: Arc<std::sync::OnceLock<Instant>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let started = Instant::now();
        let mut pause = Duration::from_millis(250);
        loop {
            let mut stream = dht.peers(infohash);
            while let Some(batch) = stream.next().await {
                let new = feed.add(infohash.into(), batch.into_iter().map(SocketAddr::V4));
                if new > 0 {
                    let _ = first_peer.set(Instant::now());
                    tracing::debug!(%infohash, new, "peers found on the DHT");
                }
            }
            tokio::time::sleep(pause).await;
            let cap = if started.elapsed() < EAGER_SEARCH {
                Duration::from_secs(1)
            } else {
                Duration::from_secs(10)
            };
            pause = (pause * 2).min(cap);
        }
    })
}
