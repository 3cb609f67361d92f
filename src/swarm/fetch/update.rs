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
use crate::swarm::announcer::Announcer;
use crate::swarm::discovery;
use crate::swarm::storage::{Backing, GitStorageFactory};
use crate::torrent::cache;
use crate::torrent::info_hash::InfoHash;
use crate::torrent::staged::StagedFile;
use crate::torrent::update::{
    UpdateStore, UpdateTorrent, apply_update, payload::MAX_PAYLOAD_BYTES, rebuild_commit_torrent,
};

/// Longest wait for an update torrent's metadata: a swarm of stock clients
/// seeding only the commit torrent never answers, and the commit torrent
/// must not wait long behind it.
const UPDATE_METADATA_TIMEOUT: Duration = Duration::from_secs(15);

/// Update torrents tried before falling back to the commit torrent.
const MAX_ATTEMPTS: usize = 2;

/// A head brought in by an update.
pub(super) struct ByUpdate {
    /// The commit the update started from: `commit` descends from it when
    /// `descends_from`.
    pub(super) from: ObjectId,
    /// The update torrent.
    pub(super) info_hash: InfoHash,
    /// Whether the update's commits link the head's commit to `from`.
    pub(super) descends_from: bool,
}

/// Tries the update torrents `head` lists whose `from` the repository has
/// (the one from `prefer`, the branch's tip, first); `None` when none could
/// be used (each failure reported), and nothing was written.
pub(super) async fn try_updates(
    step: Step<'_>,
    head: &SignedHead,
    commit: ObjectId,
    git_dir: &Path,
    prefer: Option<ObjectId>,
) -> Option<ByUpdate> {
    let report = step.report;
    let listed: Vec<(ObjectId, InfoHash)> = head
        .head
        .updates
        .iter()
        .filter_map(|u| Some((ObjectId::from_slice(&u.from)?, InfoHash::from(u.infohash))))
        .collect();
    if listed.is_empty() {
        return None;
    }
    let candidates = {
        let git_dir = git_dir.to_owned();
        tokio::task::spawn_blocking(move || usable(&git_dir, listed, prefer))
            .await
            .ok()?
    };
    for (from, info_hash) in candidates.into_iter().take(MAX_ATTEMPTS) {
        report.event(FetchEvent::UpdatePlan { from, info_hash });
        match fetch_update(step, head, commit, (from, info_hash), git_dir).await {
            Ok(descends_from) => {
                return Some(ByUpdate {
                    from,
                    info_hash,
                    descends_from,
                });
            }
            Err(error) => report.event(FetchEvent::UpdateFailed {
                info_hash,
                reason: format!("{error:#}"),
            }),
        }
    }
    None
}

/// The listed updates whose `from` commit is in the repository, `prefer`'s
/// first, then in the head's order (newest first).
fn usable(
    git_dir: &Path,
    listed: Vec<(ObjectId, InfoHash)>,
    prefer: Option<ObjectId>,
) -> Vec<(ObjectId, InfoHash)> {
    let Ok(repo) = git2::Repository::open(git_dir) else {
        return Vec::new();
    };
    let Ok(odb) = repo.odb() else {
        return Vec::new();
    };
    let mut usable: Vec<_> = listed
        .into_iter()
        .filter(|(from, _)| repo::has_object(&odb, *from))
        .collect();
    usable.sort_by_key(|(from, _)| Some(*from) != prefer);
    usable
}

