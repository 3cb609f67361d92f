//! The backup remotes' state as metrics, read at each scrape from the same
//! place `GET /status` reads it: an operator alerts on a remote that falls
//! behind or keeps failing.

use std::sync::{Arc, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

use super::backup::RemoteStatus;
use super::state::TopicState;

/// Reads every topic's backup status at scrape time. Holds the topics
/// weakly: a stopped master reports nothing rather than being kept alive.
pub(crate) struct BackupCollector {
    topics: Vec<Weak<TopicState>>,
}

impl BackupCollector {
    pub(crate) fn new(topics: &[Arc<TopicState>]) -> Self {
        Self {
            topics: topics.iter().map(Arc::downgrade).collect(),
        }
    }
}

impl std::fmt::Debug for BackupCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupCollector")
            .field("topics", &self.topics.len())
            .finish()
    }
}

/// One gauge family: its name, help, unit, and value for a remote.
type Gauge = (
    &'static str,
    &'static str,
    Option<Unit>,
    fn(&RemoteStatus, u64) -> Option<i64>,
);

const GAUGES: [Gauge; 5] = [
    (
        "backup_refs_behind",
        "Refs whose value on the backup remote differs from the master's",
        None,
        |r, _| Some(saturating(r.refs_behind as u64)),
    ),
    (
        "backup_commits_behind",
        "Commits on the master that the backup remote's refs do not reach (capped per ref)",
        None,
        |r, _| Some(saturating(r.commits_behind)),
    ),
    (
        "backup_lag",
        "How long the backup remote has been behind (0 when in sync)",
        Some(Unit::Seconds),
        |r, now| {
            Some(
                r.behind_since
                    .map_or(0, |since| saturating(now.saturating_sub(since))),
            )
        },
    ),
    (
        "backup_last_success_timestamp",
        "Unix time of the last attempt that reached the backup remote",
        Some(Unit::Seconds),
        |r, _| r.last_success.map(saturating),
    ),
    (
        "backup_failing",
        "1 while the last attempt to reach the backup remote failed or a ref was refused",
        None,
        |r, _| Some(i64::from(r.last_error.is_some() || !r.refused.is_empty())),
    ),
];

fn saturating(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Collector for BackupCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let remotes: Vec<(String, RemoteStatus)> = self
            .topics
            .iter()
            .filter_map(Weak::upgrade)
            .flat_map(|topic| {
                let name = topic.config.name.clone();
                topic
                    .backups
                    .status()
                    .into_iter()
                    .map(move |remote| (name.clone(), remote))
            })
            .collect();
        for (name, help, unit, value) in GAUGES {
            let mut family =
                encoder.encode_descriptor(name, help, unit.as_ref(), MetricType::Gauge)?;
            for (topic, remote) in &remotes {
                if let Some(value) = value(remote, now) {
                    let labels = [("topic", topic.as_str()), ("remote", remote.url.as_str())];
                    ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }
}
