//! Moves a downloaded commit into Git: verify every blob, then write blobs,
//! trees and the commit, then (only then) move refs.
//!
//! Objects are written children first, so an interruption leaves only
//! unreferenced objects behind, which `git fsck` accepts and `git gc` removes;
//! no ref ever names a commit whose objects are not all present.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use git2::{ObjectType, Repository};
use sha1::Digest;

use crate::format::CommitTorrent;
use crate::gitobj::{self, ObjectId};

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
    /// Git computed another id than the metadata promised.
    #[error("{kind} written to Git got id {actual}, expected {expected}")]
    IdMismatch {
        /// Object type.
        kind: String,
        /// The id from the metadata.
        expected: ObjectId,
        /// The id Git gave it.
        actual: ObjectId,
    },
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
    /// A branch name Git refuses.
    #[error("{0:?} is not a valid branch name")]
    BadBranch(String),
    /// `--checkout` in a bare repository.
    #[error("cannot check out into a bare repository")]
    Bare,
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
}

/// Writes the commit of `torrent` into `repo`. `staged[i]` is the downloaded
/// file for torrent file `i`, or `None` when its blob is already in Git.
pub fn import(
    repo: &Repository,
    torrent: &CommitTorrent,
    staged: &[Option<PathBuf>],
) -> Result<(), ImportError> {
    let odb = repo.odb().map_err(git("opening the object database"))?;
    // Pass 1: verify every downloaded file before writing anything.
    let mut to_write: Vec<(ObjectId, &Path, u64)> = Vec::new();
    let mut queued = HashSet::new();
    for (file, staged) in torrent.files.iter().zip(staged) {
        let Some(blob) = file.blob else { continue };
        if odb.exists(blob.to_git()) || queued.contains(&blob) {
            continue;
        }
        if file.length == 0 {
            // Nothing was downloaded, so no staging file exists.
            write_object(&odb, ObjectType::Blob, b"", blob)?;
            queued.insert(blob);
            continue;
        }
        let path = staged
            .as_deref()
            .ok_or_else(|| ImportError::Missing(file.path.join("/")))?;
        let actual = hash_file_as_blob(path, file.length)?;
        if actual != blob {
            return Err(ImportError::BlobMismatch {
                path: file.path.join("/"),
                expected: blob,
                actual,
            });
        }
        queued.insert(blob);
        to_write.push((blob, path, file.length));
    }
    // Pass 2: blobs, then trees children first, then the commit.
    for (blob, path, length) in to_write {
        write_blob_from_file(&odb, blob, path, length)?;
    }
    for link in &torrent.links {
        write_object(&odb, ObjectType::Blob, &link.target, link.blob)?;
    }
    let trees: HashMap<ObjectId, &[u8]> = torrent
        .trees
        .iter()
        .map(|(id, raw)| (*id, raw.as_slice()))
        .collect();
    for id in children_first(&torrent.trees) {
        if !odb.exists(id.to_git()) {
            write_object(&odb, ObjectType::Tree, trees[&id], id)?;
        }
    }
    write_object(
        &odb,
        ObjectType::Commit,
        &torrent.commit_raw,
        torrent.commit,
    )?;
    record_shallow_boundary(repo, &odb, torrent)?;
    Ok(())
}

/// Refuses ref options that could only fail after a download: a branch name
/// Git rejects, or a checkout into a repository created bare.
pub fn check_ref_options(options: &RefOptions, bare: bool) -> Result<(), ImportError> {
    if let Some(branch) = &options.branch
        && !git2::Reference::is_valid_name(&format!("refs/heads/{branch}"))
    {
        return Err(ImportError::BadBranch(branch.clone()));
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
    let kept = format!("{COMMIT_REF_PREFIX}{commit}");
    repo.reference(&kept, commit.to_git(), true, "xus fetch")
        .map_err(git(format!("setting {kept}")))?;
    let branch_ref = match &options.branch {
        Some(branch) => {
            let name = format!("refs/heads/{branch}");
            if !git2::Reference::is_valid_name(&name) {
                return Err(ImportError::BadBranch(branch.clone()));
            }
            if let Ok(current) = repo.refname_to_id(&name)
                && current != commit.to_git()
                && !options.force
            {
                let ff = repo
                    .graph_descendant_of(commit.to_git(), current)
                    .unwrap_or(false);
                if !ff {
                    return Err(ImportError::NotFastForward {
                        branch: branch.clone(),
                        current: ObjectId::from_git(current).unwrap_or(ObjectId([0; 20])),
                        commit,
                        kept,
                    });
                }
            }
            repo.reference(&name, commit.to_git(), true, "xus fetch")
                .map_err(git(format!("setting {name}")))?;
            Some(name)
        }
        None => None,
    };
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
        match branch_ref {
            Some(name) => repo.set_head(&name),
            None => repo.set_head_detached(commit.to_git()),
        }
        .map_err(git("pointing HEAD at the fetched commit"))?;
    }
    Ok(())
}

