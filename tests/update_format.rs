//! Update torrents against real Git repositories: a generated history with
//! renames, moved content, a shifted binary, deletions, mode changes,
//! symlinks, a submodule and an empty tree. Every update, applied to a
//! repository holding only its `from` commit, yields exactly the objects of
//! `to` that `from` lacks, and the written result is `git fsck` clean;
//! forged or corrupted payloads are refused with nothing returned.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::Command;

use git2::{ObjectType, Oid, Repository};
use xus::git::object::ObjectId;
use xus::torrent::update::payload::{self, Frame};
use xus::torrent::update::{
    Limits, NOTHING, ObjectKind, PayloadError, UpdateError, UpdateSettings, UpdateTorrent,
    apply_update, apply_update_with, build_history, build_update,
};

/// One entry of a generated tree.
#[derive(Clone)]
enum Entry {
    File(Vec<u8>),
    Exec(Vec<u8>),
    Link(&'static str),
    Gitlink(Oid),
}

type Spec = BTreeMap<String, Entry>;

fn id(oid: Oid) -> ObjectId {
    ObjectId::from_git(oid).expect("SHA-1")
}

/// Deterministic pseudo-random bytes (xorshift).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Source-like text: `lines` numbered lines.
fn text(lines: usize, tag: &str) -> Vec<u8> {
    (0..lines)
        .map(|i| format!("fn {tag}_{i}(x: u64) -> u64 {{ x.wrapping_mul({i}) ^ 0x{i:x} }}\n"))
        .collect::<String>()
        .into_bytes()
}

/// Builds the trees of `spec` (paths with `/`) and returns the root's id.
fn write_tree(repo: &Repository, spec: &Spec) -> Oid {
    let mut files: BTreeMap<String, Entry> = BTreeMap::new();
    let mut dirs: BTreeMap<String, Spec> = BTreeMap::new();
    for (path, entry) in spec {
        match path.split_once('/') {
            Some((dir, rest)) => {
                dirs.entry(dir.to_owned())
                    .or_default()
                    .insert(rest.to_owned(), entry.clone());
            }
            None => {
                files.insert(path.clone(), entry.clone());
            }
        }
    }
    let mut builder = repo.treebuilder(None).expect("treebuilder");
    for (name, entry) in files {
        let (oid, mode) = match entry {
            Entry::File(data) => (repo.blob(&data).expect("blob"), 0o100644),
            Entry::Exec(data) => (repo.blob(&data).expect("blob"), 0o100755),
            Entry::Link(target) => (repo.blob(target.as_bytes()).expect("blob"), 0o120000),
            Entry::Gitlink(commit) => (commit, 0o160000),
        };
        builder.insert(&name, oid, mode).expect("insert");
    }
    for (name, sub) in dirs {
        builder
            .insert(&name, write_tree(repo, &sub), 0o040000)
            .expect("insert tree");
    }
    builder.write().expect("write tree")
}

fn commit(repo: &Repository, spec: &Spec, parent: Option<Oid>, message: &str) -> Oid {
    let tree = repo.find_tree(write_tree(repo, spec)).expect("tree");
    let sig = git2::Signature::new(
        "Test",
        "test@example.com",
        &git2::Time::new(1_700_000_000, 0),
    )
    .expect("signature");
    let parents: Vec<git2::Commit<'_>> = parent
        .map(|p| repo.find_commit(p).expect("parent"))
        .into_iter()
        .collect();
    let refs: Vec<&git2::Commit<'_>> = parents.iter().collect();
    repo.commit(None, &sig, &sig, message, &tree, &refs)
        .expect("commit")
}

/// The history: each step exercises one kind of change.
fn history(repo: &Repository) -> Vec<Oid> {
    let submodule_v1 = Oid::from_str("1111111111111111111111111111111111111111").expect("oid");
    let submodule_v2 = Oid::from_str("2222222222222222222222222222222222222222").expect("oid");
    let binary = noise(1 << 20, 7);
    let mut lib = text(1500, "lib");
    let guide = text(400, "guide");
    let mut spec: Spec = BTreeMap::from([
        (
            "README.md".into(),
            Entry::File(b"# Project\n\nHello.\n".to_vec()),
        ),
        ("src/lib.rs".into(), Entry::File(lib.clone())),
        ("src/util.rs".into(), Entry::File(text(300, "util"))),
        ("docs/guide.md".into(), Entry::File(guide.clone())),
        ("docs/api/index.md".into(), Entry::File(text(50, "api"))),
        ("bin/tool.so".into(), Entry::File(binary.clone())),
        (
            "scripts/run.sh".into(),
            Entry::File(b"#!/bin/sh\necho run\n".to_vec()),
        ),
        ("link".into(), Entry::Link("README.md")),
        ("vendor/sub".into(), Entry::Gitlink(submodule_v1)),
    ]);
    let mut commits = vec![commit(repo, &spec, None, "initial\n")];
    let mut step = |spec: &Spec, message: &str| {
        let parent = commits.last().copied();
        commits.push(commit(repo, spec, parent, message));
    };

    // 1: small edits of a large text file and of the README.
    let at = lib.len() / 2;
    lib.splice(at..at, b"// one new line in the middle\n".iter().copied());
    spec.insert("src/lib.rs".into(), Entry::File(lib.clone()));
    spec.insert(
        "README.md".into(),
        Entry::File(b"# Project\n\nHello, world.\n".to_vec()),
    );
    step(&spec, "small edits\n");

    // 2: renames: a file to a new name (with an edit), and a whole
    // directory (with an edit to a file in it, which keeps its name).
    spec.remove("src/util.rs");
    let mut helpers = text(300, "util");
    helpers.extend_from_slice(b"// renamed from util.rs\n");
    spec.insert("src/helpers.rs".into(), Entry::File(helpers));
    spec.remove("docs/api/index.md");
    spec.insert("manual/api/index.md".into(), Entry::File(text(50, "api")));
    spec.remove("docs/guide.md");
    let mut guide = guide.clone();
    guide.extend_from_slice(b"One more line in the guide.\n");
    spec.insert("manual/guide.md".into(), Entry::File(guide.clone()));
    step(&spec, "renames\n");

    // 3: moved content: the guide's text, edited, under another name.
    spec.remove("manual/guide.md");
    let mut chapter = guide.clone();
    chapter.splice(0..0, b"# Chapter one\n".iter().copied());
    spec.insert("book/chapter-1.md".into(), Entry::File(chapter));
    step(&spec, "moved content\n");

    // 4: a shifted binary: bytes inserted near the start.
    let mut shifted = binary.clone();
    shifted.splice(1000..1000, noise(64, 99));
    spec.insert("bin/tool.so".into(), Entry::File(shifted));
    step(&spec, "rebuilt binary\n");

    // 5: a deletion, a mode change, a retargeted symlink, a submodule bump.
    spec.remove("src/helpers.rs");
    spec.insert(
        "scripts/run.sh".into(),
        Entry::Exec(b"#!/bin/sh\necho run\n".to_vec()),
    );
    spec.insert("link".into(), Entry::Link("book/chapter-1.md"));
    spec.insert("vendor/sub".into(), Entry::Gitlink(submodule_v2));
    step(&spec, "delete, chmod, symlink, submodule\n");

    // 6: the empty tree.
    step(&BTreeMap::new(), "empty\n");

    // 7: everything back, from nothing.
    step(&spec, "restored\n");
    commits
}

/// Every object a commit reaches (itself, trees, blobs; not gitlinks), and
/// its first-parent ancestors with theirs when `ancestors`.
fn closure(repo: &Repository, commit: Oid, ancestors: bool) -> HashSet<Oid> {
    fn tree(repo: &Repository, id: Oid, out: &mut HashSet<Oid>) {
        if !out.insert(id) {
            return;
        }
        let t = repo.find_tree(id).expect("tree");
        for e in t.iter() {
            match e.kind() {
                Some(ObjectType::Tree) => tree(repo, e.id(), out),
                Some(ObjectType::Blob) => {
                    out.insert(e.id());
                }
                _ => {}
            }
        }
    }
    let mut out = HashSet::new();
    let mut next = Some(commit);
    while let Some(c) = next {
        let c = repo.find_commit(c).expect("commit");
        out.insert(c.id());
        tree(repo, c.tree_id(), &mut out);
        next = if ancestors {
            c.parent_ids().next()
        } else {
            None
        };
    }
    out
}

/// Copies every object in `ids` from one repository to another.
fn copy_objects(from: &Repository, to: &Repository, ids: &HashSet<Oid>) {
    let (src, dst) = (from.odb().expect("odb"), to.odb().expect("odb"));
    for &oid in ids {
        let o = src.read(oid).expect("read");
        dst.write(o.kind(), o.data()).expect("write");
    }
}

/// A repository holding exactly `commit`, its ancestors and their objects.
fn reader_at(publisher: &Repository, commit: Oid) -> (tempfile::TempDir, Repository) {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Repository::init_bare(dir.path()).expect("init");
    copy_objects(publisher, &repo, &closure(publisher, commit, true));
    repo.reference("refs/heads/main", commit, true, "test")
        .expect("ref");
    (dir, repo)
}

/// Runs `git fsck --strict` when the git CLI is installed.
fn fsck(git_dir: &Path) {
    let out = match Command::new("git")
        .arg("--git-dir")
        .arg(git_dir)
        .args(["fsck", "--strict", "--no-dangling"])
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("git not runnable ({e}); skipping fsck");
            return;
        }
    };
    assert!(
        out.status.success(),
        "git fsck failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn publisher() -> (tempfile::TempDir, Repository, Vec<Oid>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Repository::init_bare(dir.path()).expect("init");
    let commits = history(&repo);
    (dir, repo, commits)
}

