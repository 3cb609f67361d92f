//! The update torrent: an ordinary single-file BitTorrent v1 torrent whose
//! file is the payload, so any client can seed or fetch it, with an
//! `xus-update` key naming the two commits. Deterministic like the commit
//! torrent: the same payload gives the same info dictionary everywhere.

use super::payload::{self, MAX_PAYLOAD_BYTES};
use crate::git::object::ObjectId;
use crate::torrent::bencode::{self, Owned, Spanned};
use crate::torrent::format::{piece_length_for, sha1_of};
use crate::torrent::info_hash::InfoHash;

/// The version written under `xus-update.v`.
pub const UPDATE_VERSION: i64 = 1;

/// Largest update info dictionary: at most 1024 piece hashes and a few
/// short keys fit in 21 KB; anything larger is not one.
pub const MAX_UPDATE_INFO_BYTES: usize = 64 * 1024;

/// Why bytes are not a valid update torrent, or a payload does not match one.
#[derive(Debug, thiserror::Error)]
pub enum TorrentError {
    /// Not bencode, or not within bounds.
    #[error("update info dictionary is not valid bencode")]
    Bencode(#[from] bencode::DecodeError),
    /// A key missing or of the wrong type.
    #[error("update info dictionary field `{0}` is missing or malformed")]
    Field(&'static str),
    /// Written by a newer xus.
    #[error(
        "update torrent version {0} is not supported (this xus reads version {UPDATE_VERSION})"
    )]
    Version(i64),
    /// Over a size bound.
    #[error("update {what} is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// What is too large.
        what: &'static str,
        /// Its size.
        size: u64,
        /// The bound.
        limit: u64,
    },
    /// Fields that disagree with each other or with the canonical form.
    #[error("update torrent: {0}")]
    Mismatch(String),
    /// A payload that is not the one the torrent describes.
    #[error("update payload does not match its torrent: {0}")]
    Payload(String),
}

/// A parsed, validated update torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateTorrent {
    /// The exact info dictionary bytes; the infohash is their SHA-1.
    pub info_bytes: Vec<u8>,
    /// The commit a reader must have.
    pub from: ObjectId,
    /// The commit the update rebuilds.
    pub to: ObjectId,
    /// The payload's length.
    pub length: u64,
    /// Piece length, by the commit torrent's rule.
    pub piece_length: u64,
    /// SHA-1 of every piece.
    pub piece_hashes: Vec<[u8; 20]>,
}

impl UpdateTorrent {
    /// The file name: `<from>..<to>.xup`. Git's range notation says what the
    /// file is to a person looking at a download folder; the pair is unique
    /// per update, and the name can never be a commit torrent's (40 hex
    /// digits, or `<commit>.commit`).
    pub fn file_name(from: ObjectId, to: ObjectId) -> String {
        format!("{from}..{to}.xup")
    }

    /// The update torrent of `payload`, an update from `from` to `to`.
    pub fn new(from: ObjectId, to: ObjectId, payload: &[u8]) -> Result<Self, TorrentError> {
        let length = payload.len() as u64;
        check_length(length)?;
        if from == to {
            return Err(TorrentError::Mismatch(format!(
                "an update from {from} to itself"
            )));
        }
        let piece_length = piece_length_for(length);
        let piece_hashes: Vec<[u8; 20]> =
            payload.chunks(piece_length as usize).map(sha1_of).collect();
        let info_bytes = assemble(from, to, length, piece_length, &piece_hashes);
        Ok(Self {
            info_bytes,
            from,
            to,
            length,
            piece_length,
            piece_hashes,
        })
    }