fn hash_file_as_blob(path: &Path, length: u64) -> Result<ObjectId, ImportError> {
    let io = |source| ImportError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = gitobj::object_hasher("blob", length);
    let mut reader = file.take(length);
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
            format!("{read_total} of {length} bytes present"),
        )));
    }
    Ok(ObjectId(hasher.finalize().into()))
}

fn write_blob_from_file(
    odb: &git2::Odb<'_>,
    expected: ObjectId,
    path: &Path,
    length: u64,
) -> Result<(), ImportError> {
    let io = |source| ImportError::Io {
        path: path.to_owned(),
        source,
    };
    let len = usize::try_from(length)
        .map_err(|_| io(std::io::Error::other("file too large for this platform")))?;
    let mut writer = odb
        .writer(len, ObjectType::Blob)
        .map_err(git(format!("writing blob {expected}")))?;
    let mut reader = std::fs::File::open(path).map_err(io)?.take(length);
    std::io::copy(&mut reader, &mut writer).map_err(io)?;
    writer.flush().map_err(io)?;
    let actual = writer
        .finalize()
        .map_err(git(format!("writing blob {expected}")))?;
    check_id("blob", expected, actual)
}

fn write_object(
    odb: &git2::Odb<'_>,
    kind: ObjectType,
    data: &[u8],
    expected: ObjectId,
) -> Result<(), ImportError> {
    let actual = odb
        .write(kind, data)
        .map_err(git(format!("writing {} {expected}", kind.str())))?;
    check_id(kind.str(), expected, actual)
}

fn check_id(kind: &str, expected: ObjectId, actual: git2::Oid) -> Result<(), ImportError> {
    let actual = ObjectId::from_git(actual).unwrap_or(ObjectId([0; 20]));
    if actual != expected {
        return Err(ImportError::IdMismatch {
            kind: kind.to_owned(),
            expected,
            actual,
        });
    }
    Ok(())
}

/// Tree ids ordered so that every tree comes after all its subtrees.
fn children_first(trees: &[(ObjectId, Vec<u8>)]) -> Vec<ObjectId> {
    let map: HashMap<ObjectId, &[u8]> = trees
        .iter()
        .map(|(id, raw)| (*id, raw.as_slice()))
        .collect();
    let mut done = HashSet::new();
    let mut order = Vec::with_capacity(trees.len());
    for (root, _) in trees.iter().take(1) {
        // Iterative post-order: (id, expanded?)
        let mut stack = vec![(*root, false)];
        while let Some((id, expanded)) = stack.pop() {
            if done.contains(&id) {
                continue;
            }
            if expanded {
                done.insert(id);
                order.push(id);
                continue;
            }
            stack.push((id, true));
            let entries = map.get(&id).and_then(|raw| gitobj::parse_tree(raw).ok());
            for entry in entries.into_iter().flatten() {
                if entry.kind == gitobj::EntryKind::Tree && !done.contains(&entry.id) {
                    stack.push((entry.id, false));
                }
            }
        }
    }
    order
}

/// Marks the commit as a shallow boundary when any of its parents is absent,
/// as `git clone --depth` does, so that `git fsck` and `git log` accept a
/// repository holding one commit without its history.
fn record_shallow_boundary(
    repo: &Repository,
    odb: &git2::Odb<'_>,
    torrent: &CommitTorrent,
) -> Result<(), ImportError> {
    let missing_parent = torrent
        .commit_raw
        .split(|&b| b == b'\n')
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.strip_prefix(b"parent "))
        .filter_map(|hex| std::str::from_utf8(hex).ok().and_then(ObjectId::from_hex))
        .any(|parent| !odb.exists(parent.to_git()));
    if !missing_parent {
        return Ok(());
    }
    let path = repo.path().join("shallow");
    let shallow_err = |source| ImportError::Shallow {
        path: path.clone(),
        source,
    };
    let existing = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(shallow_err(e)),
    };
    let hex = torrent.commit.to_hex();
    if existing.lines().any(|l| l.trim() == hex) {
        return Ok(());
    }
    let mut text = existing;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&hex);
    text.push('\n');
    let tmp = repo.path().join("shallow.xus-tmp");
    std::fs::write(&tmp, text).map_err(shallow_err)?;
    std::fs::rename(&tmp, &path).map_err(shallow_err)?;
    Ok(())
}
