//! Backup remotes: every branch and every kept commit of a topic's
//! repository, copied to two or more Git remotes (bare repositories on disk,
//! smart-HTTP URLs) through libgit2, and read back by a master that starts
//! with nothing.
//!
//! Each remote has its own worker, so one that is down never holds up the
//! others or a push: a push waits for the first remote that has its commit
//! ([`Backups::wait_for`]); the rest catch up in the background, retrying
//! with backoff. Refs are never forced: a remote whose branch went
//! elsewhere is reported, not overwritten.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use git2::{Direction, Oid, Repository};
use serde::Serialize;
use tokio::sync::watch;

use crate::git::object::ObjectId;

mod remote;
mod restore;

pub use remote::redact;
use remote::{is_path, list, set_network_timeouts};
pub use restore::{Restored, restore};

/// The refs a master backs up: its branches and the commits it keeps for
/// writers that lost a race.
pub const BACKED_UP: [&str; 2] = ["refs/heads/", "refs/xus/rejected/"];

/// First pause after a failed attempt; doubles up to the configured cap.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// A remote that is in sync is checked again this often anyway, so that a
/// remote changed behind the master's back shows up in the status.
const RECHECK: Duration = Duration::from_secs(300);

/// Why a ref was left alone when the remote holds it elsewhere.
const NOT_FAST_FORWARD: &str = "not a fast-forward";

/// Most commits counted per ref when reporting lag.
const MAX_COUNTED: u64 = 100_000;

/// The backup remotes of one repository and their workers.
pub struct Backups {
    git_dir: PathBuf,
    remotes: Vec<Arc<Remote>>,
    /// Bumped when local refs change: workers wake and push.
    changed: watch::Sender<u64>,
    /// Bumped after every attempt of any worker: waiters re-check.
    progress: watch::Sender<u64>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

struct Remote {
    url: String,
    /// `url` without its password, for status, answers and logs.
    shown: String,
    state: Mutex<RemoteState>,
}

#[derive(Default)]
struct RemoteState {
    /// The remote's backed-up refs as last listed or pushed; `None` until
    /// it was reached once.
    known: Option<HashMap<String, Oid>>,
    last_error: Option<String>,
    last_success: Option<SystemTime>,
    behind_since: Option<SystemTime>,
    /// Refs left alone there: held elsewhere (not fast-forwardable to
    /// ours) or refused by the remote itself; with the reason.
    refused: Vec<(String, String)>,
}

/// How far one remote is behind, as `GET /status` and `xus master status`
/// show it.
#[derive(Debug, Clone, Serialize)]
pub struct RemoteStatus {
    /// The remote.
    pub url: String,
    /// Refs whose value there differs from here (missing ones included).
    pub refs_behind: usize,
    /// Commits here that the remote's refs do not reach (capped per ref).
    pub commits_behind: u64,
    /// Unix seconds since which it has been behind; `None` when in sync.
    pub behind_since: Option<u64>,
    /// Unix seconds of the last attempt that reached it.
    pub last_success: Option<u64>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    /// Refs it holds at commits that ours do not descend from, or that it
    /// refused itself (a hook, a protected branch): never forced, someone
    /// must look. The reasons are in `last_error`.
    pub refused: Vec<String>,
}

impl Backups {
    /// Starts one worker per remote. Each pushes at once, again whenever
    /// [`Self::notify`] is called, and retries a failing remote with backoff
    /// from 1 s up to `max_retry`.
    pub fn start(git_dir: PathBuf, remotes: Vec<String>, max_retry: Duration) -> Arc<Self> {
        set_network_timeouts();
        let (changed, _) = watch::channel(0);
        let (progress, _) = watch::channel(0);
        let backups = Arc::new(Self {
            git_dir,
            remotes: remotes
                .into_iter()
                .map(|url| {
                    Arc::new(Remote {
                        shown: redact(&url),
                        url,
                        state: Mutex::new(RemoteState {
                            behind_since: Some(SystemTime::now()),
                            ..RemoteState::default()
                        }),
                    })
                })
                .collect(),
            changed,
            progress,
            tasks: Mutex::new(Vec::new()),
        });
        let mut tasks = Vec::new();
        for remote in &backups.remotes {
            tasks.push(tokio::spawn(worker(
                backups.git_dir.clone(),
                remote.clone(),
                backups.changed.subscribe(),
                backups.progress.clone(),
                max_retry.max(FIRST_RETRY),
            )));
        }
        *lock(&backups.tasks) = tasks;
        backups
    }

