//! `GET /updates/<from>..<to>.xup`: the update payload from any commit the
//! server holds (or from [`NOTHING`]: the whole history, for a clone) to a
//! commit it serves, built on demand. A head lists updates
//! from its last few predecessors only; a reader further behind (offline
//! for a while) asks the topic master for one from the commit it holds
//! instead of downloading the whole commit torrent, and the commits the
//! update carries prove the fast-forward. The reader checks every object
//! and the rebuilt commit torrent against the signed head, so the server is
//! trusted with nothing.
//!
//! Building costs CPU (zstd at the publisher's level), so builds run one at
//! a time, a request waits at most [`BUILD_WAIT`] for its turn (then `503`),
//! and the last few payloads are kept in memory: followers that went offline
//! together ask for the same range.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::git::object::ObjectId;
use crate::swarm::webseed_source::GitWebseed;
use crate::torrent::update::{
    NOTHING, UpdateSettings, UpdateStore, UpdateTorrent, build_history, build_update,
};

/// How long a request waits for another build to finish before `503`.
pub const BUILD_WAIT: Duration = Duration::from_secs(60);

/// Payloads kept in memory after they are built.
/// zstd level of updates built on demand. They are no torrent (nothing
/// hashes them, so they need not be reproducible) and a reader waits while
/// they are built: level 9 compresses about ten times faster than the 19 of
/// listed update torrents, for payloads 8-24 % larger (`docs/FORMAT.md`).
const ON_DEMAND_LEVEL: i32 = 9;

const RECENT_PAYLOADS: usize = 4;

/// Largest payload kept in memory after it is sent.
const MAX_KEPT_PAYLOAD: usize = 64 << 20;

/// The URL path of the update from `from` to `to`, below a server's base
/// URL; with `depth`, only that many generations of history (from
/// [`NOTHING`] only).
pub fn update_path(from: ObjectId, to: ObjectId, depth: Option<usize>) -> String {
    let name = UpdateTorrent::file_name(from, to);
    match depth {
        Some(depth) => format!("updates/{name}?depth={depth}"),
        None => format!("updates/{name}"),
    }
}

/// Which update a request names: from, to, and the depth of a history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Wanted {
    from: ObjectId,
    to: ObjectId,
    depth: Option<usize>,
}

/// One repository whose served commits updates lead to.
pub struct ServedRepo {
    /// Its git directory: the objects updates are built from.
    pub git_dir: PathBuf,
    /// What it serves: an update's `to` must be published there.
    pub webseed: Arc<GitWebseed>,
}

/// A payload kept after it was sent.
type KeptPayload = (Wanted, Arc<[u8]>);

/// Builds and serves updates for one or more repositories.
pub struct UpdateServer {
    repos: Vec<ServedRepo>,
    recent: Mutex<VecDeque<KeptPayload>>,
    building: tokio::sync::Semaphore,
}

impl UpdateServer {
    /// Serves updates to the commits `repos` publish.
    pub fn new(repos: Vec<ServedRepo>) -> Arc<Self> {
        Arc::new(Self {
            repos,
            recent: Mutex::new(VecDeque::new()),
            building: tokio::sync::Semaphore::new(1),
        })
    }

    /// The route, to merge next to a webseed's (it keeps clear of the
    /// webseed's `/<commit>/...` and `/<commit>.torrent`).
    pub fn routes(self: Arc<Self>) -> Router {
        Router::new()
            .route("/updates/{name}", get(serve_update))
            .with_state(self)
    }

    fn recent(&self, wanted: Wanted) -> Option<Arc<[u8]>> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent
            .iter()
            .find(|(kept, _)| *kept == wanted)
            .map(|(_, payload)| payload.clone())
    }

    fn keep(&self, wanted: Wanted, payload: Arc<[u8]>) {
        if payload.len() > MAX_KEPT_PAYLOAD {
            return;
        }
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.iter().any(|(kept, _)| *kept == wanted) {
            return;
        }
        if recent.len() == RECENT_PAYLOADS {
            recent.pop_front();
        }
        recent.push_back((wanted, payload));
    }

    /// The payload wanted: kept in memory, stored beside the repository (a
    /// head's own update), or built now.
    async fn payload(&self, wanted: Wanted) -> Result<Arc<[u8]>, Refused> {
        let to = wanted.to;
        if let Some(payload) = self.recent(wanted) {
            return Ok(payload);
        }
        let git_dir = self
            .repos
            .iter()
            .find(|repo| repo.webseed.published(to).is_some())
            .map(|repo| repo.git_dir.clone())
            .ok_or(Refused::NotServed(to))?;
        let _turn = tokio::time::timeout(BUILD_WAIT, self.building.acquire())
            .await
            .map_err(|_| Refused::Busy)?
            .map_err(|_| Refused::Busy)?;
        // Another request may have built it while this one waited.
        if let Some(payload) = self.recent(wanted) {
            return Ok(payload);
        }
        let payload = tokio::task::spawn_blocking(move || build(&git_dir, wanted))
            .await
            .map_err(|e| Refused::Failed(format!("building the update panicked: {e}")))??;
        self.keep(wanted, payload.clone());
        Ok(payload)
    }
}

