//! Which update torrents a new head lists: a chain. Each head move from
//! commit P to commit C makes one update, P → C; the head lists it first,
//! then the updates the previous head listed, newest first, at most
//! [`MAX_HEAD_UPDATES`]. Entry `i` goes from its `from` to the `from` of
//! entry `i - 1` (entry 0 to the head's commit), so a reader holding any
//! listed commit applies the updates from there up to the head, and a
//! publisher compresses once per head move, not once per reader state. The
//! chain lives in the heads themselves: a publisher needs no other record.

use tracker_free::{Head, HeadUpdate, MAX_HEAD_UPDATES};

use crate::git::object::ObjectId;
use crate::torrent::info_hash::InfoHash;

/// One link of a head's chain: the update torrent from `from` to `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainStep {
    /// The commit the update starts from.
    pub from: ObjectId,
    /// The commit it rebuilds.
    pub to: ObjectId,
    /// The update torrent.
    pub info_hash: InfoHash,
}

/// The commit a head move to `to` makes its update from: the branch's tip
/// before the move when known (a master knows it from the push), else the
/// previous head's commit; `None` when that is `to` itself or unknown.
pub fn update_from(
    tip_before: Option<ObjectId>,
    previous: Option<&Head>,
    to: ObjectId,
) -> Option<ObjectId> {
    tip_before
        .or_else(|| previous.and_then(|head| ObjectId::from_slice(&head.commit)))
        .filter(|&from| from != to)
}

/// The head naming `commit` (torrent `infohash`): the new update `newest`
/// (from → `commit`) first, then the previous head's chain when it ends
/// where `newest` starts; a republish of the same commit keeps the previous
/// chain. At most [`MAX_HEAD_UPDATES`] entries, never a `from` twice.
pub fn chained_head(
    commit: ObjectId,
    infohash: InfoHash,
    newest: Option<(ObjectId, InfoHash)>,
    previous: Option<&Head>,
) -> Head {
    let previous_commit = previous.and_then(|head| ObjectId::from_slice(&head.commit));
    let mut updates: Vec<HeadUpdate> = Vec::new();
    let inherit = match newest {
        Some((from, update)) => {
            updates.push(HeadUpdate {
                from: from.0.to_vec(),
                infohash: update.into(),
            });
            previous_commit == Some(from)
        }
        None => previous_commit == Some(commit),
    };
    if inherit && let Some(previous) = previous {
        for update in &previous.updates {
            if updates.len() == MAX_HEAD_UPDATES
                || update.from == commit.0
                || updates.iter().any(|u| u.from == update.from)
            {
                break;
            }
            updates.push(update.clone());
        }
    }
    Head {
        infohash: infohash.into(),
        commit: commit.0.to_vec(),
        updates,
        master: None,
    }
}

/// The chain a head lists, each link with its `to` filled in, newest first.
/// Stops at an entry that is not a SHA-1 commit id.
pub fn chain_steps(head: &Head) -> Vec<ChainStep> {
    let Some(mut to) = ObjectId::from_slice(&head.commit) else {
        return Vec::new();
    };
    let mut steps = Vec::with_capacity(head.updates.len());
    for update in &head.updates {
        let Some(from) = ObjectId::from_slice(&update.from) else {
            break;
        };
        steps.push(ChainStep {
            from,
            to,
            info_hash: update.infohash.into(),
        });
        to = from;
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ObjectId {
        ObjectId([n; 20])
    }

    fn ih(n: u8) -> InfoHash {
        InfoHash([n; 20])
    }

    #[test]
    fn a_chain_grows_one_link_per_move_and_stays_bounded() {
        assert_eq!(update_from(None, None, id(1)), None);
        let mut head = chained_head(id(1), ih(1), None, None);
        assert!(head.updates.is_empty());
        for n in 2..=12u8 {
            let from = update_from(None, Some(&head), id(n)).expect("previous commit");
            assert_eq!(from, id(n - 1));
            head = chained_head(id(n), ih(n), Some((from, ih(100 + n))), Some(&head));
        }
        assert_eq!(head.updates.len(), MAX_HEAD_UPDATES);
        let steps = chain_steps(&head);
        assert_eq!(
            steps[0],
            ChainStep {
                from: id(11),
                to: id(12),
                info_hash: ih(112)
            }
        );
        for pair in steps.windows(2) {
            assert_eq!(pair[1].to, pair[0].from, "links join");
        }
        assert_eq!(steps.last().map(|s| s.from), Some(id(4)));
        // A republish keeps the chain; a move from elsewhere starts a new one.
        assert_eq!(chained_head(id(12), ih(12), None, Some(&head)), head);
        let fresh = chained_head(id(20), ih(20), Some((id(7), ih(200))), Some(&head));
        assert_eq!(fresh.updates.len(), 1);
        assert_eq!(update_from(Some(id(9)), Some(&head), id(20)), Some(id(9)));
        assert_eq!(update_from(Some(id(20)), Some(&head), id(20)), None);
    }
}
