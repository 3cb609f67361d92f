//! Fetching a head through one of the update torrents it lists: download
//! the payload (what changed, compressed), rebuild every object and check
//! its Git id, rebuild the commit torrent of the head's commit and check its
//! infohash against the signed head, and only then write. Any failure
//! leaves the repository as it was, and the caller fetches the commit
//! torrent instead.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use tracker_free::SignedHead;

use super::Step;
use super::download::watch;
use super::metadata;
use super::report::FetchEvent;
use crate::git::object::ObjectId;
use crate::git::repo;
use crate::git::state_dir::StateDir;
use crate::swarm::AbortOnDrop;
use crate::swarm::engine::Engine;
use crate::swarm::storage::{Backing, GitStorageFactory};
use crate::swarm::update_server::{BUILD_WAIT, update_path};
use crate::topic::update_chain::{ChainStep, chain_steps, history_links};
use crate::torrent::cache;
use crate::torrent::info_hash::InfoHash;
use crate::torrent::staged::StagedFile;
use crate::torrent::update::{
    NOTHING, Quarantine, UpdateStore, UpdateTorrent, apply_update, payload::MAX_PAYLOAD_BYTES,
};

/// Longest wait for an update torrent's metadata: a swarm of stock clients
/// seeding only the commit torrent never answers, and the commit torrent
/// must not wait long behind it.
const UPDATE_METADATA_TIMEOUT: Duration = Duration::from_secs(15);

/// Longest wait to connect to the topic master.
const MASTER_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest time the master may take to build an update once its turn
/// comes (it may first wait [`BUILD_WAIT`] behind another build), and
/// longest silence within the body.
const MASTER_BUILD_TIME: Duration = Duration::from_secs(120);

/// A head brought in by its update chain.
pub(super) struct ByUpdate {
    /// The commit the chain started from (it was here).
    pub(super) from: ObjectId,
    /// The links applied, oldest first.
    pub(super) steps: Vec<ChainStep>,
    /// Whether every link's commits join its `to` to its `from`: the head's
    /// commit descends from `from`.
    pub(super) descends_from: bool,
}

/// Brings the head's commit through the chain of update torrents it lists,
/// from the newest listed commit the repository has (the branch's tip,
/// `prefer`, when it is listed): each link is downloaded and applied in a
/// quarantine, then the commit torrent rebuilt there must match the signed
/// head. `None` (reported) when no link applies or any step fails; nothing
/// is written then.
pub(super) async fn try_updates(
    step: Step<'_>,
    head: &SignedHead,
    commit: ObjectId,
    git_dir: &Path,
    prefer: Option<ObjectId>,
) -> Option<ByUpdate> {
    let chain = chain_steps(&head.head);
    let start = {
        let (git_dir, froms) = (
            git_dir.to_owned(),
            chain.iter().map(|s| s.from).collect::<Vec<_>>(),
        );
        tokio::task::spawn_blocking(move || first_held(&git_dir, &froms, prefer))
            .await
            .ok()??
    };
    let mut links: Vec<ChainStep> = chain[..=start].to_vec();
    links.reverse();
    let first = links[0];
    report_plan(step, &links);
    match apply_chain(step, head, commit, &links, git_dir, Carrier::Swarm).await {
        Ok((steps, descends_from)) => Some(ByUpdate {
            from: first.from,
            steps,
            descends_from,
        }),
        Err(error) => {
            step.report.event(FetchEvent::UpdateFailed {
                info_hash: first.info_hash,
                reason: format!("{error:#}"),
            });
            None
        }
    }
}

/// Brings the head's commit with its whole history into a repository that
/// holds nothing of the branch, from the swarm: the history torrent the
/// head lists, then the listed updates from its end to the head. `None`
/// (reported) when the head lists no history or any step fails; nothing is
/// written then.
pub(super) async fn try_history(
    step: Step<'_>,
    head: &SignedHead,
    commit: ObjectId,
    git_dir: &Path,
) -> Option<ByUpdate> {
    let links = history_links(&head.head)?;
    report_plan(step, &links);
    match apply_chain(step, head, commit, &links, git_dir, Carrier::Swarm).await {
        Ok((steps, descends_from)) => Some(ByUpdate {
            from: NOTHING,
            steps,
            descends_from,
        }),
        Err(error) => {
            step.report.event(FetchEvent::UpdateFailed {
                info_hash: links[0].info_hash,
                reason: format!("{error:#}"),
            });
            None
        }
    }
}

