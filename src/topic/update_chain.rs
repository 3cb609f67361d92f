//! Which update torrents a new head lists: a chain. Each head move from
//! commit P to commit C makes one update, P → C; the head lists it first,
//! then the updates the previous head listed, newest first, at most
//! [`MAX_HEAD_UPDATES`]. Entry `i` goes from its `from` to the `from` of
//! entry `i - 1` (entry 0 to the head's commit), so a reader holding any
//! listed commit applies the updates from there up to the head, and a
//! publisher compresses once per head move, not once per reader state. The
//! chain lives in the heads themselves: a publisher needs no other record.
//!
//! A head may also list one *history* torrent, the update from nothing to a
//! commit the chain reaches (the head's commit or a listed `from`): a reader
//! holding nothing applies it, then the chain from its end, and has the
//! whole history from the swarm. A new head keeps the previous history
//! while its end is still reached; when the end falls off the chain, the
//! publisher makes a new history to the newest `from` (see
//! [`history_target`]), so it compresses the whole history once every
//! [`MAX_HEAD_UPDATES`] moves, not once per move.

use tracker_free::{Head, HeadHistory, HeadUpdate, MAX_HEAD_UPDATES};

use crate::git::object::ObjectId;
use crate::torrent::info_hash::InfoHash;
use crate::torrent::update::NOTHING;

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
    let mut head = Head {
        infohash: infohash.into(),
        commit: commit.0.to_vec(),
        updates,
        history: None,
        master: None,
    };
    head.history = previous
        .and_then(|previous| previous.history.clone())
        .filter(|history| reaches(&head, &history.to));
    head
}

/// Whether `head`'s chain leads from `commit` to the head's commit.
fn reaches(head: &Head, commit: &[u8]) -> bool {
    head.commit == commit || head.updates.iter().any(|u| u.from == commit)
}

/// The commit a new history torrent for `head` must lead to, when it lists
/// none: the newest listed `from` (the previous head's commit, which stays
/// on the chain for the most moves to come), else the head's commit.
pub fn history_target(head: &Head) -> Option<ObjectId> {
    if head.history.is_some() {
        return None;
    }
    match head.updates.first() {
        Some(newest) => ObjectId::from_slice(&newest.from),
        None => ObjectId::from_slice(&head.commit),
    }
}

/// Lists the history torrent `infohash`, which leads from nothing to `to`,
/// in `head`; refused (false, head unchanged) when the chain does not reach
/// `to`.
pub fn set_history(head: &mut Head, to: ObjectId, infohash: InfoHash) -> bool {
    if !reaches(head, &to.0) {
        return false;
    }
    head.history = Some(HeadHistory {
        to: to.0.to_vec(),
        infohash: infohash.into(),
    });
    true
}

/// The links a reader holding nothing applies, oldest first: the history
/// torrent, then the chain from its end to the head's commit. `None` when
/// the head lists no history.
pub fn history_links(head: &Head) -> Option<Vec<ChainStep>> {
    let history = head.history.as_ref()?;
    let to = ObjectId::from_slice(&history.to)?;
    let chain = chain_steps(head);
    let mut links = vec![ChainStep {
        from: NOTHING,
        to,
        info_hash: history.infohash.into(),
    }];
    if to != ObjectId::from_slice(&head.commit)? {
        let end = chain.iter().position(|step| step.from == to)?;
        links.extend(chain[..=end].iter().rev());
    }
    Some(links)
}

/// The history step a head lists, to serve beside its chain.
pub fn history_step(head: &Head) -> Option<ChainStep> {
    history_links(head).map(|links| links[0])
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
        assert!(fresh.history.is_none());
        assert_eq!(update_from(Some(id(9)), Some(&head), id(20)), Some(id(9)));
        assert_eq!(update_from(Some(id(20)), Some(&head), id(20)), None);
    }

    #[test]
    fn a_history_is_kept_while_the_chain_reaches_it_then_made_anew() {
        let mut head = chained_head(id(1), ih(1), None, None);
        assert_eq!(history_target(&head), Some(id(1)), "first head: to itself");
        assert!(set_history(&mut head, id(1), ih(50)));
        assert_eq!(history_target(&head), None);
        assert_eq!(
            history_links(&head),
            Some(vec![ChainStep {
                from: NOTHING,
                to: id(1),
                info_hash: ih(50)
            }])
        );
        let mut rebuilt = Vec::new();
        for n in 2..=20u8 {
            head = chained_head(id(n), ih(n), Some((id(n - 1), ih(100 + n))), Some(&head));
            if let Some(target) = history_target(&head) {
                assert_eq!(target, id(n - 1), "the newest from");
                assert!(set_history(&mut head, target, ih(50 + n)));
                rebuilt.push(n);
            }
            let links = history_links(&head).expect("a history");
            assert_eq!(links[0].from, NOTHING);
            assert_eq!(links.last().map(|l| l.to), Some(id(n)), "ends at the head");
            for pair in links.windows(2) {
                assert_eq!(pair[1].from, pair[0].to, "links join");
            }
            let decoded = Head::decode(&head.encode()).expect("canonical");
            assert_eq!(decoded, head);
        }
        assert_eq!(rebuilt, vec![10, 18], "once every eight moves");
        assert!(!set_history(&mut head, id(3), ih(9)), "off the chain");
    }
}
