//! `xus::torrent::magnet::Magnet::parse` and `parse_info_hash` on arbitrary text.
//!
//! Invariants: no panic; an accepted link escapes its values only with `%`
//! and two hex digits; a parsed magnet prints (`Display`) to a link that
//! parses back to an equal value and prints the same again; a parsed infohash
//! parses back from its hex form.

#![no_main]

use libfuzzer_sys::fuzz_target;
use xus::torrent::magnet::{Magnet, parse_info_hash};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(magnet) = Magnet::parse(text) {
        for pair in text["magnet:?".len()..].split('&') {
            let value = pair.split_once('=').map_or("", |(_, v)| v).as_bytes();
            for (i, _) in value.iter().enumerate().filter(|(_, b)| **b == b'%') {
                let hex = value.get(i + 1..i + 3).unwrap_or_default();
                assert!(
                    hex.len() == 2 && hex.iter().all(u8::is_ascii_hexdigit),
                    "accepted a bad escape in {pair:?}"
                );
            }
        }
        let printed = magnet.to_string();
        let again = Magnet::parse(&printed)
            .unwrap_or_else(|e| panic!("printed magnet {printed:?} does not parse: {e}"));
        assert_eq!(again, magnet, "printed magnet parses to another value");
        assert_eq!(again.to_string(), printed, "printing is not stable");
    }
    if let Some(id) = parse_info_hash(text) {
        assert_eq!(parse_info_hash(&id.to_hex()), Some(id));
    }
});
