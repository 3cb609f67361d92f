//! The webseed peer end to end: a raw peer-wire client on one side (written here from BEP 3, not
//! with the crate's codec, so a shared misreading cannot hide), real HTTP webseeds on the other
//! (this crate's own server, plus a few deliberately broken ones).

#[allow(dead_code)]
mod fixture;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fixture::{COMMIT, Content, MemorySource, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use webseed::ServerOptions;
use webseed::bridge::{BridgeOptions, LayoutFile, TorrentLayout, WebseedPeer};

const INFO_HASH: [u8; 20] = [0xab; 20];
const PIECE: u64 = 32 << 10;
const BLOCK: u32 = 16 << 10;
/// The torrent's files: 40000 + 0 + 30000 + 5 = 70005 bytes, so pieces 0 and 1 are full, piece 1
/// crosses from `a.bin` into `dir/b.bin` (past the empty file), and piece 2 is 4469 bytes.
const FILES: [(&str, u64); 4] = [
    ("a.bin", 40_000),
    ("empty", 0),
    ("dir/b.bin", 30_000),
    ("c é", 5),
];
const LAST_PIECE: u32 = 70_005 - 2 * PIECE as u32;
const TIMEOUT: Duration = Duration::from_secs(20);

/// A file's bytes: a different pattern per file, so a block from the wrong file shows.
fn file_bytes(index: usize, len: u64) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 7 + index as u64 * 101) % 251) as u8)
        .collect()
}

/// The whole torrent, files concatenated.
fn torrent_bytes() -> Vec<u8> {
    FILES
        .iter()
        .enumerate()
        .flat_map(|(i, (_, len))| file_bytes(i, *len))
        .collect()
}

fn layout() -> Arc<TorrentLayout> {
    Arc::new(TorrentLayout {
        info_hash: INFO_HASH,
        name: COMMIT.into(),
        piece_length: PIECE,
        files: FILES
            .iter()
            .map(|(path, length)| LayoutFile {
                path: path.split('/').map(str::to_owned).collect(),
                length: *length,
                raw_path: None,
            })
            .collect(),
    })
}

/// A webseed serving the torrent's files at `/<COMMIT>/<path>`.
async fn webseed_with(read_delay: Duration) -> Server {
    let mut source = MemorySource::default();
    source.read_delay = read_delay;
    for (i, (path, len)) in FILES.iter().enumerate() {
        source.add(COMMIT, true, path, Content::Bytes(file_bytes(i, *len)));
    }
    Server::start(source, ServerOptions::default()).await
}

async fn webseed() -> Server {
    webseed_with(Duration::ZERO).await
}

async fn bridge(urls: Vec<String>) -> WebseedPeer {
    WebseedPeer::start(layout(), urls, BridgeOptions::default())
        .await
        .expect("bridge starts")
}

/// A URL whose port nothing listens on.
async fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    drop(listener);
    format!("http://{addr}/")
}

/// A minimal BEP 3 client over a raw socket.
struct Client {
    stream: TcpStream,
}

impl Client {
    /// Connects and sends a handshake for `info_hash`.
    async fn connect(addr: SocketAddr, info_hash: [u8; 20]) -> Self {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let mut handshake = vec![19];
        handshake.extend_from_slice(b"BitTorrent protocol");
        handshake.extend_from_slice(&[0, 0, 0, 0, 0, 0x10, 0, 0]);
        handshake.extend_from_slice(&info_hash);
        handshake.extend_from_slice(b"-TC0001-testclient01");
        stream.write_all(&handshake).await.expect("send handshake");
        Self { stream }
    }

    /// Connects, checks the bridge's handshake and full bitfield, and gets unchoked.
    async fn ready(addr: SocketAddr) -> Self {
        let mut client = Self::connect(addr, INFO_HASH).await;
        let mut theirs = [0; 68];
        tokio::time::timeout(TIMEOUT, client.stream.read_exact(&mut theirs))
            .await
            .expect("handshake in time")
            .expect("handshake");
        assert_eq!(&theirs[..20], b"\x13BitTorrent protocol");
        assert_eq!(theirs[20..28], [0; 8], "no extension bits");
        assert_eq!(theirs[28..48], INFO_HASH);
        assert_eq!(&theirs[48..56], b"-XW0100-");
        // Three pieces: the top three bits, the spare ones zero.
        assert_eq!(client.next().await, Some((5, vec![0b1110_0000])));
        // An extended message first: the bridge must skip it, not choke on it.
        client.send(20, b"\x00d1:md11:ut_metadatai3eee").await;
        client.send(2, &[]).await;
        assert_eq!(client.next().await, Some((1, vec![])), "unchoke");
        client
    }

