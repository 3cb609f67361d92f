//! The `Range` request header (RFC 9110 §14.2), parsed and resolved without I/O.
//!
//! The server honours one byte range per request, which is all BitTorrent clients ask for. A
//! header that does not parse is ignored (RFC 9110 §14.2: "a server MAY ignore the Range header
//! field"), and so is a header with several ranges: the whole file comes back as a `200`, which
//! every client must accept. That spares a `multipart/byteranges` encoder nobody here needs.

use std::cmp::Ordering;

/// One parsed byte range, before the file length is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// `first-last` or `first-` (`last` = `None`): byte offsets, both inclusive.
    ///
    /// Offsets too large for a `u64` are kept as `u64::MAX`, which no file reaches.
    FromTo {
        /// First byte wanted.
        first: u64,
        /// Last byte wanted, inclusive; `None` means "to the end".
        last: Option<u64>,
    },
    /// `-n`: the last `n` bytes.
    Suffix(u64),
}

/// What a `Range` header asks of a file of known length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// Serve the whole file with `200`: no usable range was asked for.
    Full,
    /// Serve bytes `start..=end` with `206`; `start <= end < len` always holds.
    Partial {
        /// First byte to send.
        start: u64,
        /// Last byte to send, inclusive.
        end: u64,
    },
    /// Answer `416` with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// What a `Range` header value asks for, before the file length is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeHeader {
    /// Malformed, another unit, or several ranges: serve the whole file.
    Ignored,
    /// Exactly one byte range.
    Single(ByteRange),
}

impl RangeHeader {
    /// Parses a `Range` header value.
    pub fn parse(value: &str) -> Self {
        let Some((unit, set)) = value.split_once('=') else {
            return Self::Ignored;
        };
        if !unit.eq_ignore_ascii_case("bytes") {
            return Self::Ignored;
        }
        // `1#range-spec`: recipients must tolerate empty list elements (RFC 9110 §5.6.1.2).
        let mut specs = set
            .split(',')
            .map(|spec| spec.trim_matches([' ', '\t']))
            .filter(|spec| !spec.is_empty());
        let (Some(spec), None) = (specs.next(), specs.next()) else {
            return Self::Ignored;
        };
        match parse_spec(spec) {
            Some(range) => Self::Single(range),
            None => Self::Ignored,
        }
    }

    /// Decides what to send from a file of `len` bytes.
    ///
    /// A range on an empty file is unsatisfiable: `206` cannot describe zero bytes.
    pub fn resolve(self, len: u64) -> Resolved {
        let Self::Single(range) = self else {
            return Resolved::Full;
        };
        let Some(last_byte) = len.checked_sub(1) else {
            return Resolved::Unsatisfiable;
        };
        match range {
            ByteRange::FromTo { first, .. } if first >= len => Resolved::Unsatisfiable,
            ByteRange::FromTo { first, last } => Resolved::Partial {
                start: first,
                end: last.map_or(last_byte, |last| last.min(last_byte)),
            },
            ByteRange::Suffix(0) => Resolved::Unsatisfiable,
            ByteRange::Suffix(n) => Resolved::Partial {
                start: len.saturating_sub(n),
                end: last_byte,
            },
        }
    }
}

/// Parses `first-last`, `first-` or `-suffix`; `None` when malformed or `last < first`.
fn parse_spec(spec: &str) -> Option<ByteRange> {
    let (first, last) = spec.split_once('-')?;
    if first.is_empty() {
        return Some(ByteRange::Suffix(parse_digits(last)?));
    }
    let first_value = parse_digits(first)?;
    if last.is_empty() {
        return Some(ByteRange::FromTo {
            first: first_value,
            last: None,
        });
    }
    let last_value = parse_digits(last)?;
    // Compare the digits, not the saturated values, so huge offsets keep their order.
    if compare_decimal(first, last) == Ordering::Greater {
        return None;
    }
    Some(ByteRange::FromTo {
        first: first_value,
        last: Some(last_value),
    })
}

/// Parses `1*DIGIT`, saturating at `u64::MAX`; `None` when empty or not all digits.
fn parse_digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.bytes().fold(0u64, |value, digit| {
        value
            .saturating_mul(10)
            .saturating_add(u64::from(digit - b'0'))
    }))
}

