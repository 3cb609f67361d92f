//! The HTTP service: requests in, headers and streamed bodies out.

mod connections;
pub(crate) mod file_answer;

use std::error::Error;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::base_url;
use crate::blocking::Blocking;
use crate::body::file_body;
use crate::commit::CommitId;
use crate::conditional;
use crate::limit::LimitedListener;
use crate::path::{self, Target};
use crate::source::ByteSource;
use file_answer::{FileAnswer, file_answer};

/// How a server behaves; [`Default`] suits a public seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerOptions {
    /// The URL clients reach this server by (`http://` or `https://`), put in the `url-list`
    /// of served torrents. When `None`, `http://<Host header>/` is used, so a server behind a
    /// proxy that rewrites `Host` or strips a path prefix should set it.
    pub public_url: Option<String>,
    /// How many source calls may run at once across all requests (default 64). Each holds a
    /// blocking-pool thread and up to one 256 KiB buffer, so this bounds both.
    pub max_concurrent_reads: usize,
    /// How many connections may be open at once (default 256); more wait in the backlog.
    /// Keep it well above [`max_connections_per_address`](Self::max_connections_per_address),
    /// so that one address cannot take every slot.
    pub max_connections: usize,
    /// How many connections one client address may hold open at once (default 32; IPv6 clients
    /// count per /64). Connections past it are closed as soon as they are accepted, so a flood
    /// from one address (slow-loris, a broken client) leaves the other slots to everyone else.
    pub max_connections_per_address: usize,
    /// How long a client may take to send a whole request header (default 5 s), counted from
    /// when the connection opens or the previous response on it ends; then the connection is
    /// closed. Without it a slow-loris client, sending a byte now and then to reset
    /// [`idle_timeout`](Self::idle_timeout), would hold its slot forever. It is also how long an
    /// idle keep-alive connection stays open.
    pub header_timeout: Duration,
    /// How long a connection may go without reading or writing a byte while waiting to, before
    /// it is closed (default 60 s). Frees the slots of stalled or silent clients.
    pub idle_timeout: Duration,
    /// How long responses under way may go on streaming once `shutdown` completes (default
    /// 10 s); then they are cut. Without it one client reading a 4 GiB file would hold up the
    /// whole process's exit.
    pub shutdown_grace: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            public_url: None,
            max_concurrent_reads: 64,
            max_connections: 256,
            max_connections_per_address: 32,
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Returned by [`serve`] when the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A limit in [`ServerOptions`] is zero, which would block (or, for
    /// [`header_timeout`](ServerOptions::header_timeout), refuse) every request.
    #[error("{option} must be at least 1")]
    ZeroLimit {
        /// The option's field name.
        option: &'static str,
    },
    /// [`ServerOptions::public_url`] is not an absolute `http://` or `https://` URL.
    #[error("public URL '{url}' is not an absolute http:// or https:// URL")]
    PublicUrl {
        /// The refused URL.
        url: String,
    },
    /// The listener's address could not be read.
    #[error("could not read the listening socket's address")]
    LocalAddr(#[source] io::Error),
}

/// Serves `source` on `listener` until `shutdown` completes, then stops accepting and waits for
/// open responses to finish: idle connections close at once, responses under way get
/// [`ServerOptions::shutdown_grace`] before they are cut, and stalled clients are dropped within
/// [`ServerOptions::idle_timeout`] (or [`ServerOptions::header_timeout`] while a request header
/// is due).
///
/// Answers `GET` and `HEAD` on `/<commit>/<path...>` (a file, with single-range support) and
/// `/<commit>.torrent`. Taking a bound listener lets callers pick the address, and tests bind
/// `127.0.0.1:0`.
///
/// # Errors
///
/// [`ServeError::ZeroLimit`] or [`ServeError::PublicUrl`] for unusable options, before anything is
/// served; [`ServeError::LocalAddr`] when the listener's address cannot be read.
pub async fn serve<S: ByteSource>(
    listener: tokio::net::TcpListener,
    source: Arc<S>,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_with_routes(listener, source, options, Router::new(), shutdown).await
}

/// [`serve`], with `routes` answered before the webseed's own paths, on the same listener and
/// under the same connection limits: a topic master serves its push endpoint next to its
/// webseed this way. Handlers may extract `axum::extract::ConnectInfo<`[`ClientAddr`]`>` (the
/// client's address). `routes` must not set a fallback, and should keep clear of
/// `/<40 hex>/...` and `/<40 hex>.torrent`.
///
/// # Errors
///
/// As [`serve`].
pub async fn serve_with_routes<S: ByteSource>(
    listener: tokio::net::TcpListener,
    source: Arc<S>,
    options: ServerOptions,
    routes: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    check_limits(&options)?;
    let public_url = match &options.public_url {
        Some(url) => Some(
            base_url::normalise_public(url)
                .ok_or_else(|| ServeError::PublicUrl { url: url.clone() })?,
        ),
        None => None,
    };
    let local_addr = listener.local_addr().map_err(ServeError::LocalAddr)?;
    let cut = CancellationToken::new();
    let state = Arc::new(AppState {
        source,
        blocking: Blocking::new(options.max_concurrent_reads),
        public_url,
        local_addr,
        cut: cut.clone(),
    });
    let grace = options.shutdown_grace;
    let shutdown = async move {
        shutdown.await;
        tracing::info!(%local_addr, ?grace, "webseed shutting down");
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            cut.cancel();
        });
    };
    let router = routes.merge(Router::new().fallback(handle::<S>).with_state(state));
    let listener = LimitedListener::new(
        listener,
        options.max_connections,
        options.max_connections_per_address,
        options.idle_timeout,
    );
    tracing::info!(%local_addr, "webseed listening");
    connections::serve(listener, router, options.header_timeout, shutdown).await;
    tracing::info!(%local_addr, "webseed stopped");
    Ok(())
}