/// Brings the head's commit through one update from `from` (the commit the
/// branch is at here, or [`NOTHING`](crate::torrent::update::NOTHING) with
/// `depth` generations of history) built by the topic master the head
/// names: for a reader further behind than every update the head lists, or
/// holding nothing yet. Checked exactly
/// as a listed update is (every object, then the commit torrent against the
/// signed head); `None` (reported) when the master cannot send one or it
/// does not check out.
pub(super) async fn try_master_update(
    step: Step<'_>,
    head: &SignedHead,
    commit: ObjectId,
    git_dir: &Path,
    from: ObjectId,
    depth: Option<usize>,
) -> Option<ByUpdate> {
    let master = head.head.master.as_deref()?;
    let url = format!(
        "{}/{}",
        master.trim_end_matches('/'),
        update_path(from, commit, depth)
    );
    step.report.event(FetchEvent::UpdateFromMaster {
        from,
        url: url.clone(),
    });
    let link = ChainStep {
        from,
        to: commit,
        // Unknown until the payload arrives; apply_chain fills it in.
        info_hash: InfoHash([0; 20]),
    };
    match apply_chain(step, head, commit, &[link], git_dir, Carrier::Master(&url)).await {
        Ok((steps, descends_from)) => Some(ByUpdate {
            from,
            steps,
            descends_from,
        }),
        Err(error) => {
            step.report.event(FetchEvent::MasterUpdateFailed {
                url,
                reason: format!("{error:#}"),
            });
            None
        }
    }
}

/// Where an update's payload comes from.
#[derive(Clone, Copy)]
enum Carrier<'a> {
    /// Its torrent, from peers (the infohash the head lists).
    Swarm,
    /// This URL of the topic master, built on demand.
    Master(&'a str),
}

fn report_plan(step: Step<'_>, links: &[ChainStep]) {
    for link in links {
        step.report.event(FetchEvent::UpdatePlan {
            from: link.from,
            info_hash: link.info_hash,
        });
    }
}

/// The index in `froms` (a head's chain, newest first) of the commit to
/// start from: `prefer` when it is listed and here, else the newest listed
/// commit the repository has.
fn first_held(git_dir: &Path, froms: &[ObjectId], prefer: Option<ObjectId>) -> Option<usize> {
    let repo = git2::Repository::open(git_dir).ok()?;
    let odb = repo.odb().ok()?;
    if let Some(i) = prefer.and_then(|p| froms.iter().position(|&f| f == p))
        && repo::has_object(&odb, froms[i])
    {
        return Some(i);
    }
    froms.iter().position(|&from| repo::has_object(&odb, from))
}

