//! Serving accepted connections with hyper: the accept loop, a deadline on each request header,
//! the client's address for handlers, and graceful shutdown.
//!
//! `axum::serve` would do all of this but the header deadline, which it gives no way to set, and
//! without which a slow-loris client (a header sent a byte at a time) keeps its connection, and
//! its slot, for as long as it likes.

use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{Service, service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::task::{JoinError, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::ClientAddr;
use crate::limit::{Connection, LimitedListener};

/// Serves `router` on every connection `listener` accepts until `shutdown` completes; then stops
/// accepting, lets each connection finish the response under way (idle ones close at once), and
/// returns once all are closed.
///
/// Each request header must arrive whole within `header_timeout`, counted from when the
/// connection opens or the previous response ends, or the connection is closed.
pub(super) async fn serve(
    mut listener: LimitedListener,
    router: Router,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let stopping = CancellationToken::new();
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            (io, peer) = listener.accept() => {
                let connection = serve_one(&builder, io, peer, router.clone(), stopping.clone());
                let span = tracing::debug_span!("connection", %peer);
                connections.spawn(connection.instrument(span));
            }
            // Reaps finished connections, so the set holds only open ones.
            Some(joined) = connections.join_next() => reaped(joined),
        }
    }
    drop(listener);
    stopping.cancel();
    while let Some(joined) = connections.join_next().await {
        reaped(joined);
    }
}

/// Serves one connection until it closes; on `stopping`, finishes the response under way first.
fn serve_one(
    builder: &http1::Builder,
    io: Connection,
    peer: SocketAddr,
    router: Router,
    stopping: CancellationToken,
) -> impl Future<Output = ()> + Send + 'static {
    let router = TowerToHyperService::new(router);
    let client = ConnectInfo(ClientAddr(peer));
    let service = service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(client);
        router.call(request)
    });
    let connection = builder.serve_connection(TokioIo::new(io), service);
    async move {
        let mut connection = pin!(connection);
        let finished = tokio::select! {
            finished = connection.as_mut() => finished,
            () = stopping.cancelled() => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        match finished {
            Ok(()) => tracing::trace!("connection closed"),
            Err(error) if error.is_timeout() => {
                tracing::debug!("connection closed: no whole request header within the deadline");
            }
            Err(error) => tracing::debug!(%error, "connection closed on an error"),
        }
    }
}

/// Logs a connection task that panicked (its own errors are logged inside it).
fn reaped(joined: Result<(), JoinError>) {
    if let Err(error) = joined {
        tracing::error!(%error, "a connection task failed");
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::Arc;
    use std::time::Instant;

    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpSocket, TcpStream};

    use super::*;
    use crate::{ByteSource, CommitId, FileInfo, ServerOptions};

    /// A source with nothing published: these tests only use their own route.
    struct Nothing;

    impl ByteSource for Nothing {
        type Handle = ();
        type Error = Infallible;

        fn lookup(&self, _: &CommitId, _: &[String]) -> Result<Option<FileInfo<()>>, Infallible> {
            Ok(None)
        }

        fn read_at(&self, _: &FileInfo<()>, _: u64, _: &mut [u8]) -> Result<usize, Infallible> {
            Ok(0)
        }

        fn torrent(&self, _: &CommitId, _: &[String]) -> Result<Option<Vec<u8>>, Infallible> {
            Ok(None)
        }
    }

    /// A server with `GET /who` answering the client's address; stops when the test ends.
    async fn start(header_timeout: Duration) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let routes = Router::new().route(
            "/who",
            get(
                |ConnectInfo(ClientAddr(client)): ConnectInfo<ClientAddr>| async move {
                    client.ip().to_string()
                },
            ),
        );
        let options = ServerOptions {
            header_timeout,
            ..ServerOptions::default()
        };
        let server =
            crate::serve_with_routes(listener, Arc::new(Nothing), options, routes, async {
                std::future::pending::<()>().await;
            });
        tokio::spawn(server);
        addr
    }

    async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.bind(SocketAddr::new(from.into(), 0)).expect("bind");
        socket.connect(to).await.expect("connect")
    }

    /// Reads until the server closes; how long that took.
    async fn closed_after(stream: &mut TcpStream, started: Instant) -> Duration {
        let mut buf = [0; 256];
        let closing = async { while let Ok(1..) = stream.read(&mut buf).await {} };
        tokio::time::timeout(Duration::from_secs(10), closing)
            .await
            .expect("the server closes the connection");
        started.elapsed()
    }

    #[tokio::test]
    async fn a_header_not_whole_within_the_deadline_closes_the_connection() {
        let addr = start(Duration::from_millis(500)).await;
        let started = Instant::now();
        let mut half = TcpStream::connect(addr).await.expect("connect");
        half.write_all(b"GET /who HTTP/1.1\r\nHost:")
            .await
            .expect("send");
        let mut trickle = TcpStream::connect(addr).await.expect("connect");
        let trickling = tokio::spawn(async move {
            // A byte every 100 ms: each would reset the idle timeout, not the header deadline.
            for &byte in b"GET /who HTTP/1.1\r\nHost: x\r\nX-Slow: abcdefghijklmnopqrstuvwxyz" {
                if trickle.write_all(&[byte]).await.is_err() {
                    return started.elapsed();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("the whole trickled header went through without the connection closing");
        });
        let half_closed = closed_after(&mut half, started).await;
        assert!(
            half_closed >= Duration::from_millis(400) && half_closed < Duration::from_secs(3),
            "closed after {half_closed:?}"
        );
        let trickle_cut = trickling.await.expect("trickling task");
        assert!(
            trickle_cut < Duration::from_secs(4),
            "cut after {trickle_cut:?}"
        );
    }

    #[tokio::test]
    async fn the_deadline_applies_to_each_request_of_a_keep_alive_connection() {
        let addr = start(Duration::from_millis(500)).await;
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        for _ in 0..3 {
            // Each request is sent well within its own deadline, though together they take more.
            tokio::time::sleep(Duration::from_millis(250)).await;
            stream
                .write_all(b"GET /who HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .expect("send");
            let mut buf = [0; 512];
            let n = stream.read(&mut buf).await.expect("answer");
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
        }
        let started = Instant::now();
        stream.write_all(b"GET /who HT").await.expect("send");
        let closed = closed_after(&mut stream, started).await;
        assert!(closed < Duration::from_secs(3), "closed after {closed:?}");
    }

    #[tokio::test]
    async fn routes_see_the_clients_address() {
        let addr = start(Duration::from_secs(5)).await;
        let from = Ipv4Addr::new(127, 0, 0, 2);
        let mut stream = connect_from(from, addr).await;
        stream
            .write_all(b"GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("send");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("answer");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            answer.ends_with(&format!("\r\n\r\n{}", IpAddr::V4(from))),
            "{answer}"
        );
    }
}
