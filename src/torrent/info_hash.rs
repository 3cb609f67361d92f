//! [`InfoHash`]: the name of a torrent, a type of its own so that it can
//! never be passed where a Git object id is meant (both are 20 bytes of
//! SHA-1). The leaf crates have their own forms; the conversions to them
//! are here and nowhere else.

use std::fmt;

use sha1::{Digest, Sha1};

use crate::git::object::sha1_id_text;

/// The SHA-1 of a torrent's bencoded info dictionary (BitTorrent v1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfoHash(pub [u8; 20]);

impl InfoHash {
    /// The infohash of the info dictionary `info_bytes`.
    pub fn of_info(info_bytes: &[u8]) -> Self {
        Self(Sha1::digest(info_bytes).into())
    }
}

sha1_id_text!(InfoHash);

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash({})", self.to_hex())
    }
}

impl From<tracker_free::InfoHash> for InfoHash {
    fn from(value: tracker_free::InfoHash) -> Self {
        Self(value.0)
    }
}

impl From<InfoHash> for tracker_free::InfoHash {
    fn from(value: InfoHash) -> Self {
        Self(value.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xus_codec::hex::Case;

    #[test]
    fn hex_round_trip_and_leaf_conversions() {
        let ih = InfoHash([0xab; 20]);
        assert_eq!(InfoHash::from_hex(&ih.to_hex()), Some(ih));
        assert_eq!(InfoHash::from_hex(&ih.to_hex().to_uppercase()), None);
        assert_eq!(
            InfoHash::from_hex_case(&ih.to_hex().to_uppercase(), Case::Either),
            Some(ih)
        );
        let dht: tracker_free::InfoHash = ih.into();
        assert_eq!(InfoHash::from(dht), ih);
    }

    #[test]
    fn it_is_the_sha1_of_the_info_bytes() {
        // SHA-1("d1:ai1ee").
        let ih = InfoHash::of_info(b"d1:ai1ee");
        assert_eq!(ih.0, <[u8; 20]>::from(Sha1::digest(b"d1:ai1ee")));
    }
}
