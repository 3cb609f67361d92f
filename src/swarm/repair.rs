//! `xus verify --repair`: finds what is broken in a repository against one
//! commit ([`crate::git::integrity`]), sets damaged packs and corrupt
//! objects aside, fetches back only the objects then missing (the commit's
//! torrent, with every object still here reused: only the pieces of broken
//! blobs move), and checks edited or deleted work-tree files out again.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use crate::git::integrity::{self, Problem, Report, SetAside};
use crate::git::object::ObjectId;
use crate::git::state_dir::StateDir;
use crate::swarm::Swarm;
use crate::swarm::fetch::{self, FetchReport, FetchRequest, Fetched, Hints, Source};
use crate::topic::home::Home;
use crate::torrent::cache;

/// The commit `rev` names, read from refs without reading the commit
/// object itself (which may be the broken one): a ref name, a branch, or a
/// full hex id; else any revision Git resolves.
///
/// # Errors
///
/// Nothing here names a commit by `rev`.
pub fn target_commit(repo: &git2::Repository, rev: &str) -> anyhow::Result<ObjectId> {
    let by_ref = [rev.to_owned(), format!("refs/heads/{rev}")]
        .iter()
        .find_map(|name| repo.refname_to_id(name).ok())
        .and_then(ObjectId::from_git);
    if let Some(id) = by_ref.or_else(|| ObjectId::from_hex(rev)) {
        return Ok(id);
    }
    crate::git::repo::resolve_commit(repo, rev)
}

/// Checks the repository at `repo` against `commit` (see
/// [`integrity::check`]), off the async runtime.
///
/// # Errors
///
/// The repository cannot be opened or read.
pub async fn check(repo: &Path, commit: ObjectId) -> anyhow::Result<Report> {
    let repo = repo.to_owned();
    tokio::task::spawn_blocking(move || {
        let repo = crate::git::repo::open(&repo)?;
        Ok(integrity::check(&repo, commit, true)?)
    })
    .await?
}

/// Where the commit's torrent comes from for a repair, in order: what the
/// user named; the head this repository follows when it names `commit`
/// (its infohash is signed); the torrent cache (a seed or an update built
/// it here).
///
/// # Errors
///
/// None of them knows the commit's torrent.
pub fn repair_source(
    git_dir: &Path,
    commit: ObjectId,
    named: Option<Source>,
    home: &Home,
) -> anyhow::Result<Source> {
    if let Some(source) = named {
        return Ok(source);
    }
    let hints = Hints {
        name: Some(commit.to_hex()),
        ..Hints::default()
    };
    for (_, seen) in followed_heads(git_dir, home) {
        if seen.head.commit.as_slice() == commit.0.as_slice() {
            let info_hash = crate::torrent::info_hash::InfoHash::from(seen.head.infohash);
            return Ok(Source::InfoHash(info_hash, hints));
        }
    }
    if let Some(torrent) = cache::load(git_dir, commit) {
        return Ok(Source::Torrent(Box::new(torrent), Vec::new()));
    }
    anyhow::bail!(
        "no torrent of commit {commit} is known here (no followed head names it, none is cached): name it with --source (a magnet link, a .torrent file or an infohash)"
    )
}

/// The heads this machine has seen for the topics this repository follows.
fn followed_heads(git_dir: &Path, home: &Home) -> Vec<(String, tracker_free::SignedHead)> {
    let Ok(repo) = git2::Repository::open(git_dir) else {
        return Vec::new();
    };
    let Ok(refs) = repo.references_glob("refs/xus/topics/*") else {
        return Vec::new();
    };
    let mut heads = Vec::new();
    for reference in refs.flatten() {
        let Ok(name) = reference.name() else {
            continue;
        };
        let Some(rest) = name.strip_prefix("refs/xus/topics/") else {
            continue;
        };
        let Some((topic, branch)) = rest.split_once('/') else {
            continue;
        };
        let (Ok(topic), Ok(branch)) = (
            tracker_free::TopicKey::from_hex(topic),
            tracker_free::Branch::new(branch),
        ) else {
            continue;
        };
        if let Ok(Some(seen)) = home.seen_head(&topic, &branch) {
            heads.push((name.to_owned(), seen));
        }
    }
    heads
}

/// What [`repair`] did.
#[derive(Debug)]
pub struct Repaired {
    /// What was set aside before the fetch; `None` when the object
    /// database needed nothing.
    pub set_aside: Option<SetAside>,
    /// The fetch that brought the missing objects back.
    pub fetched: Option<Fetched>,
    /// Work-tree files checked out again.
    pub restored: Vec<String>,
    /// Where the replaced work-tree files were kept.
    pub backups: Vec<PathBuf>,
    /// The check after the repair (clean when the repair worked).
    pub after: Report,
}

/// Repairs the repository against `report` (a [`check`] of `commit`):
/// sets broken objects aside and fetches them from `source` through
/// `swarm`, then restores work-tree files. The object database is whole
/// again before any work-tree file is touched.
///
/// # Errors
///
/// The fetch fails, or objects are still broken after it.
pub async fn repair(
    swarm: &Swarm,
    report: Report,
    source: impl FnOnce() -> anyhow::Result<Source>,
    request: &FetchRequest,
    report_to: &Arc<dyn FetchReport>,
) -> anyhow::Result<Repaired> {
    let commit = report.commit;
    let git_dir = crate::git::repo::open(&request.repo)?.path().to_owned();
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let damaged_dir = StateDir::of(&git_dir).damaged(started);
    let mut set_aside = None;
    let mut fetched = None;
    if report.problems.iter().any(Problem::is_in_object_database) {
        let (dir, aside_dir, checked) = (git_dir.clone(), damaged_dir.clone(), report.clone());
        let done =
            tokio::task::spawn_blocking(move || integrity::set_aside(&dir, &checked, &aside_dir))
                .await??;
        set_aside = Some(done);
        let source = source()?;
        let mut request = request.clone();
        request.repair = true;
        let got = fetch::fetch_expected(swarm, source, commit, &request, report_to)
            .await
            .with_context(|| format!("fetching the broken objects of {commit}"))?;
        fetched = Some(got);
    }
    let mut after = check(&request.repo, commit).await?;
    let still_broken: Vec<&Problem> = after
        .problems
        .iter()
        .filter(|p| p.is_in_object_database())
        .collect();
    anyhow::ensure!(
        still_broken.is_empty(),
        "{} object(s) of {commit} are still broken after the fetch; first: {:?}",
        still_broken.len(),
        still_broken[0]
    );
    let paths: Vec<String> = after
        .problems
        .iter()
        .filter_map(|p| match p {
            Problem::ChangedFile { path, .. } | Problem::MissingFile { path, .. } => {
                Some(path.clone())
            }
            _ => None,
        })
        .collect();
    let mut backups = Vec::new();
    if !paths.is_empty() {
        let (repo_path, files, backup_dir) = (
            request.repo.clone(),
            paths.clone(),
            damaged_dir.join("worktree"),
        );
        backups = tokio::task::spawn_blocking(move || {
            let repo = crate::git::repo::open(&repo_path)?;
            anyhow::Ok(integrity::restore_files(
                &repo,
                commit,
                &files,
                &backup_dir,
            )?)
        })
        .await??;
        after = check(&request.repo, commit).await?;
    }
    anyhow::ensure!(
        after.problems.is_empty(),
        "{} problem(s) left after the repair; first: {:?}",
        after.problems.len(),
        after.problems[0]
    );
    Ok(Repaired {
        set_aside,
        fetched,
        restored: paths,
        backups,
        after,
    })
}
