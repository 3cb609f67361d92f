//! What the master reports about itself, gathered once for both forms that
//! show it: `GET /status` (JSON, for `xus push` and scripts) and `GET /`
//! (the HTML page), so the page's numbers are exactly the JSON's.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::backup::RemoteStatus;
use super::state::{Master, topic_id};
use super::upload_history::UploadSample;
use crate::git::object::ObjectId;
use crate::swarm::engine::SessionTraffic;
use crate::topic::push_answer::BranchSummary;

/// How many pushes the status keeps.
pub(crate) const RECENT_PUSHES: usize = 20;

/// `GET /status`: every topic's branches and each backup remote's lag, the
/// swarm as this master sees it, and the last pushes.
#[derive(Serialize)]
pub(crate) struct StatusAnswer {
    pub(crate) topics: Vec<TopicStatus>,
    /// Bytes this master has sent to peers since it started.
    pub(crate) uploaded_bytes: u64,
    /// The master's BitTorrent port, on the host of its HTTP address: a
    /// writer dials it to hand over what it pushes.
    pub(crate) bittorrent_port: Option<u16>,
    /// The BitTorrent session: totals since start, peers, rates.
    pub(crate) swarm: SessionTraffic,
    /// Bytes of commit files sent as webseed answers since start.
    pub(crate) webseed_sent_bytes: u64,
    /// Newest first, at most [`RECENT_PUSHES`].
    pub(crate) recent_pushes: Vec<PushRecord>,
    /// Unix seconds when this was gathered.
    pub(crate) time: u64,
    /// This master's upload totals over the last hour, a sample a minute
    /// and one now, oldest first (the page's chart).
    pub(crate) upload_history: Vec<UploadSample>,
}

#[derive(Serialize)]
pub(crate) struct TopicStatus {
    pub(crate) name: String,
    pub(crate) id: String,
    pub(crate) branches: Vec<BranchSummary>,
    pub(crate) backups: Vec<RemoteStatus>,
}

/// One answered push.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PushRecord {
    /// Unix seconds of the answer.
    pub(crate) time: u64,
    /// The signing writer's key (hex), when the request parsed.
    pub(crate) writer: Option<String>,
    /// The topic's name, when the answer names it.
    pub(crate) topic: Option<String>,
    pub(crate) branch: Option<String>,
    pub(crate) commit: Option<String>,
    /// [`crate::topic::push_answer::PushAnswer::result_label`].
    pub(crate) result: &'static str,
}

/// The last [`RECENT_PUSHES`] pushes.
#[derive(Default)]
pub(crate) struct RecentPushes(Mutex<VecDeque<PushRecord>>);

impl RecentPushes {
    pub(crate) fn record(&self, push: PushRecord) {
        let mut pushes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if pushes.len() == RECENT_PUSHES {
            pushes.pop_back();
        }
        pushes.push_front(push);
    }

    fn newest_first(&self) -> Vec<PushRecord> {
        let pushes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        pushes.iter().cloned().collect()
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Reads everything [`StatusAnswer`] holds.
///
/// # Errors
///
/// A topic's repository cannot be read.
pub(crate) async fn gather(master: &Master) -> anyhow::Result<StatusAnswer> {
    let mut topics = Vec::new();
    for topic in &master.topics {
        let branches = topic
            .branches()
            .await
            .map_err(|error| anyhow::anyhow!("reading topic {}: {error:#}", topic.config.name))?;
        let git_dir = topic.git_dir.clone();
        let commits: Vec<ObjectId> = branches.iter().map(|(_, c)| *c).collect();
        let times = tokio::task::spawn_blocking(move || commit_times(&git_dir, &commits)).await?;
        let backups = {
            let backups = topic.backups.clone();
            tokio::task::spawn_blocking(move || backups.status()).await?
        };
        topics.push(TopicStatus {
            name: topic.config.name.clone(),
            id: topic_id(&topic.config),
            branches: branches
                .into_iter()
                .zip(times)
                .map(|((name, commit), commit_time)| BranchSummary {
                    seq: topic.head(&name).map(|h| h.seq),
                    name,
                    commit: commit.to_hex(),
                    commit_time,
                })
                .collect(),
            backups,
        });
    }
    let engine = master.swarm.engine();
    let swarm = engine.traffic();
    let now = UploadSample {
        time: unix_now(),
        peers: swarm.uploaded,
        webseed: crate::metrics::global().webseed_sent_bytes(),
    };
    Ok(StatusAnswer {
        topics,
        uploaded_bytes: swarm.uploaded,
        bittorrent_port: engine.listen_addr().map(|a| a.port()),
        swarm,
        webseed_sent_bytes: now.webseed,
        recent_pushes: master.recent_pushes.newest_first(),
        time: now.time,
        upload_history: master.upload_history.with_now(now),
    })
}

/// The master's upload totals now.
pub(crate) fn upload_now(master: &Master) -> UploadSample {
    UploadSample {
        time: unix_now(),
        peers: master.swarm.engine().traffic().uploaded,
        webseed: crate::metrics::global().webseed_sent_bytes(),
    }
}

/// Each commit's committer time, `None` where it cannot be read.
fn commit_times(git_dir: &std::path::Path, commits: &[ObjectId]) -> Vec<Option<i64>> {
    let repo = git2::Repository::open_bare(git_dir).ok();
    commits
        .iter()
        .map(|commit| {
            let repo = repo.as_ref()?;
            let commit = repo.find_commit(commit.to_git()).ok()?;
            Some(commit.time().seconds())
        })
        .collect()
}
