//! One push, from the signed request to the answer: check who signs, take
//! the commits from the swarm, move the branch only forward (or keep the
//! commit under a named ref), wait for a backup, seed, publish the head.
//!
//! Every step is safe to repeat, so a writer that lost its answer (a master
//! killed mid-push, a dropped connection) simply pushes again: commits
//! already here are not fetched twice, a branch already at the commit is
//! not moved, and the backup and head steps converge.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;

use super::state::{Master, TopicState};
use crate::git::object::ObjectId;
use crate::swarm::fetch::{self, FetchError, FetchReport, FetchRequest, History, LogReport};
use crate::topic::metadata_offer::{MetadataOffer, MetadataOfferError};
use crate::topic::push_answer::PushAnswer;
use crate::topic::push_request::{PushRequestError, SignedPush};
use crate::topic::update_chain::update_from;
use crate::topic::writer_key::WriterKey;
use crate::torrent::format::{CommitTorrent, MAX_INFO_BYTES};
use crate::torrent::import::RefOptions;
use crate::torrent::info_hash::InfoHash;

/// How long the metadata of a pushed commit may take to arrive.
const METADATA_TIMEOUT: Duration = Duration::from_secs(60);

/// Where a commit that lost a race is kept: named by branch and commit, so
/// a retried push lands on the same ref.
pub(crate) fn kept_ref(branch: &str, commit: ObjectId) -> String {
    format!("refs/xus/rejected/{branch}/{commit}")
}

/// Handles `POST /push`.
pub(crate) async fn push(
    master: &Master,
    client: SocketAddr,
    body: &[u8],
) -> (StatusCode, PushAnswer) {
    let signed = match SignedPush::from_body(body) {
        Ok(signed) => signed,
        Err(error @ PushRequestError::BadSignature) => return refused(error.to_string()),
        Err(error) => return invalid(StatusCode::BAD_REQUEST, error.to_string()),
    };
    let request = &signed.request;
    let topic = match authorize(master, request.topic, request.writer, request.time, client) {
        Ok(topic) => topic,
        Err(answer) => return *answer,
    };
    let branch = request.branch.as_str().to_owned();
    let refname = format!("refs/heads/{branch}");
    if !git2::Reference::is_valid_name(&refname) {
        return invalid(
            StatusCode::BAD_REQUEST,
            format!("{branch:?} is not a valid Git branch name"),
        );
    }
    let tip = request.tip();
    let (commit, infohash) = (tip.commit, tip.info_hash);
    tracing::info!(topic = %topic.config.name, %branch, %commit, writer = %request.writer, %client, commits = request.commits.len(), "push received");

    let writer_peer =
        (request.peer_port != 0).then(|| SocketAddr::new(client.ip(), request.peer_port));
    if let Err(answer) = take_commits(master, topic, &signed, writer_peer).await {
        return answer;
    }

    let lock = topic.branch_lock(&branch);
    let _held = lock.lock().await;
    let git_dir = topic.git_dir.clone();
    let (moved_branch, writer) = (branch.clone(), request.writer.to_hex());
    let moved =
        tokio::task::spawn_blocking(move || move_branch(&git_dir, &moved_branch, commit, &writer))
            .await
            .map_err(anyhow::Error::from)
            .and_then(|r| r);
    let (already, previous) = match moved {
        Ok(Move::Moved { previous }) => (false, previous),
        Ok(Move::Already) => (true, None),
        Ok(Move::Contained { current }) => {
            tracing::info!(topic = %topic.config.name, %branch, %commit, %current, "already contained; nothing moved");
            return (
                StatusCode::OK,
                PushAnswer::Contained {
                    topic: topic.config.name.clone(),
                    branch,
                    commit: commit.to_hex(),
                    current: current.to_hex(),
                },
            );
        }
        Ok(Move::NotFastForward { current, kept }) => {
            topic.backups.notify();
            tracing::info!(topic = %topic.config.name, %branch, %commit, %current, %kept, "not a fast-forward; commit kept");
            return (
                StatusCode::CONFLICT,
                PushAnswer::NotFastForward {
                    topic: topic.config.name.clone(),
                    branch,
                    commit: commit.to_hex(),
                    current: current.to_hex(),
                    kept_ref: kept,
                },
            );
        }
        Err(error) => return failed(format!("moving {refname}: {error:#}")),
    };
    topic.backups.notify();
    let backups = match topic
        .backups
        .wait_for(&refname, commit, master.config.limits.backup_wait)
        .await
    {
        Ok(backups) => backups,
        Err(error) => {
            return failed(format!(
                "{branch} is at {commit} here, but no backup remote holds it yet ({error:#}); retrying the push is safe"
            ));
        }
    };
    // The update torrent from the tip this push moved, chained to the ones
    // the previous head listed: followers download only what changed.
    let previous_head = topic.head(&branch).map(|h| h.head);
    let from = update_from(previous, previous_head.as_ref(), commit);
    let seeded = match master.seed(topic.index, commit, from, previous_head).await {
        Ok(seeded) => seeded,
        Err(error) => return failed(format!("seeding {commit}: {error:#}")),
    };
    if seeded.infohash != infohash {
        // Both sides build the torrent by the same rule; a mismatch means
        // different xus format versions.
        tracing::warn!(%commit, pushed = %infohash, built = %seeded.infohash, "the writer's torrent differs from the master's");
    }
    // A repeated push (a retry after a lost answer, a replay) whose head is
    // already published is answered without another DHT round: the daemon
    // keeps republishing it, and a head whose publish failed was never
    // recorded, so its retry still publishes.
    let published = topic.head(&branch).filter(|h| {
        already && h.head.commit == commit.0 && InfoHash::from(h.head.infohash) == seeded.infohash
    });
    let seq = match published {
        Some(published) => {
            tracing::info!(topic = %topic.config.name, %branch, %commit, seq = published.seq, "push repeated; head already published");
            published.seq
        }
        None => match master.publish_head(topic, &branch, commit, &seeded).await {
            Ok(head) => {
                tracing::info!(topic = %topic.config.name, %branch, %commit, seq = head.seq, "push accepted");
                head.seq
            }
            Err(error) => return failed(format!("{error:#}; retrying the push is safe")),
        },
    };
    (
        StatusCode::OK,
        PushAnswer::Accepted {
            topic: topic.config.name.clone(),
            branch,
            commit: commit.to_hex(),
            infohash: seeded.infohash.to_hex(),
            seq,
            backups,
            already,
        },
    )
}