/// Downloads and applies `links` (oldest first) in a quarantine, checks the
/// head's commit torrent, and moves the objects into the repository.
/// Returns the links as applied (each with the infohash of the payload it
/// got, which a reader can seed) and whether the head's commit is proven to
/// descend from the first link's `from`.
async fn apply_chain(
    step: Step<'_>,
    head: &SignedHead,
    commit: ObjectId,
    links: &[ChainStep],
    git_dir: &Path,
    carrier: Carrier<'_>,
) -> anyhow::Result<(Vec<ChainStep>, bool)> {
    let quarantine = {
        let git_dir = git_dir.to_owned();
        tokio::task::spawn_blocking(move || Quarantine::new(&git_dir))
            .await
            .context("making the quarantine panicked")??
    };
    let mut quarantine = Some(quarantine);
    let mut descends = true;
    let mut payloads = Vec::with_capacity(links.len());
    for link in links {
        let (link, bytes) = match carrier {
            Carrier::Swarm => (*link, fetch_payload(step, *link, git_dir).await?),
            Carrier::Master(url) => {
                let payload = payload_from_master(step, url).await?;
                let torrent = UpdateTorrent::new(link.from, link.to, &payload)
                    .context("the master's update cannot be a torrent")?;
                let link = ChainStep {
                    info_hash: torrent.info_hash(),
                    ..*link
                };
                (link, payload)
            }
        };
        let mut held = quarantine.take().context("the quarantine is gone")?;
        let (held, applied_descends, objects, object_bytes, bytes) =
            tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                let repo =
                    git2::Repository::open_bare(held.path()).context("opening the quarantine")?;
                let started = Instant::now();
                let applied = apply_update(&repo, &bytes)?;
                tracing::debug!(
                    objects = applied.objects.len(),
                    ms = started.elapsed().as_millis(),
                    "update rebuilt and checked"
                );
                let started = Instant::now();
                anyhow::ensure!(
                    applied.from == link.from && applied.to == link.to,
                    "the update rebuilds {}..{} instead of {}..{}",
                    applied.from,
                    applied.to,
                    link.from,
                    link.to
                );
                held.add(&applied)?;
                tracing::debug!(
                    ms = started.elapsed().as_millis(),
                    "update's objects packed in the quarantine"
                );
                Ok((
                    held,
                    applied.descends_from,
                    applied.objects.len(),
                    applied.bytes(),
                    bytes,
                ))
            })
            .await
            .context("applying the update panicked")??;
        step.report.event(FetchEvent::UpdateApplied {
            payload: bytes.len() as u64,
            objects,
            object_bytes,
        });
        descends &= applied_descends;
        quarantine = Some(held);
        payloads.push((link, bytes));
    }
    let applied: Vec<ChainStep> = payloads.iter().map(|(link, _)| *link).collect();
    let held = quarantine.context("the quarantine is gone")?;
    // Payloads a head lists are kept to seed; one the master built for this
    // reader alone (often the whole history) would only take disk.
    if matches!(carrier, Carrier::Master(_)) {
        payloads.clear();
    }
    let expected = InfoHash::from(head.head.infohash);
    let (git_dir, from) = (git_dir.to_owned(), links[0].from);
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let hints: Vec<_> = cache::load(&git_dir, from).into_iter().collect();
        let started = Instant::now();
        let rebuilt = held.commit_torrent(commit, &hints)?;
        tracing::debug!(ms = started.elapsed().as_millis(), "commit torrent rebuilt from the quarantine");
        anyhow::ensure!(
            rebuilt.info_hash == expected,
            "the commit torrent rebuilt from the updates is {}, but the signed head names {expected}",
            rebuilt.info_hash
        );
        let started = Instant::now();
        held.accept()?;
        cache::store(&git_dir, &rebuilt);
        tracing::debug!(ms = started.elapsed().as_millis(), "quarantine accepted");
        let store = UpdateStore::of(&git_dir);
        for (link, payload) in payloads {
            if let Err(error) = store.save(link.from, link.to, &payload) {
                tracing::warn!(%error, "cannot keep the update to seed it");
            }
        }
        Ok(())
    })
    .await
    .context("checking the rebuilt commit panicked")??;
    step.report.event(FetchEvent::UpdateVerified { commit });
    Ok((applied, descends))
}

/// The payload at `url`, at most [`MAX_PAYLOAD_BYTES`]; counted as update
/// bytes. The master builds it before sending a byte, so the wait for the
/// answer is long; the body must then keep coming.
async fn payload_from_master(step: Step<'_>, url: &str) -> anyhow::Result<Vec<u8>> {
    crate::swarm::dial_policy::check_url(url)
        .map_err(|why| anyhow::anyhow!("not asking the master at {url}: {why}"))?;
    let client = reqwest::Client::builder()
        .redirect(crate::swarm::dial_policy::redirect_policy())
        .connect_timeout(MASTER_CONNECT_TIMEOUT)
        .read_timeout(BUILD_WAIT + MASTER_BUILD_TIME)
        .build()
        .context("building an HTTP client")?;
    let limit = usize::try_from(MAX_PAYLOAD_BYTES).unwrap_or(usize::MAX);
    let payload = metadata::get_bounded(&client, url, limit).await?;
    step.tally.add(&step.tally.update, payload.len() as u64);
    Ok(payload)
}

