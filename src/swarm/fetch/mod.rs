//! The fetch pipeline: from a torrent, an infohash or a signed head to a
//! verified commit in a repository, refs moved last.
//!
//! Blobs already in the object database back their files directly, so the
//! pieces they cover verify at start-up and are never downloaded. Missing
//! bytes are staged in `<git dir>/xus/partial/<infohash>` and survive an
//! interruption: the next run re-checks them and downloads only what is
//! missing. Nothing enters Git until every piece is verified and every blob
//! hashes to the id its tree names.
//!
//! A [`Swarm`] is started once with [`crate::swarm::SwarmOptions`]; each
//! fetch is a [`FetchRequest`]. Steps are reported to a [`FetchReport`];
//! the library prints nothing.

mod download;
mod error;
mod heads;
mod metadata;
mod report;
mod source;
mod update;
mod webseed_policy;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use tracker_free::SignedHead;

pub use error::FetchError;
pub use heads::resolve_head;
pub use report::{FetchEvent, FetchReport, LogReport, Tally, Transferred};
pub use source::{Hints, Source, parse_source};

use crate::git::object::ObjectId;
use crate::git::repo;
use crate::swarm::dial_policy;
use crate::swarm::session::Swarm;
use crate::topic::head_address::HeadAddress;
use crate::topic::home::Home;
use crate::topic::update_chain::ChainStep;
use crate::torrent::format::CommitTorrent;
use crate::torrent::import::{self, ImportError, RefOptions};
use crate::torrent::info_hash::InfoHash;
use crate::torrent::update::NOTHING;

/// One fetch: where the commit goes and how long to try. The swarm's own
/// settings (listen address, DHT, rates) are [`crate::swarm::SwarmOptions`].
#[derive(Debug, Clone)]
pub struct FetchRequest {
    /// Repository to fetch into; created when missing.
    pub repo: PathBuf,
    /// Create it bare.
    pub bare: bool,
    /// What to do with refs afterwards.
    pub refs: RefOptions,
    /// Peers to dial, besides those the source names.
    pub peers: Vec<SocketAddr>,
    /// Webseed base URLs (BEP 19), besides those the source names.
    pub webseeds: Vec<String>,
    /// How long to wait for metadata.
    pub metadata_timeout: Duration,
    /// Give up after this long without a new verified piece.
    pub stall_timeout: Duration,
    /// Refuse a commit whose parents are not in the repository, before
    /// downloading it (a topic master keeps whole histories, never shallow).
    pub require_parents: bool,
    /// Try the update torrents a head lists before its commit torrent.
    pub use_updates: bool,
    /// How much history to bring when the repository holds nothing of the
    /// branch yet.
    pub history: History,
    /// A commit already here that the master's update may start from when
    /// neither the branch nor its tracking ref names one (another branch of
    /// the topic, fetched just before): the update then carries only what
    /// that commit's history lacks. Used with [`History::Whole`] only.
    pub base: Option<ObjectId>,
    /// The commit may be here already, in a shallow repository: bring its
    /// history (as `history` says) anyway, as `git fetch --unshallow` asks.
    pub deepen: bool,
    /// What the timings a report gives count from: `None` for the swarm's
    /// start (a command started for this fetch, so they include DHT
    /// start-up), `Some` for a long-lived process (a master counts a
    /// pushed commit's fetch from the push).
    pub timed_from: Option<Instant>,
    /// Download and import even though the commit object is here: some of
    /// its other objects are missing (`xus verify --repair` set broken ones
    /// aside). Those present are reused, so only the missing ones move.
    pub repair: bool,
}

impl FetchRequest {
    /// Where reported timings count from (see [`Self::timed_from`]).
    pub fn timing_origin(&self, swarm: &Swarm) -> Instant {
        self.timed_from.unwrap_or(swarm.started)
    }
}

/// How much history a fetch brings into a repository that holds nothing of
/// the branch yet. Beyond the tip it comes from the topic master the head
/// names, as one update from nothing (every object checked, the tip against
/// the signed head); without a master the tip alone comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    /// The head's commit alone, a shallow boundary, through the swarm.
    Tip,
    /// Every ancestor (up to 10,000 commits), as `git clone` expects.
    Whole,
    /// The commits fewer than this many parent steps from the head (Git's
    /// `--depth`; 1 is the tip alone).
    Depth(usize),
}

