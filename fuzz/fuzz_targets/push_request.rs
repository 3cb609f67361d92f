//! `xus::topic::push_request::SignedPush::from_body` on arbitrary bytes: what a
//! topic master parses from anyone who can reach its HTTP port.
//!
//! Invariants: no panic; an accepted body is canonical (printing it again
//! gives the same bytes) and its request re-encodes to the signed bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use xus::topic::push_request::SignedPush;

fuzz_target!(|data: &[u8]| {
    if let Ok(push) = SignedPush::from_body(data) {
        assert_eq!(push.to_body(), data, "an accepted body is not canonical");
        assert!(!push.request.commits.is_empty());
    }
});