#[test]
fn every_step_of_a_history_round_trips() {
    let (_dir, publisher, commits) = publisher();
    let (_rdir, reader) = reader_at(&publisher, commits[0]);
    let settings = UpdateSettings::default();
    for pair in commits.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let update = build_update(&publisher, id(a), id(b), &settings).expect("builds");
        let again = build_update(&publisher, id(a), id(b), &settings).expect("builds");
        assert_eq!(update.payload, again.payload, "deterministic");
        let torrent = update.torrent().expect("torrent");
        torrent.check_payload(&update.payload).expect("matches");
        assert_eq!(
            UpdateTorrent::parse(&torrent.info_bytes).expect("parses"),
            torrent
        );

        let applied = apply_update(&reader, &update.payload).expect("applies");
        assert_eq!((applied.from, applied.to), (id(a), id(b)));
        let expected: HashSet<Oid> = closure(&publisher, b, false)
            .difference(&closure(&publisher, a, false))
            .copied()
            .collect();
        let got: HashSet<Oid> = applied.objects.iter().map(|o| o.1.to_git()).collect();
        assert_eq!(got, expected, "step {a} -> {b}");
        assert_eq!(applied.objects.len(), expected.len(), "no object twice");
        assert_eq!(update.stats.objects, expected.len());
        assert_eq!(
            update.stats.by_path
                + update.stats.by_name
                + update.stats.by_size
                + update.stats.no_base,
            update.stats.objects
        );
        for (kind, oid, data) in &applied.objects {
            let odb = publisher.odb().expect("odb");
            let original = odb.read(oid.to_git()).expect("read");
            assert_eq!(original.data(), &data[..], "{kind} {oid}");
        }
        assert!(reader.find_commit(b).is_err(), "apply writes nothing");
        applied.write(&reader).expect("writes");
        reader
            .reference("refs/heads/main", b, true, "update")
            .expect("ref");
        assert_eq!(
            reader.find_commit(b).expect("commit").tree_id(),
            publisher.find_commit(b).expect("commit").tree_id()
        );
        fsck(reader.path());
        eprintln!(
            "{}: {} objects, {} raw bytes, payload {} bytes; bases path {} name {} size {} none {} (dropped {})",
            String::from_utf8_lossy(publisher.find_commit(b).expect("c").message_bytes()).trim(),
            update.stats.objects,
            update.stats.bytes_raw,
            update.payload.len(),
            update.stats.by_path,
            update.stats.by_name,
            update.stats.by_size,
            update.stats.no_base,
            update.stats.base_dropped
        );
    }
}

