//! Downloading a commit torrent's missing bytes into its staging file:
//! local blobs back their files directly, older versions of changed files
//! are patched in first, webseeds and the DHT help as the policy says, and
//! a stall gives up while keeping what verified.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use webseed::bridge::{BridgeOptions, LayoutFile, TorrentLayout, WebseedPeer};

use super::Step;
use super::error::FetchError;
use super::report::{FetchEvent, FetchReport};
use super::webseed_policy;
use crate::git::blobs::{BlobSource, DEFAULT_CACHE_BYTES};
use crate::git::repo;
use crate::git::state_dir::StateDir;
use crate::swarm::AbortOnDrop;
use crate::swarm::engine::{Engine, TorrentHandle};
use crate::swarm::storage::{Backing, GitStorageFactory};
use crate::torrent::format::CommitTorrent;
use crate::torrent::scavenge;
use crate::torrent::staged::StagedFile;

/// How often the download is looked at (stall detection, progress).
const WATCH_TICK: Duration = Duration::from_millis(200);

/// Downloads what `torrent` lacks into its staging file under `git_dir`
/// (see [`staging_path`]); returns once every piece verified.
pub(crate) async fn download(
    step: Step<'_>,
    torrent: &CommitTorrent,
    git_dir: &Path,
    peers: &[std::net::SocketAddr],
    webseeds: &[String],
) -> Result<(), FetchError> {
    let Step {
        swarm,
        request,
        report,
        tally,
    } = step;
    let engine = &swarm.engine;
    let source = open_blobs(git_dir).await?;
    let missing = {
        let (git_dir, torrent) = (git_dir.to_owned(), torrent.clone());
        tokio::task::spawn_blocking(move || missing_files(&git_dir, &torrent))
            .await
            .context("the blob check panicked")??
    };
    let payload = Arc::new(StagedFile::new(staging_path(git_dir, torrent)));
    let patched = if payload.path().exists() {
        // An interrupted fetch: the engine re-checks what is there.
        scavenge::Recovered::default()
    } else {
        let (git_dir, torrent, missing) = (git_dir.to_owned(), torrent.clone(), missing.clone());
        let payload = payload.clone();
        tokio::task::spawn_blocking(move || {
            let repo = git2::Repository::open(&git_dir)?;
            scavenge::prefill(&repo, &torrent, &missing, &payload)
        })
        .await
        .context("patching older versions panicked")??
    };
    let commit_raw: Arc<[u8]> = Arc::from(torrent.commit_raw.as_slice());
    let mut reused = 0u64;
    let backings: Vec<Backing> = torrent
        .files
        .iter()
        .zip(&missing)
        .map(|(f, &missing)| match f.blob {
            None => Backing::Inline(commit_raw.clone()),
            Some(_) if missing => Backing::Staged {
                file: payload.clone(),
                base: f.offset,
            },
            Some(blob) => {
                reused += f.length;
                Backing::Blob(blob)
            }
        })
        .collect();
    let storage = GitStorageFactory::new(torrent.info_hash, source, backings);
    let bridge = match webseeds {
        [] => None,
        urls => Some(
            WebseedPeer::start(
                Arc::new(webseed_layout(torrent)),
                urls.to_vec(),
                BridgeOptions {
                    redirects: crate::swarm::dial_policy::webseed_redirects(),
                    ..BridgeOptions::default()
                },
            )
            .await
            .context("starting the webseed bridge")?,
        ),
    };
    // With nobody else to ask, the webseeds serve from the start; otherwise
    // they join only when peers are absent or slow (see `webseed_policy`).
    let webseeds_only = peers.is_empty() && swarm.dht().is_none();
    let mut initial = peers.to_vec();
    if let (Some(bridge), true) = (&bridge, webseeds_only) {
        initial.push(bridge.addr());
        report.event(FetchEvent::WebseedsOnly {
            count: webseeds.len(),
        });
    }
    let feed_url = swarm.feed_url();
    let (handle, start) = engine
        .add(
            torrent.torrent_file(&[]),
            storage,
            &initial,
            feed_url.as_deref(),
            None,
        )
        .await
        .with_context(|| format!("starting the download of {}", torrent.commit))?;
    let _policy = match (&bridge, &swarm.feed, webseeds_only) {
        (Some(bridge), Some(feed), false) => Some(AbortOnDrop(tokio::spawn(webseed_policy::run(
            handle.clone(),
            feed.clone(),
            torrent.info_hash,
            bridge.addr(),
            report.clone(),
        )))),
        _ => None,
    };
    // While downloading this machine is a peer too: say so on the DHT.
    let _announcer = swarm.announce(torrent.info_hash);
    // With other peers about, start at a random place in the largest
    // missing file, so that peers fetching at the same time can trade.
    let _spread = match largest_missing(torrent, &missing) {
        Some((index, length)) if swarm.dht().is_some() || peers.len() > 1 => {
            let mut random = [0u8; 8];
            match getrandom::fill(&mut random) {
                Ok(()) => Engine::spread_start(&handle, index, length, u64::from_le_bytes(random))
                    .await
                    .map(AbortOnDrop)
                    .map_err(|error| tracing::debug!(error = %format!("{error:#}"), "keeping the engine's piece order"))
                    .ok(),
                Err(_) => None,
            }
        }
        _ => None,
    };
    report.event(FetchEvent::Plan {
        commit: torrent.commit,
        total: start.total,
        files: torrent.files.len(),
        reused,
        patched: patched.bytes,
        verified: start.have,
    });
    if !start.finished {
        if initial.is_empty() && feed_url.is_none() {
            return Err(FetchError::NoPeer {
                missing: start.total - start.have,
            });
        }
        let watched = watch(&handle, request.stall_timeout, report.as_ref()).await;
        report.download_ended(watched.is_ok());
        watched?;
    }
    let end = Engine::progress(&handle);
    let http = bridge.as_ref().map_or(0, |b| b.stats().bytes_fetched);
    tally.add(&tally.commit, end.fetched.saturating_sub(http));
    tally.add(&tally.webseed, http);
    crate::metrics::global().webseed_fetched(http);
    report.event(FetchEvent::Downloaded {
        from_peers: end.fetched.saturating_sub(http),
        reused: start.have,
    });
    if let Some(bridge) = &bridge {
        let stats = bridge.stats();
        report.event(FetchEvent::WebseedBytes {
            bytes: stats.bytes_fetched,
            http_errors: stats.http_errors,
            per_url: stats.per_url.clone(),
        });
    }
    engine.remove(torrent.info_hash).await?;
    Ok(())
}

