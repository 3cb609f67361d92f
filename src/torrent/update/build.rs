//! Builds the update from commit A to commit B out of a repository holding
//! both: the objects of B that A lacks, each compressed against the object
//! of A most likely to share its bytes.

use std::collections::{HashMap, HashSet};

use git2::ObjectType;

use super::payload::{self, Frame, Limits, ObjectKind};
use super::{NOTHING, UpdateError, UpdateTorrent};
use crate::git::object::{self, EntryKind, ObjectId};
use crate::torrent::format::{FormatError, MAX_DEPTH, MAX_ENTRIES};

/// Most candidate bases kept per file name and per extension (the first met
/// in A's walk order), so choosing a base for a renamed file stays cheap on
/// trees with hundreds of thousands of files.
pub const MAX_CANDIDATES: usize = 64;

/// A patched frame at most 1/`PLAIN_CHECK_RATIO` of its object is kept
/// without also compressing the object alone to compare.
const PLAIN_CHECK_RATIO: usize = 8;

/// How a publisher compresses. Part of the update's identity: the same
/// (A, B, settings) gives the same bytes on every machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdateSettings {
    /// zstd level. The default, 19, was chosen by measurement (see
    /// `docs/FORMAT.md`): against level 3 it makes patched text and binaries
    /// markedly smaller, and a publisher compresses once for every reader.
    pub level: i32,
    /// Largest object, and largest base, compressed against a base: above
    /// it an object is compressed on its own, which bounds the publisher's
    /// memory (zstd's window must cover base and object).
    pub max_patch_size: u64,
}

impl Default for UpdateSettings {
    fn default() -> Self {
        Self {
            level: 19,
            max_patch_size: 256 << 20,
        }
    }
}

impl UpdateSettings {
    /// How history torrents (updates from [`NOTHING`], which a head lists
    /// for clones) are compressed: level 9, about ten times faster than 19
    /// for a payload 8-24 % larger, because a history covers every object
    /// of the branch and its publisher makes one whenever the previous one
    /// falls off the head's chain. Part of the history's identity, as the
    /// level of any update is.
    pub fn history() -> Self {
        Self {
            level: 9,
            ..Self::default()
        }
    }

    /// The settings of the update from `from`: [`UpdateSettings::history`]
    /// from [`NOTHING`], the default otherwise.
    pub fn for_update_from(from: ObjectId) -> Self {
        if from == NOTHING {
            Self::history()
        } else {
            Self::default()
        }
    }
}

/// An update, ready to be wrapped in its torrent ([`Update::torrent`]).
#[derive(Debug, Clone)]
pub struct Update {
    /// The commit a reader must have.
    pub from: ObjectId,
    /// The commit the update rebuilds.
    pub to: ObjectId,
    /// The payload bytes (see [`payload`]).
    pub payload: Vec<u8>,
    /// What went in, for reports and benchmarks.
    pub stats: UpdateStats,
}

impl Update {
    /// The update torrent around this payload.
    pub fn torrent(&self) -> Result<UpdateTorrent, UpdateError> {
        Ok(UpdateTorrent::new(self.from, self.to, &self.payload)?)
    }
}

/// What an update is made of: counts and bytes, and how each object's base
/// was found. Every object is counted in exactly one of `by_path`,
/// `by_name`, `by_size` and `no_base`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateStats {
    /// Objects carried.
    pub objects: usize,
    /// Of which commits (`to` and those between).
    pub commits: usize,
    /// Of which trees.
    pub trees: usize,
    /// Of which blobs.
    pub blobs: usize,
    /// Sum of the objects' sizes.
    pub bytes_raw: u64,
    /// Sum of the frames' sizes.
    pub bytes_compressed: u64,
    /// Compressed against A's object at the same path (for the commit:
    /// against A's commit).
    pub by_path: usize,
    /// Compressed against a file of A with the same name elsewhere (a
    /// rename or move), or a tree against a same-named directory.
    pub by_name: usize,
    /// Compressed against the blob of A with the same extension and the
    /// closest size (moved content under a new name).
    pub by_size: usize,
    /// Compressed on their own.
    pub no_base: usize,
    /// Of `no_base`, objects that had a base but compressed smaller without.
    pub base_dropped: usize,
}

