//! `xus::torrent::bencode::decode` on arbitrary bytes.
//!
//! Invariants: no panic; whatever decodes is canonical, so it re-encodes to
//! exactly the input; every nested value's `raw` span is its own encoding; and
//! tighter limits only ever turn a success into a limit error.

#![no_main]

use libfuzzer_sys::fuzz_target;
use xus::torrent::bencode::{DecodeError, Limits, Owned, Spanned, Value, decode};

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

fn check_spans(v: &Spanned<'_>) {
    assert_eq!(
        to_owned(v).encode(),
        v.raw,
        "span is not the value's encoding"
    );
    match &v.value {
        Value::Int(_) | Value::Bytes(_) => {}
        Value::List(items) => items.iter().for_each(check_spans),
        Value::Dict(entries) => {
            for (key, child) in entries {
                assert_eq!(v.get(key), Some(child), "get() misses a key");
                check_spans(child);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let full = decode(data, Limits::default());
    if let Ok(v) = &full {
        assert_eq!(v.raw, data, "top-level span is not the whole buffer");
        assert_eq!(to_owned(v).encode(), data, "decoded value is not canonical");
        check_spans(v);
    }
    let tight = Limits {
        max_depth: 2,
        max_items: 16,
    };
    match (decode(data, tight), &full) {
        (Ok(small), Ok(big)) => assert_eq!(&small, big),
        (Ok(_), Err(e)) => panic!("tighter limits accepted what the defaults refuse: {e}"),
        (Err(DecodeError::TooDeep(_) | DecodeError::TooManyItems(_)), _) => {}
        (Err(e), Ok(_)) => panic!("tighter limits refused with a non-limit error: {e}"),
        (Err(_), Err(_)) => {}
    }
});
