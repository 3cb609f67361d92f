//! Getting a commit torrent's info dictionary: from a xus webseed in one
//! request (`<commit>.torrent`), else from peers over BEP 9 in rounds.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::report::{FetchEvent, FetchReport, Tally};
use crate::error_kind::{ErrorKind, failure};
use crate::swarm::session::Swarm;
use crate::torrent::format::{self, CommitTorrent};
use crate::torrent::info_hash::InfoHash;

/// Longest single metadata request before asking again with fresh peers.
const METADATA_ROUND: Duration = Duration::from_secs(8);

/// How long one webseed may take to send a `.torrent`.
const WEBSEED_TORRENT_TIMEOUT: Duration = Duration::from_secs(15);

/// librqbit never dials a peer twice within one metadata request, and a
/// peer found on the DHT may not serve the torrent yet: so peers are asked
/// in rounds of at most [`METADATA_ROUND`], each with every peer known by
/// then, until the deadline.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MetadataRounds {
    deadline: Instant,
}

impl MetadataRounds {
    pub(crate) fn until(deadline: Instant) -> Self {
        Self { deadline }
    }

    /// The length of the round starting at `now`, and whether it is the
    /// last (it runs into the deadline: its failure is final).
    pub(crate) fn next(&self, now: Instant) -> (Duration, bool) {
        let left = self.deadline.saturating_duration_since(now);
        let round = left.min(METADATA_ROUND);
        (round, round == left)
    }
}

/// When a metadata wait ends, and what its reported timings count from
/// ([`super::FetchRequest::timing_origin`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    /// Give up then.
    pub deadline: Instant,
    /// Timings count from here.
    pub origin: Instant,
}

/// Asks peers (given, from the magnet, found on the DHT) for the info
/// dictionary of `ih`, in rounds until `clock.deadline`, and parses it as a
/// commit torrent. `peers` gains every peer that answered, for the download
/// to dial.
pub(crate) async fn from_peers(
    swarm: &Swarm,
    ih: InfoHash,
    peers: &mut Vec<SocketAddr>,
    first_dht_peer: &OnceLock<Instant>,
    clock: Clock,
    report: &dyn FetchReport,
    tally: &Tally,
) -> anyhow::Result<CommitTorrent> {
    let info = info_from_peers(swarm, ih, peers, first_dht_peer, clock, report, tally).await?;
    let torrent = CommitTorrent::parse(&info)
        .context("the metadata peers sent is not a valid xus commit torrent")?;
    anyhow::ensure!(
        torrent.info_hash == ih,
        "peers sent metadata for {} instead of {ih}",
        torrent.info_hash
    );
    Ok(torrent)
}

/// The info dictionary bytes of `ih` from peers (their SHA-1 is `ih`),
/// asked in rounds until `clock.deadline`; see [`from_peers`].
pub(crate) async fn info_from_peers(
    swarm: &Swarm,
    ih: InfoHash,
    peers: &mut Vec<SocketAddr>,
    first_dht_peer: &OnceLock<Instant>,
    clock: Clock,
    report: &dyn FetchReport,
    tally: &Tally,
) -> anyhow::Result<Vec<u8>> {
    let deadline = clock.deadline;
    let feed_url = swarm.feed_url();
    if peers.is_empty() && feed_url.is_none() && !swarm.engine.finds_lan_peers() {
        return Err(failure(
            ErrorKind::Network,
            format!("no peer to ask for the metadata of {ih}: give one with --peer ADDR"),
        ));
    }
    report.event(FetchEvent::AskingForMetadata {
        info_hash: ih,
        peers: feed_url.is_none().then_some(peers.len()),
    });
    if peers.is_empty()
        && let Some(feed) = &swarm.feed
    {
        // Hand the first DHT peers straight to the metadata request
        // rather than waiting for the engine's next feed poll.
        while first_dht_peer.get().is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        peers.extend(feed.peers(ih));
    }
    let asked_from = Instant::now();
    let rounds = MetadataRounds::until(deadline);
    let (info, seen) = loop {
        let (round, last) = rounds.next(Instant::now());
        let result = swarm
            .engine
            .resolve_metadata(ih, peers, feed_url.as_deref(), round)
            .await;
        match result {
            Ok(found) => break found,
            Err(error) if last => {
                let known = match &swarm.feed {
                    Some(feed) => feed.peers(ih).len().max(peers.len()),
                    None => peers.len(),
                };
                // The engine's own error only repeats the deadline.
                tracing::debug!(%ih, error = %format!("{error:#}"), "metadata rounds over");
                return Err(failure(
                    ErrorKind::Network,
                    format!(
                        "no peer sent the metadata of {ih} within {:.0} s ({known} peer(s) known, \
                         none answered): is a seed or master of this commit running and reachable?",
                        asked_from.elapsed().as_secs_f64()
                    ),
                ));
            }
            Err(error) => {
                tracing::debug!(%ih, error = %format!("{error:#}"), "no metadata yet; asking again");
                if let Some(feed) = &swarm.feed {
                    peers.extend(feed.peers(ih));
                    peers.sort();
                    peers.dedup();
                }
            }
        }
    };
    if let Some(found) = first_dht_peer.get() {
        report.event(FetchEvent::FirstDhtPeer {
            after: found.saturating_duration_since(clock.origin),
        });
    }
    report.event(FetchEvent::MetadataReceived {
        after: clock.origin.elapsed(),
    });
    peers.extend(seen);
    tally.add(&tally.metadata, info.len() as u64);
    Ok(info)
}

