#![doc = include_str!("../README.md")]
//! ## Feature flags
#![doc = document_features::document_features!()]
//!

#![deny(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod common;
#[cfg(feature = "node")]
mod dht;
mod rpc;

// Public modules
#[cfg(feature = "async")]
pub mod async_dht;

pub use common::{Id, MutableItem, Node, RoutingTable};

#[cfg(feature = "node")]
pub use dht::{Dht, DhtBuilder, Testnet, TestnetBuilder};
#[cfg(feature = "node")]
pub use rpc::{
    config::Config,
    messages::{MessageType, PutRequestSpecific, RequestSpecific},
    server::{RequestFilter, ServerSettings, MAX_INFO_HASHES, MAX_PEERS, MAX_VALUES},
    ClosestNodes, GetMutableOutcome, PutOutcome, DEFAULT_BOOTSTRAP_NODES, DEFAULT_REQUEST_TIMEOUT,
};

pub use ed25519_dalek::SigningKey;

/// xus patch: decodes `bytes` as this crate decodes every UDP datagram it
/// receives, and encodes the decoded message again. `None` when the bytes
/// are not a message; otherwise whether re-encoding worked. For fuzzing the
/// decoder (xus's `fuzz/fuzz_targets/krpc_message.rs`): datagrams come from
/// anyone.
#[doc(hidden)]
pub fn krpc_decode_and_encode(bytes: &[u8]) -> Option<Result<Vec<u8>, String>> {
    let message = common::Message::from_bytes(bytes).ok()?;
    Some(message.to_bytes().map_err(|e| e.to_string()))
}

pub mod errors {
    //! Exported errors
    #[cfg(feature = "node")]
    pub use super::common::ErrorSpecific;
    #[cfg(feature = "node")]
    pub use super::dht::PutMutableError;
    #[cfg(feature = "node")]
    pub use super::rpc::{ConcurrencyError, PutError, PutQueryError};

    pub use super::common::DecodeIdError;
    pub use super::common::MutableError;
}
