//! What is broken in a repository, for `xus verify`: the objects of one
//! commit that are missing or do not hash to their id, packs whose bytes
//! fail their checksum, and work-tree files that differ from the commit.
//! And the local half of a repair: damaged packs and corrupt loose objects
//! are set aside (never deleted: `.git/xus/damaged/`) after every object
//! still readable in them is copied into a fresh pack, so that what is left
//! broken is simply missing, which a fetch can bring.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use git2::{ObjectType, Repository};
use sha1::{Digest, Sha1};

use crate::git::object::{EntryKind, ObjectId, commit_tree, parse_tree};
use crate::git::pack::PackWriter;

/// One thing found broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// An object of the commit is in no pack and not loose.
    MissingObject {
        id: ObjectId,
        kind: ObjectType,
        /// Where the commit uses it (`""` for the commit and its root tree).
        path: String,
    },
    /// An object is there but cannot be read, or its bytes hash to
    /// another id.
    CorruptObject {
        id: ObjectId,
        kind: ObjectType,
        path: String,
        /// The loose file holding it; `None` when it is in a pack.
        loose: Option<PathBuf>,
    },
    /// A pack whose bytes fail its trailer checksum, or that holds an
    /// object that cannot be read.
    DamagedPack { pack: PathBuf, why: String },
    /// A work-tree file whose bytes, type or execute bit differ from the
    /// commit's.
    ChangedFile { path: String, expected: ObjectId },
    /// A file of the commit absent from the work tree.
    MissingFile { path: String, expected: ObjectId },
}

impl Problem {
    /// Whether fixing it needs objects from elsewhere (the swarm), rather
    /// than only a checkout from the local object database.
    pub fn is_in_object_database(&self) -> bool {
        !matches!(
            self,
            Problem::ChangedFile { .. } | Problem::MissingFile { .. }
        )
    }
}

/// What [`check`] looked at and found.
#[derive(Debug, Clone)]
pub struct Report {
    pub commit: ObjectId,
    pub problems: Vec<Problem>,
    /// Objects of the commit read and hashed.
    pub objects_checked: usize,
    /// Bytes of those objects.
    pub object_bytes: u64,
    /// Work-tree files compared; `None` when the work tree was not checked
    /// (bare, another commit checked out, or the commit's trees broken).
    pub files_checked: Option<usize>,
}

/// Why a check or repair could not run (a broken object is a
/// [`Problem`], not an error).
#[derive(Debug, thiserror::Error)]
pub enum IntegrityError {
    #[error("{what}: {source}")]
    Git {
        what: String,
        #[source]
        source: git2::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("writing the salvaged objects: {0}")]
    Pack(#[from] crate::git::pack::PackError),
}

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> IntegrityError {
    let what = what.into();
    move |source| IntegrityError::Io { what, source }
}

fn git_error(what: impl Into<String>) -> impl FnOnce(git2::Error) -> IntegrityError {
    let what = what.into();
    move |source| IntegrityError::Git { what, source }
}

/// Checks every pack's checksum, every object of `commit` (read and
/// hashed, as `git fsck` does), and, when `work_tree` and the repository
/// has one with `commit` checked out, every file of the commit there.
///
/// # Errors
///
/// The repository cannot be opened or its directories read.
pub fn check(
    repo: &Repository,
    commit: ObjectId,
    work_tree: bool,
) -> Result<Report, IntegrityError> {
    let git_dir = repo.path().to_owned();
    let mut problems = Vec::new();
    for pack in pack_files(&git_dir)? {
        if let Some(why) = pack_checksum_problem(&pack)? {
            problems.push(Problem::DamagedPack { pack, why });
        }
    }
    let odb = repo
        .odb()
        .map_err(git_error("opening the object database"))?;
    let mut walk = Walk {
        odb: &odb,
        git_dir: &git_dir,
        seen: HashSet::new(),
        problems: &mut problems,
        objects: 0,
        bytes: 0,
        files: Vec::new(),
    };
    let trees_whole = walk.commit(commit);
    let (objects_checked, object_bytes, files) = (walk.objects, walk.bytes, walk.files);
    let head_is_commit = repo
        .head()
        .ok()
        .and_then(|head| head.target())
        .and_then(ObjectId::from_git)
        == Some(commit);
    let files_checked = match (work_tree, repo.workdir(), trees_whole && head_is_commit) {
        (true, Some(root), true) => {
            for file in &files {
                if let Some(problem) = compare_file(root, file)? {
                    problems.push(problem);
                }
            }
            Some(files.len())
        }
        _ => None,
    };
    Ok(Report {
        commit,
        problems,
        objects_checked,
        object_bytes,
        files_checked,
    })
}

/// A file (or symlink) of the commit, where the walk found it.
#[derive(Debug, Clone)]
struct CommitFile {
    path: String,
    id: ObjectId,
    kind: EntryKind,
}

struct Walk<'a> {
    odb: &'a git2::Odb<'a>,
    git_dir: &'a Path,
    seen: HashSet<ObjectId>,
    problems: &'a mut Vec<Problem>,
    objects: usize,
    bytes: u64,
    files: Vec<CommitFile>,
}

