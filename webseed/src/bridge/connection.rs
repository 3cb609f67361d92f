//! One engine connection: handshake, full bitfield, unchoke on interest, and `request`s answered
//! with `piece`s from the fetcher.
//!
//! The connection task reads and dispatches; a writer task owns the socket's write half, so a
//! slow engine never stops the bridge from reading, and keep-alives go out while a slow webseed
//! answers. Requests are answered as their pieces arrive, not necessarily in order (BEP 3 allows
//! it); a cancelled request is dropped when its piece arrives.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::BridgeOptions;
use super::fetch::{Fetcher, PieceError};
use super::layout::OutOfRange;
use super::wire::{
    BlockRequest, HANDSHAKE_LEN, Handshake, Message, Parsed, WireError, full_bitfield,
    parse_message, piece_header,
};

/// How long an engine has to send its handshake after connecting.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The most requests one connection may have outstanding; librqbit keeps up to 128 and most
/// clients fewer. Bounds the tasks and queued blocks one engine can make the bridge hold.
const MAX_PENDING_REQUESTS: usize = 256;

/// What the accept loop shares with every connection.
pub(crate) struct Shared {
    pub(crate) fetcher: Arc<Fetcher>,
    pub(crate) peer_id: [u8; 20],
    pub(crate) requests_served: AtomicU64,
    pub(crate) options: BridgeOptions,
}