#[test]
fn a_whole_history_round_trips_from_nothing() {
    let (_dir, publisher, commits) = publisher();
    let last = *commits.last().expect("a history");
    let settings = UpdateSettings::default();
    let update = build_update(&publisher, NOTHING, id(last), &settings).expect("builds");
    assert_eq!(update.stats.commits, commits.len(), "every commit travels");
    let dir = tempfile::tempdir().expect("tempdir");
    let reader = Repository::init_bare(dir.path()).expect("init");
    let applied = apply_update(&reader, &update.payload).expect("applies into nothing");
    assert!(!applied.descends_from && applied.shallow.is_empty());
    let got: HashSet<Oid> = applied.objects.iter().map(|o| o.1.to_git()).collect();
    assert_eq!(got, closure(&publisher, last, true), "exactly the history");
    applied.write(&reader).expect("writes");
    reader
        .reference("refs/heads/main", last, true, "history")
        .expect("ref");
    fsck(reader.path());
    assert!(!reader.path().join("shallow").exists(), "a whole history");
    // A depth keeps the newest generations; their parents become the
    // reader's shallow boundary.
    let shallow = build_history(&publisher, id(last), &settings, Some(2)).expect("builds");
    assert_eq!(shallow.stats.commits, 2.min(commits.len()));
    let dir2 = tempfile::tempdir().expect("tempdir");
    let fresh = Repository::init_bare(dir2.path()).expect("init");
    let applied = apply_update(&fresh, &shallow.payload).expect("applies");
    assert_eq!(applied.shallow.len(), 1, "one boundary commit");
    applied.write(&fresh).expect("writes");
    fresh
        .reference("refs/heads/main", last, true, "shallow")
        .expect("ref");
    fsck(fresh.path());
    let mut truncated = update.payload.clone();
    truncated.truncate(truncated.len() - 1);
    assert!(apply_update(&reader, &truncated).is_err());
    let mut to_nothing = update.payload.clone();
    to_nothing[28..48].fill(0);
    to_nothing[8..28].copy_from_slice(&id(last).0);
    assert!(matches!(
        apply_update(&reader, &to_nothing),
        Err(UpdateError::Payload(PayloadError::NullTo))
    ));
}

