//! Restoring a master's repository from the first readable backup remote.

use std::path::Path;

use anyhow::Context;
use git2::{Direction, Repository};

use super::remote::{is_path, list, redact, set_network_timeouts};
use crate::git::object::ObjectId;

/// Fetch refspecs restoring [`BACKED_UP`].
const RESTORE_REFSPECS: [&str; 2] = [
    "+refs/heads/*:refs/heads/*",
    "+refs/xus/rejected/*:refs/xus/rejected/*",
];

/// What [`restore`] brought back.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The remote it came from.
    pub remote: String,
    /// Every restored ref and its commit.
    pub refs: Vec<(String, ObjectId)>,
}

/// Restores a master's repository: from the first remote, in order, that
/// can be read and holds at least one backed-up ref, every such ref is
/// fetched into `git_dir` (a fresh bare repository). `Ok(None)` when every
/// readable remote is empty (a new topic); an error naming each remote when
/// none can be read, since starting empty would hide the real history.
pub fn restore(git_dir: &Path, remotes: &[String]) -> anyhow::Result<Option<Restored>> {
    set_network_timeouts();
    let repo =
        Repository::open_bare(git_dir).with_context(|| format!("opening {}", git_dir.display()))?;
    let mut errors = Vec::new();
    let mut readable = false;
    for target in remotes {
        let shown = redact(target);
        let url = &shown;
        if is_path(target) && !Path::new(target).exists() {
            errors.push(format!("{url}: no repository there"));
            continue;
        }
        let attempt = (|| -> anyhow::Result<Option<Restored>> {
            let mut remote = repo.remote_anonymous(target)?;
            let listed = list(&mut remote, Direction::Fetch, url)?;
            readable = true;
            if listed.is_empty() {
                return Ok(None);
            }
            remote
                .fetch(&RESTORE_REFSPECS, None, None)
                .with_context(|| format!("fetching from {url}"))?;
            let mut refs = Vec::with_capacity(listed.len());
            for (name, oid) in &listed {
                let here = repo
                    .refname_to_id(name)
                    .with_context(|| format!("{name} was not restored from {url}"))?;
                anyhow::ensure!(
                    here == *oid,
                    "{name} is at {here} after fetching {oid} from {url}"
                );
                let id =
                    ObjectId::from_git(here).context("SHA-256 repositories are not supported")?;
                refs.push((name.clone(), id));
            }
            refs.sort();
            Ok(Some(Restored {
                remote: url.to_string(),
                refs,
            }))
        })();
        match attempt {
            Ok(Some(restored)) => {
                point_head_at_a_branch(&repo, &restored);
                return Ok(Some(restored));
            }
            Ok(None) => tracing::info!(%url, "backup remote is empty"),
            Err(error) => errors.push(format!("{url}: {error:#}")),
        }
    }
    if readable {
        return Ok(None);
    }
    anyhow::bail!("no backup remote could be read: {}", errors.join("; "))
}

/// A restored bare repository's HEAD names one of its branches (`main`
/// when there is one), so that clones of it check something out.
fn point_head_at_a_branch(repo: &Repository, restored: &Restored) {
    let branch = restored
        .refs
        .iter()
        .map(|(name, _)| name)
        .filter(|name| name.starts_with("refs/heads/"))
        .min_by_key(|name| (name.as_str() != "refs/heads/main", name.len()));
    if let Some(branch) = branch
        && let Err(error) = repo.set_head(branch)
    {
        tracing::warn!(%branch, %error, "cannot point HEAD at the restored branch");
    }
}
