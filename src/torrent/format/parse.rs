//! Reading the format: strict parsing of info dictionaries from anywhere,
//! and of the `.torrent` files around them.

use std::collections::{HashMap, HashSet};

use super::*;
use crate::git::object::{self, EntryKind, ObjectId};
use crate::torrent::bencode::{self, Spanned};

impl CommitTorrent {
    /// Parses and validates info dictionary bytes from anywhere (a `.torrent`,
    /// a peer, a cache). Checks that the trees and the files agree, that the
    /// commit id is the torrent's name, and every bound; reads nothing else.
    pub fn parse(info_bytes: &[u8]) -> Result<Self, FormatError> {
        if info_bytes.len() > MAX_INFO_BYTES {
            return Err(FormatError::TooLarge {
                what: "info dictionary",
                size: info_bytes.len() as u64,
                limit: MAX_INFO_BYTES as u64,
            });
        }
        let info = bencode::decode(info_bytes, bencode::Limits::default())?;
        let xus = info.get(b"xus").ok_or(FormatError::Field("xus"))?;
        let version = int(xus, b"v", "xus.v")?;
        if version != VERSION {
            return Err(FormatError::Version(version));
        }
        let commit_raw = bytes(xus, b"commit", "xus.commit")?.to_vec();
        let commit = ObjectId::for_object("commit", &commit_raw);
        let name = bytes(&info, b"name", "name")?;
        if name != commit.to_hex().as_bytes() {
            return Err(FormatError::NameMismatch {
                name: String::from_utf8_lossy(name).into(),
                actual: commit,
            });
        }
        let root = object::commit_tree(&commit_raw).map_err(FormatError::BadCommit)?;

        let mut tree_list = Vec::new();
        let mut tree_map = HashMap::new();
        for raw in list(xus, b"trees", "xus.trees")? {
            let raw = raw.as_bytes().ok_or(FormatError::Field("xus.trees"))?;
            let id = ObjectId::for_object("tree", raw);
            if tree_map.insert(id, raw.to_vec()).is_some() {
                return Err(FormatError::Mismatch(format!("tree {id} carried twice")));
            }
            tree_list.push(id);
        }
        // A subtree carried once can be named many times, so a few kilobytes
        // of trees can describe millions of deep paths: count before walking.
        let cost = walk_cost(root, &tree_map)?;
        let budget = info_bytes.len() as u64 + MAX_WALK_SLACK;
        if cost > budget {
            return Err(FormatError::TooLarge {
                what: "tree walk (path components)",
                size: cost,
                limit: budget,
            });
        }
        let layout = walk(root, &tree_map)?;
        if layout.trees != tree_list {
            return Err(FormatError::Mismatch(
                "carried trees are not exactly the trees of the commit in walk order".into(),
            ));
        }
        let trees = tree_list
            .into_iter()
            .map(|id| {
                let raw = tree_map.remove(&id).unwrap_or_default();
                (id, raw)
            })
            .collect();

        let link_targets = list(xus, b"links", "xus.links")?;
        if link_targets.len() != layout.links.len() {
            return Err(FormatError::Mismatch(format!(
                "{} symlink targets carried for {} symlinks",
                link_targets.len(),
                layout.links.len()
            )));
        }
        let mut links = Vec::with_capacity(layout.links.len());
        for (link, target) in layout.links.iter().zip(link_targets) {
            let target = target.as_bytes().ok_or(FormatError::Field("xus.links"))?;
            if target.len() > MAX_LINK_TARGET {
                return Err(FormatError::TooLarge {
                    what: "symlink target",
                    size: target.len() as u64,
                    limit: MAX_LINK_TARGET as u64,
                });
            }
            if ObjectId::for_object("blob", target) != link.blob {
                return Err(FormatError::Mismatch(format!(
                    "symlink target does not hash to blob {}",
                    link.blob
                )));
            }
            links.push(Symlink {
                raw_path: link.path.clone(),
                blob: link.blob,
                target: target.to_vec(),
            });
        }

        let files = parse_files(&info, &layout, commit)?;
        let total: u64 = files.iter().map(|f| f.length).sum();
        let piece_length = int(&info, b"piece length", "piece length")?;
        if u64::try_from(piece_length).ok() != Some(piece_length_for(total)) {
            return Err(FormatError::Mismatch(format!(
                "piece length {piece_length} is not the v1 rule's {} for {total} bytes",
                piece_length_for(total)
            )));
        }
        let piece_length = piece_length_for(total);
        let piece_count = total.div_ceil(piece_length) as usize;
        let pieces = bytes(&info, b"pieces", "pieces")?;
        if pieces.len() != piece_count * 20 {
            return Err(FormatError::Field("pieces"));
        }
        let piece_hashes = pieces
            .chunks_exact(20)
            .map(|c| c.try_into().unwrap_or([0; 20]))
            .collect();
        let weak_bytes = bytes(xus, b"weak", "xus.weak")?;
        if weak_bytes.len() != piece_count * 4 {
            return Err(FormatError::Field("xus.weak"));
        }
        let weak = weak_bytes
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();

        let torrent = CommitTorrent {
            info_bytes: info_bytes.to_vec(),
            info_hash: InfoHash::of_info(info_bytes),
            commit,
            commit_raw,
            trees,
            files,
            links,
            piece_length,
            piece_hashes,
            weak,
        };
        // The only way to be sure nothing is encoded differently from how this
        // xus would encode it: re-encode and compare.
        if torrent.reassemble() != info_bytes {
            return Err(FormatError::Mismatch(
                "info dictionary is not in canonical v1 form".into(),
            ));
        }
        Ok(torrent)
    }
}

