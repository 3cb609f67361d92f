//! Whole pieces over HTTP: one `Range` request per file segment, spread across the webseeds with
//! failover, one fetch in flight per piece, and a small LRU of recent pieces.
//!
//! A file with a [`raw_path`](super::LayoutFile::raw_path) (a name that is not UTF-8) is asked
//! for under its raw name first, as static servers over a checkout have it, then under its
//! torrent path, as older `xus webseed`s serve it; a client error on one name is not a failure
//! of the webseed until the other name fails too.
//!
//! Memory stays bounded: the cache holds at most `cache_pieces` pieces and `cache_bytes` bytes
//! (the newest piece is kept even if it alone is larger), at most `max_concurrent_fetches`
//! pieces are assembled at once, and a response body is read chunk by chunk into a buffer of
//! exactly the segment's size, never more.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use lru::LruCache;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT_ENCODING, CONTENT_RANGE, RANGE};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::BridgeOptions;
use super::layout::{FileStarts, LayoutFile, Segment, TorrentLayout, raw_url_for, url_for};

/// How long a webseed that just failed is tried after the others.
const URL_BACKOFF: Duration = Duration::from_secs(30);

/// How many leading bytes of a file the bridge reads and throws away when a server ignores
/// `Range` and answers `200` with the whole file. Past this, the answer counts as a failure:
/// reading a large file to use its tail would waste the bandwidth webseeds are short of.
const MAX_IGNORED_RANGE_SKIP: u64 = 1 << 20;

/// Why one HTTP request for one segment failed; the next webseed is tried.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    #[error("the request failed")]
    Request(#[source] reqwest::Error),
    #[error("the server answered {status}")]
    Status { status: StatusCode },
    #[error("Content-Range {got:?} does not match the requested bytes {first}-{last}/{file_len}")]
    ContentRange {
        got: Option<String>,
        first: u64,
        last: u64,
        file_len: u64,
    },
    #[error(
        "the server ignores Range (answered 200) and the segment starts {offset} bytes into the file"
    )]
    IgnoresRange { offset: u64 },
    #[error("the server sent {got} bytes where {expected} were expected")]
    Length { got: u64, expected: u64 },
    #[error("reading the response body failed")]
    Body(#[source] reqwest::Error),
}

/// Why a piece could not be fetched. Cloned to every request waiting on the piece.
#[derive(Clone, Debug, thiserror::Error)]
pub(crate) enum PieceError {
    #[error("every webseed failed for piece {piece} (file '{path}')")]
    AllFailed {
        piece: u32,
        path: String,
        #[source]
        last: Arc<HttpError>,
    },
    #[error("the bridge is stopping")]
    Stopped,
    /// A piece index or length the layout does not have; callers check first, so this is a bug.
    #[error("piece {piece} is not in the torrent")]
    NoSuchPiece { piece: u32 },
}

/// One webseed base URL and what it has done.
struct Webseed {
    base: String,
    bytes: AtomicU64,
    /// Until when this webseed goes after the others, after a failure.
    backoff_until: Mutex<Option<Instant>>,
    /// Whether a file with a raw name was last served here under its torrent path rather than
    /// its raw name (a `xus webseed` from before raw names): then the torrent path is asked
    /// first, so such a server costs one extra request, not one per segment.
    torrent_names_first: AtomicBool,
}

type Pending = watch::Receiver<Option<Result<Bytes, PieceError>>>;

/// Cached and in-flight pieces; both behind one lock so a piece moves from one to the other
/// atomically and is never fetched twice at once.
struct Pieces {
    cache: LruCache<u32, Bytes>,
    cached_bytes: u64,
    in_flight: HashMap<u32, Pending>,
}

/// Fetches whole pieces for the bridge's connections.
pub(crate) struct Fetcher {
    layout: Arc<TorrentLayout>,
    starts: FileStarts,
    webseeds: Vec<Webseed>,
    client: reqwest::Client,
    pieces: Mutex<Pieces>,
    cache_pieces: usize,
    cache_bytes: u64,
    /// HTTP requests in flight.
    http_permits: Semaphore,
    /// Pieces being assembled, each holding up to a piece of memory.
    assembly_permits: Semaphore,
    http_errors: AtomicU64,
    stop: CancellationToken,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing under these locks can panic half-way through an update, so a poisoned lock still
    // holds consistent data.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Fetcher {
    pub(crate) fn new(
        layout: Arc<TorrentLayout>,
        urls: Vec<String>,
        client: reqwest::Client,
        options: &BridgeOptions,
        stop: CancellationToken,
    ) -> Self {
        Self {
            starts: FileStarts::new(&layout),
            layout,
            webseeds: urls
                .into_iter()
                .map(|base| Webseed {
                    base,
                    bytes: AtomicU64::new(0),
                    backoff_until: Mutex::new(None),
                    torrent_names_first: AtomicBool::new(false),
                })
                .collect(),
            client,
            pieces: Mutex::new(Pieces {
                cache: LruCache::unbounded(),
                cached_bytes: 0,
                in_flight: HashMap::new(),
            }),
            cache_pieces: options.cache_pieces,
            cache_bytes: options.cache_bytes,
            http_permits: Semaphore::new(options.max_concurrent_fetches),
            assembly_permits: Semaphore::new(options.max_concurrent_fetches),
            http_errors: AtomicU64::new(0),
            stop,
        }
    }

