//! The update payload, version 1: the bytes of an update torrent's only file.
//!
//! Pure: no I/O, no repository, no zstd. [`encode`] writes what the builder
//! made; [`decode`] reads bytes from anyone, strictly and within [`Limits`],
//! and hands back frames borrowed from the input so that nothing is copied
//! or inflated before the caller has checked everything it can check cheaply.
//!
//! Layout (all integers big endian; specified in `docs/FORMAT.md`, "Update
//! torrents"):
//!
//! ```text
//! magic        8   "XUSUPD1\n"
//! from        20   commit id A (the reader must have it)
//! to          20   commit id B (what the update rebuilds)
//! count        4   number of objects, 1..
//! count times:
//!   kind       1   1 commit, 2 tree, 3 blob
//!   id        20   the object's Git id
//!   size       8   the object's size, uncompressed
//!   has base   1   0 or 1
//!   base      20   only when `has base` is 1: the id of the reference object
//!   frame len  4
//!   frame      …   exactly one zstd frame (the object, compressed against
//!                  the base as a prefix when there is one)
//! ```
//!
//! Every field has exactly one spelling, so `encode(decode(b)) == b` for every
//! accepted `b` (the fuzz target checks it).

use std::collections::HashMap;

use crate::git::object::ObjectId;

/// The first eight bytes of every version 1 payload.
pub const MAGIC: &[u8; 8] = b"XUSUPD1\n";

/// The four bytes every zstd frame starts with (`0xFD2FB528`, little endian).
/// Skippable frames and other formats are refused: they decode to nothing.
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// Most objects in one payload: one per tree entry of a commit torrent, plus
/// the commit.
pub const MAX_OBJECTS: usize = crate::torrent::format::MAX_ENTRIES + 1;

/// Largest object an update carries: readers hold the objects in memory
/// until they are verified, so a larger blob travels in the commit torrent.
pub const MAX_OBJECT_SIZE: u64 = 1 << 30;

/// Largest sum of object sizes in one payload (what a reader may have to
/// hold in memory at once).
pub const MAX_TOTAL_SIZE: u64 = 4 << 30;

/// Largest payload: [`MAX_TOTAL_SIZE`] of frames (zstd's worst case adds
/// 1/256) plus per-object headers, rounded up.
pub const MAX_PAYLOAD_BYTES: u64 = 5 << 30;

/// Bytes before the first object.
const HEADER_BYTES: usize = MAGIC.len() + 20 + 20 + 4;

/// The fewest bytes an object can take: header fields without a base, and a
/// frame holding at least the zstd magic. Bounds the count before anything
/// is allocated for it.
const MIN_OBJECT_BYTES: usize = 1 + 20 + 8 + 1 + 4 + ZSTD_MAGIC.len();

/// What a payload may cost a reader. [`Limits::default`] is the version 1
/// bounds; tests and fuzzers may tighten them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most objects.
    pub max_objects: usize,
    /// Largest declared size of one object, and of a base read to rebuild it.
    pub max_object_size: u64,
    /// Largest sum of declared sizes.
    pub max_total_size: u64,
    /// Largest payload.
    pub max_payload_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_objects: MAX_OBJECTS,
            max_object_size: MAX_OBJECT_SIZE,
            max_total_size: MAX_TOTAL_SIZE,
            max_payload_bytes: MAX_PAYLOAD_BYTES,
        }
    }
}

/// The Git type of an object carried in a payload. Tags are never part of a
/// commit's closure, so they have no code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    /// A commit (only `to`, always the last object).
    Commit,
    /// A tree.
    Tree,
    /// A blob (a file or a symlink target).
    Blob,
}

impl ObjectKind {
    /// The byte that encodes this kind.
    pub fn code(self) -> u8 {
        match self {
            ObjectKind::Commit => 1,
            ObjectKind::Tree => 2,
            ObjectKind::Blob => 3,
        }
    }

