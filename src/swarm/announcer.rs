//! [`Announcer`]: the one task that keeps this machine's announces alive on
//! the DHT, for a fetch (one infohash) as for a seed or a master (thousands).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracker_free::{Dht, InfoHash};

/// Announces expire from DHT nodes after about 30 minutes.
pub const ANNOUNCE_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// A failed announce is tried again this soon rather than a whole interval
/// later (the DHT may have had no node yet).
const RETRY_FAILED: Duration = Duration::from_secs(60);

/// Announces in flight at once, so that a thousand commits do not flood
/// the DHT.
const CONCURRENT_ANNOUNCES: usize = 32;

/// Announces every added infohash at once, then every
/// [`ANNOUNCE_INTERVAL`] before DHT nodes forget it; those that failed are
/// tried again within [`RETRY_FAILED`]. Stops when dropped.
pub struct Announcer {
    new: mpsc::UnboundedSender<InfoHash>,
    task: tokio::task::JoinHandle<()>,
}

impl Announcer {
    /// Starts announcing on TCP `port` through `dht`.
    pub fn spawn(dht: Arc<Dht>, port: u16) -> Self {
        let (new, incoming) = mpsc::unbounded_channel::<InfoHash>();
        let task = tokio::spawn(announce_loop(dht, port, incoming));
        Self { new, task }
    }

    /// Adds `infohash` to what is announced (now, then periodically).
    pub fn add(&self, infohash: InfoHash) {
        let _ = self.new.send(infohash);
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn announce_loop(dht: Arc<Dht>, port: u16, mut incoming: mpsc::UnboundedReceiver<InfoHash>) {
    let mut all: Vec<InfoHash> = Vec::new();
    let mut failed: Vec<InfoHash> = Vec::new();
    let mut due = Instant::now() + ANNOUNCE_INTERVAL;
    let mut retry_at: Option<Instant> = None;
    loop {
        let batch: Vec<InfoHash> = tokio::select! {
            first = incoming.recv() => {
                let Some(first) = first else { return };
                let mut batch = vec![first];
                while let Ok(more) = incoming.try_recv() {
                    batch.push(more);
                }
                for ih in &batch {
                    if !all.contains(ih) {
                        all.push(*ih);
                    }
                }
                batch
            }
            _ = tokio::time::sleep_until(due) => {
                due = Instant::now() + ANNOUNCE_INTERVAL;
                failed.clear();
                retry_at = None;
                all.clone()
            }
            _ = sleep_until_some(retry_at) => {
                retry_at = None;
                std::mem::take(&mut failed)
            }
        };
        let now_failed = announce_all(&dht, &batch, port).await;
        if !now_failed.is_empty() {
            failed.extend(now_failed);
            failed.sort_by_key(|ih| ih.0);
            failed.dedup();
            retry_at.get_or_insert(Instant::now() + RETRY_FAILED);
        }
    }
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Announces each of `infohashes`, a few at a time; returns those that
/// failed.
async fn announce_all(dht: &Arc<Dht>, infohashes: &[InfoHash], port: u16) -> Vec<InfoHash> {
    let started = std::time::Instant::now();
    let limit = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_ANNOUNCES));
    let mut tasks = tokio::task::JoinSet::new();
    for &infohash in infohashes {
        let (dht, limit) = (dht.clone(), limit.clone());
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            match dht.announce(infohash, port).await {
                Ok(()) => {
                    tracing::debug!(%infohash, port, "announced");
                    None
                }
                Err(error) => {
                    tracing::warn!(%infohash, %error, "DHT announce failed; retrying within a minute");
                    Some(infohash)
                }
            }
        });
    }
    let mut failed = Vec::new();
    while let Some(result) = tasks.join_next().await {
        if let Ok(Some(infohash)) = result {
            failed.push(infohash);
        }
    }
    tracing::info!(
        count = infohashes.len(),
        failed = failed.len(),
        seconds = started.elapsed().as_secs_f64(),
        "announce round done"
    );
    failed
}
