//! Moves a downloaded commit into Git: verify every blob, then write blobs,
//! trees and the commit, then (only then) move refs.
//!
//! Objects are written children first, so an interruption leaves only
//! unreferenced objects behind, which `git fsck` accepts and `git gc` removes;
//! no ref ever names a commit whose objects are not all present.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use git2::{ObjectType, Repository};
use sha1::Digest;

use crate::git::object::{self, ObjectId};
use crate::git::pack::{PackError, PackWriter};
use crate::torrent::format::CommitTorrent;

use crate::git::repo;

/// The namespace where every fetched commit is kept reachable.
pub const COMMIT_REF_PREFIX: &str = "refs/xus/commits/";

/// Returned by [`import`].
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A staged file's bytes are not the blob the trees name.
    #[error("downloaded bytes of {path} hash to blob {actual}, the commit names {expected}")]
    BlobMismatch {
        /// The file, as the torrent names it.
        path: String,
        /// Blob id from the trees.
        expected: ObjectId,
        /// Blob id of the bytes.
        actual: ObjectId,
    },
    /// A file neither staged nor in the object database.
    #[error("no bytes for {0}: neither downloaded nor in the object database")]
    Missing(String),
    /// Reading a staged file failed.
    #[error("reading {path}")]
    Io {
        /// The staged file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// libgit2 failed.
    #[error("{what}")]
    Git {
        /// What was being done.
        what: String,
        /// libgit2's error.
        source: git2::Error,
    },
    /// The pack was installed but the commit is not readable from it.
    #[error("commit {0} is not in the object database after writing its pack")]
    NotInstalled(ObjectId),
    /// The branch exists elsewhere and the commit does not descend from it.
    #[error(
        "branch {branch} is at {current}, and {commit} is not a fast-forward from it; \
         the commit is kept at {kept} (use --force to move the branch anyway)"
    )]
    NotFastForward {
        /// The branch.
        branch: String,
        /// Where it is.
        current: ObjectId,
        /// The fetched commit.
        commit: ObjectId,
        /// The ref that keeps it.
        kept: String,
    },
    /// The branch exists elsewhere and whether the commit descends from it
    /// cannot be told: commits between are not in the repository (a
    /// shallow history). Nothing is claimed without proof.
    #[error(
        "branch {branch} is at {current}, and whether {commit} descends from it cannot be told: \
         the commits between are not here; the commit is kept at {kept} (an update carries \
         them: fetch the head without --no-updates, from a listed commit or with its topic \
         master reachable; or use --force to move the branch)"
    )]
    AncestryUnknown {
        /// The branch.
        branch: String,
        /// Where it is.
        current: ObjectId,
        /// The fetched commit.
        commit: ObjectId,
        /// The ref that keeps it.
        kept: String,
    },
    /// A branch name Git refuses.
    #[error("{0:?} is not a valid branch name: {1}")]
    BadBranch(String, String),
    /// `--checkout` in a bare repository.
    #[error("cannot check out into a bare repository")]
    Bare,
    /// Writing the pack failed.
    #[error(transparent)]
    Pack(#[from] PackError),
    /// Writing the shallow file failed.
    #[error("recording the shallow boundary in {path}")]
    Shallow {
        /// The shallow file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

fn git(what: impl Into<String>) -> impl FnOnce(git2::Error) -> ImportError {
    let what = what.into();
    move |source| ImportError::Git { what, source }
}

/// What to do once the objects are in.
#[derive(Debug, Clone, Default)]
pub struct RefOptions {
    /// Branch to point at the commit.
    pub branch: Option<String>,
    /// Move the branch even when it is not a fast-forward.
    pub force: bool,
    /// Fill the work tree and point HEAD at the commit (or branch).
    pub checkout: bool,
    /// A full ref name that simply records the commit (moved even when not
    /// a fast-forward): where a topic's signed head was last seen.
    pub tracking: Option<String>,
}

/// Writes the commit of `torrent` into `repo`. `payload` holds the
/// downloaded bytes at their offsets in the torrent; blobs already in Git
/// are not read from it.
///
/// Every downloaded file is hashed first; only when all match the ids the
/// trees name are the missing objects streamed into one pack, which libgit2
/// indexes and installs atomically.
pub fn import(
    repo: &Repository,
    torrent: &CommitTorrent,
    payload: &Path,
) -> Result<(), ImportError> {
    let odb = repo.odb().map_err(git("opening the object database"))?;
    odb.refresh().map_err(git("reading the object database"))?;
    let mut planned = HashSet::new();
    let mut blobs: Vec<(ObjectId, &crate::torrent::format::TorrentFile)> = Vec::new();
    for file in &torrent.files {
        let Some(blob) = file.blob else { continue };
        if repo::has_object(&odb, blob) || !planned.insert(blob) {
            continue;
        }
        blobs.push((blob, file));
    }
    in_parallel(
        &blobs,
        || Ok(()),
        |_, &(blob, file)| {
            let actual = hash_range_as_blob(payload, file.offset, file.length)?;
            if actual != blob {
                return Err(ImportError::BlobMismatch {
                    path: file.path.join("/"),
                    expected: blob,
                    actual,
                });
            }
            Ok(())
        },
    )?;
    // Symlink targets, trees and the commit were hashed when the metadata
    // was parsed: their ids are the hashes of these very bytes.
    let mut small: Vec<(ObjectId, ObjectType, &[u8])> = Vec::new();
    for link in &torrent.links {
        if !repo::has_object(&odb, link.blob) && planned.insert(link.blob) {
            small.push((link.blob, ObjectType::Blob, &link.target));
        }
    }
    for (id, raw) in &torrent.trees {
        if !repo::has_object(&odb, *id) && planned.insert(*id) {
            small.push((*id, ObjectType::Tree, raw));
        }
    }
    if !repo::has_object(&odb, torrent.commit) {
        small.push((torrent.commit, ObjectType::Commit, &torrent.commit_raw));
    }
    write_packs(repo.path(), payload, &blobs, &small)?;
    odb.refresh().map_err(git("reading the new packs"))?;
    if !repo::has_object(&odb, torrent.commit) {
        return Err(ImportError::NotInstalled(torrent.commit));
    }
    record_shallow_boundary(repo, &odb, torrent)?;
    Ok(())
}

/// Writes the verified objects as one pack per core, blobs spread by size
/// (deflating is the slow part); the small objects go in the first pack.
fn write_packs(
    git_dir: &Path,
    payload: &Path,
    blobs: &[(ObjectId, &crate::torrent::format::TorrentFile)],
    small: &[(ObjectId, ObjectType, &[u8])],
) -> Result<(), ImportError> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut groups: Vec<(u64, Vec<(ObjectId, &crate::torrent::format::TorrentFile)>)> =
        vec![(0, Vec::new()); cores.max(1)];
    let mut by_size: Vec<_> = blobs.to_vec();
    by_size.sort_by_key(|(_, f)| std::cmp::Reverse(f.length));
    for blob in by_size {
        if let Some(lightest) = groups.iter_mut().min_by_key(|(bytes, _)| *bytes) {
            lightest.0 += blob.1.length;
            lightest.1.push(blob);
        }
    }
    let jobs: Vec<(usize, Vec<(ObjectId, &crate::torrent::format::TorrentFile)>)> = groups
        .into_iter()
        .map(|(_, g)| g)
        .enumerate()
        .filter(|(i, g)| !g.is_empty() || (*i == 0 && !small.is_empty()))
        .collect();
    in_parallel(
        &jobs,
        || Ok(()),
        |_, (index, group)| {
            let extra: &[(ObjectId, ObjectType, &[u8])] = if *index == 0 { small } else { &[] };
            let count = u32::try_from(group.len() + extra.len())
                .map_err(|_| ImportError::Missing("more than 2^32 objects".into()))?;
            let mut pack = PackWriter::new(git_dir, count)?;
            for (id, file) in group {
                pack.add(
                    *id,
                    ObjectType::Blob,
                    file.length,
                    payload_range(payload, file.offset, file.length)?,
                )?;
            }
            for (id, kind, data) in extra {
                pack.add_bytes(*id, *kind, data)?;
            }
            pack.finish()?;
            Ok(())
        },
    )
}

/// Checks a local branch name given as an option: Git's rules for branches
/// (`git check-ref-format --branch`: no `HEAD`, `-x`, `@`, ...), and
/// libgit2's for refs. The error quotes at most 80 characters of it.
fn check_branch_option(branch: &str) -> Result<(), ImportError> {
    let shown = || xus_codec::quote::short(branch);
    if let Err(error) = tracker_free::check_git_branch_name(branch) {
        return Err(ImportError::BadBranch(shown(), error.to_string()));
    }
    if !git2::Reference::is_valid_name(&format!("refs/heads/{branch}")) {
        return Err(ImportError::BadBranch(
            shown(),
            "Git refuses it as a ref name".into(),
        ));
    }
    Ok(())
}

/// Refuses ref options that could only fail after a download: a branch name
/// Git rejects, or a checkout into a repository created bare.
pub fn check_ref_options(options: &RefOptions, bare: bool) -> Result<(), ImportError> {
    if let Some(branch) = &options.branch {
        check_branch_option(branch)?;
    }
    if options.checkout && bare {
        return Err(ImportError::Bare);
    }
    Ok(())
}

/// Points `refs/xus/commits/<id>` and, when asked, a branch at an imported
/// commit, then checks it out when asked.
pub fn set_refs(
    repo: &Repository,
    commit: ObjectId,
    options: &RefOptions,
) -> Result<(), ImportError> {
    set_refs_proven(repo, commit, options, None)
}

/// [`set_refs`], where `proof` is a commit that `commit` is known to
/// descend from (an update's commits linked them), though the commits
/// between may be absent here: a branch at `proof`, or at an ancestor of
/// it, moves as a fast-forward. A new repository's `HEAD` (unborn) is
/// pointed at the branch, so `git log` and `git checkout` find it. With
/// `checkout`, the work tree is checked out before the branch, the tracking
/// ref or `HEAD` move, so a failed checkout leaves them where they were.
pub fn set_refs_proven(
    repo: &Repository,
    commit: ObjectId,
    options: &RefOptions,
    proof: Option<ObjectId>,
) -> Result<(), ImportError> {
    // The commit is kept first: its objects are in, and nothing should
    // prune them whatever happens next.
    let kept = format!("{COMMIT_REF_PREFIX}{commit}");
    repo.reference(&kept, commit.to_git(), true, "xus fetch")
        .map_err(git(format!("setting {kept}")))?;
    // The tracking ref records the signed head even when the branch cannot
    // follow it (as `git fetch` moves remote-tracking refs), but never ahead
    // of a checkout that may still fail.
    let set_tracking = || match &options.tracking {
        Some(tracking) => repo
            .reference(tracking, commit.to_git(), true, "xus fetch")
            .map(drop)
            .map_err(git(format!("setting {tracking}"))),
        None => Ok(()),
    };
    if !options.checkout {
        set_tracking()?;
    }
    let branch_ref = match &options.branch {
        Some(branch) => Some(branch_may_move(
            repo, branch, commit, options, proof, &kept,
        )?),
        None => None,
    };
    // Checkout comes before any ref a user sees: a tree that cannot be
    // checked out (local changes in the way, a name the file system
    // refuses) leaves the branch and the tracking ref where they were.
    if options.checkout {
        if repo.is_bare() {
            return Err(ImportError::Bare);
        }
        let object = repo
            .find_object(commit.to_git(), Some(ObjectType::Commit))
            .map_err(git("finding the fetched commit"))?;
        let mut checkout = git2::build::CheckoutBuilder::new();
        checkout.safe().recreate_missing(true);
        repo.checkout_tree(&object, Some(&mut checkout))
            .map_err(git("checking out the fetched commit"))?;
        set_tracking()?;
    }
    if let Some(name) = &branch_ref {
        repo.reference(name, commit.to_git(), true, "xus fetch")
            .map_err(git(format!("setting {name}")))?;
    }
    let head_unborn = repo
        .head()
        .is_err_and(|e| e.code() == git2::ErrorCode::UnbornBranch);
    match (&branch_ref, options.checkout) {
        (Some(name), true) => repo.set_head(name),
        (None, true) => repo.set_head_detached(commit.to_git()),
        (Some(name), false) if head_unborn => repo.set_head(name),
        _ => Ok(()),
    }
    .map_err(git("pointing HEAD at the fetched commit"))?;
    Ok(())
}

/// Decides whether `refs/heads/<branch>` may move to `commit` (a valid name,
/// and a fast-forward unless forced, `proof` counting as an ancestor the
/// commit is known to descend from), without moving it; returns the ref name.
fn branch_may_move(
    repo: &Repository,
    branch: &str,
    commit: ObjectId,
    options: &RefOptions,
    proof: Option<ObjectId>,
    kept: &str,
) -> Result<String, ImportError> {
    check_branch_option(branch)?;
    let name = format!("refs/heads/{branch}");
    let Ok(current) = repo.refname_to_id(&name) else {
        return Ok(name);
    };
    if current == commit.to_git() || options.force {
        return Ok(name);
    }
    // Some(true) proven, Some(false) disproven, None unknown (the walk met a
    // commit that is not here).
    let descends = |ancestor: git2::Oid, of: git2::Oid| {
        if ancestor == of {
            return Some(true);
        }
        match repo.graph_descendant_of(of, ancestor) {
            Ok(true) => Some(true),
            Ok(false) if history_is_whole(repo, of) => Some(false),
            Ok(false) => None,
            Err(e) if e.code() == git2::ErrorCode::NotFound => None,
            Err(_) => Some(false),
        }
    };
    let direct = descends(current, commit.to_git());
    let proven = direct == Some(true)
        || proof.is_some_and(|proof| descends(current, proof.to_git()) == Some(true));
    if proven {
        return Ok(name);
    }
    let current = ObjectId::from_git(current).unwrap_or(ObjectId([0; 20]));
    let (branch, kept) = (branch.to_owned(), kept.to_owned());
    Err(match direct {
        None => ImportError::AncestryUnknown {
            branch,
            current,
            commit,
            kept,
        },
        Some(_) => ImportError::NotFastForward {
            branch,
            current,
            commit,
            kept,
        },
    })
}

/// Runs `job` over `items` on every core, each thread with its own state
/// from `init`; the first error wins and stops the threads taking more work.
fn in_parallel<T: Sync, S>(
    items: &[T],
    init: impl Fn() -> Result<S, ImportError> + Sync,
    job: impl Fn(&mut S, &T) -> Result<(), ImportError> + Sync,
) -> Result<(), ImportError> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error = Mutex::new(None);
    let fail = |e: ImportError| {
        failed.store(true, Ordering::Relaxed);
        first_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(e);
    };
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(items.len());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut state = match init() {
                    Ok(state) => state,
                    Err(e) => return fail(e),
                };
                while !failed.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    if let Err(e) = job(&mut state, item) {
                        fail(e);
                    }
                }
            });
        }
    });
    match first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// A reader of `length` bytes of the payload at `offset`. An empty range