impl UpdateStats {
    fn count(&mut self, rule: Rule) {
        match rule {
            Rule::Path => self.by_path += 1,
            Rule::Name => self.by_name += 1,
            Rule::Size => self.by_size += 1,
        }
    }
}

/// How a base was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Path,
    Name,
    Size,
}

/// Most commits one update carries (those of `to` that `from` lacks): a
/// reader further behind than this takes the commit torrent instead.
pub const MAX_COMMITS: usize = 10_000;

/// Builds the update from `from` to `to`. Both commits and every object
/// they reach must be in `repo`.
///
/// The update carries every commit reachable from `to` but not from `from`
/// (as `git rev-list to ^from`), oldest first, each after the trees and
/// blobs it brings: so a reader gets the history between, can prove that
/// `to` descends from `from`, and `git log` works as after `git fetch`.
/// Objects of each commit are taken in one depth-first walk of its trees,
/// entries in stored order, that never enters a tree the reader has (A's
/// trees and blobs are collected first) or that the update already carries:
/// each new blob when first met, each new tree after its entries, the commit
/// last. A base is chosen per object, as Git chooses delta bases: for a blob,
/// the newest earlier version at the same path (in A, or carried earlier),
/// else A's blob with the same file name whose size is closest, else A's blob
/// with the same extension (or none) whose size is closest, within a factor
/// of two; for a tree, the newest earlier tree at the same path, else a
/// same-named one of A; for a commit, the commit before it in the update
/// (`from` for the first). Ties go to the first met in A's walk. A patched
/// frame is kept only when it is smaller than the object compressed on its
/// own (checked unless the patched frame is at most 1/8 of the object: the
/// prefix only adds matches, so compressing alone cannot plausibly do better
/// there).
pub fn build_update(
    repo: &git2::Repository,
    from: ObjectId,
    to: ObjectId,
    settings: &UpdateSettings,
) -> Result<Update, UpdateError> {
    build(repo, from, to, settings, None)
}

/// The update from [`NOTHING`] to `to`: `to`'s history, or with `depth`
/// only the commits fewer than `depth` parent steps from `to` (Git's
/// `--depth`: 1 is `to` alone), whose parents then become the reader's
/// shallow boundary. Otherwise as [`build_update`].
pub fn build_history(
    repo: &git2::Repository,
    to: ObjectId,
    settings: &UpdateSettings,
    depth: Option<usize>,
) -> Result<Update, UpdateError> {
    build(repo, NOTHING, to, settings, depth)
}

fn build(
    repo: &git2::Repository,
    from: ObjectId,
    to: ObjectId,
    settings: &UpdateSettings,
    depth: Option<usize>,
) -> Result<Update, UpdateError> {
    if from == to {
        return Err(UpdateError::SameCommit(from));
    }
    let odb = repo.odb().map_err(|source| UpdateError::Git {
        what: "object database of",
        id: to,
        source,
    })?;
    read(&odb, to, ObjectKind::Commit, "commit")?;
    let tree_of = |id: ObjectId, raw: &[u8]| {
        object::commit_tree(raw).map_err(|source| UpdateError::BadCommit { id, source })
    };
    let commits = match depth {
        Some(depth) => commits_within(repo, to, depth)?,
        None => commits_between(repo, from, to)?,
    };
    let a = if from == NOTHING {
        Side::default()
    } else {
        let from_raw = read(&odb, from, ObjectKind::Commit, "commit")?;
        Side::walk(&odb, tree_of(from, &from_raw)?)?
    };

    let mut builder = Builder {
        odb: &odb,
        a,
        settings,
        limits: Limits::default(),
        emitted: HashSet::new(),
        sizes: HashMap::new(),
        objects: Vec::new(),
        stats: UpdateStats::default(),
        entries: 0,
    };
    let mut previous = (from != NOTHING).then_some(from);
    for commit in commits {
        let raw = read(&odb, commit, ObjectKind::Commit, "commit")?;
        builder.visit_tree(tree_of(commit, &raw)?, Vec::new(), b"", 0)?;
        builder.add(
            ObjectKind::Commit,
            commit,
            &raw,
            previous.map(|previous| (previous, Rule::Path)),
        )?;
        builder.stats.commits += 1;
        previous = Some(commit);
    }

    let frames: Vec<Frame<'_>> = builder
        .objects
        .iter()
        .map(|o| Frame {
            kind: o.kind,
            id: o.id,
            size: o.size,
            base: o.base,
            frame: &o.frame,
        })
        .collect();
    let bytes = payload::encode(from, to, &frames)?;
    // Decoding our own output is cheap next to compressing it, and it
    // guarantees that whatever a publisher seeds, readers accept.
    payload::decode(&bytes, &builder.limits)?;
    Ok(Update {
        from,
        to,
        payload: bytes,
        stats: builder.stats,
    })
}