/// The update of step `index` (commits[index] -> commits[index + 1]).
fn update_of(
    publisher: &Repository,
    commits: &[Oid],
    index: usize,
) -> xus::torrent::update::Update {
    build_update(
        publisher,
        id(commits[index]),
        id(commits[index + 1]),
        &UpdateSettings::default(),
    )
    .expect("builds")
}

#[test]
fn small_changes_cost_little() {
    let (_dir, publisher, commits) = publisher();
    // Step 1: one line in a 90 KB file, one in the README.
    let edits = update_of(&publisher, &commits, 0);
    assert_eq!(
        edits.stats.by_path, edits.stats.objects,
        "{:?}",
        edits.stats
    );
    assert!(
        edits.payload.len() * 50 < edits.stats.bytes_raw as usize,
        "{} bytes of update for {} changed",
        edits.payload.len(),
        edits.stats.bytes_raw
    );
    // Step 2: a file renamed (base found by extension and size) and a
    // directory renamed (its edited file's base found by name).
    let renames = update_of(&publisher, &commits, 1);
    assert!(renames.stats.by_name >= 1, "{:?}", renames.stats);
    assert!(renames.stats.by_size >= 1, "{:?}", renames.stats);
    assert!(renames.payload.len() * 20 < renames.stats.bytes_raw as usize);
    // Step 3: moved content under a new name: base found by size.
    let moved = update_of(&publisher, &commits, 2);
    assert!(moved.stats.by_size >= 1, "{:?}", moved.stats);
    assert!(moved.payload.len() * 20 < moved.stats.bytes_raw as usize);
    // Step 4: 64 bytes inserted near the start of a 1 MiB random blob.
    let shifted = update_of(&publisher, &commits, 3);
    assert!(
        shifted.payload.len() < 2000,
        "{} bytes for a shifted binary",
        shifted.payload.len()
    );
    // Step 7: from the empty tree everything is new and compressed alone.
    let restored = update_of(&publisher, &commits, 6);
    assert_eq!(restored.stats.no_base, restored.stats.objects - 1);
}

