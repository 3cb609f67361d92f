//! [`Swarm`]: one BitTorrent session plus, when peers must be found, a DHT
//! node and the loopback feed that hands its peers to the session. `xus
//! fetch` starts one per run, `xus follow` and a topic master keep one for
//! many fetches.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use anyhow::Context;
use tracker_free::{Dht, DhtConfig};

use crate::swarm::AbortOnDrop;
use crate::swarm::announcer::Announcer;
use crate::swarm::discovery::{self, PeerFeed};
use crate::swarm::engine::{Engine, EngineConfig, RateLimits};
use crate::torrent::info_hash::InfoHash;

/// How a swarm starts: settings of the session, apart from any one fetch.
#[derive(Debug, Clone)]
pub struct SwarmOptions {
    /// Where to accept peers; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Speed caps for the whole session.
    pub rates: RateLimits,
    /// Local service discovery (see [`EngineConfig::lsd`]).
    pub lsd: bool,
    /// The DHT to join; `None` stays off it (peers are given, or webseeds).
    pub dht: Option<DhtConfig>,
    /// Start the peer feed even without a DHT: webseeds join a running
    /// download through it.
    pub feed: bool,
}

/// A running session (see the module doc).
pub struct Swarm {
    pub(crate) engine: Engine,
    pub(crate) dht: Option<Arc<Dht>>,
    pub(crate) feed: Option<Arc<PeerFeed>>,
    pub(crate) started: Instant,
    _scratch: tempfile::TempDir,
}

impl Swarm {
    /// Starts the session, the DHT node when one is configured, and the
    /// peer feed when there is a DHT or [`SwarmOptions::feed`] asks for one.
    ///
    /// # Errors
    ///
    /// The listen address cannot be bound, or the DHT node cannot start.
    pub async fn start(options: &SwarmOptions) -> anyhow::Result<Self> {
        let started = Instant::now();
        let scratch = tempfile::tempdir().context("creating a scratch directory")?;
        let engine = Engine::start(&EngineConfig {
            listen: options.listen,
            work_dir: scratch.path().to_owned(),
            rates: options.rates,
            lsd: options.lsd,
        })
        .await?;
        let dht = match &options.dht {
            Some(config) => Some(discovery::start(config).await?),
            None => None,
        };
        let feed = if dht.is_some() || options.feed {
            Some(Arc::new(PeerFeed::start().await?))
        } else {
            None
        };
        Ok(Self {
            engine,
            dht,
            feed,
            started,
            _scratch: scratch,
        })
    }

    /// The BitTorrent session (a topic master seeds on it too).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The DHT node, when this swarm has one.
    pub fn dht(&self) -> Option<&Arc<Dht>> {
        self.dht.as_ref()
    }

    /// The loopback URL torrents poll for peers found late, if any.
    pub(crate) fn feed_url(&self) -> Option<String> {
        self.feed.as_ref().map(|f| f.url().to_string())
    }

    /// When the swarm started: timings in reports count from here.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Looks `info_hash` up on the DHT until the returned guard drops,
    /// handing every peer found to the engine through the feed, however
    /// late; `first_peer` records when the first one came. `None` without a
    /// DHT.
    pub(crate) fn search_peers(
        &self,
        info_hash: InfoHash,
        first_peer: &Arc<OnceLock<Instant>>,
    ) -> Option<AbortOnDrop> {
        match (&self.dht, &self.feed) {
            (Some(dht), Some(feed)) => Some(AbortOnDrop(discovery::spawn_peer_search(
                dht.clone(),
                info_hash.into(),
                feed.clone(),
                first_peer.clone(),
            ))),
            _ => None,
        }
    }

    /// Announces this session as a peer of `info_hash` on the DHT until the
    /// returned announcer drops (a fetch is a peer too, while it runs).
    /// `None` without a DHT or a listening engine.
    pub(crate) fn announce(&self, info_hash: InfoHash) -> Option<Announcer> {
        let (dht, addr) = (self.dht.as_ref()?, self.engine.listen_addr()?);
        let announcer = Announcer::spawn(dht.clone(), addr.port());
        announcer.add(info_hash.into());
        Some(announcer)
    }

    /// Stops the session.
    pub async fn stop(self) {
        self.engine.stop().await;
    }
}
