//! Properties of the commit torrent format, checked on generated input:
//!
//! (a) the info dictionary is a function of the commit alone, whatever the
//!     repository's object storage (loose, packed and delta-compressed,
//!     cloned) and whatever hints the builder is given;
//! (b) generated trees survive build -> parse -> import into an empty
//!     repository as the very same commit, fsck-clean;
//! (c) parsing mutated metadata never panics, and whatever still parses is
//!     the same commit with the same trees (nothing that fails to hash-chain
//!     to the commit is ever accepted).

mod util;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use git2::{Oid, Repository};
use proptest::prelude::*;
use proptest::test_runner::Config;
use xus::git::object::{self, ObjectId};
use xus::torrent::bencode::Owned;
use xus::torrent::format::{self, CommitTorrent, FormatError};

use util::fixtures::{at, decode_owned};
use util::{assert_fsck_clean, git, git_output};

// ---------------------------------------------------------------------------
// Generated trees.

/// A generated tree entry.
#[derive(Debug, Clone)]
enum Node {
    File { data: Vec<u8>, exec: bool },
    Link(Vec<u8>),
    Gitlink([u8; 20]),
    Dir(BTreeMap<Vec<u8>, Node>),
}

/// Names Git and xus both accept, including bytes that are not UTF-8. Left
/// out: what xus refuses (`/`, `\`, NUL, `.`, `..`, `.git`), `%` (so that no
/// two generated names escape to the same torrent path) and what `git fsck
/// --strict` flags as a `.git` look-alike (a leading `.g`, `~`).
fn name() -> impl Strategy<Value = Vec<u8>> {
    let ascii = proptest::sample::select(
        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._- +=,;'\"!#$&()[]{}@^`"
            .to_vec(),
    );
    let byte = prop_oneof![
        6 => ascii.clone(),
        1 => 0x80u8..=0xff,
        1 => 0x01u8..0x20,
    ];
    prop_oneof![
        proptest::collection::vec(ascii, 1..12),
        proptest::collection::vec(byte, 1..12),
    ]
    .prop_filter("unsafe or fsck-flagged name", |n| {
        let bad = [b'/', b'\\', 0, b'%', b'~'];
        n.iter().all(|b| !bad.contains(b))
            && n != b"."
            && n != b".."
            && !(n.len() > 1 && n[0] == b'.' && n[1].eq_ignore_ascii_case(&b'g'))
    })
}

/// Symlink targets: any bytes but NUL, no `g` (so no `.git` component).
fn link_target() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            4 => proptest::sample::select(b"abcdef0123456789/._-".to_vec()),
            1 => 0x80u8..=0xff,
        ],
        1..40,
    )
}

fn contents() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => Just(Vec::new()),
        // A few fixed contents so blobs repeat across paths.
        2 => (0u8..4).prop_map(|i| vec![b'a' + i; 100 + usize::from(i)]),
        4 => proptest::collection::vec(any::<u8>(), 0..3000),
        1 => proptest::collection::vec(any::<u8>(), 15_000..40_000),
    ]
}

fn leaf() -> impl Strategy<Value = Node> {
    prop_oneof![
        8 => (contents(), proptest::bool::weighted(0.3))
            .prop_map(|(data, exec)| Node::File { data, exec }),
        2 => link_target().prop_map(Node::Link),
        1 => any::<[u8; 20]>().prop_map(Node::Gitlink),
        1 => Just(Node::Dir(BTreeMap::new())),
    ]
}

fn node() -> impl Strategy<Value = Node> {
    leaf().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::btree_map(name(), inner.clone(), 0..6).prop_map(Node::Dir),
            // The same subtree under two names.
            (name(), name(), inner).prop_map(|(a, b, sub)| {
                let mut dir = BTreeMap::new();
                dir.insert(a, sub.clone());
                dir.insert(b, sub);
                Node::Dir(dir)
            }),
        ]
    })
}

/// A root directory; sometimes every file in it is empty, so that the
/// torrent carries the commit file instead.
fn root() -> impl Strategy<Value = BTreeMap<Vec<u8>, Node>> {
    (
        proptest::collection::btree_map(name(), node(), 0..8),
        node(),
        proptest::bool::weighted(0.15),
    )
        .prop_map(|(mut map, extra, all_empty)| {
            map.insert(b"extra".to_vec(), extra);
            if all_empty {
                map.values_mut().for_each(empty_files);
            }
            map
        })
}