#[test]
fn the_same_change_gives_the_same_bytes_in_another_repository() {
    let (_d1, one, commits) = publisher();
    let (d2, two, commits_two) = publisher();
    assert_eq!(commits, commits_two);
    // Repack the second one: pack layout must not matter.
    let gc = Command::new("git")
        .arg("--git-dir")
        .arg(d2.path())
        .args(["gc", "--aggressive", "--quiet"])
        .status();
    if let Ok(status) = gc {
        assert!(status.success());
    }
    for i in 0..commits.len() - 1 {
        let a = update_of(&one, &commits, i);
        let b = update_of(&two, &commits, i);
        assert_eq!(a.payload, b.payload, "step {i}");
        assert_eq!(
            a.torrent().expect("t").info_hash(),
            b.torrent().expect("t").info_hash()
        );
    }
}

/// One object of a payload, owned: kind, id, size, base, frame.
type OwnedObject = (ObjectKind, ObjectId, u64, Option<ObjectId>, Vec<u8>);

/// A payload decoded into owned parts, to forge.
#[derive(Clone)]
struct Owned {
    from: ObjectId,
    to: ObjectId,
    objects: Vec<OwnedObject>,
}

fn owned(bytes: &[u8]) -> Owned {
    let p = payload::decode(bytes, &payload::Limits::default()).expect("decodes");
    Owned {
        from: p.from,
        to: p.to,
        objects: p
            .objects
            .iter()
            .map(|f| (f.kind, f.id, f.size, f.base, f.frame.to_vec()))
            .collect(),
    }
}

fn encode(o: &Owned) -> Vec<u8> {
    let frames: Vec<Frame<'_>> = o
        .objects
        .iter()
        .map(|(kind, id, size, base, frame)| Frame {
            kind: *kind,
            id: *id,
            size: *size,
            base: *base,
            frame,
        })
        .collect();
    payload::encode(o.from, o.to, &frames).expect("encodes")
}

fn zstd_frame(data: &[u8], prefix: Option<&[u8]>, content_size: bool) -> Vec<u8> {
    use zstd::zstd_safe::{CCtx, CParameter};
    let mut cctx = CCtx::create();
    cctx.set_parameter(CParameter::ContentSizeFlag(content_size))
        .expect("parameter");
    if let Some(prefix) = prefix {
        cctx.ref_prefix(prefix).expect("prefix");
    }
    let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(data.len()));
    cctx.compress2(&mut out, data).expect("compresses");
    out
}

