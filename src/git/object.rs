//! Raw Git objects: ids, tree entries and commit headers, parsed from bytes.
//!
//! Pure functions, no repository. A commit torrent carries raw commit and tree
//! objects; everything here must accept exactly what Git hashes and refuse
//! anything that could smuggle a path out of a checkout.

use sha1::{Digest, Sha1};
use std::fmt;
use xus_codec::hex::Case;

/// A SHA-1 Git object id (commit, tree or blob). A torrent's infohash is
/// [`crate::torrent::info_hash::InfoHash`], a type of its own.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId(pub [u8; 20]);

impl ObjectId {
    /// The id Git gives an object of `kind` ("blob", "tree", "commit") holding `data`.
    pub fn for_object(kind: &str, data: &[u8]) -> Self {
        let mut hasher = object_hasher(kind, data.len() as u64);
        hasher.update(data);
        Self(hasher.finalize().into())
    }

    /// The git2 form.
    pub fn to_git(self) -> git2::Oid {
        // A 20-byte slice is always a valid SHA-1 oid.
        git2::Oid::from_bytes(&self.0).expect("20 bytes make a SHA-1 oid")
    }

    /// From git2's form; `None` for ids that are not SHA-1.
    pub fn from_git(oid: git2::Oid) -> Option<Self> {
        Self::from_slice(oid.as_bytes())
    }
}

/// The text forms every 20-byte SHA-1 id of xus shares: strict lowercase
/// hex (what Git and xus print and store), hex in an explicit case for text
/// from people or other programs, raw bytes, and `Display`. One
/// implementation for [`ObjectId`] and the torrent layer's `InfoHash`,
/// which stay distinct types so that one is never passed for the other.
macro_rules! sha1_id_text {
    ($ty:ident) => {
        impl $ty {
            /// Parses 40 lowercase hex digits, the form xus prints and
            /// stores; anything else (uppercase, a sign, another length) is
            /// refused. Text from people or other programs goes through
            /// `from_hex_case` with the case its caller allows.
            pub fn from_hex(hex: &str) -> Option<Self> {
                Self::from_hex_case(hex, xus_codec::hex::Case::Lower)
            }

            /// Parses 40 hex digits whose letters are in `case`; no other
            /// spelling.
            pub fn from_hex_case(hex: &str, case: xus_codec::hex::Case) -> Option<Self> {
                xus_codec::hex::decode_array_case(hex, case).ok().map(Self)
            }

            /// Takes exactly 20 raw bytes.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                bytes.try_into().ok().map(Self)
            }

            /// Lowercase hex.
            pub fn to_hex(&self) -> String {
                xus_codec::hex::encode(&self.0)
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        /// As its lowercase hex, the form xus prints (`--json` events).
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.to_hex())
            }
        }
    };
}
pub(crate) use sha1_id_text;

sha1_id_text!(ObjectId);

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A SHA-1 hasher already fed with Git's `"<kind> <len>\0"` header, for
/// hashing large objects as a stream.
pub fn object_hasher(kind: &str, len: u64) -> Sha1 {
    let mut hasher = Sha1::new();
    hasher.update(format!("{kind} {len}\0").as_bytes());
    hasher
}

/// What a tree entry points at, from its mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A subtree (`40000`).
    Tree,
    /// A regular file blob (`100644`, `100755`, and old modes such as `100664`).
    File {
        /// Whether the owner execute bit is set.
        executable: bool,
    },
    /// A symbolic link (`120000`); the blob holds the target.
    Symlink,
    /// A submodule commit (`160000`), not stored in this repository.
    Gitlink,
}

/// One entry of a raw tree object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry<'a> {
    /// The mode exactly as written (octal ASCII).
    pub mode: &'a [u8],
    /// What the mode means.
    pub kind: EntryKind,
    /// The name, raw bytes (not necessarily UTF-8).
    pub name: &'a [u8],
    /// The object the entry points at.
    pub id: ObjectId,
}

/// Why a raw object is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    /// A tree entry that does not parse.
    #[error("malformed tree entry at byte {0}")]
    MalformedTree(usize),
    /// A mode xus does not know how to rebuild.
    #[error("unsupported tree entry mode {0:?}")]
    UnsupportedMode(String),
    /// A name that could escape its directory or land inside `.git`.
    #[error("unsafe path component {0:?} in tree")]
    UnsafeName(String),
    /// Two entries of one tree with the same name.
    #[error("duplicate name {0:?} in tree")]
    DuplicateName(String),
    /// `.gitmodules` (in any spelling a filesystem would open as it) that
    /// is a symbolic link: Git refuses it (`gitmodulesSymlink`), since a
    /// checkout would read submodule settings from wherever it points.
    #[error("{0:?} is a symbolic link; Git refuses a symlinked .gitmodules")]
    SymlinkedGitmodules(String),
    /// A commit without a well-formed `tree` header.
    #[error("commit object has no valid tree header")]
    MalformedCommit,
}