/// Serves `routes` alone (any other path is 404, no webseed behind them) under the same
/// connection limits and request-header deadline as [`serve`]: for a side endpoint such as a
/// seed's `/metrics`, which a slow client must not hold either. `public_url`,
/// `max_concurrent_reads` and `shutdown_grace` do not apply. Stops when `shutdown` completes.
///
/// # Errors
///
/// As [`serve`].
pub async fn serve_routes(
    listener: tokio::net::TcpListener,
    options: ServerOptions,
    routes: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    check_limits(&options)?;
    let local_addr = listener.local_addr().map_err(ServeError::LocalAddr)?;
    let listener = LimitedListener::new(
        listener,
        options.max_connections,
        options.max_connections_per_address,
        options.idle_timeout,
    );
    tracing::info!(%local_addr, "HTTP listening");
    connections::serve(listener, routes, options.header_timeout, shutdown).await;
    tracing::info!(%local_addr, "HTTP stopped");
    Ok(())
}

/// Refuses a zero limit, which would block (or refuse) every request.
fn check_limits(options: &ServerOptions) -> Result<(), ServeError> {
    let zero = [
        ("max_concurrent_reads", options.max_concurrent_reads == 0),
        ("max_connections", options.max_connections == 0),
        (
            "max_connections_per_address",
            options.max_connections_per_address == 0,
        ),
        ("header_timeout", options.header_timeout.is_zero()),
    ];
    match zero.into_iter().find(|(_, zero)| *zero) {
        Some((option, _)) => Err(ServeError::ZeroLimit { option }),
        None => Ok(()),
    }
}

/// The address a connection comes from, for routes added with [`serve_with_routes`] (a push
/// endpoint dials the writer back on it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// What every request handler shares.
struct AppState<S: ByteSource> {
    source: Arc<S>,
    blocking: Blocking,
    /// Normalised, with a trailing `/`.
    public_url: Option<String>,
    local_addr: SocketAddr,
    /// Cancelled when the shutdown grace runs out: bodies still streaming stop.
    cut: CancellationToken,
}

/// `Cache-Control` for file responses: a commit's files never change, so caches may keep them.
const IMMUTABLE: HeaderValue = HeaderValue::from_static("public, max-age=31536000, immutable");
const OCTET_STREAM: HeaderValue = HeaderValue::from_static("application/octet-stream");
const BITTORRENT: HeaderValue = HeaderValue::from_static("application/x-bittorrent");
const BYTES: HeaderValue = HeaderValue::from_static("bytes");

/// The one route: dispatches on method, then on what the path names.
async fn handle<S: ByteSource>(
    State(state): State<Arc<AppState<S>>>,
    request: Request,
) -> Response {
    let head = match *request.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => {
            let mut response = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "only GET and HEAD are served\n",
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
    };
    let target = match path::parse(request.uri().path()) {
        Ok(target) => target,
        Err(error) => {
            tracing::debug!(path = request.uri().path(), %error, "refused request path");
            return if error.is_bad_request() {
                text(StatusCode::BAD_REQUEST, "bad path\n")
            } else {
                not_found()
            };
        }
    };
    let headers = request.headers();
    match target {
        Target::File { commit, path } => {
            let span = tracing::debug_span!("file", %commit, path = %path.join("/"), head);
            serve_file(&state, commit, FilePath::Utf8(path), headers, head)
                .instrument(span)
                .await
        }
        Target::RawFile { commit, path } => {
            let shown = String::from_utf8_lossy(&path.join(&b'/')).into_owned();
            let span = tracing::debug_span!("file", %commit, path = %shown, head);
            serve_file(&state, commit, FilePath::Raw(path), headers, head)
                .instrument(span)
                .await
        }
        Target::Torrent { commit } => {
            let span = tracing::debug_span!("torrent", %commit, head);
            serve_torrent(&state, commit, headers, head)
                .instrument(span)
                .await
        }
    }
}

/// A file path as the request named it: UTF-8 names, or raw bytes when some are not.
enum FilePath {
    /// For [`ByteSource::lookup`].
    Utf8(Vec<String>),
    /// For [`ByteSource::lookup_raw`].
    Raw(Vec<Vec<u8>>),
}

