//! Where an older version of a file may be: an index of the blobs in the
//! trees of the local commits scavenging starts from, by path, by file name
//! and by extension.
//!
//! Built once per fetch, for the files the fetch is missing. Commits share
//! most of their trees, so each tree is read once, by id, however many
//! commits name it; only entries whose name or extension some missing file
//! has are kept, and every list is bounded. Its cost is therefore about one
//! walk of one commit, plus the trees that differ between the commits.
//!
//! A subtree reached again under another path (a moved directory) is not
//! walked again: its blobs stay indexed under the first path, where the file
//! name still finds them.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};

use git2::Oid;

use crate::torrent::format::MAX_ENTRIES;

/// Most tree entries looked at while indexing: two walks of a commit at the
/// v1 limit of entries.
pub const MAX_ENTRIES_VISITED: usize = 2 * MAX_ENTRIES;
/// Most distinct blobs kept per path (one per base commit at most).
pub const MAX_PER_PATH: usize = 64;
/// Most (path, blob) sightings kept per file name.
pub const MAX_PER_NAME: usize = 256;
/// Most blobs kept per extension; each costs one object header read the
/// first time a file with that extension is looked up.
pub const MAX_PER_EXTENSION: usize = 1024;
/// Same-path versions tried before any other kind of candidate: the newest
/// are the likeliest to match, and the rest of the slots go to renames.
const SAME_PATH_FIRST: usize = 2;
/// Longest extension indexed: longer "extensions" are names with a dot.
const MAX_EXTENSION_LEN: usize = 16;

/// A blob seen at a path.
#[derive(Debug)]
struct Sighting {
    path: Vec<u8>,
    blob: Oid,
}

/// Blobs of the base commits that may be older versions of missing files.
#[derive(Debug, Default)]
pub struct BlobIndex {
    /// Keyed by the missing files' paths.
    by_path: HashMap<Vec<u8>, Vec<Oid>>,
    /// Keyed by the missing files' names.
    by_name: HashMap<Vec<u8>, Vec<Sighting>>,
    /// Keyed by the missing files' lowercase extensions; the set dedupes.
    by_extension: HashMap<Vec<u8>, (Vec<Oid>, HashSet<Oid>)>,
    /// Blob sizes read so far (`None`: unreadable, never a candidate).
    sizes: HashMap<Oid, Option<u64>>,
    /// Trees read while building.
    pub trees_read: usize,
}

