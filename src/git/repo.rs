//! Opening repositories and naming commits, the way a user types them.

use std::path::Path;

use anyhow::Context;
use git2::{BranchType, Repository};

use crate::git::object::ObjectId;

/// Opens the repository at or above `path`.
pub fn open(path: &Path) -> anyhow::Result<Repository> {
    Repository::discover(path)
        .with_context(|| format!("no Git repository at or above {}", path.display()))
}

/// Opens the repository at `path`, creating it (bare or not) when the
/// directory is missing or empty.
pub fn open_or_init(path: &Path, bare: bool) -> anyhow::Result<Repository> {
    let empty = match std::fs::read_dir(path) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    if empty {
        let repo = if bare {
            Repository::init_bare(path)
        } else {
            Repository::init(path)
        };
        return repo.with_context(|| format!("creating a Git repository at {}", path.display()));
    }
    Repository::open(path).with_context(|| {
        format!(
            "{} is neither empty nor a Git repository (bare or not)",
            path.display()
        )
    })
}

/// The commit a revision (`HEAD`, a branch, a tag, an id) names.
pub fn resolve_commit(repo: &Repository, rev: &str) -> anyhow::Result<ObjectId> {
    let commit = repo
        .revparse_single(rev)
        .and_then(|object| object.peel_to_commit())
        .with_context(|| {
            format!(
                "{rev:?} does not name a commit in {}",
                repo.path().display()
            )
        })?;
    ObjectId::from_git(commit.id()).context("repository does not use SHA-1 object ids")
}

/// The tip of every local branch, in name order, without repeats.
pub fn all_branches(repo: &Repository) -> anyhow::Result<Vec<(String, ObjectId)>> {
    let mut tips = Vec::new();
    for branch in repo.branches(Some(BranchType::Local))? {
        let (branch, _) = branch?;
        let name = branch.name()?.unwrap_or_default().to_owned();
        if let Ok(commit) = branch.get().peel_to_commit()
            && let Some(id) = ObjectId::from_git(commit.id())
        {
            tips.push((name, id));
        }
    }
    tips.sort();
    Ok(tips)
}

/// Whether the object database holds `id`, without rescanning the pack
/// directory on a miss (libgit2's default, which costs a directory scan per
/// missing object: thousands of them when planning a fetch). Callers that
/// need to see packs written by another process call `odb.refresh()` once.
pub fn has_object(odb: &git2::Odb<'_>, id: ObjectId) -> bool {
    odb.exists_ext(id.to_git(), git2::OdbLookupFlags::NO_REFRESH)
}

/// Drops from `<git_dir>/shallow` every commit whose parents are all in
/// the repository now (a deepened history reached past it), and removes the
/// file when none is left, as Git does after `fetch --unshallow`.
///
/// # Errors
///
/// The repository or the shallow file cannot be read or written.
pub fn prune_shallow(git_dir: &Path) -> std::io::Result<()> {
    let path = git_dir.join("shallow");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let repo = git2::Repository::open(git_dir).map_err(std::io::Error::other)?;
    let odb = repo.odb().map_err(std::io::Error::other)?;
    let still_shallow = |hex: &str| {
        let Some(id) = ObjectId::from_hex(hex) else {
            return true;
        };
        match odb.read(id.to_git()) {
            Ok(object) => match super::object::commit_parents(object.data()) {
                Ok(parents) => !parents.iter().all(|p| odb.exists(p.to_git())),
                Err(_) => true,
            },
            Err(_) => true,
        }
    };
    let kept: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && still_shallow(l))
        .collect();
    if kept.len() == text.lines().filter(|l| !l.trim().is_empty()).count() {
        return Ok(());
    }
    if kept.is_empty() {
        return std::fs::remove_file(&path);
    }
    let tmp = git_dir.join("shallow.xus-tmp");
    std::fs::write(&tmp, kept.join("\n") + "\n")?;
    std::fs::rename(&tmp, &path)
}

/// Adds `commits` to the repository's `shallow` file (those not listed
/// yet), as `git clone --depth` records its boundary, so that `git fsck` and
/// `git log` accept commits whose parents are absent. The file is replaced
/// atomically.
pub fn add_shallow(git_dir: &Path, commits: &[ObjectId]) -> std::io::Result<()> {
    if commits.is_empty() {
        return Ok(());
    }
    let path = git_dir.join("shallow");
    let existing = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let mut text = existing.clone();
    for commit in commits {
        let hex = commit.to_hex();
        if text.lines().any(|l| l.trim() == hex) {
            continue;
        }
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&hex);
        text.push('\n');
    }
    if text == existing {
        return Ok(());
    }
    let tmp = git_dir.join("shallow.xus-tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &path)
}