/// The blob reader of the repository at `git_dir`, opened off the runtime.
pub(super) async fn open_blobs(git_dir: &Path) -> anyhow::Result<Arc<BlobSource>> {
    let git_dir = git_dir.to_owned();
    tokio::task::spawn_blocking(move || BlobSource::open(&git_dir, DEFAULT_CACHE_BYTES))
        .await
        .context("opening the blob reader panicked")?
        .map_err(anyhow::Error::from)
}

/// The staging file of a torrent's downloaded bytes.
pub(crate) fn staging_path(git_dir: &Path, torrent: &CommitTorrent) -> std::path::PathBuf {
    StateDir::of(git_dir).staging(torrent.info_hash)
}

/// For each file, whether its blob must be downloaded (is not in Git).
fn missing_files(git_dir: &Path, torrent: &CommitTorrent) -> anyhow::Result<Vec<bool>> {
    let repo = git2::Repository::open(git_dir)?;
    let odb = repo.odb()?;
    Ok(torrent
        .files
        .iter()
        .map(|f| f.blob.is_some_and(|blob| !repo::has_object(&odb, blob)))
        .collect())
}

/// The largest file still to download (index in the torrent, length), when
/// it is big enough for its order to matter (several pieces).
pub(crate) fn largest_missing(torrent: &CommitTorrent, missing: &[bool]) -> Option<(usize, u64)> {
    torrent
        .files
        .iter()
        .zip(missing)
        .enumerate()
        .filter(|(_, (_, missing))| **missing)
        .map(|(index, (file, _))| (index, file.length))
        .max_by_key(|&(_, length)| length)
        .filter(|&(_, length)| length >= 4 * torrent.piece_length)
}

/// The byte layout of a commit torrent, as the webseed bridge needs it.
fn webseed_layout(torrent: &CommitTorrent) -> TorrentLayout {
    TorrentLayout {
        info_hash: torrent.info_hash.0,
        name: torrent.commit.to_hex(),
        piece_length: torrent.piece_length,
        files: torrent
            .files
            .iter()
            .map(|f| LayoutFile {
                path: f.path.clone(),
                length: f.length,
                // Static servers over a checkout name a file by its raw Git
                // name; only names that are not UTF-8 differ from the path.
                raw_path: (f.raw_path.len() != f.path.len()
                    || f.raw_path
                        .iter()
                        .zip(&f.path)
                        .any(|(r, p)| r != p.as_bytes()))
                .then(|| f.raw_path.clone()),
            })
            .collect(),
    }
}

/// Reports progress until the torrent is complete, or fails when no piece
/// arrives for `stall_timeout` (what was verified stays for the next run).
pub(super) async fn watch(
    handle: &TorrentHandle,
    stall_timeout: Duration,
    report: &dyn FetchReport,
) -> Result<(), FetchError> {
    let mut last_have = Engine::progress(handle).have;
    let mut last_change = Instant::now();
    let mut done = std::pin::pin!(Engine::wait_complete(handle));
    let mut tick = tokio::time::interval(WATCH_TICK);
    loop {
        tokio::select! {
            result = &mut done => return result.map_err(FetchError::from),
            _ = tick.tick() => {
                let p = Engine::progress(handle);
                if p.have != last_have {
                    last_have = p.have;
                    last_change = Instant::now();
                } else if last_change.elapsed() >= stall_timeout {
                    return Err(FetchError::Stalled {
                        seconds: stall_timeout.as_secs(),
                        peers: p.peers,
                        have: p.have,
                        total: p.total,
                    });
                }
                report.progress(&p);
            }
        }
    }
}
