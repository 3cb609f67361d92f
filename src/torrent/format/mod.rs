//! The commit torrent format, version 1 (specified in `docs/FORMAT.md`).
//!
//! A commit becomes a multi-file torrent whose files are the commit's blobs in
//! tree order and whose info dictionary also carries, under the `xus` key, the
//! raw commit and tree objects needed to rebuild the exact commit. The bytes
//! are a pure function of the commit, so the infohash is the same on every
//! machine. `encode` writes those bytes, `parse` reads them back
//! strictly, and `build` reads a repository to feed them.

mod build;
mod encode;
mod layout;
mod parse;

pub use build::{BuildError, build, build_with_hints};
pub use encode::torrent_file_around;
pub(crate) use encode::{Parts, assemble};
pub use layout::{Layout, LayoutFile, LayoutLink, walk};
pub use parse::{MAX_TORRENT_FILE_BYTES, info_from_torrent_file, webseeds_from_torrent_file};

use crate::git::object::{self, ObjectId};
use crate::torrent::bencode;
use crate::torrent::info_hash::InfoHash;

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
    BadCommit(#[source] object::ObjectError),
    /// A raw tree does not parse or holds an unsafe name.
    #[error("tree {id} is malformed")]
    BadTree {
        /// The tree's id.
        id: ObjectId,
        /// What is wrong.
        source: object::ObjectError,
    },
    /// A `.torrent` whose `url-list` names more webseeds than a fetch
    /// would ever ask (the bound a magnet's `ws=` has).
    #[error("the url-list names {0} webseeds; at most {max} are read", max = crate::torrent::magnet::MAX_WEBSEEDS)]
    TooManyWebseeds(usize),
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
    pub info_hash: InfoHash,
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
        for &b in chunk.invalid() {
            xus_codec::percent::push_escape(b, &mut out);
        }
    }
    out
}

/// The name of the only file of a commit whose files hold no bytes at all: a
/// tree cannot contain its own commit's id, so the name never collides.
pub fn commit_file_name(commit: ObjectId) -> String {
    format!("{commit}.commit")
}

impl CommitTorrent {
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

/// SHA-1 of a buffer (the infohash of info dictionary bytes).
pub fn sha1_of(data: &[u8]) -> [u8; 20] {
    use sha1::Digest;
    sha1::Sha1::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::torrent::bencode::Owned;

    #[test]
    fn a_url_list_is_read_up_to_its_bound() {
        let torrent_with = |count: usize| {
            let urls = (0..count)
                .map(|n| {
                    let url = format!("http://192.0.2.1:{}/", 8000 + n);
                    format!("{}:{url}", url.len())
                })
                .collect::<String>();
            format!("d8:url-listl{urls}ee").into_bytes()
        };
        let max = crate::torrent::magnet::MAX_WEBSEEDS;
        assert_eq!(
            webseeds_from_torrent_file(&torrent_with(max))
                .ok()
                .map(|w| w.len()),
            Some(max)
        );
        assert!(matches!(
            webseeds_from_torrent_file(&torrent_with(max + 1)),
            Err(FormatError::TooManyWebseeds(n)) if n == max + 1
        ));
        assert!(matches!(
            webseeds_from_torrent_file(&torrent_with(1_000)),
            Err(FormatError::TooManyWebseeds(1_000))
        ));
    }

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
        info_of_trees(trees)
    }

    /// An info dictionary whose commit has the root tree `trees[0]`,
    /// carrying `trees` and no file.
    fn info_of_trees(trees: Vec<Vec<u8>>) -> Vec<u8> {
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
                        Owned::List(trees.into_iter().map(Owned::Bytes).collect()),
                    ),
                    ("v", Owned::Int(VERSION)),
                    ("weak", Owned::bytes("")),
                ]),
            ),
        ])
        .encode()
    }

    #[test]
    fn parsing_enforces_the_size_depth_and_entry_limits() {
        // Over 32 MiB: refused before it is decoded.
        assert!(matches!(
            CommitTorrent::parse(&vec![b'd'; MAX_INFO_BYTES + 1]),
            Err(FormatError::TooLarge { .. })
        ));
        // 257 directories nested (gitlinks at the bottom, so no file is
        // needed) are one too many; 256 are within the limit.
        let deep = CommitTorrent::parse(&shared_subtree_info(MAX_DEPTH + 1, 0, "160000"));
        assert!(
            matches!(deep, Err(FormatError::TooDeep(MAX_DEPTH))),
            "{deep:?}"
        );
        assert!(!matches!(
            CommitTorrent::parse(&shared_subtree_info(MAX_DEPTH, 0, "160000")),
            Err(FormatError::TooDeep(_))
        ));
        // One flat tree of MAX_ENTRIES + 1 gitlinks (33 MB, within the info
        // bound): every entry is carried, so only the entry count refuses it.
        let id = ObjectId::for_object("commit", b"x");
        let mut tree = Vec::with_capacity((MAX_ENTRIES + 1) * 33);
        for n in 0..=MAX_ENTRIES {
            tree.extend_from_slice(format!("160000 {n:05x}\0").as_bytes());
            tree.extend_from_slice(&id.0);
        }
        let info = info_of_trees(vec![tree]);
        assert!(info.len() <= MAX_INFO_BYTES, "{}", info.len());
        assert!(matches!(
            CommitTorrent::parse(&info),
            Err(FormatError::TooManyEntries(MAX_ENTRIES))
        ));
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