/// Parses every entry of a raw tree object, refusing unsafe names.
pub fn parse_tree(data: &[u8]) -> Result<Vec<TreeEntry<'_>>, ObjectError> {
    let mut entries: Vec<TreeEntry<'_>> = Vec::new();
    let mut names = std::collections::HashSet::new();
    let mut pos = 0;
    while pos < data.len() {
        let start = pos;
        let space = data[pos..]
            .iter()
            .position(|&b| b == b' ')
            .ok_or(ObjectError::MalformedTree(start))?;
        let mode = &data[pos..pos + space];
        pos += space + 1;
        let nul = data[pos..]
            .iter()
            .position(|&b| b == 0)
            .ok_or(ObjectError::MalformedTree(start))?;
        let name = &data[pos..pos + nul];
        pos += nul + 1;
        let id = data
            .get(pos..pos + 20)
            .and_then(ObjectId::from_slice)
            .ok_or(ObjectError::MalformedTree(start))?;
        pos += 20;
        let kind = entry_kind(mode)?;
        check_name(name)?;
        if kind == EntryKind::Symlink && is_dotgitmodules(name) {
            return Err(ObjectError::SymlinkedGitmodules(
                String::from_utf8_lossy(name).into(),
            ));
        }
        if !names.insert(name) {
            return Err(ObjectError::DuplicateName(
                String::from_utf8_lossy(name).into(),
            ));
        }
        entries.push(TreeEntry {
            mode,
            kind,
            name,
            id,
        });
    }
    Ok(entries)
}

fn entry_kind(mode: &[u8]) -> Result<EntryKind, ObjectError> {
    let unsupported = || ObjectError::UnsupportedMode(String::from_utf8_lossy(mode).into());
    if mode.is_empty() || mode.len() > 7 || !mode.iter().all(|b| (b'0'..=b'7').contains(b)) {
        return Err(unsupported());
    }
    let value = mode
        .iter()
        .fold(0u32, |acc, &b| acc * 8 + u32::from(b - b'0'));
    Ok(match value & 0o170000 {
        0o040000 => EntryKind::Tree,
        0o100000 => EntryKind::File {
            executable: value & 0o100 != 0,
        },
        0o120000 => EntryKind::Symlink,
        0o160000 => EntryKind::Gitlink,
        _ => return Err(unsupported()),
    })
}

/// Refuses names that would not stay inside their directory on any common
/// filesystem, and `.git` in every spelling Git itself refuses by default
/// (`core.protectNTFS`, `core.protectHFS`; `git fsck`'s `hasDotgit`): any
/// letter case, NTFS's `git~1` short name, trailing dots and spaces or an
/// alternate data stream (`.git::$INDEX_ALLOCATION`), and HFS+'s ignored
/// code points (`.g\u{200c}it`). A checkout would write into the
/// repository's own `.git`, or Git would refuse it after the refs moved.
pub fn check_name(name: &[u8]) -> Result<(), ObjectError> {
    let unsafe_name = name.is_empty()
        || name == b"."
        || name == b".."
        || name.contains(&b'/')
        || name.contains(&b'\\')
        || name.contains(&0)
        || is_ntfs_dotgit(name)
        || is_hfs_dotgit(name);
    if unsafe_name {
        return Err(ObjectError::UnsafeName(
            String::from_utf8_lossy(name).into(),
        ));
    }
    Ok(())
}

/// Whether NTFS would open `name` as `.git`: up to an alternate data
/// stream's `:`, `.git` or its 8.3 short name `git~1` in any case, followed
/// only by dots and spaces (which NTFS drops). Git's `is_ntfs_dotgit`.
fn is_ntfs_dotgit(name: &[u8]) -> bool {
    let stem = name.split(|&b| b == b':').next().unwrap_or(name);
    let dotgit_then = |prefix: &[u8]| {
        stem.len() >= prefix.len()
            && stem[..prefix.len()].eq_ignore_ascii_case(prefix)
            && only_dots_and_spaces(&stem[prefix.len()..])
    };
    dotgit_then(b".git") || dotgit_then(b"git~1")
}

