//! The HTTP servers under a slow-loris flood (issue 15 item 2): `xus webseed`,
//! and a topic master's HTTP address, which serves pushes and `/status` next
//! to its webseed.
//!
//! The attacker opens 260 connections from 127.0.0.3 (more than the server's
//! 256 slots), sends half a request header on each, trickles a byte a second
//! on a quarter of them, and opens a new connection whenever the server
//! closes one. What must hold: a client from another address (127.0.0.2, or
//! `xus push` from 127.0.0.1) is answered at once, and every slow connection
//! is closed within the header deadline (5 s) and a margin. Before the
//! deadline and the per-address cap, the flood held every slot: the good
//! client waited in the backlog until the attacker let go.

mod util;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use util::clients::Lines;
use util::cluster::*;
use util::*;

/// Connections the attacker holds open at once: more than the servers' 256 slots.
const FLOOD: usize = 260;
/// Where the attacker connects from.
const ATTACKER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
/// Where the good client connects from.
const GOOD: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// The servers' request-header deadline (`ServerOptions::header_timeout`'s default).
const HEADER_DEADLINE: Duration = Duration::from_secs(5);
/// Slack on the deadline for a loaded two-core machine.
const MARGIN: Duration = Duration::from_secs(3);
/// How long the good client may wait for its answer under the flood.
const ANSWERED_WITHIN: Duration = Duration::from_secs(1);
/// How long the good client waits before giving up (so that a failure is quick).
const GIVE_UP: Duration = Duration::from_secs(5);

/// A connection from `from` (any address of 127.0.0.0/8 is loopback on Linux) to `to`.
async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from.into(), 0))?;
    socket.connect(to).await
}

/// How long one slow connection stayed open.
#[derive(Clone, Copy, Debug)]
struct Held {
    age: Duration,
    /// Whether the server closed it (otherwise the flood stopped first).
    closed: bool,
}

/// A slow-loris attacker from [`ATTACKER`]: [`FLOOD`] connections, each sending half a request
/// header, a quarter of them trickling a byte a second, each reopened when the server closes it.
struct Flood {
    started: Instant,
    stop: CancellationToken,
    slots: Vec<JoinHandle<Vec<Held>>>,
}

impl Flood {
    /// Opens every connection (all of them, before returning) and keeps them open.
    async fn start(target: SocketAddr) -> Self {
        let started = Instant::now();
        let stop = CancellationToken::new();
        let mut slots = Vec::with_capacity(FLOOD);
        for slot in 0..FLOOD {
            let stream = connect_from(ATTACKER, target)
                .await
                .expect("the flood's connection");
            let trickle = slot % 4 == 0;
            slots.push(tokio::spawn(hold_slot(
                stream,
                target,
                trickle,
                stop.clone(),
            )));
        }
        // Lets the server accept what it will.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Self {
            started,
            stop,
            slots,
        }
    }

    /// Stops the attacker: every connection it opened, and how long each stayed open.
    async fn stop(self) -> Vec<Held> {
        self.stop.cancel();
        let mut held = Vec::new();
        for slot in self.slots {
            held.extend(slot.await.expect("flood task"));
        }
        held
    }
}