/// Limits for reading a whole `.torrent` file (info dictionary plus a few keys).
pub const MAX_TORRENT_FILE_BYTES: usize = MAX_INFO_BYTES + 1024 * 1024;

/// The raw `info` dictionary of a `.torrent` file, exactly as written.
pub fn info_from_torrent_file(torrent: &[u8]) -> Result<&[u8], FormatError> {
    if torrent.len() > MAX_TORRENT_FILE_BYTES {
        return Err(FormatError::TooLarge {
            what: ".torrent file",
            size: torrent.len() as u64,
            limit: MAX_TORRENT_FILE_BYTES as u64,
        });
    }
    let top = bencode::decode(torrent, bencode::Limits::default())?;
    let info = top.get(b"info").ok_or(FormatError::Field("info"))?;
    if info.as_dict().is_none() {
        return Err(FormatError::Field("info"));
    }
    Ok(info.raw)
}

/// The `url-list` (BEP 19 webseeds) of a `.torrent` file, if any; at most
/// [`crate::torrent::magnet::MAX_WEBSEEDS`] of them.
pub fn webseeds_from_torrent_file(torrent: &[u8]) -> Result<Vec<String>, FormatError> {
    let top = bencode::decode(torrent, bencode::Limits::default())?;
    let Some(list) = top.get(b"url-list") else {
        return Ok(Vec::new());
    };
    let items: Vec<&Spanned<'_>> = match list.as_list() {
        Some(items) => items.iter().collect(),
        None => vec![list],
    };
    if items.len() > crate::torrent::magnet::MAX_WEBSEEDS {
        return Err(FormatError::TooManyWebseeds(items.len()));
    }
    items
        .into_iter()
        .map(|i| {
            i.as_bytes()
                .and_then(|b| std::str::from_utf8(b).ok())
                .map(str::to_owned)
                .ok_or(FormatError::Field("url-list"))
        })
        .collect()
}

