//! `xus::torrent::format::CommitTorrent::parse`, `info_from_torrent_file` and
//! `webseeds_from_torrent_file` on arbitrary bytes.
//!
//! Each input is tried as an info dictionary and as a `.torrent` file. Random
//! bytes almost never get past the hash links (`name` is the commit's id, the
//! commit names the root tree, trees name their subtrees and symlink blobs), so
//! each input is also tried once more *repaired*: those ids, the piece length
//! and the sizes of `pieces` and `xus.weak` are recomputed from what the input
//! carries, which lets the fuzzer reach the walk, the file list and the
//! canonical re-encoding check.
//!
//! Invariants on every accepted torrent: its bytes and infohash are the input's,
//! it wraps into a `.torrent` and a magnet that read back, and its pieces cover
//! the payload exactly.

#![no_main]

use libfuzzer_sys::fuzz_target;
use xus::torrent::bencode::{Limits, Owned, Spanned, Value, decode};
use xus::torrent::format::{
    CommitTorrent, info_from_torrent_file, piece_length_for, sha1_of, webseeds_from_torrent_file,
};
use xus::git::object::{EntryKind, ObjectId, parse_tree};
use xus::torrent::magnet::Magnet;

fuzz_target!(|data: &[u8]| {
    check_info(data);
    if let Ok(info) = info_from_torrent_file(data) {
        assert!(decode(info, Limits::default()).is_ok());
        check_info(info);
    }
    let _ = webseeds_from_torrent_file(data);
    if let Some(repaired) = repair(data).filter(|r| r != data) {
        check_info(&repaired);
    }
});

fn check_info(info: &[u8]) {
    let Ok(t) = CommitTorrent::parse(info) else {
        return;
    };
    assert_eq!(t.info_bytes, info);
    assert_eq!(t.info_hash, xus::torrent::info_hash::InfoHash(sha1_of(info)));
    assert_eq!(t.commit, ObjectId::for_object("commit", &t.commit_raw));

    let seeds = vec!["http://127.0.0.1:1/".to_owned()];
    let file = t.torrent_file(&seeds);
    assert_eq!(info_from_torrent_file(&file).ok(), Some(info));
    assert_eq!(webseeds_from_torrent_file(&file).ok(), Some(seeds));
    let bare = t.torrent_file(&[]);
    assert_eq!(webseeds_from_torrent_file(&bare).ok(), Some(Vec::new()));

    let magnet = Magnet::parse(&t.magnet(&[])).expect("own magnet parses");
    assert_eq!(magnet.info_hash, t.info_hash);

    let mut covered = 0;
    for i in 0..t.piece_count() {
        let (offset, len) = t.piece_span(i);
        assert_eq!(offset, covered, "pieces leave a gap or overlap");
        let segments: u64 = t.piece_segments(i).iter().map(|s| s.2).sum();
        assert_eq!(segments, len, "piece {i} segments do not add up");
        covered += len;
    }
    assert_eq!(covered, t.total_length());
}

fn to_owned(v: &Spanned<'_>) -> Owned {
    match &v.value {
        Value::Int(i) => Owned::Int(*i),
        Value::Bytes(b) => Owned::bytes(b),
        Value::List(items) => Owned::List(items.iter().map(to_owned).collect()),
        Value::Dict(entries) => Owned::Dict(
            entries
                .iter()
                .map(|(k, v)| (k.to_vec(), to_owned(v)))
                .collect(),
        ),
    }
}

/// Recomputes every id and size an info dictionary derives from what it
/// carries, keeping everything else as the fuzzer wrote it.
fn repair(data: &[u8]) -> Option<Vec<u8>> {
    let Owned::Dict(mut info) = to_owned(&decode(data, Limits::default()).ok()?) else {
        return None;
    };

    let mut total = 0u64;
    if let Some(Owned::List(files)) = info.get(&b"files"[..]) {
        for f in files {
            if let Owned::Dict(f) = f
                && let Some(Owned::Int(len)) = f.get(&b"length"[..])
            {
                total = total.saturating_add(u64::try_from(*len).unwrap_or(0));
            }
        }
    }
    let piece_length = piece_length_for(total);
    let pieces = usize::try_from(total.div_ceil(piece_length))
        .ok()
        .filter(|&n| n <= 1 << 16)?;
    info.insert(
        b"piece length".to_vec(),
        Owned::Int(i64::try_from(piece_length).ok()?),
    );
    if let Some(Owned::Bytes(hashes)) = info.get_mut(&b"pieces"[..]) {
        hashes.resize(pieces * 20, 0);
    }

    let Some(Owned::Dict(xus)) = info.get_mut(&b"xus"[..]) else {
        return None;
    };
    if let Some(Owned::Bytes(weak)) = xus.get_mut(&b"weak"[..]) {
        weak.resize(pieces * 4, 0);
    }
    let links: Vec<Vec<u8>> = match xus.get(&b"links"[..]) {
        Some(Owned::List(l)) => l
            .iter()
            .filter_map(|t| match t {
                Owned::Bytes(b) => Some(b.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let mut root = None;
    if let Some(Owned::List(trees)) = xus.get_mut(&b"trees"[..]) {
        // Bottom up: a tree may only point at trees carried after it.
        let mut ids = vec![None; trees.len()];
        for i in (0..trees.len()).rev() {
            let Owned::Bytes(raw) = &mut trees[i] else {
                continue;
            };
            if let Some(relinked) = relink(raw, i, &ids, &links) {
                *raw = relinked;
            }
            ids[i] = Some(ObjectId::for_object("tree", raw));
        }
        root = ids.first().copied().flatten();
    }
    let Some(Owned::Bytes(commit)) = xus.get_mut(&b"commit"[..]) else {
        return None;
    };
    if let Some(root) = root
        && commit.starts_with(b"tree ")
        && commit.len() > 45
    {
        commit[5..45].copy_from_slice(root.to_hex().as_bytes());
        commit[45] = b'\n';
    }
    let name = ObjectId::for_object("commit", commit).to_hex();
    info.insert(b"name".to_vec(), Owned::bytes(name));
    Some(Owned::Dict(info).encode())
}

/// Tree `i` rewritten so its subtree entries name trees carried after it and
/// its symlinks name carried targets (picked by the first byte of the old id).
fn relink(raw: &[u8], i: usize, ids: &[Option<ObjectId>], links: &[Vec<u8>]) -> Option<Vec<u8>> {
    let entries = parse_tree(raw).ok()?;
    let mut out = Vec::with_capacity(raw.len());
    for e in entries {
        let pick = usize::from(e.id.0[0]);
        let later = ids.len() - i - 1;
        let id = match e.kind {
            EntryKind::Tree if later > 0 => ids[i + 1 + pick % later].unwrap_or(e.id),
            EntryKind::Symlink if !links.is_empty() => {
                ObjectId::for_object("blob", &links[pick % links.len()])
            }
            _ => e.id,
        };
        out.extend_from_slice(e.mode);
        out.push(b' ');
        out.extend_from_slice(e.name);
        out.push(0);
        out.extend_from_slice(&id.0);
    }
    Some(out)
}