impl Walk<'_> {
    /// Walks the commit; returns whether every tree could be read (the
    /// file list is then complete).
    fn commit(&mut self, commit: ObjectId) -> bool {
        let Some(raw) = self.read(commit, ObjectType::Commit, "") else {
            return false;
        };
        match commit_tree(&raw) {
            Ok(tree) => self.tree(tree, ""),
            Err(_) => false,
        }
    }

    fn tree(&mut self, id: ObjectId, path: &str) -> bool {
        let Some(raw) = self.read(id, ObjectType::Tree, path) else {
            return false;
        };
        let Ok(entries) = parse_tree(&raw) else {
            return false;
        };
        let mut whole = true;
        for entry in entries {
            let name = String::from_utf8_lossy(entry.name);
            let child = if path.is_empty() {
                name.into_owned()
            } else {
                format!("{path}/{name}")
            };
            match entry.kind {
                EntryKind::Tree => whole &= self.tree(entry.id, &child),
                EntryKind::File { .. } | EntryKind::Symlink => {
                    self.files.push(CommitFile {
                        path: child.clone(),
                        id: entry.id,
                        kind: entry.kind,
                    });
                    let _ = self.read(entry.id, ObjectType::Blob, &child);
                }
                EntryKind::Gitlink => {}
            }
        }
        whole
    }

    /// Reads and hashes `id` once; records a problem and returns `None`
    /// when it is missing or corrupt.
    fn read(&mut self, id: ObjectId, kind: ObjectType, path: &str) -> Option<Vec<u8>> {
        if !self.seen.insert(id) {
            // Checked already; a tree read twice is read again for its
            // entries only when it was whole.
            return self.odb.read(id.to_git()).ok().map(|o| o.data().to_vec());
        }
        self.objects += 1;
        let loose = loose_path(self.git_dir, id);
        let corrupt = |loose: &Path| Problem::CorruptObject {
            id,
            kind,
            path: path.to_owned(),
            loose: loose.exists().then(|| loose.to_owned()),
        };
        match self.odb.read(id.to_git()) {
            Ok(object) => {
                let data = object.data();
                self.bytes += data.len() as u64;
                let type_name = object.kind().str();
                if object.kind() != kind || ObjectId::for_object(type_name, data) != id {
                    self.problems.push(corrupt(&loose));
                    return None;
                }
                Some(data.to_vec())
            }
            Err(error) if error.code() == git2::ErrorCode::NotFound && !loose.exists() => {
                self.problems.push(Problem::MissingObject {
                    id,
                    kind,
                    path: path.to_owned(),
                });
                None
            }
            Err(_) => {
                self.problems.push(corrupt(&loose));
                None
            }
        }
    }
}

