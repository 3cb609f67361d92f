//! The bridge's lifetime: options checked, listener bound, accept loop run until shutdown.

use std::hash::{BuildHasher, Hasher};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::connection::{self, Shared};
use super::fetch::Fetcher;
use super::layout::TorrentLayout;
use super::{BridgeError, BridgeOptions, BridgeStats};

/// A running webseed peer on `127.0.0.1`: give [`addr`](Self::addr) to the engine as a peer.
///
/// Stops when dropped: the listener closes, connections end and fetches are abandoned. Use
/// [`shutdown`](Self::shutdown) to also wait for that to finish.
pub struct WebseedPeer {
    addr: SocketAddr,
    peer_id: [u8; 20],
    shared: Arc<Shared>,
    stop: CancellationToken,
    accept: Option<JoinHandle<()>>,
}

impl WebseedPeer {
    /// Checks `layout`, `urls` and `options`, binds `127.0.0.1:0` and starts serving.
    ///
    /// `urls` are BEP 19 `url-list` entries: a file's URL is built with
    /// [`url_for`](super::url_for). Must be called within a Tokio runtime, which the bridge's
    /// tasks then run on.
    ///
    /// # Errors
    ///
    /// [`BridgeError`] for an unusable layout, URL list or option, or when the listener or the
    /// HTTP client cannot be set up.
    pub async fn start(
        layout: Arc<TorrentLayout>,
        urls: Vec<String>,
        options: BridgeOptions,
    ) -> Result<Self, BridgeError> {
        layout.check()?;
        check_options(&options)?;
        if urls.is_empty() {
            return Err(BridgeError::NoUrls);
        }
        if let Some(url) = urls.iter().find(|url| !is_http_url(url)) {
            return Err(BridgeError::Url { url: url.clone() });
        }
        let client = reqwest::Client::builder()
            .connect_timeout(options.http_timeout)
            .read_timeout(options.http_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .redirect(options.redirects.policy())
            .user_agent(concat!("xus-webseed-bridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(BridgeError::HttpClient)?;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(BridgeError::Bind)?;
        let addr = listener.local_addr().map_err(BridgeError::Bind)?;
        let stop = CancellationToken::new();
        let peer_id = random_peer_id();
        let shared = Arc::new(Shared {
            fetcher: Arc::new(Fetcher::new(layout, urls, client, &options, stop.clone())),
            peer_id,
            requests_served: AtomicU64::new(0),
            options,
        });
        let span = tracing::info_span!("webseed_peer", %addr);
        let accept =
            tokio::spawn(accept_loop(listener, Arc::clone(&shared), stop.clone()).instrument(span));
        tracing::info!(%addr, "webseed peer listening");
        Ok(Self {
            addr,
            peer_id,
            shared,
            stop,
            accept: Some(accept),
        })
    }

    /// The loopback address engines connect to.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The peer id the bridge sends in its handshake (`-XW0100-` and 12 random characters), so
    /// callers can recognise the bridge among an engine's peers.
    #[must_use]
    pub fn peer_id(&self) -> [u8; 20] {
        self.peer_id
    }

    /// What the bridge has fetched and served so far.
    #[must_use]
    pub fn stats(&self) -> BridgeStats {
        let fetcher = &self.shared.fetcher;
        let per_url = fetcher.per_url();
        BridgeStats {
            bytes_fetched: per_url.iter().map(|(_, bytes)| bytes).sum(),
            per_url,
            requests_served: self.shared.requests_served.load(Ordering::Relaxed),
            http_errors: fetcher.http_errors(),
        }
    }

    /// Stops accepting, closes every connection, abandons fetches, and waits for all of it.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(accept) = self.accept.take() {
            let _ = accept.await;
        }
    }
}

impl Drop for WebseedPeer {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(accept) = &self.accept {
            // Also drops the connection set, aborting connections that have not seen the token.
            accept.abort();
        }
    }
}

impl std::fmt::Debug for WebseedPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebseedPeer")
            .field("addr", &self.addr)
            .field("name", &self.shared.fetcher.layout().name)
            .finish_non_exhaustive()
    }
}

fn check_options(options: &BridgeOptions) -> Result<(), BridgeError> {
    let limits = [
        ("max_connections", options.max_connections as u64),
        (
            "max_concurrent_fetches",
            options.max_concurrent_fetches as u64,
        ),
        ("cache_pieces", options.cache_pieces as u64),
        ("cache_bytes", options.cache_bytes),
        (
            "keep_alive_interval",
            options.keep_alive_interval.as_millis() as u64,
        ),
        ("idle_timeout", options.idle_timeout.as_millis() as u64),
        ("http_timeout", options.http_timeout.as_millis() as u64),
    ];
    match limits.iter().find(|(_, value)| *value == 0) {
        Some((option, _)) => Err(BridgeError::ZeroLimit { option }),
        None => Ok(()),
    }
}

fn is_http_url(url: &str) -> bool {
    reqwest::Url::parse(url)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}

/// An Azureus-style peer id; the random part comes from the standard library's per-process
/// hash keys, which is plenty to avoid colliding with the engine's own id.
fn random_peer_id() -> [u8; 20] {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut id = *b"-XW0100-............";
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    let mut bits = hasher.finish();
    for byte in &mut id[8..] {
        *byte = ALPHABET[(bits % ALPHABET.len() as u64) as usize];
        bits /= ALPHABET.len() as u64;
        if bits == 0 {
            hasher.write_u8(*byte);
            bits = hasher.finish();
        }
    }
    id
}

/// Accepts engine connections, at most `max_connections` at once, until `stop`.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(shared.options.max_connections));
    let mut connections = JoinSet::new();
    loop {
        let slot = tokio::select! {
            () = stop.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: back off rather than spin.
                tracing::warn!(%error, "accepting an engine connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let span = tracing::debug_span!("webseed_connection", %peer);
        let shared = Arc::clone(&shared);
        let stop = stop.clone();
        connections.spawn(
            async move {
                tracing::debug!("engine connected");
                match connection::serve(stream, shared, stop).await {
                    Ok(()) => tracing::debug!("engine connection closed"),
                    Err(error) => tracing::warn!(
                        error = %super::error_chain(&error),
                        "engine connection closed on error"
                    ),
                }
                drop(slot);
            }
            .instrument(span),
        );
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
    tracing::info!("webseed peer stopped");
}