/// The commits reachable from `to` and not from `from`, oldest first
/// (parents before children), `to` last; at most [`MAX_COMMITS`]. Just
/// `to` when `from` already reaches it.
fn commits_between(
    repo: &git2::Repository,
    from: ObjectId,
    to: ObjectId,
) -> Result<Vec<ObjectId>, UpdateError> {
    let git_error = |source| UpdateError::Git {
        what: "history of",
        id: to,
        source,
    };
    let mut walk = repo.revwalk().map_err(git_error)?;
    walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)
        .map_err(git_error)?;
    walk.push(to.to_git()).map_err(git_error)?;
    if from != NOTHING {
        walk.hide(from.to_git()).map_err(git_error)?;
    }
    let mut commits = Vec::new();
    for oid in walk {
        let oid = oid.map_err(git_error)?;
        let id = ObjectId::from_git(oid).ok_or_else(|| UpdateError::Git {
            what: "SHA-1 history of",
            id: to,
            source: git2::Error::from_str("a commit id is not SHA-1"),
        })?;
        if commits.len() == MAX_COMMITS {
            return Err(too_many_commits(
                to,
                "the number of commits since the update's `from`",
            ));
        }
        commits.push(id);
    }
    // `to` is reachable from `from` (an update backwards): only `to` itself
    // travels, with what its tree needs beyond `from`'s.
    if commits.last() != Some(&to) {
        commits = vec![to];
    }
    Ok(commits)
}

/// An update to `to` would carry more than [`MAX_COMMITS`] commits.
fn too_many_commits(to: ObjectId, what: &'static str) -> UpdateError {
    UpdateError::TooLarge {
        kind: ObjectKind::Commit,
        id: to,
        what,
        size: MAX_COMMITS as u64 + 1,
        limit: MAX_COMMITS as u64,
    }
}

/// The commits fewer than `depth` parent steps from `to`, parents before
/// children (a depth-first post-order over parents in stored order, so the
/// same on every machine), `to` last; at most [`MAX_COMMITS`].
fn commits_within(
    repo: &git2::Repository,
    to: ObjectId,
    depth: usize,
) -> Result<Vec<ObjectId>, UpdateError> {
    let git_error = |source| UpdateError::Git {
        what: "history of",
        id: to,
        source,
    };
    // The shortest distance of each commit within reach, breadth first.
    let mut distance: HashMap<ObjectId, usize> = HashMap::from([(to, 0)]);
    let mut parents: HashMap<ObjectId, Vec<ObjectId>> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([to]);
    while let Some(id) = queue.pop_front() {
        let at = distance[&id];
        let commit = repo.find_commit(id.to_git()).map_err(git_error)?;
        let ids: Vec<ObjectId> = commit.parent_ids().filter_map(ObjectId::from_git).collect();
        if at + 1 < depth {
            for &parent in &ids {
                if !distance.contains_key(&parent) {
                    if distance.len() == MAX_COMMITS {
                        return Err(too_many_commits(
                            to,
                            "the number of commits within the depth",
                        ));
                    }
                    distance.insert(parent, at + 1);
                    queue.push_back(parent);
                }
            }
        }
        parents.insert(id, ids);
    }
    let mut order = Vec::with_capacity(distance.len());
    let mut placed: HashSet<ObjectId> = HashSet::new();
    let mut stack = vec![(to, false)];
    while let Some((id, expanded)) = stack.pop() {
        if placed.contains(&id) {
            continue;
        }
        if expanded {
            placed.insert(id);
            order.push(id);
            continue;
        }
        stack.push((id, true));
        for parent in parents.get(&id).into_iter().flatten().rev() {
            if distance.contains_key(parent) && !placed.contains(parent) {
                stack.push((*parent, false));
            }
        }
    }
    Ok(order)
}

