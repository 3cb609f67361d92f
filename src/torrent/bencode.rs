//! Bencode (BEP 3), written for untrusted input.
//!
//! The decoder is bounded (nesting depth, item count), rejects every
//! non-canonical form (leading zeros, `-0`, unsorted or repeated dictionary
//! keys, trailing bytes) and remembers the raw span of every value, so the
//! `info` dictionary of a `.torrent` can be hashed exactly as it was sent.
//! The encoder writes dictionaries in key order, which is what makes a commit
//! torrent's bytes, and so its infohash, deterministic.

use std::collections::BTreeMap;

/// Limits that keep a hostile buffer from costing more than its own size.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deepest nesting of lists and dictionaries accepted.
    pub max_depth: usize,
    /// Most values (of any kind) accepted in one buffer.
    pub max_items: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 32,
            max_items: 4_000_000,
        }
    }
}

/// A decoded value borrowing from the input buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    /// An integer (`i...e`).
    Int(i64),
    /// A byte string (`N:...`).
    Bytes(&'a [u8]),
    /// A list (`l...e`).
    List(Vec<Spanned<'a>>),
    /// A dictionary (`d...e`), keys in the (strictly increasing) order they came in.
    Dict(Vec<(&'a [u8], Spanned<'a>)>),
}

/// A value together with the exact bytes it was decoded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<'a> {
    /// The decoded value.
    pub value: Value<'a>,
    /// The bytes of the input that encode `value`.
    pub raw: &'a [u8],
}

/// Why a buffer is not valid bencode for us.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The buffer stopped inside a value.
    #[error("bencode ends early at byte {0}")]
    UnexpectedEnd(usize),
    /// A byte that cannot start or continue a value where it stands.
    #[error("unexpected byte {byte:#04x} at byte {at} of bencode")]
    UnexpectedByte {
        /// The offending byte.
        byte: u8,
        /// Its offset.
        at: usize,
    },
    /// An integer or length that is not in canonical form or does not fit.
    #[error("bad number at byte {0} of bencode")]
    BadNumber(usize),
    /// Dictionary keys that are not strictly increasing.
    #[error("dictionary key out of order or repeated at byte {0} of bencode")]
    KeyOrder(usize),
    /// Nesting deeper than the limit.
    #[error("bencode nested deeper than {0} levels")]
    TooDeep(usize),
    /// More values than the limit.
    #[error("bencode holds more than {0} values")]
    TooManyItems(usize),
    /// Bytes left after the top-level value.
    #[error("{0} trailing bytes after the bencoded value")]
    Trailing(usize),
}

impl<'a> Spanned<'a> {
    /// The value of `key` when this is a dictionary.
    pub fn get(&self, key: &[u8]) -> Option<&Spanned<'a>> {
        match &self.value {
            Value::Dict(entries) => entries
                .binary_search_by(|(k, _)| (*k).cmp(key))
                .ok()
                .map(|i| &entries[i].1),
            _ => None,
        }
    }

    /// The integer, when this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self.value {
            Value::Int(i) => Some(i),
            _ => None,
        }
    }

    /// The byte string, when this is one.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self.value {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The list items, when this is a list.
    pub fn as_list(&self) -> Option<&[Spanned<'a>]> {
        match &self.value {
            Value::List(items) => Some(items),
            _ => None,
        }
    }

    /// The dictionary entries, when this is a dictionary.
    pub fn as_dict(&self) -> Option<&[(&'a [u8], Spanned<'a>)]> {
        match &self.value {
            Value::Dict(entries) => Some(entries),
            _ => None,
        }
    }
}

/// Decodes exactly one value filling the whole buffer.
pub fn decode(buf: &[u8], limits: Limits) -> Result<Spanned<'_>, DecodeError> {
    let mut decoder = Decoder {
        buf,
        pos: 0,
        items: 0,
        limits,
    };
    let value = decoder.value(0)?;
    if decoder.pos != buf.len() {
        return Err(DecodeError::Trailing(buf.len() - decoder.pos));
    }
    Ok(value)
}

struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    items: usize,
    limits: Limits,
}

impl<'a> Decoder<'a> {
    fn peek(&self) -> Result<u8, DecodeError> {
        self.buf
            .get(self.pos)
            .copied()
            .ok_or(DecodeError::UnexpectedEnd(self.pos))
    }

    fn value(&mut self, depth: usize) -> Result<Spanned<'a>, DecodeError> {
        if depth > self.limits.max_depth {
            return Err(DecodeError::TooDeep(self.limits.max_depth));
        }
        self.items += 1;
        if self.items > self.limits.max_items {
            return Err(DecodeError::TooManyItems(self.limits.max_items));
        }
        let start = self.pos;
        let value = match self.peek()? {
            b'i' => {
                self.pos += 1;
                Value::Int(self.integer(b'e')?)
            }
            b'0'..=b'9' => Value::Bytes(self.bytes()?),
            b'l' => {
                self.pos += 1;
                let mut items = Vec::new();
                while self.peek()? != b'e' {
                    items.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                Value::List(items)
            }
            b'd' => {
                self.pos += 1;
                let mut entries: Vec<(&'a [u8], Spanned<'a>)> = Vec::new();
                while self.peek()? != b'e' {
                    let key_at = self.pos;
                    if !self.peek()?.is_ascii_digit() {
                        return Err(DecodeError::UnexpectedByte {
                            byte: self.peek()?,
                            at: self.pos,
                        });
                    }
                    let key = self.bytes()?;
                    if let Some((last, _)) = entries.last()
                        && *last >= key
                    {
                        return Err(DecodeError::KeyOrder(key_at));
                    }
                    let value = self.value(depth + 1)?;
                    entries.push((key, value));
                }
                self.pos += 1;
                Value::Dict(entries)
            }
            byte => {
                return Err(DecodeError::UnexpectedByte { byte, at: self.pos });
            }
        };
        Ok(Spanned {
            value,
            raw: &self.buf[start..self.pos],
        })
    }

    /// Reads a canonical decimal integer up to `end`, consuming `end`.
    fn integer(&mut self, end: u8) -> Result<i64, DecodeError> {
        let start = self.pos;
        let digits_end = self.buf[start..]
            .iter()
            .position(|&b| b == end)
            .map(|p| start + p)
            .ok_or(DecodeError::UnexpectedEnd(self.buf.len()))?;
        let text = &self.buf[start..digits_end];
        let (negative, digits) = match text.split_first() {
            Some((b'-', rest)) => (true, rest),
            _ => (false, text),
        };
        let all_digits = !digits.is_empty() && digits.iter().all(u8::is_ascii_digit);
        let leading_zero = digits.len() > 1 && digits[0] == b'0';
        let negative_zero = negative && digits == b"0";
        let canonical = all_digits && !leading_zero && !negative_zero && digits.len() <= 19;
        if !canonical {
            return Err(DecodeError::BadNumber(start));
        }
        let mut value: i64 = 0;
        for &d in digits {
            value = value
                .checked_mul(10)
                .and_then(|v| {
                    let d = i64::from(d - b'0');
                    if negative {
                        v.checked_sub(d)
                    } else {
                        v.checked_add(d)
                    }
                })
                .ok_or(DecodeError::BadNumber(start))?;
        }
        self.pos = digits_end + 1;
        Ok(value)
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let at = self.pos;
        let len = self.integer(b':')?;
        let len = usize::try_from(len).map_err(|_| DecodeError::BadNumber(at))?;
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.buf.len())
            .ok_or(DecodeError::UnexpectedEnd(self.buf.len()))?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }
}

