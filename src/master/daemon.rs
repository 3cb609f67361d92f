//! `xus master --config FILE`: restores missing topics from their backups,
//! seeds every branch head, keeps the heads fresh on the DHT, and serves
//! pushes, status, updates built on demand and the webseed over one HTTP
//! address.

use std::io::Write;

use crate::swarm::output::Output;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, oneshot};
use tracker_free::Branch;

use super::backup::{self, Backups};
use super::config::MasterConfig;
use super::head_torrents::{Seeded, serve_head, serve_history};
use super::http;
use super::resume;
use super::state::{Master, SeedRequest, TopicState};
use super::webseeds::TopicWebseeds;
use crate::git::blobs::BlobSource;
use crate::git::repo;
use crate::swarm::discovery::{self, DhtOptions};
use crate::swarm::engine::RateLimits;
use crate::swarm::seeder::Seeder;
use crate::swarm::update_server::{ServedRepo, UpdateServer};
use crate::swarm::webseed_server::{base_url, local_url};
use crate::swarm::webseed_source::GitWebseed;
use crate::swarm::{Swarm, SwarmOptions};
use crate::topic::update_chain::update_from;

/// How long an HTTP connection may stay silent: a push answer waits for a
/// download, a backup and a DHT write, so it is longer than a webseed's.
const HTTP_IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// When a head could not be published at start (no DHT node reachable
/// yet), the first refresh comes this soon rather than after the whole
/// republish interval.
const RETRY_UNPUBLISHED: Duration = Duration::from_secs(60);

