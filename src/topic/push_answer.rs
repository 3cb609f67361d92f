//! What a master answers over HTTP, as JSON: shared by the master and by
//! `xus push` / `xus master status`, which read it.

use serde::{Deserialize, Serialize};

/// The answer to `POST /push`. The HTTP status says the same in brief:
/// 200 accepted or already contained, 409 not a fast-forward, 403 refused, 400/404 invalid,
/// 503 failed (retry). (A body over the size limit gets a plain 413.)
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum PushAnswer {
    /// The branch is at the commit, a backup holds it and its head is on
    /// the DHT.
    Accepted {
        /// Topic name on the master.
        topic: String,
        /// The branch moved.
        branch: String,
        /// Its new tip.
        commit: String,
        /// The tip's torrent.
        infohash: String,
        /// Seq of the signed DHT head naming it.
        seq: i64,
        /// Backup remotes that already hold it.
        backups: Vec<String>,
        /// The branch was already there (a retried push).
        already: bool,
    },
    /// The branch already contains the commit (it moved on past it): nothing
    /// moved and nothing was kept. What a retried or replayed push gets once
    /// later pushes built on it.
    Contained {
        /// Topic name on the master.
        topic: String,
        /// The branch that did not move.
        branch: String,
        /// The pushed commit, an ancestor of `current`.
        commit: String,
        /// Where the branch is.
        current: String,
    },
    /// Another push moved the branch first; the commit is kept under
    /// `kept_ref` so that it can be merged and pushed again.
    NotFastForward {
        /// Topic name on the master.
        topic: String,
        /// The branch that did not move.
        branch: String,
        /// The pushed commit.
        commit: String,
        /// Where the branch is.
        current: String,
        /// The ref holding the pushed commit on the master (and its backups).
        kept_ref: String,
    },
    /// The writer may not push here (HTTP 403).
    Refused {
        /// Why.
        message: String,
    },
    /// The request itself is wrong (HTTP 400, 404).
    Invalid {
        /// Why.
        message: String,
    },
    /// Something failed on the way; retrying the same push is safe (HTTP 503).
    Failed {
        /// What.
        message: String,
    },
}

impl PushAnswer {
    /// The result as a metric label: `accepted`, `already` (accepted, the
    /// branch was there: a retry), `contained`, `not_fast_forward`,
    /// `refused`, `invalid` or `failed`.
    pub fn result_label(&self) -> &'static str {
        match self {
            Self::Accepted { already: false, .. } => "accepted",
            Self::Accepted { already: true, .. } => "already",
            Self::Contained { .. } => "contained",
            Self::NotFastForward { .. } => "not_fast_forward",
            Self::Refused { .. } => "refused",
            Self::Invalid { .. } => "invalid",
            Self::Failed { .. } => "failed",
        }
    }
}

/// `GET /status`, the part `xus push` reads (the master sends more).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// Every owned topic.
    pub topics: Vec<TopicSummary>,
    /// The master's BitTorrent port (on its HTTP host), which a writer
    /// dials to hand over its commits; absent from masters before it.
    #[serde(default)]
    pub bittorrent_port: Option<u16>,
}

/// A topic as `GET /status` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopicSummary {
    /// Name on the master.
    pub name: String,
    /// Topic id (public key, hex).
    pub id: String,
    /// Branch tips.
    pub branches: Vec<BranchSummary>,
}

/// A branch tip.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BranchSummary {
    /// Branch name.
    pub name: String,
    /// Commit id, hex.
    pub commit: String,
    /// Seq of the last head published for it, when one was.
    pub seq: Option<i64>,
    /// The commit's committer time (Unix seconds): how old the tip is.
    /// Absent from masters before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_time: Option<i64>,
}