impl History {
    /// What `--depth N` asks for: 0 is the whole history, 1 the tip alone.
    pub fn from_depth(depth: usize) -> Self {
        match depth {
            0 => Self::Whole,
            1 => Self::Tip,
            n => Self::Depth(n),
        }
    }
}

/// What the steps of one fetch share: the session, the request, where
/// steps are reported and where bytes are counted.
#[derive(Clone, Copy)]
pub(crate) struct Step<'a> {
    pub(crate) swarm: &'a Swarm,
    pub(crate) request: &'a FetchRequest,
    pub(crate) report: &'a Arc<dyn FetchReport>,
    pub(crate) tally: &'a Tally,
}

/// What a fetch brought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The commit, now in the repository.
    pub commit: ObjectId,
    /// Its torrent.
    pub info_hash: InfoHash,
    /// The update torrents it came through, oldest first (their payloads
    /// are in the repository's update store); empty when it did not.
    pub updates: Vec<ChainStep>,
}

/// Fetches whatever `source` names; a head is resolved on the swarm's DHT
/// first (against the seen heads in `home`).
///
/// # Errors
///
/// See [`FetchError`].
pub async fn fetch_source(
    swarm: &Swarm,
    source: Source,
    request: &FetchRequest,
    home: &Home,
    report: &Arc<dyn FetchReport>,
) -> Result<Fetched, FetchError> {
    match source {
        Source::Head(address) => {
            let dht = swarm.dht().context("resolving a head needs the DHT")?;
            let head = resolve_head(dht, home, &address, report.as_ref())
                .await?
                .ok_or_else(|| FetchError::HeadNotFound { url: address.url() })?;
            fetch_head(swarm, &address, &head, request, report).await
        }
        other => {
            let tally = Tally::default();
            let fetched = fetch(swarm, other, None, request, report, &tally).await;
            report.event(FetchEvent::Transferred(tally.snapshot()));
            fetched
        }
    }
}

/// Fetches the commit a resolved head names, refusing a torrent that holds
/// another commit, and records it under `refs/xus/topics/<topic>/<branch>`.
///
/// # Errors
///
/// See [`FetchError`].
pub async fn fetch_head(
    swarm: &Swarm,
    address: &HeadAddress,
    head: &SignedHead,
    request: &FetchRequest,
    report: &Arc<dyn FetchReport>,
) -> Result<Fetched, FetchError> {
    report.event(FetchEvent::HeadResolved {
        url: address.url(),
        commit: crate::hex::encode(&head.head.commit),
        info_hash: head.head.infohash.to_string(),
        seq: head.seq,
        after: request.timing_origin(swarm).elapsed(),
    });
    let mut request = request.clone();
    request.refs.tracking = Some(format!(
        "refs/xus/topics/{}/{}",
        address.topic, address.branch
    ));
    let commit = ObjectId::from_slice(&head.head.commit)
        .with_context(|| format!("the head of {} names a non-SHA-1 commit", address.url()))?;
    let tally = Tally::default();
    let fetched = fetch_head_counted(swarm, head, commit, &request, report, &tally).await;
    report.event(FetchEvent::Transferred(tally.snapshot()));
    fetched
}