/// One of the flood's slots: a slow connection, a new one each time the server closes it.
async fn hold_slot(
    first: TcpStream,
    target: SocketAddr,
    trickle: bool,
    stop: CancellationToken,
) -> Vec<Held> {
    let mut held = Vec::new();
    let mut stream = Some(first);
    while !stop.is_cancelled() {
        let current = match stream.take() {
            Some(stream) => stream,
            None => match connect_from(ATTACKER, target).await {
                Ok(stream) => stream,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        let outcome = slow_loris(current, trickle, &stop).await;
        held.push(outcome);
        if outcome.closed && outcome.age < Duration::from_secs(1) {
            // Refused at once: retry at a pace a two-core test machine can take.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    held
}

/// Sends half a request header on `stream`, then a byte a second when `trickle`, until the
/// server closes the connection or `stop`.
async fn slow_loris(stream: TcpStream, trickle: bool, stop: &CancellationToken) -> Held {
    let opened = Instant::now();
    let done = |closed| Held {
        age: opened.elapsed(),
        closed,
    };
    let (mut read, mut write) = stream.into_split();
    if write
        .write_all(b"GET / HTTP/1.1\r\nHost: flood\r\nX-Slow: ")
        .await
        .is_err()
    {
        return done(true);
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut buf = [0; 512];
    loop {
        tokio::select! {
            got = read.read(&mut buf) => match got {
                Ok(0) | Err(_) => return done(true),
                Ok(_) => {}
            },
            _ = tick.tick(), if trickle => {
                if write.write_all(b"a").await.is_err() {
                    return done(true);
                }
            }
            () = stop.cancelled() => return done(false),
        }
    }
}

/// Checks that the server closed every slow connection within the deadline and a margin, and
/// returns a summary for the test's output.
fn assert_all_cut(held: &[Held]) -> String {
    let limit = HEADER_DEADLINE + MARGIN;
    let too_long: Vec<&Held> = held.iter().filter(|h| h.age > limit).collect();
    assert!(
        too_long.is_empty(),
        "{} of {} slow connections stayed open longer than {limit:?}: {:?}",
        too_long.len(),
        held.len(),
        &too_long[..too_long.len().min(5)]
    );
    let refused = held
        .iter()
        .filter(|h| h.closed && h.age < Duration::from_secs(1));
    let cut = held
        .iter()
        .filter(|h| h.closed && h.age >= Duration::from_secs(1));
    let longest = held.iter().map(|h| h.age).max().unwrap_or_default();
    format!(
        "{} slow connections: {} refused at once, {} cut by the header deadline, longest {longest:?}",
        held.len(),
        refused.count(),
        cut.count()
    )
}

/// One HTTP/1.1 request from `from`, `Connection: close`: the status, the body and how long it
/// took, or a panic naming `what` if no answer came within [`GIVE_UP`].
async fn request_from(
    from: Ipv4Addr,
    target: SocketAddr,
    path: &str,
    what: &str,
) -> (u16, Vec<u8>, Duration) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n");
    exchange_from(from, target, request.into_bytes(), what).await
}

/// `POST path` with `body`, as [`request_from`].
async fn post_from(
    from: Ipv4Addr,
    target: SocketAddr,
    path: &str,
    body: &[u8],
    what: &str,
) -> (u16, Vec<u8>, Duration) {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    exchange_from(from, target, request, what).await
}

/// Sends `request` (head and body) from `from` and reads the whole answer.
async fn exchange_from(
    from: Ipv4Addr,
    target: SocketAddr,
    request: Vec<u8>,
    what: &str,
) -> (u16, Vec<u8>, Duration) {
    let started = Instant::now();
    let exchange = async {
        let mut stream = connect_from(from, target).await.expect("connect");
        stream
            .write_all(&request)
            .await
            .expect("sending the request");
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .await
            .expect("reading the answer");
        raw
    };
    let raw = tokio::time::timeout(GIVE_UP, exchange)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {GIVE_UP:?} under the flood"));
    let took = started.elapsed();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("{what}: no header end in {:?}", text(&raw)));
    let status = text(&raw[..split])
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("{what}: bad status line in {:?}", text(&raw)));
    (status, raw[split + 4..].to_vec(), took)
}

/// A running `xus webseed`.
struct Webseed {
    _guard: ChildGuard,
    addr: SocketAddr,
}

/// Starts `xus webseed --repo REPO --listen 127.0.0.1:0` and waits for its `webseed` line.
fn spawn_webseed(repo: &Path) -> Webseed {
    let mut child = xus_command()
        .args(["webseed", "--repo"])
        .arg(repo)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawning xus webseed");
    let stdout = child.stdout.take().expect("stdout");
    let guard = ChildGuard {
        child,
        name: "xus webseed".into(),
    };
    let mut lines = Lines::new("xus webseed", stdout);
    let url = lines.expect(
        "`webseed <url>`",
        Duration::from_secs(120),
        String::new,
        |line| line.strip_prefix("webseed ").map(str::to_owned),
    );
    let addr = url
        .strip_prefix("http://")
        .and_then(|rest| rest.strip_suffix('/'))
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("webseed URL {url:?} is not http://<addr>/"));
    Webseed {
        _guard: guard,
        addr,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xus_webseed_serves_other_addresses_through_a_slow_loris_flood() {
    const HELLO: &[u8] = b"hello through the flood\n";
    let repo = TestRepo::new();
    repo.write("hello.txt", HELLO);
    let commit = repo.commit("one file");
    let webseed = spawn_webseed(repo.path());
    let file = format!("/{commit}/hello.txt");

    let flood = Flood::start(webseed.addr).await;
    let (status, body, first) = request_from(GOOD, webseed.addr, &file, "a GET").await;
    assert_eq!((status, body.as_slice()), (200, HELLO));
    // Once the first wave is past its deadline, with the attacker still reconnecting.
    tokio::time::sleep_until((flood.started + HEADER_DEADLINE + MARGIN).into()).await;
    let (status, body, later) = request_from(GOOD, webseed.addr, &file, "a later GET").await;
    assert_eq!((status, body.as_slice()), (200, HELLO));
    let summary = assert_all_cut(&flood.stop().await);

    eprintln!("under the flood: GET answered in {first:?}, then {later:?}; {summary}");
    for took in [first, later] {
        assert!(
            took < ANSWERED_WITHIN,
            "a GET took {took:?} under the flood"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_takes_pushes_and_answers_status_through_a_slow_loris_flood() {
    let writer = Writer::new(None);
    writer.write("README", "a world\n");
    let base = writer.commit("base");
    let mut cluster = Cluster::new(&[&writer]);
    cluster.start_master();
    let master: SocketAddr = ([127, 0, 0, 1], cluster.http_port).into();
    let push = |mut command: std::process::Command| {
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let out = run_xus_with(&mut command, Duration::from_secs(60));
            (out, started.elapsed())
        })
    };
    let (out, quiet_push) = push(writer.push_command(&cluster.url()))
        .await
        .expect("push task");
    assert_eq!(pushed(&out), base);

    let flood = Flood::start(master).await;
    let (status, body, first) = request_from(GOOD, master, "/status", "GET /status").await;
    assert_eq!(status, 200, "{}", text(&body));
    assert!(text(&body).contains(&base), "{}", text(&body));

    // `xus push` connects from 127.0.0.1, neither the attacker's address nor the prober's.
    writer.write("README", "a world, pushed through a flood\n");
    let next = writer.commit("next");
    let (out, flooded_push) = push(writer.push_command(&cluster.url()))
        .await
        .expect("push task");
    assert_eq!(pushed(&out), next, "{}", text(&out.stderr));
    // The same push again, signed by the writer and sent from another
    // address: the master has the commit and the branch is on it, so its
    // answer needs no download; under the flood it comes within a second.
    let again = signed_push(&writer, &cluster, &next);
    let (status, body, repeated_push) =
        post_from(GOOD, master, "/push", &again, "the same push again").await;
    assert_eq!(status, 200, "{}", text(&body));
    assert!(text(&body).contains(&next), "{}", text(&body));

    tokio::time::sleep_until((flood.started + HEADER_DEADLINE + MARGIN).into()).await;
    let (status, body, later) = request_from(GOOD, master, "/status", "a later GET /status").await;
    assert_eq!(status, 200, "{}", text(&body));
    assert!(text(&body).contains(&next), "{}", text(&body));
    let summary = assert_all_cut(&flood.stop().await);

    eprintln!(
        "under the flood: /status answered in {first:?}, then {later:?}; push took \
         {flooded_push:?} (without a flood: {quiet_push:?}), the same push again answered in \
         {repeated_push:?}; {summary}"
    );
    for took in [first, later] {
        assert!(
            took < ANSWERED_WITHIN,
            "GET /status took {took:?} under the flood"
        );
    }
    assert!(
        repeated_push < ANSWERED_WITHIN,
        "a push the master answers at once took {repeated_push:?} under the flood"
    );
    assert!(
        flooded_push < quiet_push + Duration::from_secs(5),
        "the push took {flooded_push:?} under the flood, {quiet_push:?} without"
    );
}

/// The body of `POST /push` moving `main` to `commit` (which `writer` has),
/// signed with `writer`'s key now, as `xus push` would send it.
fn signed_push(writer: &Writer, cluster: &Cluster, commit: &str) -> Vec<u8> {
    use xus::topic::push_request::{PushRequest, PushedCommit, SignedPush};
    let status = cluster.status_json();
    let topic = status["topics"][0]["id"].as_str().expect("topic id");
    let secret =
        xus::topic::writer_key::WriterSecret::load(&writer.machine.path().join("writer.secret"))
            .expect("the writer's key");
    let repo = git2::Repository::open(&writer.repo).expect("the writer's repository");
    let commit = xus::git::object::ObjectId::from_hex(commit).expect("commit id");
    let torrent = xus::torrent::format::build(&repo, commit).expect("the commit's torrent");
    let request = PushRequest {
        topic: tracker_free::TopicKey::from_hex(topic).expect("topic key"),
        branch: tracker_free::Branch::new("main").expect("branch"),
        commits: vec![PushedCommit {
            commit,
            info_hash: torrent.info_hash,
        }],
        peer_port: 0,
        time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs(),
        writer: secret.public(),
    };
    SignedPush::sign(request, &secret).to_body()
}

/// The master's body grace (`src/master/slow_body.rs`): a body must come at
/// 16 KiB/s on average after this.
const BODY_GRACE: Duration = Duration::from_secs(10);

/// Connections trickling a `/push` body: the header arrives whole (so the
/// header deadline is over), then a byte a second of a 200,000-byte body.
const TRICKLERS: usize = 24;

/// Sends a whole `POST /push` header and trickles its body a byte a second;
/// returns how long the connection stayed open and what the server said.
async fn trickle_body(stream: TcpStream, stop: CancellationToken) -> (Duration, Vec<u8>) {
    let opened = Instant::now();
    let (mut read, mut write) = stream.into_split();
    let header = "POST /push HTTP/1.1\r\nHost: flood\r\nContent-Length: 200000\r\n\r\n";
    if write.write_all(header.as_bytes()).await.is_err() {
        return (opened.elapsed(), Vec::new());
    }
    let mut answer = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut buf = [0; 1024];
    loop {
        tokio::select! {
            got = read.read(&mut buf) => match got {
                Ok(0) | Err(_) => return (opened.elapsed(), answer),
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            },
            _ = tick.tick() => {
                // The server may stop reading once it answered; keep
                // waiting for it to close.
                let _ = write.write_all(b"d").await;
            }
            () = stop.cancelled() => return (opened.elapsed(), answer),
        }
    }
}

/// Issue 15 item 2: a `/push` body trickled a byte a second is cut (408)
/// once it falls behind the master's body rate, and a push meanwhile goes
/// through. Before, only the header had a deadline: the body kept its slot
/// for as long as each byte came within the 15-minute idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_push_body_is_cut_and_pushes_go_on() {
    let writer = Writer::new(None);
    writer.write("README", "a world\n");
    let base = writer.commit("base");
    let mut cluster = Cluster::new(&[&writer]);
    cluster.start_master();
    let master: SocketAddr = ([127, 0, 0, 1], cluster.http_port).into();
    let stop = CancellationToken::new();
    let mut tricklers = Vec::new();
    for _ in 0..TRICKLERS {
        let stream = connect_from(ATTACKER, master).await.expect("connect");
        tricklers.push(tokio::spawn(trickle_body(stream, stop.clone())));
    }
    let mut command = writer.push_command(&cluster.url());
    let (out, pushing) = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        (
            run_xus_with(&mut command, Duration::from_secs(60)),
            started.elapsed(),
        )
    })
    .await
    .expect("push task");
    assert_eq!(pushed(&out), base, "{}", text(&out.stderr));
    let watchdog = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(BODY_GRACE + MARGIN * 3).await;
            stop.cancel();
        })
    };
    let mut ages = Vec::new();
    for trickler in tricklers {
        let (age, answer) = trickler.await.expect("trickler");
        let answer = text(&answer);
        assert!(
            age < BODY_GRACE + MARGIN,
            "a trickled body held its connection {age:?}; the server said {answer:?}"
        );
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
        ages.push(age);
    }
    watchdog.abort();
    ages.sort();
    eprintln!(
        "{TRICKLERS} trickled bodies cut after {:?} to {:?}; the push meanwhile took {pushing:?}",
        ages[0],
        ages[ages.len() - 1]
    );
}