#[test]
fn forged_and_corrupted_payloads_are_refused() {
    let (_dir, publisher, commits) = publisher();
    let (_rdir, reader) = reader_at(&publisher, commits[0]);
    let update = update_of(&publisher, &commits, 0);
    let good = owned(&update.payload);
    let to = commits[1];
    let refuse = |bytes: &[u8]| -> UpdateError {
        let Err(err) = apply_update(&reader, bytes) else {
            panic!("a forged payload was accepted");
        };
        assert!(reader.find_commit(to).is_err(), "nothing written");
        eprintln!("refused: {err}");
        err
    };
    // The largest patched blob: src/lib.rs, against A's src/lib.rs.
    let blob_at = (0..good.objects.len())
        .filter(|&i| good.objects[i].0 == ObjectKind::Blob && good.objects[i].3.is_some())
        .max_by_key(|&i| good.objects[i].2)
        .expect("a patched blob");
    let blob_id = good.objects[blob_at].1;

    // A wrong object: other bytes under the blob's id and size.
    let mut forged = good.clone();
    let size = forged.objects[blob_at].2 as usize;
    forged.objects[blob_at].3 = None;
    forged.objects[blob_at].4 = zstd_frame(&vec![b'x'; size], None, true);
    match refuse(&encode(&forged)) {
        UpdateError::IdMismatch { id, .. } => assert_eq!(id, blob_id),
        other => panic!("expected an id mismatch, got {other}"),
    }

    // The same bytes declared as another kind hash to another id.
    let mut forged = good.clone();
    forged.objects[blob_at].0 = ObjectKind::Tree;
    assert!(matches!(
        refuse(&encode(&forged)),
        UpdateError::IdMismatch { .. }
    ));

    // A wrong base: another object of A, and one nobody has.
    let readme = publisher
        .find_commit(commits[0])
        .expect("c")
        .tree()
        .expect("t")
        .get_name("README.md")
        .expect("readme")
        .id();
    let mut forged = good.clone();
    forged.objects[blob_at].3 = Some(id(readme));
    assert!(matches!(
        refuse(&encode(&forged)),
        UpdateError::Decompress { .. } | UpdateError::IdMismatch { .. }
    ));
    let mut forged = good.clone();
    forged.objects[blob_at].3 = Some(ObjectId([0x5a; 20]));
    assert!(matches!(
        refuse(&encode(&forged)),
        UpdateError::MissingBase { id, .. } if id == blob_id
    ));

    // A truncated frame.
    let mut forged = good.clone();
    let frame = &mut forged.objects[blob_at].4;
    frame.truncate(frame.len() / 2);
    assert!(matches!(
        refuse(&encode(&forged)),
        UpdateError::Decompress { .. }
    ));

    // A zstd bomb: 100 MiB of zeros declared as 10 bytes, with and without
    // the size in the frame header.
    let zeros = vec![0u8; 100 << 20];
    let ten = ObjectId::for_object("blob", &[0; 10]);
    for content_size in [true, false] {
        let mut forged = good.clone();
        forged.objects.insert(
            0,
            (
                ObjectKind::Blob,
                ten,
                10,
                None,
                zstd_frame(&zeros, None, content_size),
            ),
        );
        // The decoder refuses the frame as longer than zstd writes for 10
        // bytes; a bomb small enough to pass that is refused on inflation.
        let err = refuse(&encode(&forged));
        assert!(
            matches!(
                err,
                UpdateError::Payload(PayloadError::FrameTooLarge { .. })
                    | UpdateError::Decompress { .. }
            ),
            "{err}"
        );
    }
    let small_bomb = zstd_frame(&vec![0u8; 1 << 20], None, false);
    assert!(small_bomb.len() < 64, "{}", small_bomb.len());
    let mut forged = good.clone();
    forged
        .objects
        .insert(0, (ObjectKind::Blob, ten, 10, None, small_bomb));
    assert!(matches!(refuse(&encode(&forged)), UpdateError::Decompress { id, .. } if id == ten));

    // A missing tree, and a missing blob.
    let src_tree = publisher
        .find_commit(to)
        .expect("c")
        .tree()
        .expect("t")
        .get_name("src")
        .expect("src")
        .id();
    let mut forged = good.clone();
    forged.objects.retain(|o| o.1 != id(src_tree));
    assert!(matches!(
        refuse(&encode(&forged)),
        UpdateError::Missing { kind: "tree", id: missing, .. } if missing == id(src_tree)
    ));
    let mut forged = good.clone();
    forged.objects.remove(blob_at);
    assert!(matches!(
        refuse(&encode(&forged)),
        UpdateError::Missing { kind: "blob", id, .. } if id == blob_id
    ));

    // An object nothing reaches.
    let extra = b"nobody names me".to_vec();
    let extra_id = ObjectId::for_object("blob", &extra);
    let mut forged = good.clone();
    forged.objects.insert(
        0,
        (
            ObjectKind::Blob,
            extra_id,
            extra.len() as u64,
            None,
            zstd_frame(&extra, None, true),
        ),
    );
    assert!(matches!(
        refuse(&encode(&forged)),
        UpdateError::Unreferenced(id) if id == extra_id
    ));

    // An unknown kind byte, and trailing garbage.
    let mut bytes = update.payload.clone();
    bytes[8 + 40 + 4] = 9;
    assert!(matches!(
        refuse(&bytes),
        UpdateError::Payload(PayloadError::UnknownKind { byte: 9, .. })
    ));
    let mut bytes = update.payload.clone();
    bytes.extend_from_slice(b"garbage");
    assert!(matches!(
        refuse(&bytes),
        UpdateError::Payload(PayloadError::Trailing(7))
    ));
    for cut in [1, 10, update.payload.len() / 2] {
        let bytes = &update.payload[..update.payload.len() - cut];
        assert!(matches!(refuse(bytes), UpdateError::Payload(_)));
    }

    // A reader that does not have `from`.
    let empty_dir = tempfile::tempdir().expect("tempdir");
    let empty = Repository::init_bare(empty_dir.path()).expect("init");
    assert!(matches!(
        apply_update(&empty, &update.payload),
        Err(UpdateError::MissingFrom(from)) if from == id(commits[0])
    ));

    // The genuine payload still applies.
    apply_update(&reader, &update.payload).expect("applies");
}

