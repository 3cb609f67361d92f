//! `xus publish`: sign a branch head into the DHT and announce its torrent.

use std::path::PathBuf;

use anyhow::Context;
use tracker_free::{Branch, IndexDefault};

use crate::git::object::ObjectId;
use crate::git::repo;
use crate::swarm::discovery::{self, DhtOptions};
use crate::swarm::output::{Event, Output};
use crate::swarm::seeder::{seed_addr_path, wait_for_seed};
use crate::topic::head_address::HeadAddress;
use crate::topic::home::Home;
use crate::topic::update_chain::{chained_head, history_target, set_history, update_from};
use crate::torrent::cache;
use crate::torrent::info_hash;
use crate::torrent::update::{NOTHING, UpdateSettings, UpdateStore};

/// Options of `xus publish`.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// Repository.
    pub repo: PathBuf,
    /// Commit; default the tip of `branch`.
    pub rev: Option<String>,
    /// Topic name or id; default the only local topic.
    pub topic: Option<String>,
    /// Branch name; default the current branch.
    pub branch: Option<String>,
    /// TCP port to announce; default the running seed's.
    pub port: Option<u16>,
    /// Which DHT.
    pub dht: DhtOptions,
    /// xus's directory.
    pub home: Home,
}

/// Publishes; prints `published <xus url> <commit> <infohash> seq <n>` and
/// `magnet <BEP 46 link>`.
pub async fn run(options: PublishOptions, out: &mut Output<'_>) -> anyhow::Result<()> {
    let home = options.home.clone();
    let secret = match &options.topic {
        Some(topic) => home.topic_secret(topic)?,
        None => {
            let mut topics = home.topics()?;
            match topics.len() {
                1 => topics.remove(0).1,
                0 => anyhow::bail!("no topic yet: make one with `xus topic new NAME`"),
                _ => anyhow::bail!(
                    "several topics exist ({}); choose one with --topic",
                    topics
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
    };
    let (repo_path, rev, branch) = (
        options.repo.clone(),
        options.rev.clone(),
        options.branch.clone(),
    );
    let (branch, torrent, seed_file) = tokio::task::spawn_blocking(move || {
        let repo = repo::open(&repo_path)?;
        let branch = match branch {
            Some(branch) => branch,
            None => repo
                .head()
                .ok()
                .filter(|h| h.is_branch())
                .and_then(|h| h.shorthand().ok().map(str::to_string))
                .context("HEAD is not on a branch: name one with --branch")?,
        };
        let rev = rev.unwrap_or_else(|| format!("refs/heads/{branch}"));
        let commit = repo::resolve_commit(&repo, &rev)?;
        let torrent = cache::load_or_build(&repo, commit)
            .with_context(|| format!("building the torrent of commit {commit}"))?;
        let seed_file = seed_addr_path(repo.path());
        anyhow::Ok((branch, torrent, seed_file))
    })
    .await??;
    let branch = Branch::new(&branch)?;
    let address = HeadAddress {
        topic: secret.topic(),
        branch: branch.clone(),
    };
    // The update torrent from the previous head's commit, chained to the
    // ones that head listed: readers holding any of them download only
    // what changed. `xus seed` serves them.
    let seen = home.seen_head(&address.topic, &branch)?;
    let newest = match update_from(None, seen.as_ref().map(|s| &s.head), torrent.commit) {
        Some(from) => {
            let (repo_path, to) = (options.repo.clone(), torrent.commit);
            tokio::task::spawn_blocking(move || build_update(&repo_path, from, to)).await??
        }
        None => None,
    };
    if let Some((from, infohash, bytes)) = newest {
        out.emit(&Event::Update {
            from,
            to: torrent.commit,
            info_hash: infohash,
            bytes,
            magnet: None,
        })?;
    }
    let mut head = chained_head(
        torrent.commit,
        torrent.info_hash,
        newest.map(|(from, ih, _)| (from, ih)),
        seen.as_ref().map(|s| &s.head),
    );
    // A history torrent for clones, when the chain no longer reaches the
    // previous one: `git clone` then needs nothing but the swarm.
    if let Some(target) = history_target(&head) {
        let repo_path = options.repo.clone();
        let built = tokio::task::spawn_blocking(move || build_update(&repo_path, NOTHING, target))
            .await??;
        if let Some((_, infohash, bytes)) = built {
            set_history(&mut head, target, infohash);
            out.emit(&Event::History {
                commit: target,
                info_hash: infohash,
                bytes,
            })?;
        }
    }
    let config = discovery::config(&options.dht, &home)?;
    let dht = discovery::start(&config).await?;
    let min_seq = match seen {
        Some(seen) if seen.head == head => seen.seq,
        Some(seen) => seen.seq.saturating_add(1),
        None => 0,
    };
    let signed = dht
        .publish_head(&secret, &branch, &head, min_seq)
        .await
        .with_context(|| format!("publishing the head of {}", address.url()))?;
    home.record_head(&signed)?;
    // The topic's branch index names this branch too, for
    // `git clone xus://TOPIC/`; a topic master, when there is one, sets its
    // default.
    match dht
        .publish_index(
            &secret,
            std::slice::from_ref(&branch),
            &IndexDefault::Keep(branch.clone()),
            None,
        )
        .await
    {
        Ok(index) => home.record_index(&index)?,
        Err(error) => out.warn(format_args!(
            "the topic's branch index was not updated: {error}"
        )),
    }
    let port = match options.port {
        Some(port) => Some(port),
        None => wait_for_seed(&seed_file, torrent.info_hash).await,
    };
    match port {
        Some(port) => {
            if let Err(error) = dht.announce(head.infohash, port).await {
                out.warn(format_args!("announcing {} failed: {error}", head.infohash));
            }
        }
        None => eprintln!(
            "note: no `xus seed` serves commit {} yet; the head is published, and a seed announces the commit once it serves it",
            torrent.commit
        ),
    }
    out.emit(&Event::Published {
        url: address.url(),
        commit: torrent.commit,
        info_hash: torrent.info_hash,
        seq: signed.seq,
    })?;
    out.emit(&Event::Magnet {
        link: address.magnet(),
    })?;
    Ok(())
}

/// Builds (or loads) the update torrent from `from` (or the history, from
/// [`NOTHING`]) to `to` into the repository's update store; returns (from,
/// infohash, payload bytes), or `None` with a note when it cannot be made
/// (`from` is not here, the change is over the limits): readers still have
/// the commit torrent.
fn build_update(
    repo_path: &std::path::Path,
    from: ObjectId,
    to: ObjectId,
) -> anyhow::Result<Option<(ObjectId, info_hash::InfoHash, u64)>> {
    let repo = repo::open(repo_path)?;
    if from != NOTHING && !repo.odb()?.exists(from.to_git()) {
        eprintln!(
            "note: no update torrent: the previous head's commit {from} is not in this repository"
        );
        return Ok(None);
    }
    let settings = UpdateSettings::for_update_from(from);
    match UpdateStore::of(repo.path()).load_or_build(&repo, from, to, &settings) {
        Ok(stored) => Ok(Some((
            from,
            stored.torrent.info_hash(),
            stored.torrent.length,
        ))),
        Err(error) => {
            eprintln!(
                "note: no update torrent from {from}: {:#}",
                anyhow::Error::from(error)
            );
            Ok(None)
        }
    }
}