fn empty_files(node: &mut Node) {
    match node {
        Node::File { data, .. } => data.clear(),
        Node::Dir(dir) => dir.values_mut().for_each(empty_files),
        _ => {}
    }
}

/// Writes a tree with git2, returning its id.
fn write_tree(repo: &Repository, dir: &BTreeMap<Vec<u8>, Node>) -> Oid {
    let mut builder = repo.treebuilder(None).expect("treebuilder");
    for (name, node) in dir {
        let (id, mode) = match node {
            Node::File { data, exec } => (
                repo.blob(data).expect("blob"),
                if *exec { 0o100755 } else { 0o100644 },
            ),
            Node::Link(target) => (repo.blob(target).expect("blob"), 0o120000),
            Node::Gitlink(id) => (Oid::from_bytes(id).expect("oid"), 0o160000),
            Node::Dir(sub) => (write_tree(repo, sub), 0o040000),
        };
        builder
            .insert(name.as_slice(), id, mode)
            .unwrap_or_else(|e| panic!("inserting {name:?}: {e}"));
    }
    builder.write().expect("write tree")
}

/// Commits `dir` with a fixed identity; `refs/heads/main` points at it.
fn commit(repo: &Repository, dir: &BTreeMap<Vec<u8>, Node>, parents: &[Oid]) -> ObjectId {
    let tree = repo.find_tree(write_tree(repo, dir)).expect("written tree");
    let time = git2::Time::new(1_767_225_600, 0);
    let sig = git2::Signature::new("Test Author", "author@example.invalid", &time).expect("sig");
    let parents: Vec<git2::Commit<'_>> = parents
        .iter()
        .map(|p| repo.find_commit(*p).expect("parent"))
        .collect();
    let parent_refs: Vec<&git2::Commit<'_>> = parents.iter().collect();
    let id = repo
        .commit(
            Some("refs/heads/main"),
            &sig,
            &sig,
            "generated\n",
            &tree,
            &parent_refs,
        )
        .expect("commit");
    ObjectId::from_git(id).expect("sha1")
}

fn init(path: &Path) -> Repository {
    let repo = Repository::init(path).expect("init");
    // Keep every object loose: nothing here may trigger an automatic pack.
    repo.config()
        .and_then(|mut c| c.set_i32("gc.auto", 0))
        .expect("config");
    repo
}