/// Compares two strings of ASCII digits as unbounded numbers.
fn compare_decimal(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn resolve(header: &str, len: u64) -> Resolved {
        RangeHeader::parse(header).resolve(len)
    }

    fn partial(start: u64, end: u64) -> Resolved {
        Resolved::Partial { start, end }
    }

    #[test]
    fn single_ranges() {
        assert_eq!(resolve("bytes=0-0", 10), partial(0, 0));
        assert_eq!(resolve("bytes=0-9", 10), partial(0, 9));
        assert_eq!(resolve("bytes=2-5", 10), partial(2, 5));
        assert_eq!(resolve("bytes=2-", 10), partial(2, 9));
        assert_eq!(resolve("bytes=9-", 10), partial(9, 9));
        assert_eq!(resolve("bytes=-3", 10), partial(7, 9));
        assert_eq!(resolve("bytes=-10", 10), partial(0, 9));
        // Past-the-end last positions and suffixes are clamped to the file.
        assert_eq!(resolve("bytes=5-1000", 10), partial(5, 9));
        assert_eq!(resolve("bytes=-1000", 10), partial(0, 9));
        assert_eq!(
            resolve("bytes=3-99999999999999999999999", 10),
            partial(3, 9)
        );
        assert_eq!(resolve("bytes=-99999999999999999999999", 10), partial(0, 9));
    }

    #[test]
    fn tolerant_syntax() {
        assert_eq!(resolve("BYTES=2-5", 10), partial(2, 5));
        assert_eq!(resolve("bytes= 2-5 ", 10), partial(2, 5));
        assert_eq!(resolve("bytes=, 2-5 ,", 10), partial(2, 5));
        assert_eq!(resolve("bytes=002-005", 10), partial(2, 5));
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(resolve("bytes=10-", 10), Resolved::Unsatisfiable);
        assert_eq!(resolve("bytes=10-20", 10), Resolved::Unsatisfiable);
        assert_eq!(
            resolve("bytes=99999999999999999999999-", 10),
            Resolved::Unsatisfiable
        );
        assert_eq!(resolve("bytes=-0", 10), Resolved::Unsatisfiable);
        for header in ["bytes=0-", "bytes=0-0", "bytes=-1", "bytes=-0"] {
            assert_eq!(resolve(header, 0), Resolved::Unsatisfiable, "{header}");
        }
    }

    #[test]
    fn malformed_or_multiple_is_ignored() {
        for header in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=5-2",
            "bytes=a-b",
            "bytes=1-2-3",
            "bytes=+1-2",
            "bytes=1 -2",
            "bytes = 1-2",
            "items=0-1",
            "bytes=0-1,3-4",
            "bytes=0-1,-2",
            "bytes=99999999999999999999999-99999999999999999999998",
        ] {
            assert_eq!(
                RangeHeader::parse(header),
                RangeHeader::Ignored,
                "{header:?}"
            );
            assert_eq!(resolve(header, 10), Resolved::Full, "{header:?}");
        }
        assert_eq!(resolve("bytes=0-1,3-4", 0), Resolved::Full);
    }

    proptest! {
        #[test]
        fn never_panics(header in "\\PC*", len in any::<u64>()) {
            let _ = resolve(&header, len);
        }

        #[test]
        fn partial_stays_inside_the_file(header in "bytes=[0-9]{0,22}-[0-9]{0,22}", len in any::<u64>()) {
            if let Resolved::Partial { start, end } = resolve(&header, len) {
                prop_assert!(start <= end && end < len);
            }
        }

        #[test]
        fn int_ranges_match_the_spec(first in 0u64..2000, span in 0u64..2000, open in any::<bool>(), len in 0u64..3000) {
            let last = first + span;
            let header = if open { format!("bytes={first}-") } else { format!("bytes={first}-{last}") };
            let expected = if first >= len {
                Resolved::Unsatisfiable
            } else if open {
                partial(first, len - 1)
            } else {
                partial(first, last.min(len - 1))
            };
            prop_assert_eq!(resolve(&header, len), expected);
        }

        #[test]
        fn suffix_ranges_match_the_spec(n in 0u64..3000, len in 0u64..3000) {
            let expected = if n == 0 || len == 0 {
                Resolved::Unsatisfiable
            } else {
                partial(len - n.min(len), len - 1)
            };
            prop_assert_eq!(resolve(&format!("bytes=-{n}"), len), expected);
        }

        #[test]
        fn reversed_ranges_are_ignored(first in 1u64..u64::MAX, len in any::<u64>()) {
            let header = format!("bytes={first}-{}", first - 1);
            prop_assert_eq!(resolve(&header, len), Resolved::Full);
        }
    }
}