/// Compares one work-tree file with the commit's blob id (bytes hashed as
/// Git hashes a blob, no filters), its type and execute bit.
fn compare_file(root: &Path, file: &CommitFile) -> Result<Option<Problem>, IntegrityError> {
    let full = root.join(&file.path);
    let changed = || {
        Some(Problem::ChangedFile {
            path: file.path.clone(),
            expected: file.id,
        })
    };
    let meta = match std::fs::symlink_metadata(&full) {
        Ok(meta) => meta,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Some(Problem::MissingFile {
                path: file.path.clone(),
                expected: file.id,
            }));
        }
        Err(error) => return Err(io_error(format!("reading {}", full.display()))(error)),
    };
    match file.kind {
        EntryKind::Symlink => {
            if !meta.file_type().is_symlink() {
                return Ok(changed());
            }
            let target = std::fs::read_link(&full)
                .map_err(io_error(format!("reading the link {}", full.display())))?;
            let bytes = target.as_os_str().as_encoded_bytes();
            Ok((ObjectId::for_object("blob", bytes) != file.id)
                .then(changed)
                .flatten())
        }
        EntryKind::File { executable } => {
            if !meta.is_file() {
                return Ok(changed());
            }
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                if (meta.permissions().mode() & 0o100 != 0) != executable {
                    return Ok(changed());
                }
            }
            #[cfg(not(unix))]
            let _ = executable;
            let id = hash_file_as_blob(&full, meta.len())?;
            Ok((id != file.id).then(changed).flatten())
        }
        EntryKind::Tree | EntryKind::Gitlink => Ok(None),
    }
}

fn hash_file_as_blob(path: &Path, len: u64) -> Result<ObjectId, IntegrityError> {
    let what = || format!("reading {}", path.display());
    let mut file = std::fs::File::open(path).map_err(io_error(what()))?;
    let mut hasher = crate::git::object::object_hasher("blob", len);
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io_error(what()))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        hasher.update(&buf[..n]);
    }
    if total != len {
        // Changed while read: whatever it is, it is not the blob.
        return Ok(ObjectId([0; 20]));
    }
    Ok(ObjectId(hasher.finalize().into()))
}

/// Where Git keeps `id` as a loose object.
fn loose_path(git_dir: &Path, id: ObjectId) -> PathBuf {
    let hex = id.to_hex();
    git_dir.join("objects").join(&hex[..2]).join(&hex[2..])
}

/// The `.pack` files of the repository (each with its `.idx` beside it).
fn pack_files(git_dir: &Path) -> Result<Vec<PathBuf>, IntegrityError> {
    let dir = git_dir.join("objects").join("pack");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(io_error(format!("listing {}", dir.display()))(error)),
    };
    let mut packs = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(io_error(format!("listing {}", dir.display())))?
            .path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("pack-") && name.ends_with(".pack") {
            packs.push(path);
        }
    }
    packs.sort();
    Ok(packs)
}

/// Why the pack's bytes are not what its trailer (and its index) say, if
/// they are not: the SHA-1 of everything before the last 20 bytes must be
/// those 20 bytes, and the index must name that same checksum.
fn pack_checksum_problem(pack: &Path) -> Result<Option<String>, IntegrityError> {
    let what = || format!("reading {}", pack.display());
    let mut file = std::fs::File::open(pack).map_err(io_error(what()))?;
    let len = file.metadata().map_err(io_error(what()))?.len();
    if len < 32 {
        return Ok(Some(format!("{len} bytes, shorter than any pack")));
    }
    let mut hasher = Sha1::new();
    let mut left = len - 20;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        file.read_exact(&mut buf[..want])
            .map_err(io_error(what()))?;
        hasher.update(&buf[..want]);
        left -= want as u64;
    }
    let mut trailer = [0u8; 20];
    file.read_exact(&mut trailer).map_err(io_error(what()))?;
    let actual: [u8; 20] = hasher.finalize().into();
    if actual != trailer {
        return Ok(Some(format!(
            "its bytes hash to {}, its trailer says {}",
            ObjectId(actual),
            ObjectId(trailer)
        )));
    }
    let idx = pack.with_extension("idx");
    match std::fs::read(&idx) {
        Ok(bytes) if bytes.len() >= 40 => {
            let named = &bytes[bytes.len() - 40..bytes.len() - 20];
            if named != trailer {
                return Ok(Some(format!(
                    "its index {} names another pack",
                    idx.display()
                )));
            }
            Ok(None)
        }
        Ok(_) => Ok(Some(format!("its index {} is truncated", idx.display()))),
        Err(error) => Ok(Some(format!("its index {}: {error}", idx.display()))),
    }
}