fn count_objects(repo: &Path) -> BTreeMap<String, String> {
    git(repo, &["count-objects", "-v"])
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

// ---------------------------------------------------------------------------
// (a) Determinism.

/// Files whose second version is a small edit of the first, so that an
/// aggressive repack stores one as a delta of the other.
fn delta_pair(seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut rng = util::fixtures::Prng(seed);
    let base: Vec<u8> = (0..30_000)
        .map(|_| b"abcdefghij \n"[(rng.next_u64() % 12) as usize])
        .collect();
    let mut edited = base.clone();
    edited.splice(15_000..15_010, b"<edited here>".iter().copied());
    (base, edited)
}

proptest! {
    #![proptest_config(Config { cases: 16, ..Config::default() })]

    #[test]
    fn same_commit_same_info_dict_whatever_the_storage(
        first in root(),
        second in root(),
        seed in any::<u64>(),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let loose_path = dir.path().join("loose");
        let loose = init(&loose_path);
        let (base, edited) = delta_pair(seed);
        let mut first = first;
        first.insert(b"delta".to_vec(), Node::File { data: base, exec: false });
        let parent = commit(&loose, &first, &[]);
        // The child keeps some of the parent's files and changes others.
        let mut child = first.clone();
        child.extend(second);
        child.insert(b"delta".to_vec(), Node::File { data: edited, exec: false });
        let id = commit(&loose, &child, &[parent.to_git()]);
        let loose_count = count_objects(&loose_path);
        prop_assert_eq!(loose_count["in-pack"].as_str(), "0");

        let src = loose_path.to_str().expect("utf8");
        git(dir.path(), &["clone", "-q", "--no-local", "--bare", src, "cloned"]);
        git(dir.path(), &["clone", "-q", "--bare", src, "aggressive"]);
        let aggressive_path = dir.path().join("aggressive");
        git(&aggressive_path, &["gc", "-q", "--aggressive", "--prune=now"]);
        git(&aggressive_path, &["repack", "-q", "-adf", "--depth=50", "--window=250"]);
        let packed = count_objects(&aggressive_path);
        prop_assert_eq!(packed["count"].as_str(), "0", "{:?}", packed);

        let reference = format::build(&loose, id).expect("build from loose objects");
        for other in ["cloned", "aggressive"] {
            let repo = Repository::open(dir.path().join(other)).expect("open");
            let t = format::build(&repo, id).expect("build from packs");
            prop_assert!(t.info_bytes == reference.info_bytes, "{} differs", other);
            prop_assert_eq!(t.info_hash, reference.info_hash);
        }
        // Hints (the parent's torrent, or an unrelated one) only save work.
        let parent_torrent = format::build(&loose, parent).expect("build parent");
        let hinted = format::build_with_hints(&loose, id, std::slice::from_ref(&parent_torrent))
            .expect("build with hints");
        prop_assert!(hinted.info_bytes == reference.info_bytes, "hinted build differs");
        let self_hinted = format::build_with_hints(&loose, id, &[reference.clone(), parent_torrent])
            .expect("build with hints");
        prop_assert!(self_hinted.info_bytes == reference.info_bytes);
        // And parsing gives back exactly what was built.
        let parsed = CommitTorrent::parse(&reference.info_bytes).expect("parse");
        prop_assert_eq!(parsed.info_hash, reference.info_hash);
        prop_assert_eq!(parsed.files, reference.files);
    }
}

// ---------------------------------------------------------------------------
// (b) Round trip through the library.

/// Regular files, symlinks and gitlinks of a tree, depth first in tree
/// order, as `git ls-tree -r` lists them: an oracle independent of xus.
fn ls_tree(repo: &Path, commit: ObjectId) -> Vec<(String, Vec<u8>, String)> {
    let out = git_output(repo, &["ls-tree", "-r", "-z", &commit.to_hex()]);
    assert!(out.status.success());
    out.stdout
        .split(|&b| b == 0)
        .filter(|l| !l.is_empty())
        .map(|line| {
            let tab = line.iter().position(|&b| b == b'\t').expect("tab");
            let meta = String::from_utf8(line[..tab].to_vec()).expect("ascii");
            let mut words = meta.split(' ');
            let mode = words.next().expect("mode").to_owned();
            let _kind = words.next();
            let id = words.next().expect("id").to_owned();
            (mode, line[tab + 1..].to_vec(), id)
        })
        .collect()
}

proptest! {
    #![proptest_config(Config { cases: 48, ..Config::default() })]

    #[test]
    fn generated_trees_round_trip(tree in root(), preload in any::<u64>()) {
        let dir = tempfile::tempdir().expect("tempdir");
        let src_path = dir.path().join("src");
        let src = init(&src_path);
        let id = commit(&src, &tree, &[]);
        let torrent = format::build(&src, id).expect("build");
        let parsed = CommitTorrent::parse(&torrent.info_bytes).expect("parse");
        prop_assert_eq!(parsed.commit, id);
        prop_assert_eq!(&parsed.commit_raw, &torrent.commit_raw);
        prop_assert_eq!(&parsed.trees, &torrent.trees);
        prop_assert_eq!(&parsed.files, &torrent.files);
        prop_assert_eq!(&parsed.links, &torrent.links);
        prop_assert_eq!(&parsed.piece_hashes, &torrent.piece_hashes);

        // Files and links are exactly Git's own walk, in Git's order.
        let listing = ls_tree(&src_path, id);
        let join = |raw: &[Vec<u8>]| raw.join(&b'/');
        let git_files: Vec<(Vec<u8>, String, bool)> = listing
            .iter()
            .filter(|(mode, _, _)| mode.starts_with("100"))
            .map(|(mode, path, blob)| (path.clone(), blob.clone(), mode == "100755"))
            .collect();
        let xus_files: Vec<(Vec<u8>, String, bool)> = parsed
            .files
            .iter()
            .filter_map(|f| f.blob.map(|b| (join(&f.raw_path), b.to_hex(), f.executable)))
            .collect();
        prop_assert_eq!(xus_files, git_files);
        let git_links: Vec<Vec<u8>> = listing
            .iter()
            .filter(|(mode, _, _)| mode == "120000")
            .map(|(_, path, _)| path.clone())
            .collect();
        let xus_links: Vec<Vec<u8>> = parsed.links.iter().map(|l| join(&l.raw_path)).collect();
        prop_assert_eq!(xus_links, git_links);
        let total: u64 = parsed.files.iter().filter(|f| f.blob.is_some()).map(|f| f.length).sum();
        prop_assert_eq!(parsed.files.len() > git_files_len(&listing), total == 0);

        // Stage the downloaded bytes from the source's blobs at their torrent
        // offsets, as a fetch would; some blobs are already in the target (as
        // after an earlier fetch), their bytes are not staged.
        let dst_path = dir.path().join("dst");
        let dst = init(&dst_path);
        let payload_path = dir.path().join("payload");
        let payload = std::fs::File::create(&payload_path).expect("payload");
        for (i, f) in parsed.files.iter().enumerate() {
            let Some(blob) = f.blob else { continue };
            let data = src.find_blob(blob.to_git()).expect("source blob").content().to_vec();
            prop_assert_eq!(data.len() as u64, f.length);
            if (preload >> (i % 64)) & 1 == 1 {
                dst.blob(&data).expect("preload blob");
            } else {
                use std::os::unix::fs::FileExt;
                payload.write_all_at(&data, f.offset).expect("stage");
            }
        }
        drop(payload);
        xus::torrent::import::import(&dst, &parsed, &payload_path).expect("import");
        xus::torrent::import::set_refs(&dst, id, &xus::torrent::import::RefOptions {
            branch: Some("main".into()),
            ..Default::default()
        })
        .expect("set refs");
        prop_assert_eq!(
            dst.refname_to_id("refs/heads/main").expect("main"),
            id.to_git()
        );
        prop_assert!(!dst_path.join(".git/shallow").exists());
        assert_fsck_clean(&dst_path);
        // Rebuilding in the target gives the same torrent.
        let again = format::build(&dst, id).expect("rebuild in target");
        prop_assert!(again.info_bytes == torrent.info_bytes);
    }
}

fn git_files_len(listing: &[(String, Vec<u8>, String)]) -> usize {
    listing
        .iter()
        .filter(|(m, _, _)| m.starts_with("100"))
        .count()
}

// ---------------------------------------------------------------------------
// (c) Mutated metadata.

/// A real info dictionary with several trees, an executable, symlinks, a
/// gitlink, an empty file, a shared subtree and non-UTF-8 names; several
/// pieces.
fn sample() -> &'static CommitTorrent {
    static SAMPLE: OnceLock<CommitTorrent> = OnceLock::new();
    SAMPLE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = init(dir.path());
        let file = |data: &[u8], exec| Node::File {
            data: data.to_vec(),
            exec,
        };
        let mut sub = BTreeMap::new();
        sub.insert(b"inner".to_vec(), file(b"inner\n", false));
        sub.insert(b"caf\xe9".to_vec(), file(&[7; 20_000], true));
        sub.insert(b"up".to_vec(), Node::Link(b"../top".to_vec()));
        let mut top = BTreeMap::new();
        top.insert(b"a".to_vec(), Node::Dir(sub.clone()));
        top.insert(b"b".to_vec(), Node::Dir(sub));
        top.insert(b"empty".to_vec(), file(b"", false));
        top.insert(
            b"top".to_vec(),
            file(&util::fixtures::Prng(3).bytes(50_000), false),
        );
        top.insert(b"link".to_vec(), Node::Link(b"top".to_vec()));
        top.insert(b"module".to_vec(), Node::Gitlink([9; 20]));
        top.insert(b"void".to_vec(), Node::Dir(BTreeMap::new()));
        let id = commit(&repo, &top, &[]);
        let t = format::build(&repo, id).expect("build sample");
        assert!(t.trees.len() >= 3 && t.piece_count() >= 3 && t.links.len() == 3);
        t
    })
}

