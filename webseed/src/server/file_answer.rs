//! What a request for one file gets, decided from its headers alone: the
//! conditional rule (`If-None-Match`, RFC 9110 §13.1.2) and the range rules
//! (`Range` and `If-Range`, §14) in one pure function. `serve_file` follows
//! it, and the `webseed_request` fuzz target checks this very function
//! rather than a copy of it.

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};

use crate::conditional;
use crate::range::{RangeHeader, Resolved};

/// The answer to a `GET` or `HEAD` of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileAnswer {
    /// 304: `If-None-Match` names the file's entity tag.
    NotModified,
    /// 200 with the whole file.
    Full,
    /// 206 with bytes `start..=end`.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte, included.
        end: u64,
    },
    /// 416: the one range asked for cannot be met.
    Unsatisfiable,
}

/// The answer for a file of `len` bytes tagged `etag` (quoted, as sent in
/// `ETag`; none when the source's tag cannot be quoted), given the request's
/// `headers`; `head` for a `HEAD` request, where ranges do not apply
/// (RFC 9110 §14.2 defines them for `GET` only).
pub fn file_answer(
    headers: &HeaderMap,
    etag: Option<&HeaderValue>,
    len: u64,
    head: bool,
) -> FileAnswer {
    if let Some(etag) = etag {
        let if_none_match = header_strs(headers, &header::IF_NONE_MATCH);
        if conditional::none_match(if_none_match, text_of(etag)) {
            return FileAnswer::NotModified;
        }
    }
    let range = if head {
        RangeHeader::Ignored
    } else {
        requested_range(headers, etag)
    };
    match range.resolve(len) {
        Resolved::Full => FileAnswer::Full,
        Resolved::Partial { start, end } => FileAnswer::Partial { start, end },
        Resolved::Unsatisfiable => FileAnswer::Unsatisfiable,
    }
}

/// The `Range` a `GET` asks for, minding `If-Range`.
///
/// Several `Range` fields, or one that is not text, count as malformed and
/// are ignored; so is a `Range` under an `If-Range` that is not exactly the
/// file's strong tag.
pub fn requested_range(headers: &HeaderMap, etag: Option<&HeaderValue>) -> RangeHeader {
    let mut ranges = header_strs(headers, &header::RANGE);
    let (Some(range), None) = (ranges.next(), ranges.next()) else {
        return RangeHeader::Ignored;
    };
    if let Some(if_range) = headers.get(header::IF_RANGE) {
        let applies = match (if_range.to_str(), etag) {
            (Ok(if_range), Some(etag)) => conditional::range_applies(if_range, text_of(etag)),
            _ => false,
        };
        if !applies {
            return RangeHeader::Ignored;
        }
    }
    RangeHeader::parse(range)
}

/// Every value of a header that is text; the others are skipped.
fn header_strs<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
}

/// The text of a header value built from ASCII.
fn text_of(value: &HeaderValue) -> &str {
    value.to_str().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_needs_a_single_field_and_a_matching_if_range() {
        let etag = HeaderValue::from_static("\"abc\"");
        let mut headers = HeaderMap::new();
        assert_eq!(requested_range(&headers, Some(&etag)), RangeHeader::Ignored);
        headers.insert(header::RANGE, HeaderValue::from_static("bytes=0-1"));
        assert!(matches!(
            requested_range(&headers, Some(&etag)),
            RangeHeader::Single(_)
        ));
        headers.insert(header::IF_RANGE, HeaderValue::from_static("\"abc\""));
        assert!(matches!(
            requested_range(&headers, Some(&etag)),
            RangeHeader::Single(_)
        ));
        assert_eq!(requested_range(&headers, None), RangeHeader::Ignored);
        headers.insert(header::IF_RANGE, HeaderValue::from_static("\"old\""));
        assert_eq!(requested_range(&headers, Some(&etag)), RangeHeader::Ignored);
        headers.remove(header::IF_RANGE);
        headers.append(header::RANGE, HeaderValue::from_static("bytes=2-3"));
        assert_eq!(requested_range(&headers, Some(&etag)), RangeHeader::Ignored);
    }

    #[test]
    fn answers_follow_if_none_match_then_the_range() {
        let etag = HeaderValue::from_static("\"abc\"");
        let mut headers = HeaderMap::new();
        assert_eq!(
            file_answer(&headers, Some(&etag), 10, false),
            FileAnswer::Full
        );
        headers.insert(header::RANGE, HeaderValue::from_static("bytes=2-4"));
        let partial = FileAnswer::Partial { start: 2, end: 4 };
        assert_eq!(file_answer(&headers, Some(&etag), 10, false), partial);
        assert_eq!(
            file_answer(&headers, Some(&etag), 10, true),
            FileAnswer::Full
        );
        assert_eq!(
            file_answer(&headers, Some(&etag), 2, false),
            FileAnswer::Unsatisfiable
        );
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("W/\"abc\""));
        assert_eq!(
            file_answer(&headers, Some(&etag), 10, false),
            FileAnswer::NotModified
        );
        assert_eq!(file_answer(&headers, None, 10, false), partial);
    }
}
