//! `xus fetch`: download a commit into a repository.
//!
//! Blobs already in the object database back their files directly, so the
//! pieces they cover verify at start-up and are never downloaded. Missing
//! bytes are staged in `<git dir>/xus/partial/<infohash>` and survive an
//! interruption: the next run re-checks them and downloads only what is
//! missing. Nothing enters Git until every piece is verified and every blob
//! hashes to the id its tree names.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;

use tracker_free::{Dht, HeadChoice, InfoHash, SignedHead};
use webseed::bridge::{BridgeOptions, LayoutFile, TorrentLayout, WebseedPeer};

use crate::discovery::{self, DhtOptions, PeerFeed};
use crate::engine::{Engine, EngineConfig, Progress, TorrentHandle};
use crate::format::{self, CommitTorrent};
use crate::gitobj::ObjectId;
use crate::head_address::HeadAddress;
use crate::home::Home;
use crate::import::{self, RefOptions};
use crate::magnet::{self, Magnet};
use crate::storage::{Backing, BlobSource, DEFAULT_CACHE_BYTES, GitStorageFactory, StagedFile};
use crate::{repo, scavenge};

/// Options of `xus fetch`.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// `.torrent` path, magnet link, infohash, or a topic head
    /// (`xus://TOPIC/BRANCH`, BEP 46 magnet).
    pub source: String,
    /// Repository to fetch into.
    pub repo: PathBuf,
    /// Create it bare when missing.
    pub bare: bool,
    /// What to do with refs afterwards.
    pub refs: RefOptions,
    /// Where to accept peers.
    pub listen: SocketAddr,
    /// Peers to dial.
    pub peers: Vec<SocketAddr>,
    /// Speed caps.
    pub rates: crate::engine::RateLimits,
    /// How long to wait for metadata from peers.
    pub metadata_timeout: Duration,
    /// Give up after this long without a new verified piece.
    pub stall_timeout: Duration,
    /// Which DHT to use when peers must be found.
    pub dht: DhtOptions,
    /// Never start the DHT.
    pub no_dht: bool,
    /// Webseed base URLs (BEP 19) to use besides those the source names.
    pub webseeds: Vec<String>,
    /// xus's directory (topics, seen heads, config).
    pub home: Home,
    /// Refuse a commit whose parents are not in the repository, before
    /// downloading it (a topic master keeps whole histories, never shallow).
    pub require_parents: bool,
}

/// A commit refused by [`FetchOptions::require_parents`].
#[derive(Debug, thiserror::Error)]
#[error("commit {commit} has parent {parent}, which is not here: its history must come first")]
pub struct MissingParent {
    /// The refused commit.
    pub commit: ObjectId,
    /// A parent the repository lacks.
    pub parent: ObjectId,
}

/// Longest single metadata request before asking again with fresh peers.
const METADATA_ROUND: Duration = Duration::from_secs(8);

/// What the user named.
pub enum Source {
    /// A complete torrent, with the webseeds of its `url-list`.
    Torrent(Box<CommitTorrent>, Vec<String>),
    /// An infohash, with what a magnet link named: peers, webseeds, and the
    /// name (`dn`, a commit id for commit torrents).
    InfoHash(ObjectId, Hints),
    /// A topic's branch head, resolved on the DHT.
    Head(HeadAddress),
}

/// What a magnet link says besides the infohash.
#[derive(Debug, Clone, Default)]
pub struct Hints {
    /// `x.pe` peers.
    pub peers: Vec<SocketAddr>,
    /// `ws` webseeds.
    pub webseeds: Vec<String>,
    /// `dn`.
    pub name: Option<String>,
}

