//! What a node reports about its own lookups and writes: an operator's
//! metrics (how many, how long, how many found nothing) without this crate
//! knowing which metrics library the program uses.

use std::time::Duration;

/// One kind of DHT operation, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LookupKind {
    /// `announce_peer`: telling the closest nodes this machine serves a torrent.
    Announce,
    /// `get_peers`: finding peers of a torrent.
    Peers,
    /// Reading a branch head (BEP 44 `get`).
    HeadGet,
    /// Writing a branch head (read, sign, compare-and-swap, read back).
    HeadPut,
    /// Storing an already signed head again.
    HeadRepublish,
    /// Reading a topic's branch index.
    IndexGet,
    /// Writing or refreshing a topic's branch index.
    IndexPut,
}

impl LookupKind {
    /// Every kind, for exporters that list them all from the start.
    pub const ALL: [Self; 7] = [
        Self::Announce,
        Self::Peers,
        Self::HeadGet,
        Self::HeadPut,
        Self::HeadRepublish,
        Self::IndexGet,
        Self::IndexPut,
    ];

    /// The label value: stable, snake case.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Announce => "announce",
            Self::Peers => "peers",
            Self::HeadGet => "head_get",
            Self::HeadPut => "head_put",
            Self::HeadRepublish => "head_republish",
            Self::IndexGet => "index_get",
            Self::IndexPut => "index_put",
        }
    }
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LookupOutcome {
    /// A read found what it looked for (peers, a valid item).
    Found,
    /// A read ended with nothing: no peers, no valid item.
    Empty,
    /// A write was stored.
    Stored,
    /// A write failed (no nodes, refused, lost every race).
    Failed,
}

impl LookupOutcome {
    /// The label value: stable, snake case.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Found => "found",
            Self::Empty => "empty",
            Self::Stored => "stored",
            Self::Failed => "failed",
        }
    }
}

/// Told about every operation a [`crate::Dht`] finishes (see
/// [`crate::Dht::observed_by`]). Called on the node's tasks: keep it cheap.
pub trait LookupObserver: Send + Sync {
    /// `kind` ended as `outcome` after `took`.
    fn observe(&self, kind: LookupKind, outcome: LookupOutcome, took: Duration);
}
