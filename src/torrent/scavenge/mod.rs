//! Finds pieces of a changed file inside older versions of it, rsync style, so
//! a fetch downloads only what really changed.
//!
//! For every file that is about to be downloaded, a few blobs that may be an
//! older version of it are scanned with a rolling window of one piece: the
//! weak checksum from the metadata finds candidates in O(1) per byte, the
//! piece's SHA-1 confirms them, and confirmed bytes are written into the
//! staging file. The engine's start-up check then sees those pieces as held.
//!
//! The candidates come from the trees of the commits this repository already
//! has (HEAD, local branches, commits fetched before), through a
//! [`index::BlobIndex`]: versions at the same path, the same file name in
//! another directory (a renamed directory), the same extension at a similar
//! size (a renamed file, content moved). The cost is bounded whatever the
//! number of commits: each tree is read once, at most
//! [`MAX_CANDIDATES_PER_FILE`] blobs are tried per file, no blob is read
//! twice, and the bytes scanned stay within [`scan_budget`]: a few times the
//! bytes looked for.
//!
//! Only pieces that lie wholly inside one file are looked for; a piece that
//! straddles two files is downloaded unless its bytes are all local blobs.

pub mod index;
mod scan;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use crate::torrent::format::CommitTorrent;
use crate::torrent::import::COMMIT_REF_PREFIX;
use crate::torrent::staged::StagedFile;
use index::BlobIndex;

/// How many local commits are searched for older versions.
pub const MAX_BASE_COMMITS: usize = 64;
/// Most blobs tried per missing file: enough for the newest versions and a
/// rename or two, few enough that a file with genuinely new bytes costs
/// little however long its history. A file stops earlier when a blob adds
/// nothing after another gave it pieces.
pub const MAX_CANDIDATES_PER_FILE: usize = 4;
/// Bytes scanned per fetch, at most, as a multiple of the bytes of the
/// missing files whose pieces are looked for (see [`scan_budget`]).
pub const SCAN_FACTOR: u64 = 4;
/// Bytes a fetch may always scan, however little is missing: a tenth of a
/// second or so, worth it to patch a file that shrank.
pub const MIN_SCAN_BYTES: u64 = 64 << 20;
/// Bytes scanned per fetch, at most, however much is missing.
pub const MAX_SCAN_BYTES: u64 = 4 << 30;

/// What scavenging recovered, and what it cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Pieces found in older versions.
    pub pieces: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Distinct old blobs read and scanned.
    pub blobs_scanned: usize,
    /// Their bytes.
    pub bytes_scanned: u64,
    /// Trees read to find them.
    pub trees_read: usize,
}

