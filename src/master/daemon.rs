//! `xus master --config FILE`: restores missing topics from their backups,
//! seeds every branch head, keeps the heads fresh on the DHT, and serves
//! pushes, status and the webseed over one HTTP address.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, oneshot};
use tracker_free::{Branch, Head, InfoHash, SignedHead};

use super::backup::{self, Backups};
use super::config::{MasterConfig, TopicConfig};
use super::http;
use super::webseeds::TopicWebseeds;
use crate::commands::fetch::Swarm;
use crate::commands::seed::{Announcer, Seeder};
use crate::discovery::{self, DhtOptions};
use crate::gitobj::ObjectId;
use crate::home::Home;
use crate::storage::BlobSource;
use crate::webseed_source::GitWebseed;
use crate::{hex, repo};

/// How long an HTTP connection may stay silent: a push answer waits for a
/// download, a backup and a DHT write, so it is longer than a webseed's.
const HTTP_IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// When a head could not be published at start (no DHT node reachable
/// yet), the first refresh comes this soon rather than after the whole
/// republish interval.
const RETRY_UNPUBLISHED: Duration = Duration::from_secs(60);

/// What the HTTP handlers share with the main loop.
pub(crate) struct Master {
    pub(crate) config: MasterConfig,
    pub(crate) topics: Vec<Arc<TopicState>>,
    pub(crate) swarm: Arc<Swarm>,
    /// Asks the main loop to seed a commit; answers its infohash.
    seed_requests: mpsc::Sender<SeedRequest>,
    /// A scratch home for the fetch machinery (it records nothing there
    /// for plain infohash fetches).
    pub(crate) fetch_home: Home,
}

/// One owned topic while the master runs.
pub(crate) struct TopicState {
    pub(crate) index: usize,
    pub(crate) config: TopicConfig,
    pub(crate) git_dir: PathBuf,
    pub(crate) backups: Arc<Backups>,
    /// Taken by a push while it downloads: one download per repository at
    /// a time, so that two pushes of one commit never race in the engine.
    pub(crate) fetching: tokio::sync::Mutex<()>,
    /// Taken from the branch check to the published head, so that heads
    /// are published in the order the branch moved.
    branch_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The last head published per branch, refreshed every
    /// `limits.republish`.
    heads: Mutex<HashMap<String, SignedHead>>,
}

impl TopicState {
    /// The lock of one branch.
    pub(crate) fn branch_lock(&self, branch: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.branch_locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(branch.to_owned()).or_default().clone()
    }

    /// Every branch and its tip, read from the repository now.
    pub(crate) async fn branches(&self) -> anyhow::Result<Vec<(String, ObjectId)>> {
        let git_dir = self.git_dir.clone();
        tokio::task::spawn_blocking(move || {
            repo::open(&git_dir).and_then(|r| repo::all_branches(&r))
        })
        .await?
    }

    /// The last head published for `branch`.
    pub(crate) fn head(&self, branch: &str) -> Option<SignedHead> {
        let heads = self.heads.lock().unwrap_or_else(|e| e.into_inner());
        heads.get(branch).cloned()
    }

    fn set_head(&self, head: SignedHead) {
        let mut heads = self.heads.lock().unwrap_or_else(|e| e.into_inner());
        heads.insert(head.branch.as_str().to_owned(), head);
    }
}

struct SeedRequest {
    topic: usize,
    commit: ObjectId,
    reply: oneshot::Sender<anyhow::Result<ObjectId>>,
}

