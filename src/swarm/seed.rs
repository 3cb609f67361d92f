//! The `xus seed` service: serves a repository's commits until told to
//! stop, picking up branch moves and heads published from this machine, and
//! keeps stored heads alive on the DHT.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tracker_free::Dht;

use crate::git::blobs::BlobSource;
use crate::git::object::ObjectId;
use crate::git::repo;
use crate::git::state_dir::StateDir;
use crate::swarm::discovery::{self, DhtOptions};
use crate::swarm::engine::{Engine, EngineConfig};
use crate::swarm::metrics_server::MetricsServer;
use crate::swarm::output::{Event, Output};
use crate::swarm::seeder::{self, ORIGIN_UPDATE_PEERS, Seeder};
use crate::swarm::webseed_server::WebseedServer;
use crate::topic::home::Home;
use crate::topic::update_chain::{chain_steps, history_step};
use crate::torrent::info_hash::InfoHash;

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
    pub rates: crate::swarm::engine::RateLimits,
    /// Local service discovery (see [`EngineConfig::lsd`]).
    pub lsd: bool,
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
    /// Where to serve Prometheus metrics (`GET /metrics`); `None` serves none.
    pub metrics_listen: Option<SocketAddr>,
}

/// Seeds until `shutdown` resolves. Prints `seeding <commit> <infohash> <magnet>`
/// per commit, then (with a webseed) `webseed <url>`, (with metrics)
/// `metrics <url>`, then `listening <addr>`
/// once the first set is served; commits that appear later (branch moves
/// with `--all-branches`, heads published from this machine) print their own
/// `seeding` line. Every seeded commit is also served by the webseed, and
/// magnets name it (`ws=`) when it can be reached from elsewhere.
pub async fn run(
    options: SeedOptions,
    shutdown: impl std::future::Future<Output = ()>,
    out: &mut Output<'_>,
) -> anyhow::Result<()> {
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
    let source = {
        let (git_dir, cache_bytes) = (git_dir.clone(), options.cache_bytes);
        tokio::task::spawn_blocking(move || BlobSource::open(&git_dir, cache_bytes)).await??
    };
    let webseed = match options.webseed_listen {
        Some(listen) => Some(
            WebseedServer::start(listen, source.clone(), options.webseed_url.as_deref()).await?,
        ),
        None => None,
    };
    let metrics = match options.metrics_listen {
        Some(listen) => Some(MetricsServer::start(listen).await?),
        None => None,
    };
    let engine = Engine::start(&EngineConfig {
        listen: options.listen,
        work_dir: StateDir::of(&git_dir).session(),
        rates: options.rates,
        lsd: options.lsd,
    })
    .await?;
    let addr = engine
        .listen_addr()
        .context("BitTorrent session is not listening")?;
    let mut seeder = Seeder::new(&engine, source, git_dir.clone())?
        .dialing(options.peers.clone())
        .announcing(dht.clone())
        .sharing_updates(ORIGIN_UPDATE_PEERS)
        .recording();
    if let Some(webseed) = &webseed {
        let urls = if webseed.advertisable {
            vec![webseed.url.clone()]
        } else {
            Vec::new()
        };
        seeder = seeder.with_webseed(Arc::clone(&webseed.source), urls);
    }
    let initial = wanted_commits(
        &git_dir,
        commits,
        all_branches,
        &options.home,
        &HashMap::new(),
    )
    .await?;
    seeder.add_all(initial, out).await?;
    let mut updates_tried = HashSet::new();
    seed_listed_updates(&mut seeder, &options.home, &mut updates_tried, out).await;
    seeder.record();
    let seed_addr = seeder::seed_addr_path(&git_dir);
    if let Some(webseed) = &webseed {
        out.emit(&Event::Webseed {
            url: webseed.url.clone(),
        })?;
    }
    if let Some(metrics) = &metrics {
        out.emit(&Event::Metrics {
            url: metrics.url.clone(),
        })?;
    }
    out.emit(&Event::Listening { address: addr })?;

    let mut shutdown = std::pin::pin!(shutdown);
    let mut rescan = tokio::time::interval(options.rescan);
    rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut republish = tokio::time::interval(options.republish);
    republish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let result = loop {
        tokio::select! {
            _ = &mut shutdown => break Ok(()),
            _ = rescan.tick() => {
                match wanted_commits(&git_dir, Vec::new(), all_branches, &options.home, seeder.seeded()).await {
                    Ok(new) => for commit in new {
                        if let Err(error) = seeder.add(commit, out).await {
                            tracing::warn!(%commit, error = %format!("{error:#}"), "cannot seed commit");
                        }
                    },
                    Err(error) => tracing::warn!(error = %format!("{error:#}"), "rescan failed"),
                }
                seed_listed_updates(&mut seeder, &options.home, &mut updates_tried, out).await;
            }
            _ = republish.tick(), if dht.is_some() => {
                if let Some(dht) = &dht {
                    republish_heads(dht, &options.home, seeder.seeded()).await;
                }
            }
        }
    };
    let _ = std::fs::remove_file(&seed_addr);
    tracing::info!("stopping");
    // What this seed gave the swarm, for its operator and for benchmarks
    // that compare seeds' shares.
    let _ = out.emit(&Event::Uploaded {
        bytes: engine.uploaded_bytes(),
    });
    drop(seeder);
    if let Some(webseed) = webseed
        && let Err(error) = webseed.stop().await
    {
        tracing::warn!(error = %format!("{error:#}"), "webseed stopped abnormally");
    }
    if let Some(metrics) = metrics
        && let Err(error) = metrics.stop().await
    {
        tracing::warn!(error = %format!("{error:#}"), "metrics endpoint stopped abnormally");
    }
    engine.stop().await;
    result
}