/// What must hold of anything `parse` accepts, given the real dictionary it
/// was mutated from.
fn check_accepted(original: &CommitTorrent, bytes: &[u8], t: &CommitTorrent) {
    assert_eq!(t.info_bytes, bytes);
    assert_eq!(
        t.info_hash,
        xus::torrent::info_hash::InfoHash(format::sha1_of(bytes))
    );
    assert_eq!(
        t.info_hash == original.info_hash,
        bytes == original.info_bytes.as_slice()
    );
    // The commit is the name, and the trees chain to it by hash.
    assert_eq!(t.commit, ObjectId::for_object("commit", &t.commit_raw));
    assert_eq!(
        object::commit_tree(&t.commit_raw).expect("commit tree"),
        t.trees[0].0
    );
    for (id, raw) in &t.trees {
        assert_eq!(*id, ObjectId::for_object("tree", raw));
    }
    for link in &t.links {
        assert_eq!(link.blob, ObjectId::for_object("blob", &link.target));
    }
    // No random mutation forges another commit: everything the commit
    // determines is unchanged. Only what the trees cannot pin (lengths,
    // piece hashes, weak sums) may differ, and the download checks those.
    assert_eq!(t.commit, original.commit);
    assert_eq!(t.trees, original.trees);
    assert_eq!(t.links, original.links);
    let shape = |t: &CommitTorrent| {
        t.files
            .iter()
            .map(|f| (f.raw_path.clone(), f.path.clone(), f.blob, f.executable))
            .collect::<Vec<_>>()
    };
    assert_eq!(shape(t), shape(original));
}

