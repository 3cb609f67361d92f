//! The DHT's KRPC decoder (vendored `mainline`, with xus's patch for any
//! transaction id length and BEP 46 values of any bencode type) on arbitrary
//! bytes: every UDP datagram a `xus dht serve` node, a seed or a master
//! receives goes through it, from anyone.
//!
//! Invariants: no panic; a datagram that decodes encodes again (a node
//! answering or storing what it decoded cannot fail on it).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(encoded) = mainline::krpc_decode_and_encode(data) {
        if let Err(error) = encoded {
            panic!("a decoded KRPC message does not encode again: {error}");
        }
    }
});