/// What A has, and where: every tree and blob id, and the indexes the base
/// choice looks in. Lists are in A's walk order, so ties break the same way
/// on every machine. Empty for an update from [`NOTHING`].
#[derive(Default)]
struct Side {
    trees: HashSet<ObjectId>,
    blobs: HashSet<ObjectId>,
    tree_at: HashMap<Vec<u8>, ObjectId>,
    tree_named: HashMap<Vec<u8>, ObjectId>,
    blob_at: HashMap<Vec<u8>, ObjectId>,
    blob_named: HashMap<Vec<u8>, Vec<ObjectId>>,
    blob_ext: HashMap<Vec<u8>, Vec<ObjectId>>,
}

impl Side {
    fn walk(odb: &git2::Odb<'_>, root: ObjectId) -> Result<Self, UpdateError> {
        let mut raw_trees = HashMap::new();
        let mut todo = vec![root];
        while let Some(id) = todo.pop() {
            if raw_trees.contains_key(&id) {
                continue;
            }
            let raw = read(odb, id, ObjectKind::Tree, "tree")?;
            for entry in parse(id, &raw)? {
                if entry.kind == EntryKind::Tree {
                    todo.push(entry.id);
                }
            }
            raw_trees.insert(id, raw);
        }
        let mut side = Side {
            trees: raw_trees.keys().copied().collect(),
            blobs: HashSet::new(),
            tree_at: HashMap::from([(Vec::new(), root)]),
            tree_named: HashMap::new(),
            blob_at: HashMap::new(),
            blob_named: HashMap::new(),
            blob_ext: HashMap::new(),
        };
        let mut entries = 0usize;
        side.index(&raw_trees, root, &[], 0, &mut entries)?;
        Ok(side)
    }

    fn index(
        &mut self,
        trees: &HashMap<ObjectId, Vec<u8>>,
        id: ObjectId,
        path: &[u8],
        depth: usize,
        entries: &mut usize,
    ) -> Result<(), UpdateError> {
        if depth > MAX_DEPTH {
            return Err(FormatError::TooDeep(MAX_DEPTH).into());
        }
        let raw = trees.get(&id).map(Vec::as_slice).unwrap_or_default();
        for entry in parse(id, raw)? {
            *entries += 1;
            if *entries > MAX_ENTRIES {
                return Err(FormatError::TooManyEntries(MAX_ENTRIES).into());
            }
            let child = join(path, entry.name);
            match entry.kind {
                EntryKind::Tree => {
                    self.tree_named
                        .entry(entry.name.to_vec())
                        .or_insert(entry.id);
                    self.tree_at.insert(child.clone(), entry.id);
                    self.index(trees, entry.id, &child, depth + 1, entries)?;
                }
                EntryKind::File { .. } | EntryKind::Symlink => {
                    self.blobs.insert(entry.id);
                    self.blob_at.insert(child, entry.id);
                    push_candidate(&mut self.blob_named, entry.name, entry.id);
                    push_candidate(&mut self.blob_ext, extension(entry.name), entry.id);
                }
                EntryKind::Gitlink => {}
            }
        }
        Ok(())
    }
}

fn push_candidate(map: &mut HashMap<Vec<u8>, Vec<ObjectId>>, key: &[u8], id: ObjectId) {
    let list = map.entry(key.to_vec()).or_default();
    if list.len() < MAX_CANDIDATES && !list.contains(&id) {
        list.push(id);
    }
}

/// The extension of a file name: what follows its last dot, when the dot is
/// not the first byte; empty otherwise (files without one are one group).
fn extension(name: &[u8]) -> &[u8] {
    match name.iter().rposition(|&b| b == b'.') {
        Some(i) if i > 0 => &name[i + 1..],
        _ => b"",
    }
}