/// [`fetch_head`] after the head is checked: through the update torrents
/// it lists when the repository holds one's `from`, else through an update
/// the topic master builds from the branch's commit here, else through the
/// commit torrent.
async fn fetch_head_counted(
    swarm: &Swarm,
    head: &SignedHead,
    commit: ObjectId,
    request: &FetchRequest,
    report: &Arc<dyn FetchReport>,
    tally: &Tally,
) -> Result<Fetched, FetchError> {
    let info_hash = InfoHash::from(head.head.infohash);
    // History (from the swarm or the master) goes into a repository made
    // for it.
    if request.history != History::Tip
        && (head.head.history.is_some() || head.head.master.is_some())
    {
        open_or_init(request).await?;
    }
    if request.use_updates
        && (request.deepen || !already_have(&request.repo, commit).await)
        && let Some((git_dir, tip)) = existing_repo(request).await
    {
        let step = Step {
            swarm,
            request,
            report,
            tally,
        };
        // Deepening starts from nothing: the shallow tip is not a base its
        // missing ancestors can be sent against.
        let tip = match request.deepen {
            true => None,
            false => tip.or(request.base.filter(|_| request.history == History::Whole)),
        };
        let mut by = None;
        if !head.head.updates.is_empty() && !request.deepen {
            by = update::try_updates(step, head, commit, &git_dir, tip).await;
        }
        match tip {
            Some(tip) if by.is_none() && tip != commit => {
                by = update::try_master_update(step, head, commit, &git_dir, tip, None).await;
            }
            None if request.history != History::Tip => {
                let depth = match request.history {
                    History::Depth(depth) => Some(depth),
                    _ => None,
                };
                // The whole history comes from the swarm when the head
                // lists one, else (or with a depth) from the master.
                if depth.is_none() {
                    by = update::try_history(step, head, commit, &git_dir).await;
                }
                if by.is_none() {
                    by = update::try_master_update(step, head, commit, &git_dir, NOTHING, depth)
                        .await;
                }
            }
            _ => {}
        }
        if let Some(by) = by {
            let proof = by.descends_from.then_some(by.from);
            set_refs(&git_dir, commit, &request.refs, proof).await?;
            // Boundaries whose parents just arrived are boundaries no more.
            let shallow_dir = git_dir.clone();
            match tokio::task::spawn_blocking(move || repo::prune_shallow(&shallow_dir)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(%error, "cannot update the shallow file"),
                Err(error) => tracing::warn!(%error, "updating the shallow file panicked"),
            }
            return Ok(Fetched {
                commit,
                info_hash,
                updates: by.steps,
            });
        }
    }
    // A master that signed the head serves the commit on its webseed: the
    // `.torrent` in one request, and the pieces when the swarm is thin.
    let source = Source::InfoHash(
        info_hash,
        Hints {
            name: Some(commit.to_hex()),
            webseeds: head.head.master.iter().cloned().collect(),
            ..Hints::default()
        },
    );
    fetch(swarm, source, Some(commit), request, report, tally).await
}

/// The git directory of the request's repository when it exists already,
/// and the commit the fetch moves on from: its branch (`--branch`), else
/// the ref tracking the head (`refs/xus/topics/...`).
async fn existing_repo(request: &FetchRequest) -> Option<(PathBuf, Option<ObjectId>)> {
    let path = request.repo.clone();
    let refs = [
        request
            .refs
            .branch
            .as_ref()
            .map(|b| format!("refs/heads/{b}")),
        request.refs.tracking.clone(),
    ];
    tokio::task::spawn_blocking(move || {
        let repo = git2::Repository::open(&path).ok()?;
        let tip = refs
            .iter()
            .flatten()
            .find_map(|name| repo.refname_to_id(name).ok())
            .and_then(ObjectId::from_git);
        Some((repo.path().to_owned(), tip))
    })
    .await
    .ok()
    .flatten()
}

/// Fetches what `source` (a torrent or an infohash, not a head) names,
/// refusing it unless it holds `commit`: the repair of a commit whose
/// torrent is known from a `.torrent`, a magnet or the torrent cache.
///
/// # Errors
///
/// See [`FetchError`].
pub async fn fetch_expected(
    swarm: &Swarm,
    source: Source,
    commit: ObjectId,
    request: &FetchRequest,
    report: &Arc<dyn FetchReport>,
) -> Result<Fetched, FetchError> {
    let tally = Tally::default();
    let fetched = fetch(swarm, source, Some(commit), request, report, &tally).await;
    report.event(FetchEvent::Transferred(tally.snapshot()));
    fetched
}

