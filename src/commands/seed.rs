//! `xus seed`: serve commits to the swarm straight from the object database.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tracker_free::{Dht, InfoHash};

use super::publish;
use super::webseed::WebseedServer;
use crate::discovery::{self, DhtOptions};
use crate::home::Home;

use crate::engine::{Engine, EngineConfig};
use crate::format::CommitTorrent;
use crate::gitobj::ObjectId;
use crate::storage::{Backing, BlobSource, GitStorageFactory};
use crate::webseed_source::GitWebseed;
use crate::{cache, repo};

/// Options of `xus seed`.
#[derive(Debug, Clone)]
pub struct SeedOptions {
    /// Repository path.
    pub repo: PathBuf,
    /// Revisions to seed; HEAD when empty and `all_branches` is off.
    pub revs: Vec<String>,
    /// Also seed every local branch tip.
    pub all_branches: bool,
    /// Where to accept peers.
    pub listen: SocketAddr,
    /// Peers to dial.
    pub peers: Vec<SocketAddr>,
    /// Speed caps.
    pub rates: crate::engine::RateLimits,
    /// Bound on inflated blob bytes kept in memory.
    pub cache_bytes: u64,
    /// The DHT to announce on and refresh heads in; `None` stays off it.
    pub dht: Option<DhtOptions>,
    /// Pause between looks for new heads and branch moves.
    pub rescan: Duration,
    /// Pause between refreshes of stored heads.
    pub republish: Duration,
    /// xus's directory (stored heads).
    pub home: Home,
    /// Where to serve every seeded commit over HTTP as well (BEP 19
    /// webseed), for clients that find no peer; `None` serves no HTTP.
    pub webseed_listen: Option<SocketAddr>,
    /// The URL clients reach that webseed by, when not `http://<address>/`
    /// (behind a proxy, or bound to all interfaces).
    pub webseed_url: Option<String>,
}

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

/// Seeds until Ctrl-C or SIGTERM. Prints `seeding <commit> <infohash> <magnet>`
/// per commit, then (with a webseed) `webseed <url>`, then `listening <addr>`
/// once the first set is served; commits that appear later (branch moves
/// with `--all-branches`, heads published from this machine) print their own
/// `seeding` line. Every seeded commit is also served by the webseed, and
/// magnets name it (`ws=`) when it can be reached from elsewhere.
pub async fn run(options: SeedOptions, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let repo_path = options.repo.clone();
    let revs = options.revs.clone();
    let all_branches = options.all_branches;
    let (git_dir, commits) = tokio::task::spawn_blocking(move || {
        let repo = repo::open(&repo_path)?;
        let mut commits: Vec<ObjectId> = Vec::new();
        if revs.is_empty() && !all_branches {
            commits.push(repo::resolve_commit(&repo, "HEAD")?);
        }
        for rev in &revs {
            commits.push(repo::resolve_commit(&repo, rev)?);
        }
        anyhow::Ok((repo.path().to_owned(), commits))
    })
    .await??;

    let dht = match &options.dht {
        Some(dht) => {
            let config = discovery::config(dht, &options.home)?;
            Some(discovery::start(&config).await?)
        }
        None => None,
    };
    let source = BlobSource::open(&git_dir, options.cache_bytes)?;
    let webseed = match options.webseed_listen {
        Some(listen) => Some(
            WebseedServer::start(listen, source.clone(), options.webseed_url.as_deref()).await?,
        ),
        None => None,
    };
    let engine = Engine::start(&EngineConfig {
        listen: options.listen,
        work_dir: git_dir.join("xus").join("session"),
        rates: options.rates,
    })
    .await?;
    let addr = engine
        .listen_addr()
        .context("BitTorrent session is not listening")?;
    let mut seeder = Seeder {
        engine: &engine,
        source,
        git_dir: git_dir.clone(),
        peers: options.peers.clone(),
        advertised: if addr.ip().is_unspecified() {
            Vec::new()
        } else {
            vec![addr]
        },
        seeded: HashMap::new(),
        webseed: webseed.as_ref().map(|w| Arc::clone(&w.source)),
        webseed_urls: webseed
            .as_ref()
            .filter(|w| w.advertisable)
            .map(|w| vec![w.url.clone()])
            .unwrap_or_default(),
        announcer: dht
            .as_ref()
            .map(|dht| Announcer::spawn(dht.clone(), addr.port())),
        addr,
        seed_file: Some(publish::seed_addr_path(&git_dir)),
    };
    let initial = wanted_commits(
        &git_dir,
        commits,
        all_branches,
        &options.home,
        &HashMap::new(),
    )
    .await?;
    for commit in initial {
        seeder.add(commit, out).await?;
    }
    seeder.record();
    let seed_addr = publish::seed_addr_path(&git_dir);
    if let Some(webseed) = &webseed {
        writeln!(out, "webseed {}", webseed.url)?;
    }
    writeln!(out, "listening {addr}")?;
    out.flush()?;

    let mut shutdown = std::pin::pin!(super::shutdown_signal());
    let mut rescan = tokio::time::interval(options.rescan);
    rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut republish = tokio::time::interval(options.republish);
    republish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let result = loop {
        tokio::select! {
            _ = &mut shutdown => break Ok(()),
            _ = rescan.tick() => {
                match wanted_commits(&git_dir, Vec::new(), all_branches, &options.home, &seeder.seeded).await {
                    Ok(new) => for commit in new {
                        if let Err(error) = seeder.add(commit, out).await {
                            eprintln!("warning: cannot seed commit {commit}: {error:#}");
                        }
                    },
                    Err(error) => tracing::warn!(error = %format!("{error:#}"), "rescan failed"),
                }
            }
            _ = republish.tick(), if dht.is_some() => {
                if let Some(dht) = &dht {
                    republish_heads(dht, &options.home, &seeder.seeded).await;
                }
            }
        }
    };
    let _ = std::fs::remove_file(&seed_addr);
    tracing::info!("stopping");
    drop(seeder);
    if let Some(webseed) = webseed
        && let Err(error) = webseed.stop().await
    {
        tracing::warn!(error = %format!("{error:#}"), "webseed stopped abnormally");
    }
    engine.stop().await;
    result
}

