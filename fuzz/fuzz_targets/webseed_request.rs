//! The webseed server's request parsing on arbitrary requests: the path of
//! `GET /<commit>/<path...>` and `/<commit>.torrent`, and the `Range`, `If-Range` and
//! `If-None-Match` headers, as `webseed/src/server.rs` combines them for a file.
//!
//! The parsers and the status rule `serve_file` follows (`server/file_answer.rs`) are the
//! server's own, reached through `webseed::fuzzing` (hidden, for this target only). The input
//! is a small text request:
//!
//! ```text
//! /<request target>
//! range: bytes=0-99
//! if-range: "etag"
//! if-none-match: W/"x", "etag"
//! x-len: 1000         (the file's length; default 1000)
//! x-etag: etag        (the source's entity tag; default "b1")
//! ```
//!
//! Lines are split on `\n`; a header line whose value `http::HeaderValue` refuses is dropped,
//! as hyper would refuse the request. The target goes through `http::Uri` (as hyper delivers
//! it) and, when UTF-8, straight to the path parser as well.
//!
//! Invariants:
//! - no panic;
//! - an accepted file path (UTF-8 or raw bytes) names a 40- or 64-digit lowercase commit and at
//!   least one component, and no component is empty, `.` or `..`, or holds `/` or NUL: nothing
//!   escapes the commit; a raw path has a component that is not UTF-8; the path re-encodes
//!   (and the bridge's `url_for`/`raw_url_for` build its URL, the same one for UTF-8 names) to
//!   something that parses back to the same file; a torrent path is a single component;
//! - a refusal names a component that exists, and is a 400 exactly for the traversal and
//!   encoding errors;
//! - a resolved range lies inside the file (`start <= end < len`) and equals what an
//!   independent reading of RFC 9110 §14 gives, for the fuzzed length and the lengths at the
//!   range's own boundaries; a 416 only for a range that cannot be met;
//! - conditional headers only match the tag they name: a 304 needs the quoted tag (or `*`) in
//!   `If-None-Match`, and `If-Range` lets a range through only when it is exactly that strong
//!   tag.

#![no_main]

use std::cmp::Ordering;

use http::{HeaderMap, HeaderName, HeaderValue, Uri, header};
use libfuzzer_sys::fuzz_target;

use webseed::fuzzing::{
    ByteRange, FileAnswer, PathError, RangeHeader, Resolved, Target, file_answer, none_match,
    parse_path, quote, range_applies, requested_range,
};

const DEFAULT_LEN: u64 = 1000;
const DEFAULT_ETAG: &str = "b1";

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|&b| b == b'\n');
    let target = lines.next().unwrap_or_default();
    let mut headers = HeaderMap::new();
    let mut len = DEFAULT_LEN;
    let mut etag = DEFAULT_ETAG.to_owned();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], trim_ows(&line[colon + 1..]));
        if name.eq_ignore_ascii_case(b"x-len") {
            len = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(DEFAULT_LEN);
        } else if name.eq_ignore_ascii_case(b"x-etag") {
            etag = String::from_utf8_lossy(value).into_owned();
        } else if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }

    if let Ok(raw) = std::str::from_utf8(target) {
        check_path(raw);
    }
    if let Ok(uri) = Uri::try_from(target) {
        check_path(uri.path());
    }
    for value in headers.get_all(header::RANGE) {
        if let Ok(value) = value.to_str() {
            check_range(value, len);
        }
    }
    if let Ok(value) = std::str::from_utf8(target) {
        // Arbitrary text too, beyond what a header value may hold.
        check_range(value, len);
    }
    check_file_response(&headers, &etag, len);
});

