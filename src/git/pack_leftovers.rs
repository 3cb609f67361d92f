//! Temporary packs that a killed import left behind, found and removed.
//!
//! [`crate::git::pack::PackWriter`] writes `objects/pack/tmp_xus_<pid>_<n>.pack`
//! (and its `.idx`) and holds an exclusive lock on the pack file until both
//! are renamed into place. A SIGKILL or power loss leaves the files but not
//! the lock, so whoever can take the lock knows no process is writing them:
//! a process id alone could not tell, since ids are reused.
//!
//! A process killed between moving a finished pack and its index into
//! `objects/pack/` (an update leaving its quarantine, which moves the pack
//! first, as Git does) leaves a `pack-*.pack` with no index: no Git process
//! can read it, and Git never removes it. It goes too, once old enough that
//! no live writer is about to rename its index, unless a `.keep` file says
//! someone wants it.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::git::pack::TEMP_PACK_PREFIX;

/// An index whose pack is gone, or a `.new` file (a pack not yet locked and
/// renamed), is only abandoned once this old: a running writer renames its
/// pack a moment before its index, and its `.new` a moment after creating it.
const ORPHAN_AGE: Duration = Duration::from_secs(600);

/// Removes every abandoned temporary pack and index under `git_dir`'s
/// `objects/pack/`, and every pack left without its index; returns what was removed and how many bytes it held. A
/// pack whose lock cannot be taken (a live writer, or a file system without
/// locks) is left alone.
pub fn remove_abandoned(git_dir: &Path) -> std::io::Result<(Vec<PathBuf>, u64)> {
    let dir = git_dir.join("objects").join("pack");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let mut removed = Vec::new();
    let mut bytes = 0;
    let mut remove = |path: PathBuf| {
        let len = std::fs::metadata(&path).map_or(0, |m| m.len());
        if std::fs::remove_file(&path).is_ok() {
            bytes += len;
            removed.push(path);
        }
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.starts_with("pack-") && name.ends_with(".pack") {
            if !path.with_extension("idx").exists()
                && !path.with_extension("keep").exists()
                && older_than(&path, ORPHAN_AGE)
            {
                remove(path);
            }
            continue;
        }
        if !name.starts_with(TEMP_PACK_PREFIX) {
            continue;
        }
        if name.ends_with(".pack") {
            if abandoned_pack(&path) {
                let index = path.with_extension("idx");
                remove(path);
                if index.exists() {
                    remove(index);
                }
            }
        } else if (name.ends_with(".idx") && !path.with_extension("pack").exists()
            || name.ends_with(".new"))
            && older_than(&path, ORPHAN_AGE)
        {
            remove(path);
        }
    }
    Ok((removed, bytes))
}

/// Whether nobody holds the writer's lock on this temporary pack.
fn abandoned_pack(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    match file.try_lock() {
        Ok(()) => true,
        Err(TryLockError::WouldBlock) | Err(TryLockError::Error(_)) => false,
    }
}

/// Whether `path` was last modified at least `age` ago (a file or
/// directory whose time cannot be read is not).
pub(crate) fn older_than(path: &Path, age: Duration) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|modified| SystemTime::now().duration_since(modified).ok())
        .is_some_and(|elapsed| elapsed >= age)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::object::ObjectId;
    use crate::git::pack::PackWriter;

    #[test]
    fn a_pack_left_without_its_index_goes_once_old() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pack_dir = dir.path().join("objects/pack");
        std::fs::create_dir_all(&pack_dir).expect("pack dir");
        let old = SystemTime::now() - ORPHAN_AGE - Duration::from_secs(60);
        let pack = |name: &str, age: Option<SystemTime>| {
            let path = pack_dir.join(format!("pack-{name}.pack"));
            let file = std::fs::File::create(&path).expect("create");
            if let Some(modified) = age {
                file.set_modified(modified).expect("mtime");
            }
            path
        };
        let orphan = pack("orphan", Some(old));
        let young = pack("young", None);
        let indexed = pack("indexed", Some(old));
        std::fs::write(indexed.with_extension("idx"), b"").expect("idx");
        let kept = pack("kept", Some(old));
        std::fs::write(kept.with_extension("keep"), b"").expect("keep");

        let (removed, _) = remove_abandoned(dir.path()).expect("sweep");
        assert_eq!(removed, vec![orphan.clone()]);
        assert!(!orphan.exists());
        assert!(young.exists() && indexed.exists() && kept.exists());
    }

    #[test]
    fn abandoned_packs_go_and_live_ones_stay() {
        let dir = tempfile::tempdir().expect("tempdir");
        let git_dir = dir.path();
        let pack_dir = git_dir.join("objects/pack");
        std::fs::create_dir_all(&pack_dir).expect("pack dir");
        // A writer still running, in this very process.
        let mut live = PackWriter::new(git_dir, 1).expect("writer");
        // What a killed writer leaves: files, no lock.
        let dead = pack_dir.join(format!("{TEMP_PACK_PREFIX}999999_0.pack"));
        std::fs::write(&dead, b"PACK partial").expect("write");
        std::fs::write(dead.with_extension("idx"), b"index").expect("write");
        let unrelated = pack_dir.join("pack-0123.keep");
        std::fs::write(&unrelated, b"").expect("write");

        let (removed, bytes) = remove_abandoned(git_dir).expect("sweep");
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert_eq!(bytes, 12 + 5);
        assert!(!dead.exists() && !dead.with_extension("idx").exists());
        assert!(unrelated.exists());

        let data = b"still being written";
        live.add_bytes(
            ObjectId::for_object("blob", data),
            git2::ObjectType::Blob,
            data,
        )
        .expect("add");
        live.finish().expect("the live pack was left alone");
        let names: Vec<String> = std::fs::read_dir(&pack_dir)
            .expect("list")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names
                .iter()
                .filter(|n| n.starts_with("pack-") && n.ends_with(".idx"))
                .count(),
            1,
            "{names:?}"
        );
        assert!(
            !names.iter().any(|n| n.starts_with(TEMP_PACK_PREFIX)),
            "{names:?}"
        );
    }
}