/// One link's payload: its metadata from peers (and the DHT), checked to be
/// the update from `link.from` to `link.to`, then downloaded and checked
/// against its piece hashes.
async fn fetch_payload(step: Step<'_>, link: ChainStep, git_dir: &Path) -> anyhow::Result<Vec<u8>> {
    let Step {
        swarm,
        request,
        report,
        tally,
    } = step;
    let info_hash = link.info_hash;
    let first_dht_peer = Arc::new(OnceLock::new());
    let _search = swarm.search_peers(info_hash, &first_dht_peer);
    // Announced before the metadata arrives: followers fetching this update
    // at the same moment find each other in their first lookups, while most
    // pieces are still to come.
    let _announcer = swarm.announce(info_hash);
    let mut peers: Vec<SocketAddr> = request.peers.clone();
    let deadline = Instant::now() + request.metadata_timeout.min(UPDATE_METADATA_TIMEOUT);
    let info = metadata::info_from_peers(
        swarm,
        info_hash,
        &mut peers,
        &first_dht_peer,
        metadata::Clock {
            deadline,
            origin: request.timing_origin(swarm),
        },
        report.as_ref(),
        tally,
    )
    .await?;
    let torrent = UpdateTorrent::parse(&info).context("peers sent no valid update torrent")?;
    anyhow::ensure!(
        torrent.info_hash() == info_hash && torrent.from == link.from && torrent.to == link.to,
        "the update torrent {info_hash} is from {} to {}, not from {} to {}",
        torrent.from,
        torrent.to,
        link.from,
        link.to
    );
    peers.sort();
    peers.dedup();
    let staging = StateDir::of(git_dir).staging(info_hash);
    download(step, &torrent, &staging, &peers).await?;
    let payload = tokio::task::spawn_blocking(move || {
        let payload = read_payload(&staging, &torrent);
        let _ = std::fs::remove_file(&staging);
        payload
    })
    .await
    .context("reading the update panicked")??;
    Ok(payload)
}

/// Downloads the update's payload into `staging` from `peers` (and peers
/// the DHT finds; the caller announces this machine meanwhile).
async fn download(
    step: Step<'_>,
    torrent: &UpdateTorrent,
    staging: &Path,
    peers: &[SocketAddr],
) -> anyhow::Result<()> {
    let Step {
        swarm,
        request,
        report,
        tally,
    } = step;
    let info_hash = torrent.info_hash();
    // Update torrents have no blob-backed files: the reader is never read.
    let source = super::download::open_blobs(&request.repo).await?;
    let file = Arc::new(StagedFile::new(staging.to_owned()));
    let storage =
        GitStorageFactory::new(info_hash, source, vec![Backing::Staged { file, base: 0 }]);
    let feed_url = swarm.feed_url();
    let (handle, start) = swarm
        .engine
        .add(
            torrent.torrent_file(&[]),
            storage,
            peers,
            feed_url.as_deref(),
            None,
        )
        .await
        .with_context(|| format!("starting the download of update {}", torrent.name()))?;
    // Followers updating together start at different places, so they hold
    // different pieces and trade them instead of all asking the publisher.
    let _spread = if (swarm.dht().is_some() || peers.len() > 1)
        && torrent.length >= 4 * torrent.piece_length
    {
        let mut random = [0u8; 8];
        match getrandom::fill(&mut random) {
            Ok(()) => Engine::spread_start(&handle, 0, torrent.length, u64::from_le_bytes(random))
                .await
                .map(AbortOnDrop)
                .ok(),
            Err(_) => None,
        }
    } else {
        None
    };
    let result = if start.finished {
        Ok(())
    } else {
        let watched = watch(&handle, request.stall_timeout, report.as_ref()).await;
        report.download_ended(watched.is_ok());
        watched.map_err(anyhow::Error::from)
    };
    let end = Engine::progress(&handle);
    tally.add(&tally.update, end.fetched);
    swarm.engine.remove(info_hash).await?;
    result
}

/// The downloaded payload, checked against its torrent's piece hashes.
fn read_payload(staging: &Path, torrent: &UpdateTorrent) -> anyhow::Result<Vec<u8>> {
    anyhow::ensure!(
        torrent.length <= MAX_PAYLOAD_BYTES,
        "update of {} bytes is over the limit",
        torrent.length
    );
    let payload =
        std::fs::read(staging).with_context(|| format!("reading {}", staging.display()))?;
    torrent.check_payload(&payload)?;
    Ok(payload)
}