/// FORMAT.md's bound on one object applies to the base read for it too:
/// a small object whose frame names a large base of the reader's
/// repository is refused from the base's header, before the base is read.
/// The bound is 1 GiB ([`payload::MAX_OBJECT_SIZE`]); the test tightens it,
/// as [`Limits`] allows, to the largest object the update carries, so that
/// the base over it is A's largest blob rather than a 1 GiB one.
#[test]
fn a_base_over_the_object_bound_is_refused_before_it_is_read() {
    assert_eq!(Limits::default().max_object_size, 1 << 30);
    assert_eq!(payload::MAX_OBJECT_SIZE, 1 << 30);
    let (_dir, publisher, commits) = publisher();
    let (_rdir, reader) = reader_at(&publisher, commits[0]);
    let update = update_of(&publisher, &commits, 0);
    let applied = apply_update(&reader, &update.payload).expect("applies");
    let mut forged = owned(&update.payload);
    let tight = Limits {
        max_object_size: forged.objects.iter().map(|o| o.2).max().expect("objects"),
        ..Limits::default()
    };
    // A's largest blob, over that bound.
    let mut a_blobs = Vec::new();
    let a_tree = reader
        .find_commit(commits[0])
        .expect("A")
        .tree()
        .expect("A's tree");
    a_tree
        .walk(git2::TreeWalkMode::PreOrder, |_, entry| {
            if entry.kind() == Some(ObjectType::Blob) {
                a_blobs.push(entry.id());
            }
            git2::TreeWalkResult::Ok
        })
        .expect("walk");
    let (big_size, big_base) = a_blobs
        .iter()
        .map(|&oid| {
            let blob = reader.find_blob(oid).expect("blob");
            (blob.size() as u64, id(oid))
        })
        .max()
        .expect("A has blobs");
    assert!(
        big_size > tight.max_object_size,
        "A's largest blob ({big_size} bytes) is not over the update's largest object"
    );
    let base_bytes = reader
        .find_blob(big_base.to_git())
        .expect("blob")
        .content()
        .to_vec();
    // A small blob re-compressed against that base.
    let small = (0..forged.objects.len())
        .find(|&i| forged.objects[i].0 == ObjectKind::Blob && forged.objects[i].2 < 4096)
        .expect("a small blob");
    let small_id = forged.objects[small].1;
    let small_bytes = &applied
        .objects
        .iter()
        .find(|o| o.1 == small_id)
        .expect("rebuilt")
        .2;
    forged.objects[small].3 = Some(big_base);
    forged.objects[small].4 = zstd_frame(small_bytes, Some(&base_bytes), true);
    let bytes = encode(&forged);
    // Within the bound, the forged frame is a valid way to carry the blob.
    apply_update(&reader, &bytes).expect("applies with the default bound");
    match apply_update_with(&reader, &bytes, &tight) {
        Err(UpdateError::BaseTooLarge {
            id,
            base,
            size,
            limit,
        }) => {
            assert_eq!((id, base), (small_id, big_base));
            assert_eq!((size, limit), (big_size, tight.max_object_size));
        }
        Err(other) => panic!("expected a base over the bound, got {other}"),
        Ok(_) => panic!("a base over the bound was read"),
    }
}