    /// Local refs changed: every remote should catch up now, including the
    /// ones waiting out a backoff.
    pub fn notify(&self) {
        let now = SystemTime::now();
        for remote in &self.remotes {
            lock(&remote.state).behind_since.get_or_insert(now);
        }
        self.changed.send_modify(|generation| *generation += 1);
    }

    /// Waits until at least one remote holds `refname` at `commit`; returns
    /// the remotes that do. Fails after `timeout` with each remote's last
    /// error.
    pub async fn wait_for(
        &self,
        refname: &str,
        commit: ObjectId,
        timeout: Duration,
    ) -> anyhow::Result<Vec<String>> {
        let want = commit.to_git();
        let mut progress = self.progress.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let holding: Vec<String> = self
                .remotes
                .iter()
                .filter(|r| {
                    lock(&r.state).known.as_ref().and_then(|k| k.get(refname)) == Some(&want)
                })
                .map(|r| r.shown.clone())
                .collect();
            if !holding.is_empty() {
                return Ok(holding);
            }
            match tokio::time::timeout_at(deadline, progress.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => {
                    let errors: Vec<String> = self
                        .remotes
                        .iter()
                        .map(|r| {
                            let state = lock(&r.state);
                            format!(
                                "{}: {}",
                                r.shown,
                                state.last_error.as_deref().unwrap_or("not reached yet")
                            )
                        })
                        .collect();
                    anyhow::bail!(
                        "no backup remote holds {refname} at {commit} after {} s ({})",
                        timeout.as_secs(),
                        errors.join("; ")
                    );
                }
            }
        }
    }

    /// Each remote's lag, computed against the refs here now.
    pub fn status(&self) -> Vec<RemoteStatus> {
        let repo = Repository::open_bare(&self.git_dir).ok();
        let local = repo
            .as_ref()
            .and_then(|r| backed_up_refs(r).ok())
            .unwrap_or_default();
        self.remotes
            .iter()
            .map(|remote| {
                let state = lock(&remote.state);
                let empty = HashMap::new();
                let known = state.known.as_ref().unwrap_or(&empty);
                let mut refs_behind = 0;
                let mut commits_behind = 0;
                for (name, oid) in &local {
                    let there = known.get(name);
                    if there == Some(oid) {
                        continue;
                    }
                    refs_behind += 1;
                    if let Some(repo) = &repo {
                        commits_behind += count_missing(repo, *oid, there.copied());
                    }
                }
                RemoteStatus {
                    url: remote.shown.clone(),
                    refs_behind,
                    commits_behind,
                    behind_since: if refs_behind == 0 {
                        None
                    } else {
                        state.behind_since.map(unix)
                    },
                    last_success: state.last_success.map(unix),
                    last_error: state.last_error.clone(),
                    refused: state.refused.iter().map(|(name, _)| name.clone()).collect(),
                }
            })
            .collect()
    }