/// Fetches the commit `commit` whose torrent is `info_hash` (a head, or a
/// topic master taking a pushed commit from the writer and the swarm).
/// `known` is its torrent when already in hand (a writer uploaded it to
/// the master): then no peer is asked for the metadata.
///
/// # Errors
///
/// See [`FetchError`]; [`FetchError::WrongCommit`] when the torrent holds
/// another commit.
pub async fn fetch_commit(
    swarm: &Swarm,
    info_hash: InfoHash,
    commit: ObjectId,
    known: Option<CommitTorrent>,
    request: &FetchRequest,
    report: &Arc<dyn FetchReport>,
) -> Result<Fetched, FetchError> {
    let source = match known {
        Some(torrent) if torrent.info_hash == info_hash => {
            Source::Torrent(Box::new(torrent), Vec::new())
        }
        _ => Source::InfoHash(
            info_hash,
            Hints {
                name: Some(commit.to_hex()),
                ..Hints::default()
            },
        ),
    };
    let tally = Tally::default();
    let fetched = fetch(swarm, source, Some(commit), request, report, &tally).await;
    report.event(FetchEvent::Transferred(tally.snapshot()));
    fetched
}

/// Fetches a torrent or an infohash; `expected` is the commit it must hold.
async fn fetch(
    swarm: &Swarm,
    source: Source,
    expected: Option<ObjectId>,
    request: &FetchRequest,
    report: &Arc<dyn FetchReport>,
    tally: &Tally,
) -> Result<Fetched, FetchError> {
    let mut peers = request.peers.clone();
    let mut webseeds = request.webseeds.clone();
    let (info_hash, known_torrent, hints) = match source {
        Source::Torrent(torrent, ws) => {
            webseeds.extend(ws);
            (torrent.info_hash, Some(torrent), Hints::default())
        }
        Source::InfoHash(ih, hints) => {
            webseeds.extend(hints.webseeds.iter().cloned());
            (ih, None, hints)
        }
        Source::Head(address) => {
            return Err(
                anyhow::anyhow!("the head {} must be resolved first", address.url()).into(),
            );
        }
    };
    webseeds.sort();
    webseeds.dedup();
    // Peers found on the DHT reach the engine through the feed, however late.
    let first_dht_peer = Arc::new(OnceLock::new());
    let _search = swarm.search_peers(info_hash, &first_dht_peer);
    if let Some(commit) = expected
        && !request.repair
        && already_have(&request.repo, commit).await
    {
        report.event(FetchEvent::AlreadyHave { commit });
        set_refs(&request.repo, commit, &request.refs, None).await?;
        return Ok(Fetched {
            commit,
            info_hash,
            updates: Vec::new(),
        });
    }
    let metadata_deadline = Instant::now() + request.metadata_timeout;
    peers.extend(hints.peers.iter().copied());
    // Every address named by the request (a magnet, `--peer`, a writer's
    // push, a torrent's url-list) passes the one dial policy first.
    let not_dialled = |what: String, why: String| {
        let what = xus_codec::quote::short(&what);
        report.event(FetchEvent::NotDialled { what, why });
    };
    let mut peers = dial_policy::admit_peers(peers, |peer, why| not_dialled(peer.to_string(), why));
    let webseeds = dial_policy::admit_urls(webseeds, |url, why| not_dialled(url.to_owned(), why));
    let from_webseed = match (&known_torrent, hints.name.as_deref()) {
        // A xus webseed serves `<commit>.torrent`: one request instead of
        // finding a peer for the metadata (checked against the infohash).
        (None, Some(name)) if !webseeds.is_empty() => {
            match metadata::from_webseeds(&webseeds, name, info_hash, report.as_ref(), tally).await
            {
                Ok(torrent) => Some(torrent),
                Err(error) => {
                    report.event(FetchEvent::NoTorrentFromWebseeds {
                        name: name.to_owned(),
                        error: format!("{error:#}"),
                    });
                    None
                }
            }
        }
        _ => None,
    };
    let torrent = match known_torrent.map(|t| *t).or(from_webseed) {
        Some(torrent) => torrent,
        None => {
            metadata::from_peers(
                swarm,
                info_hash,
                &mut peers,
                &first_dht_peer,
                metadata::Clock {
                    deadline: metadata_deadline,
                    origin: request.timing_origin(swarm),
                },
                report.as_ref(),
                tally,
            )
            .await?
        }
    };
    if let Some(expected) = expected
        && torrent.commit != expected
    {
        return Err(FetchError::WrongCommit {
            expected,
            info_hash: torrent.info_hash,
            found: torrent.commit,
        });
    }
    peers.sort();
    peers.dedup();
    if request.require_parents {
        check_parents(&request.repo, &torrent).await?;
    }
    let git_dir = open_or_init(request).await?;
    if !request.repair && already_have(&git_dir, torrent.commit).await {
        report.event(FetchEvent::AlreadyHave {
            commit: torrent.commit,
        });
    } else {
        let started = Instant::now();
        let step = Step {
            swarm,
            request,
            report,
            tally,
        };
        download::download(step, &torrent, &git_dir, &peers, &webseeds).await?;
        let downloaded = started.elapsed();
        let (git_dir, torrent) = (git_dir.clone(), torrent.clone());
        tokio::task::spawn_blocking(move || -> Result<(), FetchError> {
            let repo = git2::Repository::open(&git_dir).context("opening the repository")?;
            let payload = download::staging_path(&git_dir, &torrent);
            import::import(&repo, &torrent, &payload)?;
            let _ = std::fs::remove_file(&payload);
            Ok(())
        })
        .await
        .context("the import panicked")??;
        report.event(FetchEvent::Timing {
            download: downloaded,
            import: started.elapsed() - downloaded,
        });
    }
    set_refs(&git_dir, torrent.commit, &request.refs, None).await?;
    Ok(Fetched {
        commit: torrent.commit,
        info_hash: torrent.info_hash,
        updates: Vec::new(),
    })
}