/// Optional whitespace around a header value, as hyper strips it.
fn trim_ows(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

/// `path::parse` on one request path, with what must hold of its answer.
fn check_path(raw: &str) {
    let parsed = parse_path(raw);
    let segments = raw.strip_prefix('/').map(|rest| rest.split('/').count());
    match &parsed {
        Ok(Target::File { commit, path }) => {
            let bytes: Vec<Vec<u8>> = path.iter().map(|name| name.as_bytes().to_vec()).collect();
            check_file_path(raw, &parsed, commit.as_str(), &bytes, segments);
            // The bridge's URL for this name, from the torrent's path or its raw bytes alike.
            let url = webseed::bridge::url_for("http://seed.example/", commit.as_str(), path);
            let raw_url =
                webseed::bridge::raw_url_for("http://seed.example/", commit.as_str(), &bytes);
            assert_eq!(url, raw_url, "UTF-8 names give two URLs");
            check_bridge_url(&url, &parsed);
        }
        Ok(Target::RawFile { commit, path }) => {
            assert!(
                path.iter().any(|name| std::str::from_utf8(name).is_err()),
                "{raw:?}: a raw file whose names are all UTF-8"
            );
            check_file_path(raw, &parsed, commit.as_str(), path, segments);
            let url = webseed::bridge::raw_url_for("http://seed.example/", commit.as_str(), path);
            check_bridge_url(&url, &parsed);
        }
        Ok(Target::Torrent { commit }) => {
            check_commit(commit.as_str());
            assert_eq!(
                segments,
                Some(1),
                "{raw:?}: a torrent path with several components"
            );
            let torrent = format!("/{commit}.torrent");
            assert_eq!(parse_path(&torrent).as_ref(), parsed.as_ref());
        }
        Err(error) => {
            let index = match error {
                PathError::BadEscape { index }
                | PathError::NotUtf8 { index }
                | PathError::Empty { index }
                | PathError::Dot { index }
                | PathError::ForbiddenByte { index } => Some(*index),
                PathError::NotAbsolute | PathError::Commit(_) | PathError::NoFile => None,
            };
            if let Some(index) = index {
                assert!(error.is_bad_request(), "{raw:?}: {error:?} is not a 400");
                if matches!(error, PathError::NotUtf8 { .. }) {
                    assert_eq!(index, 0, "{raw:?}: only the commit must be UTF-8");
                }
                assert!(
                    index < segments.unwrap_or(0),
                    "{raw:?}: {error:?} past the end"
                );
            } else {
                assert_eq!(
                    error.is_bad_request(),
                    matches!(error, PathError::NotAbsolute),
                    "{raw:?}: {error:?}"
                );
            }
            if matches!(error, PathError::NotAbsolute) {
                assert!(!raw.starts_with('/'));
            }
        }
    }
}

/// What holds of any accepted file path, UTF-8 or raw: plain names only, one per segment, and
/// the same target again when every byte is written `%XX`.
fn check_file_path(
    raw: &str,
    parsed: &Result<Target, PathError>,
    commit: &str,
    path: &[Vec<u8>],
    segments: Option<usize>,
) {
    check_commit(commit);
    assert!(!path.is_empty(), "{raw:?}: a file path with no component");
    for name in path {
        let plain = !name.is_empty()
            && name != b"."
            && name != b".."
            && !name.contains(&b'/')
            && !name.contains(&0);
        assert!(
            plain,
            "{raw:?}: component {name:?} could step outside the commit"
        );
    }
    assert_eq!(segments, Some(path.len() + 1));
    let mut escaped = format!("/{commit}");
    for name in path {
        escaped.push('/');
        for &byte in name {
            xus_codec::percent::push_escape(byte, &mut escaped);
        }
    }
    assert_eq!(
        parse_path(&escaped).as_ref(),
        parsed.as_ref(),
        "{escaped:?}"
    );
}

/// A URL the bridge builds names what the server parsed it from.
fn check_bridge_url(url: &str, parsed: &Result<Target, PathError>) {
    let from_bridge = url
        .strip_prefix("http://seed.example")
        .expect("the bridge keeps its base");
    assert_eq!(parse_path(from_bridge).as_ref(), parsed.as_ref(), "{url:?}");
}

fn check_commit(commit: &str) {
    assert!(matches!(commit.len(), 40 | 64), "commit {commit:?}");
    assert!(
        commit
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "commit {commit:?} is not lowercase hex"
    );
}

/// `RangeHeader::parse(value).resolve(len)` against the oracle, at `len` and at the lengths
/// where the answer changes.
fn check_range(value: &str, len: u64) {
    let parsed = RangeHeader::parse(value);
    let mut lengths = vec![len, 0, 1, 2, u64::MAX];
    if let RangeHeader::Single(range) = parsed {
        let points = match range {
            ByteRange::FromTo { first, last } => vec![first, last.unwrap_or(first)],
            ByteRange::Suffix(n) => vec![n],
        };
        for point in points {
            lengths.extend([point.saturating_sub(1), point, point.saturating_add(1)]);
        }
    }
    for len in lengths {
        let resolved = parsed.resolve(len);
        if let Resolved::Partial { start, end } = resolved {
            assert!(
                start <= end && end < len,
                "{value:?} on {len} bytes: {start}-{end}"
            );
        }
        assert_eq!(resolved, oracle(value, len), "{value:?} on {len} bytes");
    }
}

/// A decimal number of any size, as its digits without leading zeros.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Decimal<'a>(&'a str);

impl<'a> Decimal<'a> {
    /// `1*DIGIT`, or `None`.
    fn parse(text: &'a str) -> Option<Self> {
        (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| Self(text.trim_start_matches('0')))
    }

    fn cmp_u64(self, other: u64) -> Ordering {
        let other = other.to_string();
        compare_digits(self.0, other.trim_start_matches('0'))
    }

    fn cmp(self, other: Self) -> Ordering {
        compare_digits(self.0, other.0)
    }

    /// The value, when below `limit` (a `u64`).
    fn below(self, limit: u64) -> Option<u64> {
        (self.cmp_u64(limit) == Ordering::Less).then(|| self.0.parse().unwrap_or(0))
    }
}

/// Two digit strings without leading zeros, compared as numbers.
fn compare_digits(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// RFC 9110 §14.1.2 and §14.2, read independently of `range.rs` and with unbounded numbers:
/// one `bytes` range (empty list elements tolerated) or the whole file; a range starting past
/// the end, a zero suffix, or any range on an empty file is unsatisfiable.
fn oracle(value: &str, len: u64) -> Resolved {
    let Some(eq) = value.find('=') else {
        return Resolved::Full;
    };
    if !value[..eq].eq_ignore_ascii_case("bytes") {
        return Resolved::Full;
    }
    let specs: Vec<&str> = value[eq + 1..]
        .split(',')
        .map(|spec| spec.trim_matches(|c| c == ' ' || c == '\t'))
        .filter(|spec| !spec.is_empty())
        .collect();
    let [spec] = specs[..] else {
        return Resolved::Full;
    };
    let Some(dash) = spec.find('-') else {
        return Resolved::Full;
    };
    let (first, last) = (&spec[..dash], &spec[dash + 1..]);
    if first.is_empty() {
        let Some(n) = Decimal::parse(last) else {
            return Resolved::Full;
        };
        if len == 0 || n.0.is_empty() {
            return Resolved::Unsatisfiable;
        }
        let start = n.below(len).map_or(0, |n| len - n);
        return Resolved::Partial {
            start,
            end: len - 1,
        };
    }
    let Some(first) = Decimal::parse(first) else {
        return Resolved::Full;
    };
    let last = if last.is_empty() {
        None
    } else {
        match Decimal::parse(last) {
            Some(last) if first.cmp(last) != Ordering::Greater => Some(last),
            _ => return Resolved::Full,
        }
    };
    let Some(start) = first.below(len) else {
        return Resolved::Unsatisfiable;
    };
    let end = last
        .and_then(|last| last.below(len))
        .unwrap_or_else(|| len - 1);
    Resolved::Partial { start, end }
}

/// The server's own answer (`file_answer`, what `serve_file` sends) for a GET of a file of
/// `len` bytes tagged `etag`, and what must hold of it.
fn check_file_response(headers: &HeaderMap, etag: &str, len: u64) {
    let valid_tag = etag
        .bytes()
        .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b));
    let quoted = quote(etag);
    assert_eq!(quoted.is_some(), valid_tag, "quote({etag:?})");
    let quoted = quoted.map(|quoted| {
        assert_eq!(quoted, format!("\"{etag}\""));
        let value = HeaderValue::try_from(quoted.as_str()).expect("a quoted tag is a header");
        assert!(none_match([quoted.as_str()], &quoted));
        assert!(none_match([format!("W/{quoted}").as_str()], &quoted));
        assert!(range_applies(&quoted, &quoted));
        assert!(!range_applies(&format!("W/{quoted}"), &quoted));
        value
    });

    let answer = file_answer(headers, quoted.as_ref(), len, false);
    // A HEAD never gets a range, whatever the headers.
    let head = file_answer(headers, quoted.as_ref(), len, true);
    assert!(
        matches!(head, FileAnswer::NotModified | FileAnswer::Full),
        "HEAD answered {head:?}"
    );
    let values: Vec<&str> = header_strs(headers, &header::IF_NONE_MATCH).collect();
    if answer == FileAnswer::NotModified {
        let quoted = quoted
            .as_ref()
            .expect("a 304 needs a tag")
            .to_str()
            .expect("ASCII");
        let named = values
            .iter()
            .any(|v| v.trim_matches([' ', '\t']) == "*" || v.contains(quoted));
        assert!(named, "304 for {values:?} against {quoted}");
        return;
    }

    let range = requested_range(headers, quoted.as_ref());
    if !matches!(range, RangeHeader::Ignored) {
        if let Some(if_range) = headers.get(header::IF_RANGE) {
            // A range under If-Range goes through only for exactly this strong tag.
            let tag = quoted.as_ref().expect("If-Range matched no tag");
            let if_range = if_range
                .to_str()
                .expect("If-Range matched a non-text value");
            assert_eq!(
                if_range.trim_matches([' ', '\t']),
                tag.to_str().expect("ASCII"),
                "If-Range {if_range:?}"
            );
        }
    }
    match answer {
        FileAnswer::NotModified => unreachable!("handled above"),
        FileAnswer::Full => {}
        FileAnswer::Partial { start, end } => {
            assert!(
                start <= end && end < len,
                "206 of {start}-{end} from {len} bytes"
            );
            let body = end - start + 1;
            assert!(start.checked_add(body).is_some_and(|stop| stop <= len));
            let content_range = format!("bytes {start}-{end}/{len}");
            assert!(HeaderValue::try_from(content_range).is_ok());
        }
        FileAnswer::Unsatisfiable => {
            let RangeHeader::Single(range) = range else {
                panic!("416 without a range");
            };
            let met = match range {
                ByteRange::FromTo { first, .. } => first < len,
                ByteRange::Suffix(n) => n > 0 && len > 0,
            };
            assert!(!met, "416 for {range:?} on {len} bytes");
        }
    }
}

fn header_strs<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
}