/// Whether `name` would be read as `.gitmodules` on NTFS or HFS+ (Git's
/// `is_ntfs_dotgitmodules`, `is_hfs_dotgitmodules`).
fn is_dotgitmodules(name: &[u8]) -> bool {
    is_ntfs_dot_generic(name, b"gitmodules", b"gi7eba") || is_hfs_dot(name, "gitmodules")
}

/// Whether NTFS would open `name` as `.<dotted>`: that name in any case,
/// its 8.3 short name (first six letters, `~1` to `~4`), or the hashed
/// fall-back short name (`<prefix>~<digits>`, at most 8 characters), each
/// followed only by dots and spaces up to an alternate data stream's `:`.
/// Git's `is_ntfs_dot_generic`.
fn is_ntfs_dot_generic(name: &[u8], dotted: &[u8], short_prefix: &[u8]) -> bool {
    let stem = name.split(|&b| b == b':').next().unwrap_or(name);
    let after = |len: usize| only_dots_and_spaces(&stem[len..]);
    if stem.len() > dotted.len()
        && stem[0] == b'.'
        && stem[1..=dotted.len()].eq_ignore_ascii_case(dotted)
    {
        return after(dotted.len() + 1);
    }
    if stem.len() >= 8
        && stem[..6].eq_ignore_ascii_case(&dotted[..6])
        && stem[6] == b'~'
        && (b'1'..=b'4').contains(&stem[7])
    {
        return after(8);
    }
    // `<up to 6 letters of the prefix>~<1-9><digits>`, 8 characters in all.
    let Some(short) = stem.get(..8) else {
        return false;
    };
    let Some(tilde) = short.iter().position(|&b| b == b'~') else {
        return false;
    };
    let prefix_ok = tilde <= 6
        && short[..tilde]
            .iter()
            .zip(short_prefix)
            .all(|(&b, &want)| b.is_ascii() && b.to_ascii_lowercase() == want);
    let digits = &short[tilde + 1..];
    prefix_ok
        && digits.first().is_some_and(|d| (b'1'..=b'9').contains(d))
        && digits.iter().all(u8::is_ascii_digit)
        && after(8)
}

fn only_dots_and_spaces(rest: &[u8]) -> bool {
    rest.iter().all(|&b| b == b'.' || b == b' ')
}

/// Whether HFS+ would open `name` as `.git`: `.git` in any case once the
/// code points HFS+ ignores are dropped. Git's `is_hfs_dotgit`; a name that
/// is not UTF-8 cannot be `.git` there.
fn is_hfs_dotgit(name: &[u8]) -> bool {
    is_hfs_dot(name, "git")
}

/// Whether HFS+ would open `name` as `.<dotted>` (`dotted` lowercase ASCII).
fn is_hfs_dot(name: &[u8], dotted: &str) -> bool {
    let Ok(name) = std::str::from_utf8(name) else {
        return false;
    };
    let ignored = |c: &char| {
        matches!(
            *c as u32,
            0x200c..=0x200f | 0x202a..=0x202e | 0x206a..=0x206f | 0xfeff
        )
    };
    let mut chars = name.chars().filter(|c| !ignored(c));
    chars.next() == Some('.')
        && dotted
            .chars()
            .all(|want| chars.next().is_some_and(|c| c.to_ascii_lowercase() == want))
        && chars.next().is_none()
}

/// The tree id named by a raw commit object's first header line.
///
/// The digits may be of either case: Git writes lowercase, but its own parser
/// (`get_oid_hex`, used by `git fsck` too) takes uppercase in object headers,
/// and the commit's bytes are hashed as they are, so the case cannot make
/// two commits pass for one. Signs, spaces and other lengths are refused.
pub fn commit_tree(commit: &[u8]) -> Result<ObjectId, ObjectError> {
    let hex = commit
        .strip_prefix(b"tree ")
        .and_then(|rest| rest.get(..40))
        .filter(|_| commit.get(45) == Some(&b'\n'))
        .and_then(|hex| std::str::from_utf8(hex).ok())
        .ok_or(ObjectError::MalformedCommit)?;
    ObjectId::from_hex_case(hex, Case::Either).ok_or(ObjectError::MalformedCommit)
}

