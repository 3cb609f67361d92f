//! Magnet links (BEP 9) and the other ways a user names a torrent.

use std::fmt;
use std::net::SocketAddr;
use xus_codec::quote::short;

use crate::torrent::info_hash::InfoHash;

/// Longest magnet link accepted.
pub const MAX_MAGNET_LEN: usize = 16 * 1024;

/// The parts of a magnet link xus reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Magnet {
    /// `xt=urn:btih:`.
    pub info_hash: InfoHash,
    /// `dn=`: for commit torrents, the commit id.
    pub name: Option<String>,
    /// `x.pe=`: peers to dial.
    pub peers: Vec<SocketAddr>,
    /// `ws=`: webseed base URLs (BEP 19), `http://` or `https://` only.
    pub webseeds: Vec<String>,
}

/// Most `ws=` webseeds kept from one link.
pub const MAX_WEBSEEDS: usize = 16;

/// Why a magnet link or infohash is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MagnetError {
    /// Not `magnet:?...`.
    #[error("not a magnet link (expected `magnet:?xt=urn:btih:...`)")]
    NotMagnet,
    /// Over [`MAX_MAGNET_LEN`].
    #[error("magnet link is {0} bytes, over the {MAX_MAGNET_LEN}-byte limit")]
    TooLong(usize),
    /// No usable `xt`.
    #[error("magnet link has no `xt=urn:btih:` with a 40-hex or 32-base32 infohash")]
    NoInfoHash,
    /// A `%` escape that is not two hex digits, or a value that is not UTF-8.
    #[error("magnet parameter `{0}` is not correctly percent-encoded UTF-8")]
    Encoding(String),
    /// An `x.pe` that is not `ip:port`.
    #[error("magnet peer `{0}` is not an ip:port address")]
    Peer(String),
    /// A `ws` that is not an http(s) URL, or too many of them.
    #[error("magnet webseed `{0}` is not an http:// or https:// URL (at most {MAX_WEBSEEDS})")]
    Webseed(String),
}

impl Magnet {
    /// Parses a magnet link, ignoring parameters xus has no use for.
    pub fn parse(text: &str) -> Result<Self, MagnetError> {
        if text.len() > MAX_MAGNET_LEN {
            return Err(MagnetError::TooLong(text.len()));
        }
        let query = text
            .strip_prefix("magnet:?")
            .ok_or(MagnetError::NotMagnet)?;
        let mut info_hash = None;
        let mut name = None;
        let mut peers = Vec::new();
        let mut webseeds = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value).ok_or_else(|| MagnetError::Encoding(short(key)))?;
            match key {
                "xt" => {
                    if let Some(hash) = value.strip_prefix("urn:btih:") {
                        info_hash = Some(parse_info_hash(hash).ok_or(MagnetError::NoInfoHash)?);
                    }
                }
                "dn" => name = Some(value),
                "x.pe" => peers.push(
                    value
                        .parse()
                        .map_err(|_| MagnetError::Peer(short(&value)))?,
                ),
                "ws" => {
                    let ok = (value.starts_with("http://") || value.starts_with("https://"))
                        && !value.chars().any(|c| c.is_control() || c == ' ')
                        && webseeds.len() < MAX_WEBSEEDS;
                    if !ok {
                        return Err(MagnetError::Webseed(short(&value)));
                    }
                    webseeds.push(value);
                }
                _ => {}
            }
        }
        let magnet = Self {
            info_hash: info_hash.ok_or(MagnetError::NoInfoHash)?,
            name,
            peers,
            webseeds,
        };
        // Printing escapes what the link may carry raw (`!` becomes `%21`), so
        // refuse a link whose printed form would itself be refused.
        let printed = magnet.to_string().len();
        if printed > MAX_MAGNET_LEN {
            return Err(MagnetError::TooLong(printed));
        }
        Ok(magnet)
    }
}

impl fmt::Display for Magnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "magnet:?xt=urn:btih:{}", self.info_hash)?;
        if let Some(name) = &self.name {
            write!(f, "&dn={}", percent_encode(name))?;
        }
        for peer in &self.peers {
            write!(f, "&x.pe={}", percent_encode(&peer.to_string()))?;
        }
        for url in &self.webseeds {
            // A URL carries its own `:`, `/`, `?`, `&` and `%`: escape all
            // but RFC 3986 unreserved characters so it stays one value.
            write!(f, "&ws={}", xus_codec::percent::encode(url.as_bytes()))?;
        }
        Ok(())
    }
}