fn parse_and_check(bytes: &[u8]) {
    let original = sample();
    if let Ok(t) = CommitTorrent::parse(bytes) {
        check_accepted(original, bytes, &t);
    }
    let _ = format::info_from_torrent_file(bytes);
    let _ = format::info_from_torrent_file(&util::fixtures::torrent_file(bytes));
}

/// Applies operation `op` to the `target`-th node (pre-order) of `value`;
/// returns whether it was reached.
fn mutate(value: &mut Owned, target: &mut usize, op: u64) -> bool {
    if *target == 0 {
        let pick = (op >> 8) as usize;
        match value {
            Owned::Int(i) => {
                *i = match op % 7 {
                    0 => i.wrapping_add(1),
                    1 => i.wrapping_sub(1),
                    2 => i.wrapping_mul(2),
                    3 => 0,
                    4 => -*i,
                    5 => i64::MAX,
                    _ => 1 << 50,
                }
            }
            Owned::Bytes(b) => match op % 6 {
                0 if !b.is_empty() => {
                    let n = b.len();
                    b[pick % n] ^= 1 << (op % 8);
                }
                1 => b.truncate(pick % (b.len() + 1)),
                2 => b.push(pick as u8),
                3 => b.clear(),
                4 => *value = Owned::Int(pick as i64),
                _ => *value = Owned::List(vec![Owned::Bytes(b.clone())]),
            },
            Owned::List(items) => match op % 5 {
                0 if !items.is_empty() => {
                    let n = items.len();
                    items.remove(pick % n);
                }
                1 if !items.is_empty() => {
                    let n = items.len();
                    let item = items[pick % n].clone();
                    items.insert(pick % n, item);
                }
                2 if items.len() > 1 => {
                    let n = items.len();
                    items.swap(pick % n, (pick / n) % n);
                }
                3 => items.reverse(),
                _ => items.clear(),
            },
            Owned::Dict(entries) => match op % 3 {
                0 if !entries.is_empty() => {
                    let key = entries.keys().nth(pick % entries.len()).cloned();
                    entries.remove(&key.expect("key"));
                }
                1 => {
                    entries.insert(b"zz-extra".to_vec(), Owned::Int(1));
                }
                _ => *value = Owned::Bytes(b"not a dict".to_vec()),
            },
            Owned::Raw(_) => {}
        }
        return true;
    }
    *target -= 1;
    match value {
        Owned::List(items) => items.iter_mut().any(|v| mutate(v, target, op)),
        Owned::Dict(entries) => entries.values_mut().any(|v| mutate(v, target, op)),
        _ => false,
    }
}

fn node_count(value: &Owned) -> usize {
    1 + match value {
        Owned::List(items) => items.iter().map(node_count).sum(),
        Owned::Dict(entries) => entries.values().map(node_count).sum(),
        _ => 0,
    }
}

proptest! {
    #![proptest_config(Config { cases: 2000, ..Config::default() })]

    #[test]
    fn flipped_bytes(flips in proptest::collection::vec((any::<usize>(), 1u8..=255), 1..4)) {
        let mut bytes = sample().info_bytes.clone();
        for (at, mask) in flips {
            let n = bytes.len();
            bytes[at % n] ^= mask;
        }
        parse_and_check(&bytes);
    }

    #[test]
    fn spliced_bytes(
        at in any::<usize>(),
        cut in 0usize..64,
        insert in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = sample().info_bytes.clone();
        let start = at % bytes.len();
        let end = (start + cut).min(bytes.len());
        bytes.splice(start..end, insert);
        parse_and_check(&bytes);
    }

    #[test]
    fn structured_mutations(target in any::<usize>(), op in any::<u64>(), op2 in any::<u64>()) {
        let mut value = decode_owned(&sample().info_bytes);
        let count = node_count(&value);
        let mut t = target % count;
        prop_assert!(mutate(&mut value, &mut t, op));
        // Sometimes a second, independent edit.
        if op2 % 3 == 0 {
            let mut t = (target / count) % node_count(&value);
            mutate(&mut value, &mut t, op2);
        }
        parse_and_check(&value.encode());
    }

    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        parse_and_check(&bytes);
    }
}

