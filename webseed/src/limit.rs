//! Accepting connections: a cap on how many are open, overall and per client address, and a
//! deadline on idle ones.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// A TCP listener that holds at most `max` connections open, at most `per_address` of them from
/// one client address, and closes idle ones.
///
/// A slot is taken before `accept`, so once the cap is reached new clients wait in the kernel's
/// backlog instead of costing memory here. The per-address cap keeps one client (a slow-loris
/// flood, a misbehaving webseed client) from taking every slot: its connections past the cap are
/// closed as soon as they are accepted, which costs nothing but the accept, and other addresses
/// keep being served. The idle deadline frees slots held by clients that stop reading or never
/// send a request, which would otherwise starve everyone else once the cap is reached; it also
/// bounds how long graceful shutdown waits for such clients.
#[derive(Debug)]
pub(crate) struct LimitedListener {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    addresses: Arc<PerAddress>,
    idle_timeout: Duration,
}

impl LimitedListener {
    /// Wraps `inner`; `max` and `per_address` are at least 1 (checked by the caller).
    pub(crate) fn new(
        inner: TcpListener,
        max: usize,
        per_address: usize,
        idle_timeout: Duration,
    ) -> Self {
        Self {
            inner,
            slots: Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS))),
            addresses: Arc::new(PerAddress::new(per_address)),
            idle_timeout,
        }
    }

    /// The next connection within both caps, and its client's address.
    ///
    /// Cancel-safe: dropping the future loses no connection (one accepted past its address's cap
    /// is closed before this returns or is dropped).
    pub(crate) async fn accept(&mut self) -> (Connection, SocketAddr) {
        let slot = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .expect("the connection semaphore is never closed");
        loop {
            match self.inner.accept().await {
                Ok((stream, peer)) => {
                    let Some(address) = self.addresses.take(peer.ip()) else {
                        tracing::debug!(
                            %peer,
                            "closing a connection: its address holds too many already"
                        );
                        drop(stream);
                        continue;
                    };
                    if let Err(error) = stream.set_nodelay(true) {
                        tracing::debug!(%peer, %error, "could not set TCP_NODELAY");
                    }
                    let connection = Connection::new(stream, slot, address, self.idle_timeout);
                    return (connection, peer);
                }
                Err(error) => accept_failed(error).await,
            }
        }
    }
}

/// How many connections each client address holds, for the per-address cap.
///
/// IPv6 clients are counted by their /64 prefix, the usual allocation to one host or site, so
/// that one client cannot dodge the cap by using a fresh address per connection; IPv4-mapped
/// IPv6 addresses count as the IPv4 address they carry.
#[derive(Debug)]
struct PerAddress {
    max: usize,
    /// Only addresses with at least one open connection; short critical sections only.
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerAddress {
    fn new(max: usize) -> Self {
        Self {
            max,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for one more connection from `ip`, or `None` when its address is at the cap.
    fn take(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        let key = address_key(ip);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(key).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            addresses: Arc::clone(self),
            key,
        })
    }

    /// How many connections `ip`'s address holds.
    #[cfg(test)]
    fn open(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&address_key(ip)).copied().unwrap_or(0)
    }
}

/// The address a connection from `ip` is counted under.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

