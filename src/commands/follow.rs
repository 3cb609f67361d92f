//! `xus follow`: keep a local branch at a topic's signed head.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;

use super::fetch::{self, FetchOptions, Swarm};
use crate::discovery;
use crate::gitobj::ObjectId;
use crate::head_address::HeadAddress;
use crate::import::{self, ImportError, RefOptions};

/// Options of `xus follow`: those of a fetch, plus how often to look.
#[derive(Debug, Clone)]
pub struct FollowOptions {
    /// `xus://TOPIC/BRANCH` or a BEP 46 magnet.
    pub head: String,
    /// Local branch to move; default the topic's branch name.
    pub branch: Option<String>,
    /// Pause between head lookups.
    pub interval: Duration,
    /// Everything a fetch needs (its `source` and `refs` are set here).
    pub fetch: FetchOptions,
}

/// Follows until Ctrl-C or SIGTERM. Prints `following <url> into <branch>`,
/// then `updated <branch> <commit> seq <n>` each time the branch moves.
pub async fn run(options: FollowOptions, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let home = options.fetch.home.clone();
    let address = HeadAddress::parse(&options.head, &home)?.with_context(|| {
        format!(
            "{:?} is not a head: expected xus://TOPIC/BRANCH or magnet:?xs=urn:btpk:...",
            options.head
        )
    })?;
    let local = options
        .branch
        .clone()
        .unwrap_or_else(|| address.branch.as_str().to_string());
    let mut fetch_options = options.fetch.clone();
    fetch_options.source = address.url();
    fetch_options.refs = RefOptions {
        branch: Some(local.clone()),
        force: false,
        checkout: false,
        tracking: None,
    };
    import::check_ref_options(&fetch_options.refs, fetch_options.bare)?;
    let config = discovery::config(&fetch_options.dht, &home)?;
    let swarm = Swarm::start(
        fetch_options.listen,
        fetch_options.rates,
        Some(&config),
        false,
    )
    .await?;
    writeln!(out, "following {} into {local}", address.url())?;
    out.flush()?;
    let result = follow_loop(&swarm, &address, &local, &options, &fetch_options, out).await;
    swarm.stop().await;
    result
}

async fn follow_loop(
    swarm: &Swarm,
    address: &HeadAddress,
    local: &str,
    options: &FollowOptions,
    fetch_options: &FetchOptions,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let dht = swarm.dht().context("following needs the DHT")?;
    let home = &fetch_options.home;
    // The last head acted on (moved to, or refused for good).
    let mut settled: Option<ObjectId> = None;
    let mut said_no_head = false;
    let mut shutdown = std::pin::pin!(super::shutdown_signal());
    let mut tick = tokio::time::interval(options.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = tick.tick() => {}
        }
        let head = match fetch::resolve_head(dht, home, address).await {
            Ok(Some(head)) => head,
            Ok(None) => {
                if !said_no_head {
                    eprintln!("no head of {} on the DHT yet; still looking", address.url());
                    said_no_head = true;
                }
                continue;
            }
            Err(error) => {
                eprintln!("warning: reading the head of {}: {error:#}", address.url());
                continue;
            }
        };
        let Some(commit) = ObjectId::from_slice(&head.head.commit) else {
            eprintln!(
                "warning: the head of {} names a non-SHA-1 commit",
                address.url()
            );
            continue;
        };
        if settled == Some(commit) {
            continue;
        }
        let fetched = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            r = fetch::fetch_head(swarm, address, &head, fetch_options, out) => r,
        };
        match fetched {
            Ok(_) => {
                settled = Some(commit);
                writeln!(out, "updated {local} {commit} seq {}", head.seq)?;
                out.flush()?;
            }
            Err(error) => {
                let diverged = error
                    .downcast_ref::<ImportError>()
                    .is_some_and(|e| matches!(e, ImportError::NotFastForward { .. }));
                if diverged {
                    // Kept under refs/xus/commits; retrying cannot help.
                    settled = Some(commit);
                }
                eprintln!(
                    "warning: could not move {local} to head seq {} of {}: {error:#}",
                    head.seq,
                    address.url()
                );
            }
        }
    }
}