/// The torrents of one repository being served and how they are announced
/// (`xus seed`, and a topic master for each of its topics).
pub(crate) struct Seeder<'a> {
    pub(crate) engine: &'a Engine,
    pub(crate) source: Arc<BlobSource>,
    pub(crate) git_dir: PathBuf,
    /// Peers every torrent dials at start.
    pub(crate) peers: Vec<SocketAddr>,
    /// This session's address as magnets carry it (`x.pe`).
    pub(crate) advertised: Vec<SocketAddr>,
    /// Commit → infohash of everything served.
    pub(crate) seeded: HashMap<ObjectId, ObjectId>,
    /// The webseed every seeded commit is published to, if one runs.
    pub(crate) webseed: Option<Arc<GitWebseed>>,
    /// Its URL as magnets carry it (`ws=`); empty when it is not reachable.
    pub(crate) webseed_urls: Vec<String>,
    pub(crate) announcer: Option<Announcer>,
    pub(crate) addr: SocketAddr,
    /// `<git dir>/xus/seed.addr`, which `xus publish` reads; `None` for a
    /// seeder that lives only as long as one command.
    pub(crate) seed_file: Option<PathBuf>,
}

impl Seeder<'_> {
    /// Writes `<git dir>/xus/seed.addr`: the address, then one infohash per
    /// line that is served now. `xus publish` reads it so that it announces
    /// a commit only once it is really served here.
    pub(crate) fn record(&self) {
        let Some(seed_file) = &self.seed_file else {
            return;
        };
        let mut text = format!("{} {}\n", self.addr, std::process::id());
        for infohash in self.seeded.values() {
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
    pub(crate) async fn add(
        &mut self,
        commit: ObjectId,
        out: &mut (dyn Write + Send),
    ) -> anyhow::Result<ObjectId> {
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
        let handle = self
            .engine
            .add(torrent.torrent_file(&[]), storage, &self.peers, None)
            .await
            .with_context(|| format!("seeding commit {}", torrent.commit))?;
        let progress = Engine::progress(&handle);
        anyhow::ensure!(
            progress.finished,
            "only {} of {} bytes of commit {} verify against its torrent; is the torrent cache stale?",
            progress.have,
            progress.total,
            torrent.commit
        );
        self.seeded.insert(commit, torrent.info_hash);
        // Published only now that every piece verified from Git: the webseed
        // never serves a commit whose torrent disagrees with its blobs.
        if let Some(webseed) = &self.webseed {
            webseed.publish(Arc::clone(&torrent));
        }
        self.record();
        tracing::debug!(%commit, infohash = %torrent.info_hash, "seeding");
        if let Some(announcer) = &self.announcer {
            announcer.add(InfoHash(torrent.info_hash.0));
        }
        writeln!(
            out,
            "seeding {} {} {}",
            torrent.commit,
            torrent.info_hash,
            torrent.magnet_with_webseeds(&self.advertised, &self.webseed_urls)
        )?;
        out.flush()?;
        Ok(torrent.info_hash)
    }
}

/// Commits to serve that are not served yet: the ones named, every branch
/// tip with `--all-branches`, and every stored head whose commit is here.
async fn wanted_commits(
    git_dir: &Path,
    named: Vec<ObjectId>,
    all_branches: bool,
    home: &Home,
    seeded: &HashMap<ObjectId, ObjectId>,
) -> anyhow::Result<Vec<ObjectId>> {
    let git_dir = git_dir.to_owned();
    let home = home.clone();
    let seeded: std::collections::HashSet<ObjectId> = seeded.keys().copied().collect();
    tokio::task::spawn_blocking(move || {
        let repo = git2::Repository::open(&git_dir)?;
        let mut commits = named;
        if all_branches {
            commits.extend(repo::all_branches(&repo)?.into_iter().map(|(_, id)| id));
        }
        let odb = repo.odb()?;
        for head in home.all_heads()? {
            if let Some(commit) = ObjectId::from_slice(&head.head.commit)
                && odb.exists(commit.to_git())
            {
                commits.push(commit);
            }
        }
        let mut unique = std::collections::HashSet::new();
        commits.retain(|c| !seeded.contains(c) && unique.insert(*c));
        anyhow::Ok(commits)
    })
    .await?
}

/// Stores again every known head whose commit is served here, so that the
/// DHT keeps them past its two-hour expiry even when the owner is away.
async fn republish_heads(dht: &Dht, home: &Home, seeded: &HashMap<ObjectId, ObjectId>) {
    let heads = match home.all_heads() {
        Ok(heads) => heads,
        Err(error) => {
            tracing::warn!(error = %format!("{error:#}"), "cannot read stored heads");
            return;
        }
    };
    for head in heads {
        let served =
            ObjectId::from_slice(&head.head.commit).is_some_and(|c| seeded.contains_key(&c));
        if !served {
            continue;
        }
        match dht.republish(&head).await {
            Ok(()) => {
                tracing::info!(topic = %head.topic, branch = %head.branch, seq = head.seq, "head refreshed")
            }
            Err(tracker_free::PublishError::Superseded { .. }) => {
                tracing::debug!(topic = %head.topic, branch = %head.branch, seq = head.seq, "a newer head is already stored")
            }
            Err(error) => {
                tracing::warn!(topic = %head.topic, branch = %head.branch, %error, "head refresh failed")
            }
        }
    }
}

/// Announces every seeded infohash now and again before DHT nodes forget
/// it, a few at a time so that a thousand commits do not flood the DHT.
pub(crate) struct Announcer {
    new: tokio::sync::mpsc::UnboundedSender<InfoHash>,
    task: tokio::task::JoinHandle<()>,
}

/// Announces in flight at once.
const CONCURRENT_ANNOUNCES: usize = 32;

impl Announcer {
    pub(crate) fn spawn(dht: Arc<Dht>, port: u16) -> Self {
        let (new, mut incoming) = tokio::sync::mpsc::unbounded_channel::<InfoHash>();
        let task = tokio::spawn(async move {
            let mut all: Vec<InfoHash> = Vec::new();
            let mut due = tokio::time::Instant::now() + discovery::ANNOUNCE_INTERVAL;
            loop {
                let fresh: Vec<InfoHash> = tokio::select! {
                    first = incoming.recv() => {
                        let Some(first) = first else { return };
                        let mut batch = vec![first];
                        while let Ok(more) = incoming.try_recv() {
                            batch.push(more);
                        }
                        batch
                    }
                    _ = tokio::time::sleep_until(due) => {
                        due = tokio::time::Instant::now() + discovery::ANNOUNCE_INTERVAL;
                        all.clone()
                    }
                };
                for ih in &fresh {
                    if !all.contains(ih) {
                        all.push(*ih);
                    }
                }
                announce_all(&dht, &fresh, port).await;
            }
        });
        Self { new, task }
    }

    fn add(&self, infohash: InfoHash) {
        let _ = self.new.send(infohash);
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn announce_all(dht: &Arc<Dht>, infohashes: &[InfoHash], port: u16) {
    let started = std::time::Instant::now();
    let limit = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_ANNOUNCES));
    let mut tasks = tokio::task::JoinSet::new();
    for &infohash in infohashes {
        let (dht, limit) = (dht.clone(), limit.clone());
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            match dht.announce(infohash, port).await {
                Ok(()) => tracing::debug!(%infohash, port, "announced"),
                Err(error) => tracing::warn!(%infohash, %error, "DHT announce failed"),
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    tracing::info!(
        count = infohashes.len(),
        seconds = started.elapsed().as_secs_f64(),
        "announce round done"
    );
}