/// One update: metadata, download, verification, rebuild, write. Returns
/// whether the update proves `commit` descends from its `from`.
async fn fetch_update(
    step: Step<'_>,
    head: &SignedHead,
    commit: ObjectId,
    (from, info_hash): (ObjectId, InfoHash),
    git_dir: &Path,
) -> anyhow::Result<bool> {
    let Step {
        swarm,
        request,
        report,
        tally,
    } = step;
    let first_dht_peer = Arc::new(OnceLock::new());
    let _search = match (swarm.dht(), &swarm.feed) {
        (Some(dht), Some(feed)) => Some(AbortOnDrop(discovery::spawn_peer_search(
            dht.clone(),
            info_hash.into(),
            feed.clone(),
            first_dht_peer.clone(),
        ))),
        _ => None,
    };
    let mut peers: Vec<SocketAddr> = request.peers.clone();
    let deadline = Instant::now() + request.metadata_timeout.min(UPDATE_METADATA_TIMEOUT);
    let info = metadata::info_from_peers(
        swarm,
        info_hash,
        &mut peers,
        &first_dht_peer,
        deadline,
        report.as_ref(),
        tally,
    )
    .await?;
    let torrent = UpdateTorrent::parse(&info).context("peers sent no valid update torrent")?;
    anyhow::ensure!(
        torrent.info_hash() == info_hash && torrent.from == from && torrent.to == commit,
        "the update torrent {info_hash} is from {} to {}, not from {from} to {commit}",
        torrent.from,
        torrent.to
    );
    peers.sort();
    peers.dedup();

    let staging = StateDir::of(git_dir).staging(info_hash);
    download(step, &torrent, &staging, &peers).await?;

    let expected = InfoHash::from(head.head.infohash);
    let git_dir = git_dir.to_owned();
    let (applied, payload_len) =
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let payload = read_payload(&staging, &torrent)?;
            let repo = git2::Repository::open(&git_dir).context("opening the repository")?;
            let applied = apply_update(&repo, &payload)?;
            anyhow::ensure!(
                applied.to == commit,
                "the update rebuilds {} instead of {commit}",
                applied.to
            );
            let hints: Vec<_> = cache::load(&git_dir, from).into_iter().collect();
            let (rebuilt, quarantine) = rebuild_commit_torrent(&git_dir, &applied, &hints)?;
            anyhow::ensure!(
                rebuilt.info_hash == expected,
                "the commit torrent rebuilt from the update is {}, but the signed head names {expected}",
                rebuilt.info_hash
            );
            quarantine.accept()?;
            cache::store(&git_dir, &rebuilt);
            if let Err(error) = UpdateStore::of(&git_dir).save(from, commit, &payload) {
                tracing::warn!(%error, "cannot keep the update to seed it");
            }
            let _ = std::fs::remove_file(&staging);
            Ok((applied, payload.len() as u64))
        })
        .await
        .context("applying the update panicked")??;
    report.event(FetchEvent::UpdateApplied {
        payload: payload_len,
        objects: applied.objects.len(),
        object_bytes: applied.bytes(),
    });
    Ok(applied.descends_from)
}

/// Downloads the update's payload into `staging` from `peers` (and peers
/// the DHT finds), announcing this machine as a peer meanwhile.
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
    let source = {
        let git_dir = request.repo.clone();
        tokio::task::spawn_blocking(move || {
            crate::git::blobs::BlobSource::open(&git_dir, crate::git::blobs::DEFAULT_CACHE_BYTES)
        })
        .await
        .context("opening the blob reader panicked")??
    };
    let file = Arc::new(StagedFile::new(staging.to_owned()));
    let storage =
        GitStorageFactory::new(info_hash, source, vec![Backing::Staged { file, base: 0 }]);
    let feed_url = swarm.feed_url();
    let handle = swarm
        .engine
        .add(
            torrent.torrent_file(&[]),
            storage,
            peers,
            feed_url.as_deref(),
        )
        .await
        .with_context(|| format!("starting the download of update {}", torrent.name()))?;
    let _announcer = match (swarm.dht(), swarm.engine.listen_addr()) {
        (Some(dht), Some(addr)) => {
            let announcer = Announcer::spawn(dht.clone(), addr.port());
            announcer.add(info_hash.into());
            Some(announcer)
        }
        _ => None,
    };
    let start = crate::swarm::engine::Engine::progress(&handle);
    let result = if start.finished {
        Ok(())
    } else {
        let watched = watch(&handle, request.stall_timeout, report.as_ref()).await;
        report.download_ended(watched.is_ok());
        watched.map_err(anyhow::Error::from)
    };
    let end = crate::swarm::engine::Engine::progress(&handle);
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