impl BlobIndex {
    /// Indexes the blobs under `roots` (root tree ids, the most wanted
    /// first) that could be older versions of the files at `paths` (raw
    /// paths joined by `/`). Unreadable trees are skipped.
    pub fn build<'a>(
        repo: &git2::Repository,
        roots: &[Oid],
        paths: impl IntoIterator<Item = &'a [u8]>,
    ) -> Self {
        let mut index = Self::default();
        for path in paths {
            let name = file_name(path);
            index.by_path.entry(path.to_vec()).or_default();
            index.by_name.entry(name.to_vec()).or_default();
            if let Some(ext) = extension(name) {
                index.by_extension.entry(ext.into_owned()).or_default();
            }
        }
        let mut seen_trees = HashSet::new();
        let mut visited = 0usize;
        'roots: for &root in roots {
            if !seen_trees.insert(root) {
                continue;
            }
            let mut stack = vec![(root, Vec::new())];
            while let Some((id, dir)) = stack.pop() {
                let tree = match repo.find_tree(id) {
                    Ok(tree) => tree,
                    Err(error) => {
                        tracing::debug!(tree = %id, %error, "skipping an unreadable tree");
                        continue;
                    }
                };
                index.trees_read += 1;
                for entry in tree.iter() {
                    visited += 1;
                    if visited > MAX_ENTRIES_VISITED {
                        tracing::debug!(visited, "tree walk bound reached");
                        break 'roots;
                    }
                    let name = entry.name_bytes();
                    match entry.filemode() {
                        // A subtree already seen (in this commit or another) is skipped.
                        0o040000 if seen_trees.insert(entry.id()) => {
                            stack.push((entry.id(), join(&dir, name)));
                        }
                        0o100644 | 0o100755 | 0o100664 => index.record(&dir, name, entry.id()),
                        // Symlinks travel in the metadata; gitlinks have no bytes.
                        _ => {}
                    }
                }
            }
        }
        index
    }

    /// Keeps a blob entry if some missing file could use it.
    fn record(&mut self, dir: &[u8], name: &[u8], blob: Oid) {
        let ext = extension(name);
        let by_ext = ext
            .as_deref()
            .and_then(|ext| self.by_extension.get_mut(ext));
        let by_name = self.by_name.get_mut(name);
        if by_name.is_none() && by_ext.is_none() {
            return;
        }
        if let Some((list, seen)) = by_ext
            && list.len() < MAX_PER_EXTENSION
            && seen.insert(blob)
        {
            list.push(blob);
        }
        let path = join(dir, name);
        if let Some(list) = by_name
            && list.len() < MAX_PER_NAME
            && !list.iter().any(|s| s.blob == blob && s.path == path)
        {
            list.push(Sighting {
                path: path.clone(),
                blob,
            });
        }
        if let Some(list) = self.by_path.get_mut(&path)
            && list.len() < MAX_PER_PATH
            && !list.contains(&blob)
        {
            list.push(blob);
        }
    }

    /// Up to `limit` distinct blobs worth scanning for the file at `path`
    /// (`length` bytes, blob `target`), best first, with their sizes. The
    /// order: the two newest versions at the same path; the same name in
    /// another directory (directories that differ only in version numbers
    /// first, as `pkg-1.2.dist-info/` → `pkg-1.3.dist-info/`, then by shared
    /// directories, then by closest size); the same extension, closest size
    /// first; then older versions at the same path. Apart from versions at
    /// the same path or a version-renamed directory, a candidate must be
    /// within twice the file's size either way. Blobs shorter than
    /// `smallest_piece` cannot hold a piece and are left out.
    pub fn candidates(
        &mut self,
        odb: &git2::Odb<'_>,
        path: &[u8],
        length: u64,
        smallest_piece: u64,
        target: Oid,
        limit: usize,
    ) -> Vec<(Oid, u64)> {
        let name = file_name(path);
        let same_path = self.by_path.get(path).map(Vec::as_slice).unwrap_or(&[]);

        let mut same_name = Vec::new();
        for sighting in self.by_name.get(name).into_iter().flatten() {
            if sighting.path == path {
                continue;
            }
            let Some(size) = size_of(&mut self.sizes, odb, sighting.blob) else {
                continue;
            };
            let alike = version_alike(&sighting.path, path);
            if alike || within_twice(size, length) {
                let rank = (
                    Reverse(alike),
                    Reverse(shared_directories(&sighting.path, path)),
                    size.abs_diff(length),
                );
                same_name.push((rank, sighting.blob));
            }
        }
        same_name.sort_by_key(|&(rank, _)| rank);

        let mut same_extension = Vec::new();
        if let Some(ext) = extension(name)
            && let Some((blobs, _)) = self.by_extension.get(ext.as_ref())
        {
            for &blob in blobs {
                if let Some(size) = size_of(&mut self.sizes, odb, blob)
                    && within_twice(size, length)
                {
                    same_extension.push((size.abs_diff(length), blob));
                }
            }
        }
        // Stable: equally close blobs stay in walk order, newest commits first.
        same_extension.sort_by_key(|&(distance, _)| distance);

        let order = same_path
            .iter()
            .take(SAME_PATH_FIRST)
            .copied()
            .chain(same_name.into_iter().map(|(_, blob)| blob))
            .chain(same_extension.into_iter().map(|(_, blob)| blob))
            .chain(same_path.iter().skip(SAME_PATH_FIRST).copied());
        let mut chosen = Vec::new();
        let mut seen = HashSet::new();
        for blob in order {
            if chosen.len() >= limit {
                break;
            }
            if blob == target || !seen.insert(blob) {
                continue;
            }
            if let Some(size) = size_of(&mut self.sizes, odb, blob)
                && size >= smallest_piece
            {
                chosen.push((blob, size));
            }
        }
        chosen
    }
}

/// A blob's size from its header, read once.
fn size_of(sizes: &mut HashMap<Oid, Option<u64>>, odb: &git2::Odb<'_>, blob: Oid) -> Option<u64> {
    *sizes
        .entry(blob)
        .or_insert_with(|| match odb.read_header(blob) {
            Ok((size, git2::ObjectType::Blob)) => Some(size as u64),
            Ok(_) => None,
            Err(error) => {
                tracing::debug!(%blob, %error, "skipping an unreadable blob");
                None
            }
        })
}

/// Whether sizes `a` and `b` are within a factor of two of each other.
fn within_twice(a: u64, b: u64) -> bool {
    a <= b.saturating_mul(2) && b <= a.saturating_mul(2)
}

/// `dir/name`, or `name` at the root.
fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        return name.to_vec();
    }
    let mut out = Vec::with_capacity(dir.len() + 1 + name.len());
    out.extend_from_slice(dir);
    out.push(b'/');
    out.extend_from_slice(name);
    out
}