    /// Stops the workers (an attempt under way finishes on its own).
    pub async fn stop(&self) {
        let tasks = std::mem::take(&mut *lock(&self.tasks));
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Backups {
    fn drop(&mut self) {
        for task in lock(&self.tasks).iter() {
            task.abort();
        }
    }
}

/// One remote's loop: push, then sleep until refs change (or a backoff
/// runs out after a failure).
async fn worker(
    git_dir: PathBuf,
    remote: Arc<Remote>,
    mut changed: watch::Receiver<u64>,
    progress: watch::Sender<u64>,
    max_retry: Duration,
) {
    let mut backoff = FIRST_RETRY;
    loop {
        changed.borrow_and_update();
        let (dir, target, url) = (git_dir.clone(), remote.url.clone(), remote.shown.clone());
        let attempt = tokio::task::spawn_blocking(move || sync_once(&dir, &target, &url))
            .await
            .map_err(anyhow::Error::from)
            .and_then(|r| r);
        let healthy = {
            let mut state = lock(&remote.state);
            match attempt {
                Ok(report) => {
                    state.last_success = Some(SystemTime::now());
                    state.known = Some(report.remote_refs);
                    state.refused = report.refused;
                    state.last_error = (!state.refused.is_empty()).then(|| {
                        let refs: Vec<String> = state
                            .refused
                            .iter()
                            .map(|(name, why)| format!("{name} ({why})"))
                            .collect();
                        format!("left alone there, never forced: {}", refs.join(", "))
                    });
                    if report.in_sync {
                        state.behind_since = None;
                    }
                    tracing::debug!(url = %remote.shown, pushed = report.pushed, "backup remote synced");
                    state.refused.is_empty()
                }
                Err(error) => {
                    let message = format!("{error:#}");
                    if state.last_error.as_deref() != Some(message.as_str()) {
                        tracing::warn!(url = %remote.shown, error = %message, "backup remote failed; retrying in the background");
                    }
                    state.last_error = Some(message);
                    state.behind_since.get_or_insert(SystemTime::now());
                    false
                }
            }
        };
        progress.send_modify(|n| *n += 1);
        let pause = if healthy {
            backoff = FIRST_RETRY;
            RECHECK
        } else {
            let pause = backoff;
            backoff = (backoff * 2).min(max_retry);
            pause
        };
        tokio::select! {
            result = changed.changed() => if result.is_err() { return },
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

struct SyncReport {
    remote_refs: HashMap<String, Oid>,
    /// Ref name and why it was not pushed.
    refused: Vec<(String, String)>,
    pushed: usize,
    in_sync: bool,
}

/// Lists the remote, pushes every backed-up ref that differs and is a
/// fast-forward there, and reports what the remote holds afterwards.
/// `target` is the real URL, `url` the one without password that messages
/// may carry.
fn sync_once(git_dir: &Path, target: &str, url: &str) -> anyhow::Result<SyncReport> {
    let repo =
        Repository::open_bare(git_dir).with_context(|| format!("opening {}", git_dir.display()))?;
    if is_path(target) && !Path::new(target).exists() {
        // A backup disk that is mounted but empty: start the copy.
        Repository::init_bare(target).with_context(|| format!("creating {url}"))?;
    }
    let local = backed_up_refs(&repo)?;
    let mut remote = repo
        .remote_anonymous(target)
        .with_context(|| format!("{url} is not a usable remote"))?;
    let mut remote_refs = list(&mut remote, Direction::Push, url)?;
    let mut refspecs = Vec::new();
    let mut refused = Vec::new();
    let mut names: Vec<&String> = local.keys().collect();
    names.sort();
    for name in names {
        let ours = local[name];
        match remote_refs.get(name) {
            Some(&theirs) if theirs == ours => {}
            Some(&theirs) if !fast_forward(&repo, theirs, ours) => {
                refused.push((name.clone(), NOT_FAST_FORWARD.to_owned()));
            }
            _ => refspecs.push(format!("{name}:{name}")),
        }
    }
    let mut rejected: Vec<(String, String)> = Vec::new();
    if !refspecs.is_empty() {
        let mut callbacks = git2::RemoteCallbacks::new();
        callbacks.push_update_reference(|refname, status| {
            if let Some(message) = status {
                rejected.push((refname.to_owned(), message.to_owned()));
            }
            Ok(())
        });
        let mut options = git2::PushOptions::new();
        options.remote_callbacks(callbacks);
        remote
            .push(&refspecs, Some(&mut options))
            .with_context(|| format!("pushing to {url}"))?;
        drop(options);
        for spec in &refspecs {
            let name = spec.split(':').next().unwrap_or(spec);
            if let Some((_, message)) = rejected.iter().find(|(r, _)| r == name) {
                tracing::warn!(%url, refname = %name, %message, "the remote refused a ref");
                refused.push((name.to_owned(), message.clone()));
            } else {
                remote_refs.insert(name.to_owned(), local[name]);
            }
        }
    }
    let in_sync = local.iter().all(|(n, o)| remote_refs.get(n) == Some(o));
    Ok(SyncReport {
        remote_refs,
        refused,
        pushed: refspecs.len().saturating_sub(rejected.len()),
        in_sync,
    })
}

/// The backed-up refs of `repo`.
fn backed_up_refs(repo: &Repository) -> anyhow::Result<HashMap<String, Oid>> {
    let mut refs = HashMap::new();
    for prefix in BACKED_UP {
        for reference in repo.references_glob(&format!("{prefix}*"))? {
            let reference = reference?;
            if let (Ok(name), Some(oid)) = (reference.name(), reference.target()) {
                refs.insert(name.to_owned(), oid);
            }
        }
    }
    Ok(refs)
}

/// Whether moving a ref from `theirs` to `ours` loses nothing: `theirs` is
/// here and `ours` descends from it.
fn fast_forward(repo: &Repository, theirs: Oid, ours: Oid) -> bool {
    repo.odb().is_ok_and(|odb| odb.exists(theirs))
        && repo.graph_descendant_of(ours, theirs).unwrap_or(false)
}

/// Commits reachable from `tip` but not from `there` (all of `tip`'s
/// history when the remote has nothing usable), at most [`MAX_COUNTED`].
fn count_missing(repo: &Repository, tip: Oid, there: Option<Oid>) -> u64 {
    let Ok(mut walk) = repo.revwalk() else {
        return 0;
    };
    if walk.push(tip).is_err() {
        return 0;
    }
    if let Some(there) = there
        && repo.odb().is_ok_and(|odb| odb.exists(there))
    {
        let _ = walk.hide(there);
    }
    walk.take(MAX_COUNTED as usize).count() as u64
}

fn unix(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every update is a plain assignment: the data is whole after a panic.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A commit on `refname` with the given parents and an empty tree.
    fn commit(repo: &Repository, refname: Option<&str>, parents: &[Oid], message: &str) -> Oid {
        let signature =
            git2::Signature::new("t", "t@example.invalid", &git2::Time::new(1_700_000_000, 0))
                .expect("signature");
        let tree = repo
            .find_tree(repo.treebuilder(None).expect("tree").write().expect("tree"))
            .expect("tree");
        let parents: Vec<git2::Commit<'_>> = parents
            .iter()
            .map(|p| repo.find_commit(*p).expect("parent"))
            .collect();
        let parents: Vec<&git2::Commit<'_>> = parents.iter().collect();
        repo.commit(refname, &signature, &signature, message, &tree, &parents)
            .expect("commit")
    }

    #[test]
    fn lag_and_fast_forwards_follow_history() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = Repository::init_bare(dir.path()).expect("init");
        let a = commit(&repo, None, &[], "a");
        let b = commit(&repo, None, &[a], "b");
        let c = commit(&repo, None, &[b], "c");
        let d = commit(&repo, None, &[a], "d");
        let unknown = Oid::from_str("1234567890123456789012345678901234567890").expect("oid");
        assert!(fast_forward(&repo, a, c));
        assert!(!fast_forward(&repo, c, a), "backwards");
        assert!(!fast_forward(&repo, d, c), "sideways");
        assert!(!fast_forward(&repo, unknown, c), "unknown there");
        assert_eq!(count_missing(&repo, c, Some(a)), 2);
        assert_eq!(count_missing(&repo, c, Some(c)), 0);
        assert_eq!(count_missing(&repo, c, Some(d)), 2, "b and c; a is shared");
        assert_eq!(count_missing(&repo, c, None), 3);
        assert_eq!(count_missing(&repo, c, Some(unknown)), 3);
    }

    #[test]
    fn a_sync_creates_a_missing_disk_remote_and_never_forces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let local_dir = dir.path().join("local.git");
        let local = Repository::init_bare(&local_dir).expect("init");
        let a = commit(&local, Some("refs/heads/main"), &[], "a");
        commit(&local, Some("refs/xus/rejected/main/1"), &[a], "kept");
        local
            .reference("refs/tags/v1", a, false, "not backed up")
            .expect("tag");
        let remote_dir = dir.path().join("disk").join("backup.git");
        let url = remote_dir.to_str().expect("utf-8");

        let report = sync_once(&local_dir, url, url).expect("first sync");
        assert!(report.in_sync && report.refused.is_empty());
        assert_eq!(report.pushed, 2);
        let remote = Repository::open_bare(&remote_dir).expect("created");
        assert_eq!(
            backed_up_refs(&remote).expect("refs"),
            backed_up_refs(&local).expect("refs")
        );
        assert!(
            remote.find_reference("refs/tags/v1").is_err(),
            "tags are not backed up"
        );

        // The remote's main moves elsewhere; ours moves on too.
        let theirs = commit(&remote, Some("refs/heads/main"), &[a], "theirs");
        commit(&local, Some("refs/heads/main"), &[a], "ours");
        let report = sync_once(&local_dir, url, url).expect("second sync");
        assert!(!report.in_sync);
        assert_eq!(
            report.refused,
            vec![("refs/heads/main".to_owned(), NOT_FAST_FORWARD.to_owned())]
        );
        assert_eq!(report.pushed, 0);
        assert_eq!(
            remote.refname_to_id("refs/heads/main").expect("main"),
            theirs
        );
    }

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("https://bot:s3cret@git.example.org/w.git"),
            "https://bot:***@git.example.org/w.git"
        );
        assert_eq!(
            redact("https://token@git.example.org/a@b"),
            "https://***@git.example.org/a@b"
        );
        assert_eq!(redact("http://host/x.git"), "http://host/x.git");
        assert_eq!(redact("/srv/backup/x.git"), "/srv/backup/x.git");
    }
}
