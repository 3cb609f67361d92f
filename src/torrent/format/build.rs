//! Builds the commit torrent of a commit from a repository's object database.
//! No checkout, no export: objects are read straight from Git.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use git2::ObjectType;
use sha1::{Digest, Sha1};

use super::{
    CommitTorrent, FormatError, MAX_ENTRIES, MAX_INFO_BYTES, MAX_LINK_TARGET, MAX_TOTAL_LENGTH,
    Parts, PieceKey, Symlink, TorrentFile, assemble, commit_file_name, piece_key, piece_length_for,
    segments, torrent_component, walk,
};
use crate::git::object::{self, ObjectId};
use crate::torrent::weak;

/// Returned by [`build`].
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The object database failed or lacks an object.
    #[error("reading {what} {id} from the repository")]
    Git {
        /// What was being read.
        what: &'static str,
        /// Its id.
        id: ObjectId,
        /// libgit2's error.
        source: git2::Error,
    },
    /// An object of the wrong type where the commit's graph needs another.
    #[error("object {id} is a {actual}, expected a {expected}")]
    WrongType {
        /// The object.
        id: ObjectId,
        /// What the graph needs there.
        expected: &'static str,
        /// What it is.
        actual: String,
    },
    /// The commit cannot be expressed in format v1.
    #[error(transparent)]
    Format(#[from] FormatError),
}

/// Builds the v1 commit torrent of `commit`. The result depends on nothing
/// but the commit's objects.
pub fn build(repo: &git2::Repository, commit: ObjectId) -> Result<CommitTorrent, BuildError> {
    build_with_hints(repo, commit, &[])
}

/// Like [`build`], but pieces made of exactly the same blob ranges as a
/// piece of one of `hints` (typically the parent commits' torrents) take
/// that piece's hashes instead of being read and hashed again. The result is
/// byte-identical to [`build`]'s: a hint only saves work.
pub fn build_with_hints(
    repo: &git2::Repository,
    commit: ObjectId,
    hints: &[CommitTorrent],
) -> Result<CommitTorrent, BuildError> {
    let odb = repo.odb().map_err(|source| BuildError::Git {
        what: "object database of",
        id: commit,
        source,
    })?;
    let commit_raw = read(&odb, commit, ObjectType::Commit, "commit")?;
    let root = object::commit_tree(&commit_raw).map_err(FormatError::BadCommit)?;
    let trees = load_trees(&odb, root)?;
    let layout = walk(root, &trees)?;

    let mut links = Vec::with_capacity(layout.links.len());
    for link in &layout.links {
        let (size, _) = header(&odb, link.blob, ObjectType::Blob, "symlink blob")?;
        if size > MAX_LINK_TARGET {
            return Err(FormatError::TooLarge {
                what: "symlink target",
                size: size as u64,
                limit: MAX_LINK_TARGET as u64,
            }
            .into());
        }
        links.push(Symlink {
            raw_path: link.path.clone(),
            blob: link.blob,
            target: read(&odb, link.blob, ObjectType::Blob, "symlink blob")?,
        });
    }

    let mut files = Vec::with_capacity(layout.files.len() + 1);
    let mut paths = HashSet::with_capacity(layout.files.len());
    let mut offset = 0u64;
    for f in &layout.files {
        let (size, _) = header(&odb, f.blob, ObjectType::Blob, "blob")?;
        let path: Vec<String> = f.path.iter().map(|c| torrent_component(c)).collect();
        if !paths.insert(path.clone()) {
            return Err(FormatError::PathCollision(path.join("/")).into());
        }
        files.push(TorrentFile {
            raw_path: f.path.clone(),
            path,
            blob: Some(f.blob),
            executable: f.executable,
            length: size as u64,
            offset,
        });
        offset += size as u64;
        if offset > MAX_TOTAL_LENGTH {
            return Err(FormatError::TooLarge {
                what: "payload",
                size: offset,
                limit: MAX_TOTAL_LENGTH,
            }
            .into());
        }
    }
    if offset == 0 {
        files.push(TorrentFile {
            raw_path: vec![commit_file_name(commit).into_bytes()],
            path: vec![commit_file_name(commit)],
            blob: None,
            executable: false,
            length: commit_raw.len() as u64,
            offset: 0,
        });
        offset = commit_raw.len() as u64;
    }

    let piece_length = piece_length_for(offset);
    let (piece_hashes, weak) = hash_pieces(repo.path(), &files, &commit_raw, piece_length, hints)?;

    let tree_list = layout
        .trees
        .iter()
        .map(|id| (*id, trees.get(id).cloned().unwrap_or_default()))
        .collect();
    let info = assemble(
        &Parts {
            commit_raw,
            trees: tree_list,
            files,
            links,
            piece_length,
            piece_hashes,
            weak,
        },
        commit,
    );
    if info.len() > MAX_INFO_BYTES {
        return Err(FormatError::TooLarge {
            what: "info dictionary",
            size: info.len() as u64,
            limit: MAX_INFO_BYTES as u64,
        }
        .into());
    }
    // Parsing our own output is cheap next to hashing the payload, and it
    // guarantees that whatever xus seeds, xus can fetch.
    Ok(CommitTorrent::parse(&info)?)
}

/// A piece's SHA-1 and weak checksum.
type PieceSums = ([u8; 20], u32);
type Hints = HashMap<PieceKey, PieceSums>;

