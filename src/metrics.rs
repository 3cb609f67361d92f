//! What a running seed or topic master tells Prometheus (`GET /metrics`, in
//! the OpenMetrics text format).
//!
//! Events are counted where they happen (pushes, head publishes, DHT
//! operations, webseed bytes); values that already live elsewhere (the
//! BitTorrent session's byte counters, the backup remotes' lag) are read at
//! scrape time by collectors their owners register. One set per process:
//! every xus command runs one swarm, and a process-wide set lets the places
//! that count stay free of plumbing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use tracker_free::{LookupKind, LookupObserver, LookupOutcome};

/// The `Content-Type` of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric name starts with this.
const PREFIX: &str = "xus";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DhtLabels {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

type DurationFamily = Family<KindLabel, Histogram, fn() -> Histogram>;

/// DHT operations take from a few milliseconds (loopback, an early-ending
/// head read) to tens of seconds (a write that waits out silent nodes):
/// 5 ms doubling up to about 41 s.
fn dht_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// What a process reports; see [`global`].
pub struct Metrics {
    registry: Mutex<Registry>,
    pushes: Family<ResultLabel, Counter>,
    head_publishes: Family<ResultLabel, Counter>,
    dht_operations: Family<DhtLabels, Counter>,
    dht_seconds: DurationFamily,
    traffic: Arc<Traffic>,
}

/// The process's metrics, created on first use.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// The DHT observer that feeds [`global`] (see
/// [`tracker_free::Dht::observed_by`]).
pub fn dht_observer() -> Arc<dyn LookupObserver> {
    Arc::new(GlobalObserver)
}

struct GlobalObserver;

impl LookupObserver for GlobalObserver {
    fn observe(&self, kind: LookupKind, outcome: LookupOutcome, took: Duration) {
        global().dht_operation(kind, outcome, took);
    }
}

/// A push's result as a label value: `accepted`, `already` (the branch was
/// there: a retry), `contained`, `not_fast_forward`, `refused`, `invalid`
/// or `failed`.
pub type PushResult = &'static str;

/// Every [`PushResult`].
pub const PUSH_RESULTS: [PushResult; 7] = [
    "accepted",
    "already",
    "contained",
    "not_fast_forward",
    "refused",
    "invalid",
    "failed",
];

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let pushes = Family::<ResultLabel, Counter>::default();
        registry.register(
            "pushes",
            "Pushes a topic master answered, by result",
            pushes.clone(),
        );
        let head_publishes = Family::<ResultLabel, Counter>::default();
        registry.register(
            "head_publishes",
            "Signed branch heads this process published on the DHT, by result (ok, failed)",
            head_publishes.clone(),
        );
        let dht_operations = Family::<DhtLabels, Counter>::default();
        registry.register(
            "dht_operations",
            "DHT lookups and writes this node finished, by kind and outcome",
            dht_operations.clone(),
        );
        let dht_seconds: DurationFamily = Family::new_with_constructor(dht_histogram);
        registry.register_with_unit(
            "dht_operation_duration",
            "How long DHT lookups and writes took, by kind",
            Unit::Seconds,
            dht_seconds.clone(),
        );
        let traffic = Arc::new(Traffic::default());
        registry.register_collector(Box::new(Arc::clone(&traffic)));
        // Every series a scrape may later show is there from the start, at
        // zero: a rate over a series that appears mid-way loses its first
        // increase.
        for result in ["ok", "failed"] {
            let _ = head_publishes.get_or_create(&ResultLabel { result });
        }
        for kind in LookupKind::ALL {
            let _ = dht_seconds.get_or_create(&KindLabel {
                kind: kind.as_str(),
            });
        }
        Self {
            registry: Mutex::new(registry),
            pushes,
            head_publishes,
            dht_operations,
            dht_seconds,
            traffic,
        }
    }

    /// Shows every push result at zero: called by a topic master, the only
    /// process that answers pushes.
    pub fn expect_pushes(&self) {
        for result in PUSH_RESULTS {
            let _ = self.pushes.get_or_create(&ResultLabel { result });
        }
    }

    /// A push was answered with `result`.
    pub fn push(&self, result: PushResult) {
        self.pushes.get_or_create(&ResultLabel { result }).inc();
    }

    /// A head publish ended.
    pub fn head_publish(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.head_publishes
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// A DHT operation ended.
    pub fn dht_operation(&self, kind: LookupKind, outcome: LookupOutcome, took: Duration) {
        self.dht_operations
            .get_or_create(&DhtLabels {
                kind: kind.as_str(),
                outcome: outcome.as_str(),
            })
            .inc();
        self.dht_seconds
            .get_or_create(&KindLabel {
                kind: kind.as_str(),
            })
            .observe(took.as_secs_f64());
    }

    /// `bytes` of commit files were read to answer webseed requests.
    pub fn webseed_sent(&self, bytes: u64) {
        self.traffic
            .webseed_sent
            .fetch_add(bytes, Ordering::Relaxed);
    }

    /// Bytes counted by [`Metrics::webseed_sent`] so far.
    pub fn webseed_sent_bytes(&self) -> u64 {
        self.traffic.webseed_sent.load(Ordering::Relaxed)
    }

    /// A fetch took `bytes` from HTTP webseeds (the BitTorrent session
    /// counts them too: [`Metrics::peer_traffic_from`]'s downloads are
    /// reported without them).
    pub fn webseed_fetched(&self, bytes: u64) {
        self.traffic
            .webseed_fetched
            .fetch_add(bytes, Ordering::Relaxed);
    }

    /// Reads the BitTorrent session's totals from `read` at each scrape
    /// (the last call wins: one session per process).
    pub fn peer_traffic_from(
        &self,
        read: impl Fn() -> Option<PeerTraffic> + Send + Sync + 'static,
    ) {
        *lock(&self.traffic.peers) = Some(Box::new(read));
    }

    /// Adds `collector`'s values to every scrape.
    pub fn register(&self, collector: Box<dyn Collector>) {
        lock(&self.registry).register_collector(collector);
    }

    /// Everything, in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(error) =
            prometheus_client::encoding::text::encode(&mut text, &lock(&self.registry))
        {
            // Only a collector's own formatting error gets here.
            tracing::warn!(%error, "encoding the metrics failed");
        }
        text
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The BitTorrent session's totals since it started.
#[derive(Debug, Clone, Copy, Default)]
pub struct PeerTraffic {
    /// Bytes sent to peers.
    pub uploaded: u64,
    /// Bytes received (from peers and from webseeds bridged into the
    /// session).
    pub downloaded: u64,
    /// Peers connected now.
    pub peers: u64,
}

type PeerTrafficSource = Box<dyn Fn() -> Option<PeerTraffic> + Send + Sync>;

/// Bytes up and down by source, and connected peers.
#[derive(Default)]
struct Traffic {
    webseed_sent: AtomicU64,
    webseed_fetched: AtomicU64,
    peers: Mutex<Option<PeerTrafficSource>>,
}

impl std::fmt::Debug for Traffic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Traffic")
            .field("webseed_sent", &self.webseed_sent)
            .field("webseed_fetched", &self.webseed_fetched)
            .finish_non_exhaustive()
    }
}

