//! A "webseed peer": a loopback BitTorrent peer that has every piece and gets the bytes from BEP
//! 19 webseeds over HTTP.
//!
//! Engines without webseed support (librqbit) still download from webseeds through it: the
//! engine is told of the bridge's address like any other peer, its own piece picker decides what
//! to ask, and the bridge answers each BEP 3 `request` from HTTP `Range` requests. So webseeds
//! add to the swarm instead of replacing the engine's scheduling.
//!
//! How bytes are fetched: the first request for a block of a piece fetches the *whole* piece
//! (one `Range` request per file segment it spans, on a keep-alive HTTP client), later blocks
//! come from a small LRU of recent pieces, and concurrent requests for one piece share one
//! fetch. Pieces are spread across the webseeds (piece `i` starts at URL `i mod n`), and a
//! failed request moves on to the next URL. When every URL fails, the connection that asked is
//! closed: plain BEP 3 has no way to refuse one request (BEP 6 `reject` is not spoken), and the
//! engine then gets the piece from other peers or reconnects later.
//!
//! Invariant: **the bridge never verifies piece hashes**; the engine does, and must. A webseed
//! serving wrong bytes makes the engine drop this peer, as it would any peer sending bad pieces.
//!
//! Only `http://` works unless the build enables a TLS feature of `reqwest` (the xus binary
//! does, through librqbit's `default-tls`); an `https://` URL otherwise fails at request time and
//! the next URL is tried.
//!
//! ```no_run
//! use std::sync::Arc;
//! use webseed::bridge::{BridgeOptions, LayoutFile, TorrentLayout, WebseedPeer};
//!
//! # async fn run() -> Result<(), webseed::bridge::BridgeError> {
//! let layout = TorrentLayout {
//!     info_hash: [0x42; 20],
//!     name: "0123456789abcdef0123456789abcdef01234567".into(),
//!     piece_length: 256 << 10,
//!     files: vec![LayoutFile { path: vec!["README.md".into()], length: 1234, raw_path: None }],
//! };
//! let urls = vec!["https://seed.example/".to_owned()];
//! let bridge = WebseedPeer::start(Arc::new(layout), urls, BridgeOptions::default()).await?;
//! // Hand `bridge.addr()` to the engine as a peer; the bridge stops when dropped.
//! tracing::info!(peer = %bridge.addr(), "webseed bridge listening");
//! # Ok(())
//! # }
//! ```

use std::io;
use std::sync::Arc;
use std::time::Duration;

mod connection;
mod fetch;
pub mod layout;
mod peer;
pub mod wire;

pub use layout::{LayoutError, LayoutFile, TorrentLayout, raw_url_for, url_for};
pub use peer::WebseedPeer;

/// How a [`WebseedPeer`] behaves; [`Default`] suits one torrent fed to a local engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeOptions {
    /// How many engine connections are served at once (default 8); more wait in the backlog.
    pub max_connections: usize,
    /// How many HTTP requests may be in flight at once, and how many pieces may be assembled at
    /// once (default 4). Bounds the load put on webseeds and the memory held by fetches
    /// (`max_concurrent_fetches` × piece length).
    pub max_concurrent_fetches: usize,
    /// How many recent pieces are kept for later blocks (default 8).
    pub cache_pieces: usize,
    /// How many bytes the piece cache may hold (default 64 MiB); the newest piece is kept even
    /// when it alone is larger, so each piece is fetched once however large.
    pub cache_bytes: u64,
    /// How long the bridge may say nothing before sending a keep-alive (default 60 s). Must stay
    /// below the engine's read timeout (librqbit's default is 10 s; xus sets 150 s), or the
    /// engine drops the bridge while a slow webseed is answering.
    pub keep_alive_interval: Duration,
    /// How long an engine connection may send nothing before it is closed (default 180 s;
    /// engines send keep-alives every 120 s). Also bounds a single blocked write.
    pub idle_timeout: Duration,
    /// HTTP connect timeout, and the longest a response may go without sending a byte (default
    /// 30 s); a request that times out fails over to the next webseed.
    pub http_timeout: Duration,
    /// Which redirect targets are followed (default: any http(s) URL, at most
    /// [`MAX_REDIRECTS`] hops). A webseed URL was checked by whoever gave it; a
    /// redirect is a new address chosen by the server, so an embedder with a dial
    /// policy checks it here too.
    pub redirects: RedirectFilter,
}