/// What [`set_aside`] did.
#[derive(Debug, Clone, Default)]
pub struct SetAside {
    /// Files moved under the damaged directory.
    pub moved: Vec<PathBuf>,
    /// Objects copied out of damaged packs into a fresh pack.
    pub salvaged: usize,
    /// Objects of damaged packs that could not be read (lost here unless
    /// the commit needs them and a fetch brings them back).
    pub unreadable: Vec<ObjectId>,
}

/// Makes every broken object of `report` simply missing: copies each
/// readable object of a damaged pack (or of a pack holding a corrupt
/// object) into a new pack, then moves the damaged packs and corrupt loose
/// objects into `damaged_dir`. Nothing is deleted.
///
/// # Errors
///
/// A file cannot be read, written or moved; then nothing was moved.
pub fn set_aside(
    git_dir: &Path,
    report: &Report,
    damaged_dir: &Path,
) -> Result<SetAside, IntegrityError> {
    let mut packs: Vec<PathBuf> = report
        .problems
        .iter()
        .filter_map(|p| match p {
            Problem::DamagedPack { pack, .. } => Some(pack.clone()),
            _ => None,
        })
        .collect();
    let corrupt_packed: Vec<ObjectId> = report
        .problems
        .iter()
        .filter_map(|p| match p {
            Problem::CorruptObject {
                id, loose: None, ..
            } => Some(*id),
            _ => None,
        })
        .collect();
    if !corrupt_packed.is_empty() {
        for pack in pack_files(git_dir)? {
            if packs.contains(&pack) {
                continue;
            }
            let isolated = IsolatedPack::open(&pack, damaged_dir)?;
            if corrupt_packed
                .iter()
                .any(|id| isolated.odb.exists(id.to_git()))
            {
                packs.push(pack);
            }
        }
    }
    let mut done = SetAside::default();
    let mut salvaged: Vec<(ObjectId, ObjectType, Vec<u8>)> = Vec::new();
    for pack in &packs {
        let isolated = IsolatedPack::open(pack, damaged_dir)?;
        let mut ids = Vec::new();
        isolated
            .odb
            .foreach(|oid| {
                ids.push(*oid);
                true
            })
            .map_err(git_error(format!(
                "listing the objects of {}",
                pack.display()
            )))?;
        for oid in ids {
            let Some(id) = ObjectId::from_git(oid) else {
                continue;
            };
            match isolated.odb.read(oid) {
                Ok(object) if ObjectId::for_object(object.kind().str(), object.data()) == id => {
                    salvaged.push((id, object.kind(), object.data().to_vec()));
                }
                _ => done.unreadable.push(id),
            }
        }
    }
    if !salvaged.is_empty() {
        let count = u32::try_from(salvaged.len()).unwrap_or(u32::MAX);
        let mut writer = PackWriter::new(git_dir, count)?;
        for (id, kind, data) in &salvaged {
            writer.add_bytes(*id, *kind, data)?;
        }
        writer.finish()?;
        done.salvaged = salvaged.len();
    }
    std::fs::create_dir_all(damaged_dir)
        .map_err(io_error(format!("creating {}", damaged_dir.display())))?;
    for pack in &packs {
        for extension in ["pack", "idx", "rev", "bitmap", "keep", "promisor", "mtimes"] {
            let from = pack.with_extension(extension);
            if from.exists() {
                done.moved.push(move_into(&from, damaged_dir)?);
            }
        }
    }
    for problem in &report.problems {
        if let Problem::CorruptObject {
            loose: Some(loose), ..
        } = problem
            && loose.exists()
        {
            done.moved.push(move_into(loose, damaged_dir)?);
        }
    }
    Ok(done)
}

