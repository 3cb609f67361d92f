//! The BitTorrent engine: a librqbit session configured for xus (no
//! trackers but the loopback peer feed, LSD multicast unless asked not to,
//! no UPnP, TCP and uTP on the address asked for), and the handful of calls the pipelines need.
//!
//! Exactly two modules know librqbit's API: this one (sessions, torrents,
//! metadata, progress) and [`crate::swarm::storage`], which implements its
//! `StorageFactory` / `TorrentStorage` traits over Git. Everything else
//! uses [`Engine`], [`Progress`] and the [`TorrentHandle`] alias, so a
//! version bump or an engine swap touches those two files. (The loopback
//! peer feed in [`crate::swarm::discovery::feed`] speaks HTTP tracker
//! protocol to librqbit, not its API.)

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use librqbit::{
    AddTorrent, AddTorrentOptions, AddTorrentResponse, ListenerMode, ListenerOptions,
    ManagedTorrent, Session, SessionOptions,
};

use crate::swarm::storage::GitStorageFactory;
use crate::torrent::info_hash::InfoHash;

/// How the engine listens and whom it may dial.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// TCP address for incoming peers; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Scratch directory librqbit may use (it writes nothing there with Git storage).
    pub work_dir: PathBuf,
    /// Speed caps for the whole session.
    pub rates: RateLimits,
    /// Find peers on the local network segment by multicast (BEP 14, local
    /// service discovery), with no DHT and no peer given. Always off under
    /// the test guard ([`crate::swarm::dial_policy::loopback_only`]): its
    /// announces would leave 127.0.0.0/8.
    pub lsd: bool,
}

/// Speed caps, bytes per second; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default)]
pub struct RateLimits {
    /// Upload cap.
    pub upload_bps: Option<u32>,
    /// Download cap.
    pub download_bps: Option<u32>,
}

/// How long a connected peer may say nothing before it is dropped: the
/// 2-minute keep-alive interval of BEP 3, plus slack.
pub const PEER_SILENCE_TIMEOUT: Duration = Duration::from_secs(150);

/// How long an incoming connection has to send its whole handshake (and find
/// its torrent live): a real peer sends it at once, so this only bounds what
/// a half-open connection can hold (librqbit patched for it, see
/// `vendor/librqbit/XUS-PATCH.md`).
pub const INCOMING_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Pending incoming handshakes one IP address may hold: enough for a few
/// peers behind one NAT, too few for one host to take every slot.
pub const PENDING_HANDSHAKES_PER_IP: usize = 16;

/// Pending incoming handshakes in all: bounds the sockets and memory a flood
/// from many addresses can hold; connections past it wait unread in the
/// kernel's accept queue until a slot frees (at worst one handshake
/// deadline later).
pub const PENDING_HANDSHAKES_IN_ALL: usize = 256;

/// How often a torrent asks the loopback peer feed for new peers.
const FEED_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// How often a metered torrent's upload is read while it uploads: a small
/// update goes out in far less, so the budget is overshot by what peers
/// take meanwhile.
const METER_POLL: Duration = Duration::from_millis(50);

/// How often it is read once idle for [`METER_BUSY`]: the first copies of
/// a burst go out unmetered for up to this long.
const METER_IDLE_POLL: Duration = Duration::from_millis(250);

/// How long after its last upload a metered torrent counts as busy.
const METER_BUSY: Duration = Duration::from_secs(5);

/// A session's totals since it started, and its rates now.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct SessionTraffic {
    /// Bytes sent to peers.
    pub uploaded: u64,
    /// Bytes received (webseeds bridged into the session included).
    pub downloaded: u64,
    /// Peers connected now.
    pub peers: u64,
    /// Upload rate, bytes per second (librqbit's moving estimate).
    pub upload_per_second: u64,
    /// Download rate, bytes per second.
    pub download_per_second: u64,
}

/// A running BitTorrent session.
pub struct Engine {
    session: Arc<Session>,
    lsd: bool,
}

/// A torrent inside the engine.
pub type TorrentHandle = Arc<ManagedTorrent>;

/// Progress of one torrent, in bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    /// Bytes verified and held (including those found locally at start).
    pub have: u64,
    /// Payload size.
    pub total: u64,
    /// Bytes received from peers.
    pub fetched: u64,
    /// Bytes sent to peers.
    pub uploaded: u64,
    /// Peers connected now.
    pub peers: usize,
    /// Whether every piece is held.
    pub finished: bool,
}

