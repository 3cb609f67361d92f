//! A writer hands the master the info dictionary of a commit it pushes
//! (`PUT /push/metadata/<infohash>`), so that the master can start the
//! download without asking the writer for it over BEP 9. That is what lets a
//! writer behind NAT push: the master needs no connection of its own to the
//! writer, neither for the metadata nor (the writer dials it) for the pieces.
//!
//! The upload is signed by a writer key the topic lists, and the signature
//! is checked from the headers before a byte of the body is read, so an
//! outsider cannot make the master buffer anything. The body then proves
//! itself: its SHA-1 must be the infohash in the path.
//!
//! | header | value |
//! | --- | --- |
//! | `x-xus-topic` | topic id, 64 lowercase hex digits |
//! | `x-xus-writer` | writer key, 64 lowercase hex digits |
//! | `x-xus-time` | seconds since the Unix epoch, decimal |
//! | `x-xus-signature` | ed25519 signature, 128 lowercase hex digits, over `xus-push-metadata-v1\n`, the topic id, the infohash (both 32 raw bytes and 20 raw bytes) and the time as 8 big-endian bytes |

use tracker_free::TopicKey;

use crate::hex;
use crate::topic::writer_key::{WriterKey, WriterSecret};
use crate::torrent::info_hash::InfoHash;

/// The topic header.
pub const TOPIC_HEADER: &str = "x-xus-topic";
/// The writer key header.
pub const WRITER_HEADER: &str = "x-xus-writer";
/// The signing time header.
pub const TIME_HEADER: &str = "x-xus-time";
/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-xus-signature";

/// Keeps an offer's signature from ever passing for any other signed
/// message of xus.
const SIGNING_DOMAIN: &[u8] = b"xus-push-metadata-v1\n";

/// The signed headers of one upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataOffer {
    /// The topic the commit is pushed to.
    pub topic: TopicKey,
    /// Who signs.
    pub writer: WriterKey,
    /// When it was signed (the master refuses clocks too far apart, as for
    /// a push).
    pub time: u64,
    signature: [u8; 64],
}

/// Returned when an offer's headers are missing, malformed or not signed by
/// the key they name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetadataOfferError {
    /// A header is absent.
    #[error("the {0} header is missing")]
    Missing(&'static str),
    /// A header does not parse.
    #[error("the {header} header is not {expected}")]
    Malformed {
        /// Which one.
        header: &'static str,
        /// What it should be.
        expected: &'static str,
    },
    /// The signature does not hold for this infohash.
    #[error("the signature does not match the writer key, topic, infohash and time")]
    BadSignature,
}

impl MetadataOffer {
    /// Signs an offer of the info dictionary of `info_hash` for `topic`.
    pub fn sign(secret: &WriterSecret, topic: TopicKey, info_hash: InfoHash, time: u64) -> Self {
        let signature = secret.sign(&signable(&topic, info_hash, time));
        Self {
            topic,
            writer: secret.public(),
            time,
            signature,
        }
    }