    /// Parses info dictionary bytes from anywhere (a `.torrent`, a peer, a
    /// cache) strictly: every field present with its type, the version, the
    /// name derived from `from` and `to`, the piece length by the rule, one
    /// hash per piece, and bytes identical to what [`UpdateTorrent::new`]
    /// would write for those values (so no key is added, reordered or
    /// spelled differently).
    pub fn parse(info_bytes: &[u8]) -> Result<Self, TorrentError> {
        if info_bytes.len() > MAX_UPDATE_INFO_BYTES {
            return Err(TorrentError::TooLarge {
                what: "info dictionary",
                size: info_bytes.len() as u64,
                limit: MAX_UPDATE_INFO_BYTES as u64,
            });
        }
        let info = bencode::decode(info_bytes, bencode::Limits::default())?;
        let xus = info
            .get(b"xus-update")
            .ok_or(TorrentError::Field("xus-update"))?;
        let version = int(xus, b"v", "xus-update.v")?;
        if version != UPDATE_VERSION {
            return Err(TorrentError::Version(version));
        }
        let id = |key: &[u8], what| {
            bytes(xus, key, what)
                .and_then(|b| ObjectId::from_slice(b).ok_or(TorrentError::Field(what)))
        };
        let from = id(b"from", "xus-update.from")?;
        let to = id(b"to", "xus-update.to")?;
        let length = u64::try_from(int(&info, b"length", "length")?)
            .map_err(|_| TorrentError::Field("length"))?;
        check_length(length)?;
        let piece_length = int(&info, b"piece length", "piece length")?;
        if u64::try_from(piece_length).ok() != Some(piece_length_for(length)) {
            return Err(TorrentError::Mismatch(format!(
                "piece length {piece_length} is not the rule's {} for {length} bytes",
                piece_length_for(length)
            )));
        }
        let piece_length = piece_length_for(length);
        let pieces = bytes(&info, b"pieces", "pieces")?;
        if pieces.len() as u64 != length.div_ceil(piece_length) * 20 {
            return Err(TorrentError::Field("pieces"));
        }
        let piece_hashes: Vec<[u8; 20]> = pieces
            .chunks_exact(20)
            .map(|c| c.try_into().unwrap_or([0; 20]))
            .collect();
        let name = bytes(&info, b"name", "name")?;
        if name != Self::file_name(from, to).as_bytes() {
            return Err(TorrentError::Mismatch(format!(
                "name {:?} is not {}",
                String::from_utf8_lossy(name),
                Self::file_name(from, to)
            )));
        }
        if from == to {
            return Err(TorrentError::Mismatch(format!(
                "an update from {from} to itself"
            )));
        }
        if assemble(from, to, length, piece_length, &piece_hashes) != info_bytes {
            return Err(TorrentError::Mismatch(
                "info dictionary is not in canonical form".into(),
            ));
        }
        Ok(Self {
            info_bytes: info_bytes.to_vec(),
            from,
            to,
            length,
            piece_length,
            piece_hashes,
        })
    }

    /// The infohash: SHA-1 of the info dictionary bytes. What a signed head
    /// carries, and what peers find each other by.
    pub fn info_hash(&self) -> InfoHash {
        InfoHash::of_info(&self.info_bytes)
    }

    /// The file name of the payload (the info dictionary's `name`).
    pub fn name(&self) -> String {
        Self::file_name(self.from, self.to)
    }

    /// A `.torrent` file around the info dictionary, with BEP 19 webseeds
    /// when given and no tracker, as for commit torrents.
    pub fn torrent_file(&self, webseeds: &[String]) -> Vec<u8> {
        crate::torrent::format::torrent_file_around(&self.info_bytes, webseeds)
    }

    /// A magnet link naming the update and, optionally, peers to try.
    pub fn magnet(&self, peers: &[std::net::SocketAddr]) -> String {
        crate::torrent::magnet::Magnet {
            info_hash: self.info_hash(),
            name: Some(self.name()),
            peers: peers.to_vec(),
            webseeds: Vec::new(),
        }
        .to_string()
    }

    /// Checks that `payload` is the file this torrent describes: its length,
    /// every piece hash, and the `from` and `to` in its header. Cheap next
    /// to applying it, and what lets a reader blame the torrent's peers
    /// rather than the publisher.
    pub fn check_payload(&self, payload: &[u8]) -> Result<(), TorrentError> {
        if payload.len() as u64 != self.length {
            return Err(TorrentError::Payload(format!(
                "{} bytes, the torrent says {}",
                payload.len(),
                self.length
            )));
        }
        for (i, (piece, hash)) in payload
            .chunks(self.piece_length as usize)
            .zip(&self.piece_hashes)
            .enumerate()
        {
            if sha1_of(piece) != *hash {
                return Err(TorrentError::Payload(format!("piece {i} does not hash")));
            }
        }
        let header = payload.get(payload::MAGIC.len()..payload::MAGIC.len() + 40);
        let expected = [self.from.0, self.to.0].concat();
        if header != Some(&expected[..]) {
            return Err(TorrentError::Payload(format!(
                "its header does not name {}..{}",
                self.from, self.to
            )));
        }
        Ok(())
    }
}

fn check_length(length: u64) -> Result<(), TorrentError> {
    if length == 0 {
        return Err(TorrentError::Field("length"));
    }
    if length > MAX_PAYLOAD_BYTES {
        return Err(TorrentError::TooLarge {
            what: "payload",
            size: length,
            limit: MAX_PAYLOAD_BYTES,
        });
    }
    Ok(())
}

fn assemble(
    from: ObjectId,
    to: ObjectId,
    length: u64,
    piece_length: u64,
    piece_hashes: &[[u8; 20]],
) -> Vec<u8> {
    bencode::dict([
        ("length", Owned::Int(length as i64)),
        ("name", Owned::bytes(UpdateTorrent::file_name(from, to))),
        ("piece length", Owned::Int(piece_length as i64)),
        ("pieces", Owned::Bytes(piece_hashes.concat())),
        (
            "xus-update",
            bencode::dict([
                ("from", Owned::bytes(from.0)),
                ("to", Owned::bytes(to.0)),
                ("v", Owned::Int(UPDATE_VERSION)),
            ]),
        ),
    ])
    .encode()
}

