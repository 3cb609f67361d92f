//! Rebuilds and verifies the objects of an update, writing nothing: the
//! caller writes them ([`Applied::write`]) only once it has also rebuilt the
//! commit torrent of `to` and matched its infohash against the signed head.

use std::collections::{HashMap, HashSet};

use super::build::{check_kind, git_kind};
use super::payload::{self, Limits, ObjectKind};
use super::{NOTHING, UpdateError};
use crate::git::object::{self, EntryKind, ObjectId};
use crate::git::pack::PackWriter;

/// The verified objects of an update, in payload order (`to` last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The commit the update started from (in the repository).
    pub from: ObjectId,
    /// The commit rebuilt.
    pub to: ObjectId,
    /// Every object carried: kind, id (checked), raw bytes.
    pub objects: Vec<(ObjectKind, ObjectId, Vec<u8>)>,
    /// Whether the carried commits link `to` back to `from` through parent
    /// lines: proof that moving a branch from `from` to `to` is a
    /// fast-forward, even when the reader lacks the commits between.
    pub descends_from: bool,
    /// Carried commits with a parent that is neither carried nor in the
    /// repository: [`Applied::write`] records them as shallow boundaries.
    pub shallow: Vec<ObjectId>,
}

impl Applied {
    /// Sum of the objects' sizes.
    pub fn bytes(&self) -> u64 {
        self.objects.iter().map(|(_, _, d)| d.len() as u64).sum()
    }

    /// Writes the objects into `repo` as one pack. Every id was checked by
    /// [`apply_update`]; call this only after the commit torrent of `to` has
    /// been rebuilt and its infohash checked, so refs never name an unsigned
    /// commit.
    pub fn write(&self, repo: &git2::Repository) -> Result<(), UpdateError> {
        self.write_pack(repo.path())?;
        crate::git::repo::add_shallow(repo.path(), &self.shallow).map_err(|source| {
            UpdateError::Shallow {
                path: repo.path().join("shallow"),
                source,
            }
        })
    }

    /// Writes the objects as one pack into the object database under
    /// `git_dir` (a repository, or a quarantine).
    pub(super) fn write_pack(&self, git_dir: &std::path::Path) -> Result<(), UpdateError> {
        let count = u32::try_from(self.objects.len()).map_err(|_| UpdateError::TooLarge {
            kind: ObjectKind::Commit,
            id: self.to,
            what: "the number of objects in one pack",
            size: self.objects.len() as u64,
            limit: u64::from(u32::MAX),
        })?;
        let mut pack = PackWriter::new(git_dir, count)?;
        let objects: Vec<_> = self
            .objects
            .iter()
            .map(|(kind, id, data)| (*id, git_kind(*kind), data.as_slice()))
            .collect();
        pack.add_all(&objects)?;
        pack.finish()?;
        Ok(())
    }
}

/// [`apply_update_with`] under the version 1 [`Limits`].
pub fn apply_update(repo: &git2::Repository, payload: &[u8]) -> Result<Applied, UpdateError> {
    apply_update_with(repo, payload, &Limits::default())
}