#[test]
fn a_base_may_come_earlier_in_the_payload() {
    let (_dir, publisher, commits) = publisher();
    let (_rdir, reader) = reader_at(&publisher, commits[0]);
    let update = update_of(&publisher, &commits, 0);
    let mut forged = owned(&update.payload);
    let applied = apply_update(&reader, &update.payload).expect("applies");
    // Re-compress the root tree (second to last) against the first object.
    let n = forged.objects.len();
    let root = &applied.objects[n - 2];
    let first = &applied.objects[0];
    assert_eq!(root.0, ObjectKind::Tree);
    forged.objects[n - 2].3 = Some(first.1);
    forged.objects[n - 2].4 = zstd_frame(&root.2, Some(&first.2), true);
    let again = apply_update(&reader, &encode(&forged)).expect("applies");
    assert_eq!(again.objects, applied.objects);
    // A base that comes later is refused by the decoder.
    forged.objects[0].3 = Some(forged.objects[1].1);
    assert!(matches!(
        apply_update(&reader, &encode(&forged)),
        Err(UpdateError::Payload(PayloadError::BaseAfter { .. }))
    ));
}

/// A repository holding only `commit` and what its tree reaches, marked
/// shallow there (what a fetch of one commit torrent leaves).
fn shallow_reader_at(publisher: &Repository, commit: Oid) -> (tempfile::TempDir, Repository) {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Repository::init_bare(dir.path()).expect("init");
    copy_objects(publisher, &repo, &closure(publisher, commit, false));
    std::fs::write(repo.path().join("shallow"), format!("{commit}\n")).expect("shallow");
    repo.reference("refs/heads/main", commit, true, "test")
        .expect("ref");
    (dir, repo)
}

#[test]
fn an_update_over_several_commits_carries_the_history_between() {
    let (_dir, publisher, commits) = publisher();
    // A side branch forked below `from` and merged into `to`: its commit's
    // parent is missing at a shallow reader, which marks it shallow.
    let (from, tip) = (commits[1], commits[commits.len() - 1]);
    let side = {
        let c = publisher.find_commit(commits[0]).expect("commit");
        let sig = c.author();
        publisher
            .commit(None, &sig, &sig, "side", &c.tree().expect("tree"), &[&c])
            .expect("side")
    };
    let to = {
        let (t, s) = (
            publisher.find_commit(tip).expect("tip"),
            publisher.find_commit(side).expect("side"),
        );
        let sig = t.author();
        publisher
            .commit(
                None,
                &sig,
                &sig,
                "merge",
                &t.tree().expect("tree"),
                &[&t, &s],
            )
            .expect("merge")
    };
    let update =
        build_update(&publisher, id(from), id(to), &UpdateSettings::default()).expect("builds");
    let carried: HashSet<Oid> = commits[2..].iter().copied().chain([side, to]).collect();
    assert_eq!(update.stats.commits, carried.len());

    let (_rdir, reader) = shallow_reader_at(&publisher, from);
    let applied = apply_update(&reader, &update.payload).expect("applies");
    assert!(applied.descends_from, "the chain reaches `from`");
    assert_eq!(
        applied.shallow,
        vec![id(side)],
        "the side commit's parent is absent"
    );
    let got: HashSet<Oid> = applied
        .objects
        .iter()
        .filter(|o| o.0 == ObjectKind::Commit)
        .map(|o| o.1.to_git())
        .collect();
    assert_eq!(got, carried);
    applied.write(&reader).expect("writes");
    let ancestry = Command::new("git")
        .arg("--git-dir")
        .arg(reader.path())
        .args([
            "merge-base",
            "--is-ancestor",
            &from.to_string(),
            &to.to_string(),
        ])
        .status()
        .expect("git runs");
    assert!(ancestry.success(), "a fast-forward Git itself can see");
    reader
        .reference("refs/heads/main", to, true, "update")
        .expect("ref");
    fsck(reader.path());

    // An update between unrelated commits rebuilds `to` but proves nothing.
    let unrelated = update_of(&publisher, &commits, 0);
    let (_udir, other) = shallow_reader_at(&publisher, commits[0]);
    let applied = apply_update(&other, &unrelated.payload).expect("applies");
    assert!(applied.descends_from);
    let backwards = build_update(
        &publisher,
        id(commits[2]),
        id(commits[1]),
        &UpdateSettings::default(),
    )
    .expect("builds");
    let (_bdir, ahead) = shallow_reader_at(&publisher, commits[2]);
    let applied = apply_update(&ahead, &backwards.payload).expect("applies");
    assert!(!applied.descends_from, "going back is no fast-forward");
}
