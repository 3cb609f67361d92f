//! Hexadecimal: lowercase out, strict in.
//!
//! [`encode`] always writes `0-9a-f`. The decoders read two digits per byte,
//! each exactly one of `0-9a-f` (plus `A-F` under [`Case::Either`]): no sign,
//! no `0x`, no whitespace, no odd digit, no non-ASCII. The default decoders,
//! [`decode`] and [`decode_array`], take lowercase only, because that is what
//! xus writes; a caller that reads text people type or other programs write
//! opts into uppercase by naming [`Case::Either`], so every place that
//! accepts two spellings of one value says so where it is called.

use std::fmt;

/// The digits [`encode`] writes.
const LOWER_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Which letter case a decoder accepts for the digits `a` to `f`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Case {
    /// `0-9a-f` only: the form xus writes. Right for anything xus stored or
    /// another xus sent, where an uppercase digit means the text was not
    /// written by xus and is refused rather than silently read.
    Lower,
    /// `0-9a-f` and `A-F`, mixed too. Only for entry points that read text
    /// people type or other programs write (a pasted key, a magnet link from
    /// another client), whose bytes are what matters afterwards.
    Either,
}

/// Why a text is not hex of the expected shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HexError {
    /// An odd number of bytes: the last digit would be half a byte.
    OddLength {
        /// Length of the text, in bytes.
        len: usize,
    },
    /// Not the number of digits a fixed-size value needs.
    WrongLength {
        /// Digits expected (twice the byte count).
        expected: usize,
        /// Length of the text, in bytes.
        found: usize,
    },
    /// A byte that is no hex digit at all (a sign, a space, `x`, non-ASCII).
    InvalidDigit {
        /// Byte offset in the text.
        index: usize,
    },
    /// `A` to `F` where only lowercase is accepted ([`Case::Lower`]).
    Uppercase {
        /// Byte offset in the text.
        index: usize,
    },
}

impl fmt::Display for HexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OddLength { len } => {
                write!(f, "{len} bytes of text is an odd number of hex digits")
            }
            Self::WrongLength { expected, found } => {
                write!(
                    f,
                    "expected {expected} hex digits, got {found} bytes of text"
                )
            }
            Self::InvalidDigit { index } => {
                write!(f, "byte {index} is not a hex digit (0-9, a-f)")
            }
            Self::Uppercase { index } => write!(
                f,
                "byte {index} is an uppercase hex digit; only lowercase (0-9, a-f) is accepted here"
            ),
        }
    }
}

impl std::error::Error for HexError {}

/// Lowercase hex of `bytes`, two digits per byte.
#[must_use]
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    encode_into(bytes, &mut out);
    out
}

