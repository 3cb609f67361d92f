//! Which update torrents a new head lists: readers hold what earlier heads
//! named, so a head lists updates from those commits. The chain lives in
//! the heads themselves (each lists the `from`s of the one before), so a
//! publisher needs no other record.

use tracker_free::{Head, HeadUpdate, MAX_HEAD_UPDATES};

use crate::git::object::ObjectId;
use crate::torrent::info_hash::InfoHash;

/// The commits the update torrents of a head naming `to` start from, newest
/// first: the branch's tip before it moved (when known), the previous
/// head's commit, then the `from`s that head listed; each once, never `to`,
/// at most [`MAX_HEAD_UPDATES`].
pub fn update_froms(
    previous_tip: Option<ObjectId>,
    previous_head: Option<&Head>,
    to: ObjectId,
) -> Vec<ObjectId> {
    let from_head = previous_head.into_iter().flat_map(|head| {
        std::iter::once(head.commit.as_slice())
            .chain(head.updates.iter().map(|u| u.from.as_slice()))
            .filter_map(ObjectId::from_slice)
    });
    let mut froms: Vec<ObjectId> = Vec::new();
    for commit in previous_tip.into_iter().chain(from_head) {
        if commit != to && !froms.contains(&commit) && froms.len() < MAX_HEAD_UPDATES {
            froms.push(commit);
        }
    }
    froms
}

/// A head naming `commit` (torrent `infohash`) that lists `updates`.
pub fn head_with_updates(
    commit: ObjectId,
    infohash: InfoHash,
    updates: &[(ObjectId, InfoHash)],
) -> Head {
    Head {
        infohash: infohash.into(),
        commit: commit.0.to_vec(),
        updates: updates
            .iter()
            .take(MAX_HEAD_UPDATES)
            .map(|&(from, infohash)| HeadUpdate {
                from: from.0.to_vec(),
                infohash: infohash.into(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ObjectId {
        ObjectId([n; 20])
    }

    #[test]
    fn newest_first_once_without_the_target_and_bounded() {
        assert!(update_froms(None, None, id(1)).is_empty());
        let previous = head_with_updates(
            id(5),
            InfoHash([0; 20]),
            &(1..=8)
                .map(|n| (id(n), InfoHash([n; 20])))
                .collect::<Vec<_>>(),
        );
        let froms = update_froms(Some(id(9)), Some(&previous), id(3));
        assert_eq!(
            froms,
            vec![id(9), id(5), id(1), id(2), id(4), id(6), id(7), id(8)]
        );
        // The tip before the move is the previous head: listed once.
        let froms = update_froms(Some(id(5)), Some(&previous), id(9));
        assert_eq!(froms[..3], [id(5), id(1), id(2)]);
        assert_eq!(froms.len(), MAX_HEAD_UPDATES);
    }
}