/// Reads what the user typed as a fetch source.
pub fn parse_source(text: &str, home: &Home) -> anyhow::Result<Source> {
    if let Some(address) = HeadAddress::parse(text, home)? {
        return Ok(Source::Head(address));
    }
    if text.starts_with("magnet:") {
        let m = Magnet::parse(text)?;
        return Ok(Source::InfoHash(
            m.info_hash,
            Hints {
                peers: m.peers,
                webseeds: m.webseeds,
                name: m.name,
            },
        ));
    }
    let path = Path::new(text);
    if !path.exists()
        && let Some(ih) = magnet::parse_info_hash(text)
    {
        return Ok(Source::InfoHash(ih, Hints::default()));
    }
    let meta = std::fs::metadata(path).with_context(|| {
        format!(
            "{text:?} is not a magnet link, an infohash, a xus:// head or a readable .torrent file"
        )
    })?;
    anyhow::ensure!(
        meta.len() <= format::MAX_TORRENT_FILE_BYTES as u64,
        "{text} is {} bytes, larger than any valid commit torrent",
        meta.len()
    );
    let bytes = std::fs::read(path).with_context(|| format!("reading {text}"))?;
    let info = format::info_from_torrent_file(&bytes)
        .with_context(|| format!("{text} is not a valid .torrent file"))?;
    let torrent = CommitTorrent::parse(info)
        .with_context(|| format!("{text} is not a valid xus commit torrent"))?;
    let webseeds = format::webseeds_from_torrent_file(&bytes)
        .with_context(|| format!("reading the url-list of {text}"))?;
    Ok(Source::Torrent(Box::new(torrent), webseeds))
}

/// A BitTorrent session plus, when peers must be found, a DHT node and the
/// loopback feed that hands its peers to the session. `xus follow` keeps one
/// for many fetches.
pub struct Swarm {
    engine: Engine,
    dht: Option<Arc<Dht>>,
    feed: Option<Arc<PeerFeed>>,
    started: Instant,
    _scratch: tempfile::TempDir,
}

