//! A running DHT node: announce and find peers (BEP 5), read and write
//! branch heads (BEP 44). A thin layer over `mainline` that turns its items
//! into verified [`SignedHead`]s and its errors into ours.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_lite::StreamExt;
use mainline::async_dht::{AsyncDht, GetStream};
use mainline::errors::{PutMutableError, PutQueryError};
use mainline::{Id, MutableItem};
use tracing::debug;

use crate::config::{ConfigError, DhtConfig};
use crate::head::{Branch, Head, HeadLookup, InfoHash, Refusal, SignedHead, ValueForm};
use crate::index::{IndexDefault, SignedIndex, TopicIndex, merge_indexes};
use crate::observe::{LookupKind, LookupObserver, LookupOutcome};
use crate::topic::{TopicKey, TopicSecret};

/// How many times a head write re-reads and retries after a concurrent write.
const PUBLISH_ATTEMPTS: u32 = 6;

/// Answers carrying the newest head a reader's lookup needs before it may
/// end early ([`Dht::resolve_head`]): BEP 44 stores an item on the 8-20
/// closest nodes, so three agreeing is common on any healthy DHT and one or
/// two stale nodes cannot decide alone.
pub const AGREEING_ANSWERS: u32 = 3;

/// Shortest time a reader's lookup keeps listening once the answers agree,
/// for a newer head on a slower node. The grace is half the time the lookup
/// took to agree, within [`HEAD_GRACE`] and [`MAX_HEAD_GRACE`]: answers of
/// close nodes arrive within a round trip of each other, so a lookup that
/// agreed in 30 ms on a LAN waits 20 ms more, and one that took a second on
/// the internet waits 250 ms. A newer head arriving in the grace must
/// gather its own agreement.
pub const HEAD_GRACE: Duration = Duration::from_millis(20);

/// Longest grace (see [`HEAD_GRACE`]).
pub const MAX_HEAD_GRACE: Duration = Duration::from_millis(250);

/// Feeds a lookup's items to `accept` (true: a valid answer) until the
/// stream ends or, with `early`, until the valid answers agree and still do
/// a grace later (see [`Dht::resolve_head`]). Returns the answers counted
/// and whether the lookup ended early.
async fn read_items(
    items: &mut GetStream<MutableItem>,
    early: bool,
    mut accept: impl FnMut(&MutableItem) -> bool,
) -> (Answers, bool) {
    let mut answers = Answers::default();
    let mut settle_at: Option<tokio::time::Instant> = None;
    let started = std::time::Instant::now();
    loop {
        let next = match settle_at {
            Some(at) => match tokio::time::timeout_at(at, items.next()).await {
                Ok(next) => next,
                Err(_) if answers.agree() => return (answers, true),
                Err(_) => {
                    settle_at = None;
                    continue;
                }
            },
            None => items.next().await,
        };
        let Some(item) = next else {
            return (answers, false);
        };
        if !accept(&item) {
            continue;
        }
        answers.add(item.seq());
        if early && settle_at.is_none() && answers.agree() {
            let grace = (started.elapsed() / 2).clamp(HEAD_GRACE, MAX_HEAD_GRACE);
            settle_at = Some(tokio::time::Instant::now() + grace);
        }
    }
}

/// The valid answers a head lookup got so far, by seq.
#[derive(Default)]
struct Answers {
    by_seq: std::collections::BTreeMap<i64, u32>,
    total: u32,
}

impl Answers {
    fn add(&mut self, seq: i64) {
        *self.by_seq.entry(seq).or_default() += 1;
        self.total += 1;
    }

    /// Enough answers carry the newest seq, and they outnumber the older.
    fn agree(&self) -> bool {
        let Some((_, &newest)) = self.by_seq.last_key_value() else {
            return false;
        };
        newest >= AGREEING_ANSWERS && newest > self.total - newest
    }
}