impl Master {
    /// Serves `commit` of `topic` to peers and on the webseed (if it is
    /// not already); returns its infohash.
    pub(crate) async fn seed(&self, topic: usize, commit: ObjectId) -> anyhow::Result<ObjectId> {
        let (reply, answer) = oneshot::channel();
        self.seed_requests
            .send(SeedRequest {
                topic,
                commit,
                reply,
            })
            .await
            .map_err(|_| anyhow::anyhow!("the master is shutting down"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the master is shutting down"))?
    }

    /// Signs `commit` as the head of `branch` into the DHT and remembers it
    /// for refreshes.
    pub(crate) async fn publish_head(
        &self,
        topic: &TopicState,
        branch: &str,
        commit: ObjectId,
        infohash: ObjectId,
    ) -> anyhow::Result<SignedHead> {
        let dht = self
            .swarm
            .dht()
            .context("the master runs without a DHT node")?;
        let branch_key =
            Branch::new(branch).with_context(|| format!("branch {branch:?} cannot be a head"))?;
        let head = Head {
            infohash: InfoHash(infohash.0),
            commit: commit.0.to_vec(),
        };
        let min_seq = topic
            .head(branch)
            .map_or(0, |h| h.seq.saturating_add(i64::from(h.head != head)));
        let signed = dht
            .publish_head(&topic.config.secret, &branch_key, &head, min_seq)
            .await
            .with_context(|| format!("publishing the head of {branch} on the DHT"))?;
        topic.set_head(signed.clone());
        Ok(signed)
    }
}

/// Runs the master until Ctrl-C or SIGTERM. Prints `restored ...` or
/// `new topic ...` per topic whose repository was missing, `seeding ...`
/// per served commit, `head <topic> <branch> <commit> seq <n>` per
/// published head, then `master http <url> bittorrent <addr>` once ready.
///
/// A topic with no repository here is restored from its backups; when no
/// backup can be read it is started empty only with `init` (a new topic),
/// since otherwise an unmounted disk or a network outage would silently
/// fork the topic's history.
pub async fn run(
    config: MasterConfig,
    init: bool,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    for topic in &config.topics {
        let (git_dir, remotes, name) = (
            topic.git_dir(&config.data_dir),
            topic.backups.clone(),
            topic.name.clone(),
        );
        let line =
            tokio::task::spawn_blocking(move || prepare(&git_dir, &name, &remotes, init)).await??;
        if let Some(line) = line {
            writeln!(out, "{line}")?;
        }
    }

    let dht_config = discovery::config_from(&DhtOptions::default(), config.dht.clone())?;
    let swarm = Arc::new(
        Swarm::start(
            config.bittorrent,
            crate::engine::RateLimits {
                upload_bps: config.limits.max_upload_bps,
                download_bps: None,
            },
            Some(&dht_config),
            true,
        )
        .await?,
    );
    let engine = swarm.engine();
    let addr = engine
        .listen_addr()
        .context("BitTorrent session is not listening")?;
    let dht = swarm.dht().cloned();

    let listener = tokio::net::TcpListener::bind(config.http)
        .await
        .with_context(|| format!("binding HTTP on {}", config.http))?;
    let http_addr = listener.local_addr()?;
    let public_url = match &config.public_url {
        Some(url) => Some(crate::commands::webseed::base_url(url)?),
        None => None,
    };
    let webseed_url = public_url.clone().unwrap_or_else(|| local_url(http_addr));
    let advertisable = public_url.is_some() || !http_addr.ip().is_unspecified();

    let (seed_requests, mut seed_queue) = mpsc::channel::<SeedRequest>(64);
    let mut topics = Vec::new();
    let mut seeders = Vec::new();
    let mut webseeds = Vec::new();
    for (index, topic) in config.topics.iter().enumerate() {
        let git_dir = topic.git_dir(&config.data_dir);
        let blobs = BlobSource::open(&git_dir, config.limits.cache_bytes)
            .with_context(|| format!("opening {}", git_dir.display()))?;
        let webseed = Arc::new(GitWebseed::new(blobs.clone()));
        webseeds.push(webseed.clone());
        let backups = Backups::start(
            git_dir.clone(),
            topic.backups.clone(),
            config.limits.backup_retry_max,
        );
        seeders.push(Seeder {
            engine,
            source: blobs,
            git_dir: git_dir.clone(),
            peers: Vec::new(),
            advertised: if addr.ip().is_unspecified() {
                Vec::new()
            } else {
                vec![addr]
            },
            seeded: HashMap::new(),
            webseed: Some(webseed),
            webseed_urls: if advertisable {
                vec![webseed_url.clone()]
            } else {
                Vec::new()
            },
            announcer: dht
                .as_ref()
                .map(|d| Announcer::spawn(d.clone(), addr.port())),
            addr,
            seed_file: None,
        });
        topics.push(Arc::new(TopicState {
            index,
            config: topic.clone(),
            git_dir,
            backups,
            fetching: tokio::sync::Mutex::new(()),
            branch_locks: Mutex::new(HashMap::new()),
            heads: Mutex::new(HashMap::new()),
        }));
    }

    // Every branch tip is served before its head is published.
    let mut tips = Vec::new();
    for (topic, seeder) in topics.iter().zip(seeders.iter_mut()) {
        let git_dir = topic.git_dir.clone();
        let branches = tokio::task::spawn_blocking(move || {
            let repo = repo::open(&git_dir)?;
            repo::all_branches(&repo)
        })
        .await??;
        for (branch, commit) in branches {
            let infohash = seeder.add(commit, out).await?;
            tips.push((topic.clone(), branch, commit, infohash));
        }
    }

    let master = Arc::new(Master {
        config: config.clone(),
        topics: topics.clone(),
        swarm: swarm.clone(),
        seed_requests,
        fetch_home: Home::at(config.data_dir.join("home")),
    });
    let (stop_http, http_stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(webseed::serve_with_routes(
        listener,
        Arc::new(TopicWebseeds::new(webseeds)),
        webseed::ServerOptions {
            public_url: public_url.clone(),
            idle_timeout: HTTP_IDLE_TIMEOUT,
            ..webseed::ServerOptions::default()
        },
        http::routes(master.clone()),
        async move {
            let _ = http_stopped.await;
        },
    ));

    let mut unpublished = 0;
    for (topic, branch, commit, infohash) in tips {
        match master.publish_head(&topic, &branch, commit, infohash).await {
            Ok(head) => writeln!(
                out,
                "head {} {} {} seq {}",
                topic.config.name, branch, commit, head.seq
            )?,
            Err(error) => {
                unpublished += 1;
                eprintln!(
                    "warning: cannot publish the head of {}/{branch}: {error:#}; retrying in {} s",
                    topic.config.name,
                    RETRY_UNPUBLISHED.as_secs()
                );
            }
        }
    }
    writeln!(out, "master http {webseed_url} bittorrent {addr}")?;
    out.flush()?;

    let mut shutdown = std::pin::pin!(crate::commands::shutdown_signal());
    let first_refresh = if unpublished > 0 {
        RETRY_UNPUBLISHED.min(config.limits.republish)
    } else {
        config.limits.republish
    };
    let mut republish = tokio::time::interval_at(
        tokio::time::Instant::now() + first_refresh,
        config.limits.republish,
    );
    republish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(request) = seed_queue.recv() => {
                let result = match seeders.get_mut(request.topic) {
                    Some(seeder) => seeder.add(request.commit, out).await,
                    None => Err(anyhow::anyhow!("no topic #{}", request.topic)),
                };
                let _ = request.reply.send(result);
            }
            _ = republish.tick() => refresh_heads(&master, &mut seeders, out).await,
        }
    }
    tracing::info!("stopping");
    let _ = stop_http.send(());
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "HTTP server stopped abnormally"),
        Err(error) => tracing::warn!(%error, "HTTP server task failed"),
    }
    drop(seeders);
    for topic in &master.topics {
        topic.backups.stop().await;
    }
    drop(master);
    if let Ok(swarm) = Arc::try_unwrap(swarm) {
        swarm.stop().await;
    }
    Ok(())
}

