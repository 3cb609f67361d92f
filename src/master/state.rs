//! What the master's parts share while it runs: the owned topics (locks,
//! last published heads, backups) and the swarm, and the way to ask the
//! main loop to seed a commit. The HTTP handlers, the push acceptor and
//! the main loop all read it; it imports none of them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use tokio::sync::{mpsc, oneshot};
use tracker_free::{Branch, Head, IndexDefault, SignedHead};

use super::backup::Backups;
use super::config::{MasterConfig, TopicConfig};
use super::head_torrents::Seeded;
use crate::git::object::ObjectId;
use crate::git::repo;
use crate::swarm::Swarm;
use crate::topic::home::Home;
use crate::topic::update_chain::{chained_head, set_history};

/// What the HTTP handlers share with the main loop.
pub(crate) struct Master {
    pub(crate) config: MasterConfig,
    pub(crate) topics: Vec<Arc<TopicState>>,
    pub(crate) swarm: Arc<Swarm>,
    /// Asks the main loop to seed a commit; answers its infohash.
    pub(crate) seed_requests: mpsc::Sender<SeedRequest>,
    /// Every head published, so that a restart keeps each chain of updates
    /// ([`super::resume`]).
    pub(crate) published: Home,
    /// The HTTP base URL heads carry ([`tracker_free::Head::master`]), so
    /// readers too far behind for the listed updates can ask here for one;
    /// `None` when the address cannot be reached from elsewhere.
    pub(crate) url: Option<String>,
    /// Info dictionaries writers uploaded for the commits they push.
    pub(crate) offered: super::offered::Offered,
    /// The last pushes answered, for the status.
    pub(crate) recent_pushes: super::status::RecentPushes,
    /// The last hour of this master's upload, for the status page's chart.
    pub(crate) upload_history: super::upload_history::UploadHistory,
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
    pub(crate) fn new(
        index: usize,
        config: TopicConfig,
        git_dir: PathBuf,
        backups: Arc<Backups>,
    ) -> Self {
        Self {
            index,
            config,
            git_dir,
            backups,
            fetching: tokio::sync::Mutex::new(()),
            branch_locks: Mutex::new(HashMap::new()),
            heads: Mutex::new(HashMap::new()),
        }
    }

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

    /// Branches with a published head, sorted.
    pub(crate) fn published_branches(&self) -> Vec<Branch> {
        let heads = self.heads.lock().unwrap_or_else(|e| e.into_inner());
        let mut branches: Vec<Branch> = heads.values().map(|h| h.branch.clone()).collect();
        branches.sort();
        branches
    }

    /// The last head published for `branch`.
    pub(crate) fn head(&self, branch: &str) -> Option<SignedHead> {
        let heads = self.heads.lock().unwrap_or_else(|e| e.into_inner());
        heads.get(branch).cloned()
    }

    /// Takes `head` as the last one published for its branch: the head a
    /// restarted master finds recorded or on the DHT, so that its next head
    /// continues that chain and stays above that seq.
    pub(crate) fn set_head(&self, head: SignedHead) {
        let mut heads = self.heads.lock().unwrap_or_else(|e| e.into_inner());
        heads.insert(head.branch.as_str().to_owned(), head);
    }
}

/// Asks the main loop, which owns the seeders, to seed a commit, the
/// update torrent to it from `from`, and a history torrent when the head
/// following `previous` needs one.
pub(crate) struct SeedRequest {
    pub(crate) topic: usize,
    pub(crate) commit: ObjectId,
    pub(crate) from: Option<ObjectId>,
    pub(crate) previous: Option<Head>,
    pub(crate) reply: oneshot::Sender<anyhow::Result<Seeded>>,
}

impl Master {
    /// Serves `commit` of `topic` to peers and on the webseed (if it is
    /// not already), the update torrent to it from `from` when it can be
    /// made, and a history when the head after `previous` needs one.
    pub(crate) async fn seed(
        &self,
        topic: usize,
        commit: ObjectId,
        from: Option<ObjectId>,
        previous: Option<Head>,
    ) -> anyhow::Result<Seeded> {
        let (reply, answer) = oneshot::channel();
        self.seed_requests
            .send(SeedRequest {
                topic,
                commit,
                from,
                previous,
                reply,
            })
            .await
            .map_err(|_| anyhow::anyhow!("the master is shutting down"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the master is shutting down"))?
    }

    /// Signs `commit` as the head of `branch` into the DHT, listing the
    /// update torrent `seeded.update` chained to the previous head's and a
    /// history (the previous head's while the chain reaches it, else the
    /// one just served), and remembers it for refreshes.
    pub(crate) async fn publish_head(
        &self,
        topic: &TopicState,
        branch: &str,
        commit: ObjectId,
        seeded: &Seeded,
    ) -> anyhow::Result<SignedHead> {
        let dht = self
            .swarm
            .dht()
            .context("the master runs without a DHT node")?;
        let branch_key =
            Branch::new(branch).with_context(|| format!("branch {branch:?} cannot be a head"))?;
        let previous = topic.head(branch);
        let new_branch = previous.is_none();
        let mut head = chained_head(
            commit,
            seeded.infohash,
            seeded.update,
            previous.as_ref().map(|h| &h.head),
        );
        if head.history.is_none()
            && let Some((to, history)) = seeded.history
        {
            set_history(&mut head, to, history);
        }
        head.master = self.url.clone();
        let min_seq = topic
            .head(branch)
            .map_or(0, |h| h.seq.saturating_add(i64::from(h.head != head)));
        let published = dht
            .publish_head(&topic.config.secret, &branch_key, &head, min_seq)
            .await;
        crate::metrics::global().head_publish(published.is_ok());
        let signed =
            published.with_context(|| format!("publishing the head of {branch} on the DHT"))?;
        topic.set_head(signed.clone());
        if let Err(error) = self.published.record_head(&signed) {
            tracing::warn!(%branch, error = %format!("{error:#}"),
                "cannot record the published head; a restart will not continue its chain");
        }
        if new_branch {
            self.publish_index(topic).await;
        }
        Ok(signed)
    }

    /// Stores the topic's branch index (every branch with a published head,
    /// the configured default, this master's URL), so that
    /// `git clone xus://TOPIC/` finds every branch. A failure is logged:
    /// the heads stand on their own, and the next refresh tries again.
    pub(crate) async fn publish_index(&self, topic: &TopicState) {
        let Some(dht) = self.swarm.dht() else { return };
        let branches = topic.published_branches();
        if branches.is_empty() {
            return;
        }
        let configured = &topic.config.default_branch;
        let default = if branches.contains(configured) {
            configured.clone()
        } else {
            branches[0].clone()
        };
        match dht
            .publish_index(
                &topic.config.secret,
                &branches,
                &IndexDefault::Set(default),
                self.url.as_deref(),
            )
            .await
        {
            Ok(index) => tracing::info!(topic = %topic.config.name,
                branches = index.index.branches().len(), seq = index.seq, "branch index published"),
            Err(error) => tracing::warn!(topic = %topic.config.name,
                error = %format!("{error:#}"), "cannot publish the branch index; retrying at the next refresh"),
        }
    }
}

/// A topic's id as printed.
pub(crate) fn topic_id(topic: &TopicConfig) -> String {
    crate::hex::encode(&topic.secret.topic().0)
}