/// Why a connection was closed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectionError {
    #[error("no handshake within {HANDSHAKE_TIMEOUT:?}")]
    HandshakeTimeout,
    #[error("the engine asked for another torrent ({})", xus_codec::hex::encode(.0))]
    WrongInfoHash([u8; 20]),
    #[error("the connection failed")]
    Io(#[from] io::Error),
    #[error("the engine broke the protocol")]
    Wire(#[from] WireError),
    #[error("the engine asked for bytes outside the torrent")]
    OutOfRange(#[from] OutOfRange),
    #[error("the engine has more than {MAX_PENDING_REQUESTS} requests outstanding")]
    TooManyRequests,
    #[error("the engine sent nothing for {0:?}")]
    Idle(Duration),
    #[error("could not serve a request")]
    Piece(#[from] PieceError),
    #[error("a request task failed")]
    Task(#[source] tokio::task::JoinError),
}

/// What the writer task sends.
enum Outgoing {
    Message(Message),
    /// A block, written straight from the cached piece.
    Block {
        header: [u8; 13],
        data: Bytes,
    },
}

/// Serves one engine connection until it closes, breaks the protocol, or `stop`.
pub(crate) async fn serve(
    mut stream: TcpStream,
    shared: Arc<Shared>,
    stop: CancellationToken,
) -> Result<(), ConnectionError> {
    let layout = shared.fetcher.layout();
    let mut theirs = [0; HANDSHAKE_LEN];
    timeout(HANDSHAKE_TIMEOUT, stream.read_exact(&mut theirs))
        .await
        .map_err(|_| ConnectionError::HandshakeTimeout)??;
    let theirs = Handshake::parse(&theirs)?;
    if theirs.info_hash != layout.info_hash {
        return Err(ConnectionError::WrongInfoHash(theirs.info_hash));
    }
    let ours = Handshake {
        // No extension bits: the engine must not send BEP 10 or BEP 6 messages.
        reserved: [0; 8],
        info_hash: layout.info_hash,
        peer_id: shared.peer_id,
    };
    let mut opening = ours.encode().to_vec();
    let pieces = layout.piece_count();
    if pieces > 0 {
        Message::Bitfield(full_bitfield(pieces).into()).encode(&mut opening);
    }
    timeout(shared.options.idle_timeout, stream.write_all(&opening))
        .await
        .map_err(|_| ConnectionError::Idle(shared.options.idle_timeout))??;
    let _ = stream.set_nodelay(true);

    let (mut read, write) = stream.into_split();
    let (to_writer, from_reader) = mpsc::channel(MAX_PENDING_REQUESTS + 16);
    let mut writer = AbortOnDrop(tokio::spawn(
        write_loop(
            write,
            from_reader,
            shared.options.keep_alive_interval,
            shared.options.idle_timeout,
        )
        .in_current_span(),
    ));

    let mut state = State {
        shared: &shared,
        to_writer: &to_writer,
        unchoked: false,
        pending: HashMap::new(),
        pending_count: 0,
        fetches: JoinSet::new(),
    };
    let mut buf = BytesMut::with_capacity(32 << 10);
    let idle = shared.options.idle_timeout;
    let mut deadline = Instant::now() + idle;
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            written = &mut writer.0 => {
                return match written {
                    Ok(result) => result.map_err(ConnectionError::Io),
                    Err(error) => Err(ConnectionError::Task(error)),
                };
            }
            read = timeout_at(deadline, read.read_buf(&mut buf)) => {
                match read.map_err(|_| ConnectionError::Idle(idle))?? {
                    0 => return Ok(()),
                    _ => deadline = Instant::now() + idle,
                }
                while let Parsed::Message { message, consumed } = parse_message(&buf)? {
                    buf.advance(consumed);
                    state.handle(message).await?;
                }
            }
            Some(joined) = state.fetches.join_next(), if !state.fetches.is_empty() => {
                let (request, piece) = joined.map_err(ConnectionError::Task)?;
                state.answer(request, piece).await?;
            }
        }
    }
}

/// A connection's protocol state.
struct State<'a> {
    shared: &'a Shared,
    to_writer: &'a mpsc::Sender<Outgoing>,
    unchoked: bool,
    /// Outstanding requests, counted, since an engine may repeat one.
    pending: HashMap<BlockRequest, u32>,
    pending_count: usize,
    /// One task per outstanding request, each waiting for its piece.
    fetches: JoinSet<(BlockRequest, Result<Bytes, PieceError>)>,
}

impl State<'_> {
    async fn send(&self, outgoing: Outgoing) {
        // A closed channel means the writer ended; the main loop sees why on its next turn.
        let _ = self.to_writer.send(outgoing).await;
    }

    async fn handle(&mut self, message: Message) -> Result<(), ConnectionError> {
        match message {
            Message::Interested if !self.unchoked => {
                self.unchoked = true;
                self.send(Outgoing::Message(Message::Unchoke)).await;
            }
            Message::Request(request) => {
                // Checks the range; the segments themselves are the fetcher's business.
                let size = self.shared.fetcher.piece_size(request.piece).unwrap_or(0);
                let end = u64::from(request.offset) + u64::from(request.length);
                if end > size {
                    return Err(OutOfRange {
                        piece: request.piece,
                        offset: request.offset.into(),
                        length: request.length.into(),
                    }
                    .into());
                }
                if !self.unchoked {
                    // BEP 3: requests from a choked peer are ignored.
                    tracing::debug!(?request, "request while choked, ignored");
                    return Ok(());
                }
                if self.pending_count >= MAX_PENDING_REQUESTS {
                    return Err(ConnectionError::TooManyRequests);
                }
                *self.pending.entry(request).or_default() += 1;
                self.pending_count += 1;
                let fetcher = Arc::clone(&self.shared.fetcher);
                self.fetches.spawn(
                    async move { (request, fetcher.piece(request.piece).await) }.in_current_span(),
                );
            }
            Message::Cancel(request) => {
                self.take_pending(request);
            }
            // The engine's bitfield, haves, interest changes and keep-alives change nothing for
            // a peer that has everything and wants nothing; skipped messages are skipped.
            _ => {}
        }
        Ok(())
    }

    /// Removes one occurrence of `request`; false when it was cancelled (or never made).
    fn take_pending(&mut self, request: BlockRequest) -> bool {
        let Some(count) = self.pending.get_mut(&request) else {
            return false;
        };
        *count -= 1;
        if *count == 0 {
            self.pending.remove(&request);
        }
        self.pending_count -= 1;
        true
    }

    /// Sends the block `request` asked for, cut from its whole piece, unless it was cancelled.
    /// A piece that could not be fetched closes the connection, unless nobody wants it any more.
    async fn answer(
        &mut self,
        request: BlockRequest,
        piece: Result<Bytes, PieceError>,
    ) -> Result<(), ConnectionError> {
        if !self.take_pending(request) {
            return Ok(());
        }
        let piece = piece?;
        let start = request.offset as usize;
        let end = start + request.length as usize;
        // The request was checked against the layout and the fetcher returns whole pieces.
        if end > piece.len() {
            tracing::error!(
                ?request,
                len = piece.len(),
                "piece shorter than the layout says"
            );
            return Ok(());
        }
        let header = piece_header(request.piece, request.offset, request.length);
        let data = piece.slice(start..end);
        // Counted first, so the count is never behind what the engine has received.
        self.shared.requests_served.fetch_add(1, Ordering::Relaxed);
        self.send(Outgoing::Block { header, data }).await;
        Ok(())
    }
}

/// Writes what the connection sends, and a keep-alive whenever it has said nothing for
/// `keep_alive`. Ends when the channel closes or a write fails or stalls for `stall`.
async fn write_loop(
    write: OwnedWriteHalf,
    mut outgoing: mpsc::Receiver<Outgoing>,
    keep_alive: Duration,
    stall: Duration,
) -> io::Result<()> {
    let mut write = BufWriter::with_capacity(64 << 10, write);
    let mut frame = Vec::with_capacity(32);
    loop {
        let next = match timeout(keep_alive, outgoing.recv()).await {
            Ok(Some(next)) => next,
            Ok(None) => return Ok(()),
            Err(_) => Outgoing::Message(Message::KeepAlive),
        };
        let written = async {
            match next {
                Outgoing::Message(message) => {
                    frame.clear();
                    message.encode(&mut frame);
                    write.write_all(&frame).await?;
                }
                Outgoing::Block { header, data } => {
                    write.write_all(&header).await?;
                    write.write_all(&data).await?;
                }
            }
            if outgoing.is_empty() {
                write.flush().await?;
            }
            Ok::<_, io::Error>(())
        };
        timeout(stall, written)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the engine stopped reading"))??;
    }
}

/// Aborts the writer when the connection ends, whichever way it ends.
struct AbortOnDrop(tokio::task::JoinHandle<io::Result<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