    /// The kind a byte encodes, if any.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(ObjectKind::Commit),
            2 => Some(ObjectKind::Tree),
            3 => Some(ObjectKind::Blob),
            _ => None,
        }
    }

    /// Git's name for the type, as hashed in the object header.
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Commit => "commit",
            ObjectKind::Tree => "tree",
            ObjectKind::Blob => "blob",
        }
    }
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One object of a payload, its frame borrowed from the payload bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The object's type.
    pub kind: ObjectKind,
    /// The object's Git id, checked by the reader after decompression.
    pub id: ObjectId,
    /// The object's size: the exact output the frame must decompress to,
    /// and so the most a reader ever allocates for it.
    pub size: u64,
    /// The reference object the frame was compressed against (an object of
    /// `from`, or one earlier in the payload); `None` for a frame that
    /// decompresses on its own.
    pub base: Option<ObjectId>,
    /// Exactly one zstd frame.
    pub frame: &'a [u8],
}

/// A decoded payload: the header and every object in payload order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload<'a> {
    /// The commit the reader must already have.
    pub from: ObjectId,
    /// The commit the update rebuilds; always the last object.
    pub to: ObjectId,
    /// The objects, in payload order (the commit last).
    pub objects: Vec<Frame<'a>>,
}

/// Why bytes are not a valid version 1 payload. Nothing is decompressed
/// before these checks pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Over one of the [`Limits`].
    #[error("update {what} is {size}, over the limit of {limit}")]
    TooLarge {
        /// What is too large.
        what: &'static str,
        /// Its size or count.
        size: u64,
        /// The bound.
        limit: u64,
    },
    /// An object declared larger than [`Limits::max_object_size`].
    #[error("update object {id} declares {size} bytes, over the limit of {limit}")]
    ObjectTooLarge {
        /// The object.
        id: ObjectId,
        /// Its declared size.
        size: u64,
        /// The bound.
        limit: u64,
    },
    /// Not a version 1 payload.
    #[error("not an xus update payload (bad magic)")]
    BadMagic,
    /// The input ends inside a field, or the count promises more objects
    /// than the remaining bytes can hold.
    #[error("update payload ends early at byte {at}, reading {what}")]
    Truncated {
        /// Offset where the field starts.
        at: usize,
        /// The field.
        what: &'static str,
    },
    /// `from` and `to` are the same commit.
    #[error("update goes from commit {0} to itself")]
    SameCommit(ObjectId),
    /// `to` is the null id, which names no commit.
    #[error("update goes to the null commit id")]
    NullTo,
    /// A payload with no object (it must carry at least `to`).
    #[error("update payload carries no object")]
    Empty,
    /// A kind byte that is not 1, 2 or 3.
    #[error("update object {index} has unknown kind byte {byte}")]
    UnknownKind {
        /// Position of the object in the payload.
        index: usize,
        /// The byte.
        byte: u8,
    },
    /// A base flag that is neither 0 nor 1.
    #[error("update object {id} has base flag {byte} (must be 0 or 1)")]
    BadBaseFlag {
        /// The object.
        id: ObjectId,
        /// The byte.
        byte: u8,
    },
    /// An object compressed against itself.
    #[error("update object {0} names itself as its base")]
    SelfBase(ObjectId),
    /// A base carried later in the same payload: a reader could not have it
    /// yet.
    #[error("update object {id} has base {base}, which comes later in the payload")]
    BaseAfter {
        /// The object.
        id: ObjectId,
        /// Its base.
        base: ObjectId,
    },
    /// The same id twice.
    #[error("update object {0} is carried twice")]
    Duplicate(ObjectId),
    /// A frame that does not start with the zstd magic number.
    #[error("update object {0}'s frame is not a zstd frame")]
    NotZstd(ObjectId),
    /// A frame longer than zstd's worst case for the declared size.
    #[error(
        "update object {id}'s frame is {frame_len} bytes, more than zstd ever writes for {size}"
    )]
    FrameTooLarge {
        /// The object.
        id: ObjectId,
        /// The frame's length.
        frame_len: u64,
        /// The declared size.
        size: u64,
    },
    /// A last object that is not the commit `to`.
    #[error(
        "update object {id} at position {index}: the last object must be the commit `to` ({to})"
    )]
    CommitPlacement {
        /// The offending object.
        id: ObjectId,
        /// Its position.
        index: usize,
        /// The header's `to`.
        to: ObjectId,
    },
    /// Bytes after the last object.
    #[error("{0} trailing bytes after the last update object")]
    Trailing(usize),
}

/// zstd's `ZSTD_COMPRESSBOUND(size)`: the largest frame zstd writes for
/// `size` bytes of input (stored blocks and headers included), with or
/// without a prefix. The builder allocates exactly this much; the decoder
/// refuses longer frames.
pub fn frame_bound(size: u64) -> u64 {
    const BLOCK: u64 = 128 << 10;
    let margin = if size < BLOCK {
        (BLOCK - size) >> 11
    } else {
        0
    };
    size.saturating_add(size >> 8).saturating_add(margin)
}