fn int(d: &Spanned<'_>, key: &[u8], what: &'static str) -> Result<i64, TorrentError> {
    d.get(key)
        .and_then(Spanned::as_int)
        .ok_or(TorrentError::Field(what))
}

fn bytes<'a>(d: &Spanned<'a>, key: &[u8], what: &'static str) -> Result<&'a [u8], TorrentError> {
    d.get(key)
        .and_then(Spanned::as_bytes)
        .ok_or(TorrentError::Field(what))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::torrent::format::info_from_torrent_file;

    fn id(n: u8) -> ObjectId {
        ObjectId([n; 20])
    }

    fn payload(len: usize) -> Vec<u8> {
        let mut p = payload::MAGIC.to_vec();
        p.extend_from_slice(&[1; 20]);
        p.extend_from_slice(&[2; 20]);
        p.resize(len, 7);
        p
    }

    #[test]
    fn round_trips_and_is_canonical() {
        let p = payload(100_000);
        let t = UpdateTorrent::new(id(1), id(2), &p).expect("builds");
        assert_eq!(t.piece_length, 16 * 1024);
        assert_eq!(t.piece_hashes.len(), 7);
        assert_eq!(UpdateTorrent::parse(&t.info_bytes).expect("parses"), t);
        assert_eq!(
            t.name(),
            format!("{}..{}.xup", id(1).to_hex(), id(2).to_hex())
        );
        let file = t.torrent_file(&["http://127.0.0.1:1/".into()]);
        assert_eq!(
            info_from_torrent_file(&file).expect("info"),
            &t.info_bytes[..]
        );
        assert_eq!(t.info_hash().0, sha1_of(&t.info_bytes));
        assert!(t.magnet(&[]).contains(&t.info_hash().to_hex()));
        t.check_payload(&p).expect("matches");
        let mut flipped = p.clone();
        flipped[50_000] ^= 1;
        assert!(t.check_payload(&flipped).is_err());
        assert!(t.check_payload(&p[..p.len() - 1]).is_err());
        let other = UpdateTorrent::new(id(3), id(2), &payload(100)).expect("builds");
        let mut renamed = payload(100);
        renamed[8] = 9;
        assert!(other.check_payload(&renamed).is_err());
    }

    #[test]
    fn refuses_what_new_would_not_write() {
        let t = UpdateTorrent::new(id(1), id(2), &payload(1000)).expect("builds");
        let info = String::from_utf8_lossy(&t.info_bytes).into_owned();
        assert!(info.starts_with("d6:lengthi1000e4:name"), "{info}");
        let edit = |from: &str, to: &str| {
            let bytes = t
                .info_bytes
                .windows(from.len())
                .position(|w| w == from.as_bytes())
                .map(|at| {
                    [
                        &t.info_bytes[..at],
                        to.as_bytes(),
                        &t.info_bytes[at + from.len()..],
                    ]
                    .concat()
                })
                .expect("present");
            UpdateTorrent::parse(&bytes)
        };
        assert!(matches!(
            edit("1:vi1e", "1:vi2e"),
            Err(TorrentError::Version(2))
        ));
        assert!(matches!(
            edit("12:piece lengthi16384e", "12:piece lengthi32768e"),
            Err(TorrentError::Mismatch(_))
        ));
        // Another length is another torrent, valid only with its own pieces.
        assert!(UpdateTorrent::parse(&t.info_bytes.clone()).is_ok());
        assert!(matches!(
            edit("lengthi1000e", "lengthi20000e"),
            Err(TorrentError::Field("pieces"))
        ));
        assert!(matches!(
            edit("lengthi1000e", "lengthi0e"),
            Err(TorrentError::Field("length"))
        ));
        // Over 5 GiB is refused for its length, before its pieces are read.
        let over = format!("lengthi{}e", MAX_PAYLOAD_BYTES + 1);
        assert!(matches!(
            edit("lengthi1000e", &over),
            Err(TorrentError::TooLarge {
                what: "payload",
                ..
            })
        ));
        assert!(matches!(
            edit(".xup", ".xuq"),
            Err(TorrentError::Mismatch(_))
        ));
        assert!(edit("1:vi1e", "1:vi1e1:wi0e").is_err());
        assert!(edit("6:length", "6:lengtH").is_err());
        assert!(UpdateTorrent::parse(b"de").is_err());
        assert!(UpdateTorrent::new(id(1), id(1), &payload(100)).is_err());
        assert!(UpdateTorrent::new(id(1), id(2), &[]).is_err());
        assert!(UpdateTorrent::parse(&vec![b'x'; MAX_UPDATE_INFO_BYTES + 1]).is_err());
    }

    #[test]
    fn piece_length_follows_the_commit_rule() {
        let p = payload(40 << 20);
        let t = UpdateTorrent::new(id(1), id(2), &p).expect("builds");
        assert_eq!(t.piece_length, piece_length_for(40 << 20));
        assert_eq!(t.piece_hashes.len(), 640);
    }
}
