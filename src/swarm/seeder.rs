//! [`Seeder`]: the torrents of one repository being served from its object
//! database, published on its webseed and announced on the DHT (`xus seed`,
//! `xus push` for the length of a push, and a topic master per topic).

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use crate::git::blobs::BlobSource;
use crate::git::object::ObjectId;
use crate::git::state_dir::StateDir;
use crate::swarm::AbortOnDrop;
use crate::swarm::announcer::Announcer;
use crate::swarm::engine::Engine;
use crate::swarm::output::{Event, Output};
use crate::swarm::storage::{Backing, GitStorageFactory};
use crate::swarm::webseed_source::GitWebseed;
use crate::torrent::cache;
use crate::torrent::format::CommitTorrent;
use crate::torrent::info_hash::InfoHash;
use crate::torrent::update::{NOTHING, StoredUpdate, UpdateSettings, UpdateStore};

/// How each file of a torrent is read when every blob is local.
pub fn local_backings(torrent: &CommitTorrent) -> Vec<Backing> {
    let commit_raw: Arc<[u8]> = Arc::from(torrent.commit_raw.as_slice());
    torrent
        .files
        .iter()
        .map(|f| match f.blob {
            Some(blob) => Backing::Blob(blob),
            None => Backing::Inline(commit_raw.clone()),
        })
        .collect()
}

/// The torrents of one repository being served and how they are announced
/// (`xus seed`, and a topic master for each of its topics).
pub struct Seeder<'a> {
    engine: &'a Engine,
    source: Arc<BlobSource>,
    git_dir: PathBuf,
    /// Peers every torrent dials at start.
    peers: Vec<SocketAddr>,
    /// This session's address as magnets carry it (`x.pe`); empty when it
    /// is not reachable from elsewhere.
    advertised: Vec<SocketAddr>,
    /// Commit → infohash of every commit torrent served.
    seeded: HashMap<ObjectId, InfoHash>,
    /// (from, to) → infohash of every update torrent served.
    updates: HashMap<(ObjectId, ObjectId), InfoHash>,
    /// The webseed every seeded commit is published to, if one runs.
    webseed: Option<Arc<GitWebseed>>,
    /// Its URL as magnets carry it (`ws=`); empty when it is not reachable.
    webseed_urls: Vec<String>,
    announcer: Option<Announcer>,
    addr: SocketAddr,
    /// `<git dir>/xus/seed.addr`, which `xus publish` reads; `None` for a
    /// seeder that lives only as long as one command.
    seed_file: Option<PathBuf>,
    /// How many peers at once each update torrent is served to; `None` for
    /// no cap beyond the engine's.
    update_peer_limit: Option<usize>,
    /// The tasks pausing each update once it went out to enough peers.
    meters: Vec<AbortOnDrop>,
}

/// How many peers at once an origin of updates (a master, `xus seed`)
/// serves each update torrent to, and how many copies it hands out before
/// pausing that torrent for [`ORIGIN_UPDATE_PAUSE`]. An update is small,
/// often one piece, and every follower asks for it the moment the head
/// moves: served to all of them, the origin uploads one copy per follower.
/// Metered, the first few take it from the origin and the rest, refused,
/// find those on the DHT within a second or two and take it from them.
pub const ORIGIN_UPDATE_PEERS: usize = 2;

/// How long an origin refuses an update once its copies went out: short
/// of a reader's 15 s wait for an update's metadata, so a reader that
/// reaches no other peer still gets the update, not the whole commit.
pub const ORIGIN_UPDATE_PAUSE: std::time::Duration = std::time::Duration::from_secs(8);

impl<'a> Seeder<'a> {
    /// A seeder of the repository at `git_dir` on `engine`, reading blobs
    /// through `source`; it serves nothing until [`Self::add`].
    ///
    /// # Errors
    ///
    /// The engine is not listening.
    pub fn new(
        engine: &'a Engine,
        source: Arc<BlobSource>,
        git_dir: PathBuf,
    ) -> anyhow::Result<Self> {
        let addr = engine
            .listen_addr()
            .context("BitTorrent session is not listening")?;
        Ok(Self {
            engine,
            source,
            git_dir,
            peers: Vec::new(),
            advertised: if addr.ip().is_unspecified() {
                Vec::new()
            } else {
                vec![addr]
            },
            seeded: HashMap::new(),
            updates: HashMap::new(),
            webseed: None,
            webseed_urls: Vec::new(),
            announcer: None,
            addr,
            seed_file: None,
            update_peer_limit: None,
            meters: Vec::new(),
        })
    }

    /// Every torrent dials `peers` at start.
    pub fn dialing(mut self, peers: Vec<SocketAddr>) -> Self {
        self.peers = peers;
        self
    }

    /// Magnets printed carry no `x.pe` (a seeder for one command).
    pub fn unadvertised(mut self) -> Self {
        self.advertised.clear();
        self
    }