/// Why no update was sent.
#[derive(Debug)]
enum Refused {
    /// The path is not `<from>..<to>.xup` with two lowercase commit ids.
    BadName,
    /// `to` is not a commit this server serves.
    NotServed(ObjectId),
    /// `from` is not a commit here.
    UnknownFrom(ObjectId),
    /// Another build took longer than [`BUILD_WAIT`].
    Busy,
    /// Building failed.
    Failed(String),
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let (status, text) = match self {
            Refused::BadName => (
                StatusCode::BAD_REQUEST,
                "expected /updates/<from>..<to>.xup with two lowercase commit ids, and \
                 ?depth=N (N at least 1) only from the null id"
                    .to_owned(),
            ),
            Refused::NotServed(to) => (StatusCode::NOT_FOUND, format!("{to} is not served here")),
            Refused::UnknownFrom(from) => (
                StatusCode::NOT_FOUND,
                format!("{from} is not a commit here"),
            ),
            Refused::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "another update is being built; waited {} s",
                    BUILD_WAIT.as_secs()
                ),
            ),
            Refused::Failed(reason) => (StatusCode::INTERNAL_SERVER_ERROR, reason),
        };
        (status, format!("{text}\n")).into_response()
    }
}

/// Parses `<from>..<to>.xup` (40 lowercase hex digits each, as
/// [`UpdateTorrent::file_name`] writes them) and the query: nothing, or
/// `depth=N` (N ≥ 1, no leading zero) when `from` is [`NOTHING`].
fn parse_request(name: &str, query: Option<&str>) -> Option<Wanted> {
    let (from, to) = name.strip_suffix(".xup")?.split_once("..")?;
    let (from, to) = (ObjectId::from_hex(from)?, ObjectId::from_hex(to)?);
    if UpdateTorrent::file_name(from, to) != name || from == to || to == NOTHING {
        return None;
    }
    let depth = match query {
        None => None,
        Some(query) => {
            let digits = query.strip_prefix("depth=")?;
            if from != NOTHING || digits.starts_with('0') || digits.len() > 9 {
                return None;
            }
            Some(digits.parse::<usize>().ok().filter(|&d| d >= 1)?)
        }
    };
    Some(Wanted { from, to, depth })
}

/// The stored update, else one built from the repository; never stored, so
/// requests cannot fill the disk with ranges no head lists.
fn build(git_dir: &std::path::Path, wanted: Wanted) -> Result<Arc<[u8]>, Refused> {
    let Wanted { from, to, depth } = wanted;
    if depth.is_none()
        && let Some(stored) = UpdateStore::of(git_dir).load(from, to)
    {
        return Ok(stored.payload);
    }
    let repo = git2::Repository::open_bare(git_dir)
        .map_err(|e| Refused::Failed(format!("opening {}: {e}", git_dir.display())))?;
    let is_commit = from == NOTHING
        || repo
            .odb()
            .and_then(|odb| odb.read_header(from.to_git()))
            .is_ok_and(|(_, kind)| kind == git2::ObjectType::Commit);
    if !is_commit {
        return Err(Refused::UnknownFrom(from));
    }
    let settings = UpdateSettings {
        level: ON_DEMAND_LEVEL,
        ..UpdateSettings::default()
    };
    let update = match depth {
        Some(depth) => build_history(&repo, to, &settings, Some(depth)),
        None => build_update(&repo, from, to, &settings),
    }
    .map_err(|e| Refused::Failed(format!("building {from}..{to}: {e}")))?;
    Ok(update.payload.into())
}

async fn serve_update(
    State(server): State<Arc<UpdateServer>>,
    Path(name): Path<String>,
    uri: Uri,
) -> Response {
    let Some(wanted) = parse_request(&name, uri.query()) else {
        return Refused::BadName.into_response();
    };
    let (from, to) = (wanted.from, wanted.to);
    match server.payload(wanted).await {
        Ok(payload) => {
            tracing::info!(%from, %to, bytes = payload.len(), "served an update built on demand");
            (
                [(header::CONTENT_TYPE, "application/octet-stream")],
                axum::body::Bytes::from_owner(payload),
            )
                .into_response()
        }
        Err(refused) => {
            tracing::info!(%from, %to, ?refused, "refused an update request");
            refused.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_names_and_depths_parse() {
        let (a, b, z) = ("a".repeat(40), "b".repeat(40), "0".repeat(40));
        let id = |hex: &str| ObjectId::from_hex(hex).expect("hex");
        let wanted = |from: &str, to: &str, depth| Wanted {
            from: id(from),
            to: id(to),
            depth,
        };
        let name = |from: &str, to: &str| format!("{from}..{to}.xup");
        assert_eq!(
            parse_request(&name(&a, &b), None),
            Some(wanted(&a, &b, None))
        );
        assert_eq!(
            parse_request(&name(&z, &b), Some("depth=3")),
            Some(wanted(&z, &b, Some(3)))
        );
        assert_eq!(
            update_path(id(&z), id(&b), Some(3)),
            format!("updates/{z}..{b}.xup?depth=3")
        );
        assert_eq!(
            update_path(id(&a), id(&b), None),
            format!("updates/{a}..{b}.xup")
        );
        for (bad, query) in [
            (name(&a, &a), None),
            (name(&a, &z), None),
            (format!("{a}..{b}"), None),
            (format!("{a}...{b}.xup"), None),
            (name(&"A".repeat(40), &b), None),
            (format!("{a}..{b}.xup.xup"), None),
            (name(&a, &b[..39]), None),
            ("..".to_owned(), None),
            (String::new(), None),
            (name(&a, &b), Some("depth=3")),
            (name(&z, &b), Some("depth=0")),
            (name(&z, &b), Some("depth=03")),
            (name(&z, &b), Some("depth=-1")),
            (name(&z, &b), Some("depth=9999999999")),
            (name(&z, &b), Some("depth=")),
            (name(&z, &b), Some("x=1")),
        ] {
            assert_eq!(parse_request(&bad, query), None, "{bad}?{query:?}");
        }
    }
}
