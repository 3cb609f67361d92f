//! A restarted master picks each head's chain of update torrents up where
//! it left it. Without this, the first head a master publishes after a
//! restart lists no update, and every follower behind it downloads the
//! whole commit torrent until the next push. The last head published per
//! branch is recorded under the data directory; a master whose data was
//! wiped (restored from its backups) reads it back from the DHT instead.

use std::path::Path;

use tracker_free::{Branch, Dht, HeadChoice, SignedHead, TopicKey};

use crate::git::object::ObjectId;
use crate::swarm::output::Output;
use crate::swarm::seeder::Seeder;
use crate::topic::home::Home;
use crate::topic::update_chain::{chain_steps, history_step, update_from};
use crate::torrent::info_hash::InfoHash;

/// Where the master records every head it publishes: `<data_dir>/published`,
/// laid out as a xus home's `heads/` (verified again on every load, never
/// going backwards).
pub(crate) fn published_heads(data_dir: &Path) -> Home {
    Home::at(data_dir.join("published"))
}

/// The last head of `branch` this topic's key signed: the one recorded here,
/// else the one the DHT holds (a master restored after a wipe). The DHT is
/// only asked when nothing is recorded: each lookup waits out the nodes
/// that do not answer, and a master starts with every branch.
pub(crate) async fn last_head(
    published: &Home,
    dht: &Dht,
    topic: &TopicKey,
    branch: &Branch,
) -> Option<SignedHead> {
    let recorded = published.seen_head(topic, branch).unwrap_or_else(|error| {
        tracing::warn!(%branch, error = %format!("{error:#}"), "ignoring the recorded head");
        None
    });
    match dht
        .lookup_head(topic, branch)
        .await
        .choose(recorded.as_ref())
    {
        HeadChoice::New(newer) => Some(*newer),
        HeadChoice::Unchanged | HeadChoice::NotFound => recorded,
    }
}

/// Serves again every update `previous` lists and its history (stored
/// under the repository, or rebuilt: they are deterministic), and the
/// update from `previous`'s commit to `tip` when the branch moved while the
/// master was down. Returns that update, as a head move lists it.
pub(crate) async fn serve_chain(
    seeder: &mut Seeder<'_>,
    previous: &SignedHead,
    tip: ObjectId,
    out: &mut Output<'_>,
) -> Option<(ObjectId, InfoHash)> {
    for step in chain_steps(&previous.head)
        .into_iter()
        .chain(history_step(&previous.head))
    {
        for (from, infohash) in seeder.add_updates(step.to, &[step.from], out).await {
            if infohash != step.info_hash {
                tracing::warn!(%from, to = %step.to, %infohash, listed = %step.info_hash,
                    "the update rebuilt here differs from the one the head lists");
            }
        }
    }
    let froms: Vec<ObjectId> = update_from(None, Some(&previous.head), tip)
        .into_iter()
        .collect();
    seeder.add_updates(tip, &froms, out).await.pop()
}