impl Collector for Traffic {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let session = lock(&self.peers).as_ref().and_then(|read| read());
        let session = session.unwrap_or_default();
        let webseed_sent = self.webseed_sent.load(Ordering::Relaxed);
        let webseed_fetched = self.webseed_fetched.load(Ordering::Relaxed);
        let by_source = [
            (
                "uploaded_bytes",
                "Bytes sent: to BitTorrent peers, and as webseed answers over HTTP",
                session.uploaded,
                webseed_sent,
            ),
            (
                "downloaded_bytes",
                "Bytes received: from BitTorrent peers, and from HTTP webseeds",
                session.downloaded.saturating_sub(webseed_fetched),
                webseed_fetched,
            ),
        ];
        for (name, help, peers, webseed) in by_source {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (source, value) in [("peers", peers), ("webseed", webseed)] {
                ConstCounter::new(value).encode(family.encode_family(&[("source", source)])?)?;
            }
        }
        let peers = ConstGauge::new(i64::try_from(session.peers).unwrap_or(i64::MAX));
        peers.encode(encoder.encode_descriptor(
            "peers",
            "BitTorrent peers connected now",
            None,
            MetricType::Gauge,
        )?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_has_every_family_and_counts() {
        let metrics = Metrics::new();
        metrics.push("accepted");
        metrics.push("accepted");
        metrics.head_publish(false);
        metrics.dht_operation(
            LookupKind::HeadGet,
            LookupOutcome::Found,
            Duration::from_millis(30),
        );
        metrics.webseed_sent(100);
        metrics.webseed_fetched(40);
        metrics.peer_traffic_from(|| {
            Some(PeerTraffic {
                uploaded: 7,
                downloaded: 50,
                peers: 3,
            })
        });
        let text = metrics.encode();
        for line in [
            "xus_pushes_total{result=\"accepted\"} 2",
            "xus_head_publishes_total{result=\"failed\"} 1",
            "xus_dht_operations_total{kind=\"head_get\",outcome=\"found\"} 1",
            "xus_dht_operation_duration_seconds_count{kind=\"head_get\"} 1",
            "xus_dht_operation_duration_seconds_bucket{le=\"0.04\",kind=\"head_get\"} 1",
            "xus_uploaded_bytes_total{source=\"peers\"} 7",
            "xus_uploaded_bytes_total{source=\"webseed\"} 100",
            "xus_downloaded_bytes_total{source=\"peers\"} 10",
            "xus_downloaded_bytes_total{source=\"webseed\"} 40",
            "xus_peers 3",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