/// `GET`/`HEAD /<commit>/<path...>`.
async fn serve_file<S: ByteSource>(
    state: &AppState<S>,
    commit: CommitId,
    path: FilePath,
    headers: &HeaderMap,
    head: bool,
) -> Response {
    let source = Arc::clone(&state.source);
    let found = state
        .blocking
        .run(move || match path {
            FilePath::Utf8(path) => source.lookup(&commit, &path),
            FilePath::Raw(path) => source.lookup_raw(&commit, &path),
        })
        .await;
    let file = match found {
        Ok(Ok(Some(file))) => Arc::new(file),
        Ok(Ok(None)) => return not_found(),
        Ok(Err(error)) => return internal_error("looking up the file failed", &error),
        Err(error) => return internal_error("looking up the file failed", &error),
    };
    let etag = conditional::quote(&file.etag);
    if etag.is_none() {
        tracing::warn!(
            etag = file.etag,
            "the source gave an entity tag that cannot be quoted; sending none"
        );
    }
    let etag = etag.and_then(|etag| HeaderValue::try_from(etag).ok());

    let mut response = Response::new(Body::empty());
    let response_headers = response.headers_mut();
    response_headers.insert(header::ACCEPT_RANGES, BYTES);
    let (status, start, len) = match file_answer(headers, etag.as_ref(), file.len, head) {
        FileAnswer::NotModified => {
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            let response_headers = response.headers_mut();
            if let Some(etag) = etag {
                response_headers.insert(header::ETAG, etag);
            }
            response_headers.insert(header::CACHE_CONTROL, IMMUTABLE);
            // The length a 200 would have, as RFC 9110 §8.6 allows; it also stops the framework
            // from announcing 0.
            response_headers.insert(header::CONTENT_LENGTH, HeaderValue::from(file.len));
            return response;
        }
        FileAnswer::Full => (StatusCode::OK, 0, file.len),
        FileAnswer::Partial { start, end } => {
            let content_range = format!("bytes {start}-{end}/{}", file.len);
            response
                .headers_mut()
                .insert(header::CONTENT_RANGE, header_value(content_range));
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        FileAnswer::Unsatisfiable => {
            *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            let content_range = format!("bytes */{}", file.len);
            let response_headers = response.headers_mut();
            response_headers.insert(header::CONTENT_RANGE, header_value(content_range));
            response_headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
            return response;
        }
    };
    *response.status_mut() = status;
    let response_headers = response.headers_mut();
    if let Some(etag) = etag {
        response_headers.insert(header::ETAG, etag);
    }
    response_headers.insert(header::CACHE_CONTROL, IMMUTABLE);
    response_headers.insert(header::CONTENT_TYPE, OCTET_STREAM);
    response_headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if !head && len > 0 {
        *response.body_mut() = file_body(
            Arc::clone(&state.source),
            file,
            start,
            len,
            state.blocking.clone(),
            state.cut.clone(),
        );
    }
    response
}

/// `GET`/`HEAD /<commit>.torrent`.
async fn serve_torrent<S: ByteSource>(
    state: &AppState<S>,
    commit: CommitId,
    headers: &HeaderMap,
    head: bool,
) -> Response {
    let base = match &state.public_url {
        Some(url) => url.clone(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|host| host.to_str().ok());
            base_url::from_host(host, state.local_addr)
        }
    };
    let source = Arc::clone(&state.source);
    let built = state
        .blocking
        .run(move || source.torrent(&commit, &[base]))
        .await;
    let torrent = match built {
        Ok(Ok(Some(torrent))) => torrent,
        Ok(Ok(None)) => return not_found(),
        Ok(Err(error)) => return internal_error("building the torrent failed", &error),
        Err(error) => return internal_error("building the torrent failed", &error),
    };
    let len = torrent.len() as u64;
    let body = if head {
        Body::empty()
    } else {
        Body::from(torrent)
    };
    let mut response = Response::new(body);
    let response_headers = response.headers_mut();
    response_headers.insert(header::CONTENT_TYPE, BITTORRENT);
    response_headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    response
}

/// A header value from text made of digits, spaces and ASCII punctuation.
fn header_value(text: String) -> HeaderValue {
    HeaderValue::try_from(text).expect("range headers are built from ASCII digits")
}

fn text(status: StatusCode, message: &'static str) -> Response {
    let mut response = Response::new(Body::from(message));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "not found\n")
}

/// Logs a source failure with its causes and answers `500` without exposing them.
fn internal_error(what: &'static str, error: &(dyn Error + 'static)) -> Response {
    tracing::error!(what, error, "a source call failed");
    text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_options_match_the_docs() {
        let options = ServerOptions::default();
        assert_eq!(options.max_concurrent_reads, 64);
        assert_eq!(options.max_connections, 256);
        assert_eq!(options.max_connections_per_address, 32);
        assert_eq!(options.header_timeout, Duration::from_secs(5));
        assert_eq!(options.idle_timeout, Duration::from_secs(60));
        assert_eq!(options.public_url, None);
        assert_eq!(options.shutdown_grace, Duration::from_secs(10));
    }
}