/// A node of the mainline DHT. Cheap to share behind an `Arc`; the node runs
/// on its own thread until the last handle is dropped.
pub struct Dht {
    inner: AsyncDht,
    observer: Option<Arc<dyn LookupObserver>>,
}

/// Returned by [`Dht::start`].
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The UDP socket could not be opened.
    #[error("opening the DHT socket (port {port:?}): {source}")]
    Bind {
        /// Port asked for.
        port: Option<u16>,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Returned by [`Dht::announce`].
#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    /// The routing table is empty: the node reached no bootstrap node.
    #[error("no DHT node is reachable to announce {0} to")]
    NoNodes(InfoHash),
    /// Nodes were found but none took the announce.
    #[error("announcing {infohash} failed: {reason}")]
    Failed {
        /// What was announced.
        infohash: InfoHash,
        /// The DHT's answer.
        reason: String,
    },
}

/// Returned by [`Dht::publish_head`] and [`Dht::republish`].
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The routing table is empty: the node reached no bootstrap node.
    #[error("no DHT node is reachable to store the head of {branch}")]
    NoNodes {
        /// The branch.
        branch: Branch,
    },
    /// Other writers kept winning.
    #[error(
        "the head of {branch} kept changing under us ({attempts} attempts); another writer is publishing"
    )]
    Contended {
        /// The branch.
        branch: Branch,
        /// How many times it was tried.
        attempts: u32,
    },
    /// The DHT already holds a newer head than the one being stored again:
    /// nothing to refresh (read the newer one instead).
    #[error("the DHT holds a newer head of {branch} than the one being refreshed")]
    Superseded {
        /// The branch.
        branch: Branch,
    },
    /// The topic's branch index could not be stored.
    #[error("storing the topic's branch index failed: {reason}")]
    Index {
        /// The DHT's answer.
        reason: String,
    },
    /// Nodes refused or never answered.
    #[error("storing the head of {branch} failed: {reason}")]
    Failed {
        /// The branch.
        branch: Branch,
        /// The DHT's answer.
        reason: String,
    },
}

/// Peers for one infohash as DHT nodes report them; a lookup ends when the
/// closest nodes have all answered or timed out.
pub struct PeerStream {
    batches: GetStream<Vec<SocketAddrV4>>,
    /// Told once, when the lookup ends or the stream is dropped before.
    observer: Option<Arc<dyn LookupObserver>>,
    started: Instant,
    found: bool,
}

impl PeerStream {
    /// The next batch of peers, or `None` once the lookup is over.
    pub async fn next(&mut self) -> Option<Vec<SocketAddrV4>> {
        let next = self.batches.next().await;
        match &next {
            Some(batch) => self.found |= !batch.is_empty(),
            None => self.report(),
        }
        next
    }

    fn report(&mut self) {
        if let Some(observer) = self.observer.take() {
            let outcome = if self.found {
                LookupOutcome::Found
            } else {
                LookupOutcome::Empty
            };
            observer.observe(LookupKind::Peers, outcome, self.started.elapsed());
        }
    }
}

impl Drop for PeerStream {
    /// A caller that stops reading once it has enough peers still ends a
    /// lookup: it counts, found or not by then.
    fn drop(&mut self) {
        self.report();
    }
}

/// The addresses a node may send to. Other nodes name them (every answer
/// lists nodes to ask next), so a lying node could otherwise make this one
/// send datagrams to any address: never to one no node can hold (the
/// unspecified address, port 0) or one that reaches many hosts (broadcast,
/// multicast); with `loopback_only`, nowhere outside 127.0.0.0/8.
fn destination_rule(loopback_only: bool) -> fn(SocketAddrV4) -> bool {
    if loopback_only {
        |addr| addr.ip().is_loopback() && sendable(addr)
    } else {
        sendable
    }
}

fn sendable(addr: SocketAddrV4) -> bool {
    let ip = addr.ip();
    addr.port() != 0 && !ip.is_unspecified() && !ip.is_broadcast() && !ip.is_multicast()
}