    async fn send(&mut self, id: u8, payload: &[u8]) {
        let mut message = (payload.len() as u32 + 1).to_be_bytes().to_vec();
        message.push(id);
        message.extend_from_slice(payload);
        self.stream.write_all(&message).await.expect("send");
    }

    async fn request(&mut self, piece: u32, offset: u32, length: u32) {
        let mut payload = piece.to_be_bytes().to_vec();
        payload.extend_from_slice(&offset.to_be_bytes());
        payload.extend_from_slice(&length.to_be_bytes());
        self.send(6, &payload).await;
    }

    /// The next message, keep-alives included as id `None`; `None` at end of stream.
    async fn next_raw(&mut self) -> Option<(Option<u8>, Vec<u8>)> {
        let mut len = [0; 4];
        let read = tokio::time::timeout(TIMEOUT, self.stream.read_exact(&mut len))
            .await
            .expect("message in time");
        if read.is_err() {
            return None;
        }
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 {
            return Some((None, Vec::new()));
        }
        let mut body = vec![0; len];
        tokio::time::timeout(TIMEOUT, self.stream.read_exact(&mut body))
            .await
            .expect("message body in time")
            .ok()?;
        let payload = body.split_off(1);
        Some((Some(body[0]), payload))
    }

    /// The next message other than a keep-alive, as (id, payload).
    async fn next(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if let (Some(id), payload) = self.next_raw().await? {
                return Some((id, payload));
            }
        }
    }

    /// Reads `count` piece messages, keyed by (piece, offset).
    async fn blocks(&mut self, count: usize) -> HashMap<(u32, u32), Vec<u8>> {
        let mut blocks = HashMap::new();
        while blocks.len() < count {
            let (id, payload) = self.next().await.expect("a piece before the end");
            assert_eq!(id, 7, "only piece messages expected");
            let word = |at: usize| u32::from_be_bytes(payload[at..at + 4].try_into().expect("4"));
            blocks.insert((word(0), word(4)), payload[8..].to_vec());
        }
        blocks
    }

    /// Whether the bridge closes the connection (without sending anything but keep-alives).
    async fn closed(&mut self) -> bool {
        self.next().await.is_none()
    }
}

fn expected(piece: u32, offset: u32, length: u32) -> Vec<u8> {
    let start = piece as usize * PIECE as usize + offset as usize;
    torrent_bytes()[start..start + length as usize].to_vec()
}

/// Every block of the torrent, 16 KiB at a time.
fn all_blocks() -> Vec<(u32, u32, u32)> {
    vec![
        (0, 0, BLOCK),
        (0, BLOCK, BLOCK),
        (1, 0, BLOCK),
        (1, BLOCK, BLOCK),
        (2, 0, LAST_PIECE),
    ]
}

async fn fetch_all(client: &mut Client) {
    for &(piece, offset, length) in &all_blocks() {
        client.request(piece, offset, length).await;
    }
    let blocks = client.blocks(all_blocks().len()).await;
    for (piece, offset, length) in all_blocks() {
        assert!(
            blocks.get(&(piece, offset)) == Some(&expected(piece, offset, length)),
            "block {piece}/{offset} differs from the original"
        );
    }
}

#[tokio::test]
async fn serves_blocks_across_files_and_the_short_last_piece() {
    // Slow reads make the pipelined requests for one piece overlap for sure.
    let server = webseed_with(Duration::from_millis(20)).await;
    let bridge = bridge(vec![server.url("/")]).await;
    let mut client = Client::ready(bridge.addr()).await;
    fetch_all(&mut client).await;

    // Each piece was fetched once, whole, although two blocks of it were asked at once.
    assert_eq!(
        server.source.stats.bytes_read.load(Ordering::SeqCst),
        70_005
    );
    let stats = bridge.stats();
    assert_eq!(stats.bytes_fetched, 70_005);
    assert_eq!(stats.requests_served, 5);
    assert_eq!(stats.http_errors, 0);
    // The empty file is never asked for; the others by their percent-encoded paths.
    let lookups = server.source.stats.lookups.lock().expect("lookups").clone();
    assert!(!lookups.contains(&vec!["empty".to_owned()]));
    assert!(lookups.contains(&vec!["c é".to_owned()]));

    // Later blocks come from the cache: no more HTTP.
    client.request(1, 100, 1000).await;
    assert_eq!(client.blocks(1).await[&(1, 100)], expected(1, 100, 1000));
    assert_eq!(
        server.source.stats.bytes_read.load(Ordering::SeqCst),
        70_005
    );
    bridge.shutdown().await;
    assert!(client.closed().await, "shutdown closes connections");
}