/// Writes pieces found in older versions into `payload` (the torrent's
/// staging file, bytes at their torrent offsets). `missing[i]` says whether
/// torrent file `i` is to be downloaded. Old blobs that cannot be read are
/// skipped; only a failing staging file is an error.
pub fn prefill(
    repo: &git2::Repository,
    torrent: &CommitTorrent,
    missing: &[bool],
    payload: &StagedFile,
) -> anyhow::Result<Recovered> {
    let started = Instant::now();
    let mut todo = wanted_pieces(torrent, missing);
    if todo.is_empty() {
        return Ok(Recovered::default());
    }
    let roots = base_trees(repo);
    if roots.is_empty() {
        return Ok(Recovered::default());
    }
    let paths: BTreeMap<usize, Vec<u8>> = todo
        .keys()
        .map(|&file| (file, torrent.files[file].raw_path.join(&b'/')))
        .collect();
    let mut index = BlobIndex::build(repo, &roots, paths.values().map(Vec::as_slice));
    let odb = repo.odb()?;

    // Up to four candidates per file, and who wants each blob.
    let mut plans: Vec<(usize, Vec<(git2::Oid, u64)>)> = Vec::new();
    let mut wanted_by: HashMap<git2::Oid, Vec<usize>> = HashMap::new();
    let mut looked_for = 0u64;
    for (&file, pieces) in &todo {
        let entry = &torrent.files[file];
        let Some(target) = entry.blob else {
            continue;
        };
        let smallest = pieces
            .iter()
            .map(|&p| torrent.piece_span(p).1)
            .min()
            .unwrap_or(0);
        let candidates = index.candidates(
            &odb,
            &paths[&file],
            entry.length,
            smallest,
            target.to_git(),
            MAX_CANDIDATES_PER_FILE,
        );
        if candidates.is_empty() {
            continue;
        }
        looked_for += entry.length;
        for &(blob, _) in &candidates {
            wanted_by.entry(blob).or_default().push(file);
        }
        plans.push((file, candidates));
    }

    // A file stops early only once its own first choice was scanned: a
    // blob it shares a little with (a sibling file) must not end the search
    // before its older version at the same path was read.
    let first_choice: HashMap<usize, git2::Oid> = plans
        .iter()
        .filter_map(|(file, candidates)| Some((*file, candidates.first()?.0)))
        .collect();
    let mut budget = scan_budget(looked_for);
    let mut recovered = Recovered {
        trees_read: index.trees_read,
        ..Recovered::default()
    };
    let mut tried = HashSet::new();
    // Files some scanned blob gave pieces to.
    let mut fruitful = HashSet::new();
    // Every file's best candidate first, then every file's second, ...
    for rank in 0..MAX_CANDIDATES_PER_FILE {
        for (file, candidates) in &plans {
            let Some(&(blob, size)) = candidates.get(rank) else {
                continue;
            };
            if todo.get(file).is_none_or(Vec::is_empty) || !tried.insert(blob) {
                continue;
            }
            if size > budget {
                tracing::debug!(%blob, size, budget, "scan budget too small for an old blob");
                continue;
            }
            // One pass serves every file that chose this blob.
            let users = wanted_by.get(&blob).map(Vec::as_slice).unwrap_or(&[]);
            let pieces: Vec<usize> = users
                .iter()
                .filter_map(|user| todo.get(user))
                .flatten()
                .copied()
                .collect();
            let object = match odb.read(blob) {
                Ok(object) => object,
                Err(error) => {
                    tracing::debug!(%blob, %error, "skipping an unreadable old blob");
                    continue;
                }
            };
            let old = object.data();
            budget = budget.saturating_sub(old.len() as u64);
            recovered.blobs_scanned += 1;
            recovered.bytes_scanned += old.len() as u64;
            let found = scan::find_pieces(torrent, &pieces, old);
            let mut done = HashSet::new();
            for &(piece, at) in &found {
                let (start, len) = torrent.piece_span(piece);
                // find_pieces returns windows inside `old` only.
                let bytes = &old[at..at + len as usize];
                payload.write_at(start, bytes)?;
                recovered.pieces += 1;
                recovered.bytes += len;
                done.insert(piece);
            }
            for user in users {
                let Some(pieces) = todo.get_mut(user) else {
                    continue;
                };
                let before = pieces.len();
                pieces.retain(|p| !done.contains(p));
                if pieces.len() < before {
                    fruitful.insert(*user);
                } else if fruitful.contains(user)
                    && first_choice
                        .get(user)
                        .is_some_and(|blob| tried.contains(blob))
                {
                    // An older version already gave what it shares with this
                    // file and this one adds nothing: the rest is new bytes,
                    // and the next candidates (usually yet older versions)
                    // would only cost a read each.
                    pieces.clear();
                }
            }
        }
    }
    tracing::debug!(
        commits = roots.len(),
        files = plans.len(),
        pieces = recovered.pieces,
        bytes = recovered.bytes,
        blobs_scanned = recovered.blobs_scanned,
        bytes_scanned = recovered.bytes_scanned,
        trees_read = recovered.trees_read,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "scavenged older versions"
    );
    Ok(recovered)
}

/// How many bytes of old blobs a fetch may scan for files of `looked_for`
/// bytes.
pub fn scan_budget(looked_for: u64) -> u64 {
    looked_for
        .saturating_mul(SCAN_FACTOR)
        .clamp(MIN_SCAN_BYTES, MAX_SCAN_BYTES)
}

/// Pieces that lie wholly inside one missing file, by file, in torrent order.
fn wanted_pieces(torrent: &CommitTorrent, missing: &[bool]) -> BTreeMap<usize, Vec<usize>> {
    let mut wanted: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for piece in 0..torrent.piece_count() {
        if let [(file, _, _)] = torrent.piece_segments(piece)[..]
            && missing.get(file).copied().unwrap_or(false)
        {
            wanted.entry(file).or_default().push(piece);
        }
    }
    wanted
}