fn join(path: &[u8], name: &[u8]) -> Vec<u8> {
    let mut child = Vec::with_capacity(path.len() + 1 + name.len());
    if !path.is_empty() {
        child.extend_from_slice(path);
        child.push(b'/');
    }
    child.extend_from_slice(name);
    child
}

struct OwnedFrame {
    kind: ObjectKind,
    id: ObjectId,
    size: u64,
    base: Option<ObjectId>,
    frame: Vec<u8>,
}

struct Builder<'a, 'r> {
    odb: &'a git2::Odb<'r>,
    /// What the reader has, then also what the update carried so far at
    /// each path (the newest version is the best base).
    a: Side,
    settings: &'a UpdateSettings,
    limits: Limits,
    emitted: HashSet<ObjectId>,
    sizes: HashMap<ObjectId, u64>,
    objects: Vec<OwnedFrame>,
    stats: UpdateStats,
    entries: usize,
}

impl Builder<'_, '_> {
    /// Post-order walk of B's trees that A does not have.
    fn visit_tree(
        &mut self,
        id: ObjectId,
        path: Vec<u8>,
        name: &[u8],
        depth: usize,
    ) -> Result<(), UpdateError> {
        if self.a.trees.contains(&id) || self.emitted.contains(&id) {
            return Ok(());
        }
        if depth > MAX_DEPTH {
            return Err(FormatError::TooDeep(MAX_DEPTH).into());
        }
        let raw = read(self.odb, id, ObjectKind::Tree, "tree")?;
        for entry in parse(id, &raw)? {
            self.entries += 1;
            if self.entries > MAX_ENTRIES {
                return Err(FormatError::TooManyEntries(MAX_ENTRIES).into());
            }
            let child = join(&path, entry.name);
            match entry.kind {
                EntryKind::Tree => self.visit_tree(entry.id, child, entry.name, depth + 1)?,
                EntryKind::File { .. } | EntryKind::Symlink => {
                    if !self.a.blobs.contains(&entry.id) && !self.emitted.contains(&entry.id) {
                        self.blob(entry.id, &child, entry.name)?;
                    }
                    self.a.blob_at.insert(child, entry.id);
                }
                EntryKind::Gitlink => {}
            }
        }
        let base = match self.a.tree_at.get(&path) {
            Some(&b) => Some((b, Rule::Path)),
            None => self.a.tree_named.get(name).map(|&b| (b, Rule::Name)),
        };
        self.add(ObjectKind::Tree, id, &raw, base)?;
        self.a.tree_at.insert(path, id);
        Ok(())
    }

    fn blob(&mut self, id: ObjectId, path: &[u8], name: &[u8]) -> Result<(), UpdateError> {
        let size = self.header(id, ObjectKind::Blob)?;
        if size > self.limits.max_object_size {
            return Err(UpdateError::TooLarge {
                kind: ObjectKind::Blob,
                id,
                what: "the object's size",
                size,
                limit: self.limits.max_object_size,
            });
        }
        let data = read(self.odb, id, ObjectKind::Blob, "blob")?;
        let base = self.blob_base(path, name, data.len() as u64)?;
        self.add(ObjectKind::Blob, id, &data, base)
    }

    fn blob_base(
        &mut self,
        path: &[u8],
        name: &[u8],
        size: u64,
    ) -> Result<Option<(ObjectId, Rule)>, UpdateError> {
        if size > self.settings.max_patch_size {
            return Ok(None);
        }
        if let Some(&base) = self.a.blob_at.get(path) {
            return Ok(Some((base, Rule::Path)));
        }
        if let Some(list) = self.a.blob_named.get(name).cloned()
            && let Some(base) = self.closest(&list, size, false)?
        {
            return Ok(Some((base, Rule::Name)));
        }
        if let Some(list) = self.a.blob_ext.get(extension(name)).cloned()
            && let Some(base) = self.closest(&list, size, true)?
        {
            return Ok(Some((base, Rule::Size)));
        }
        Ok(None)
    }

