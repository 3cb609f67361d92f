//! Streaming a byte range of a file as a response body, a chunk at a time.

use std::error::Error;
use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::blocking::{Blocking, BlockingError};
use crate::source::{ByteSource, FileInfo};

/// Bytes read from the source per blocking call, and the unit of memory per response.
///
/// Big enough that pool hand-offs cost little next to the copy (and equal to a typical piece,
/// which is what Transmission asks for), small enough that hundreds of responses fit in memory.
pub(crate) const CHUNK_SIZE: usize = 256 * 1024;

/// Why a body stopped early. The status line is already sent, so the connection is cut.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    /// The source failed.
    #[error("the source failed to read {want} bytes at offset {offset}")]
    Source {
        /// Where the failed read started.
        offset: u64,
        /// How many bytes were wanted.
        want: usize,
        /// The source's error.
        #[source]
        source: Box<dyn Error + Send + Sync>,
    },
    /// The source returned fewer bytes than its `FileInfo::len` promised.
    #[error("the source ended at offset {offset}, before the length it announced")]
    Truncated {
        /// Where the source returned 0 bytes.
        offset: u64,
    },
    /// The source claimed more bytes than the buffer holds.
    #[error("the source claimed to read {got} bytes into a buffer of {room}")]
    Overread {
        /// What the source returned.
        got: usize,
        /// The room left in the buffer.
        room: usize,
    },
    /// The blocking call did not return.
    #[error(transparent)]
    Blocking(#[from] BlockingError),
}

/// A body of bytes `start..start + len` of `file`, read lazily in [`CHUNK_SIZE`] chunks.
///
/// A producer task reads the next chunk while the connection writes the current one; the
/// channel holds one chunk and a read starts only once its slot is free, so a response holds at
/// most about three chunks however large the range and however slow the client. When the client
/// goes away the channel closes and the producer stops after at most one more read. When `cut`
/// is cancelled (the shutdown grace has run out) the producer stops too, and the body ends short
/// of its `Content-Length`, which makes the connection close.
pub(crate) fn file_body<S: ByteSource>(
    source: Arc<S>,
    file: Arc<FileInfo<S::Handle>>,
    start: u64,
    len: u64,
    blocking: Blocking,
    cut: CancellationToken,
) -> Body {
    let (sender, receiver) = mpsc::channel::<Result<Bytes, BodyError>>(1);
    let producer = async move {
        let end = start.saturating_add(len);
        let mut offset = start;
        while offset < end {
            let slot = tokio::select! {
                biased;
                () = cut.cancelled() => {
                    tracing::info!(offset, "shutting down; cutting the response short");
                    return;
                }
                slot = sender.reserve() => slot,
            };
            let Ok(slot) = slot else {
                tracing::debug!(offset, "client went away; stopping the body");
                return;
            };
            let want =
                usize::try_from(end - offset).map_or(CHUNK_SIZE, |left| left.min(CHUNK_SIZE));
            let (source, file) = (Arc::clone(&source), Arc::clone(&file));
            let chunk = blocking
                .run(move || read_chunk(&*source, &file, offset, want))
                .await
                .map_err(BodyError::from)
                .and_then(|chunk| chunk);
            match chunk {
                Ok(chunk) => {
                    offset += chunk.len() as u64;
                    slot.send(Ok(chunk));
                }
                Err(error) => {
                    tracing::error!(
                        offset,
                        error = &error as &(dyn Error + 'static),
                        "reading a file failed; cutting the response short"
                    );
                    slot.send(Err(error));
                    return;
                }
            }
        }
        tracing::trace!("body complete");
    };
    tokio::spawn(producer.in_current_span());
    Body::from_stream(futures_lite::stream::unfold(
        receiver,
        |mut receiver| async move {
            let item = receiver.recv().await?;
            Some((item, receiver))
        },
    ))
}

/// Reads exactly `want` bytes at `offset`, looping over short reads.
fn read_chunk<S: ByteSource>(
    source: &S,
    file: &FileInfo<S::Handle>,
    offset: u64,
    want: usize,
) -> Result<Bytes, BodyError> {
    let mut buf = vec![0; want];
    let mut filled = 0;
    while filled < want {
        let at = offset + filled as u64;
        let read = source
            .read_at(file, at, &mut buf[filled..])
            .map_err(|error| BodyError::Source {
                offset: at,
                want: want - filled,
                source: Box::new(error),
            })?;
        if read == 0 {
            return Err(BodyError::Truncated { offset: at });
        }
        let room = want - filled;
        if read > room {
            return Err(BodyError::Overread { got: read, room });
        }
        filled += read;
    }
    Ok(Bytes::from(buf))
}
