//! Writing the format: the canonical info dictionary from its parts, the
//! `.torrent` file around it, and magnet links.

use super::{CommitTorrent, Symlink, TorrentFile, VERSION};
use crate::git::object::ObjectId;
use crate::torrent::bencode::{self, Owned};

/// What the builder hands to [`assemble`]: the parts of the info dictionary.
pub(crate) struct Parts {
    pub commit_raw: Vec<u8>,
    pub trees: Vec<(ObjectId, Vec<u8>)>,
    pub files: Vec<TorrentFile>,
    pub links: Vec<Symlink>,
    pub piece_length: u64,
    pub piece_hashes: Vec<[u8; 20]>,
    pub weak: Vec<u32>,
}

/// Encodes the parts into the canonical info dictionary bytes.
pub(crate) fn assemble(parts: &Parts, commit: ObjectId) -> Vec<u8> {
    let files = parts
        .files
        .iter()
        .map(|f| {
            let mut entry = std::collections::BTreeMap::new();
            if f.executable {
                entry.insert(b"attr".to_vec(), Owned::bytes("x"));
            }
            entry.insert(b"length".to_vec(), Owned::Int(f.length as i64));
            entry.insert(
                b"path".to_vec(),
                Owned::List(f.path.iter().map(Owned::bytes).collect()),
            );
            Owned::Dict(entry)
        })
        .collect();
    let xus = bencode::dict([
        ("commit", Owned::bytes(&parts.commit_raw)),
        (
            "links",
            Owned::List(
                parts
                    .links
                    .iter()
                    .map(|l| Owned::bytes(&l.target))
                    .collect(),
            ),
        ),
        (
            "trees",
            Owned::List(
                parts
                    .trees
                    .iter()
                    .map(|(_, raw)| Owned::bytes(raw))
                    .collect(),
            ),
        ),
        ("v", Owned::Int(VERSION)),
        (
            "weak",
            Owned::Bytes(parts.weak.iter().flat_map(|w| w.to_be_bytes()).collect()),
        ),
    ]);
    bencode::dict([
        ("files", Owned::List(files)),
        ("name", Owned::bytes(commit.to_hex())),
        ("piece length", Owned::Int(parts.piece_length as i64)),
        ("pieces", Owned::Bytes(parts.piece_hashes.concat())),
        ("xus", xus),
    ])
    .encode()
}

impl CommitTorrent {
    /// A `.torrent` file around the info dictionary (no tracker: xus is trackerless).
    pub fn torrent_file(&self, webseeds: &[String]) -> Vec<u8> {
        torrent_file_around(&self.info_bytes, webseeds)
    }

    /// A magnet link naming the commit and, optionally, peers to try.
    pub fn magnet(&self, peers: &[std::net::SocketAddr]) -> String {
        self.magnet_with_webseeds(peers, &[])
    }

    /// A magnet link naming the commit, peers to try and webseeds (`ws=`,
    /// BEP 19 base URLs, percent-encoded), so that a client holding only the
    /// link can get the metadata from a peer and the data from any of them.
    ///
    /// Kept apart from [`Self::magnet`] so that callers without webseeds
    /// (and the fuzz targets) keep their one-argument form.
    pub fn magnet_with_webseeds(
        &self,
        peers: &[std::net::SocketAddr],
        webseeds: &[String],
    ) -> String {
        crate::torrent::magnet::Magnet {
            info_hash: self.info_hash,
            name: Some(self.commit.to_hex()),
            peers: peers.to_vec(),
            webseeds: webseeds.to_vec(),
        }
        .to_string()
    }
}

/// A `.torrent` file around `info_bytes` (kept byte for byte, so the
/// infohash holds), with BEP 19 webseeds in `url-list` when given and no
/// tracker: xus is trackerless. Commit and update torrents both use it.
pub fn torrent_file_around(info_bytes: &[u8], webseeds: &[String]) -> Vec<u8> {
    let mut out = b"d4:info".to_vec();
    out.extend_from_slice(info_bytes);
    if !webseeds.is_empty() {
        Owned::bytes("url-list").encode_into(&mut out);
        Owned::List(webseeds.iter().map(Owned::bytes).collect()).encode_into(&mut out);
    }
    out.push(b'e');
    out
}