/// The encoded length of a payload holding `objects`.
pub fn encoded_len(objects: &[Frame<'_>]) -> u64 {
    objects.iter().fold(HEADER_BYTES as u64, |sum, o| {
        let base = if o.base.is_some() { 20 } else { 0 };
        sum + (1 + 20 + 8 + 1 + 4 + base + o.frame.len()) as u64
    })
}

/// Writes a payload. Checks only what the encoding itself needs (the count
/// and every frame length fit in 32 bits); everything else is the builder's
/// contract, which it checks by decoding its own output.
pub fn encode(
    from: ObjectId,
    to: ObjectId,
    objects: &[Frame<'_>],
) -> Result<Vec<u8>, PayloadError> {
    let too_large = |what, size: usize| PayloadError::TooLarge {
        what,
        size: size as u64,
        limit: u64::from(u32::MAX),
    };
    let count =
        u32::try_from(objects.len()).map_err(|_| too_large("object count", objects.len()))?;
    let len =
        usize::try_from(encoded_len(objects)).map_err(|_| too_large("payload", usize::MAX))?;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&from.0);
    out.extend_from_slice(&to.0);
    out.extend_from_slice(&count.to_be_bytes());
    for o in objects {
        let frame_len =
            u32::try_from(o.frame.len()).map_err(|_| too_large("frame", o.frame.len()))?;
        out.push(o.kind.code());
        out.extend_from_slice(&o.id.0);
        out.extend_from_slice(&o.size.to_be_bytes());
        match o.base {
            Some(base) => {
                out.push(1);
                out.extend_from_slice(&base.0);
            }
            None => out.push(0),
        }
        out.extend_from_slice(&frame_len.to_be_bytes());
        out.extend_from_slice(o.frame);
    }
    Ok(out)
}

/// A cursor that never reads past the end: every read checks the remaining
/// length first and names the field it was reading.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], PayloadError> {
        let at = self.pos;
        let end = at
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(PayloadError::Truncated { at, what })?;
        self.pos = end;
        Ok(&self.bytes[at..end])
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], PayloadError> {
        let at = self.pos;
        self.take(N, what)?
            .try_into()
            .map_err(|_| PayloadError::Truncated { at, what })
    }

    fn id(&mut self, what: &'static str) -> Result<ObjectId, PayloadError> {
        self.array::<20>(what).map(ObjectId)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, PayloadError> {
        self.array::<1>(what).map(|[b]| b)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, PayloadError> {
        self.array(what).map(u32::from_be_bytes)
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, PayloadError> {
        self.array(what).map(u64::from_be_bytes)
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }
}

/// Decodes and checks a payload from anyone. Refuses, before allocating
/// anything in proportion to a declared number: a payload over the limits,
/// a count the remaining bytes cannot hold, unknown kinds and flags,
/// declared sizes over the limits (one object, and the sum), frames that are
/// not exactly-sized zstd frames or are longer than zstd's worst case for
/// their size, duplicate ids, self-bases, bases that come later, a commit
/// anywhere but last, a last object that is not `to`, and trailing bytes.
///
/// It does not decompress: [`super::apply_update`] does, bounded by `size`.
pub fn decode<'a>(bytes: &'a [u8], limits: &Limits) -> Result<Payload<'a>, PayloadError> {
    if bytes.len() as u64 > limits.max_payload_bytes {
        return Err(PayloadError::TooLarge {
            what: "payload (bytes)",
            size: bytes.len() as u64,
            limit: limits.max_payload_bytes,
        });
    }
    let mut r = Reader { bytes, pos: 0 };
    if r.take(MAGIC.len(), "magic")
        .map_err(|_| PayloadError::BadMagic)?
        != MAGIC
    {
        return Err(PayloadError::BadMagic);
    }
    let from = r.id("from")?;
    let to = r.id("to")?;
    if from == to {
        return Err(PayloadError::SameCommit(from));
    }
    if to == super::NOTHING {
        return Err(PayloadError::NullTo);
    }
    let count_at = r.pos;
    let count = r.u32("object count")? as usize;
    if count == 0 {
        return Err(PayloadError::Empty);
    }
    if count > limits.max_objects {
        return Err(PayloadError::TooLarge {
            what: "object count",
            size: count as u64,
            limit: limits.max_objects as u64,
        });
    }
    if count > r.remaining() / MIN_OBJECT_BYTES {
        return Err(PayloadError::Truncated {
            at: count_at,
            what: "objects (the count promises more than the bytes left)",
        });
    }
    let mut objects: Vec<Frame<'_>> = Vec::with_capacity(count);
    let mut index: HashMap<ObjectId, usize> = HashMap::with_capacity(count);
    let mut total = 0u64;
    for i in 0..count {
        let code = r.u8("object kind")?;
        let kind = ObjectKind::from_code(code).ok_or(PayloadError::UnknownKind {
            index: i,
            byte: code,
        })?;
        let id = r.id("object id")?;
        let size = r.u64("object size")?;
        if size > limits.max_object_size {
            return Err(PayloadError::ObjectTooLarge {
                id,
                size,
                limit: limits.max_object_size,
            });
        }
        total = total.saturating_add(size);
        if total > limits.max_total_size {
            return Err(PayloadError::TooLarge {
                what: "sum of object sizes",
                size: total,
                limit: limits.max_total_size,
            });
        }
        let base = match r.u8("base flag")? {
            0 => None,
            1 => Some(r.id("base id")?),
            byte => return Err(PayloadError::BadBaseFlag { id, byte }),
        };
        let frame_len = r.u32("frame length")?;
        if u64::from(frame_len) > frame_bound(size) {
            return Err(PayloadError::FrameTooLarge {
                id,
                frame_len: u64::from(frame_len),
                size,
            });
        }
        let frame = r.take(frame_len as usize, "frame")?;
        if !frame.starts_with(&ZSTD_MAGIC) {
            return Err(PayloadError::NotZstd(id));
        }
        if base == Some(id) {
            return Err(PayloadError::SelfBase(id));
        }
        if index.insert(id, i).is_some() {
            return Err(PayloadError::Duplicate(id));
        }
        if i + 1 == count && (kind != ObjectKind::Commit || id != to) {
            return Err(PayloadError::CommitPlacement { id, index: i, to });
        }
        objects.push(Frame {
            kind,
            id,
            size,
            base,
            frame,
        });
    }
    if r.remaining() != 0 {
        return Err(PayloadError::Trailing(r.remaining()));
    }
    for (i, o) in objects.iter().enumerate() {
        if let Some(base) = o.base
            && index.get(&base).is_some_and(|&j| j > i)
        {
            return Err(PayloadError::BaseAfter { id: o.id, base });
        }
    }
    Ok(Payload { from, to, objects })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(n: u8) -> ObjectId {
        ObjectId([n; 20])
    }

    /// A frame-shaped byte string (the decoder does not decompress).
    fn fake_frame(tail: &[u8]) -> Vec<u8> {
        [&ZSTD_MAGIC[..], tail].concat()
    }

    /// Kind, id, size and base of an object.
    type Meta = (ObjectKind, ObjectId, u64, Option<ObjectId>);

    fn sample() -> (Vec<Vec<u8>>, Vec<Meta>) {
        let frames = vec![fake_frame(b"blob"), fake_frame(b"tree"), fake_frame(b"c")];
        let meta = vec![
            (ObjectKind::Blob, id(1), 100, Some(id(9))),
            (ObjectKind::Tree, id(2), 60, Some(id(1))),
            (ObjectKind::Commit, id(3), 200, None),
        ];
        (frames, meta)
    }

    fn frames<'a>(frames: &'a [Vec<u8>], meta: &[Meta]) -> Vec<Frame<'a>> {
        meta.iter()
            .zip(frames)
            .map(|(&(kind, id, size, base), frame)| Frame {
                kind,
                id,
                size,
                base,
                frame,
            })
            .collect()
    }

    fn sample_bytes() -> Vec<u8> {
        let (f, m) = sample();
        encode(id(8), id(3), &frames(&f, &m)).expect("encodes")
    }

    #[test]
    fn round_trips() {
        let (f, m) = sample();
        let objects = frames(&f, &m);
        let bytes = encode(id(8), id(3), &objects).expect("encodes");
        assert_eq!(bytes.len() as u64, encoded_len(&objects));
        assert!(bytes.starts_with(MAGIC));
        let decoded = decode(&bytes, &Limits::default()).expect("decodes");
        assert_eq!(decoded.from, id(8));
        assert_eq!(decoded.to, id(3));
        assert_eq!(decoded.objects, objects);
    }

    #[test]
    fn refuses_malformed_headers() {
        let good = sample_bytes();
        let limits = Limits::default();
        assert_eq!(decode(b"", &limits), Err(PayloadError::BadMagic));
        assert_eq!(decode(b"XUSUPD2\n", &limits), Err(PayloadError::BadMagic));
        let mut same = good.clone();
        same[8..28].copy_from_slice(&[3; 20]);
        assert_eq!(decode(&same, &limits), Err(PayloadError::SameCommit(id(3))));
        let mut empty = good[..HEADER_BYTES].to_vec();
        empty[HEADER_BYTES - 4..].copy_from_slice(&0u32.to_be_bytes());
        assert_eq!(decode(&empty, &limits), Err(PayloadError::Empty));
        let mut huge = good.clone();
        huge[HEADER_BYTES - 4..HEADER_BYTES].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            decode(&huge, &limits),
            Err(PayloadError::TooLarge {
                what: "object count",
                ..
            })
        ));
        huge[HEADER_BYTES - 4..HEADER_BYTES].copy_from_slice(&1000u32.to_be_bytes());
        assert!(matches!(
            decode(&huge, &limits),
            Err(PayloadError::Truncated { .. })
        ));
    }

    #[test]
    fn refuses_every_truncation_and_trailing_bytes() {
        let good = sample_bytes();
        for len in 0..good.len() {
            assert!(decode(&good[..len], &Limits::default()).is_err(), "{len}");
        }
        let mut long = good.clone();
        long.push(0);
        assert_eq!(
            decode(&long, &Limits::default()),
            Err(PayloadError::Trailing(1))
        );
    }

    #[test]
    fn refuses_bad_objects() {
        let (f, m) = sample();
        let check = |meta: Vec<Meta>, to: ObjectId, expected: PayloadError| {
            let bytes = encode(id(8), to, &frames(&f, &meta)).expect("encodes");
            assert_eq!(decode(&bytes, &Limits::default()), Err(expected));
        };
        let mut dup = m.clone();
        dup[1].1 = id(1);
        dup[1].3 = None;
        check(dup, id(3), PayloadError::Duplicate(id(1)));
        let mut selfish = m.clone();
        selfish[0].3 = Some(id(1));
        check(selfish, id(3), PayloadError::SelfBase(id(1)));
        let mut later = m.clone();
        later[0].3 = Some(id(2));
        check(
            later,
            id(3),
            PayloadError::BaseAfter {
                id: id(1),
                base: id(2),
            },
        );
        // Commits between `from` and `to` may come anywhere before the last.
        let mut early_commit = m.clone();
        early_commit[0].0 = ObjectKind::Commit;
        let bytes = encode(id(8), id(3), &frames(&f, &early_commit)).expect("encodes");
        assert!(decode(&bytes, &Limits::default()).is_ok());
        check(
            m.clone(),
            id(7),
            PayloadError::CommitPlacement {
                id: id(3),
                index: 2,
                to: id(7),
            },
        );
        let mut tree_last = m.clone();
        tree_last[2].0 = ObjectKind::Tree;
        check(
            tree_last,
            id(3),
            PayloadError::CommitPlacement {
                id: id(3),
                index: 2,
                to: id(3),
            },
        );
        let mut big = m.clone();
        big[0].2 = MAX_OBJECT_SIZE + 1;
        check(
            big,
            id(3),
            PayloadError::ObjectTooLarge {
                id: id(1),
                size: MAX_OBJECT_SIZE + 1,
                limit: MAX_OBJECT_SIZE,
            },
        );
        // A frame far longer than zstd writes for a 0-byte object.
        let long = vec![fake_frame(&[0; 100])];
        let bytes = encode(
            id(8),
            id(3),
            &frames(&long, &[(ObjectKind::Commit, id(3), 0, None)]),
        )
        .expect("encodes");
        assert!(matches!(
            decode(&bytes, &Limits::default()),
            Err(PayloadError::FrameTooLarge { .. })
        ));
        let not_zstd = vec![b"PK\x03\x04 zip".to_vec()];
        let bytes = encode(
            id(8),
            id(3),
            &frames(&not_zstd, &[(ObjectKind::Commit, id(3), 10, None)]),
        )
        .expect("encodes");
        assert_eq!(
            decode(&bytes, &Limits::default()),
            Err(PayloadError::NotZstd(id(3)))
        );
    }

    #[test]
    fn refuses_unknown_kinds_and_flags() {
        let good = sample_bytes();
        let mut kind = good.clone();
        kind[HEADER_BYTES] = 4;
        assert_eq!(
            decode(&kind, &Limits::default()),
            Err(PayloadError::UnknownKind { index: 0, byte: 4 })
        );
        let mut flag = good.clone();
        flag[HEADER_BYTES + 29] = 2;
        assert_eq!(
            decode(&flag, &Limits::default()),
            Err(PayloadError::BadBaseFlag { id: id(1), byte: 2 })
        );
    }

    #[test]
    fn limits_bound_the_sum_of_sizes() {
        let limits = Limits {
            max_total_size: 250,
            ..Limits::default()
        };
        assert!(matches!(
            decode(&sample_bytes(), &limits),
            Err(PayloadError::TooLarge {
                what: "sum of object sizes",
                size: 360,
                ..
            })
        ));
        let limits = Limits {
            max_payload_bytes: 10,
            ..Limits::default()
        };
        assert!(matches!(
            decode(&sample_bytes(), &limits),
            Err(PayloadError::TooLarge { .. })
        ));
    }

    #[test]
    fn frame_bound_matches_zstd() {
        for size in [0usize, 1, 100, 128 << 10, (128 << 10) + 1, 10 << 20] {
            assert_eq!(
                frame_bound(size as u64),
                zstd::zstd_safe::compress_bound(size) as u64
            );
        }
    }

    fn arb_object() -> impl Strategy<Value = (u8, [u8; 20], u64, Option<[u8; 20]>, Vec<u8>)> {
        (
            2u8..=3,
            any::<[u8; 20]>(),
            0u64..1000,
            proptest::option::of(any::<[u8; 20]>()),
            proptest::collection::vec(any::<u8>(), 0..40),
        )
    }

    proptest! {
        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode(&bytes, &Limits::default());
            let mut prefixed = MAGIC.to_vec();
            prefixed.extend_from_slice(&bytes);
            if let Ok(p) = decode(&prefixed, &Limits::default()) {
                prop_assert_eq!(encode(p.from, p.to, &p.objects).expect("encodes"), prefixed);
            }
        }

        #[test]
        fn mutated_payloads_never_panic(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = sample_bytes();
            for (at, byte) in edits {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            let cut = cut.index(bytes.len() + 1);
            for candidate in [&bytes[..], &bytes[..cut]] {
                if let Ok(p) = decode(candidate, &Limits::default()) {
                    prop_assert_eq!(encode(p.from, p.to, &p.objects).expect("encodes"), candidate);
                }
            }
        }

        #[test]
        fn encoded_payloads_round_trip(
            objects in proptest::collection::vec(arb_object(), 0..8),
            commit_size in 0u64..1000,
        ) {
            let from = ObjectId([0xAA; 20]);
            let to = ObjectId([0xBB; 20]);
            let mut owned: Vec<(Meta, Vec<u8>)> = Vec::new();
            let mut seen = std::collections::HashSet::from([to]);
            for (kind, raw_id, size, base, tail) in objects {
                let id = ObjectId(raw_id);
                if !seen.insert(id) {
                    continue;
                }
                // Random bases are outside the payload (a random clash with
                // a later id is out of reach).
                let base = base.map(ObjectId).filter(|b| *b != id && *b != to);
                let kind = ObjectKind::from_code(kind).expect("2 or 3");
                owned.push(((kind, id, size, base), fake_frame(&tail)));
            }
            owned.push(((ObjectKind::Commit, to, commit_size, None), fake_frame(b"")));
            let frames: Vec<Frame<'_>> = owned
                .iter()
                .map(|((kind, id, size, base), frame)| Frame {
                    kind: *kind, id: *id, size: *size, base: *base, frame,
                })
                .collect();
            let bytes = encode(from, to, &frames).expect("encodes");
            let decoded = decode(&bytes, &Limits::default()).expect("decodes");
            prop_assert_eq!(&decoded.objects, &frames);
            prop_assert_eq!(encode(decoded.from, decoded.to, &decoded.objects).expect("encodes"), bytes);
        }
    }
}
