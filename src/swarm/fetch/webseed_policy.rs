//! When webseeds join a download: peers come first; the webseed bridge
//! joins (through the peer feed) once no peer has been connected for
//! [`NO_PEER_GRACE`], or once the last [`RATE_WINDOW`] brought less than
//! [`WEBSEED_FLOOR_BPS`] per second.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::report::{FetchEvent, FetchReport};
use crate::swarm::discovery::PeerFeed;
use crate::swarm::engine::{Engine, TorrentHandle};
use crate::torrent::info_hash::InfoHash;

/// Download rate below which peers count as slow and webseeds join.
pub(crate) const WEBSEED_FLOOR_BPS: u64 = 1 << 20;

/// How long a download may have no peer before webseeds join.
const NO_PEER_GRACE: Duration = Duration::from_secs(2);

/// The span over which the download rate is measured.
const RATE_WINDOW: Duration = Duration::from_secs(3);

/// Why webseeds should join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Join {
    /// No peer is connected.
    NoPeer,
    /// Peers send less than the floor.
    Slow,
}

/// The decision, fed with what the download has verified over time.
#[derive(Debug)]
pub(crate) struct JoinPolicy {
    started: Instant,
    window: VecDeque<(Instant, u64)>,
}

impl JoinPolicy {
    pub(crate) fn new(started: Instant) -> Self {
        Self {
            started,
            window: VecDeque::new(),
        }
    }

    /// Takes one observation (`have` bytes verified, `peers` connected, at
    /// `now`); says whether webseeds should join now.
    pub(crate) fn observe(&mut self, now: Instant, have: u64, peers: usize) -> Option<Join> {
        self.window.push_back((now, have));
        while self
            .window
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
        {
            self.window.pop_front();
        }
        let elapsed = now.duration_since(self.started);
        if peers == 0 && elapsed >= NO_PEER_GRACE {
            return Some(Join::NoPeer);
        }
        let slow = elapsed >= RATE_WINDOW
            && self.window.front().is_some_and(|(t, first)| {
                let secs = now.duration_since(*t).as_secs_f64().max(0.5);
                (have.saturating_sub(*first) as f64 / secs) < WEBSEED_FLOOR_BPS as f64
            });
        slow.then_some(Join::Slow)
    }
}

/// Watches the download and hands the bridge to the engine (through the
/// peer feed) once [`JoinPolicy`] says so; ends then or when complete.
pub(crate) async fn run(
    handle: TorrentHandle,
    feed: Arc<PeerFeed>,
    info_hash: InfoHash,
    bridge: SocketAddr,
    report: Arc<dyn FetchReport>,
) {
    let mut policy = JoinPolicy::new(Instant::now());
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let p = Engine::progress(&handle);
        if p.finished {
            return;
        }
        if let Some(why) = policy.observe(Instant::now(), p.have, p.peers) {
            report.event(FetchEvent::WebseedsJoin {
                no_peer: why == Join::NoPeer,
                bridge,
            });
            feed.add(info_hash, [bridge]);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, millis: u64) -> Instant {
        start + Duration::from_millis(millis)
    }

    #[test]
    fn no_peer_waits_out_the_grace_period() {
        let start = Instant::now();
        let mut policy = JoinPolicy::new(start);
        assert_eq!(policy.observe(at(start, 500), 0, 0), None);
        assert_eq!(policy.observe(at(start, 1500), 0, 0), None);
        assert_eq!(policy.observe(at(start, 2000), 0, 0), Some(Join::NoPeer));
    }

    #[test]
    fn fast_peers_keep_webseeds_out() {
        let start = Instant::now();
        let mut policy = JoinPolicy::new(start);
        for step in 0..20u64 {
            // 4 MiB/s, one peer.
            let have = step * (2 << 20);
            assert_eq!(
                policy.observe(at(start, step * 500), have, 1),
                None,
                "{step}"
            );
        }
    }

    #[test]
    fn slow_peers_let_webseeds_in_after_the_window() {
        let start = Instant::now();
        let mut policy = JoinPolicy::new(start);
        let mut decision = None;
        for step in 0..10u64 {
            // 100 KiB/s.
            decision = policy.observe(at(start, step * 500), step * 50 * 1024, 3);
            if decision.is_some() {
                assert!(step * 500 >= 3000, "joined after {} ms", step * 500);
                break;
            }
        }
        assert_eq!(decision, Some(Join::Slow));
    }

    #[test]
    fn a_stall_after_a_fast_start_counts_as_slow() {
        let start = Instant::now();
        let mut policy = JoinPolicy::new(start);
        let mut have = 0;
        for step in 0..8u64 {
            have += 4 << 20;
            assert_eq!(policy.observe(at(start, step * 500), have, 2), None);
        }
        let mut joined = None;
        for step in 8..20u64 {
            joined = policy.observe(at(start, step * 500), have, 2);
            if joined.is_some() {
                break;
            }
        }
        assert_eq!(joined, Some(Join::Slow));
    }
}