/// Decodes `payload`, rebuilds every object and verifies the result, in
/// this order, stopping at the first failure:
///
/// 1. the payload decodes within `limits` ([`payload::decode`]);
/// 2. its `from` commit is in `repo` (unless it is [`NOTHING`]: the update
///    is a whole history, and every base comes from the payload);
/// 3. each object, in payload order: its base is read from earlier in the
///    payload or from `repo` (at most `limits.max_object_size` bytes), its
///    frame is exactly one zstd frame whose header declares the object's
///    size, it decompresses into a buffer of exactly that size (never more is
///    allocated or written), and the bytes hash to its id as its kind;
/// 4. completeness: the carried commits are those reached from `to` through
///    carried parents; each one's tree and every tree and blob it reaches are
///    in the payload (of the kind their entries say) or in `repo`, every tree
///    parses with safe names, and every object carried is reached.
pub fn apply_update_with(
    repo: &git2::Repository,
    payload: &[u8],
    limits: &Limits,
) -> Result<Applied, UpdateError> {
    let decoded = payload::decode(payload, limits)?;
    let odb = repo.odb().map_err(|source| UpdateError::Git {
        what: "object database of",
        id: decoded.from,
        source,
    })?;
    match odb.read_header(decoded.from.to_git()) {
        _ if decoded.from == NOTHING => {}
        Ok((_, kind)) => check_kind(decoded.from, kind, ObjectKind::Commit)?,
        Err(e) if e.code() == git2::ErrorCode::NotFound => {
            return Err(UpdateError::MissingFrom(decoded.from));
        }
        Err(source) => {
            return Err(UpdateError::Git {
                what: "commit",
                id: decoded.from,
                source,
            });
        }
    }

    let mut objects: Vec<(ObjectKind, ObjectId, Vec<u8>)> =
        Vec::with_capacity(decoded.objects.len());
    let mut index: HashMap<ObjectId, usize> = HashMap::with_capacity(decoded.objects.len());
    for frame in &decoded.objects {
        let stored;
        let base: Option<&[u8]> = match frame.base {
            None => None,
            Some(base) => match index.get(&base) {
                Some(&i) => Some(&objects[i].2),
                None => {
                    stored = read_base(&odb, frame.id, base, limits)?;
                    Some(&stored)
                }
            },
        };
        let data = decompress(frame.frame, base, frame.size).map_err(|reason| {
            UpdateError::Decompress {
                id: frame.id,
                size: frame.size,
                reason,
            }
        })?;
        let actual = ObjectId::for_object(frame.kind.name(), &data);
        if actual != frame.id {
            return Err(UpdateError::IdMismatch {
                id: frame.id,
                kind: frame.kind,
                actual,
            });
        }
        index.insert(frame.id, objects.len());
        objects.push((frame.kind, frame.id, data));
    }

    let history = check_complete(&odb, decoded.from, decoded.to, &objects, &index)?;
    Ok(Applied {
        from: decoded.from,
        to: decoded.to,
        objects,
        descends_from: history.descends_from,
        shallow: history.shallow,
    })
}

/// Reads a base from the repository, refusing one larger than an object may
/// be before reading it.
fn read_base(
    odb: &git2::Odb<'_>,
    id: ObjectId,
    base: ObjectId,
    limits: &Limits,
) -> Result<Vec<u8>, UpdateError> {
    let git_error = |source| UpdateError::Git {
        what: "base",
        id: base,
        source,
    };
    let size = match odb.read_header(base.to_git()) {
        Ok((size, _)) => size as u64,
        Err(e) if e.code() == git2::ErrorCode::NotFound => {
            return Err(UpdateError::MissingBase { id, base });
        }
        Err(e) => return Err(git_error(e)),
    };
    if size > limits.max_object_size {
        return Err(UpdateError::BaseTooLarge {
            id,
            base,
            size,
            limit: limits.max_object_size,
        });
    }
    let object = odb.read(base.to_git()).map_err(git_error)?;
    Ok(object.data().to_vec())
}

/// Decompresses one frame that must rebuild exactly `size` bytes, with
/// `base` as its reference prefix. Refuses, before allocating: anything but
/// exactly one zstd frame, and a frame whose header does not declare `size`.
/// The output buffer holds exactly `size` bytes and zstd stops with an error
/// rather than write past it, so a frame that inflates beyond (a zstd bomb)
/// costs at most `size` bytes of memory.
pub(super) fn decompress(frame: &[u8], base: Option<&[u8]>, size: u64) -> Result<Vec<u8>, String> {
    use zstd::zstd_safe::{find_frame_compressed_size, get_error_name};
    let err = |code| get_error_name(code).to_owned();
    match find_frame_compressed_size(frame) {
        Ok(len) if len == frame.len() => {}
        Ok(len) => return Err(format!("{} bytes follow the zstd frame", frame.len() - len)),
        Err(code) => return Err(err(code)),
    }
    match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(declared)) if declared == size => {}
        Ok(Some(declared)) => {
            return Err(format!("the frame's header declares {declared} bytes"));
        }
        Ok(None) => return Err("the frame's header declares no size".into()),
        Err(_) => return Err("the frame's header is unreadable".into()),
    }
    let capacity = usize::try_from(size).map_err(|_| "size does not fit in memory".to_owned())?;
    let out = inflate(frame, base, capacity)?;
    if out.len() != capacity {
        return Err(format!("it decompresses to {} bytes", out.len()));
    }
    Ok(out)
}

