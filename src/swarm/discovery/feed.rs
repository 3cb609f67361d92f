//! The loopback peer feed: a minimal HTTP tracker, bound to 127.0.0.1, that
//! hands librqbit the peers xus found on the DHT.
//!
//! librqbit 9.1 has no public call to add a peer to a running torrent, but it
//! polls a torrent's trackers for as long as the torrent lives. Naming this
//! feed as the torrent's only tracker turns every DHT discovery, however
//! late, into a peer the session dials. The URL carries a random token so
//! that another local process cannot read it by guessing.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::torrent::info_hash::InfoHash;

/// Most peers kept per infohash; a swarm of a small cluster is far below.
const MAX_PEERS_PER_TORRENT: usize = 500;

/// Seconds the feed asks clients to wait between polls.
const POLL_SECONDS: u32 = 1;

type PeerMap = Arc<Mutex<HashMap<InfoHash, Vec<SocketAddr>>>>;

/// A running feed; stops when dropped.
pub struct PeerFeed {
    url: String,
    peers: PeerMap,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct FeedState {
    token: Arc<str>,
    peers: PeerMap,
}

impl PeerFeed {
    /// Binds 127.0.0.1 on a free port and starts answering.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
            .await
            .context("binding the loopback peer feed")?;
        let addr = listener.local_addr()?;
        let mut token = [0u8; 16];
        getrandom::fill(&mut token).map_err(|e| anyhow::anyhow!("random token: {e}"))?;
        let token = crate::hex::encode(&token);
        let peers = PeerMap::default();
        let state = FeedState {
            token: Arc::from(token.as_str()),
            peers: peers.clone(),
        };
        let app = axum::Router::new()
            .route("/{token}/announce", get(announce))
            .with_state(state);
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::warn!(%error, "loopback peer feed stopped");
            }
        });
        Ok(Self {
            url: format!("http://{addr}/{token}/announce"),
            peers,
            task,
        })
    }

    /// The tracker URL to give the engine.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Offers `found` for `infohash`; returns how many were new.
    pub fn add(&self, infohash: InfoHash, found: impl IntoIterator<Item = SocketAddr>) -> usize {
        let Ok(mut map) = self.peers.lock() else {
            return 0;
        };
        let list = map.entry(infohash).or_default();
        let mut new = 0;
        for peer in found {
            if list.len() >= MAX_PEERS_PER_TORRENT {
                break;
            }
            // DHT answers come from strangers: the dial policy decides.
            if let Err(why) = crate::swarm::dial_policy::check_peer(peer) {
                tracing::debug!(%peer, %why, "not handing a DHT peer to the engine");
                continue;
            }
            if !list.contains(&peer) {
                list.push(peer);
                new += 1;
            }
        }
        new
    }

    /// Peers known for `infohash`.
    pub fn peers(&self, infohash: InfoHash) -> Vec<SocketAddr> {
        self.peers
            .lock()
            .ok()
            .and_then(|map| map.get(&infohash).cloned())
            .unwrap_or_default()
    }
}

impl Drop for PeerFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn announce(
    State(state): State<FeedState>,
    Path(token): Path<String>,
    RawQuery(query): RawQuery,
) -> impl IntoResponse {
    if token != *state.token {
        return (StatusCode::NOT_FOUND, Vec::new());
    }
    let Some(infohash) = query.as_deref().and_then(info_hash_param) else {
        return (StatusCode::OK, failure("missing or bad info_hash"));
    };
    let peers = state
        .peers
        .lock()
        .ok()
        .and_then(|map| map.get(&infohash).cloned())
        .unwrap_or_default();
    (StatusCode::OK, compact_response(&peers))
}

/// Longest `info_hash` value read: 20 bytes, each escaped as `%XX`.
const MAX_INFO_HASH_PARAM: usize = 20 * 3;

/// The `info_hash` of an announce query: 20 raw bytes, percent-encoded as
/// trackers read it (`+` for a space, strict `%XX` escapes); anything that
/// does not decode to exactly 20 bytes is refused.
fn info_hash_param(query: &str) -> Option<InfoHash> {
    let value = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("info_hash="))?;
    if value.len() > MAX_INFO_HASH_PARAM {
        return None;
    }
    let bytes = xus_codec::percent::decode_form(value).ok()?;
    InfoHash::from_slice(&bytes)
}

/// `d8:intervali<n>e5:peers<compact v4>6:peers6<compact v6>e` (BEP 23, BEP 7).
fn compact_response(peers: &[SocketAddr]) -> Vec<u8> {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for peer in peers {
        match peer.ip() {
            IpAddr::V4(ip) => {
                v4.extend_from_slice(&ip.octets());
                v4.extend_from_slice(&peer.port().to_be_bytes());
            }
            IpAddr::V6(ip) => {
                v6.extend_from_slice(&ip.octets());
                v6.extend_from_slice(&peer.port().to_be_bytes());
            }
        }
    }
    let mut out = format!("d8:intervali{POLL_SECONDS}e5:peers{}:", v4.len()).into_bytes();
    out.extend_from_slice(&v4);
    out.extend_from_slice(format!("6:peers6{}:", v6.len()).as_bytes());
    out.extend_from_slice(&v6);
    out.push(b'e');
    out
}

fn failure(reason: &str) -> Vec<u8> {
    format!("d14:failure reason{}:{reason}e", reason.len()).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_hash_is_read_from_raw_percent_encoding() {
        let q = "info_hash=%00%01%02%03%04%05%06%07%08%09%0a%0b%0c%0d%0e%0f%10%11%12%13&port=1";
        let expected: Vec<u8> = (0u8..20).collect();
        assert_eq!(info_hash_param(q).map(|h| h.0.to_vec()), Some(expected));
        assert_eq!(info_hash_param("info_hash=%zz"), None);
        assert_eq!(info_hash_param("info_hash=%0"), None);
        // `u8::from_str_radix` takes a sign: `%+1` must not read as `%01`.
        let signed = q.replace("%01", "%+1");
        assert_eq!(info_hash_param(&signed), None);
        let upper = q.replace("%0a", "%0A");
        assert_eq!(info_hash_param(&upper), info_hash_param(q));
        assert_eq!(info_hash_param("port=1"), None);
        assert_eq!(
            info_hash_param(&format!("info_hash={}", "a".repeat(21))),
            None
        );
    }

    #[test]
    fn response_is_compact_bencode() {
        let peers: Vec<SocketAddr> = vec![
            "127.0.0.1:6881".parse().expect("v4"),
            "[::1]:7000".parse().expect("v6"),
        ];
        let body = compact_response(&peers);
        let mut expected = b"d8:intervali1e5:peers6:\x7f\x00\x00\x01\x1a\xe16:peers618:".to_vec();
        expected.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
        expected.extend_from_slice(&7000u16.to_be_bytes());
        expected.push(b'e');
        assert_eq!(body, expected);
    }
}
