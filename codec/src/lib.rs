//! The one hex codec and the one percent codec of the xus workspace, and
//! the one rule for quoting untrusted text in errors ([`quote`]).
//!
//! Every crate of the workspace (`xus`, `tracker-free`, `webseed`) turns text
//! into bytes through these two modules, so that a key, an infohash, a stored
//! head or a URL path has exactly one accepted spelling per policy, decided in
//! one place:
//!
//! - [`hex`] writes lowercase and reads exactly `0-9a-f`; uppercase is read
//!   only where a caller asks for it by name ([`hex::Case::Either`]).
//! - [`percent`] reads `%` followed by exactly two hex digits and nothing
//!   else; a malformed escape is an error, never passed through.
//!
//! Neither decoder goes through `u8::from_str_radix`, which takes a leading
//! `+`: with it `"+f"` decodes as `0x0f`, so two texts would name one value.
//!
//! ```
//! use xus_codec::hex::{self, Case};
//!
//! assert_eq!(hex::encode(&[0x0f, 0xab]), "0fab");
//! assert_eq!(hex::decode("0fab"), Ok(vec![0x0f, 0xab]));
//! assert!(hex::decode("+fab").is_err());
//! assert!(hex::decode("0FAB").is_err());
//! assert_eq!(hex::decode_case("0FAB", Case::Either), Ok(vec![0x0f, 0xab]));
//! assert_eq!(xus_codec::percent::decode("a%2Fb"), Ok(b"a/b".to_vec()));
//! assert!(xus_codec::percent::decode("%+f").is_err());
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod hex;
pub mod percent;
pub mod quote;