/// One connection's place in its address's count, given back on drop.
#[derive(Debug)]
pub(crate) struct AddressSlot {
    addresses: Arc<PerAddress>,
    key: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self
            .addresses
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// Backs off after a failed `accept`: out of file descriptors, say, retrying at once would spin.
async fn accept_failed(error: io::Error) {
    let per_connection = matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    );
    if !per_connection {
        tracing::error!(%error, "accepting a connection failed; retrying in a second");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// An accepted connection: holds its slots (overall and its address's) until dropped, and fails
/// with `TimedOut` once neither a read nor a write has made progress for the idle timeout while
/// one is waiting.
#[derive(Debug)]
pub(crate) struct Connection {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
    _address: AddressSlot,
    idle_timeout: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl Connection {
    fn new(
        stream: TcpStream,
        slot: OwnedSemaphorePermit,
        address: AddressSlot,
        idle_timeout: Duration,
    ) -> Self {
        Self {
            stream,
            _slot: slot,
            _address: address,
            idle_timeout,
            deadline: Box::pin(tokio::time::sleep(idle_timeout)),
        }
    }

    /// Pushes the deadline back after progress.
    fn progressed(&mut self) {
        let next = Instant::now() + self.idle_timeout;
        self.deadline.as_mut().reset(next);
    }

    /// Turns a pending operation into `TimedOut` once the deadline has passed.
    fn pending_or_timed_out<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection idle for too long",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Applies the deadline to the outcome of a write.
    fn after_write(
        &mut self,
        cx: &mut Context<'_>,
        outcome: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match outcome {
            Poll::Ready(Ok(written)) => {
                if written > 0 {
                    self.progressed();
                }
                Poll::Ready(Ok(written))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => self.pending_or_timed_out(cx),
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.progressed();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => this.pending_or_timed_out(cx),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let outcome = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.after_write(cx, outcome)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let outcome = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.after_write(cx, outcome)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpSocket;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an IP address")
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(address_key(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(address_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(
            address_key(ip("2001:db8:1:2:aaaa::1")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            address_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            ip("2001:db8:1:2::")
        );
        assert_ne!(address_key(ip("2001:db8:1:3::1")), ip("2001:db8:1:2::"));
    }

    #[test]
    fn an_address_gets_at_most_its_cap_and_slots_come_back_on_drop() {
        let addresses = Arc::new(PerAddress::new(2));
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        let first = addresses.take(a).expect("first");
        let second = addresses.take(a).expect("second");
        assert!(addresses.take(a).is_none(), "a third from the same address");
        let other = addresses.take(b).expect("another address is not held back");
        assert_eq!((addresses.open(a), addresses.open(b)), (2, 1));
        drop(first);
        assert_eq!(addresses.open(a), 1);
        let _again = addresses.take(a).expect("a freed slot is reused");
        drop((second, other));
        assert_eq!(addresses.open(b), 0);
        let open = addresses.open.lock().expect("lock");
        assert_eq!(open.len(), 1, "addresses with no connection are forgotten");
    }

    /// A connection from `from` (an address of 127.0.0.0/8) to `to`.
    async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.bind(SocketAddr::new(from.into(), 0)).expect("bind");
        socket.connect(to).await.expect("connect")
    }

    #[tokio::test]
    async fn connections_past_an_address_cap_are_closed_and_others_accepted() {
        let inner = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = inner.local_addr().expect("address");
        let mut listener = LimitedListener::new(inner, 16, 2, Duration::from_secs(60));
        let (accepted, mut accepted_rx) = tokio::sync::mpsc::unbounded_channel();
        let acceptor = tokio::spawn(async move {
            loop {
                let (connection, peer) = listener.accept().await;
                if accepted.send((connection, peer)).is_err() {
                    break;
                }
            }
        });

        let flood = Ipv4Addr::new(127, 0, 0, 3);
        let mut held = Vec::new();
        for _ in 0..2 {
            let client = connect_from(flood, addr).await;
            let (connection, peer) = accepted_rx.recv().await.expect("accepted");
            assert_eq!(peer.ip(), IpAddr::V4(flood));
            held.push((client, connection));
        }
        let mut third = connect_from(flood, addr).await;
        let mut buf = [0; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf))
            .await
            .expect("the third connection is closed at once");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

        let good = Ipv4Addr::new(127, 0, 0, 2);
        let _other = connect_from(good, addr).await;
        let (_, peer) = tokio::time::timeout(Duration::from_secs(5), accepted_rx.recv())
            .await
            .expect("another address is accepted")
            .expect("accepted");
        assert_eq!(peer.ip(), IpAddr::V4(good));
        acceptor.abort();
    }
}