    pub(crate) fn layout(&self) -> &TorrentLayout {
        &self.layout
    }

    /// The length of piece `piece`, `None` past the end; constant time.
    pub(crate) fn piece_size(&self, piece: u32) -> Option<u64> {
        self.starts.piece_size(&self.layout, piece)
    }

    /// Bytes fetched successfully from each webseed, in the order given.
    pub(crate) fn per_url(&self) -> Vec<(String, u64)> {
        self.webseeds
            .iter()
            .map(|w| (w.base.clone(), w.bytes.load(Ordering::Relaxed)))
            .collect()
    }

    pub(crate) fn http_errors(&self) -> u64 {
        self.http_errors.load(Ordering::Relaxed)
    }

    /// The whole of piece `piece`: from the cache, from a fetch already under way, or from a new
    /// fetch that outlives the caller (so a dropped connection does not waste it).
    pub(crate) async fn piece(self: &Arc<Self>, piece: u32) -> Result<Bytes, PieceError> {
        let mut pending = {
            let mut pieces = lock(&self.pieces);
            if let Some(bytes) = pieces.cache.get(&piece) {
                return Ok(bytes.clone());
            }
            match pieces.in_flight.get(&piece) {
                Some(pending) => pending.clone(),
                None => {
                    let (done, pending) = watch::channel(None);
                    pieces.in_flight.insert(piece, pending.clone());
                    let this = Arc::clone(self);
                    let span = tracing::debug_span!("webseed_piece", piece);
                    tokio::spawn(
                        async move {
                            let result = tokio::select! {
                                result = this.fetch(piece) => result,
                                () = this.stop.cancelled() => Err(PieceError::Stopped),
                            };
                            this.finish(piece, &result);
                            match &result {
                                Ok(bytes) => tracing::debug!(len = bytes.len(), "piece fetched"),
                                Err(error) => tracing::debug!(%error, "piece fetch ended"),
                            }
                            // Nobody waiting is fine: the piece is cached for later requests.
                            let _ = done.send(Some(result));
                        }
                        .instrument(span),
                    );
                    pending
                }
            }
        };
        match pending.wait_for(Option::is_some).await {
            Ok(result) => result.clone().unwrap_or(Err(PieceError::Stopped)),
            // The fetch task was dropped without an answer: the runtime is shutting down.
            Err(_) => Err(PieceError::Stopped),
        }
    }

    /// Moves a finished piece from in-flight to the cache, evicting the least recently used
    /// pieces beyond the limits.
    fn finish(&self, piece: u32, result: &Result<Bytes, PieceError>) {
        let mut pieces = lock(&self.pieces);
        pieces.in_flight.remove(&piece);
        let Ok(bytes) = result else { return };
        pieces.cached_bytes += bytes.len() as u64;
        if let Some(old) = pieces.cache.put(piece, bytes.clone()) {
            pieces.cached_bytes -= old.len() as u64;
        }
        while pieces.cache.len() > 1
            && (pieces.cache.len() > self.cache_pieces || pieces.cached_bytes > self.cache_bytes)
        {
            if let Some((_, old)) = pieces.cache.pop_lru() {
                pieces.cached_bytes -= old.len() as u64;
            }
        }
    }