    /// The candidate whose size is closest to `size` (first on ties), within
    /// a factor of two when `similar` is asked for.
    fn closest(
        &mut self,
        list: &[ObjectId],
        size: u64,
        similar: bool,
    ) -> Result<Option<ObjectId>, UpdateError> {
        let mut best: Option<(u64, ObjectId)> = None;
        for &candidate in list {
            let other = self.header(candidate, ObjectKind::Blob)?;
            if other > self.settings.max_patch_size {
                continue;
            }
            if similar && (other.min(size).saturating_mul(2) < other.max(size)) {
                continue;
            }
            let distance = other.abs_diff(size);
            if best.is_none_or(|(d, _)| distance < d) {
                best = Some((distance, candidate));
            }
        }
        Ok(best.map(|(_, id)| id))
    }

    fn header(&mut self, id: ObjectId, kind: ObjectKind) -> Result<u64, UpdateError> {
        if let Some(&size) = self.sizes.get(&id) {
            return Ok(size);
        }
        let (size, actual) =
            self.odb
                .read_header(id.to_git())
                .map_err(|source| UpdateError::Git {
                    what: kind.name(),
                    id,
                    source,
                })?;
        check_kind(id, actual, kind)?;
        self.sizes.insert(id, size as u64);
        Ok(size as u64)
    }

    /// Compresses one object (against `base` when it pays) and appends it.
    fn add(
        &mut self,
        kind: ObjectKind,
        id: ObjectId,
        data: &[u8],
        base: Option<(ObjectId, Rule)>,
    ) -> Result<(), UpdateError> {
        let size = data.len() as u64;
        self.stats.bytes_raw += size;
        if self.objects.len() >= self.limits.max_objects {
            return Err(UpdateError::TooLarge {
                kind,
                id,
                what: "the number of objects",
                size: self.objects.len() as u64 + 1,
                limit: self.limits.max_objects as u64,
            });
        }
        if self.stats.bytes_raw > self.limits.max_total_size {
            return Err(UpdateError::TooLarge {
                kind,
                id,
                what: "the sum of object sizes",
                size: self.stats.bytes_raw,
                limit: self.limits.max_total_size,
            });
        }
        let compress_error = |reason| UpdateError::Compress { kind, id, reason };
        let level = self.settings.level;
        let patched = match base {
            Some((base_id, rule)) if size <= self.settings.max_patch_size => {
                let base_data = read(self.odb, base_id, kind, "base")?;
                let frame = compress(data, Some(&base_data), level).map_err(compress_error)?;
                Some((frame, base_id, rule))
            }
            _ => None,
        };
        let (frame, base) = match patched {
            // The base paid off so well that compressing alone cannot
            // plausibly beat it (the prefix only adds matches): skip that
            // second compression, the costly one for large objects.
            Some((frame, base_id, rule))
                if frame.len().saturating_mul(PLAIN_CHECK_RATIO) <= data.len() =>
            {
                self.stats.count(rule);
                (frame, Some(base_id))
            }
            Some((frame, base_id, rule)) => {
                let plain = compress(data, None, level).map_err(compress_error)?;
                if frame.len() < plain.len() {
                    self.stats.count(rule);
                    (frame, Some(base_id))
                } else {
                    self.stats.no_base += 1;
                    self.stats.base_dropped += 1;
                    (plain, None)
                }
            }
            None => {
                self.stats.no_base += 1;
                (compress(data, None, level).map_err(compress_error)?, None)
            }
        };
        self.stats.objects += 1;
        match kind {
            ObjectKind::Tree => self.stats.trees += 1,
            ObjectKind::Blob => self.stats.blobs += 1,
            ObjectKind::Commit => {}
        }
        self.stats.bytes_compressed += frame.len() as u64;
        self.emitted.insert(id);
        self.objects.push(OwnedFrame {
            kind,
            id,
            size,
            base,
            frame,
        });
        Ok(())
    }
}

/// The window log that lets every match reach back over the whole base:
/// `ceil(log2(base + object))`, within zstd's bounds.
fn window_log(total: usize) -> u32 {
    const MIN: u32 = 10;
    const MAX: u32 = 31;
    let bits = usize::BITS - total.saturating_sub(1).leading_zeros();
    bits.clamp(MIN, MAX)
}