/// Decompresses `frame` into a buffer of exactly `capacity` bytes; zstd
/// fails rather than write past it, whatever the frame's header says.
fn inflate(frame: &[u8], base: Option<&[u8]>, capacity: usize) -> Result<Vec<u8>, String> {
    use zstd::zstd_safe::{DCtx, DParameter, get_error_name};
    let err = |code| get_error_name(code).to_owned();
    let mut dctx = DCtx::try_create().ok_or("zstd could not allocate a context")?;
    // A prefix window may exceed zstd's default 128 MiB limit (the builder
    // sizes it to base + object); the output buffer bounds memory anyway.
    dctx.set_parameter(DParameter::WindowLogMax(31))
        .map_err(err)?;
    if let Some(base) = base {
        dctx.ref_prefix(base).map_err(err)?;
    }
    let mut out: Vec<u8> = Vec::with_capacity(capacity);
    dctx.decompress(&mut out, frame).map_err(|code| {
        format!(
            "{} (output bounded at {capacity} bytes)",
            get_error_name(code)
        )
    })?;
    Ok(out)
}

/// What the carried commits say about history.
struct History {
    descends_from: bool,
    shallow: Vec<ObjectId>,
}

/// Checks that the update is whole and holds nothing else: the carried
/// commits are exactly those reached from `to` through carried parents, and
/// everything each of their trees reaches is carried (with the kind its
/// tree entry says) or in the repository. Each distinct tree is read and
/// parsed once. Also tells whether `from` is among the parents reached, and
/// which carried commits have parents nowhere (shallow boundaries).
fn check_complete(
    odb: &git2::Odb<'_>,
    from: ObjectId,
    to: ObjectId,
    objects: &[(ObjectKind, ObjectId, Vec<u8>)],
    index: &HashMap<ObjectId, usize>,
) -> Result<History, UpdateError> {
    let mut reached = vec![false; objects.len()];

    // Looks an object up in the payload, then the repository; marks it
    // reached. Returns its bytes when it is a tree.
    let lookup = |id: ObjectId,
                  kind: ObjectKind,
                  parent: ObjectId,
                  reached: &mut Vec<bool>|
     -> Result<Option<Vec<u8>>, UpdateError> {
        if let Some(&i) = index.get(&id) {
            let (actual, _, data) = &objects[i];
            if *actual != kind {
                return Err(UpdateError::WrongKind {
                    id,
                    expected: kind.name(),
                    actual: actual.name().to_owned(),
                });
            }
            reached[i] = true;
            return Ok((kind == ObjectKind::Tree).then(|| data.clone()));
        }
        let missing = UpdateError::Missing {
            kind: kind.name(),
            id,
            parent,
        };
        match odb.read_header(id.to_git()) {
            Ok((_, actual)) => check_kind(id, actual, kind)?,
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Err(missing),
            Err(source) => {
                return Err(UpdateError::Git {
                    what: kind.name(),
                    id,
                    source,
                });
            }
        }
        if kind != ObjectKind::Tree {
            return Ok(None);
        }
        let tree = odb.read(id.to_git()).map_err(|source| UpdateError::Git {
            what: "tree",
            id,
            source,
        })?;
        Ok(Some(tree.data().to_vec()))
    };

    // The commits: from `to` through parents that are carried.
    let carried_commit = |id: ObjectId| {
        index
            .get(&id)
            .filter(|&&i| objects[i].0 == ObjectKind::Commit)
            .copied()
    };
    let first = carried_commit(to).ok_or(UpdateError::Missing {
        kind: "commit",
        id: to,
        parent: to,
    })?;
    let mut history = History {
        descends_from: false,
        shallow: Vec::new(),
    };
    let mut roots: Vec<(ObjectId, ObjectId)> = Vec::new();
    let mut commits = vec![first];
    reached[first] = true;
    while let Some(i) = commits.pop() {
        let (_, id, raw) = &objects[i];
        let bad = |source| UpdateError::BadCommit { id: *id, source };
        roots.push((object::commit_tree(raw).map_err(bad)?, *id));
        let mut boundary = false;
        for parent in object::commit_parents(raw).map_err(bad)? {
            if parent == from {
                history.descends_from = true;
            } else if let Some(j) = carried_commit(parent) {
                if !reached[j] {
                    reached[j] = true;
                    commits.push(j);
                }
            } else if !crate::git::repo::has_object(odb, parent) {
                boundary = true;
            }
        }
        if boundary {
            history.shallow.push(*id);
        }
    }

    let mut seen_trees: HashSet<ObjectId> = HashSet::new();
    let mut seen_blobs: HashSet<ObjectId> = HashSet::new();
    let mut todo = roots;
    while let Some((id, parent)) = todo.pop() {
        if !seen_trees.insert(id) {
            continue;
        }
        let raw = lookup(id, ObjectKind::Tree, parent, &mut reached)?.unwrap_or_default();
        let entries =
            object::parse_tree(&raw).map_err(|source| UpdateError::BadTree { id, source })?;
        for entry in entries {
            match entry.kind {
                EntryKind::Tree => todo.push((entry.id, id)),
                EntryKind::File { .. } | EntryKind::Symlink => {
                    if seen_blobs.insert(entry.id) {
                        lookup(entry.id, ObjectKind::Blob, id, &mut reached)?;
                    }
                }
                EntryKind::Gitlink => {}
            }
        }
    }
    if let Some(i) = reached.iter().position(|r| !r) {
        return Err(UpdateError::Unreferenced(objects[i].1));
    }
    history.shallow.sort();
    Ok(history)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::torrent::update::build::compress;

    #[test]
    fn a_bomb_stops_at_its_declared_size() {
        let zeros = vec![0u8; 16 << 20];
        let frame = compress(&zeros, None, 3).expect("compresses");
        assert!(frame.len() < 4096);
        // The header tells first.
        let err = decompress(&frame, None, 10).expect_err("refused");
        assert!(err.contains("declares"), "{err}");
        // A frame without a size in its header is refused too.
        let mut cctx = zstd::zstd_safe::CCtx::create();
        cctx.set_parameter(zstd::zstd_safe::CParameter::ContentSizeFlag(false))
            .expect("parameter");
        let mut sizeless = Vec::with_capacity(zstd::zstd_safe::compress_bound(zeros.len()));
        cctx.compress2(&mut sizeless, &zeros).expect("compresses");
        assert!(decompress(&sizeless, None, 10).is_err());
        // Whatever the header says, inflation stops at the buffer's end.
        for frame in [&frame, &sizeless] {
            let err = inflate(frame, None, 10).expect_err("bounded");
            assert!(err.contains("bounded at 10"), "{err}");
        }
    }

    #[test]
    fn refuses_trailing_frames_and_garbage() {
        let frame = compress(b"hello", None, 3).expect("compresses");
        assert_eq!(decompress(&frame, None, 5).expect("valid"), b"hello");
        let twice = [frame.clone(), frame.clone()].concat();
        assert!(decompress(&twice, None, 10).is_err());
        assert!(decompress(&frame[..frame.len() - 1], None, 5).is_err());
        assert!(decompress(b"\x28\xb5\x2f\xfdgarbage", None, 5).is_err());
        assert!(decompress(&frame, None, 4).is_err());
        assert!(decompress(&frame, None, 6).is_err());
    }
}
