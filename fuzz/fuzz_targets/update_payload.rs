//! `xus::torrent::update::payload::decode` and `UpdateTorrent::parse` on
//! arbitrary bytes: what a reader gets from anyone seeding an update torrent.
//!
//! Each input is tried as a payload, as a payload behind the magic (so the
//! fuzzer does not spend its time finding eight bytes), and as an update
//! info dictionary.
//!
//! Invariants: no panic, allocations within a small multiple of the input; an accepted
//! payload is canonical (encoding it again gives the input), carries at
//! least one object, ends with its `to` commit and names no id twice; an
//! accepted info dictionary keeps the input bytes, wraps into a `.torrent`
//! that reads back, and has one piece hash per piece.

#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use xus::torrent::format::info_from_torrent_file;
use xus::torrent::update::payload::{self, Limits, MAGIC};
use xus::torrent::update::{ObjectKind, UpdateTorrent};

fuzz_target!(|data: &[u8]| {
    check_payload(data);
    let mut prefixed = MAGIC.to_vec();
    prefixed.extend_from_slice(data);
    check_payload(&prefixed);
    check_torrent(data);
});

fn check_payload(bytes: &[u8]) {
    let Ok(p) = payload::decode(bytes, &Limits::default()) else {
        return;
    };
    assert_eq!(
        payload::encode(p.from, p.to, &p.objects).expect("an accepted payload encodes"),
        bytes,
        "an accepted payload is not canonical"
    );
    assert_eq!(payload::encoded_len(&p.objects), bytes.len() as u64);
    let last = p.objects.last().expect("at least one object");
    assert_eq!((last.kind, last.id), (ObjectKind::Commit, p.to));
    assert_ne!(p.from, p.to);
    let mut ids = HashSet::new();
    for o in &p.objects {
        assert!(ids.insert(o.id), "id carried twice");
        assert!(o.frame.len() as u64 <= payload::frame_bound(o.size));
        assert_ne!(o.base, Some(o.id));
    }
}

fn check_torrent(info: &[u8]) {
    let Ok(t) = UpdateTorrent::parse(info) else {
        return;
    };
    assert_eq!(t.info_bytes, info);
    assert_eq!(t.info_hash().0, xus::torrent::format::sha1_of(info));
    assert_eq!(t.name(), UpdateTorrent::file_name(t.from, t.to));
    assert_eq!(
        t.piece_hashes.len() as u64,
        t.length.div_ceil(t.piece_length)
    );
    let file = t.torrent_file(&["http://127.0.0.1:1/".to_owned()]);
    assert_eq!(info_from_torrent_file(&file).ok(), Some(info));
}