#[test]
fn every_truncation_is_refused() {
    let bytes = &sample().info_bytes;
    for len in 0..bytes.len() {
        assert!(
            CommitTorrent::parse(&bytes[..len]).is_err(),
            "prefix of {len} bytes accepted"
        );
    }
}

/// Hand-made inconsistencies between the trees and the commit: each is
/// well-formed bencode in canonical v1 layout, and each must be refused.
#[test]
fn trees_that_do_not_chain_to_the_commit_are_refused() {
    let original = sample();
    let base = decode_owned(&original.info_bytes);
    let trees = |v: &Owned| match v {
        Owned::List(items) => items.clone(),
        _ => panic!("trees"),
    };
    let all = trees(at(&mut base.clone(), &["xus", "trees"]));
    let empty_tree = Owned::Bytes(Vec::new());
    let mut cases: Vec<(&str, Vec<Owned>)> = vec![
        ("reversed", all.iter().rev().cloned().collect()),
        ("root missing", all[1..].to_vec()),
        ("last subtree missing", all[..all.len() - 1].to_vec()),
        (
            "extra tree",
            [all.clone(), vec![empty_tree.clone()]].concat(),
        ),
        ("root twice", [vec![all[0].clone()], all.clone()].concat()),
        ("no trees", Vec::new()),
    ];
    // A subtree replaced by another well-formed tree: its id changes, so the
    // tree naming it no longer chains.
    let mut replaced = all.clone();
    let mut other = match &all[1] {
        Owned::Bytes(b) => b.clone(),
        _ => panic!("tree bytes"),
    };
    other.extend_from_slice(b"100644 zzz\0");
    other.extend_from_slice(&[0x11; 20]);
    replaced[1] = Owned::Bytes(other);
    cases.push(("subtree swapped for another", replaced));
    // The root swapped for a sibling subtree.
    let mut swapped = all.clone();
    swapped.swap(0, 1);
    cases.push(("root and subtree swapped", swapped));

    for (what, list) in cases {
        let mut value = base.clone();
        *at(&mut value, &["xus", "trees"]) = Owned::List(list);
        let bytes = value.encode();
        match CommitTorrent::parse(&bytes) {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => assert!(
                matches!(e, FormatError::Mismatch(_) | FormatError::MissingTree(_)),
                "{what}: unexpected error {e}"
            ),
        }
    }

    // A commit naming another tree, with the name updated to match: the
    // carried trees do not belong to it.
    let mut value = base.clone();
    let commit_raw = util::fixtures::raw_commit_of(&ObjectId([0x22; 20]).to_hex(), "other");
    let name = ObjectId::for_object("commit", &commit_raw).to_hex();
    *at(&mut value, &["xus", "commit"]) = Owned::Bytes(commit_raw);
    *at(&mut value, &["name"]) = Owned::bytes(name);
    let err = CommitTorrent::parse(&value.encode()).expect_err("foreign commit accepted");
    assert!(matches!(err, FormatError::MissingTree(_)), "{err}");

    // The right trees, wrong symlink target.
    let mut value = base.clone();
    *at(&mut value, &["xus", "links"]) = Owned::List(vec![
        Owned::bytes("../top"),
        Owned::bytes("elsewhere"),
        Owned::bytes("../top"),
    ]);
    let err = CommitTorrent::parse(&value.encode()).expect_err("wrong link accepted");
    assert!(matches!(err, FormatError::Mismatch(_)), "{err}");
}

/// Generated trees never make the builder produce something its own parser
/// refuses, and the parse is stable under re-encoding.
#[test]
fn sample_parses_to_itself() {
    let t = sample();
    let again = CommitTorrent::parse(&t.info_bytes).expect("parse");
    assert_eq!(again.info_hash, t.info_hash);
    assert_eq!(decode_owned(&t.info_bytes).encode(), t.info_bytes);
}