impl Engine {
    /// Starts a session listening on `config.listen`.
    pub async fn start(config: &EngineConfig) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.work_dir)
            .with_context(|| format!("creating {}", config.work_dir.display()))?;
        let lsd = config.lsd && !crate::swarm::dial_policy::loopback_only();
        let options = SessionOptions {
            dht: None,
            // Trackers stay on for one reason: a torrent may name xus's own
            // loopback peer feed (see `discovery::feed`), the only way to hand
            // peers found later on the DHT to a running librqbit torrent.
            // The session itself knows no tracker, and xus never passes a
            // torrent's own announce URLs through.
            disable_trackers: false,
            disable_local_service_discovery: !lsd,
            fastresume: false,
            persistence: None,
            listen: Some(ListenerOptions {
                // uTP (BEP 29) on the same port: peers that speak only uTP
                // reach xus; xus dials TCP first, uTP after a second.
                mode: ListenerMode::TcpAndUtp,
                listen_addr: config.listen,
                enable_upnp_port_forwarding: false,
                ipv4_only: config.listen.is_ipv4(),
                incoming_handshake_timeout: INCOMING_HANDSHAKE_TIMEOUT,
                max_pending_incoming_handshake_checks_per_ip: PENDING_HANDSHAKES_PER_IP,
                max_pending_incoming_handshake_checks: PENDING_HANDSHAKES_IN_ALL,
                ..Default::default()
            }),
            ipv4_only: config.listen.is_ipv4(),
            connect: Some(librqbit::ConnectionOptions {
                peer_opts: Some(librqbit::PeerConnectionOptions {
                    // BEP 3 peers may stay silent for two minutes between
                    // keep-alives, and Transmission says nothing until its
                    // first rechoke, about 10 s in: librqbit's default 10 s
                    // read timeout drops such peers, and a finished torrent
                    // never dials them again.
                    read_write_timeout: Some(PEER_SILENCE_TIMEOUT),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ratelimits: librqbit::limits::LimitsConfig {
                upload_bps: config.rates.upload_bps.and_then(std::num::NonZeroU32::new),
                download_bps: config
                    .rates
                    .download_bps
                    .and_then(std::num::NonZeroU32::new),
            },
            client_name_and_version: Some(format!("xus {}", env!("CARGO_PKG_VERSION"))),
            // Peers the session learns by itself (PEX above all: any peer
            // may list any address) pass the same rule as every other dial.
            outgoing_peer_filter: Some(Arc::new(|addr| {
                crate::swarm::dial_policy::check_peer(addr).is_ok()
            })),
            ..Default::default()
        };
        let session = Session::new_with_opts(config.work_dir.clone(), options)
            .await
            .with_context(|| format!("starting BitTorrent session on {}", config.listen))?;
        let watched = Arc::downgrade(&session);
        crate::metrics::global().peer_traffic_from(move || {
            let stats = watched.upgrade()?.stats_snapshot();
            Some(crate::metrics::PeerTraffic {
                uploaded: stats.counters.uploaded_bytes,
                downloaded: stats.counters.fetched_bytes,
                peers: u64::from(stats.peers.live),
            })
        });
        Ok(Self { session, lsd })
    }

    /// Whether the session looks for peers on the local network (BEP 14):
    /// a fetch with no DHT and no peer given can still find one.
    pub fn finds_lan_peers(&self) -> bool {
        self.lsd
    }

    /// The address peers can reach this session at.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.session.listen_addr()
    }

    /// The session's totals and current rates, for a master's status.
    pub fn traffic(&self) -> SessionTraffic {
        let stats = self.session.stats_snapshot();
        SessionTraffic {
            uploaded: stats.counters.uploaded_bytes,
            downloaded: stats.counters.fetched_bytes,
            peers: u64::from(stats.peers.live),
            upload_per_second: stats.upload_speed.as_bytes(),
            download_per_second: stats.download_speed.as_bytes(),
        }
    }

    /// Bytes sent to peers since the session started: a topic master
    /// reports it, to show how much of a swarm's traffic it carries.
    pub fn uploaded_bytes(&self) -> u64 {
        self.session.stats_snapshot().counters.uploaded_bytes
    }

    /// Adds a torrent whose bytes are stored by `storage`, dialing `peers`
    /// and polling `feed` (a loopback peer feed URL) for more; `peer_limit`
    /// caps its live connections (librqbit's default, 128, when `None`).
    /// Returns the live handle and what the start-up hash check found: the
    /// torrent is added paused and started only after that is read, so no
    /// piece a peer sends can pass for one that was already here.
    pub async fn add(
        &self,
        torrent_file: Vec<u8>,
        storage: GitStorageFactory,
        peers: &[SocketAddr],
        feed: Option<&str>,
        peer_limit: Option<usize>,
    ) -> anyhow::Result<(TorrentHandle, Progress)> {
        use librqbit::storage::StorageFactoryExt;
        let peers = dialable(peers);
        let options = AddTorrentOptions {
            overwrite: true,
            trackers: feed.map(|url| vec![url.to_string()]),
            force_tracker_interval: feed.map(|_| FEED_POLL_INTERVAL),
            initial_peers: (!peers.is_empty()).then_some(peers),
            storage_factory: Some(storage.boxed()),
            paused: true,
            peer_limit,
            ..Default::default()
        };
        let response = self
            .session
            .add_torrent(
                AddTorrent::TorrentFileBytes(Bytes::from(torrent_file)),
                Some(options),
            )
            .await
            .context("adding torrent to the BitTorrent session")?;
        let handle = response
            .into_handle()
            .context("BitTorrent session returned no torrent handle")?;
        handle
            .wait_until_initialized()
            .await
            .context("checking pieces already held")?;
        let at_start = Self::progress(&handle);
        self.session
            .unpause(&handle)
            .await
            .context("starting the torrent")?;
        Ok((handle, at_start))
    }

    /// Asks `peers` for the info dictionary of `info_hash` (BEP 9) and returns
    /// its bytes, unverified beyond their SHA-1, plus the peers that answered.
    pub async fn resolve_metadata(
        &self,
        info_hash: InfoHash,
        peers: &[SocketAddr],
        feed: Option<&str>,
        timeout: Duration,
    ) -> anyhow::Result<(Vec<u8>, Vec<SocketAddr>)> {
        // librqbit reads a magnet's trackers from the link itself and
        // ignores `AddTorrentOptions::trackers` for it.
        let mut magnet = format!("magnet:?xt=urn:btih:{info_hash}");
        if let Some(url) = feed {
            magnet.push_str("&tr=");
            magnet.push_str(&xus_codec::percent::encode(url.as_bytes()));
        }
        let peers = dialable(peers);
        let options = AddTorrentOptions {
            list_only: true,
            force_tracker_interval: feed.map(|_| FEED_POLL_INTERVAL),
            initial_peers: (!peers.is_empty()).then_some(peers),
            ..Default::default()
        };
        let response = tokio::time::timeout(
            timeout,
            self.session
                .add_torrent(AddTorrent::from_url(magnet), Some(options)),
        )
        .await
        .with_context(|| format!("no peer sent the metadata of {info_hash} within {timeout:?}"))?
        .with_context(|| format!("fetching the metadata of {info_hash} from peers"))?;
        match response {
            AddTorrentResponse::ListOnly(list) => {
                let info = crate::torrent::format::info_from_torrent_file(&list.torrent_bytes)
                    .context("reading the metadata peers sent")?;
                Ok((info.to_vec(), list.seen_peers))
            }
            _ => anyhow::bail!("BitTorrent session did not return metadata for {info_hash}"),
        }
    }

    /// Where a torrent stands.
    pub fn progress(handle: &TorrentHandle) -> Progress {
        let stats = handle.stats();
        let live = stats.live.as_ref();
        Progress {
            have: stats.progress_bytes,
            total: stats.total_bytes,
            fetched: live.map(|l| l.snapshot.fetched_bytes).unwrap_or(0),
            uploaded: stats.uploaded_bytes,
            peers: live
                .map(|l| l.snapshot.peer_stats.live as usize)
                .unwrap_or(0),
            finished: stats.finished,
        }
    }

    /// Makes this download start at `start` bytes into file `file_index`
    /// and move on from there as it progresses, wrapping at the end,
    /// instead of librqbit's fixed order (files by name; in each, first,
    /// last, then the rest). Peers that start together then hold different
    /// pieces and can trade them, rather than all asking the seed for the
    /// same ones. It uses librqbit's stream priorities (a stream's next
    /// 32 MiB go first) without reading the stream. Stops when the download
    /// completes or the returned task is aborted.
    pub async fn spread_start(
        handle: &TorrentHandle,
        file_index: usize,
        file_len: u64,
        start: u64,
    ) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        use tokio::io::AsyncSeekExt;
        anyhow::ensure!(file_len > 0, "file {file_index} is empty");
        let mut stream = Arc::clone(handle)
            .stream(file_index)
            .await
            .with_context(|| format!("opening a stream on file {file_index}"))?;
        let start = start % file_len;
        stream.seek(std::io::SeekFrom::Start(start)).await?;
        let handle = Arc::clone(handle);
        let base = Engine::progress(&handle).have;
        Ok(tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let progress = Engine::progress(&handle);
                if progress.finished {
                    return;
                }
                let position = (start + progress.have.saturating_sub(base)) % file_len;
                if let Err(error) = stream.seek(std::io::SeekFrom::Start(position)).await {
                    tracing::debug!(%error, "moving the download's start failed");
                    return;
                }
            }
        }))
    }

    /// Lets `handle` upload about `budget` bytes, then pauses it for
    /// `pause` (its connections close and new ones are refused), then
    /// serves again with a fresh budget. An origin thus hands out a few
    /// copies of a torrent and leaves the rest to the peers that took them,
    /// and never refuses anyone for longer than `pause`. Runs until the
    /// returned task is aborted or the torrent leaves the session.
    pub fn meter_uploads(
        &self,
        handle: TorrentHandle,
        budget: u64,
        pause: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let session = Arc::clone(&self.session);
        tokio::spawn(async move {
            let mut spent_before = handle.stats().uploaded_bytes;
            let (mut last_seen, mut last_change) = (spent_before, Instant::now());
            loop {
                // Read often while it uploads, rarely while idle: a master
                // meters every update it ever published.
                let busy = last_change.elapsed() < METER_BUSY;
                tokio::time::sleep(if busy { METER_POLL } else { METER_IDLE_POLL }).await;
                let uploaded = handle.stats().uploaded_bytes;
                if uploaded != last_seen {
                    (last_seen, last_change) = (uploaded, Instant::now());
                }
                if uploaded.saturating_sub(spent_before) < budget {
                    continue;
                }
                tracing::debug!(uploaded, "upload budget spent; pausing");
                if let Err(error) = session.pause(&handle).await {
                    tracing::debug!(%error, "cannot pause a metered torrent");
                    return;
                }
                tokio::time::sleep(pause).await;
                if let Err(error) = session.unpause(&handle).await {
                    tracing::warn!(error = %format!("{error:#}"), "cannot resume a metered torrent");
                    return;
                }
                spent_before = handle.stats().uploaded_bytes;
                last_seen = spent_before;
            }
        })
    }

    /// Waits until every piece of `handle` is held and verified.
    pub async fn wait_complete(handle: &TorrentHandle) -> anyhow::Result<()> {
        handle.wait_until_completed().await
    }

    /// Dials `peer` now for each of `torrents` that is running, even if an
    /// earlier dial failed: a seed's only way to reach a peer that cannot
    /// dial it (a master taking a push from a writer behind NAT). Returns
    /// how many dials started (none while one is under way or connected,
    /// or when the dial policy refuses `peer`). One pass over the session's
    /// torrents, however many are named.
    pub fn dial(&self, torrents: &std::collections::HashSet<InfoHash>, peer: SocketAddr) -> usize {
        if dialable(&[peer]).is_empty() {
            return 0;
        }
        let running: Vec<_> = self.session.with_torrents(|all| {
            all.filter(|(_, t)| torrents.contains(&InfoHash(t.info_hash().0)))
                .filter_map(|(_, t)| t.live())
                .collect()
        });
        running
            .iter()
            .filter(|live| match live.dial_peer(peer) {
                Ok(started) => started,
                Err(error) => {
                    tracing::debug!(%peer, %error, "not dialling");
                    false
                }
            })
            .count()
    }

    /// Removes a torrent (keeping its data).
    pub async fn remove(&self, info_hash: InfoHash) -> anyhow::Result<()> {
        let id = librqbit::dht::Id20::new(info_hash.0);
        self.session.delete(id.into(), false).await
    }

    /// Stops the session and every torrent in it. librqbit's own `stop`
    /// sleeps a second for its tasks to wind down; xus has nothing for them
    /// to flush (storage writes are synchronous and verified data is already
    /// in Git), so cancelling is enough.
    pub async fn stop(self) {
        self.session.cancellation_token().cancel();
        tokio::task::yield_now().await;
    }
}

/// The peers the engine may dial: the last check of the dial policy before
/// librqbit connects (callers report refusals to the user; this only logs).
fn dialable(peers: &[SocketAddr]) -> Vec<SocketAddr> {
    crate::swarm::dial_policy::admit_peers(peers.iter().copied(), |peer, why| {
        tracing::warn!(%peer, %why, "not dialling");
    })
}