/// Keeps every branch's head on the DHT: stores the signed head again when
/// it still names the branch tip (DHT nodes forget items after about two
/// hours), and signs a new one when it does not (a publish that failed
/// earlier, or a branch moved by hand). Tips are seeded first.
async fn refresh_heads(master: &Master, seeders: &mut [Seeder<'_>], out: &mut (dyn Write + Send)) {
    let Some(dht) = master.swarm.dht() else {
        return;
    };
    for (topic, seeder) in master.topics.iter().zip(seeders.iter_mut()) {
        let branches = match topic.branches().await {
            Ok(branches) => branches,
            Err(error) => {
                tracing::warn!(topic = %topic.config.name, error = %format!("{error:#}"), "cannot read branches");
                continue;
            }
        };
        for (branch, commit) in branches {
            let current = topic
                .head(&branch)
                .filter(|h| h.head.commit.as_slice() == commit.0.as_slice());
            let result = match current {
                Some(head) => dht
                    .republish(&head)
                    .await
                    .map(|()| head.seq)
                    .map_err(anyhow::Error::from),
                None => match seeder.add(commit, out).await {
                    Ok(infohash) => master
                        .publish_head(topic, &branch, commit, infohash)
                        .await
                        .map(|h| h.seq),
                    Err(error) => Err(error),
                },
            };
            match result {
                Ok(seq) => {
                    tracing::info!(topic = %topic.config.name, %branch, seq, "head refreshed")
                }
                Err(error) => {
                    tracing::warn!(topic = %topic.config.name, %branch, error = %format!("{error:#}"), "head refresh failed")
                }
            }
        }
    }
}

/// Makes sure the topic's repository exists: restored from the first
/// backup remote that has it, or new when every remote is reachable and
/// empty. Refuses to start a topic whose remotes are all unreachable,
/// since a new empty history would hide the real one. Returns a line to
/// print when something was done.
fn prepare(
    git_dir: &Path,
    name: &str,
    remotes: &[String],
    init: bool,
) -> anyhow::Result<Option<String>> {
    if git_dir.exists() {
        repo::open(git_dir)?;
        return Ok(None);
    }
    // Restored into a side directory and renamed at the end, so a master
    // killed half-way restores again at its next start.
    let partial = git_dir.with_extension("git.restoring");
    if partial.exists() {
        std::fs::remove_dir_all(&partial)
            .with_context(|| format!("removing {}", partial.display()))?;
    }
    git2::Repository::init_bare(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    let restored = match backup::restore(&partial, remotes) {
        Ok(restored) => restored,
        Err(error) if init => {
            std::fs::rename(&partial, git_dir)
                .with_context(|| format!("moving {} into place", partial.display()))?;
            return Ok(Some(format!(
                "new topic {name}: no backup remote could be read ({error:#}); started empty because of --init"
            )));
        }
        Err(error) => {
            return Err(error.context(format!(
                "topic '{name}' has no repository in the data directory and no backup remote could be read; refusing to start it empty (for a new topic, start once with --init)"
            )));
        }
    };
    std::fs::rename(&partial, git_dir)
        .with_context(|| format!("moving {} into place", partial.display()))?;
    Ok(Some(match restored {
        Some(restored) => format!(
            "restored {name} from {} ({} refs)",
            restored.remote,
            restored.refs.len()
        ),
        None => format!("new topic {name}: every backup remote is empty"),
    }))
}

fn local_url(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => format!("http://{}:{}/", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("http://[{}]:{}/", a.ip(), a.port()),
    }
}

/// A topic's id as printed.
pub(crate) fn topic_id(topic: &TopicConfig) -> String {
    hex::encode(&topic.secret.topic().0)
}
