//! Percent-encoding (RFC 3986 §2.1): `%` and two hex digits stand for one
//! byte.
//!
//! Decoding is strict: every `%` must be followed by exactly two hex digits
//! (either case, which RFC 3986 §2.1 makes equivalent), with no sign and no
//! pass-through of a malformed escape. A lenient decoder that keeps `%zz` as
//! it is lets two different URLs name the same thing and hides client bugs.
//!
//! Encoding keeps the RFC 3986 §2.3 *unreserved* set, `A-Z a-z 0-9 - . _ ~`
//! ([`is_unreserved`]), plus whatever ASCII a caller names, and writes every
//! other byte as `%XX` with uppercase digits (RFC 3986 §2.1 asks producers
//! for uppercase).

use std::fmt;

use crate::hex::{self, Case};

/// The digits of an escape, uppercase as RFC 3986 §2.1 recommends.
const UPPER_DIGITS: &[u8; 16] = b"0123456789ABCDEF";

/// Returned when a `%` is not followed by two hex digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PercentError {
    /// Byte offset of the `%` in the text.
    pub index: usize,
}

impl fmt::Display for PercentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the '%' at byte {} is not followed by two hex digits",
            self.index
        )
    }
}

impl std::error::Error for PercentError {}

/// Whether `byte` is in RFC 3986's unreserved set, `A-Z a-z 0-9 - . _ ~`:
/// the bytes [`encode`] writes as they are.
#[must_use]
pub fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// `bytes` with every byte outside the unreserved set written as `%XX`.
///
/// The result is safe as one URL path segment or one query value, whatever
/// `bytes` hold.
#[must_use]
pub fn encode(bytes: &[u8]) -> String {
    encode_keeping(bytes, b"")
}

/// As [`encode`], also keeping the ASCII bytes of `keep` as they are (for
/// example `:` in a magnet's `x.pe=host:port`, which reads better unescaped).
///
/// `%` and bytes that are not printable ASCII are escaped even when `keep`
/// names them, so the output always [`decode`]s back to `bytes`; it
/// [`decode_form`]s back too as long as `keep` does not hold `+`.
#[must_use]
pub fn encode_keeping(bytes: &[u8], keep: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    encode_into(bytes, keep, &mut out);
    out
}

/// Appends [`encode_keeping`]`(bytes, keep)` to `out`.
pub fn encode_into(bytes: &[u8], keep: &[u8], out: &mut String) {
    for &byte in bytes {
        let kept = is_unreserved(byte)
            || (byte.is_ascii_graphic() && byte != b'%' && keep.contains(&byte));
        if kept {
            out.push(char::from(byte));
        } else {
            push_escape(byte, out);
        }
    }
}

/// Appends `%XX` for `byte`, uppercase, whatever the byte: for callers that
/// decide themselves which bytes to escape.
pub fn push_escape(byte: u8, out: &mut String) {
    out.push('%');
    out.push(char::from(UPPER_DIGITS[usize::from(byte >> 4)]));
    out.push(char::from(UPPER_DIGITS[usize::from(byte & 0x0f)]));
}

/// Decodes the escapes of a URL path segment or of any RFC 3986 component:
/// `+` is a plain `+`.
///
/// # Errors
///
/// [`PercentError`] at the first `%` not followed by two hex digits.
pub fn decode(text: &str) -> Result<Vec<u8>, PercentError> {
    decode_impl(text, false)
}

/// Decodes a query value written as HTML forms write them
/// (`application/x-www-form-urlencoded`): `+` stands for a space, as magnet
/// links and tracker announces use it; a real `+` arrives as `%2B`.
///
/// # Errors
///
/// [`PercentError`] at the first `%` not followed by two hex digits.
pub fn decode_form(text: &str) -> Result<Vec<u8>, PercentError> {
    decode_impl(text, true)
}

fn decode_impl(text: &str, plus_is_space: bool) -> Result<Vec<u8>, PercentError> {
    let raw = text.as_bytes();
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some((&byte, tail)) = rest.split_first() {
        match byte {
            b'%' => {
                let index = raw.len() - rest.len();
                let bad = || PercentError { index };
                let Some(([high, low], tail)) = tail.split_first_chunk::<2>() else {
                    return Err(bad());
                };
                let high = hex::digit(*high, Case::Either, 0).map_err(|_| bad())?;
                let low = hex::digit(*low, Case::Either, 1).map_err(|_| bad())?;
                out.push(high << 4 | low);
                rest = tail;
                continue;
            }
            b'+' if plus_is_space => out.push(b' '),
            _ => out.push(byte),
        }
        rest = tail;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encodes_everything_but_the_unreserved_set() {
        assert_eq!(encode(b"aZ09-._~"), "aZ09-._~");
        assert_eq!(encode(b"a b/c%d+e:f"), "a%20b%2Fc%25d%2Be%3Af");
        assert_eq!(encode("é".as_bytes()), "%C3%A9");
        assert_eq!(encode(&[0, 0xff]), "%00%FF");
        assert_eq!(encode_keeping(b"127.0.0.1:80", b":"), "127.0.0.1:80");
        // `%` and non-ASCII are escaped even when asked to keep them.
        assert_eq!(encode_keeping(b"%\xff ", b"%\xff"), "%25%FF%20");
        let mut out = String::from("/");
        push_escape(b'a', &mut out);
        assert_eq!(out, "/%61");
    }

    #[test]
    fn decodes_both_cases_and_keeps_plain_bytes() {
        assert_eq!(decode("caf%C3%A9%20x"), Ok("café x".as_bytes().to_vec()));
        assert_eq!(decode("caf%c3%a9"), Ok("café".as_bytes().to_vec()));
        assert_eq!(decode("a+b"), Ok(b"a+b".to_vec()));
        assert_eq!(decode_form("a+b%2B"), Ok(b"a b+".to_vec()));
        assert_eq!(decode(""), Ok(vec![]));
        assert_eq!(decode("é"), Ok("é".as_bytes().to_vec()));
    }

    #[test]
    fn refuses_every_malformed_escape() {
        for (bad, index) in [
            ("%", 0),
            ("%0", 0),
            ("a%0", 1),
            ("%zz", 0),
            ("%+f", 0),
            ("%-1", 0),
            ("% 1", 0),
            ("%1 ", 0),
            ("%é", 0),
            ("%%41", 0),
            ("ok%41%4", 5),
            ("%0x", 0),
        ] {
            assert_eq!(decode(bad), Err(PercentError { index }), "{bad:?}");
            assert_eq!(decode_form(bad), Err(PercentError { index }), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..64), keep in "[:/@!$+]{0,3}") {
            let plain = encode(&bytes);
            prop_assert!(plain.bytes().all(|b| is_unreserved(b) || b == b'%'));
            prop_assert_eq!(decode(&plain), Ok(bytes.clone()));
            prop_assert_eq!(decode_form(&plain), Ok(bytes.clone()));
            prop_assert_eq!(decode(&encode_keeping(&bytes, keep.as_bytes())), Ok(bytes));
        }

        #[test]
        fn never_panics(text in ".{0,40}") {
            let _ = decode(&text);
            let _ = decode_form(&text);
        }
    }
}
