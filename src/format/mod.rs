//! The commit torrent format, version 1 (specified in `docs/FORMAT.md`).
//!
//! A commit becomes a multi-file torrent whose files are the commit's blobs in
//! tree order and whose info dictionary also carries, under the `xus` key, the
//! raw commit and tree objects needed to rebuild the exact commit. The bytes
//! are a pure function of the commit, so the infohash is the same on every
//! machine. This module assembles and parses those bytes; `build` reads a
//! repository to feed it.

mod build;
mod layout;

pub use build::{BuildError, build, build_with_hints};
pub use layout::{Layout, LayoutFile, LayoutLink, walk};

use std::collections::{HashMap, HashSet};

use crate::bencode::{self, Owned, Spanned};
use crate::gitobj::{self, EntryKind, ObjectId};

/// The format version written under `xus.v`.
pub const VERSION: i64 = 1;
/// Smallest piece length.
pub const MIN_PIECE_LENGTH: u64 = 16 * 1024;
/// Largest piece length.
pub const MAX_PIECE_LENGTH: u64 = 16 * 1024 * 1024;
/// Largest payload (sum of file lengths) a v1 torrent may carry: 1 TiB.
pub const MAX_TOTAL_LENGTH: u64 = 1 << 40;
/// Most tree entries (files, links, subtrees, gitlinks) in one commit.
pub const MAX_ENTRIES: usize = 1_000_000;
/// Deepest directory nesting.
pub const MAX_DEPTH: usize = 256;
/// Largest info dictionary, the limit librqbit puts on metadata exchange (BEP 9).
pub const MAX_INFO_BYTES: usize = 32 * 1024 * 1024;
/// Largest symlink target carried inline.
pub const MAX_LINK_TARGET: usize = 4096;
/// Path components the walk may build beyond one per byte of the info
/// dictionary (see [`walk_cost`]).
pub const MAX_WALK_SLACK: u64 = 1 << 20;

/// Why bytes are not a valid commit torrent, or a commit cannot become one.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Not bencode, or not within bounds.
    #[error("info dictionary is not valid bencode")]
    Bencode(#[from] bencode::DecodeError),
    /// A key is missing or has the wrong type.
    #[error("info dictionary field `{0}` is missing or malformed")]
    Field(&'static str),
    /// Written by a newer xus.
    #[error(
        "commit torrent format version {0} is not supported (this xus reads version {VERSION})"
    )]
    Version(i64),
    /// `name` is not the hex id of the commit carried.
    #[error("torrent name {name:?} is not the id of the commit it carries ({actual})")]
    NameMismatch {
        /// The `name` field.
        name: String,
        /// The id computed from `xus.commit`.
        actual: ObjectId,
    },
    /// A raw object does not parse.
    #[error("commit object is malformed")]
    BadCommit(#[source] gitobj::ObjectError),
    /// A raw tree does not parse or holds an unsafe name.
    #[error("tree {id} is malformed")]
    BadTree {
        /// The tree's id.
        id: ObjectId,
        /// What is wrong.
        source: gitobj::ObjectError,
    },
    /// The walk needs a tree the metadata does not carry.
    #[error("tree {0} is referenced but not carried")]
    MissingTree(ObjectId),
    /// Something carried that the walk never reached, or a count that disagrees.
    #[error("metadata disagrees with the commit's trees: {0}")]
    Mismatch(String),
    /// Too many entries.
    #[error("commit has more than {0} tree entries, the v1 limit")]
    TooManyEntries(usize),
    /// Nested too deep.
    #[error("commit nests directories deeper than {0}, the v1 limit")]
    TooDeep(usize),
    /// Over a size bound.
    #[error("{what} is {size} bytes, over the v1 limit of {limit}")]
    TooLarge {
        /// What is too large.
        what: &'static str,
        /// Its size.
        size: u64,
        /// The bound.
        limit: u64,
    },
    /// Two names that map to the same torrent path.
    #[error("two entries map to the same torrent path {0:?}")]
    PathCollision(String),
}

/// A file of the torrent, with where its bytes come from in Git.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorrentFile {
    /// Raw Git path components.
    pub raw_path: Vec<Vec<u8>>,
    /// The path stock clients see (UTF-8, see [`torrent_component`]).
    pub path: Vec<String>,
    /// The blob whose bytes are the file; `None` for the commit file of an
    /// empty payload, whose bytes are the raw commit object.
    pub blob: Option<ObjectId>,
    /// Execute bit.
    pub executable: bool,
    /// Length in bytes.
    pub length: u64,
    /// Offset of the file's first byte in the torrent's byte stream.
    pub offset: u64,
}