/// needs no file (an empty file is never downloaded, so it may not exist).
fn payload_range(payload: &Path, offset: u64, length: u64) -> Result<Box<dyn Read>, ImportError> {
    if length == 0 {
        return Ok(Box::new(std::io::empty()));
    }
    let io = |source| ImportError::Io {
        path: payload.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(payload).map_err(io)?;
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(offset)).map_err(io)?;
    Ok(Box::new(std::io::BufReader::with_capacity(
        1 << 20,
        file.take(length),
    )))
}

fn hash_range_as_blob(payload: &Path, offset: u64, length: u64) -> Result<ObjectId, ImportError> {
    let io = |source| ImportError::Io {
        path: payload.to_owned(),
        source,
    };
    let mut reader = payload_range(payload, offset, length)?;
    let mut hasher = object::object_hasher("blob", length);
    let mut buf = vec![0u8; 1 << 20];
    let mut read_total = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        read_total += n as u64;
    }
    if read_total != length {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("{read_total} of {length} bytes present at offset {offset}"),
        )));
    }
    Ok(ObjectId(hasher.finalize().into()))
}

/// Most commits [`history_is_whole`] walks before giving up (and answering
/// that it cannot tell).
const MAX_HISTORY_WALK: usize = 100_000;

/// Whether every ancestor of `commit` is in the repository (within
/// [`MAX_HISTORY_WALK`] commits): only then does "not a descendant" mean
/// what it says. Git's walk treats a shallow boundary as a root.
fn history_is_whole(repo: &Repository, commit: git2::Oid) -> bool {
    let Ok(odb) = repo.odb() else {
        return false;
    };
    let mut todo = vec![commit];
    let mut seen = HashSet::new();
    while let Some(id) = todo.pop() {
        if !seen.insert(id) {
            continue;
        }
        if seen.len() > MAX_HISTORY_WALK {
            return false;
        }
        let Ok(object) = odb.read(id) else {
            return false;
        };
        let Ok(parents) = object::commit_parents(object.data()) else {
            return false;
        };
        todo.extend(parents.into_iter().map(ObjectId::to_git));
    }
    true
}

/// The parents of the torrent's commit that `odb` lacks. A topic master
/// refuses such a commit rather than making its repository shallow.
pub fn missing_parents(odb: &git2::Odb<'_>, torrent: &CommitTorrent) -> Vec<ObjectId> {
    object::commit_parents(&torrent.commit_raw)
        .unwrap_or_default()
        .into_iter()
        .filter(|&parent| !repo::has_object(odb, parent))
        .collect()
}

/// Marks the commit as a shallow boundary when any of its parents is absent,
/// as `git clone --depth` does, so that `git fsck` and `git log` accept a
/// repository holding one commit without its history.
fn record_shallow_boundary(
    repo: &Repository,
    odb: &git2::Odb<'_>,
    torrent: &CommitTorrent,
) -> Result<(), ImportError> {
    if missing_parents(odb, torrent).is_empty() {
        return Ok(());
    }
    repo::add_shallow(repo.path(), &[torrent.commit]).map_err(|source| ImportError::Shallow {
        path: repo.path().join("shallow"),
        source,
    })
}
