//! What a user names as a fetch source, parsed before anything starts:
//! a `.torrent` file, a magnet link, an infohash, or a topic head.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;

use crate::topic::head_address::HeadAddress;
use crate::topic::home::Home;
use crate::torrent::format::{self, CommitTorrent};
use crate::torrent::info_hash::InfoHash;
use crate::torrent::magnet::{self, Magnet};

/// What the user named.
#[derive(Debug)]
pub enum Source {
    /// A complete torrent, with the webseeds of its `url-list`.
    Torrent(Box<CommitTorrent>, Vec<String>),
    /// An infohash, with what a magnet link named besides.
    InfoHash(InfoHash, Hints),
    /// A topic's branch head, to resolve on the DHT.
    Head(HeadAddress),
}

impl Source {
    /// Whether the source names peers of its own (a magnet's `x.pe`).
    pub fn names_peers(&self) -> bool {
        matches!(self, Self::InfoHash(_, hints) if !hints.peers.is_empty())
    }

    /// Whether the source names webseeds of its own.
    pub fn names_webseeds(&self) -> bool {
        match self {
            Self::Torrent(_, webseeds) => !webseeds.is_empty(),
            Self::InfoHash(_, hints) => !hints.webseeds.is_empty(),
            Self::Head(_) => false,
        }
    }
}

/// What a magnet link says besides the infohash.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hints {
    /// `x.pe` peers.
    pub peers: Vec<SocketAddr>,
    /// `ws` webseeds.
    pub webseeds: Vec<String>,
    /// `dn`: for commit torrents, the commit id (a xus webseed serves
    /// `<dn>.torrent`).
    pub name: Option<String>,
}

/// Reads what the user typed as a fetch source. A head names a topic by id
/// or by a name known to `home`. A path that exists is read as a `.torrent`
/// file (bounded, strictly parsed) even when its name looks like an
/// infohash.
///
/// # Errors
///
/// Text that is none of the forms, a malformed link, or a file that is not
/// a valid commit torrent.
pub fn parse_source(text: &str, home: &Home) -> anyhow::Result<Source> {
    if let Some(address) = HeadAddress::parse(text, home)? {
        return Ok(Source::Head(address));
    }
    if text.starts_with("magnet:") {
        let m = Magnet::parse(text)?;
        return Ok(Source::InfoHash(
            m.info_hash,
            Hints {
                peers: m.peers,
                webseeds: m.webseeds,
                name: m.name,
            },
        ));
    }
    let path = Path::new(text);
    if !path.exists()
        && let Some(ih) = magnet::parse_info_hash(text)
    {
        return Ok(Source::InfoHash(ih, Hints::default()));
    }
    let meta = std::fs::metadata(path).with_context(|| {
        format!(
            "{:?} is not a magnet link, an infohash, a xus:// head or a readable .torrent file",
            xus_codec::quote::short(text)
        )
    })?;
    anyhow::ensure!(
        meta.len() <= format::MAX_TORRENT_FILE_BYTES as u64,
        "{text} is {} bytes, larger than any valid commit torrent",
        meta.len()
    );
    let bytes = crate::bounded_file::read(path, format::MAX_TORRENT_FILE_BYTES as u64)?;
    let info = format::info_from_torrent_file(&bytes)
        .with_context(|| format!("{text} is not a valid .torrent file"))?;
    let torrent = CommitTorrent::parse(info)
        .with_context(|| format!("{text} is not a valid xus commit torrent"))?;
    let webseeds = format::webseeds_from_torrent_file(&bytes)
        .with_context(|| format!("reading the url-list of {text}"))?;
    Ok(Source::Torrent(Box::new(torrent), webseeds))
}

#[cfg(test)]
mod tests {
    use super::*;

    const IH: &str = "0123456789abcdef0123456789abcdef01234567";

    fn home() -> (tempfile::TempDir, Home) {
        let dir = tempfile::tempdir().expect("temp dir");
        let home = Home::at(dir.path().join("home"));
        (dir, home)
    }

    #[test]
    fn a_magnet_keeps_its_peers_webseeds_and_name() {
        let (_dir, home) = home();
        let text = format!(
            "magnet:?xt=urn:btih:{IH}&dn=abc&x.pe=127.0.0.1:6881&ws=http%3A%2F%2F127.0.0.1%3A8080%2F"
        );
        let source = parse_source(&text, &home).expect("a valid magnet");
        assert!(source.names_peers());
        assert!(source.names_webseeds());
        let Source::InfoHash(ih, hints) = source else {
            panic!("not an infohash source: {source:?}");
        };
        assert_eq!(ih.to_hex(), IH);
        assert_eq!(hints.name.as_deref(), Some("abc"));
        assert_eq!(hints.peers, vec!["127.0.0.1:6881".parse().expect("addr")]);
        assert_eq!(hints.webseeds, vec!["http://127.0.0.1:8080/".to_string()]);
    }

    #[test]
    fn a_bare_infohash_has_no_hints() {
        let (_dir, home) = home();
        let source = parse_source(IH, &home).expect("an infohash");
        assert!(!source.names_peers() && !source.names_webseeds());
        assert!(matches!(source, Source::InfoHash(_, h) if h == Hints::default()));
    }

    #[test]
    fn a_file_named_like_an_infohash_is_read_as_a_torrent() {
        let (dir, home) = home();
        let path = dir.path().join(IH);
        std::fs::write(&path, b"not bencode").expect("write");
        let error =
            parse_source(path.to_str().expect("utf-8"), &home).expect_err("garbage is no torrent");
        assert!(
            format!("{error:#}").contains("not a valid .torrent file"),
            "{error:#}"
        );
    }

    #[test]
    fn an_oversized_file_is_refused_before_it_is_read() {
        let (dir, home) = home();
        let path = dir.path().join("big.torrent");
        let file = std::fs::File::create(&path).expect("create");
        file.set_len(format::MAX_TORRENT_FILE_BYTES as u64 + 1)
            .expect("grow");
        let error = parse_source(path.to_str().expect("utf-8"), &home).expect_err("too big");
        assert!(format!("{error:#}").contains("larger than any valid commit torrent"));
    }

    #[test]
    fn heads_and_nonsense() {
        let (_dir, home) = home();
        let topic = home.create_topic("world").expect("a topic").topic();
        for text in [
            format!("xus://{topic}/main"),
            "xus://world/main".to_string(),
        ] {
            let source = parse_source(&text, &home).expect("a head");
            let Source::Head(address) = source else {
                panic!("not a head: {source:?}");
            };
            assert_eq!((address.topic, address.branch.as_str()), (topic, "main"));
        }
        for bad in ["nonsense", "xus://unknown-topic/main", "magnet:?dn=x"] {
            assert!(parse_source(bad, &home).is_err(), "{bad} accepted");
        }
    }
}