/// A symlink rebuilt from metadata alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symlink {
    /// Raw Git path components.
    pub raw_path: Vec<Vec<u8>>,
    /// The blob id of the target.
    pub blob: ObjectId,
    /// The target bytes.
    pub target: Vec<u8>,
}

/// A parsed, validated commit torrent.
#[derive(Debug, Clone)]
pub struct CommitTorrent {
    /// The exact info dictionary bytes; the infohash is their SHA-1.
    pub info_bytes: Vec<u8>,
    /// SHA-1 of `info_bytes`.
    pub info_hash: ObjectId,
    /// The commit this torrent rebuilds.
    pub commit: ObjectId,
    /// The raw commit object.
    pub commit_raw: Vec<u8>,
    /// Every tree of the commit, raw, in order of first visit.
    pub trees: Vec<(ObjectId, Vec<u8>)>,
    /// Torrent files in order.
    pub files: Vec<TorrentFile>,
    /// Symlinks with their targets.
    pub links: Vec<Symlink>,
    /// Piece length.
    pub piece_length: u64,
    /// SHA-1 of every piece.
    pub piece_hashes: Vec<[u8; 20]>,
    /// Rolling weak checksum of every piece (see `weak`).
    pub weak: Vec<u32>,
}

/// The piece length for a payload of `total` bytes: the smallest power of two
/// that keeps the piece count at or under 1024, within 16 KiB..=16 MiB.
pub fn piece_length_for(total: u64) -> u64 {
    let wanted = total.div_ceil(1024).max(1).next_power_of_two();
    wanted.clamp(MIN_PIECE_LENGTH, MAX_PIECE_LENGTH)
}