/// Runs the master until `shutdown` resolves. Prints `restored ...` or
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
    shutdown: impl std::future::Future<Output = ()>,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let out = &mut Output::text(out);
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
            writeln!(out.writer(), "{line}")?;
        }
    }

    let dht_config = discovery::config_from(&DhtOptions::default(), config.dht.clone())?;
    let swarm = Arc::new(
        Swarm::start(&SwarmOptions {
            listen: config.bittorrent,
            rates: RateLimits {
                upload_bps: config.limits.max_upload_bps,
                download_bps: None,
            },
            lsd: config.lsd,
            dht: Some(dht_config),
            feed: true,
        })
        .await?,
    );
    let engine = swarm.engine();
    let addr = engine
        .listen_addr()
        .context("BitTorrent session is not listening")?;

    let listener = tokio::net::TcpListener::bind(config.http)
        .await
        .with_context(|| format!("binding HTTP on {}", config.http))?;
    let http_addr = listener.local_addr()?;
    let public_url = match &config.public_url {
        Some(url) => Some(base_url(url)?),
        None => None,
    };
    let webseed_url = public_url.clone().unwrap_or_else(|| local_url(http_addr));
    let advertisable = public_url.is_some() || !http_addr.ip().is_unspecified();

    let (seed_requests, mut seed_queue) = mpsc::channel::<SeedRequest>(64);
    let mut topics = Vec::new();
    let mut seeders = Vec::new();
    let mut webseeds = Vec::new();
    let mut served = Vec::new();
    for (index, topic) in config.topics.iter().enumerate() {
        let git_dir = topic.git_dir(&config.data_dir);
        let blobs = BlobSource::open(&git_dir, config.limits.cache_bytes)
            .with_context(|| format!("opening {}", git_dir.display()))?;
        let webseed = Arc::new(GitWebseed::new(blobs.clone()));
        webseeds.push(webseed.clone());
        served.push(ServedRepo {
            git_dir: git_dir.clone(),
            webseed: webseed.clone(),
        });
        let backups = Backups::start(
            git_dir.clone(),
            topic.backups.clone(),
            config.limits.backup_retry_max,
        );
        let urls = if advertisable {
            vec![webseed_url.clone()]
        } else {
            Vec::new()
        };
        seeders.push(
            Seeder::new(engine, blobs, git_dir.clone())?
                .sharing_updates(config.limits.update_peers)
                .with_webseed(webseed, urls)
                .announcing(swarm.dht().cloned()),
        );
        topics.push(Arc::new(TopicState::new(
            index,
            topic.clone(),
            git_dir,
            backups,
        )));
    }

    // Every branch tip is served before its head is published, with the
    // chain of updates the last head listed.
    let published = resume::published_heads(&config.data_dir);
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
            let previous = match (swarm.dht(), Branch::new(&branch)) {
                (Some(dht), Ok(key)) => {
                    resume::last_head(&published, dht, &topic.config.secret.topic(), &key).await
                }
                _ => None,
            };
            let update = match &previous {
                Some(previous) => resume::serve_chain(seeder, previous, commit, out).await,
                None => None,
            };
            let previous_head = previous.as_ref().map(|p| &p.head);
            let history = serve_history(seeder, commit, infohash, update, previous_head, out).await;
            if let Some(previous) = previous {
                topic.set_head(previous);
            }
            let seeded = Seeded {
                infohash,
                update,
                history,
            };
            tips.push((topic.clone(), branch, commit, seeded));
        }
    }

    let master = Arc::new(Master {
        config: config.clone(),
        topics: topics.clone(),
        swarm: swarm.clone(),
        seed_requests,
        published,
        url: Some(webseed_url.clone())
            .filter(|url| advertisable && tracker_free::is_master_url(url)),
        offered: Default::default(),
        recent_pushes: Default::default(),
        upload_history: Default::default(),
    });
    let _sampler = crate::swarm::AbortOnDrop(tokio::spawn(sample_uploads(master.clone())));
    crate::metrics::global().expect_pushes();
    crate::metrics::global().register(Box::new(super::backup_metrics::BackupCollector::new(
        &master.topics,
    )));
    let (stop_http, http_stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(webseed::serve_with_routes(
        listener,
        Arc::new(TopicWebseeds::new(webseeds)),
        webseed::ServerOptions {
            public_url: public_url.clone(),
            idle_timeout: HTTP_IDLE_TIMEOUT,
            ..webseed::ServerOptions::default()
        },
        http::routes(master.clone()).merge(UpdateServer::new(served).routes()),
        async move {
            let _ = http_stopped.await;
        },
    ));

    let mut unpublished = 0;
    for (topic, branch, commit, seeded) in tips {
        match master.publish_head(&topic, &branch, commit, &seeded).await {
            Ok(head) => writeln!(
                out.writer(),
                "head {} {} {} seq {}",
                topic.config.name,
                branch,
                commit,
                head.seq
            )?,
            Err(error) => {
                unpublished += 1;
                tracing::warn!(
                    topic = %topic.config.name,
                    %branch,
                    error = %format!("{error:#}"),
                    retry_secs = RETRY_UNPUBLISHED.as_secs(),
                    "cannot publish the head; retrying"
                );
            }
        }
    }
    // The index of a restored topic, whose heads were all known already,
    // in the background: the master serves meanwhile.
    for topic in master.topics.clone() {
        let master = master.clone();
        tokio::spawn(async move { master.publish_index(&topic).await });
    }
    writeln!(out.writer(), "master http {webseed_url} bittorrent {addr}")?;
    out.writer().flush()?;

    let mut shutdown = std::pin::pin!(shutdown);
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
                    Some(seeder) => {
                        serve_head(seeder, request.commit, request.from, request.previous.as_ref(), out)
                            .await
                    }
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
async fn refresh_heads(master: &Master, seeders: &mut [Seeder<'_>], out: &mut Output<'_>) {
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
                None => {
                    let previous = topic.head(&branch).map(|h| h.head);
                    let from = update_from(None, previous.as_ref(), commit);
                    match serve_head(seeder, commit, from, previous.as_ref(), out).await {
                        Ok(seeded) => master
                            .publish_head(topic, &branch, commit, &seeded)
                            .await
                            .map(|h| h.seq),
                        Err(error) => Err(error),
                    }
                }
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
        master.publish_index(topic).await;
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

/// Records this master's upload totals every
/// [`super::upload_history::SAMPLE_EVERY`], from its start, for the status
/// page's chart.
async fn sample_uploads(master: Arc<Master>) {
    let mut tick = tokio::time::interval(super::upload_history::SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        master
            .upload_history
            .record(super::status::upload_now(&master));
    }
}