/// Downloads `<webseed>/<name>.torrent` (what a xus webseed serves) from
/// the first webseed that has it, and checks it is the torrent of `ih`.
pub(crate) async fn from_webseeds(
    webseeds: &[String],
    name: &str,
    ih: InfoHash,
    report: &dyn FetchReport,
    tally: &Tally,
) -> anyhow::Result<CommitTorrent> {
    let client = reqwest::Client::builder()
        .redirect(crate::swarm::dial_policy::redirect_policy())
        .timeout(WEBSEED_TORRENT_TIMEOUT)
        .build()
        .context("building an HTTP client")?;
    let mut last_error = None;
    for base in webseeds {
        let url = format!("{}/{name}.torrent", base.trim_end_matches('/'));
        match get_bounded(&client, &url, format::MAX_TORRENT_FILE_BYTES).await {
            Ok(bytes) => {
                tally.add(&tally.metadata, bytes.len() as u64);
                let info = format::info_from_torrent_file(&bytes)
                    .with_context(|| format!("{url} is not a .torrent file"))?;
                let torrent = CommitTorrent::parse(info)
                    .with_context(|| format!("{url} is not a valid xus commit torrent"))?;
                anyhow::ensure!(
                    torrent.info_hash == ih,
                    "{url} holds the torrent of {} instead of {ih}",
                    torrent.info_hash
                );
                report.event(FetchEvent::MetadataFromWebseed { info_hash: ih, url });
                return Ok(torrent);
            }
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no webseed given")))
}

/// GETs `url`, refusing a body over `limit` bytes before reading it whole.
pub(super) async fn get_bounded(
    client: &reqwest::Client,
    url: &str,
    limit: usize,
) -> anyhow::Result<Vec<u8>> {
    let mut response = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    anyhow::ensure!(
        response.status().is_success(),
        "GET {url}: {}",
        response.status()
    );
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .with_context(|| format!("reading {url}"))?
    {
        anyhow::ensure!(
            body.len() + chunk.len() <= limit,
            "{url} is larger than {limit} bytes"
        );
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_are_short_until_the_last_runs_into_the_deadline() {
        let now = Instant::now();
        let rounds = MetadataRounds::until(now + Duration::from_secs(20));
        assert_eq!(rounds.next(now), (METADATA_ROUND, false));
        let later = now + Duration::from_secs(15);
        assert_eq!(rounds.next(later), (Duration::from_secs(5), true));
        let past = now + Duration::from_secs(30);
        assert_eq!(rounds.next(past), (Duration::ZERO, true));
    }

    #[test]
    fn a_deadline_of_exactly_one_round_is_the_last() {
        let now = Instant::now();
        let rounds = MetadataRounds::until(now + METADATA_ROUND);
        assert_eq!(rounds.next(now), (METADATA_ROUND, true));
    }
}