fn parse_files(
    info: &Spanned<'_>,
    layout: &Layout,
    commit: ObjectId,
) -> Result<Vec<TorrentFile>, FormatError> {
    let entries = list(info, b"files", "files")?;
    let tree_bytes_expected = layout.files.len();
    let mut files = Vec::with_capacity(entries.len());
    let mut offset = 0u64;
    let mut seen_paths = HashSet::new();
    for (i, entry) in entries.iter().enumerate() {
        let length = u64::try_from(int(entry, b"length", "files.length")?)
            .map_err(|_| FormatError::Field("files.length"))?;
        let path: Vec<String> = list(entry, b"path", "files.path")?
            .iter()
            .map(|c| {
                c.as_bytes()
                    .and_then(|b| std::str::from_utf8(b).ok())
                    .map(str::to_owned)
                    .ok_or(FormatError::Field("files.path"))
            })
            .collect::<Result<_, _>>()?;
        let executable = match entry.get(b"attr").map(|a| a.as_bytes()) {
            None => false,
            Some(Some(b"x")) => true,
            Some(_) => return Err(FormatError::Field("files.attr")),
        };
        let (raw_path, blob, expected_exec) = match layout.files.get(i) {
            Some(f) => (f.path.clone(), Some(f.blob), f.executable),
            None if i == tree_bytes_expected => {
                (vec![commit_file_name(commit).into_bytes()], None, false)
            }
            None => {
                return Err(FormatError::Mismatch(format!(
                    "{} files listed for {} blobs",
                    entries.len(),
                    layout.files.len()
                )));
            }
        };
        let expected_path: Vec<String> = raw_path.iter().map(|c| torrent_component(c)).collect();
        if path != expected_path || executable != expected_exec {
            return Err(FormatError::Mismatch(format!(
                "file {i} is listed as {path:?}, the trees say {expected_path:?}"
            )));
        }
        if !seen_paths.insert(path.clone()) {
            return Err(FormatError::PathCollision(path.join("/")));
        }
        files.push(TorrentFile {
            raw_path,
            path,
            blob,
            executable,
            length,
            offset,
        });
        offset = offset.saturating_add(length);
        if offset > MAX_TOTAL_LENGTH {
            return Err(FormatError::TooLarge {
                what: "payload",
                size: offset,
                limit: MAX_TOTAL_LENGTH,
            });
        }
    }
    if files.len() < layout.files.len() {
        return Err(FormatError::Mismatch(format!(
            "{} files listed for {} blobs",
            files.len(),
            layout.files.len()
        )));
    }
    let has_commit_file = files.len() > layout.files.len();
    let tree_total: u64 = files[..layout.files.len()].iter().map(|f| f.length).sum();
    if has_commit_file != (tree_total == 0) {
        return Err(FormatError::Mismatch(
            "the commit file is present exactly when the tree's files hold no bytes".into(),
        ));
    }
    if let Some(f) = files.last().filter(|_| has_commit_file)
        && f.length == 0
    {
        return Err(FormatError::Field("files.length"));
    }
    Ok(files)
}

/// The path components [`walk`] would build from `root` (every entry's path,
/// summed), counted once per distinct tree and saturating. Honest metadata
/// stays under one component per byte: every file's path is also spelled out
/// in `files`. Missing or malformed trees count as empty; the walk reports them.
fn walk_cost(root: ObjectId, trees: &HashMap<ObjectId, Vec<u8>>) -> Result<u64, FormatError> {
    /// `(entries, path components)` under tree `id`, relative to it.
    fn visit(
        id: ObjectId,
        depth: usize,
        trees: &HashMap<ObjectId, Vec<u8>>,
        memo: &mut HashMap<ObjectId, (u64, u64)>,
    ) -> Result<(u64, u64), FormatError> {
        if let Some(&counts) = memo.get(&id) {
            return Ok(counts);
        }
        let entries = trees
            .get(&id)
            .and_then(|raw| object::parse_tree(raw).ok())
            .unwrap_or_default();
        let (mut count, mut components) = (0u64, 0u64);
        for entry in entries {
            count = count.saturating_add(1);
            components = components.saturating_add(1);
            if entry.kind == EntryKind::Tree {
                if depth + 1 > MAX_DEPTH {
                    return Err(FormatError::TooDeep(MAX_DEPTH));
                }
                let (sub_count, sub_components) = visit(entry.id, depth + 1, trees, memo)?;
                count = count.saturating_add(sub_count);
                components = components
                    .saturating_add(sub_components)
                    .saturating_add(sub_count);
            }
        }
        memo.insert(id, (count, components));
        Ok((count, components))
    }
    Ok(visit(root, 0, trees, &mut HashMap::new())?.1)
}

fn int(d: &Spanned<'_>, key: &[u8], what: &'static str) -> Result<i64, FormatError> {
    d.get(key)
        .and_then(Spanned::as_int)
        .ok_or(FormatError::Field(what))
}

fn bytes<'a>(d: &Spanned<'a>, key: &[u8], what: &'static str) -> Result<&'a [u8], FormatError> {
    d.get(key)
        .and_then(Spanned::as_bytes)
        .ok_or(FormatError::Field(what))
}

fn list<'s, 'a>(
    d: &'s Spanned<'a>,
    key: &[u8],
    what: &'static str,
) -> Result<&'s [Spanned<'a>], FormatError> {
    d.get(key)
        .and_then(Spanned::as_list)
        .ok_or(FormatError::Field(what))
}