#[tokio::test]
async fn a_wrong_info_hash_is_refused_without_a_handshake() {
    let server = webseed().await;
    let bridge = bridge(vec![server.url("/")]).await;
    let mut client = Client::connect(bridge.addr(), [0x11; 20]).await;
    let mut reply = Vec::new();
    tokio::time::timeout(TIMEOUT, client.stream.read_to_end(&mut reply))
        .await
        .expect("closed in time")
        .expect("clean close");
    assert!(reply.is_empty(), "the bridge answered: {reply:?}");
}

#[tokio::test]
async fn requests_outside_the_torrent_close_the_connection() {
    let server = webseed().await;
    let bridge = bridge(vec![server.url("/")]).await;
    for (piece, offset, length) in [
        (2, 4000, 1000),      // past the end of the short last piece
        (3, 0, 1),            // no such piece
        (0, 1, PIECE as u32), // a whole piece's length, but from offset 1
        (0, 0, 256 << 10),    // above the 128 KiB request limit
        (0, 0, 0),            // nothing at all
    ] {
        let mut client = Client::ready(bridge.addr()).await;
        client.request(piece, offset, length).await;
        assert!(
            client.closed().await,
            "request {piece}/{offset}+{length} left the connection open"
        );
    }
    assert_eq!(server.source.stats.bytes_read.load(Ordering::SeqCst), 0);
    // The bridge still serves well-behaved connections.
    let mut client = Client::ready(bridge.addr()).await;
    fetch_all(&mut client).await;
}

#[tokio::test]
async fn stats_count_bytes_per_url_and_pieces_spread_across_urls() {
    let (first, second) = (webseed().await, webseed().await);
    let bridge = bridge(vec![first.url("/"), second.url("")]).await;
    let mut client = Client::ready(bridge.addr()).await;
    fetch_all(&mut client).await;

    let stats = bridge.stats();
    // Piece i starts at URL i mod 2: pieces 0 and 2 from the first, piece 1 from the second.
    let from_first = PIECE + u64::from(LAST_PIECE);
    assert_eq!(
        stats.per_url,
        vec![(first.url("/"), from_first), (second.url(""), PIECE)]
    );
    assert_eq!(stats.bytes_fetched, 70_005);
    let read = |server: &Server| server.source.stats.bytes_read.load(Ordering::SeqCst);
    assert_eq!((read(&first), read(&second)), (from_first, PIECE));
}

#[tokio::test]
async fn a_dead_url_fails_over_to_a_live_one() {
    let server = webseed().await;
    let dead = dead_url().await;
    let bridge = bridge(vec![dead.clone(), server.url("/")]).await;
    let mut client = Client::ready(bridge.addr()).await;
    fetch_all(&mut client).await;

    let stats = bridge.stats();
    assert_eq!(stats.per_url, vec![(dead, 0), (server.url("/"), 70_005)]);
    assert!(stats.http_errors >= 1, "{stats:?}");
    assert_eq!(stats.requests_served, 5);
}

#[tokio::test]
async fn a_webseed_without_the_files_fails_over() {
    // A server that does not have the commit answers 404.
    let empty = Server::start(MemorySource::default(), ServerOptions::default()).await;
    let server = webseed().await;
    let bridge = bridge(vec![empty.url("/"), server.url("/")]).await;
    let mut client = Client::ready(bridge.addr()).await;
    fetch_all(&mut client).await;
    let stats = bridge.stats();
    assert_eq!(stats.per_url[0].1, 0);
    assert!(stats.http_errors >= 1);
}

#[tokio::test]
async fn when_every_url_fails_the_connection_is_closed() {
    let bridge = bridge(vec![dead_url().await]).await;
    let mut client = Client::ready(bridge.addr()).await;
    client.request(0, 0, BLOCK).await;
    assert!(client.closed().await);
    let stats = bridge.stats();
    assert_eq!(stats.requests_served, 0);
    assert!(stats.http_errors >= 1);
}