/// Moves `file` into `dir` under its own name (a loose object keeps its
/// two-digit directory in the name).
fn move_into(file: &Path, dir: &Path) -> Result<PathBuf, IntegrityError> {
    let name = match (file.parent().and_then(Path::file_name), file.file_name()) {
        (Some(parent), Some(name)) if parent.len() == 2 => {
            format!("{}{}", parent.to_string_lossy(), name.to_string_lossy())
        }
        (_, Some(name)) => name.to_string_lossy().into_owned(),
        _ => "object".to_owned(),
    };
    let to = dir.join(name);
    std::fs::rename(file, &to).map_err(io_error(format!(
        "moving {} to {}",
        file.display(),
        to.display()
    )))?;
    Ok(to)
}

/// One pack opened on its own (an object database holding only it), so
/// that reading an object reads it from this pack and no other.
struct IsolatedPack {
    odb: git2::Odb<'static>,
    _dir: tempfile::TempDir,
}

impl IsolatedPack {
    fn open(pack: &Path, scratch_parent: &Path) -> Result<Self, IntegrityError> {
        let parent = scratch_parent.parent().unwrap_or(scratch_parent);
        std::fs::create_dir_all(parent)
            .map_err(io_error(format!("creating {}", parent.display())))?;
        let dir = tempfile::Builder::new()
            .prefix("isolated-pack")
            .tempdir_in(parent)
            .map_err(io_error("creating a scratch directory"))?;
        let pack_dir = dir.path().join("pack");
        std::fs::create_dir_all(&pack_dir)
            .map_err(io_error(format!("creating {}", pack_dir.display())))?;
        for extension in ["pack", "idx"] {
            let from = pack.with_extension(extension);
            let Some(name) = from.file_name() else {
                continue;
            };
            std::fs::hard_link(&from, pack_dir.join(name))
                .or_else(|_| std::fs::copy(&from, pack_dir.join(name)).map(|_| ()))
                .map_err(io_error(format!("linking {}", from.display())))?;
        }
        let odb = git2::Odb::new().map_err(git_error("creating an object database"))?;
        odb.add_disk_alternate(&dir.path().to_string_lossy())
            .map_err(git_error(format!("opening {}", pack.display())))?;
        Ok(Self { odb, _dir: dir })
    }
}

/// Checks the commit's files out again, from the object database, at
/// `paths` (work-tree paths of the commit); each existing file is first
/// copied under `backup_dir`, so that no edit is lost. Updates the index
/// entries of those paths too.
///
/// # Errors
///
/// A file cannot be copied, or the checkout fails (an object still
/// missing).
pub fn restore_files(
    repo: &Repository,
    commit: ObjectId,
    paths: &[String],
    backup_dir: &Path,
) -> Result<Vec<PathBuf>, IntegrityError> {
    let Some(root) = repo.workdir() else {
        return Ok(Vec::new());
    };
    let mut backups = Vec::new();
    for path in paths {
        let full = root.join(path);
        if std::fs::symlink_metadata(&full).is_ok() {
            let backup = backup_dir.join(path);
            if let Some(parent) = backup.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(io_error(format!("creating {}", parent.display())))?;
            }
            std::fs::rename(&full, &backup).map_err(io_error(format!(
                "moving {} to {}",
                full.display(),
                backup.display()
            )))?;
            backups.push(backup);
        }
    }
    let tree = repo
        .find_commit(commit.to_git())
        .and_then(|c| c.tree())
        .map_err(git_error(format!("reading commit {commit}")))?;
    let mut checkout = git2::build::CheckoutBuilder::new();
    checkout.force().update_index(true);
    for path in paths {
        checkout.path(path);
    }
    repo.checkout_tree(tree.as_object(), Some(&mut checkout))
        .map_err(git_error("checking the files out again"))?;
    Ok(backups)
}