/// Root trees searched for older versions: those of HEAD, local branches,
/// then commits fetched before, newest first, at most [`MAX_BASE_COMMITS`]
/// distinct commits.
fn base_trees(repo: &git2::Repository) -> Vec<git2::Oid> {
    let mut commits: Vec<git2::Commit<'_>> = Vec::new();
    if let Ok(head) = repo.head()
        && let Ok(commit) = head.peel_to_commit()
    {
        commits.push(commit);
    }
    let (mut branches, mut fetched) = (Vec::new(), Vec::new());
    if let Ok(refs) = repo.references() {
        for reference in refs.flatten() {
            let name = reference.name_bytes();
            let list = if name.starts_with(b"refs/heads/") {
                &mut branches
            } else if name.starts_with(COMMIT_REF_PREFIX.as_bytes()) {
                &mut fetched
            } else {
                continue;
            };
            if let Ok(commit) = reference.peel_to_commit() {
                list.push(commit);
            }
        }
    }
    for list in [&mut branches, &mut fetched] {
        list.sort_by_key(|c| std::cmp::Reverse(c.time().seconds()));
    }
    commits.extend(branches);
    commits.extend(fetched);
    let mut seen = HashSet::new();
    commits
        .into_iter()
        .filter(|c| seen.insert(c.id()))
        .take(MAX_BASE_COMMITS)
        .map(|c| c.tree_id())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sha1::{Digest, Sha1};

    use super::*;
    use crate::git::object::ObjectId;
    use crate::torrent::format;

    const KIB: usize = 1024;

    /// Deterministic pseudo-random bytes (xorshift).
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.extend_from_slice(&x.to_le_bytes());
        }
        out.truncate(len);
        out
    }

    /// `data` with `insert` put in front and ten bytes overwritten at `at`:
    /// every piece after the front moves, one is lost.
    fn edited(data: &[u8], at: usize) -> Vec<u8> {
        let mut out = b"a line added at the top\n".to_vec();
        out.extend_from_slice(data);
        out[at..at + 10].copy_from_slice(b"0123456789");
        out
    }

    enum Node {
        Blob(Vec<u8>),
        Dir(BTreeMap<String, Node>),
    }

    fn write_node(repo: &git2::Repository, children: &BTreeMap<String, Node>) -> git2::Oid {
        let mut builder = repo.treebuilder(None).expect("treebuilder");
        for (name, node) in children {
            let (id, mode) = match node {
                Node::Blob(data) => (repo.blob(data).expect("blob"), 0o100644),
                Node::Dir(children) => (write_node(repo, children), 0o040000),
            };
            builder.insert(name, id, mode).expect("insert");
        }
        builder.write().expect("write tree")
    }

    /// Commits a tree holding `files` (`/`-separated paths) to `refname`.
    fn commit(
        repo: &git2::Repository,
        refname: &str,
        files: &[(&str, &[u8])],
        time: i64,
    ) -> git2::Oid {
        let mut root = BTreeMap::new();
        for (path, data) in files {
            let mut parts: Vec<&str> = path.split('/').collect();
            let name = parts.pop().expect("a name");
            let mut dir = &mut root;
            for part in parts {
                let node = dir
                    .entry(part.to_owned())
                    .or_insert_with(|| Node::Dir(BTreeMap::new()));
                let Node::Dir(children) = node else {
                    panic!("{part} is a file and a directory")
                };
                dir = children;
            }
            dir.insert(name.to_owned(), Node::Blob(data.to_vec()));
        }
        let tree = repo.find_tree(write_node(repo, &root)).expect("tree");
        let who = git2::Signature::new("t", "t@example.com", &git2::Time::new(time, 0))
            .expect("signature");
        let id = repo
            .commit(None, &who, &who, "test", &tree, &[])
            .expect("commit");
        repo.reference(refname, id, true, "test").expect("ref");
        id
    }

    /// A bare repository in a temporary directory.
    fn repository() -> (tempfile::TempDir, git2::Repository) {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = git2::Repository::init_bare(dir.path()).expect("init");
        (dir, repo)
    }

    /// Scavenges, into `local`, the commit of `files` (built elsewhere) and
    /// checks that every piece written holds the right bytes.
    fn scavenge(local: &git2::Repository, files: &[(&str, &[u8])]) -> Recovered {
        let (_src_dir, src) = repository();
        let id = commit(&src, "refs/heads/main", files, 2_000_000_000);
        let torrent =
            format::build(&src, ObjectId::from_git(id).expect("sha1")).expect("build torrent");
        let odb = local.odb().expect("odb");
        let missing: Vec<bool> = torrent
            .files
            .iter()
            .map(|f| f.blob.is_some_and(|b| !odb.exists(b.to_git())))
            .collect();
        let staging = tempfile::tempdir().expect("tempdir");
        let payload = StagedFile::new(staging.path().join("payload"));
        let recovered = prefill(local, &torrent, &missing, &payload).expect("prefill");
        let mut good = 0;
        for piece in 0..torrent.piece_count() {
            let (start, len) = torrent.piece_span(piece);
            let mut buf = vec![0; len as usize];
            if payload.read_at(start, &mut buf).is_ok()
                && <[u8; 20]>::from(Sha1::digest(&buf)) == torrent.piece_hashes[piece]
            {
                good += 1;
            }
        }
        assert_eq!(good, recovered.pieces, "every piece written verifies");
        recovered
    }

    #[test]
    fn budget_is_a_few_times_what_is_missing_within_bounds() {
        assert_eq!(scan_budget(0), MIN_SCAN_BYTES);
        assert_eq!(scan_budget(100 << 20), 400 << 20);
        assert_eq!(scan_budget(u64::MAX), MAX_SCAN_BYTES);
    }

    #[test]
    fn nothing_local_means_nothing_scanned() {
        let (_dir, local) = repository();
        let data = noise(256 * KIB, 1);
        let recovered = scavenge(&local, &[("a.bin", &data)]);
        assert_eq!(recovered, Recovered::default());
    }

    #[test]
    fn changed_file_is_found_at_its_path() {
        let (_dir, local) = repository();
        let old = noise(1024 * KIB, 1);
        commit(&local, "refs/heads/main", &[("data/big.bin", &old)], 1);
        let new = edited(&old, 500 * KIB);
        let recovered = scavenge(&local, &[("data/big.bin", &new)]);
        assert!(recovered.bytes > new.len() as u64 * 9 / 10, "{recovered:?}");
        assert_eq!(recovered.blobs_scanned, 1);
    }

    #[test]
    fn file_moved_to_another_directory_is_found_by_its_name() {
        let (_dir, local) = repository();
        let old = noise(1024 * KIB, 2);
        commit(
            &local,
            "refs/heads/main",
            &[("src/old/engine.rs", &old), ("README.md", b"hello\n")],
            1,
        );
        let new = edited(&old, 300 * KIB);
        let recovered = scavenge(
            &local,
            &[("src/new/engine.rs", &new), ("README.md", b"hi\n")],
        );
        assert!(recovered.bytes > new.len() as u64 * 9 / 10, "{recovered:?}");
        assert_eq!(recovered.blobs_scanned, 1);
    }

    #[test]
    fn renamed_file_is_found_by_extension_and_size() {
        let (_dir, local) = repository();
        let old = noise(1024 * KIB, 3);
        let (small, huge) = (noise(100 * KIB, 4), noise(3000 * KIB, 5));
        commit(
            &local,
            "refs/heads/main",
            &[
                ("notes/draft.txt", &old),
                ("notes/small.txt", &small),
                ("notes/huge.txt", &huge),
            ],
            1,
        );
        let new = edited(&old, 700 * KIB);
        let recovered = scavenge(&local, &[("notes/final.txt", &new)]);
        assert!(recovered.bytes > new.len() as u64 * 9 / 10, "{recovered:?}");
        // small.txt and huge.txt are not within twice the size.
        assert_eq!(recovered.blobs_scanned, 1, "{recovered:?}");
    }

    #[test]
    fn renamed_dist_info_directory_is_found() {
        let (_dir, local) = repository();
        let (a, b) = (noise(512 * KIB, 6), noise(512 * KIB, 7));
        commit(
            &local,
            "refs/heads/main",
            &[
                ("site/a-1.0.dist-info/RECORD", &a),
                ("site/b-2.0.dist-info/RECORD", &b),
            ],
            1,
        );
        let new = edited(&a, 100 * KIB);
        let path = "site/a-1.1.dist-info/RECORD";
        let recovered = scavenge(&local, &[(path, &new), ("site/b-2.0.dist-info/RECORD", &b)]);
        assert!(recovered.bytes > new.len() as u64 * 9 / 10, "{recovered:?}");

        // The version-renamed directory ranks before the other package's.
        let root = local
            .find_reference("refs/heads/main")
            .and_then(|r| r.peel_to_commit())
            .expect("main")
            .tree_id();
        let mut index = BlobIndex::build(&local, &[root], [path.as_bytes()]);
        let odb = local.odb().expect("odb");
        let target = git2::Oid::hash_object(git2::ObjectType::Blob, &new).expect("hash");
        let chosen = index.candidates(&odb, path.as_bytes(), new.len() as u64, 1, target, 4);
        let a_id = git2::Oid::hash_object(git2::ObjectType::Blob, &a).expect("hash");
        let b_id = git2::Oid::hash_object(git2::ObjectType::Blob, &b).expect("hash");
        let ids: Vec<git2::Oid> = chosen.iter().map(|&(id, _)| id).collect();
        assert_eq!(ids, vec![a_id, b_id]);
    }

    #[test]
    fn content_moved_to_a_new_file_is_found_in_one_pass() {
        let (_dir, local) = repository();
        let old = noise(1024 * KIB, 8);
        commit(&local, "refs/heads/main", &[("lib/util.py", &old)], 1);
        // util.py keeps its head, helpers.py takes the rest.
        let (head, rest) = old.split_at(64 * KIB);
        let recovered = scavenge(&local, &[("lib/helpers.py", rest), ("lib/util.py", head)]);
        assert!(
            recovered.bytes > rest.len() as u64 * 9 / 10,
            "{recovered:?}"
        );
        // Both files chose the old util.py: it is read and scanned once.
        assert_eq!(recovered.blobs_scanned, 1, "{recovered:?}");
    }

    /// A local repository with `commits` versions of `data/big.bin` (each
    /// with its own number at the top) beside an unchanged `vendor/` of 20 directories,
    /// each commit kept under refs/xus/commits/ as fetches keep them.
    fn history(commits: usize, base: &[u8]) -> (tempfile::TempDir, git2::Repository) {
        let (dir, local) = repository();
        let vendor: Vec<(String, Vec<u8>)> = (0..20)
            .flat_map(|d| {
                (0..5).map(move |f| (format!("vendor/d{d}/f{f}.c"), noise(KIB, d * 10 + f)))
            })
            .collect();
        for i in 0..commits {
            let mut version = base.to_vec();
            version[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let mut files: Vec<(&str, &[u8])> = vec![("data/big.bin", &version)];
            files.extend(vendor.iter().map(|(p, d)| (p.as_str(), d.as_slice())));
            let refname = format!("{COMMIT_REF_PREFIX}{i}");
            commit(&local, &refname, &files, 1_000 + i as i64);
        }
        (dir, local)
    }

    #[test]
    fn scan_cost_does_not_grow_with_the_number_of_commits() {
        let base = noise(1024 * KIB, 9);
        // The new version has bytes no old one has: every candidate is tried.
        let mut new = edited(&base, 900 * KIB);
        new.extend_from_slice(&noise(64 * KIB, 10));
        let mut results = Vec::new();
        for commits in [1, 50] {
            let (_dir, local) = history(commits, &base);
            let recovered = scavenge(&local, &[("data/big.bin", &new)]);
            assert!(
                recovered.bytes > base.len() as u64 * 9 / 10,
                "{recovered:?}"
            );
            assert!(
                recovered.blobs_scanned <= MAX_CANDIDATES_PER_FILE,
                "{recovered:?}"
            );
            // The root and data/ of each commit, vendor/ and its 20 once.
            assert!(recovered.trees_read <= 2 * commits + 21, "{recovered:?}");
            results.push(recovered);
        }
        assert_eq!(results[0].blobs_scanned, 1);
        // The newest version gives its pieces, the next adds none: stop.
        assert_eq!(results[1].blobs_scanned, 2, "{:?}", results[1]);
        assert_eq!(results[0].bytes, results[1].bytes);
    }

    #[test]
    fn file_made_of_two_old_files_takes_from_both() {
        let (_dir, local) = repository();
        let (a, b) = (noise(512 * KIB, 11), noise(512 * KIB, 12));
        commit(
            &local,
            "refs/heads/main",
            &[("a.txt", &a), ("b.txt", &b)],
            1,
        );
        let joined = [a.as_slice(), b.as_slice()].concat();
        let recovered = scavenge(&local, &[("a.txt", &joined)]);
        assert_eq!(recovered.bytes, joined.len() as u64, "{recovered:?}");
        assert_eq!(recovered.blobs_scanned, 2, "{recovered:?}");
    }
}