/// [`layout`] with the last file named `c \xe9` on disk, which the torrent spells `c %E9`.
fn layout_with_a_raw_name() -> Arc<TorrentLayout> {
    let mut layout = (*layout()).clone();
    let last = layout.files.last_mut().expect("files");
    last.path = vec!["c %E9".to_owned()];
    last.raw_path = Some(vec![b"c \xe9".to_vec()]);
    Arc::new(layout)
}

/// A webseed with [`FILES`] where the last file is only under its raw name (`raw`, as nginx
/// over a checkout) or only under its torrent path (as a `xus webseed` before raw names).
async fn webseed_naming_the_last_file(raw: bool) -> Server {
    let mut source = MemorySource::default();
    let last = FILES.len() - 1;
    for (i, (path, len)) in FILES.iter().enumerate() {
        let content = Content::Bytes(file_bytes(i, *len));
        match (i == last, raw) {
            (false, _) => source.add(COMMIT, true, path, content),
            (true, true) => source.add_raw(COMMIT, true, b"c \xe9", content),
            (true, false) => source.add(COMMIT, true, "c %E9", content),
        }
    }
    Server::start(source, ServerOptions::default()).await
}

#[tokio::test]
async fn raw_names_are_asked_first_then_torrent_paths() {
    for raw in [true, false] {
        let server = webseed_naming_the_last_file(raw).await;
        let bridge = WebseedPeer::start(
            layout_with_a_raw_name(),
            vec![server.url("/")],
            BridgeOptions::default(),
        )
        .await
        .expect("bridge starts");
        let mut client = Client::ready(bridge.addr()).await;
        fetch_all(&mut client).await;
        let stats = bridge.stats();
        // A name the server does not have is not a failed webseed.
        assert_eq!((stats.bytes_fetched, stats.http_errors), (70_005, 0));
        let raw_lookups = server.source.stats.raw_lookups.lock().expect("raw").clone();
        assert_eq!(raw_lookups, vec![vec![b"c \xe9".to_vec()]], "raw: {raw}");
        let lookups = server.source.stats.lookups.lock().expect("lookups").clone();
        // The torrent path (`%25E9` on the wire) only when the raw name is missing.
        let asked_torrent_path = lookups.contains(&vec!["c %E9".to_owned()]);
        assert_eq!(asked_torrent_path, !raw, "raw: {raw}");
    }
}

/// How a [`broken_webseed`] misbehaves.
#[derive(Clone, Copy)]
enum Broken {
    /// Answers `200` with the whole file, ignoring `Range` (like `python3 -m http.server`).
    IgnoresRange,
    /// Answers `206` with the right bytes but a `Content-Range` one byte off.
    WrongContentRange,
    /// Answers `206` with a correct head and one byte too few.
    ShortBody,
    /// Answers `206` with a correct head and a byte too many.
    LongBody,
}

/// A one-request-per-connection HTTP server serving the torrent's files, badly.
async fn broken_webseed(how: Broken) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let files: HashMap<String, Vec<u8>> = FILES
        .iter()
        .enumerate()
        .map(|(i, (path, len))| {
            let encoded = path.replace(' ', "%20").replace('é', "%C3%A9");
            (format!("/{COMMIT}/{encoded}"), file_bytes(i, *len))
        })
        .collect();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let files = files.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).await.unwrap_or(0) == 1
                {
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).to_lowercase();
                let path = head.split(' ').nth(1).unwrap_or("").to_owned();
                let range = head
                    .lines()
                    .find_map(|l| l.strip_prefix("range: bytes="))
                    .and_then(|r| r.split_once('-'))
                    .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)));
                let Some(file) = files.get(&path.replace("%c3%a9", "%C3%A9")) else {
                    let _ = stream
                        .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    return;
                };
                let (first, last) = range.unwrap_or((0, file.len() - 1));
                let total = file.len();
                let (status, content_range, body) = match how {
                    Broken::IgnoresRange => ("200 OK", None, file.clone()),
                    Broken::WrongContentRange => (
                        "206 Partial Content",
                        Some(format!("bytes {}-{}/{total}", first + 1, last + 1)),
                        file[first..=last].to_vec(),
                    ),
                    Broken::ShortBody => (
                        "206 Partial Content",
                        Some(format!("bytes {first}-{last}/{total}")),
                        file[first..last].to_vec(),
                    ),
                    Broken::LongBody => (
                        "206 Partial Content",
                        Some(format!("bytes {first}-{last}/{total}")),
                        [&file[first..=last], b"!"].concat(),
                    ),
                };
                let mut response = format!("HTTP/1.1 {status}\r\nconnection: close\r\n");
                if let Some(content_range) = content_range {
                    response.push_str(&format!("content-range: {content_range}\r\n"));
                }
                // No content-length for the bad bodies: the close delimits them.
                if matches!(how, Broken::IgnoresRange) {
                    response.push_str(&format!("content-length: {}\r\n", body.len()));
                }
                response.push_str("\r\n");
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.write_all(&body).await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_server_ignoring_range_is_read_without_buffering_the_whole_file() {
    let bridge = bridge(vec![broken_webseed(Broken::IgnoresRange).await]).await;
    let mut client = Client::ready(bridge.addr()).await;
    fetch_all(&mut client).await;
    let stats = bridge.stats();
    assert_eq!((stats.bytes_fetched, stats.http_errors), (70_005, 0));
}