/// Appends the lowercase hex of `bytes` to `out`.
pub fn encode_into(bytes: &[u8], out: &mut String) {
    out.reserve(bytes.len() * 2);
    for &byte in bytes {
        out.push(char::from(LOWER_DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(LOWER_DIGITS[usize::from(byte & 0x0f)]));
    }
}

/// The bytes of lowercase hex text of any even length.
///
/// # Errors
///
/// [`HexError`] for an odd length or any byte outside `0-9a-f`.
pub fn decode(text: &str) -> Result<Vec<u8>, HexError> {
    decode_case(text, Case::Lower)
}

/// The bytes of hex text of any even length, digits in `case`.
///
/// # Errors
///
/// [`HexError`] for an odd length or any byte that is not a digit in `case`.
pub fn decode_case(text: &str, case: Case) -> Result<Vec<u8>, HexError> {
    let raw = text.as_bytes();
    if !raw.len().is_multiple_of(2) {
        return Err(HexError::OddLength { len: raw.len() });
    }
    let mut out = vec![0; raw.len() / 2];
    decode_pairs(raw, case, &mut out)?;
    Ok(out)
}

/// Exactly `N` bytes from `2 * N` lowercase hex digits (keys, ids, hashes).
///
/// # Errors
///
/// [`HexError::WrongLength`] unless the text is `2 * N` bytes long, otherwise
/// as [`decode`].
pub fn decode_array<const N: usize>(text: &str) -> Result<[u8; N], HexError> {
    decode_array_case(text, Case::Lower)
}

/// Exactly `N` bytes from `2 * N` hex digits in `case`.
///
/// # Errors
///
/// [`HexError::WrongLength`] unless the text is `2 * N` bytes long, otherwise
/// as [`decode_case`].
pub fn decode_array_case<const N: usize>(text: &str, case: Case) -> Result<[u8; N], HexError> {
    let raw = text.as_bytes();
    if raw.len() != 2 * N {
        return Err(HexError::WrongLength {
            expected: 2 * N,
            found: raw.len(),
        });
    }
    let mut out = [0; N];
    decode_pairs(raw, case, &mut out)?;
    Ok(out)
}

/// The value of one hex digit in `case`, or why it is not one.
///
/// The percent decoder reads its two digits through this too, so there is a
/// single table of what a digit is.
pub(crate) fn digit(byte: u8, case: Case, index: usize) -> Result<u8, HexError> {
    match (byte, case) {
        (b'0'..=b'9', _) => Ok(byte - b'0'),
        (b'a'..=b'f', _) => Ok(byte - b'a' + 10),
        (b'A'..=b'F', Case::Either) => Ok(byte - b'A' + 10),
        (b'A'..=b'F', Case::Lower) => Err(HexError::Uppercase { index }),
        _ => Err(HexError::InvalidDigit { index }),
    }
}

/// Fills `out` from `raw`, which the callers made exactly `2 * out.len()` long.
fn decode_pairs(raw: &[u8], case: Case, out: &mut [u8]) -> Result<(), HexError> {
    for (i, (pair, byte)) in raw.chunks_exact(2).zip(out.iter_mut()).enumerate() {
        let [high, low] = pair else {
            // `chunks_exact(2)` yields two-byte chunks only.
            return Err(HexError::OddLength { len: raw.len() });
        };
        *byte = digit(*high, case, 2 * i)? << 4 | digit(*low, case, 2 * i + 1)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encodes_lowercase() {
        assert_eq!(encode(&[]), "");
        assert_eq!(encode(&[0, 0x0f, 0xab, 0xff]), "000fabff");
        let mut out = String::from("x=");
        encode_into(&[0xde, 0xad], &mut out);
        assert_eq!(out, "x=dead");
    }

    #[test]
    fn decodes_every_byte_in_lowercase_and_either_case() {
        for byte in 0..=u8::MAX {
            let lower = format!("{byte:02x}");
            let upper = format!("{byte:02X}");
            assert_eq!(decode(&lower), Ok(vec![byte]));
            assert_eq!(decode_case(&upper, Case::Either), Ok(vec![byte]));
            assert_eq!(decode_case(&lower, Case::Either), Ok(vec![byte]));
        }
        assert_eq!(decode(""), Ok(vec![]));
        assert_eq!(decode_case("aB", Case::Either), Ok(vec![0xab]));
    }

    #[test]
    fn refuses_signs_prefixes_spaces_and_non_ascii() {
        for (bad, index) in [
            ("+f", 0),
            ("-0", 0),
            ("f+", 1),
            (" f", 0),
            ("f ", 1),
            ("0x", 1),
            ("zz", 0),
            ("0g", 1),
            ("é", 0),
            ("0\u{0}", 1),
            ("٣٣", 0),
        ] {
            for case in [Case::Lower, Case::Either] {
                let want = if bad.len() % 2 == 0 {
                    Err(HexError::InvalidDigit { index })
                } else {
                    Err(HexError::OddLength { len: bad.len() })
                };
                assert_eq!(decode_case(bad, case), want, "{bad:?}");
            }
        }
    }

    #[test]
    fn lowercase_decoders_refuse_uppercase_and_say_so() {
        assert_eq!(decode("0F"), Err(HexError::Uppercase { index: 1 }));
        assert_eq!(
            decode_array::<2>("abCD"),
            Err(HexError::Uppercase { index: 2 })
        );
        assert_eq!(
            decode_array_case::<2>("abCD", Case::Either),
            Ok([0xab, 0xcd])
        );
        assert!(
            HexError::Uppercase { index: 1 }
                .to_string()
                .contains("lowercase")
        );
    }

    #[test]
    fn lengths_are_checked_before_digits() {
        assert_eq!(decode("abc"), Err(HexError::OddLength { len: 3 }));
        assert_eq!(decode("+"), Err(HexError::OddLength { len: 1 }));
        assert_eq!(
            decode_array::<2>("abc"),
            Err(HexError::WrongLength {
                expected: 4,
                found: 3
            })
        );
        assert_eq!(
            decode_array::<2>("abcdef"),
            Err(HexError::WrongLength {
                expected: 4,
                found: 6
            })
        );
        // `é` is two bytes: the right byte length, but no digit.
        assert_eq!(
            decode_array::<1>("é"),
            Err(HexError::InvalidDigit { index: 0 })
        );
        assert_eq!(decode_array::<0>(""), Ok([]));
    }

    proptest! {
        #[test]
        fn round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let text = encode(&bytes);
            prop_assert_eq!(text.len(), bytes.len() * 2);
            prop_assert!(text.bytes().all(|b| LOWER_DIGITS.contains(&b)));
            prop_assert_eq!(decode(&text), Ok(bytes.clone()));
            prop_assert_eq!(decode_case(&text.to_ascii_uppercase(), Case::Either), Ok(bytes));
        }

        #[test]
        fn fixed_size_round_trips(bytes in any::<[u8; 32]>()) {
            prop_assert_eq!(decode_array::<32>(&encode(&bytes)), Ok(bytes));
        }

        /// Whatever the text, a successful decode re-encodes to the same text
        /// (lowercase), so no two texts decode to one value.
        #[test]
        fn accepted_text_is_the_canonical_text(text in "[0-9a-fA-F+ x-]{0,12}|.{0,12}") {
            if let Ok(bytes) = decode(&text) {
                prop_assert_eq!(encode(&bytes), text.clone());
            }
            if let Ok(bytes) = decode_case(&text, Case::Either) {
                prop_assert_eq!(encode(&bytes), text.to_ascii_lowercase());
            }
        }
    }
}