    /// The headers to send, name and value.
    pub fn headers(&self) -> [(&'static str, String); 4] {
        [
            (TOPIC_HEADER, self.topic.to_hex()),
            (WRITER_HEADER, self.writer.to_hex()),
            (TIME_HEADER, self.time.to_string()),
            (SIGNATURE_HEADER, hex::encode(&self.signature)),
        ]
    }

    /// Reads the headers through `header` (a header's value by name, `None`
    /// when absent or not text) and checks the signature over `info_hash`.
    /// Whether the writer may push to the topic is for the caller.
    pub fn verify<'a>(
        header: impl Fn(&str) -> Option<&'a str>,
        info_hash: InfoHash,
    ) -> Result<Self, MetadataOfferError> {
        let get = |name: &'static str| header(name).ok_or(MetadataOfferError::Missing(name));
        let malformed = |header: &'static str, expected: &'static str| {
            MetadataOfferError::Malformed { header, expected }
        };
        let topic = TopicKey::from_hex(get(TOPIC_HEADER)?)
            .map_err(|_| malformed(TOPIC_HEADER, "a topic id (64 hex digits)"))?;
        let writer = WriterKey::from_hex(get(WRITER_HEADER)?)
            .map_err(|_| malformed(WRITER_HEADER, "a writer key (64 hex digits)"))?;
        let time_text = get(TIME_HEADER)?;
        let time = (time_text.len() <= 20 && time_text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| time_text.parse::<u64>().ok())
            .flatten()
            .ok_or_else(|| malformed(TIME_HEADER, "seconds since 1970, in decimal"))?;
        let signature: [u8; 64] = hex::decode(get(SIGNATURE_HEADER)?)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| malformed(SIGNATURE_HEADER, "128 hex digits"))?;
        if !writer.verify(&signable(&topic, info_hash, time), &signature) {
            return Err(MetadataOfferError::BadSignature);
        }
        Ok(Self {
            topic,
            writer,
            time,
            signature,
        })
    }
}

/// The bytes signed.
fn signable(topic: &TopicKey, info_hash: InfoHash, time: u64) -> Vec<u8> {
    let mut message = SIGNING_DOMAIN.to_vec();
    message.extend_from_slice(&topic.0);
    message.extend_from_slice(&info_hash.0);
    message.extend_from_slice(&time.to_be_bytes());
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn offer() -> (MetadataOffer, InfoHash) {
        let secret = WriterSecret::generate().expect("random source");
        let topic = tracker_free::TopicSecret::from_seed([3; 32]).topic();
        let ih = InfoHash([7; 20]);
        (MetadataOffer::sign(&secret, topic, ih, 1_700_000_000), ih)
    }

    fn verify(
        headers: &HashMap<&'static str, String>,
        ih: InfoHash,
    ) -> Result<MetadataOffer, MetadataOfferError> {
        MetadataOffer::verify(|name| headers.get(name).map(String::as_str), ih)
    }

    #[test]
    fn signed_headers_verify_for_their_infohash_only() {
        let (offer, ih) = offer();
        let headers: HashMap<_, _> = offer.headers().into_iter().collect();
        assert_eq!(verify(&headers, ih), Ok(offer));
        assert_eq!(
            verify(&headers, InfoHash([8; 20])),
            Err(MetadataOfferError::BadSignature)
        );
    }

    #[test]
    fn a_changed_or_missing_header_is_refused() {
        let (offer, ih) = offer();
        let good: HashMap<_, _> = offer.headers().into_iter().collect();
        let mut later = good.clone();
        later.insert(TIME_HEADER, (offer.time + 1).to_string());
        assert_eq!(verify(&later, ih), Err(MetadataOfferError::BadSignature));
        let mut other_topic = good.clone();
        other_topic.insert(
            TOPIC_HEADER,
            tracker_free::TopicSecret::from_seed([4; 32])
                .topic()
                .to_hex(),
        );
        assert_eq!(
            verify(&other_topic, ih),
            Err(MetadataOfferError::BadSignature)
        );
        let mut missing = good.clone();
        missing.remove(SIGNATURE_HEADER);
        assert_eq!(
            verify(&missing, ih),
            Err(MetadataOfferError::Missing(SIGNATURE_HEADER))
        );
        for (header, value) in [
            (TIME_HEADER, "-1".to_owned()),
            (TIME_HEADER, "9".repeat(30)),
            (SIGNATURE_HEADER, "zz".repeat(64)),
            (WRITER_HEADER, "00".repeat(16)),
            (TOPIC_HEADER, "x".into()),
        ] {
            let mut bad = good.clone();
            bad.insert(header, value);
            assert!(
                matches!(verify(&bad, ih), Err(MetadataOfferError::Malformed { header: h, .. }) if h == header),
                "{header} accepted"
            );
        }
    }
}
