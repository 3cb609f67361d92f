//! `xus fetch`: download a commit into a repository (the pipeline is
//! [`crate::swarm::fetch`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::report::{JsonReport, StderrReport};
use crate::swarm::discovery::{self, DhtOptions};
use crate::swarm::engine::RateLimits;
use crate::swarm::fetch::{self, FetchReport, FetchRequest, Fetched, Source};
use crate::swarm::output::{Event, Output};
use crate::swarm::reseed;
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
    /// Local service discovery (see [`crate::swarm::engine::EngineConfig::lsd`]).
    pub lsd: bool,
    /// Which DHT to use when peers must be found.
    pub dht: DhtOptions,
    /// Never start the DHT.
    pub no_dht: bool,
    /// xus's directory (topics, seen heads, config).
    pub home: Home,
    /// Keep serving the fetched commit this long after the fetch, so the
    /// next readers take it from here rather than from the first seeds.
    pub seed_for: Option<Duration>,
}

/// Downloads, verifies and imports; prints `fetched <commit> <infohash>`.
pub async fn run(options: FetchOptions, out: &mut Output<'_>) -> anyhow::Result<()> {
    // Everything that can be refused is refused before anything is created.
    let source = fetch::parse_source(&options.source, &options.home)?;
    import::check_ref_options(&options.request.refs, options.request.bare)?;
    let is_head = matches!(source, Source::Head(_));
    anyhow::ensure!(
        !(is_head && options.no_dht),
        "{} is a topic head, which is read from the DHT: drop --no-dht",
        options.source
    );
    // A fetcher that stays to seed announces itself, so later readers find it.
    let needs_dht = !options.no_dht
        && (is_head
            || options.seed_for.is_some()
            || (options.request.peers.is_empty() && !source.names_peers()));
    let dht = if needs_dht {
        Some(discovery::config(&options.dht, &options.home)?)
    } else {
        None
    };
    let swarm = Swarm::start(&SwarmOptions {
        listen: options.listen,
        rates: options.rates,
        lsd: options.lsd,
        dht,
        feed: !options.request.webseeds.is_empty() || source.names_webseeds(),
    })
    .await?;
    let report: Arc<dyn FetchReport> = if out.is_json() {
        Arc::new(JsonReport::new())
    } else {
        Arc::new(StderrReport::new())
    };
    let outcome = async {
        let fetched =
            fetch::fetch_source(&swarm, source, &options.request, &options.home, &report).await?;
        out.emit(&Event::Fetched {
            commit: fetched.commit,
            info_hash: fetched.info_hash,
        })?;
        match options.seed_for {
            Some(duration) => seed_for(&swarm, &options.request, &fetched, duration, out).await,
            None => Ok(()),
        }
    }
    .await;
    swarm.stop().await;
    outcome
}

/// Serves `fetched` for `duration` (or until Ctrl-C or SIGTERM), then says
/// how much this process uploaded.
async fn seed_for(
    swarm: &Swarm,
    request: &FetchRequest,
    fetched: &Fetched,
    duration: Duration,
    out: &mut Output<'_>,
) -> anyhow::Result<()> {
    let mut seeder = None;
    reseed::seed_fetched(swarm, &mut seeder, request, fetched).await?;
    out.emit(&Event::SeedingFor {
        commit: fetched.commit,
        info_hash: fetched.info_hash,
        address: swarm.engine().listen_addr(),
        seconds: duration.as_secs(),
    })?;
    tokio::select! {
        () = tokio::time::sleep(duration) => {}
        () = super::shutdown_signal() => {}
    }
    drop(seeder);
    out.emit(&Event::Uploaded {
        bytes: swarm.engine().uploaded_bytes(),
    })?;
    Ok(())
}