/// The last component of a `/`-joined path.
fn file_name(path: &[u8]) -> &[u8] {
    path.rsplit(|&b| b == b'/').next().unwrap_or(path)
}

/// The directory components of a `/`-joined path.
fn directories(path: &[u8]) -> Vec<&[u8]> {
    let mut parts: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
    parts.pop();
    parts
}

/// The lowercase extension of a file name (`gz` of `a.tar.gz`); none for
/// names without a dot, dot files, a trailing dot, or over 16 bytes.
fn extension(name: &[u8]) -> Option<Cow<'_, [u8]>> {
    let dot = name.iter().rposition(|&b| b == b'.')?;
    let ext = &name[dot + 1..];
    if dot == 0 || ext.is_empty() || ext.len() > MAX_EXTENSION_LEN {
        return None;
    }
    Some(if ext.iter().any(u8::is_ascii_uppercase) {
        Cow::Owned(ext.to_ascii_lowercase())
    } else {
        Cow::Borrowed(ext)
    })
}

/// A path component with every run of digits written as one `0`, so that
/// `pkg-1.2.dist-info` and `pkg-1.10.dist-info` compare equal.
fn without_versions(component: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(component.len());
    for &b in component {
        if !b.is_ascii_digit() {
            out.push(b);
        } else if out.last() != Some(&b'0') {
            // Only a run of digits leaves a `0`: no other byte is one.
            out.push(b'0');
        }
    }
    out
}

/// Whether two different paths have the same directories once version
/// numbers are ignored (and the same number of them).
fn version_alike(a: &[u8], b: &[u8]) -> bool {
    let (da, db) = (directories(a), directories(b));
    da != db
        && da.len() == db.len()
        && da
            .iter()
            .zip(&db)
            .all(|(x, y)| x == y || without_versions(x) == without_versions(y))
}

/// How many directories two paths share at the front plus at the back:
/// `src/old/x.rs` and `src/new/x.rs` share one, `a/b/x` and `c/b/x` one.
fn shared_directories(a: &[u8], b: &[u8]) -> usize {
    let (da, db) = (directories(a), directories(b));
    let front = da.iter().zip(&db).take_while(|(x, y)| x == y).count();
    let back = da
        .iter()
        .rev()
        .zip(db.iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    (front + back).min(da.len().max(db.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions() {
        assert_eq!(extension(b"a.tar.gz").as_deref(), Some(&b"gz"[..]));
        assert_eq!(extension(b"IMG.JPG").as_deref(), Some(&b"jpg"[..]));
        assert_eq!(extension(b".gitignore"), None);
        assert_eq!(extension(b"RECORD"), None);
        assert_eq!(extension(b"trailing."), None);
        assert_eq!(extension(b"a.thisisnotanextension"), None);
    }

    #[test]
    fn names_and_directories() {
        assert_eq!(file_name(b"a/b/c.txt"), b"c.txt");
        assert_eq!(file_name(b"c.txt"), b"c.txt");
        assert_eq!(directories(b"a/b/c.txt"), vec![&b"a"[..], b"b"]);
        assert!(directories(b"c.txt").is_empty());
        assert_eq!(join(b"", b"x"), b"x");
        assert_eq!(join(b"a/b", b"x"), b"a/b/x");
    }

    #[test]
    fn version_numbers_are_ignored_in_directories() {
        assert_eq!(
            without_versions(b"pkg-1.10.dist-info"),
            b"pkg-0.0.dist-info"
        );
        assert_eq!(without_versions(b"v2024"), b"v0");
        assert!(version_alike(
            b"site/a-1.0.dist-info/RECORD",
            b"site/a-1.1.dist-info/RECORD"
        ));
        assert!(!version_alike(
            b"site/a-1.0.dist-info/RECORD",
            b"site/b-1.1.dist-info/RECORD"
        ));
        assert!(!version_alike(b"x/RECORD", b"x/RECORD"));
        assert!(!version_alike(b"a-1/RECORD", b"a-1/b/RECORD"));
    }

    #[test]
    fn shared_directories_count_front_and_back() {
        assert_eq!(shared_directories(b"src/old/x.rs", b"src/new/x.rs"), 1);
        assert_eq!(shared_directories(b"a/b/x", b"c/b/x"), 1);
        assert_eq!(shared_directories(b"a/b/x", b"a/b/x"), 2);
        assert_eq!(shared_directories(b"x", b"y/x"), 0);
    }

    #[test]
    fn twice() {
        assert!(within_twice(100, 200) && within_twice(200, 100));
        assert!(!within_twice(100, 201) && !within_twice(0, 1));
        assert!(within_twice(0, 0));
    }
}