/// An owned value to encode. Dictionaries are `BTreeMap`s, so keys always come
/// out sorted and encoding is deterministic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owned {
    /// An integer.
    Int(i64),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<Owned>),
    /// A dictionary with sorted keys.
    Dict(BTreeMap<Vec<u8>, Owned>),
    /// Bytes that are already bencoded and are copied as they are.
    Raw(Vec<u8>),
}

impl Owned {
    /// A byte string from anything byte-like.
    pub fn bytes(b: impl AsRef<[u8]>) -> Self {
        Owned::Bytes(b.as_ref().to_vec())
    }

    /// Appends the canonical encoding of this value to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Owned::Int(i) => {
                out.push(b'i');
                out.extend_from_slice(i.to_string().as_bytes());
                out.push(b'e');
            }
            Owned::Bytes(b) => encode_bytes(b, out),
            Owned::List(items) => {
                out.push(b'l');
                for item in items {
                    item.encode_into(out);
                }
                out.push(b'e');
            }
            Owned::Dict(entries) => {
                out.push(b'd');
                for (k, v) in entries {
                    encode_bytes(k, out);
                    v.encode_into(out);
                }
                out.push(b'e');
            }
            Owned::Raw(raw) => out.extend_from_slice(raw),
        }
    }

    /// The canonical encoding of this value.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }
}

fn encode_bytes(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(b);
}

/// Builds a dictionary from `(key, value)` pairs.
pub fn dict<const N: usize>(entries: [(&str, Owned); N]) -> Owned {
    Owned::Dict(
        entries
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_and_keeps_raw_spans() {
        let buf = b"d4:infod6:lengthi3ee3:zzzli-5e2:abee";
        let v = decode(buf, Limits::default()).expect("valid");
        let info = v.get(b"info").expect("info");
        assert_eq!(info.raw, b"d6:lengthi3ee");
        assert_eq!(info.get(b"length").and_then(Spanned::as_int), Some(3));
        let list = v.get(b"zzz").and_then(Spanned::as_list).expect("list");
        assert_eq!(list[0].as_int(), Some(-5));
        assert_eq!(list[1].as_bytes(), Some(&b"ab"[..]));
    }

    #[test]
    fn rejects_non_canonical_forms() {
        for bad in [
            &b"i03e"[..],
            b"i-0e",
            b"ie",
            b"i1",
            b"03:abc",
            b"d1:bi1e1:ai2ee",
            b"d1:ai1e1:ai2ee",
            b"4:abc",
            b"i1ei2e",
            b"di1ei2ee",
            b"i99999999999999999999e",
            b"x",
            b"",
        ] {
            assert!(
                decode(bad, Limits::default()).is_err(),
                "{:?} should be refused",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn depth_and_item_limits_hold() {
        let deep = [vec![b'l'; 40], vec![b'e'; 40]].concat();
        assert_eq!(
            decode(&deep, Limits::default()),
            Err(DecodeError::TooDeep(32))
        );
        let many = b"li1ei2ei3ee";
        let limits = Limits {
            max_depth: 4,
            max_items: 3,
        };
        assert_eq!(decode(many, limits), Err(DecodeError::TooManyItems(3)));
    }

    fn owned_strategy() -> impl Strategy<Value = Owned> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(Owned::Int),
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(Owned::Bytes),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Owned::List),
                proptest::collection::btree_map(
                    proptest::collection::vec(any::<u8>(), 0..8),
                    inner,
                    0..8
                )
                .prop_map(Owned::Dict),
            ]
        })
    }

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

    proptest! {
        #[test]
        fn encode_then_decode_round_trips(value in owned_strategy()) {
            let bytes = value.encode();
            let decoded = decode(&bytes, Limits::default()).expect("own encoding decodes");
            prop_assert_eq!(decoded.raw, &bytes[..]);
            prop_assert_eq!(to_owned(&decoded), value);
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(v) = decode(&bytes, Limits::default()) {
                // Whatever decodes is canonical, so it re-encodes to the same bytes.
                prop_assert_eq!(to_owned(&v).encode(), bytes);
            }
        }
    }
}