/// Most redirects one webseed request follows.
pub const MAX_REDIRECTS: usize = 5;

/// A rule on redirect targets, asked before each hop is followed.
#[derive(Clone, Default)]
pub struct RedirectFilter(Option<AllowUrl>);

/// Whether a redirect target may be followed.
type AllowUrl = Arc<dyn Fn(&str) -> bool + Send + Sync>;

impl RedirectFilter {
    /// Follows a redirect only to URLs for which `allow` returns `true`.
    pub fn new(allow: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(allow)))
    }

    /// The reqwest policy: at most [`MAX_REDIRECTS`] hops, to http(s) URLs this filter allows.
    pub(crate) fn policy(&self) -> reqwest::redirect::Policy {
        let allow = self.0.clone();
        reqwest::redirect::Policy::custom(move |attempt| {
            let url = attempt.url().as_str().to_owned();
            if attempt.previous().len() > MAX_REDIRECTS {
                attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
            } else if !matches!(attempt.url().scheme(), "http" | "https")
                || allow.as_ref().is_some_and(|allow| !allow(&url))
            {
                attempt.error(format!("redirect to {url} refused"))
            } else {
                attempt.follow()
            }
        })
    }
}

impl std::fmt::Debug for RedirectFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "RedirectFilter(checked)"
        } else {
            "RedirectFilter(any http)"
        })
    }
}

/// Two filters are equal when they are the same rule (or both the default).
impl PartialEq for RedirectFilter {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for RedirectFilter {}

impl Default for BridgeOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            max_concurrent_fetches: 4,
            cache_pieces: 8,
            cache_bytes: 64 << 20,
            keep_alive_interval: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(180),
            http_timeout: Duration::from_secs(30),
            redirects: RedirectFilter::default(),
        }
    }
}

/// What a [`WebseedPeer`] has done so far, for progress reports and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BridgeStats {
    /// Piece bytes fetched successfully over HTTP, all webseeds together.
    pub bytes_fetched: u64,
    /// Piece bytes fetched successfully from each webseed, in the order given to
    /// [`WebseedPeer::start`].
    pub per_url: Vec<(String, u64)>,
    /// `piece` messages sent to engines.
    pub requests_served: u64,
    /// HTTP requests that failed (error status, wrong length, network error); each failed over
    /// to the next webseed when there was one.
    pub http_errors: u64,
}

/// Returned by [`WebseedPeer::start`] when the bridge cannot start.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// No webseed URL was given, so no piece could ever be served.
    #[error("no webseed URL was given")]
    NoUrls,
    /// A webseed URL is not an absolute `http://` or `https://` URL.
    #[error("webseed URL '{url}' is not an absolute http:// or https:// URL")]
    Url {
        /// The refused URL.
        url: String,
    },
    /// A limit in [`BridgeOptions`] is zero, which would stall every request.
    #[error("{option} must be at least 1")]
    ZeroLimit {
        /// The option's field name.
        option: &'static str,
    },
    /// The torrent layout cannot be served.
    #[error("the torrent layout cannot be served")]
    Layout(#[from] LayoutError),
    /// The loopback listener could not be bound.
    #[error("could not listen on 127.0.0.1")]
    Bind(#[source] io::Error),
    /// The HTTP client could not be built (its TLS backend failed to initialise).
    #[error("could not build the HTTP client")]
    HttpClient(#[source] reqwest::Error),
}

/// An error and its causes, joined with `: `, for one log field.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
