//! Entity tags and the conditional headers that use them (`If-None-Match`, `If-Range`).
//!
//! A file's entity tag is whatever the source gives (the blob id for Git), so a cached copy stays
//! valid exactly as long as the bytes do.

/// The `ETag` header value for a source's tag, `None` when the tag cannot be quoted as-is.
///
/// RFC 9110 §8.8.3 allows only visible ASCII other than `"` between the quotes (and obsolete
/// non-ASCII bytes, which are refused here to keep headers plain ASCII).
pub fn quote(tag: &str) -> Option<String> {
    let valid = tag.bytes().all(|b| b == 0x21 || (0x23..=0x7e).contains(&b));
    valid.then(|| format!("\"{tag}\""))
}

/// Whether `If-None-Match` field values match `quoted` (a value from [`quote`]).
///
/// Uses the weak comparison RFC 9110 §13.1.2 prescribes, so `W/"x"` matches `"x"`. `*` matches
/// any existing file. Unparsable lists match nothing, so the full response is sent.
pub fn none_match<'a>(values: impl IntoIterator<Item = &'a str>, quoted: &str) -> bool {
    values.into_iter().any(|value| {
        if value.trim_matches([' ', '\t']) == "*" {
            return true;
        }
        EntityTags(value).any(|(_weak, opaque)| opaque == quoted)
    })
}

/// Whether an `If-Range` value lets a `Range` apply to a file tagged `quoted`.
///
/// Only a strong, equal entity tag does (RFC 9110 §13.1.5); a date never does, since the server
/// sends no `Last-Modified`. When this is false the whole file is sent.
pub fn range_applies(if_range: &str, quoted: &str) -> bool {
    // `If-Range` holds one entity tag, not a list: `"b1", x` or `"b1",`
    // is not the tag `"b1"` (found by the `webseed_request` fuzz target).
    if_range.trim_matches([' ', '\t']) == quoted
}

/// Iterates over a comma-separated list of entity tags, yielding `(weak, "opaque")` pairs with
/// the quotes kept. Stops at the first malformed element.
///
/// Splitting on commas would be wrong: a comma is a legal character inside the quotes.
struct EntityTags<'a>(&'a str);

impl<'a> Iterator for EntityTags<'a> {
    type Item = (bool, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.0.trim_start_matches([' ', '\t', ',']);
        let (weak, rest) = match rest.strip_prefix("W/") {
            Some(rest) => (true, rest),
            None => (false, rest),
        };
        let inner = rest.strip_prefix('"')?;
        let Some(close) = inner.find('"') else {
            self.0 = "";
            return None;
        };
        let (opaque, after) = rest.split_at(close + 2);
        let after_trimmed = after.trim_start_matches([' ', '\t']);
        if !(after_trimmed.is_empty() || after_trimmed.starts_with(',')) {
            self.0 = "";
            return None;
        }
        self.0 = after_trimmed;
        Some((weak, opaque))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TAG: &str = "\"abc123\"";

    #[test]
    fn quotes_plain_tags_only() {
        assert_eq!(quote("abc123").as_deref(), Some(TAG));
        assert_eq!(quote(""), Some("\"\"".to_owned()));
        for bad in ["a\"b", "a b", "a\nb", "café"] {
            assert_eq!(quote(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn if_none_match() {
        assert!(none_match([TAG], TAG));
        assert!(none_match(["*"], TAG));
        assert!(none_match(["W/\"abc123\""], TAG));
        assert!(none_match(["\"x\", \"abc123\""], TAG));
        assert!(none_match(["\"a,b\",\"abc123\""], TAG));
        assert!(none_match(["\"x\"", TAG], TAG));
        assert!(!none_match(["\"x\""], TAG));
        assert!(!none_match(["abc123"], TAG));
        assert!(!none_match(["\"abc123"], TAG));
        assert!(!none_match(["\"x\" junk, \"abc123\""], TAG));
        assert!(!none_match(std::iter::empty(), TAG));
    }

    #[test]
    fn if_range() {
        assert!(range_applies(TAG, TAG));
        assert!(range_applies(" \"abc123\" ", TAG));
        assert!(!range_applies("W/\"abc123\"", TAG));
        assert!(!range_applies("\"other\"", TAG));
        assert!(!range_applies("\"abc123\", \"abc123\"", TAG));
        assert!(!range_applies("\"abc123\", x", TAG));
        assert!(!range_applies("\"abc123\",", TAG));
        assert!(!range_applies(", \"abc123\"", TAG));
        assert!(!range_applies("Wed, 21 Oct 2015 07:28:00 GMT", TAG));
    }

    proptest! {
        #[test]
        fn never_panics(value in "\\PC*") {
            let _ = none_match([value.as_str()], TAG);
            let _ = range_applies(&value, TAG);
        }

        #[test]
        fn finds_a_tag_in_any_list(
            before in proptest::collection::vec("[!#-~]{0,8}", 0..4),
            after in proptest::collection::vec("[!#-~]{0,8}", 0..4),
        ) {
            let list: Vec<String> = before
                .iter()
                .map(|t| format!("\"{t}\""))
                .chain([TAG.to_owned()])
                .chain(after.iter().map(|t| format!("W/\"{t}\"")))
                .collect();
            prop_assert!(none_match([list.join(" , ").as_str()], TAG));
        }
    }
}