/// Hashes every piece, on every core: each thread takes a contiguous run of
/// pieces and its own repository handle.
fn hash_pieces(
    git_dir: &Path,
    files: &[TorrentFile],
    commit_raw: &[u8],
    piece_length: u64,
    hint_torrents: &[CommitTorrent],
) -> Result<(Vec<[u8; 20]>, Vec<u32>), BuildError> {
    let mut hints = Hints::new();
    for torrent in hint_torrents {
        for (i, key) in torrent.piece_keys().into_iter().enumerate() {
            if let Some(key) = key {
                hints.insert(key, (torrent.piece_hashes[i], torrent.weak[i]));
            }
        }
    }
    let total: u64 = files.iter().map(|f| f.length).sum();
    let count = total.div_ceil(piece_length) as usize;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 16)
        .min(count.max(1));
    let per_thread = count.div_ceil(threads);
    let results: Vec<Result<Vec<PieceSums>, BuildError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let range = (t * per_thread).min(count)..((t + 1) * per_thread).min(count);
                let hints = &hints;
                scope.spawn(move || {
                    hash_range(
                        git_dir,
                        files,
                        commit_raw,
                        piece_length,
                        total,
                        range,
                        hints,
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut hashes = Vec::with_capacity(count);
    let mut weak = Vec::with_capacity(count);
    for result in results {
        for (h, w) in result? {
            hashes.push(h);
            weak.push(w);
        }
    }
    Ok((hashes, weak))
}

fn hash_range(
    git_dir: &Path,
    files: &[TorrentFile],
    commit_raw: &[u8],
    piece_length: u64,
    total: u64,
    pieces: std::ops::Range<usize>,
    hints: &Hints,
) -> Result<Vec<PieceSums>, BuildError> {
    let mut out = Vec::with_capacity(pieces.len());
    if pieces.is_empty() {
        return Ok(out);
    }
    let repo = git2::Repository::open(git_dir).map_err(|source| BuildError::Git {
        what: "repository for hashing, opening",
        id: ObjectId([0; 20]),
        source,
    })?;
    let odb = repo.odb().map_err(|source| BuildError::Git {
        what: "object database for hashing, opening",
        id: ObjectId([0; 20]),
        source,
    })?;
    let mut current: Option<(ObjectId, git2::OdbObject<'_>)> = None;
    for piece in pieces {
        let start = piece as u64 * piece_length;
        let len = piece_length.min(total - start);
        let segs = segments(files, start, len);
        if let Some(hit) = piece_key(files, &segs).and_then(|key| hints.get(&key)) {
            out.push(*hit);
            continue;
        }
        let mut sha = Sha1::new();
        let mut weak = weak::Streaming::default();
        for (file, offset, len) in segs {
            let bytes: &[u8] = match files[file].blob {
                None => commit_raw,
                Some(blob) => {
                    if current.as_ref().map(|(id, _)| *id) != Some(blob) {
                        let object = odb.read(blob.to_git()).map_err(|source| BuildError::Git {
                            what: "blob",
                            id: blob,
                            source,
                        })?;
                        check_kind(blob, object.kind(), ObjectType::Blob)?;
                        current = Some((blob, object));
                    }
                    current.as_ref().map(|(_, o)| o.data()).unwrap_or_default()
                }
            };
            let slice = usize::try_from(offset)
                .ok()
                .and_then(|o| bytes.get(o..o + len as usize))
                .ok_or_else(|| {
                    BuildError::Format(FormatError::Mismatch(format!(
                        "blob of {} is shorter than its header says",
                        files[file].path.join("/")
                    )))
                })?;
            sha.update(slice);
            weak.update(slice);
        }
        out.push((sha.finalize().into(), weak.digest()));
    }
    Ok(out)
}

fn load_trees(
    odb: &git2::Odb<'_>,
    root: ObjectId,
) -> Result<HashMap<ObjectId, Vec<u8>>, BuildError> {
    let mut trees = HashMap::new();
    let mut todo = vec![root];
    let mut entries = 0usize;
    while let Some(id) = todo.pop() {
        if trees.contains_key(&id) {
            continue;
        }
        let raw = read(odb, id, ObjectType::Tree, "tree")?;
        for entry in
            object::parse_tree(&raw).map_err(|source| FormatError::BadTree { id, source })?
        {
            entries += 1;
            if entries > MAX_ENTRIES {
                return Err(FormatError::TooManyEntries(MAX_ENTRIES).into());
            }
            if entry.kind == object::EntryKind::Tree {
                todo.push(entry.id);
            }
        }
        trees.insert(id, raw);
    }
    Ok(trees)
}

fn read(
    odb: &git2::Odb<'_>,
    id: ObjectId,
    kind: ObjectType,
    what: &'static str,
) -> Result<Vec<u8>, BuildError> {
    let object = odb
        .read(id.to_git())
        .map_err(|source| BuildError::Git { what, id, source })?;
    check_kind(id, object.kind(), kind)?;
    Ok(object.data().to_vec())
}

fn header(
    odb: &git2::Odb<'_>,
    id: ObjectId,
    kind: ObjectType,
    what: &'static str,
) -> Result<(usize, ObjectType), BuildError> {
    let (size, actual) = odb
        .read_header(id.to_git())
        .map_err(|source| BuildError::Git { what, id, source })?;
    check_kind(id, actual, kind)?;
    Ok((size, actual))
}

fn check_kind(id: ObjectId, actual: ObjectType, expected: ObjectType) -> Result<(), BuildError> {
    if actual != expected {
        return Err(BuildError::WrongType {
            id,
            expected: expected.str(),
            actual: actual.str().to_owned(),
        });
    }
    Ok(())
}