    /// Fetches every segment of a piece concurrently and joins them.
    async fn fetch(self: &Arc<Self>, piece: u32) -> Result<Bytes, PieceError> {
        let _assembling = self
            .assembly_permits
            .acquire()
            .await
            .map_err(|_| PieceError::Stopped)?;
        let size = self
            .piece_size(piece)
            .ok_or(PieceError::NoSuchPiece { piece })?;
        let segments = self
            .starts
            .segments(&self.layout, piece, 0, size)
            .map_err(|_| PieceError::NoSuchPiece { piece })?;
        let mut parts: Vec<Option<Bytes>> = vec![None; segments.len()];
        // Dropping the set (on error or cancellation) aborts the other segments' requests.
        let mut tasks = JoinSet::new();
        for (index, segment) in segments.into_iter().enumerate() {
            let this = Arc::clone(self);
            tasks.spawn(
                async move { (index, this.fetch_segment(piece, segment).await) }.in_current_span(),
            );
        }
        while let Some(joined) = tasks.join_next().await {
            let (index, part) = joined.map_err(|_| PieceError::Stopped)?;
            if let Some(slot) = parts.get_mut(index) {
                *slot = Some(part?);
            }
        }
        let parts: Vec<Bytes> = parts.into_iter().flatten().collect();
        let whole = match <[Bytes; 1]>::try_from(parts) {
            Ok([only]) => only,
            Err(parts) => {
                let mut whole = BytesMut::with_capacity(size as usize);
                for part in parts {
                    whole.extend_from_slice(&part);
                }
                whole.freeze()
            }
        };
        if whole.len() as u64 != size {
            return Err(PieceError::NoSuchPiece { piece });
        }
        Ok(whole)
    }

    /// The webseeds to try for a piece: starting at `piece mod n` so pieces spread evenly, with
    /// webseeds that failed recently moved last.
    fn order(&self, piece: u32) -> Vec<usize> {
        let count = self.webseeds.len();
        let now = Instant::now();
        let first = piece as usize % count.max(1);
        let mut order: Vec<usize> = (0..count).map(|k| (first + k) % count).collect();
        order.sort_by_key(|&i| {
            lock(&self.webseeds[i].backoff_until).is_some_and(|until| until > now)
        });
        order
    }

    /// One segment, from the first webseed that serves it.
    async fn fetch_segment(&self, piece: u32, segment: Segment) -> Result<Bytes, PieceError> {
        let file = &self.layout.files[segment.file];
        let mut last = None;
        for index in self.order(piece) {
            let webseed = &self.webseeds[index];
            match self.fetch_from(webseed, piece, segment, file).await? {
                Ok(bytes) => {
                    webseed
                        .bytes
                        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    *lock(&webseed.backoff_until) = None;
                    return Ok(bytes);
                }
                Err((url, error)) => {
                    self.http_errors.fetch_add(1, Ordering::Relaxed);
                    *lock(&webseed.backoff_until) = Some(Instant::now() + URL_BACKOFF);
                    tracing::warn!(
                        piece,
                        %url,
                        offset = segment.offset,
                        length = segment.length,
                        error = %super::error_chain(&error),
                        "webseed request failed"
                    );
                    last = Some(error);
                }
            }
        }
        let last = last.unwrap_or(HttpError::Status {
            status: StatusCode::SERVICE_UNAVAILABLE,
        });
        Err(PieceError::AllFailed {
            piece,
            path: file.path.join("/"),
            last: Arc::new(last),
        })
    }

    /// One segment from one webseed: under the file's raw name and, when the server answers
    /// that with a client error (`404`, or `400` from a server that refuses bytes that are not
    /// UTF-8), under its torrent path; the form that worked last on this webseed goes first.
    /// The inner error is the last request's, with its URL; the outer one is only
    /// [`PieceError::Stopped`].
    async fn fetch_from(
        &self,
        webseed: &Webseed,
        piece: u32,
        segment: Segment,
        file: &LayoutFile,
    ) -> Result<Result<Bytes, (String, HttpError)>, PieceError> {
        let torrent_url = url_for(&webseed.base, &self.layout.name, &file.path);
        let raw_url = file
            .raw_path
            .as_deref()
            .map(|raw| raw_url_for(&webseed.base, &self.layout.name, raw))
            .filter(|raw| *raw != torrent_url);
        let Some(raw_url) = raw_url else {
            let result = self.get_range_permit(&torrent_url, segment, file).await?;
            return Ok(result.map_err(|error| (torrent_url, error)));
        };
        let torrent_first = webseed.torrent_names_first.load(Ordering::Relaxed);
        let (first, second) = if torrent_first {
            (torrent_url, raw_url)
        } else {
            (raw_url, torrent_url)
        };
        match self.get_range_permit(&first, segment, file).await? {
            Ok(bytes) => return Ok(Ok(bytes)),
            Err(HttpError::Status { status }) if status.is_client_error() => {
                tracing::debug!(piece, url = %first, %status, "trying the file's other name");
            }
            Err(error) => return Ok(Err((first, error))),
        }
        let result = self.get_range_permit(&second, segment, file).await?;
        if result.is_ok() {
            webseed
                .torrent_names_first
                .store(!torrent_first, Ordering::Relaxed);
        }
        Ok(result.map_err(|error| (second, error)))
    }

