//! The walk that turns a commit's trees into the ordered list of torrent
//! files, shared by the builder and the parser so both agree by construction.

use std::collections::HashMap;

use super::{FormatError, MAX_DEPTH, MAX_ENTRIES};
use crate::git::object::{self, EntryKind, ObjectId};

/// A blob that becomes a file of the torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutFile {
    /// Raw path components from the root tree.
    pub path: Vec<Vec<u8>>,
    /// The blob holding the file's bytes.
    pub blob: ObjectId,
    /// Whether the mode has the execute bit.
    pub executable: bool,
}

/// A symlink; its target travels inline in the metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutLink {
    /// Raw path components from the root tree.
    pub path: Vec<Vec<u8>>,
    /// The blob holding the target.
    pub blob: ObjectId,
}

/// Everything the trees of one commit say, in walk order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// Regular files, depth first in tree order.
    pub files: Vec<LayoutFile>,
    /// Symlinks, depth first in tree order.
    pub links: Vec<LayoutLink>,
    /// Every distinct tree id, in order of first visit (root first).
    pub trees: Vec<ObjectId>,
}

/// Walks from `root` through `trees` (id -> raw tree), depth first, entries in
/// the order each tree stores them. Bounded by `MAX_DEPTH` and `MAX_ENTRIES`.
pub fn walk(root: ObjectId, trees: &HashMap<ObjectId, Vec<u8>>) -> Result<Layout, FormatError> {
    let mut layout = Layout::default();
    let mut seen = std::collections::HashSet::new();
    let mut entries_seen = 0usize;
    // Each frame: path of the tree, its parsed entries, next entry index.
    let mut stack: Vec<(Vec<Vec<u8>>, Vec<object::TreeEntry<'_>>, usize)> = Vec::new();
    stack.push((Vec::new(), open(root, trees, &mut seen, &mut layout)?, 0));
    while let Some((path, entries, next)) = stack.last_mut() {
        let Some(entry) = entries.get(*next).cloned() else {
            stack.pop();
            continue;
        };
        *next += 1;
        entries_seen += 1;
        if entries_seen > MAX_ENTRIES {
            return Err(FormatError::TooManyEntries(MAX_ENTRIES));
        }
        let mut child = path.clone();
        child.push(entry.name.to_vec());
        match entry.kind {
            EntryKind::Tree => {
                if child.len() > MAX_DEPTH {
                    return Err(FormatError::TooDeep(MAX_DEPTH));
                }
                let sub = open(entry.id, trees, &mut seen, &mut layout)?;
                stack.push((child, sub, 0));
            }
            EntryKind::File { executable } => layout.files.push(LayoutFile {
                path: child,
                blob: entry.id,
                executable,
            }),
            EntryKind::Symlink => layout.links.push(LayoutLink {
                path: child,
                blob: entry.id,
            }),
            EntryKind::Gitlink => {}
        }
    }
    Ok(layout)
}

fn open<'t>(
    id: ObjectId,
    trees: &'t HashMap<ObjectId, Vec<u8>>,
    seen: &mut std::collections::HashSet<ObjectId>,
    layout: &mut Layout,
) -> Result<Vec<object::TreeEntry<'t>>, FormatError> {
    let raw = trees.get(&id).ok_or(FormatError::MissingTree(id))?;
    if seen.insert(id) {
        layout.trees.push(id);
    }
    object::parse_tree(raw).map_err(|source| FormatError::BadTree { id, source })
}