impl Swarm {
    /// Starts the session, the DHT node when `dht` is given, and the peer
    /// feed when there is a DHT or `feed` asks for one (webseeds join a
    /// running download through it).
    pub async fn start(
        listen: SocketAddr,
        rates: crate::engine::RateLimits,
        dht: Option<&tracker_free::DhtConfig>,
        feed: bool,
    ) -> anyhow::Result<Self> {
        let started = Instant::now();
        let scratch = tempfile::tempdir().context("creating a scratch directory")?;
        let engine = Engine::start(&EngineConfig {
            listen,
            work_dir: scratch.path().to_owned(),
            rates,
        })
        .await?;
        let dht = match dht {
            Some(config) => Some(discovery::start(config).await?),
            None => None,
        };
        let feed = if dht.is_some() || feed {
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

    /// Stops the session.
    pub async fn stop(self) {
        self.engine.stop().await;
    }
}

/// Reads a topic's branch head from the DHT and picks the one to follow:
/// the newest correctly signed head, never older than one this machine saw
/// before. Refused heads are reported on stderr. `Ok(None)`: no head at all.
pub async fn resolve_head(
    dht: &Dht,
    home: &Home,
    address: &HeadAddress,
) -> anyhow::Result<Option<SignedHead>> {
    let seen = home.seen_head(&address.topic, &address.branch)?;
    let mut lookup = dht.lookup_head(&address.topic, &address.branch).await;
    let choice = lookup.choose(seen.as_ref());
    for refusal in &lookup.refused {
        eprintln!("warning: refused a head of {}: {refusal}", address.url());
    }
    Ok(match choice {
        HeadChoice::New(head) => {
            home.record_head(&head)?;
            Some(head)
        }
        HeadChoice::Unchanged => seen,
        HeadChoice::NotFound => {
            if seen.is_some() {
                eprintln!(
                    "warning: no DHT node holds a head of {} ({} asked, {} answered); using the one seen before",
                    address.url(),
                    lookup.queried,
                    lookup.responded
                );
            }
            seen
        }
    })
}

/// Downloads, verifies and imports; prints `fetched <commit> <infohash>`.
pub async fn run(options: FetchOptions, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    // Everything that can be refused is refused before anything is created.
    let source = parse_source(&options.source, &options.home)?;
    import::check_ref_options(&options.refs, options.bare)?;
    let magnet_peers = matches!(&source, Source::InfoHash(_, h) if !h.peers.is_empty());
    let has_webseeds = !options.webseeds.is_empty()
        || match &source {
            Source::Torrent(_, ws) => !ws.is_empty(),
            Source::InfoHash(_, h) => !h.webseeds.is_empty(),
            Source::Head(_) => false,
        };
    let is_head = matches!(source, Source::Head(_));
    anyhow::ensure!(
        !(is_head && options.no_dht),
        "{} is a topic head, which is read from the DHT: drop --no-dht",
        options.source
    );
    let needs_dht = !options.no_dht && (is_head || (options.peers.is_empty() && !magnet_peers));
    let dht_config = if needs_dht {
        Some(discovery::config(&options.dht, &options.home)?)
    } else {
        None
    };
    let swarm = Swarm::start(
        options.listen,
        options.rates,
        dht_config.as_ref(),
        has_webseeds,
    )
    .await?;
    let result = fetch_source(&swarm, source, &options, out).await;
    swarm.stop().await;
    result.map(|_| ())
}

/// Fetches one source through `swarm`; returns the commit.
pub async fn fetch_source(
    swarm: &Swarm,
    source: Source,
    options: &FetchOptions,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ObjectId> {
    match source {
        Source::Head(address) => {
            let dht = swarm.dht().context("resolving a head needs the DHT")?;
            let head = resolve_head(dht, &options.home, &address)
                .await?
                .with_context(|| format!("no head of {} was found on the DHT", address.url()))?;
            fetch_head(swarm, &address, &head, options, out).await
        }
        other => fetch_with(swarm, other, None, options, out).await,
    }
}

/// Fetches the commit a resolved head names, refusing a torrent that holds
/// another commit, and records it under `refs/xus/topics/<topic>/<branch>`.
pub async fn fetch_head(
    swarm: &Swarm,
    address: &HeadAddress,
    head: &SignedHead,
    options: &FetchOptions,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ObjectId> {
    eprintln!(
        "head of {}: commit {} torrent {} seq {} (resolved after {} ms)",
        address.url(),
        crate::hex::encode(&head.head.commit),
        head.head.infohash,
        head.seq,
        swarm.started.elapsed().as_millis()
    );
    let mut options = options.clone();
    options.refs.tracking = Some(format!(
        "refs/xus/topics/{}/{}",
        address.topic, address.branch
    ));
    let commit = ObjectId::from_slice(&head.head.commit)
        .with_context(|| format!("the head of {} names a non-SHA-1 commit", address.url()))?;
    let source = Source::InfoHash(
        ObjectId(head.head.infohash.0),
        Hints {
            name: Some(commit.to_hex()),
            ..Hints::default()
        },
    );
    fetch_with(swarm, source, Some(commit), &options, out).await
}

/// Fetches the commit `commit` whose torrent is `info_hash` (a topic master
/// taking a pushed commit from the writer and the swarm).
pub async fn fetch_commit(
    swarm: &Swarm,
    info_hash: ObjectId,
    commit: ObjectId,
    options: &FetchOptions,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ObjectId> {
    let source = Source::InfoHash(
        info_hash,
        Hints {
            name: Some(commit.to_hex()),
            ..Hints::default()
        },
    );
    fetch_with(swarm, source, Some(commit), options, out).await
}

async fn fetch_with(
    swarm: &Swarm,
    source: Source,
    expected: Option<ObjectId>,
    options: &FetchOptions,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ObjectId> {
    let mut peers = options.peers.clone();
    let mut webseeds = options.webseeds.clone();
    let info_hash = match &source {
        Source::Torrent(t, ws) => {
            webseeds.extend(ws.iter().cloned());
            t.info_hash
        }
        Source::InfoHash(ih, hints) => {
            webseeds.extend(hints.webseeds.iter().cloned());
            *ih
        }
        Source::Head(_) => anyhow::bail!("a head must be resolved before fetching"),
    };
    // Peers found on the DHT reach the engine through the feed, however late.
    let first_peer = Arc::new(OnceLock::new());
    let search = match (swarm.dht(), &swarm.feed) {
        (Some(dht), Some(feed)) => Some(AbortOnDrop(discovery::spawn_peer_search(
            dht.clone(),
            InfoHash(info_hash.0),
            feed.clone(),
            first_peer.clone(),
        ))),
        _ => None,
    };
    let feed_url = swarm.feed.as_ref().map(|f| f.url().to_string());
    if let Some(commit) = expected
        && already_have(&options.repo, commit)
    {
        eprintln!("commit {commit} is already in the repository");
        set_refs(&options.repo, commit, &options.refs).await?;
        writeln!(out, "fetched {commit} {info_hash}")?;
        out.flush()?;
        return Ok(commit);
    }
    let metadata_deadline = Instant::now() + options.metadata_timeout;
    webseeds.sort();
    webseeds.dedup();
    let torrent = match source {
        Source::Torrent(torrent, _) => *torrent,
        Source::InfoHash(ih, hints) if !webseeds.is_empty() && hints.name.is_some() => {
            // A xus webseed serves `<commit>.torrent`: one request instead of
            // finding a peer for the metadata (checked against the infohash).
            let name = hints.name.clone().unwrap_or_default();
            match torrent_from_webseeds(&webseeds, &name, ih).await {
                Ok(torrent) => torrent,
                Err(error) => {
                    eprintln!("note: no webseed served {name}.torrent ({error:#}); asking peers");
                    metadata_from_peers(
                        swarm,
                        ih,
                        hints.peers,
                        &mut peers,
                        &first_peer,
                        metadata_deadline,
                    )
                    .await?
                }
            }
        }
        Source::InfoHash(ih, hints) => {
            metadata_from_peers(
                swarm,
                ih,
                hints.peers,
                &mut peers,
                &first_peer,
                metadata_deadline,
            )
            .await?
        }
        Source::Head(_) => anyhow::bail!("a head must be resolved before fetching"),
    };
    if let Some(expected) = expected {
        anyhow::ensure!(
            torrent.commit == expected,
            "the head names commit {expected} but its torrent {} holds commit {}; refusing it",
            torrent.info_hash,
            torrent.commit
        );
    }
    peers.sort();
    peers.dedup();
    if options.require_parents {
        let repo = git2::Repository::open(&options.repo)
            .with_context(|| format!("opening {}", options.repo.display()))?;
        let missing = import::missing_parents(&repo.odb()?, &torrent);
        if let Some(&parent) = missing.first() {
            return Err(MissingParent {
                commit: torrent.commit,
                parent,
            }
            .into());
        }
    }

    let repo_path = options.repo.clone();
    let (bare, checkout) = (options.bare, options.refs.checkout);
    let git_dir = tokio::task::spawn_blocking(move || {
        let repo = repo::open_or_init(&repo_path, bare)?;
        if checkout && repo.is_bare() {
            return Err(import::ImportError::Bare.into());
        }
        anyhow::Ok(repo.path().to_owned())
    })
    .await??;
    let git_dir = git_dir.as_path();
    let repo = git2::Repository::open(git_dir)?;
    let already = repo.odb()?.exists(torrent.commit.to_git());
    if already {
        eprintln!("commit {} is already in the repository", torrent.commit);
    } else {
        let started = std::time::Instant::now();
        download(
            swarm,
            &torrent,
            git_dir,
            &peers,
            &webseeds,
            feed_url.as_deref(),
            options,
        )
        .await?;
        let downloaded = started.elapsed();
        let git_dir = git_dir.to_owned();
        let torrent = torrent.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let repo = git2::Repository::open(&git_dir)?;
            let payload = payload_path(&git_dir, torrent.info_hash);
            import::import(&repo, &torrent, &payload)?;
            let _ = std::fs::remove_file(&payload);
            Ok(())
        })
        .await??;
        eprintln!(
            "timing: download {:.3} s, import into Git {:.3} s",
            downloaded.as_secs_f64(),
            (started.elapsed() - downloaded).as_secs_f64()
        );
    }
    drop(search);
    set_refs(git_dir, torrent.commit, &options.refs).await?;
    writeln!(out, "fetched {} {}", torrent.commit, torrent.info_hash)?;
    out.flush()?;
    Ok(torrent.commit)
}

/// Asks peers (given, from the magnet, found on the DHT) for the info
/// dictionary of `ih` over BEP 9, in rounds until `deadline`.
async fn metadata_from_peers(
    swarm: &Swarm,
    ih: ObjectId,
    magnet_peers: Vec<SocketAddr>,
    peers: &mut Vec<SocketAddr>,
    first_peer: &OnceLock<Instant>,
    metadata_deadline: Instant,
) -> anyhow::Result<CommitTorrent> {
    let engine = &swarm.engine;
    let feed_url = swarm.feed.as_ref().map(|f| f.url().to_string());
    peers.extend(magnet_peers);
    anyhow::ensure!(
        !peers.is_empty() || feed_url.is_some(),
        "no peer to ask for the metadata of {ih}: give one with --peer ADDR"
    );
    eprintln!(
        "asking {} for the metadata of {ih}",
        if feed_url.is_some() {
            "peers found on the DHT".to_string()
        } else {
            format!("{} peer(s)", peers.len())
        }
    );
    if peers.is_empty()
        && let Some(feed) = &swarm.feed
    {
        // Hand the first DHT peers straight to the metadata request
        // rather than waiting for the engine's next feed poll.
        while first_peer.get().is_none() && Instant::now() < metadata_deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        peers.extend(feed.peers(ih.0));
    }
    // librqbit never dials a peer twice within one metadata request,
    // and a peer found on the DHT may not serve the torrent yet:
    // ask again in rounds, each with every peer known by then.
    let (info, seen) = loop {
        let left = metadata_deadline.saturating_duration_since(Instant::now());
        let round = left.min(METADATA_ROUND);
        let result = engine
            .resolve_metadata(ih, peers, feed_url.as_deref(), round)
            .await;
        match result {
            Ok(found) => break found,
            Err(error) if round == left => return Err(error),
            Err(error) => {
                tracing::debug!(%ih, error = %format!("{error:#}"), "no metadata yet; asking again");
                if let Some(feed) = &swarm.feed {
                    peers.extend(feed.peers(ih.0));
                    peers.sort();
                    peers.dedup();
                }
            }
        }
    };
    if let Some(found) = first_peer.get() {
        eprintln!(
            "timing: first peer found on the DHT after {} ms",
            found.duration_since(swarm.started).as_millis()
        );
    }
    eprintln!(
        "timing: metadata received from a connected peer after {} ms",
        swarm.started.elapsed().as_millis()
    );
    peers.extend(seen);
    let torrent = CommitTorrent::parse(&info)
        .context("the metadata peers sent is not a valid xus commit torrent")?;
    anyhow::ensure!(
        torrent.info_hash == ih,
        "peers sent metadata for {} instead of {ih}",
        torrent.info_hash
    );
    Ok(torrent)
}

/// Downloads `<webseed>/<name>.torrent` (what a xus webseed serves) from
/// the first webseed that has it, and checks it is the torrent of `ih`.
async fn torrent_from_webseeds(
    webseeds: &[String],
    name: &str,
    ih: ObjectId,
) -> anyhow::Result<CommitTorrent> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .context("building an HTTP client")?;
    let mut last_error = None;
    for base in webseeds {
        let url = format!("{}/{name}.torrent", base.trim_end_matches('/'));
        match get_bounded(&client, &url, format::MAX_TORRENT_FILE_BYTES).await {
            Ok(bytes) => {
                let info = format::info_from_torrent_file(&bytes)
                    .with_context(|| format!("{url} is not a .torrent file"))?;
                let torrent = CommitTorrent::parse(info)
                    .with_context(|| format!("{url} is not a valid xus commit torrent"))?;
                anyhow::ensure!(
                    torrent.info_hash == ih,
                    "{url} holds the torrent of {} instead of {ih}",
                    torrent.info_hash
                );
                eprintln!("metadata of {ih} read from {url}");
                return Ok(torrent);
            }
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no webseed given")))
}

/// GETs `url`, refusing a body over `limit` bytes before reading it whole.
async fn get_bounded(client: &reqwest::Client, url: &str, limit: usize) -> anyhow::Result<Vec<u8>> {
    let mut response = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    anyhow::ensure!(
        response.status().is_success(),
        "GET {url}: {}",
        response.status()
    );
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .with_context(|| format!("reading {url}"))?
    {
        anyhow::ensure!(
            body.len() + chunk.len() <= limit,
            "{url} is larger than {limit} bytes"
        );
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Whether the repository at `path` exists and holds `commit`.
fn already_have(path: &Path, commit: ObjectId) -> bool {
    git2::Repository::open(path)
        .ok()
        .and_then(|repo| repo.odb().ok().map(|odb| odb.exists(commit.to_git())))
        .unwrap_or(false)
}

async fn set_refs(repo: &Path, commit: ObjectId, refs: &RefOptions) -> anyhow::Result<()> {
    let (repo, refs) = (repo.to_owned(), refs.clone());
    tokio::task::spawn_blocking(move || {
        let repo = git2::Repository::open(&repo)?;
        import::set_refs(&repo, commit, &refs)?;
        anyhow::Ok(())
    })
    .await?
}

/// Aborts a background task when the fetch that needs it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The largest file still to download (index in the torrent, length), when
/// it is big enough for its order to matter (several pieces).
fn largest_missing(torrent: &CommitTorrent, missing: &[bool]) -> Option<(usize, u64)> {
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

/// The staging file of a torrent's downloaded bytes.
fn payload_path(git_dir: &Path, info_hash: ObjectId) -> PathBuf {
    git_dir.join("xus").join("partial").join(info_hash.to_hex())
}

/// For each file, whether its blob must be downloaded (is not in Git).
fn missing_files(repo: &git2::Repository, torrent: &CommitTorrent) -> anyhow::Result<Vec<bool>> {
    let odb = repo.odb()?;
    Ok(torrent
        .files
        .iter()
        .map(|f| f.blob.is_some_and(|blob| !repo::has_object(&odb, blob)))
        .collect())
}

#[allow(clippy::too_many_arguments)]
async fn download(
    swarm: &Swarm,
    torrent: &CommitTorrent,
    git_dir: &Path,
    peers: &[SocketAddr],
    webseeds: &[String],
    feed_url: Option<&str>,
    options: &FetchOptions,
) -> anyhow::Result<()> {
    let engine = &swarm.engine;
    let source = BlobSource::open(git_dir, DEFAULT_CACHE_BYTES)?;
    let repo = git2::Repository::open(git_dir)?;
    let missing = missing_files(&repo, torrent)?;
    drop(repo);
    let payload = Arc::new(StagedFile::new(payload_path(git_dir, torrent.info_hash)));
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
        .await??
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
                BridgeOptions::default(),
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
        eprintln!(
            "no peer known: downloading from {} webseed(s)",
            webseeds.len()
        );
    }
    let handle = engine
        .add(torrent.torrent_file(&[]), storage, &initial, feed_url)
        .await
        .with_context(|| format!("starting the download of {}", torrent.commit))?;
    let _policy = match (&bridge, &swarm.feed, webseeds_only) {
        (Some(bridge), Some(feed), false) => Some(AbortOnDrop(tokio::spawn(webseed_policy(
            handle.clone(),
            feed.clone(),
            torrent.info_hash,
            bridge.addr(),
        )))),
        _ => None,
    };
    // While downloading this machine is a peer too: say so on the DHT.
    let _announcer = match (swarm.dht(), engine.listen_addr()) {
        (Some(dht), Some(addr)) => Some(AbortOnDrop(discovery::spawn_announcer(
            dht.clone(),
            InfoHash(torrent.info_hash.0),
            addr.port(),
        ))),
        _ => None,
    };
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
    let start = Engine::progress(&handle);
    eprintln!(
        "commit {}: {} bytes in {} files; {} bytes of local blobs reused, {} bytes patched from older versions, {} bytes already verified, {} to download",
        torrent.commit,
        start.total,
        torrent.files.len(),
        reused,
        patched.bytes,
        start.have,
        start.total - start.have
    );
    if !start.finished {
        anyhow::ensure!(
            !initial.is_empty() || feed_url.is_some(),
            "{} bytes are missing and no peer is known: give one with --peer ADDR",
            start.total - start.have
        );
        watch(&handle, options.stall_timeout).await?;
    }
    let end = Engine::progress(&handle);
    let http = bridge.as_ref().map_or(0, |b| b.stats().bytes_fetched);
    eprintln!(
        "downloaded {} bytes from peers; reused {} bytes already here",
        end.fetched.saturating_sub(http),
        start.have
    );
    if let Some(bridge) = &bridge {
        let stats = bridge.stats();
        eprintln!(
            "downloaded {} bytes from webseeds ({} failed HTTP requests)",
            stats.bytes_fetched, stats.http_errors
        );
        for (url, bytes) in &stats.per_url {
            eprintln!("  {bytes} bytes from {url}");
        }
    }
    engine.remove(torrent.info_hash).await?;
    Ok(())
}

/// Peers come first: the webseed bridge joins the download (through the
/// peer feed) once no peer has been connected for 2 s, or once the last 3 s
/// brought less than [`WEBSEED_FLOOR_BPS`] per second.
async fn webseed_policy(
    handle: TorrentHandle,
    feed: Arc<PeerFeed>,
    info_hash: ObjectId,
    bridge: SocketAddr,
) {
    let started = Instant::now();
    let mut window: std::collections::VecDeque<(Instant, u64)> = Default::default();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let p = Engine::progress(&handle);
        if p.finished {
            return;
        }
        let now = Instant::now();
        window.push_back((now, p.have));
        while window
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(3))
        {
            window.pop_front();
        }
        let elapsed = now.duration_since(started);
        let no_peers = p.peers == 0 && elapsed >= Duration::from_secs(2);
        let slow = elapsed >= Duration::from_secs(3)
            && window.front().is_some_and(|(t, have)| {
                let secs = now.duration_since(*t).as_secs_f64().max(0.5);
                ((p.have - have) as f64 / secs) < WEBSEED_FLOOR_BPS as f64
            });
        if no_peers || slow {
            eprintln!(
                "{}: using webseeds as well",
                if no_peers {
                    "no peer connected"
                } else {
                    "peers are slow"
                }
            );
            feed.add(info_hash.0, [bridge]);
            return;
        }
    }
}

/// Download rate below which peers count as slow and webseeds join.
const WEBSEED_FLOOR_BPS: u64 = 1 << 20;

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
            })
            .collect(),
    }
}

/// Reports progress until the torrent is complete, or fails when no piece
/// arrives for `stall_timeout` (what was verified stays for the next run).
async fn watch(handle: &TorrentHandle, stall_timeout: Duration) -> anyhow::Result<()> {
    let mut last_have = Engine::progress(handle).have;
    let mut last_change = std::time::Instant::now();
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(Engine::progress(handle).total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut done = std::pin::pin!(Engine::wait_complete(handle));
    let mut tick = tokio::time::interval(Duration::from_millis(if bar.is_some() {
        200
    } else {
        2000
    }));
    loop {
        tokio::select! {
            result = &mut done => {
                if let Some(bar) = &bar {
                    bar.finish_and_clear();
                }
                return result;
            }
            _ = tick.tick() => {
                let p: Progress = Engine::progress(handle);
                if p.have != last_have {
                    last_have = p.have;
                    last_change = std::time::Instant::now();
                } else if last_change.elapsed() >= stall_timeout {
                    if let Some(bar) = &bar {
                        bar.abandon();
                    }
                    anyhow::bail!(
                        "no progress for {} s with {} peers: {} of {} bytes verified and kept; run again to resume",
                        stall_timeout.as_secs(),
                        p.peers,
                        p.have,
                        p.total
                    );
                }
                match &bar {
                    Some(bar) => {
                        bar.set_position(p.have);
                        bar.set_message(format!("{} peers", p.peers));
                    }
                    None => eprintln!("progress {}/{} bytes, {} peers", p.have, p.total, p.peers),
                }
            }
        }
    }
}