    /// [`Self::get_range`] under an HTTP permit; `Err` only when the bridge is stopping.
    async fn get_range_permit(
        &self,
        url: &str,
        segment: Segment,
        file: &LayoutFile,
    ) -> Result<Result<Bytes, HttpError>, PieceError> {
        let _permit = self
            .http_permits
            .acquire()
            .await
            .map_err(|_| PieceError::Stopped)?;
        Ok(self.get_range(url, segment, file.length).await)
    }

    /// `GET url` for bytes `segment.offset..+segment.length` of a file of `file_len` bytes,
    /// checking the answer is exactly those bytes.
    async fn get_range(
        &self,
        url: &str,
        segment: Segment,
        file_len: u64,
    ) -> Result<Bytes, HttpError> {
        let first = segment.offset;
        let last = first + segment.length - 1;
        let mut response = self
            .client
            .get(url)
            .header(RANGE, format!("bytes={first}-{last}"))
            .header(ACCEPT_ENCODING, "identity")
            .send()
            .await
            .map_err(HttpError::Request)?;
        let (skip, exact) = match response.status() {
            StatusCode::PARTIAL_CONTENT => {
                let got = response
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok());
                if !content_range_matches(got, first, last, file_len) {
                    return Err(HttpError::ContentRange {
                        got: got.map(str::to_owned),
                        first,
                        last,
                        file_len,
                    });
                }
                (0, true)
            }
            StatusCode::OK => {
                if let Some(len) = response.content_length()
                    && len != file_len
                {
                    return Err(HttpError::Length {
                        got: len,
                        expected: file_len,
                    });
                }
                if first > MAX_IGNORED_RANGE_SKIP {
                    return Err(HttpError::IgnoresRange { offset: first });
                }
                (first, false)
            }
            status => return Err(HttpError::Status { status }),
        };
        read_exact_body(&mut response, skip, segment.length, exact).await
    }
}

/// Whether a `Content-Range` value is exactly `bytes first-last/file_len` (or `/*`).
fn content_range_matches(value: Option<&str>, first: u64, last: u64, file_len: u64) -> bool {
    let Some(rest) = value.and_then(|v| v.trim().strip_prefix("bytes ")) else {
        return false;
    };
    let Some((range, total)) = rest.split_once('/') else {
        return false;
    };
    let Some((a, b)) = range.split_once('-') else {
        return false;
    };
    let total_ok = total == "*" || total.parse::<u64>().ok() == Some(file_len);
    a.parse::<u64>().ok() == Some(first) && b.parse::<u64>().ok() == Some(last) && total_ok
}

/// Reads a body, dropping its first `skip` bytes and keeping the next `length`. With `exact`,
/// more bytes than that is an error; without (a `200` for the whole file), the rest is left
/// unread and the connection dropped with the response.
async fn read_exact_body(
    response: &mut reqwest::Response,
    mut skip: u64,
    length: u64,
    exact: bool,
) -> Result<Bytes, HttpError> {
    let mut body = BytesMut::with_capacity(length as usize);
    let mut received = 0u64;
    while (body.len() as u64) < length || exact {
        let Some(mut chunk) = response.chunk().await.map_err(HttpError::Body)? else {
            break;
        };
        received += chunk.len() as u64;
        let dropped = skip.min(chunk.len() as u64);
        skip -= dropped;
        let chunk = chunk.split_off(dropped as usize);
        let room = length - body.len() as u64;
        if chunk.len() as u64 > room && exact {
            return Err(HttpError::Length {
                got: received,
                expected: length,
            });
        }
        let take = chunk.len().min(room as usize);
        body.extend_from_slice(&chunk[..take]);
    }
    if (body.len() as u64) < length {
        return Err(HttpError::Length {
            got: received,
            expected: length,
        });
    }
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_must_match_exactly() {
        assert!(content_range_matches(Some("bytes 5-9/10"), 5, 9, 10));
        assert!(content_range_matches(Some("bytes 5-9/*"), 5, 9, 10));
        for bad in [
            None,
            Some(""),
            Some("bytes 5-8/10"),
            Some("bytes 4-9/10"),
            Some("bytes 5-9/11"),
            Some("bytes */10"),
            Some("items 5-9/10"),
            Some("bytes 5-9"),
        ] {
            assert!(!content_range_matches(bad, 5, 9, 10), "{bad:?} accepted");
        }
    }
}