impl Dht {
    /// Starts a node with `config`. Returns once its socket is bound;
    /// bootstrapping continues in the background.
    pub fn start(config: &DhtConfig) -> Result<Self, StartError> {
        let bootstrap = config.resolve_bootstrap()?;
        let mut builder = mainline::Dht::builder();
        match &bootstrap {
            Some(nodes) if nodes.is_empty() => {
                builder.no_bootstrap();
            }
            Some(nodes) => {
                builder.bootstrap(nodes);
            }
            None => {}
        }
        if let Some(port) = config.port {
            builder.port(port);
        }
        if let Some(bind) = config.bind {
            builder.bind_address(bind);
        }
        if config.server_mode {
            builder.server_mode();
        }
        builder.request_timeout(config.request_timeout);
        builder.destination_filter(destination_rule(config.loopback_only));
        let dht = builder.build().map_err(|source| StartError::Bind {
            port: config.port,
            source,
        })?;
        Ok(Self {
            inner: dht.as_async(),
            observer: None,
        })
    }

    /// Starts `count` server nodes on `bind` that know each other and
    /// nobody else: a private DHT, for a cluster with no Internet or a test.
    /// `loopback_only` as [`DhtConfig::loopback_only`].
    pub fn start_private_network(
        count: usize,
        bind: Ipv4Addr,
        loopback_only: bool,
    ) -> Result<Vec<Self>, StartError> {
        let testnet = mainline::Testnet::builder(count)
            .bind_address(bind)
            .destination_filter(destination_rule(loopback_only))
            .build()
            .map_err(|source| StartError::Bind { port: None, source })?;
        Ok(testnet
            .nodes
            .into_iter()
            .map(|node| Self {
                inner: node.as_async(),
                observer: None,
            })
            .collect())
    }

