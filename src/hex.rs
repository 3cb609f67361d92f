//! Lowercase hex out, strict lowercase hex in: the workspace codec's functions, for `crate::hex`.
pub use xus_codec::hex::{HexError, decode, encode};