/// The topic `writer` may push to, if this master owns it and the
/// signing `time` is close enough to this master's clock.
fn authorize(
    master: &Master,
    topic_key: tracker_free::TopicKey,
    writer: WriterKey,
    time: u64,
    client: SocketAddr,
) -> Result<&Arc<TopicState>, Box<(StatusCode, PushAnswer)>> {
    let Some(topic) = master
        .topics
        .iter()
        .find(|t| t.config.secret.topic() == topic_key)
    else {
        return Err(Box::new(invalid(
            StatusCode::NOT_FOUND,
            format!("this master does not own topic {topic_key}"),
        )));
    };
    if !topic.config.writers.contains(&writer) {
        tracing::warn!(topic = %topic.config.name, %writer, %client, "push by an unknown writer refused");
        return Err(Box::new(refused(format!(
            "writer {writer} may not push to topic '{}': add its key to the topic's writers in the master's configuration",
            topic.config.name
        ))));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let skew = now.abs_diff(time);
    if skew > master.config.limits.max_clock_skew.as_secs() {
        return Err(Box::new(refused(format!(
            "the request was signed {skew} s away from this master's clock (at most {} s); check both clocks",
            master.config.limits.max_clock_skew.as_secs()
        ))));
    }
    Ok(topic)
}

/// Handles `PUT /push/metadata/<infohash>`: keeps the info dictionary a
/// writer uploads for a commit it is about to push, once the signed headers
/// show a writer of the topic and the body hashes to the infohash.
pub(crate) async fn offer_metadata(
    master: &Master,
    client: SocketAddr,
    info_hash: &str,
    headers: &axum::http::HeaderMap,
    body: axum::body::Body,
) -> Result<InfoHash, (StatusCode, PushAnswer)> {
    let info_hash = InfoHash::from_hex(info_hash).ok_or_else(|| {
        invalid(
            StatusCode::BAD_REQUEST,
            format!(
                "{} is not an infohash (40 lowercase hex digits)",
                xus_codec::quote::short(info_hash)
            ),
        )
    })?;
    let offer = MetadataOffer::verify(
        |name| headers.get(name).and_then(|v| v.to_str().ok()),
        info_hash,
    )
    .map_err(|error| match error {
        MetadataOfferError::BadSignature => refused(error.to_string()),
        _ => invalid(StatusCode::BAD_REQUEST, error.to_string()),
    })?;
    authorize(master, offer.topic, offer.writer, offer.time, client).map_err(|a| *a)?;
    // Read only now, from a writer of the topic, and never past the bound.
    let info = super::slow_body::read(body, MAX_INFO_BYTES)
        .await
        .map_err(|error| {
            let status = match error {
                super::slow_body::BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                super::slow_body::BodyError::TooSlow => StatusCode::REQUEST_TIMEOUT,
                super::slow_body::BodyError::Broken => StatusCode::BAD_REQUEST,
            };
            invalid(status, format!("the info dictionary: {error}"))
        })?;
    let torrent = CommitTorrent::parse(&info).map_err(|error| {
        invalid(
            StatusCode::BAD_REQUEST,
            format!("not a xus commit torrent's info dictionary: {error}"),
        )
    })?;
    if torrent.info_hash != info_hash {
        return Err(invalid(
            StatusCode::BAD_REQUEST,
            format!(
                "the body is the info dictionary of {}, not of {info_hash}",
                torrent.info_hash
            ),
        ));
    }
    tracing::info!(%info_hash, commit = %torrent.commit, writer = %offer.writer, %client, "metadata offered");
    master.offered.put(info_hash, Arc::from(info.as_ref()));
    Ok(info_hash)
}

/// Downloads every pushed commit the repository lacks, oldest first, each
/// refused unless its parents are already here.
async fn take_commits(
    master: &Master,
    topic: &TopicState,
    signed: &SignedPush,
    writer_peer: Option<SocketAddr>,
) -> Result<(), (StatusCode, PushAnswer)> {
    let _fetching = topic.fetching.lock().await;
    let request = FetchRequest {
        repo: topic.git_dir.clone(),
        bare: true,
        refs: RefOptions::default(),
        peers: writer_peer.into_iter().collect(),
        webseeds: Vec::new(),
        metadata_timeout: METADATA_TIMEOUT,
        stall_timeout: master.config.limits.fetch_stall,
        require_parents: true,
        use_updates: false,
        history: History::Tip,
        base: None,
        deepen: false,
        timed_from: Some(std::time::Instant::now()),
        repair: false,
    };
    let report: std::sync::Arc<dyn FetchReport> = std::sync::Arc::new(LogReport);
    for pushed in &signed.request.commits {
        let git_dir = topic.git_dir.clone();
        let commit = pushed.commit;
        let present = tokio::task::spawn_blocking(move || {
            git2::Repository::open(&git_dir)
                .and_then(|r| r.odb().map(|odb| odb.exists(commit.to_git())))
        })
        .await
        .map_err(|e| failed(format!("checking {commit}: {e}")))?
        .map_err(|e| failed(format!("checking {commit}: {e}")))?;
        if present {
            continue;
        }
        // Metadata the writer uploaded saves asking it over BEP 9, which
        // needs a connection to it (impossible when it is behind NAT).
        let offered = master
            .offered
            .get(pushed.info_hash)
            .and_then(|info| CommitTorrent::parse(&info).ok());
        if let Err(error) = fetch::fetch_commit(
            &master.swarm,
            pushed.info_hash,
            commit,
            offered,
            &request,
            &report,
        )
        .await
        {
            if let FetchError::MissingParent { .. } = error {
                return Err(invalid(StatusCode::BAD_REQUEST, error.to_string()));
            }
            let error = anyhow::Error::from(error);
            return Err(failed(format!(
                "could not take commit {commit} (torrent {}) from the swarm: {error:#}",
                pushed.info_hash
            )));
        }
    }
    Ok(())
}

/// What [`move_branch`] did.
enum Move {
    /// The branch moved forward to the commit from `previous` (or was
    /// created: `None`).
    Moved { previous: Option<ObjectId> },
    /// The branch was already at the commit.
    Already,
    /// The branch is at `current`, a descendant of the commit: a replayed
    /// or late push, which must neither move it back nor keep anything.
    Contained { current: ObjectId },
    /// The branch is elsewhere and the commit does not descend from it: it
    /// is kept under `kept`.
    NotFastForward { current: ObjectId, kept: String },
}

/// Moves `branch` to `commit` if that is a fast-forward, with a
/// compare-and-swap on the old tip; leaves it when it already contains the
/// commit; otherwise keeps the commit under [`kept_ref`].
fn move_branch(
    git_dir: &std::path::Path,
    branch: &str,
    commit: ObjectId,
    writer: &str,
) -> anyhow::Result<Move> {
    let repo = git2::Repository::open_bare(git_dir)?;
    let refname = format!("refs/heads/{branch}");
    let message = format!("xus push by writer {writer}");
    let new = commit.to_git();
    repo.find_commit(new)?;
    let current = match repo.find_reference(&refname) {
        Ok(reference) => reference.target(),
        Err(e) if e.code() == git2::ErrorCode::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    match current {
        None => {
            repo.reference(&refname, new, false, &message)?;
            Ok(Move::Moved { previous: None })
        }
        Some(current) if current == new => Ok(Move::Already),
        Some(current) if repo.graph_descendant_of(new, current)? => {
            repo.reference_matching(&refname, new, true, current, &message)?;
            Ok(Move::Moved {
                previous: ObjectId::from_git(current),
            })
        }
        Some(current) if repo.graph_descendant_of(current, new)? => Ok(Move::Contained {
            current: ObjectId::from_git(current)
                .ok_or_else(|| anyhow::anyhow!("{refname} is not a SHA-1 commit"))?,
        }),
        Some(current) => {
            let kept = kept_ref(branch, commit);
            repo.reference(&kept, new, true, &message)?;
            Ok(Move::NotFastForward {
                current: ObjectId::from_git(current)
                    .ok_or_else(|| anyhow::anyhow!("{refname} is not a SHA-1 commit"))?,
                kept,
            })
        }
    }
}

fn refused(message: String) -> (StatusCode, PushAnswer) {
    (StatusCode::FORBIDDEN, PushAnswer::Refused { message })
}

fn invalid(status: StatusCode, message: String) -> (StatusCode, PushAnswer) {
    (status, PushAnswer::Invalid { message })
}

fn failed(message: String) -> (StatusCode, PushAnswer) {
    tracing::warn!(%message, "push failed");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        PushAnswer::Failed { message },
    )
}