    /// Reports every lookup and write this node finishes to `observer`
    /// (an operator's metrics).
    pub fn observed_by(mut self, observer: Arc<dyn LookupObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    fn observe(&self, kind: LookupKind, outcome: LookupOutcome, started: Instant) {
        if let Some(observer) = &self.observer {
            observer.observe(kind, outcome, started.elapsed());
        }
    }

    /// [`Dht::observe`] for a write's result.
    fn observe_write<T, E>(&self, kind: LookupKind, result: &Result<T, E>, started: Instant) {
        let outcome = match result {
            Ok(_) => LookupOutcome::Stored,
            Err(_) => LookupOutcome::Failed,
        };
        self.observe(kind, outcome, started);
    }

    /// The UDP address this node listens on.
    pub async fn local_addr(&self) -> SocketAddrV4 {
        self.inner.info().await.local_addr()
    }

    /// Waits for the first bootstrap to finish; false if no node answered.
    pub async fn bootstrapped(&self) -> bool {
        self.inner.bootstrapped().await
    }

    /// Tells the nodes closest to `infohash` that this machine serves it on
    /// TCP `port`. Entries expire after about 30 minutes: call again before.
    pub async fn announce(&self, infohash: InfoHash, port: u16) -> Result<(), AnnounceError> {
        let started = Instant::now();
        let result = self.announce_unobserved(infohash, port).await;
        self.observe_write(LookupKind::Announce, &result, started);
        result
    }

    async fn announce_unobserved(
        &self,
        infohash: InfoHash,
        port: u16,
    ) -> Result<(), AnnounceError> {
        match self
            .inner
            .announce_peer(Id::from(infohash.0), Some(port))
            .await
        {
            Ok(_) => Ok(()),
            Err(PutQueryError::NoClosestNodes) => Err(AnnounceError::NoNodes(infohash)),
            Err(other) => Err(AnnounceError::Failed {
                infohash,
                reason: other.to_string(),
            }),
        }
    }

    /// Starts a peer lookup for `infohash`.
    pub fn peers(&self, infohash: InfoHash) -> PeerStream {
        PeerStream {
            batches: self.inner.get_peers(Id::from(infohash.0)),
            observer: self.observer.clone(),
            started: Instant::now(),
            found: false,
        }
    }

    /// Reads every copy of a branch head the closest nodes hold, waiting
    /// for the whole lookup (every node asked answers or times out): what a
    /// publisher needs before it picks the next seq. Items that fail their
    /// signature or do not decode are listed in [`HeadLookup::refused`],
    /// never in the candidates.
    pub async fn lookup_head(&self, topic: &TopicKey, branch: &Branch) -> HeadLookup {
        self.lookup_head_with(topic, branch, false).await
    }

    /// Reads a branch head for a reader: as [`Dht::lookup_head`], but ends
    /// as soon as the answers agree instead of waiting out nodes that never
    /// answer (a whole request timeout, 2 s by default). It ends once
    /// [`AGREEING_ANSWERS`] answers carry the newest valid head and they
    /// outnumber the answers carrying older ones, and that still holds a
    /// grace later ([`HEAD_GRACE`]); a newer head arriving meanwhile must
    /// gather its own agreement. A stale minority therefore does not win, and the
    /// rollback and equivocation guards ([`HeadLookup::choose`]) judge the
    /// answers exactly as before.
    pub async fn resolve_head(&self, topic: &TopicKey, branch: &Branch) -> HeadLookup {
        self.lookup_head_with(topic, branch, true).await
    }

    async fn lookup_head_with(&self, topic: &TopicKey, branch: &Branch, early: bool) -> HeadLookup {
        let started = Instant::now();
        let lookup = self.lookup_head_unobserved(topic, branch, early).await;
        let outcome = if lookup.candidates.is_empty() {
            LookupOutcome::Empty
        } else {
            LookupOutcome::Found
        };
        self.observe(LookupKind::HeadGet, outcome, started);
        lookup
    }

    async fn lookup_head_unobserved(
        &self,
        topic: &TopicKey,
        branch: &Branch,
        early: bool,
    ) -> HeadLookup {
        let mut detailed = self
            .inner
            .get_mutable_detailed(&topic.0, Some(branch.as_bytes()), None);
        let mut lookup = HeadLookup::default();
        let (answers, ended_early) = read_items(&mut detailed.items, early, |item| {
            let known = lookup
                .candidates
                .iter()
                .any(|c| c.seq == item.seq() && c.bencoded_value() == item.bencoded_value());
            if known {
                return true;
            }
            match SignedHead::from_bencoded(
                *topic,
                branch.clone(),
                item.seq(),
                item.bencoded_value(),
                *item.signature(),
            ) {
                Ok(head) => {
                    lookup.candidates.push(head);
                    true
                }
                Err(error) => {
                    let refusal = Refusal::Malformed {
                        seq: item.seq(),
                        error,
                    };
                    if !lookup.refused.contains(&refusal) {
                        lookup.refused.push(refusal);
                    }
                    false
                }
            }
        })
        .await;
        if ended_early {
            lookup.queried = answers.total;
            lookup.responded = answers.total;
        } else {
            let outcome = detailed.outcome.recv().await;
            lookup.queried = outcome.queried;
            lookup.responded = outcome.responded();
            if outcome.invalid_values > 0 {
                lookup.refused.push(Refusal::BadSignature {
                    count: outcome.invalid_values,
                });
            }
        }
        debug!(
            topic = %topic,
            branch = %branch,
            queried = lookup.queried,
            responded = lookup.responded,
            candidates = lookup.candidates.len(),
            ended_early,
            "head lookup done"
        );
        lookup
    }

    /// Signs and stores `head` as the newest head of `branch`: reads the
    /// current head, writes with compare-and-swap on its seq, and re-reads
    /// and retries when another write wins. The new seq is above the current
    /// one, above `min_seq` (the highest this machine knows), and at least
    /// the Unix time in microseconds, so a publisher that lost its state still
    /// moves forward. Publishing the head that is already current only
    /// stores it again, unless it is in the old byte-string form: that one
    /// is signed again, as a BEP 46 dictionary.
    pub async fn publish_head(
        &self,
        secret: &TopicSecret,
        branch: &Branch,
        head: &Head,
        min_seq: i64,
    ) -> Result<SignedHead, PublishError> {
        let started = Instant::now();
        let result = self
            .publish_head_unobserved(secret, branch, head, min_seq)
            .await;
        self.observe_write(LookupKind::HeadPut, &result, started);
        result
    }

    async fn publish_head_unobserved(
        &self,
        secret: &TopicSecret,
        branch: &Branch,
        head: &Head,
        min_seq: i64,
    ) -> Result<SignedHead, PublishError> {
        let topic = secret.topic();
        let value = head.encode();
        for attempt in 1..=PUBLISH_ATTEMPTS {
            let mut lookup = self.lookup_head(&topic, branch).await;
            let current = match lookup.choose(None) {
                crate::HeadChoice::New(current) => Some(*current),
                _ => None,
            };
            let contested = lookup
                .refused
                .iter()
                .any(|r| matches!(r, Refusal::Equivocation { .. }));
            if let Some(current) = &current
                && current.value == value
                && current.form == ValueForm::Dictionary
                && current.seq >= min_seq
                && !contested
            {
                self.store_head_again(current).await?;
                return Ok(current.clone());
            }
            let seq = current
                .as_ref()
                .map_or(1, |c| c.seq.saturating_add(1))
                .max(min_seq)
                .max(seq_floor());
            let signed = secret.sign_head(branch, head, seq);
            let item = MutableItem::new_signed_unchecked_bencoded(
                signed.topic.0,
                signed.signature,
                &signed.bencoded_value(),
                seq,
                Some(branch.as_bytes()),
            );
            match self
                .inner
                .put_mutable(item, current.as_ref().map(|c| c.seq))
                .await
            {
                Ok(_) => {
                    // Nodes take an equal seq without a CAS, so two first
                    // writes can both land: read back, and if another value
                    // holds our seq anywhere, go round again above it.
                    let check = self.lookup_head(&topic, branch).await;
                    let clash = check
                        .candidates
                        .iter()
                        .any(|c| c.seq == seq && c.value != signed.value);
                    if !clash {
                        return Ok(signed);
                    }
                    debug!(branch = %branch, attempt, seq, "another head was written with the same seq; retrying");
                }
                Err(PutMutableError::Concurrency(conflict)) => {
                    debug!(branch = %branch, attempt, %conflict, "head write lost a race; re-reading");
                }
                Err(PutMutableError::Query(error)) => return Err(put_error(branch, error)),
            }
            backoff(attempt).await;
        }
        Err(PublishError::Contended {
            branch: branch.clone(),
            attempts: PUBLISH_ATTEMPTS,
        })
    }

    /// Every verified copy of the topic's branch index the closest nodes
    /// hold (see [`merge_indexes`] for reading them as one). Copies that
    /// fail their signature or do not decode are dropped with a debug line:
    /// the index only names branches, whose heads are verified on their own.
    pub async fn lookup_index(&self, topic: &TopicKey) -> Vec<SignedIndex> {
        self.lookup_index_with(topic, false).await
    }

    /// [`Dht::lookup_index`] for a reader: ends once the answers agree on
    /// the newest copy, as [`Dht::resolve_head`] does. An index only names
    /// branches, and each head is then resolved and verified on its own.
    pub async fn resolve_index(&self, topic: &TopicKey) -> Vec<SignedIndex> {
        self.lookup_index_with(topic, true).await
    }

    async fn lookup_index_with(&self, topic: &TopicKey, early: bool) -> Vec<SignedIndex> {
        let started = Instant::now();
        let found = self.lookup_index_unobserved(topic, early).await;
        let outcome = if found.is_empty() {
            LookupOutcome::Empty
        } else {
            LookupOutcome::Found
        };
        self.observe(LookupKind::IndexGet, outcome, started);
        found
    }

    async fn lookup_index_unobserved(&self, topic: &TopicKey, early: bool) -> Vec<SignedIndex> {
        let mut detailed = self.inner.get_mutable_detailed(&topic.0, None, None);
        let mut found: Vec<SignedIndex> = Vec::new();
        read_items(&mut detailed.items, early, |item| {
            if found
                .iter()
                .any(|c| c.seq == item.seq() && c.value.as_slice() == item.value())
            {
                return true;
            }
            match SignedIndex::verify(*topic, item.seq(), item.value().to_vec(), *item.signature())
            {
                Ok(index) => {
                    found.push(index);
                    true
                }
                Err(error) => {
                    debug!(topic = %topic, seq = item.seq(), %error, "branch index refused");
                    false
                }
            }
        })
        .await;
        found
    }

    /// Adds `branches` to the topic's branch index, checking out `default`
    /// ([`IndexDefault`] says whether an existing index's default wins),
    /// and stores it, compare-and-swap on the current seq. Storing what is
    /// already there only refreshes it. The master URL is `master`'s when
    /// given, else the current one's.
    pub async fn publish_index(
        &self,
        secret: &TopicSecret,
        branches: &[Branch],
        default: &IndexDefault,
        master: Option<&str>,
    ) -> Result<SignedIndex, PublishError> {
        let started = Instant::now();
        let result = self
            .publish_index_unobserved(secret, branches, default, master)
            .await;
        self.observe_write(LookupKind::IndexPut, &result, started);
        result
    }

    async fn publish_index_unobserved(
        &self,
        secret: &TopicSecret,
        branches: &[Branch],
        default: &IndexDefault,
        master: Option<&str>,
    ) -> Result<SignedIndex, PublishError> {
        let topic = secret.topic();
        let ours = TopicIndex::new(
            branches.iter().cloned(),
            default.branch().clone(),
            master.map(str::to_owned),
        );
        for attempt in 1..=PUBLISH_ATTEMPTS {
            let found = self.lookup_index(&topic).await;
            let newest = found.iter().map(|i| i.seq).max();
            let wanted = match (merge_indexes(&found), default) {
                (Some(current), IndexDefault::Keep(_)) => TopicIndex::new(
                    current.branches().iter().cloned(),
                    current.default_branch().clone(),
                    master.or(current.master()).map(str::to_owned),
                )
                .union(&ours),
                (Some(current), IndexDefault::Set(_)) => ours.union(&current),
                (None, _) => ours.clone(),
            };
            if let Some(current) = found.iter().find(|i| Some(i.seq) == newest)
                && current.index == wanted
                && found.iter().all(|i| i.index.union(&wanted) == wanted)
            {
                match self.put_index(current, None).await {
                    Ok(()) => return Ok(current.clone()),
                    Err(Some(error)) => return Err(error),
                    Err(None) => {}
                }
                backoff(attempt).await;
                continue;
            }
            let seq = newest
                .map_or(1, |seq| seq.saturating_add(1))
                .max(seq_floor());
            let signed = secret.sign_index(&wanted, seq);
            match self.put_index(&signed, newest).await {
                Ok(()) => return Ok(signed),
                Err(None) => {
                    debug!(topic = %topic, attempt, "branch index write lost a race; re-reading")
                }
                Err(Some(error)) => return Err(error),
            }
            backoff(attempt).await;
        }
        Err(PublishError::Index {
            reason: format!("another writer kept changing it ({PUBLISH_ATTEMPTS} attempts)"),
        })
    }

    /// Stores an already signed branch index again (DHT nodes forget items
    /// after about two hours; anyone holding it may refresh it).
    pub async fn republish_index(&self, index: &SignedIndex) -> Result<(), PublishError> {
        let started = Instant::now();
        let result = match self.put_index(index, None).await {
            Ok(()) => Ok(()),
            Err(Some(error)) => Err(error),
            Err(None) => Err(PublishError::Index {
                reason: "the DHT holds a newer index than the one being refreshed".into(),
            }),
        };
        self.observe_write(LookupKind::IndexPut, &result, started);
        result
    }

    /// Stores a signed index, compare-and-swap on `cas` when given;
    /// `Err(None)` when another write won the swap.
    async fn put_index(
        &self,
        index: &SignedIndex,
        cas: Option<i64>,
    ) -> Result<(), Option<PublishError>> {
        let item = MutableItem::new_signed_unchecked(
            index.topic.0,
            index.signature,
            &index.value,
            index.seq,
            None,
        );
        match self.inner.put_mutable(item, cas).await {
            Ok(_) => Ok(()),
            Err(PutMutableError::Concurrency(_)) => Err(None),
            Err(PutMutableError::Query(error)) => Err(Some(PublishError::Index {
                reason: error.to_string(),
            })),
        }
    }

    /// Stores an already signed head again, on the nodes now closest to it:
    /// DHT nodes forget items after about two hours, and anyone holding a
    /// signed head may refresh it.
    pub async fn republish(&self, head: &SignedHead) -> Result<(), PublishError> {
        let started = Instant::now();
        let result = self.store_head_again(head).await;
        self.observe_write(LookupKind::HeadRepublish, &result, started);
        result
    }

    /// [`Dht::republish`] without reporting it: part of a head write.
    async fn store_head_again(&self, head: &SignedHead) -> Result<(), PublishError> {
        let item = MutableItem::new_signed_unchecked_bencoded(
            head.topic.0,
            head.signature,
            &head.bencoded_value(),
            head.seq,
            Some(head.branch.as_bytes()),
        );
        match self.inner.put_mutable(item, None).await {
            Ok(_) => Ok(()),
            Err(PutMutableError::Query(error)) => Err(put_error(&head.branch, error)),
            Err(PutMutableError::Concurrency(_)) => Err(PublishError::Superseded {
                branch: head.branch.clone(),
            }),
        }
    }
}

fn put_error(branch: &Branch, error: PutQueryError) -> PublishError {
    match error {
        PutQueryError::NoClosestNodes => PublishError::NoNodes {
            branch: branch.clone(),
        },
        other => PublishError::Failed {
            branch: branch.clone(),
            reason: other.to_string(),
        },
    }
}

/// A randomised pause that grows with each attempt, so racing writers
/// stop colliding.
async fn backoff(attempt: u32) {
    let jitter = getrandom::u64().unwrap_or(0) % 100;
    tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt) + jitter)).await;
}

/// The floor of a new seq: the Unix time in microseconds. Two first
/// writes of one item carry no `cas` and nodes take an equal seq from
/// either, so one could silently replace the other; with seqs this fine two
/// publishers practically never pick the same one. (Seconds, used before,
/// collided whenever two writers started in the same second; heads with
/// those smaller seqs are still read, and any new head is above them.)
fn seq_floor() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::Answers;

    fn answers(seqs: &[i64]) -> Answers {
        let mut answers = Answers::default();
        for &seq in seqs {
            answers.add(seq);
        }
        answers
    }

    #[test]
    fn answers_agree_only_on_enough_of_the_newest_outnumbering_the_rest() {
        assert!(!answers(&[]).agree());
        assert!(!answers(&[5, 5]).agree(), "two are not enough");
        assert!(answers(&[5, 5, 5]).agree());
        assert!(
            !answers(&[4, 4, 4, 5]).agree(),
            "a newer head needs its own"
        );
        assert!(
            !answers(&[4, 4, 4, 5, 5, 5]).agree(),
            "a tie is no majority"
        );
        assert!(answers(&[4, 4, 4, 5, 5, 5, 5]).agree());
        assert!(answers(&[5, 5, 5, 4, 4]).agree());
    }
}
