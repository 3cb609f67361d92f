//! What one head move makes the master serve: the commit torrent, the
//! update torrent from the tip it moved from, and, when the new head would
//! list no history torrent (the previous one fell off its chain, or the
//! branch is new), a history torrent from nothing, so that a clone gets the
//! whole branch from the swarm. The main loop owns the seeders, so this
//! runs there; the head itself is signed by [`super::state::Master::publish_head`].

use tracker_free::Head;

use crate::git::object::ObjectId;
use crate::swarm::output::Output;
use crate::swarm::seeder::Seeder;
use crate::topic::update_chain::{chained_head, history_target};
use crate::torrent::info_hash::InfoHash;
use crate::torrent::update::NOTHING;

/// The torrents a head move serves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seeded {
    /// The commit torrent.
    pub(crate) infohash: InfoHash,
    /// The update torrent to the commit, (from, infohash), when made.
    pub(crate) update: Option<(ObjectId, InfoHash)>,
    /// A new history torrent, (to, infohash), when the head needs one and it
    /// could be made.
    pub(crate) history: Option<(ObjectId, InfoHash)>,
}

/// Serves `commit`, the update to it from `from`, and a history when due
/// (see [`serve_history`]).
///
/// # Errors
///
/// The commit torrent cannot be served; a missing update or history only
/// costs readers bytes, so it is logged, not returned.
pub(crate) async fn serve_head(
    seeder: &mut Seeder<'_>,
    commit: ObjectId,
    from: Option<ObjectId>,
    previous: Option<&Head>,
    out: &mut Output<'_>,
) -> anyhow::Result<Seeded> {
    let infohash = seeder.add(commit, out).await?;
    let froms: Vec<ObjectId> = from.into_iter().collect();
    let update = seeder.add_updates(commit, &froms, out).await.pop();
    let history = serve_history(seeder, commit, infohash, update, previous, out).await;
    Ok(Seeded {
        infohash,
        update,
        history,
    })
}

/// Serves the history torrent the head to `commit` needs when it would
/// inherit none from `previous` ([`history_target`]); returns (to,
/// infohash). Built at [`UpdateSettings::history`](crate::torrent::update::UpdateSettings::history)
/// and kept in the repository's update store.
pub(crate) async fn serve_history(
    seeder: &mut Seeder<'_>,
    commit: ObjectId,
    infohash: InfoHash,
    update: Option<(ObjectId, InfoHash)>,
    previous: Option<&Head>,
    out: &mut Output<'_>,
) -> Option<(ObjectId, InfoHash)> {
    let head = chained_head(commit, infohash, update, previous);
    let target = history_target(&head)?;
    let started = std::time::Instant::now();
    let served = seeder.add_updates(target, &[NOTHING], out).await.pop();
    if let Some((_, history)) = served {
        tracing::info!(to = %target, %history, secs = started.elapsed().as_secs_f64(),
            "serving a new history torrent");
    }
    served.map(|(_, history)| (target, history))
}