/// Opens the repository, creating it when missing; refuses a checkout into
/// a bare one. Returns its git directory.
async fn open_or_init(request: &FetchRequest) -> Result<PathBuf, FetchError> {
    let (path, bare, checkout) = (request.repo.clone(), request.bare, request.refs.checkout);
    tokio::task::spawn_blocking(move || {
        let repo = repo::open_or_init(&path, bare)?;
        if checkout && repo.is_bare() {
            return Err(ImportError::Bare.into());
        }
        // What killed fetches left (update quarantines, inflated blobs) goes
        // now, whether or not this fetch writes anything.
        match crate::git::state_dir::remove_abandoned_dirs(repo.path()) {
            Ok((removed, bytes)) if !removed.is_empty() => tracing::info!(
                count = removed.len(),
                bytes,
                "removed directories of killed xus processes"
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "could not look for abandoned directories"),
        }
        Ok(repo.path().to_owned())
    })
    .await
    .context("opening the repository panicked")?
}

/// Refuses `torrent` when one of its commit's parents is not in the
/// repository.
async fn check_parents(path: &std::path::Path, torrent: &CommitTorrent) -> Result<(), FetchError> {
    let (path, torrent) = (path.to_owned(), torrent.clone());
    tokio::task::spawn_blocking(move || {
        let repo =
            git2::Repository::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let odb = repo.odb().context("opening the object database")?;
        match import::missing_parents(&odb, &torrent).first() {
            Some(&parent) => Err(FetchError::MissingParent {
                commit: torrent.commit,
                parent,
            }),
            None => Ok(()),
        }
    })
    .await
    .context("the parent check panicked")?
}

/// Whether the repository at `path` exists and holds `commit`.
async fn already_have(path: &std::path::Path, commit: ObjectId) -> bool {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        git2::Repository::open(&path)
            .ok()
            .and_then(|repo| repo.odb().ok().map(|odb| odb.exists(commit.to_git())))
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// Moves refs once the commit is in (see [`import::set_refs_proven`]);
/// `proof` is a commit `commit` is known to descend from.
async fn set_refs(
    repo: &std::path::Path,
    commit: ObjectId,
    refs: &RefOptions,
    proof: Option<ObjectId>,
) -> Result<(), FetchError> {
    let (repo, refs) = (repo.to_owned(), refs.clone());
    tokio::task::spawn_blocking(move || {
        let repo = git2::Repository::open(&repo).context("opening the repository")?;
        import::set_refs_proven(&repo, commit, &refs, proof)?;
        Ok(())
    })
    .await
    .context("moving refs panicked")?
}
