//! Finds pieces of a changed file inside older versions of it, rsync style, so
//! a fetch downloads only what really changed.
//!
//! For every file that is about to be downloaded, the older blobs at the same
//! path in the commits this repository already has (HEAD, local branches,
//! commits fetched before) are scanned with a rolling window of one piece: the
//! weak checksum from the metadata finds candidates in O(1) per byte, the
//! piece's SHA-1 confirms them, and confirmed bytes are written into the
//! staging file. The engine's start-up check then sees those pieces as held.
//!
//! Only pieces that lie wholly inside one file are looked for; a piece that
//! straddles two files is downloaded unless its bytes are all local blobs.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context;
use sha1::{Digest, Sha1};

use crate::git::object::ObjectId;
use crate::torrent::format::CommitTorrent;
use crate::torrent::import::COMMIT_REF_PREFIX;
use crate::torrent::staged::StagedFile;
use crate::torrent::weak::Rolling;

/// How many local commits are searched for older versions of a path.
pub const MAX_BASE_COMMITS: usize = 64;

/// What scavenging recovered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Pieces found in older versions.
    pub pieces: usize,
    /// Their bytes.
    pub bytes: u64,
}

/// Commits whose trees are searched for older versions: HEAD, local
/// branches, then commits fetched before, most recent refs first.
fn base_trees(repo: &git2::Repository) -> Vec<git2::Tree<'_>> {
    let mut ids = Vec::new();
    if let Ok(head) = repo.head()
        && let Ok(commit) = head.peel_to_commit()
    {
        ids.push(commit.id());
    }
    if let Ok(refs) = repo.references() {
        for reference in refs.flatten() {
            let name = reference.name().unwrap_or_default();
            if (name.starts_with("refs/heads/") || name.starts_with(COMMIT_REF_PREFIX))
                && let Ok(commit) = reference.peel_to_commit()
            {
                ids.push(commit.id());
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(*id));
    ids.into_iter()
        .take(MAX_BASE_COMMITS)
        .filter_map(|id| repo.find_commit(id).ok()?.tree().ok())
        .collect()
}

/// Older blobs at `raw_path` in `trees`, other than `target`.
fn older_versions(
    trees: &[git2::Tree<'_>],
    raw_path: &[Vec<u8>],
    target: ObjectId,
) -> Vec<git2::Oid> {
    let path = raw_path
        .iter()
        .map(|c| {
            use std::os::unix::ffi::OsStrExt;
            std::ffi::OsStr::from_bytes(c)
        })
        .collect::<PathBuf>();
    let mut out = Vec::new();
    for tree in trees {
        if let Ok(entry) = tree.get_path(&path)
            && entry.kind() == Some(git2::ObjectType::Blob)
            && entry.id() != target.to_git()
            && !out.contains(&entry.id())
        {
            out.push(entry.id());
        }
    }
    out
}

/// Writes pieces found in older versions into `payload` (the torrent's
/// staging file, bytes at their torrent offsets). `missing[i]` says whether
/// torrent file `i` is to be downloaded.
pub fn prefill(
    repo: &git2::Repository,
    torrent: &CommitTorrent,
    missing: &[bool],
    payload: &StagedFile,
) -> anyhow::Result<Recovered> {
    // Pieces that lie wholly inside one missing file, grouped by file.
    let mut wanted: HashMap<usize, Vec<usize>> = HashMap::new();
    for piece in 0..torrent.piece_count() {
        if let [(file, _, _)] = torrent.piece_segments(piece)[..]
            && missing.get(file).copied().unwrap_or(false)
        {
            wanted.entry(file).or_default().push(piece);
        }
    }
    if wanted.is_empty() {
        return Ok(Recovered::default());
    }
    let trees = base_trees(repo);
    if trees.is_empty() {
        return Ok(Recovered::default());
    }
    let odb = repo.odb()?;
    let mut recovered = Recovered::default();
    for (file_index, pieces) in wanted {
        let file = &torrent.files[file_index];
        let Some(target) = file.blob else {
            continue;
        };
        let bases = older_versions(&trees, &file.raw_path, target);
        if bases.is_empty() {
            continue;
        }
        let mut todo = pieces;
        for base in bases {
            if todo.is_empty() {
                break;
            }
            let object = odb
                .read(base)
                .with_context(|| format!("reading older blob {base}"))?;
            let found = find_pieces(torrent, &todo, object.data());
            for (piece, at) in &found {
                let (start, len) = torrent.piece_span(*piece);
                let data = &object.data()[*at..*at + len as usize];
                payload.write_at(start, data)?;
                recovered.pieces += 1;
                recovered.bytes += len;
            }
            todo.retain(|p| !found.iter().any(|(f, _)| f == p));
        }
    }
    Ok(recovered)
}

/// For each wanted piece found in `old`, the offset where its bytes start.
fn find_pieces(torrent: &CommitTorrent, pieces: &[usize], old: &[u8]) -> Vec<(usize, usize)> {
    // Group by piece length (all full pieces, plus maybe the short last one).
    let mut by_length: HashMap<u64, HashMap<u32, Vec<usize>>> = HashMap::new();
    for &piece in pieces {
        let (_, len) = torrent.piece_span(piece);
        by_length
            .entry(len)
            .or_default()
            .entry(torrent.weak[piece])
            .or_default()
            .push(piece);
    }
    let mut found: Vec<(usize, usize)> = Vec::new();
    for (len, mut by_weak) in by_length {
        let len = len as usize;
        if len == 0 || old.len() < len {
            continue;
        }
        let mut rolling = Rolling::new(&old[..len]);
        let mut at = 0usize;
        loop {
            if let Some(candidates) = by_weak.get_mut(&rolling.digest()) {
                let window = &old[at..at + len];
                let sha: [u8; 20] = Sha1::digest(window).into();
                // Every wanted piece with these exact bytes is found at once.
                let same: Vec<usize> = candidates
                    .iter()
                    .copied()
                    .filter(|&p| torrent.piece_hashes[p] == sha)
                    .collect();
                if !same.is_empty() {
                    candidates.retain(|&p| torrent.piece_hashes[p] != sha);
                    found.extend(same.into_iter().map(|p| (p, at)));
                    if by_weak.values().all(Vec::is_empty) {
                        break;
                    }
                }
            }
            if at + len >= old.len() {
                break;
            }
            rolling.roll(old[at], old[at + len]);
            at += 1;
        }
    }
    found
}
