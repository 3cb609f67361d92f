//! `xus follow`: keep a local branch at a topic's signed head.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::report::{JsonReport, StderrReport};
use crate::git::object::ObjectId;
use crate::swarm::discovery::{self, DhtOptions};
use crate::swarm::engine::RateLimits;
use crate::swarm::fetch::{self, FetchReport, FetchRequest, resolve_head};
use crate::swarm::output::{Event, Output};
use crate::swarm::reseed;
use crate::swarm::seeder::Seeder;
use crate::swarm::{Swarm, SwarmOptions};
use crate::topic::head_address::HeadAddress;
use crate::topic::home::Home;
use crate::torrent::import::{self, RefOptions};

/// Options of `xus follow`.
#[derive(Debug, Clone)]
pub struct FollowOptions {
    /// `xus://TOPIC/BRANCH` or a BEP 46 magnet.
    pub head: String,
    /// Local branch to move; default the topic's branch name.
    pub branch: Option<String>,
    /// Pause between head lookups.
    pub interval: Duration,
    /// Each fetch (its `refs` are set here).
    pub request: FetchRequest,
    /// Where to accept peers.
    pub listen: SocketAddr,
    /// Speed caps.
    pub rates: RateLimits,
    /// Local service discovery (see [`crate::swarm::engine::EngineConfig::lsd`]).
    pub lsd: bool,
    /// Which DHT.
    pub dht: DhtOptions,
    /// xus's directory.
    pub home: Home,
}

/// Follows until Ctrl-C or SIGTERM. Prints `following <url> into <branch>`,
/// then `fetched <commit> <infohash>` and `updated <branch> <commit> seq
/// <n>` each time the branch moves. While it runs it seeds what it fetched
/// (the commit torrent and the update torrent it came through), so
/// followers updating together take pieces from each other rather than
/// from the publisher.
pub async fn run(options: FollowOptions, out: &mut Output<'_>) -> anyhow::Result<()> {
    let address = HeadAddress::parse(&options.head, &options.home)?.with_context(|| {
        format!(
            "{:?} is not a head: expected xus://TOPIC/BRANCH or magnet:?xs=urn:btpk:...",
            options.head
        )
    })?;
    let local = options
        .branch
        .clone()
        .unwrap_or_else(|| address.branch.as_str().to_string());
    let mut request = options.request.clone();
    request.refs = RefOptions {
        branch: Some(local.clone()),
        force: false,
        checkout: false,
        tracking: None,
    };
    import::check_ref_options(&request.refs, request.bare)?;
    let swarm = Swarm::start(&SwarmOptions {
        listen: options.listen,
        rates: options.rates,
        lsd: options.lsd,
        dht: Some(discovery::config(&options.dht, &options.home)?),
        feed: false,
    })
    .await?;
    let shutdown = super::shutdown_signal();
    out.emit(&Event::Following {
        url: address.url(),
        branch: local.clone(),
    })?;
    let result = follow_loop(&swarm, &address, &local, &options, &request, shutdown, out).await;
    swarm.stop().await;
    result
}

async fn follow_loop(
    swarm: &Swarm,
    address: &HeadAddress,
    local: &str,
    options: &FollowOptions,
    request: &FetchRequest,
    shutdown: impl std::future::Future<Output = ()>,
    out: &mut Output<'_>,
) -> anyhow::Result<()> {
    let dht = swarm.dht().context("following needs the DHT")?;
    let report: Arc<dyn FetchReport> = if out.is_json() {
        Arc::new(JsonReport::new())
    } else {
        Arc::new(StderrReport::new())
    };
    // The last head acted on (moved to, or refused for good).
    let mut settled: Option<ObjectId> = None;
    let mut said_no_head = false;
    let mut seeder: Option<Seeder<'_>> = None;
    let mut shutdown = std::pin::pin!(shutdown);
    let mut tick = tokio::time::interval(options.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = tick.tick() => {}
        }
        let head = match resolve_head(dht, &options.home, address, report.as_ref()).await {
            Ok(Some(head)) => head,
            Ok(None) => {
                if !said_no_head {
                    out.warn(format_args!(
                        "no head of {} on the DHT yet; still looking",
                        address.url()
                    ));
                    said_no_head = true;
                }
                continue;
            }
            Err(error) => {
                out.warn(format_args!(
                    "reading the head of {}: {error:#}",
                    address.url()
                ));
                continue;
            }
        };
        let Some(commit) = ObjectId::from_slice(&head.head.commit) else {
            out.warn(format_args!(
                "the head of {} names a non-SHA-1 commit",
                address.url()
            ));
            continue;
        };
        if settled == Some(commit) {
            continue;
        }
        let fetched = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            r = fetch::fetch_head(swarm, address, &head, request, &report) => r,
        };
        match fetched {
            Ok(fetched) => {
                settled = Some(commit);
                out.emit(&Event::Fetched {
                    commit: fetched.commit,
                    info_hash: fetched.info_hash,
                })?;
                out.emit(&Event::Updated {
                    branch: local.to_owned(),
                    commit,
                    seq: head.seq,
                })?;
                if let Err(error) =
                    reseed::seed_fetched(swarm, &mut seeder, request, &fetched).await
                {
                    out.warn(format_args!("cannot seed what was fetched: {error:#}"));
                }
            }
            Err(error) => {
                if error.is_not_fast_forward() {
                    // Kept under refs/xus/commits; retrying cannot help.
                    settled = Some(commit);
                }
                out.warn(format_args!(
                    "could not move {local} to head seq {} of {}: {:#}",
                    head.seq,
                    address.url(),
                    anyhow::Error::from(error)
                ));
            }
        }
    }
}