/// One zstd frame of `data`, with `base` as a reference prefix ("patch
/// from") when given: long-distance matching on, a window covering base and
/// object, content size in the header, no checksum (the Git id checks the
/// output). A fresh context per call: no state carries over from one object
/// to the next, so output depends on nothing but the inputs.
pub(super) fn compress(data: &[u8], base: Option<&[u8]>, level: i32) -> Result<Vec<u8>, String> {
    use zstd::zstd_safe::{CCtx, CParameter, get_error_name};
    let err = |code| get_error_name(code).to_owned();
    let mut cctx = CCtx::try_create().ok_or("zstd could not allocate a context")?;
    cctx.set_parameter(CParameter::CompressionLevel(level))
        .map_err(err)?;
    cctx.set_parameter(CParameter::ContentSizeFlag(true))
        .map_err(err)?;
    cctx.set_parameter(CParameter::ChecksumFlag(false))
        .map_err(err)?;
    if let Some(base) = base {
        cctx.set_parameter(CParameter::WindowLog(window_log(
            base.len().saturating_add(data.len()),
        )))
        .map_err(err)?;
        cctx.set_parameter(CParameter::EnableLongDistanceMatching(true))
            .map_err(err)?;
        cctx.ref_prefix(base).map_err(err)?;
    }
    let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(data.len()));
    cctx.compress2(&mut out, data).map_err(err)?;
    Ok(out)
}

fn parse(id: ObjectId, raw: &[u8]) -> Result<Vec<object::TreeEntry<'_>>, UpdateError> {
    object::parse_tree(raw).map_err(|source| UpdateError::BadTree { id, source })
}

/// Reads an object, checking its kind.
pub(super) fn read(
    odb: &git2::Odb<'_>,
    id: ObjectId,
    kind: ObjectKind,
    what: &'static str,
) -> Result<Vec<u8>, UpdateError> {
    let object = odb
        .read(id.to_git())
        .map_err(|source| UpdateError::Git { what, id, source })?;
    check_kind(id, object.kind(), kind)?;
    Ok(object.data().to_vec())
}

pub(super) fn git_kind(kind: ObjectKind) -> ObjectType {
    match kind {
        ObjectKind::Commit => ObjectType::Commit,
        ObjectKind::Tree => ObjectType::Tree,
        ObjectKind::Blob => ObjectType::Blob,
    }
}

pub(super) fn check_kind(
    id: ObjectId,
    actual: ObjectType,
    expected: ObjectKind,
) -> Result<(), UpdateError> {
    if actual != git_kind(expected) {
        return Err(UpdateError::WrongKind {
            id,
            expected: expected.name(),
            actual: actual.str().to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions() {
        assert_eq!(extension(b"a.tar.gz"), b"gz");
        assert_eq!(extension(b".gitignore"), b"");
        assert_eq!(extension(b"Makefile"), b"");
        assert_eq!(extension(b"x."), b"");
    }

    #[test]
    fn window_covers_base_and_object() {
        assert_eq!(window_log(0), 10);
        assert_eq!(window_log(1024), 10);
        assert_eq!(window_log(1025), 11);
        assert_eq!(window_log(1 << 20), 20);
        assert_eq!(window_log((1 << 20) + 1), 21);
        assert_eq!(window_log(usize::MAX), 31);
    }

    #[test]
    fn patching_beats_compressing_alone_and_round_trips() {
        let mut state = 0x1234_5678_u64;
        let base: Vec<u8> = (0..200_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let mut edited = base.clone();
        edited.splice(100..100, b"inserted near the start".iter().copied());
        let patched = compress(&edited, Some(&base), 3).expect("compresses");
        let plain = compress(&edited, None, 3).expect("compresses");
        assert!(patched.len() < 200, "{}", patched.len());
        assert!(plain.len() > 150_000, "{}", plain.len());
        let again = compress(&edited, Some(&base), 3).expect("compresses");
        assert_eq!(patched, again, "compression is deterministic");
        let out = super::super::apply::decompress(&patched, Some(&base), edited.len() as u64)
            .expect("decompresses");
        assert_eq!(out, edited);
        assert!(
            super::super::apply::decompress(&patched, None, edited.len() as u64).is_err(),
            "the base is needed"
        );
    }
}