    /// Publishes every seeded commit on `webseed` too; magnets name `urls`.
    pub fn with_webseed(mut self, webseed: Arc<GitWebseed>, urls: Vec<String>) -> Self {
        self.webseed = Some(webseed);
        self.webseed_urls = urls;
        self
    }

    /// Announces every seeded commit through `dht`.
    pub fn announcing(mut self, dht: Option<Arc<tracker_free::Dht>>) -> Self {
        let port = self.addr.port();
        self.announcer = dht.map(|dht| Announcer::spawn(dht, port));
        self
    }

    /// Serves each update torrent to at most `limit` peers at once and
    /// pauses it for [`ORIGIN_UPDATE_PAUSE`] each time about `limit` copies
    /// went out, so that followers share it rather than each taking it from
    /// here (see [`ORIGIN_UPDATE_PEERS`]).
    pub fn sharing_updates(mut self, limit: usize) -> Self {
        self.update_peer_limit = Some(limit.max(1));
        self
    }

    /// Records what is served in `<git dir>/xus/seed.addr` for `xus publish`.
    pub fn recording(mut self) -> Self {
        self.seed_file = Some(seed_addr_path(&self.git_dir));
        self
    }

    /// The git directory served.
    pub fn git_dir(&self) -> &Path {
        &self.git_dir
    }

    /// The address this seeder's session listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Commit → infohash of everything served.
    pub fn seeded(&self) -> &HashMap<ObjectId, InfoHash> {
        &self.seeded
    }

    /// Writes `<git dir>/xus/seed.addr`: the address, then one infohash per
    /// line that is served now. `xus publish` reads it so that it announces
    /// a commit only once it is really served here.
    pub fn record(&self) {
        let Some(seed_file) = &self.seed_file else {
            return;
        };
        let mut text = format!("{} {}\n", self.addr, std::process::id());
        for infohash in self.seeded.values().chain(self.updates.values()) {
            text.push_str(&infohash.to_hex());
            text.push('\n');
        }
        let written = seed_file.parent().map(|dir| {
            tempfile::NamedTempFile::new_in(dir).and_then(|mut tmp| {
                tmp.write_all(text.as_bytes())?;
                tmp.persist(seed_file).map_err(|e| e.error)?;
                Ok(())
            })
        });
        if let Some(Err(error)) = written {
            tracing::warn!(path = %seed_file.display(), %error, "cannot record what is seeded");
        }
    }

    /// Builds (or loads) the torrent of `commit`, serves it (to peers and
    /// on the webseed), announces it.
    pub async fn add(
        &mut self,
        commit: ObjectId,
        out: &mut Output<'_>,
    ) -> anyhow::Result<InfoHash> {
        let infohash = self.add_unrecorded(commit, out).await?;
        self.record();
        Ok(infohash)
    }

    /// [`Seeder::add`] for many commits, recording what is served once at
    /// the end: the record lists every torrent, so writing it per commit
    /// made starting with thousands of commits quadratic.
    pub async fn add_all(
        &mut self,
        commits: impl IntoIterator<Item = ObjectId>,
        out: &mut Output<'_>,
    ) -> anyhow::Result<()> {
        let mut outcome = Ok(());
        for commit in commits {
            if let Err(error) = self.add_unrecorded(commit, out).await {
                outcome = Err(error);
                break;
            }
        }
        self.record();
        outcome
    }

    async fn add_unrecorded(
        &mut self,
        commit: ObjectId,
        out: &mut Output<'_>,
    ) -> anyhow::Result<InfoHash> {
        if let Some(&infohash) = self.seeded.get(&commit) {
            return Ok(infohash);
        }
        let git_dir = self.git_dir.clone();
        let torrent = tokio::task::spawn_blocking(move || {
            let repo = git2::Repository::open(&git_dir)?;
            cache::load_or_build(&repo, commit)
                .with_context(|| format!("building the torrent of commit {commit}"))
        })
        .await??;
        let torrent = Arc::new(torrent);
        let storage = GitStorageFactory::new(
            torrent.info_hash,
            self.source.clone(),
            local_backings(&torrent),
        );
        let (_handle, progress) = self
            .engine
            .add(torrent.torrent_file(&[]), storage, &self.peers, None, None)
            .await
            .with_context(|| format!("seeding commit {}", torrent.commit))?;
        // Read wholly from Git, the torrent starts complete without hashing
        // (each piece is checked on its first upload, `piece_check`).
        anyhow::ensure!(
            progress.finished,
            "only {} of {} bytes of commit {} are in the repository",
            progress.have,
            progress.total,
            torrent.commit
        );
        self.seeded.insert(commit, torrent.info_hash);
        // The webseed reads the same blobs, each checked against its Git id
        // as libgit2 reads it; a fetcher checks every piece it gets.
        if let Some(webseed) = &self.webseed {
            webseed.publish(Arc::clone(&torrent));
        }
        tracing::debug!(%commit, infohash = %torrent.info_hash, "seeding");
        if let Some(announcer) = &self.announcer {
            announcer.add(torrent.info_hash.into());
        }
        out.emit(&Event::Seeding {
            commit: torrent.commit,
            info_hash: torrent.info_hash,
            magnet: torrent.magnet_with_webseeds(&self.advertised, &self.webseed_urls),
        })?;
        Ok(torrent.info_hash)
    }
}