#[tokio::test]
async fn responses_of_the_wrong_range_or_length_fail_over() {
    for how in [
        Broken::WrongContentRange,
        Broken::ShortBody,
        Broken::LongBody,
    ] {
        let server = webseed().await;
        let broken = broken_webseed(how).await;
        let bridge = bridge(vec![broken.clone(), server.url("/")]).await;
        let mut client = Client::ready(bridge.addr()).await;
        fetch_all(&mut client).await;
        let stats = bridge.stats();
        assert_eq!(stats.per_url, vec![(broken, 0), (server.url("/"), 70_005)]);
        assert!(stats.http_errors >= 1);
    }
}

#[tokio::test]
async fn cancelled_requests_are_not_answered() {
    let server = webseed_with(Duration::from_millis(200)).await;
    let bridge = bridge(vec![server.url("/")]).await;
    let mut client = Client::ready(bridge.addr()).await;
    client.request(0, 0, BLOCK).await;
    let mut cancel = 0u32.to_be_bytes().to_vec();
    cancel.extend_from_slice(&0u32.to_be_bytes());
    cancel.extend_from_slice(&BLOCK.to_be_bytes());
    client.send(8, &cancel).await;
    client.request(0, BLOCK, BLOCK).await;
    // Only the block still wanted comes back.
    let blocks = client.blocks(1).await;
    assert_eq!(blocks[&(0, BLOCK)], expected(0, BLOCK, BLOCK));
    assert_eq!(bridge.stats().requests_served, 1);
}

#[tokio::test]
async fn idle_connections_get_keep_alives() {
    let server = webseed().await;
    let options = BridgeOptions {
        keep_alive_interval: Duration::from_millis(100),
        ..BridgeOptions::default()
    };
    let bridge = WebseedPeer::start(layout(), vec![server.url("/")], options)
        .await
        .expect("bridge starts");
    let mut client = Client::ready(bridge.addr()).await;
    assert_eq!(client.next_raw().await, Some((None, Vec::new())));
    assert_eq!(client.next_raw().await, Some((None, Vec::new())));
}

#[tokio::test]
async fn unusable_arguments_are_refused_before_binding() {
    use webseed::bridge::BridgeError;
    let start = |urls: Vec<&str>, options| {
        WebseedPeer::start(
            layout(),
            urls.into_iter().map(Into::into).collect(),
            options,
        )
    };
    let refused = start(vec![], BridgeOptions::default()).await;
    assert!(matches!(refused, Err(BridgeError::NoUrls)));
    let refused = start(vec!["ftp://x/"], BridgeOptions::default()).await;
    assert!(matches!(refused, Err(BridgeError::Url { .. })));
    let zero = BridgeOptions {
        cache_pieces: 0,
        ..BridgeOptions::default()
    };
    let refused = start(vec!["http://x/"], zero).await;
    assert!(matches!(
        refused,
        Err(BridgeError::ZeroLimit {
            option: "cache_pieces"
        })
    ));
    let mut bad = (*layout()).clone();
    bad.piece_length = 0;
    let refused = WebseedPeer::start(
        Arc::new(bad),
        vec!["http://x/".into()],
        BridgeOptions::default(),
    )
    .await;
    assert!(matches!(refused, Err(BridgeError::Layout(_))));
}

#[tokio::test]
async fn a_dropped_bridge_stops_listening() {
    let bridge = bridge(vec![dead_url().await]).await;
    let addr = bridge.addr();
    let mut client = Client::ready(addr).await;
    drop(bridge);
    assert!(client.closed().await);
    // The accept loop is aborted on drop; give the runtime a moment to close the socket.
    let mut refused = false;
    for _ in 0..50 {
        if TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "still listening on {addr}");
}