/// Commits to serve that are not served yet: the ones named, every branch
/// tip with `--all-branches`, and every stored head whose commit is here.
async fn wanted_commits(
    git_dir: &Path,
    named: Vec<ObjectId>,
    all_branches: bool,
    home: &Home,
    seeded: &HashMap<ObjectId, InfoHash>,
) -> anyhow::Result<Vec<ObjectId>> {
    let git_dir = git_dir.to_owned();
    let home = home.clone();
    let seeded: std::collections::HashSet<ObjectId> = seeded.keys().copied().collect();
    tokio::task::spawn_blocking(move || {
        let repo = git2::Repository::open(&git_dir)?;
        let mut commits = named;
        if all_branches {
            // A branch whose tip is already served is not read again: with
            // thousands of branches, peeling every tip each rescan kept an
            // idle seed busy.
            for reference in repo.references_glob("refs/heads/*")? {
                let reference = reference?;
                let direct = reference.target().and_then(ObjectId::from_git);
                if direct.is_some_and(|id| seeded.contains(&id)) {
                    continue;
                }
                if let Ok(commit) = reference.peel_to_commit()
                    && let Some(id) = ObjectId::from_git(commit.id())
                {
                    commits.push(id);
                }
            }
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

/// Serves the update torrents that stored heads list (their chains and
/// histories), for
/// heads whose commit is served here: loaded from the update store (`xus
/// publish` built them there) or built now when both commits are here. Each
/// (from, to) is tried once per run. An update whose infohash differs from
/// the one the head lists (another xus version compressed it) is still
/// served, with a warning: readers of that head cannot use it.
async fn seed_listed_updates(
    seeder: &mut Seeder<'_>,
    home: &Home,
    tried: &mut HashSet<(ObjectId, ObjectId)>,
    out: &mut Output<'_>,
) {
    let heads = match home.all_heads() {
        Ok(heads) => heads,
        Err(error) => {
            tracing::warn!(error = %format!("{error:#}"), "cannot read stored heads");
            return;
        }
    };
    for head in heads {
        let served = ObjectId::from_slice(&head.head.commit)
            .is_some_and(|commit| seeder.seeded().contains_key(&commit));
        if !served {
            continue;
        }
        for step in chain_steps(&head.head)
            .into_iter()
            .chain(history_step(&head.head))
        {
            if !tried.insert((step.from, step.to)) {
                continue;
            }
            for (from, infohash) in seeder.add_updates(step.to, &[step.from], out).await {
                if infohash != step.info_hash {
                    tracing::warn!(%from, to = %step.to, %infohash, listed = %step.info_hash, "the update built here differs from the one the head lists");
                }
            }
        }
    }
}

/// Stores again every known head whose commit is served here, and the
/// branch index of their topics, so that the DHT keeps them past its
/// two-hour expiry even when the owner is away.
async fn republish_heads(dht: &Dht, home: &Home, seeded: &HashMap<ObjectId, InfoHash>) {
    let heads = match home.all_heads() {
        Ok(heads) => heads,
        Err(error) => {
            tracing::warn!(error = %format!("{error:#}"), "cannot read stored heads");
            return;
        }
    };
    let mut topics = std::collections::BTreeSet::new();
    for head in heads {
        let served =
            ObjectId::from_slice(&head.head.commit).is_some_and(|c| seeded.contains_key(&c));
        if !served {
            continue;
        }
        topics.insert(head.topic);
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
    // The branch index of every topic served here, so that
    // `git clone xus://TOPIC/` still lists its branches.
    for topic in topics {
        let index = match home.seen_index(&topic) {
            Ok(Some(index)) => index,
            Ok(None) => continue,
            Err(error) => {
                tracing::warn!(%topic, error = %format!("{error:#}"), "cannot read the stored branch index");
                continue;
            }
        };
        match dht.republish_index(&index).await {
            Ok(()) => tracing::info!(%topic, seq = index.seq, "branch index refreshed"),
            Err(error) => tracing::debug!(%topic, %error, "branch index not refreshed"),
        }
    }
}