/// The UTF-8 path component stock clients see for a raw Git name: the name
/// itself when it is UTF-8, otherwise its valid runs kept and every invalid
/// byte written as `%XX` (uppercase hex).
pub fn torrent_component(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    for chunk in raw.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The name of the only file of a commit whose files hold no bytes at all: a
/// tree cannot contain its own commit's id, so the name never collides.
pub fn commit_file_name(commit: ObjectId) -> String {
    format!("{commit}.commit")
}

/// What the builder hands to [`assemble`]: the parts of the info dictionary.
pub(crate) struct Parts {
    pub commit_raw: Vec<u8>,
    pub trees: Vec<(ObjectId, Vec<u8>)>,
    pub files: Vec<TorrentFile>,
    pub links: Vec<Symlink>,
    pub piece_length: u64,
    pub piece_hashes: Vec<[u8; 20]>,
    pub weak: Vec<u32>,
}

/// Encodes the parts into the canonical info dictionary bytes.
pub(crate) fn assemble(parts: &Parts, commit: ObjectId) -> Vec<u8> {
    let files = parts
        .files
        .iter()
        .map(|f| {
            let mut entry = std::collections::BTreeMap::new();
            if f.executable {
                entry.insert(b"attr".to_vec(), Owned::bytes("x"));
            }
            entry.insert(b"length".to_vec(), Owned::Int(f.length as i64));
            entry.insert(
                b"path".to_vec(),
                Owned::List(f.path.iter().map(Owned::bytes).collect()),
            );
            Owned::Dict(entry)
        })
        .collect();
    let xus = bencode::dict([
        ("commit", Owned::bytes(&parts.commit_raw)),
        (
            "links",
            Owned::List(
                parts
                    .links
                    .iter()
                    .map(|l| Owned::bytes(&l.target))
                    .collect(),
            ),
        ),
        (
            "trees",
            Owned::List(
                parts
                    .trees
                    .iter()
                    .map(|(_, raw)| Owned::bytes(raw))
                    .collect(),
            ),
        ),
        ("v", Owned::Int(VERSION)),
        (
            "weak",
            Owned::Bytes(parts.weak.iter().flat_map(|w| w.to_be_bytes()).collect()),
        ),
    ]);
    bencode::dict([
        ("files", Owned::List(files)),
        ("name", Owned::bytes(commit.to_hex())),
        ("piece length", Owned::Int(parts.piece_length as i64)),
        ("pieces", Owned::Bytes(parts.piece_hashes.concat())),
        ("xus", xus),
    ])
    .encode()
}

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
        let root = gitobj::commit_tree(&commit_raw).map_err(FormatError::BadCommit)?;

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
            info_hash: ObjectId(sha1_of(info_bytes)),
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

    fn reassemble(&self) -> Vec<u8> {
        assemble(
            &Parts {
                commit_raw: self.commit_raw.clone(),
                trees: self.trees.clone(),
                files: self.files.clone(),
                links: self.links.clone(),
                piece_length: self.piece_length,
                piece_hashes: self.piece_hashes.clone(),
                weak: self.weak.clone(),
            },
            self.commit,
        )
    }

    /// Sum of all file lengths.
    pub fn total_length(&self) -> u64 {
        self.files.last().map(|f| f.offset + f.length).unwrap_or(0)
    }

    /// Number of pieces.
    pub fn piece_count(&self) -> usize {
        self.piece_hashes.len()
    }

    /// Byte range `(offset, length)` of piece `index` in the torrent's stream.
    pub fn piece_span(&self, index: usize) -> (u64, u64) {
        let start = index as u64 * self.piece_length;
        let end = (start + self.piece_length).min(self.total_length());
        (start, end.saturating_sub(start))
    }

    /// The parts of files piece `index` covers: `(file index, offset in file, length)`.
    pub fn piece_segments(&self, index: usize) -> Vec<(usize, u64, u64)> {
        let (start, len) = self.piece_span(index);
        segments(&self.files, start, len)
    }

    /// What each piece is made of, by blob: the key under which a piece hash
    /// can be reused by a later commit whose piece is made of the same bytes.
    pub fn piece_keys(&self) -> Vec<Option<PieceKey>> {
        (0..self.piece_count())
            .map(|i| piece_key(&self.files, &self.piece_segments(i)))
            .collect()
    }

    /// A `.torrent` file around the info dictionary (no tracker: xus is trackerless).
    pub fn torrent_file(&self, webseeds: &[String]) -> Vec<u8> {
        let mut out = b"d".to_vec();
        out.extend_from_slice(b"4:info");
        out.extend_from_slice(&self.info_bytes);
        if !webseeds.is_empty() {
            Owned::bytes("url-list").encode_into(&mut out);
            Owned::List(webseeds.iter().map(Owned::bytes).collect()).encode_into(&mut out);
        }
        out.push(b'e');
        out
    }

    /// A magnet link naming the commit and, optionally, peers to try.
    pub fn magnet(&self, peers: &[std::net::SocketAddr]) -> String {
        self.magnet_with_webseeds(peers, &[])
    }

    /// A magnet link naming the commit, peers to try and webseeds (`ws=`,
    /// BEP 19 base URLs, percent-encoded), so that a client holding only the
    /// link can get the metadata from a peer and the data from any of them.
    ///
    /// Kept apart from [`Self::magnet`] so that callers without webseeds
    /// (and the fuzz targets) keep their one-argument form.
    pub fn magnet_with_webseeds(
        &self,
        peers: &[std::net::SocketAddr],
        webseeds: &[String],
    ) -> String {
        crate::magnet::Magnet {
            info_hash: self.info_hash,
            name: Some(self.commit.to_hex()),
            peers: peers.to_vec(),
            webseeds: webseeds.to_vec(),
        }
        .to_string()
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

/// The `url-list` (BEP 19 webseeds) of a `.torrent` file, if any.
pub fn webseeds_from_torrent_file(torrent: &[u8]) -> Result<Vec<String>, FormatError> {
    let top = bencode::decode(torrent, bencode::Limits::default())?;
    let Some(list) = top.get(b"url-list") else {
        return Ok(Vec::new());
    };
    let items: Vec<&Spanned<'_>> = match list.as_list() {
        Some(items) => items.iter().collect(),
        None => vec![list],
    };
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

/// The parts of `files` that the byte range `start..start+len` covers:
/// `(file index, offset in file, length)`, skipping empty files.
pub fn segments(files: &[TorrentFile], start: u64, len: u64) -> Vec<(usize, u64, u64)> {
    let end = start + len;
    let first = files.partition_point(|f| f.offset + f.length <= start);
    let mut out = Vec::new();
    for (i, f) in files.iter().enumerate().skip(first) {
        if f.offset >= end {
            break;
        }
        let from = start.max(f.offset);
        let to = end.min(f.offset + f.length);
        if to > from {
            out.push((i, from - f.offset, to - from));
        }
    }
    out
}

/// A piece described by the blob ranges it is made of.
pub type PieceKey = Vec<(ObjectId, u64, u64)>;

/// The key of a piece, or `None` when it holds bytes that are not a blob.
pub fn piece_key(files: &[TorrentFile], segments: &[(usize, u64, u64)]) -> Option<PieceKey> {
    segments
        .iter()
        .map(|&(i, off, len)| files[i].blob.map(|b| (b, off, len)))
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
            .and_then(|raw| gitobj::parse_tree(raw).ok())
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

/// SHA-1 of a buffer (the infohash of info dictionary bytes).
pub fn sha1_of(data: &[u8]) -> [u8; 20] {
    use sha1::Digest;
    sha1::Sha1::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piece_length_rule() {
        assert_eq!(piece_length_for(0), MIN_PIECE_LENGTH);
        assert_eq!(piece_length_for(1), MIN_PIECE_LENGTH);
        assert_eq!(piece_length_for(1 << 30), 1 << 20);
        assert_eq!(piece_length_for((1 << 30) + 1), 2 << 20);
        assert_eq!(piece_length_for(1 << 40), MAX_PIECE_LENGTH);
        for total in [1u64, 1000, 16 << 20, 1 << 34] {
            assert!(total.div_ceil(piece_length_for(total)) <= 1024);
        }
    }

    /// Info bytes whose trees are a chain of `chain` directories, then
    /// `fanout` levels that each name the next tree twice, then two leaves of
    /// `leaf_mode`: 2^(fanout + 1) paths about `chain + fanout` deep.
    fn shared_subtree_info(chain: usize, fanout: usize, leaf_mode: &str) -> Vec<u8> {
        let entry = |mode: &str, name: &str, id: ObjectId| {
            [format!("{mode} {name}\0").as_bytes(), &id.0[..]].concat()
        };
        let blob = ObjectId::for_object("blob", b"");
        let mut trees = vec![[entry(leaf_mode, "a", blob), entry(leaf_mode, "b", blob)].concat()];
        for level in 0..fanout + chain {
            let next = ObjectId::for_object("tree", &trees[trees.len() - 1]);
            trees.push(if level < fanout {
                [entry("40000", "a", next), entry("40000", "b", next)].concat()
            } else {
                entry("40000", "c", next)
            });
        }
        trees.reverse();
        let root = ObjectId::for_object("tree", &trees[0]);
        let commit = format!("tree {root}\n\nmessage\n").into_bytes();
        bencode::dict([
            ("files", Owned::List(Vec::new())),
            (
                "name",
                Owned::bytes(ObjectId::for_object("commit", &commit).to_hex()),
            ),
            ("piece length", Owned::Int(MIN_PIECE_LENGTH as i64)),
            ("pieces", Owned::bytes("")),
            (
                "xus",
                bencode::dict([
                    ("commit", Owned::bytes(&commit)),
                    ("links", Owned::List(Vec::new())),
                    (
                        "trees",
                        Owned::List(trees.iter().map(Owned::bytes).collect()),
                    ),
                    ("v", Owned::Int(VERSION)),
                    ("weak", Owned::bytes("")),
                ]),
            ),
        ])
        .encode()
    }

    #[test]
    fn shared_subtrees_cannot_blow_up_the_walk() {
        // 2^16 gitlinks 250 directories down: 16 million path components from
        // 8 KB of metadata, seconds of walking (and gigabytes with files).
        let info = shared_subtree_info(234, 15, "160000");
        assert!(info.len() < 10_000);
        match CommitTorrent::parse(&info) {
            Err(FormatError::TooLarge { what, size, .. }) => {
                assert!(what.starts_with("tree walk"), "{what}");
                assert!(size > 16_000_000, "{size}");
            }
            other => panic!("expected the walk to be refused up front, got {other:?}"),
        }
        // The same shape, shallow and narrow, is within bounds and walks (it
        // then fails only because its `files` is empty).
        match CommitTorrent::parse(&shared_subtree_info(3, 3, "100644")) {
            Err(FormatError::Mismatch(m)) => assert!(m.contains("files listed"), "{m}"),
            other => panic!("expected the walk to run, got {other:?}"),
        }
    }

    #[test]
    fn non_utf8_components_are_escaped() {
        assert_eq!(torrent_component(b"plain.txt"), "plain.txt");
        assert_eq!(torrent_component("é".as_bytes()), "é");
        assert_eq!(torrent_component(b"a\xffb\xc3"), "a%FFb%C3");
    }
}
