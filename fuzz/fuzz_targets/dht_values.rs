//! `tracker_free::Head::decode` and `TopicIndex::decode` on arbitrary bytes:
//! the two values xus reads from signed DHT items.
//!
//! Invariants: no panic; nothing over BEP 44's 1000 bytes is accepted; an
//! accepted value is canonical, so encoding what was decoded gives back
//! exactly the input bytes (two encodings of one value would let one
//! signed head be told apart from itself).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tracker_free::{Head, MAX_VALUE_LEN, TopicIndex};

fuzz_target!(|data: &[u8]| {
    if let Ok(head) = Head::decode(data) {
        assert!(data.len() <= MAX_VALUE_LEN);
        assert_eq!(head.encode(), data, "a head decoded from non-canonical bytes");
    }
    if let Ok(index) = TopicIndex::decode(data) {
        assert!(data.len() <= MAX_VALUE_LEN);
        assert_eq!(index.encode(), data, "an index decoded from non-canonical bytes");
        assert!(index.branches().contains(index.default_branch()));
    }
});