impl Seeder<'_> {
    /// Serves the update torrents to `to` from each of `froms`, loaded from
    /// the repository's [`UpdateStore`] or built now (and stored); returns
    /// those served, with their infohash, in the order of `froms`. An update
    /// that cannot be made (its `from` is not here, it is over the limits)
    /// is left out with a warning: readers still have the commit torrent.
    pub async fn add_updates(
        &mut self,
        to: ObjectId,
        froms: &[ObjectId],
        out: &mut Output<'_>,
    ) -> Vec<(ObjectId, InfoHash)> {
        let mut served = Vec::new();
        for &from in froms {
            if from == to {
                continue;
            }
            if let Some(&infohash) = self.updates.get(&(from, to)) {
                served.push((from, infohash));
                continue;
            }
            let git_dir = self.git_dir.clone();
            let built = tokio::task::spawn_blocking(move || {
                let repo = git2::Repository::open(&git_dir)?;
                let store = UpdateStore::of(repo.path());
                anyhow::Ok(store.load_or_build(
                    &repo,
                    from,
                    to,
                    &UpdateSettings::for_update_from(from),
                )?)
            })
            .await
            .map_err(anyhow::Error::from)
            .and_then(|r| r);
            let result = match built {
                Ok(stored) => self.add_update(stored, out).await,
                Err(error) => Err(error),
            };
            match result {
                Ok(infohash) => served.push((from, infohash)),
                Err(error) => {
                    tracing::warn!(%from, %to, error = %format!("{error:#}"), "no update torrent")
                }
            }
        }
        served
    }

    /// Serves one update torrent from memory and announces it.
    pub async fn add_update(
        &mut self,
        stored: StoredUpdate,
        out: &mut Output<'_>,
    ) -> anyhow::Result<InfoHash> {
        let torrent = &stored.torrent;
        let key = (torrent.from, torrent.to);
        if let Some(&infohash) = self.updates.get(&key) {
            return Ok(infohash);
        }
        let infohash = torrent.info_hash();
        let storage = GitStorageFactory::new(
            infohash,
            self.source.clone(),
            vec![Backing::Inline(stored.payload.clone())],
        );
        // A history is not metered: clones come one at a time and leave when
        // done (`git clone` keeps no seed running), so an origin that paused
        // after two copies would only make the third clone wait.
        let peer_limit = self.update_peer_limit.filter(|_| torrent.from != NOTHING);
        let (handle, at_start) = self
            .engine
            .add(
                torrent.torrent_file(&[]),
                storage,
                &self.peers,
                None,
                peer_limit,
            )
            .await
            .with_context(|| format!("seeding update {}", torrent.name()))?;
        anyhow::ensure!(
            at_start.finished,
            "update {} does not verify against its own torrent",
            torrent.name()
        );
        if let Some(copies) = peer_limit {
            let budget = torrent.length.saturating_mul(copies as u64);
            self.meters.push(AbortOnDrop(self.engine.meter_uploads(
                handle,
                budget,
                ORIGIN_UPDATE_PAUSE,
            )));
        }
        self.updates.insert(key, infohash);
        self.record();
        if let Some(announcer) = &self.announcer {
            announcer.add(infohash.into());
        }
        // Served whether or not anyone reads the line (a closed stdout).
        let _ = out.emit(&Event::Update {
            from: torrent.from,
            to: torrent.to,
            info_hash: infohash,
            bytes: torrent.length,
            magnet: Some(torrent.magnet(&self.advertised)),
        });
        Ok(infohash)
    }
}

/// Where `xus seed` records its BitTorrent address, so that `xus publish`
/// can announce the port that actually serves the commit.
pub fn seed_addr_path(git_dir: &Path) -> PathBuf {
    StateDir::of(git_dir).seed_addr()
}

/// How long `xus publish` waits for a running seed to pick up the commit.
const SEED_PICKUP_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The TCP port of the `xus seed` running on this repository once it serves
/// `infohash`; `None` when no seed runs or it does not pick the commit up in
/// time. Announcing a port before the torrent is served there would send
/// peers to a refusal they never retry.
pub async fn wait_for_seed(seed_file: &Path, infohash: InfoHash) -> Option<u16> {
    let wanted = infohash.to_hex();
    let deadline = tokio::time::Instant::now() + SEED_PICKUP_WAIT;
    loop {
        let text = std::fs::read_to_string(seed_file).ok()?;
        let mut lines = text.lines();
        let port = lines
            .next()?
            .split_whitespace()
            .next()?
            .parse::<std::net::SocketAddr>()
            .ok()?
            .port();
        if lines.any(|l| l == wanted) {
            return Some(port);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