/// The parent ids named by a raw commit object's `parent` header lines, in
/// order. Like [`commit_tree`], either case of hex digits is read, as Git's
/// own parser does; a `parent` line that is not 40 hex digits is refused.
pub fn commit_parents(commit: &[u8]) -> Result<Vec<ObjectId>, ObjectError> {
    commit
        .split(|&b| b == b'\n')
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.strip_prefix(b"parent "))
        .map(|hex| {
            std::str::from_utf8(hex)
                .ok()
                .filter(|hex| hex.len() == 40)
                .and_then(|hex| ObjectId::from_hex_case(hex, Case::Either))
                .ok_or(ObjectError::MalformedCommit)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(mode: &str, name: &[u8], id: u8) -> Vec<u8> {
        let mut v = format!("{mode} ").into_bytes();
        v.extend_from_slice(name);
        v.push(0);
        v.extend_from_slice(&[id; 20]);
        v
    }

    #[test]
    fn empty_blob_id_matches_git() {
        assert_eq!(
            ObjectId::for_object("blob", b"").to_hex(),
            "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
        );
        assert_eq!(
            ObjectId::for_object("tree", b"").to_hex(),
            "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
        );
    }

    #[test]
    fn parses_every_kind() {
        let data = [
            entry("100644", b"a", 1),
            entry("100755", b"b", 2),
            entry("120000", b"c", 3),
            entry("160000", b"d", 4),
            entry("40000", b"e", 5),
            entry("100664", b"\xff", 6),
        ]
        .concat();
        let kinds: Vec<_> = parse_tree(&data)
            .expect("valid")
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            kinds,
            vec![
                EntryKind::File { executable: false },
                EntryKind::File { executable: true },
                EntryKind::Symlink,
                EntryKind::Gitlink,
                EntryKind::Tree,
                EntryKind::File { executable: false },
            ]
        );
    }

    #[test]
    fn refuses_escaping_names_and_bad_modes() {
        for name in [&b".."[..], b".", b".GiT", b"a/b", b"", b"a\\b"] {
            assert!(parse_tree(&entry("100644", name, 1)).is_err(), "{name:?}");
        }
        assert!(parse_tree(&entry("999", b"x", 1)).is_err());
        assert!(parse_tree(&entry("20000", b"x", 1)).is_err());
        assert!(
            parse_tree(&[entry("100644", b"x", 1), entry("100644", b"x", 2)].concat()).is_err()
        );
        assert!(parse_tree(b"100644 x\0short").is_err());
    }

    #[test]
    fn refuses_every_spelling_of_dotgit_that_git_refuses() {
        for name in [
            ".git",
            ".GIT",
            "git~1",
            "GIT~1",
            ".git.",
            ".git ",
            ".git. . ",
            "git~1..",
            ".git::$INDEX_ALLOCATION",
            ".git:stream",
            ".g\u{200c}it",
            "\u{feff}.GI\u{200d}T",
            ".git\u{206f}",
        ] {
            assert!(
                parse_tree(&entry("040000", name.as_bytes(), 1)).is_err(),
                "{name:?}"
            );
        }
        for name in [
            ".github",
            ".gitignore",
            ".git x",
            "git~2",
            "git~10",
            "git",
            ".gi",
            "x.git",
            ".g\u{200b}it",
            "\u{e9}.git",
        ] {
            assert!(
                parse_tree(&entry("100644", name.as_bytes(), 1)).is_ok(),
                "{name:?}"
            );
        }
        assert!(parse_tree(&entry("100644", b".gi\xfft", 1)).is_ok());
    }

    #[test]
    fn a_symlinked_gitmodules_is_refused_in_every_spelling() {
        for name in [
            ".gitmodules",
            ".GITMODULES",
            ".gitmodules.",
            ".gitmodules ::$DATA",
            "gitmod~1",
            "GITMOD~4",
            "gi7eba~1",
            "gi7eb~12",
            ".g\u{200c}itmodules",
        ] {
            assert!(
                matches!(
                    parse_tree(&entry("120000", name.as_bytes(), 1)),
                    Err(ObjectError::SymlinkedGitmodules(_))
                ),
                "{name:?}"
            );
            // A plain file of that name is what Git expects.
            assert!(
                parse_tree(&entry("100644", name.as_bytes(), 1)).is_ok(),
                "{name:?}"
            );
        }
        for name in [
            ".gitmodule",
            "gitmod~5",
            "gitmod~1x",
            "gi7eba~0",
            "x.gitmodules",
            ".gitmodulesx",
        ] {
            assert!(
                parse_tree(&entry("120000", name.as_bytes(), 1)).is_ok(),
                "{name:?}"
            );
        }
    }

    #[test]
    fn reads_commit_tree() {
        let commit = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor x\n\nmsg\n";
        assert_eq!(
            commit_tree(commit).expect("valid").to_hex(),
            "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
        );
        assert!(commit_tree(b"parent 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n").is_err());
    }
}
