//! Request bodies with a deadline that grows with what arrived: a body must
//! come at an average of at least [`MIN_BODY_RATE`] after a grace of
//! [`BODY_GRACE`]. The server's header deadline ends where the body starts,
//! and its idle timeout resets with every byte, so without this a client
//! trickling a `/push` body held a connection slot for as long as it liked.

use std::pin::Pin;
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use tokio::time::Instant;

/// Time any body gets before the rate counts.
pub(crate) const BODY_GRACE: Duration = Duration::from_secs(10);

/// Slowest average a body may arrive at after [`BODY_GRACE`], bytes per
/// second: a 256 KiB push body in 26 s, a 130 KB info dictionary in 18 s.
pub(crate) const MIN_BODY_RATE: u64 = 16 * 1024;

/// Why a body was not read whole.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// More than the limit.
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
    /// Slower than the rate allows.
    #[error("the body came slower than {MIN_BODY_RATE} bytes/s (after {grace} s); send it again", grace = BODY_GRACE.as_secs())]
    TooSlow,
    /// The connection broke.
    #[error("the body broke off")]
    Broken,
}

/// Reads `body` whole, at most `limit` bytes, refusing it once it falls
/// behind the rate.
pub(crate) async fn read(mut body: Body, limit: usize) -> Result<Bytes, BodyError> {
    // A declared length over the limit is refused before a byte is read.
    if body.size_hint().lower() > limit as u64 {
        return Err(BodyError::TooLarge(limit));
    }
    let started = Instant::now();
    let mut out = Vec::new();
    loop {
        let allowed = BODY_GRACE + Duration::from_millis(out.len() as u64 * 1000 / MIN_BODY_RATE);
        let next = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx));
        match tokio::time::timeout_at(started + allowed, next).await {
            Err(_) => return Err(BodyError::TooSlow),
            Ok(None) => return Ok(Bytes::from(out)),
            Ok(Some(Err(_))) => return Err(BodyError::Broken),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if out.len() + data.len() > limit {
                        return Err(BodyError::TooLarge(limit));
                    }
                    out.extend_from_slice(&data);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trickle(chunks: Vec<&'static [u8]>, every: Duration) -> Body {
        let stream =
            futures_lite::stream::unfold(chunks.into_iter(), move |mut chunks| async move {
                let chunk = chunks.next()?;
                tokio::time::sleep(every).await;
                Some((Ok::<_, std::io::Error>(Bytes::from_static(chunk)), chunks))
            });
        Body::from_stream(stream)
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_in_time_is_read_whole() {
        let body = trickle(vec![b"ab", b"cd"], Duration::from_secs(4));
        assert_eq!(read(body, 10).await, Ok(Bytes::from_static(b"abcd")));
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_is_cut_once_behind_the_rate() {
        let body = trickle(vec![b"a"; 100], Duration::from_secs(1));
        let started = Instant::now();
        assert_eq!(read(body, 1000).await, Err(BodyError::TooSlow));
        let took = started.elapsed();
        assert!(
            took >= BODY_GRACE && took < BODY_GRACE + Duration::from_secs(1),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_over_the_limit_is_refused() {
        let body = trickle(vec![b"abc", b"def"], Duration::from_millis(1));
        assert_eq!(read(body, 4).await, Err(BodyError::TooLarge(4)));
    }
}