/// An infohash as 40 hex digits or 32 base32 letters (both appear in magnets).
///
/// Either case for both: BEP 9 fixes neither, other clients and sites print
/// uppercase hex as often as lowercase, and people type or paste these. Only
/// the 20 bytes matter afterwards (xus prints lowercase). Signs, spaces and
/// any other length are refused.
pub fn parse_info_hash(text: &str) -> Option<InfoHash> {
    match text.len() {
        40 => InfoHash::from_hex_case(text, xus_codec::hex::Case::Either),
        32 => base32_decode(text).and_then(|b| InfoHash::from_slice(&b)),
        _ => None,
    }
}

fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(20);
    let (mut buffer, mut bits) = (0u64, 0u32);
    for c in text.bytes() {
        let v = match c.to_ascii_uppercase() {
            c @ b'A'..=b'Z' => c - b'A',
            c @ b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | u64::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// A parameter value: strict percent escapes (`%` and two hex digits, either
/// case), `+` for a space as in HTML forms (what most magnet writers use for
/// `dn`), and UTF-8 once decoded.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = xus_codec::percent::decode_form(text).ok()?;
    String::from_utf8(bytes).ok()
}

/// A parameter value as xus writes it: RFC 3986 unreserved characters and
/// `:` (so `x.pe=127.0.0.1:6881` stays readable) as they are, the rest as
/// `%XX`. A `+` is escaped, since [`percent_decode`] reads `+` as a space.
fn percent_encode(text: &str) -> String {
    xus_codec::percent::encode_keeping(text.as_bytes(), b":")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        let m = Magnet {
            info_hash: InfoHash([0xab; 20]),
            name: Some("a b&c".into()),
            peers: vec!["127.0.0.1:6881".parse().expect("addr")],
            webseeds: vec!["http://127.0.0.1:8080/a?x=1&y=%25".into()],
        };
        assert_eq!(Magnet::parse(&m.to_string()), Ok(m));
        for bad in ["ftp://x/", "http://a b/", "file:///etc"] {
            let link = format!("magnet:?xt=urn:btih:{}&ws={bad}", "ab".repeat(20));
            assert!(
                matches!(Magnet::parse(&link), Err(MagnetError::Webseed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn base32_and_errors() {
        let m =
            Magnet::parse("magnet:?xt=urn:btih:VOV2XK5LVOV2XK5LVOV2XK5LVOV2XK5L").expect("base32");
        assert_eq!(m.info_hash, InfoHash([0xab; 20]));
        assert_eq!(Magnet::parse("http://x"), Err(MagnetError::NotMagnet));
        assert_eq!(Magnet::parse("magnet:?dn=x"), Err(MagnetError::NoInfoHash));
        assert_eq!(
            Magnet::parse("magnet:?xt=urn:btih:zz"),
            Err(MagnetError::NoInfoHash)
        );
        assert!(
            Magnet::parse("magnet:?xt=urn:btih:abababababababababababababababababababab&dn=%e")
                .is_err()
        );
        assert!(
            Magnet::parse("magnet:?xt=urn:btih:abababababababababababababababababababab&x.pe=nope")
                .is_err()
        );
    }

    #[test]
    fn percent_escape_with_a_sign_is_refused() {
        // `u8::from_str_radix` takes a leading `+`, so `%+1` used to decode.
        for bad in ["%+1", "%+f", "%-1", "% 1"] {
            assert_eq!(
                Magnet::parse(&format!(
                    "magnet:?xt=urn:btih:abababababababababababababababababababab&dn={bad}"
                )),
                Err(MagnetError::Encoding("dn".into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn printed_magnet_stays_within_the_length_limit() {
        let link = |name: &str| {
            format!("magnet:?xt=urn:btih:abababababababababababababababababababab&dn={name}")
        };
        // Within the limit as written, three times over it once `!` is escaped.
        let raw = link(&"!".repeat(MAX_MAGNET_LEN - 70));
        assert!(raw.len() <= MAX_MAGNET_LEN);
        assert!(matches!(
            Magnet::parse(&raw),
            Err(MagnetError::TooLong(n)) if n > MAX_MAGNET_LEN
        ));
        let m = Magnet::parse(&link(&"!".repeat(MAX_MAGNET_LEN / 3 - 70))).expect("fits");
        assert_eq!(Magnet::parse(&m.to_string()), Ok(m));
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,300}") {
            let _ = Magnet::parse(&s);
            let _ = Magnet::parse(&format!("magnet:?{s}"));
        }
    }
}
