//! Topic identities: an ed25519 key pair per topic. The public key is the
//! topic id every reader uses; the secret signs the topic's branch heads.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

use crate::head::{Branch, Head, SignedHead};

/// A topic id: the ed25519 public key that signs the topic's heads.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicKey(pub [u8; 32]);

/// Returned when a topic key or secret does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TopicError {
    /// Not 64 hexadecimal digits.
    #[error("a topic key is 64 hexadecimal digits, got {len} characters")]
    BadHex {
        /// Length of what was given.
        len: usize,
    },
    /// 32 bytes that are not a point on the curve.
    #[error("{0} is not a valid ed25519 public key")]
    NotAKey(String),
    /// The system random source failed.
    #[error("the system random source failed: {0}")]
    Random(String),
}

impl TopicKey {
    /// Parses 64 hex digits and checks the bytes are a usable public key,
    /// so a typo is caught before any DHT lookup.
    pub fn from_hex(text: &str) -> Result<Self, TopicError> {
        let bytes = decode_hex32(text)?;
        VerifyingKey::from_bytes(&bytes).map_err(|_| TopicError::NotAKey(text.to_string()))?;
        Ok(Self(bytes))
    }

    /// Lowercase hex, the form printed and typed.
    pub fn to_hex(&self) -> String {
        encode_hex(&self.0)
    }

    pub(crate) fn verifying_key(&self) -> Option<VerifyingKey> {
        VerifyingKey::from_bytes(&self.0).ok()
    }
}

impl fmt::Display for TopicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for TopicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicKey({})", self.to_hex())
    }
}

impl FromStr for TopicKey {
    type Err = TopicError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s)
    }
}

/// The secret half of a topic: whoever holds it can move the topic's heads.
/// Stored as the 32-byte ed25519 seed; `Debug` never prints it.
#[derive(Clone)]
pub struct TopicSecret {
    key: SigningKey,
}

impl TopicSecret {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self, TopicError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| TopicError::Random(e.to_string()))?;
        Ok(Self::from_seed(seed))
    }

    /// The key for a known seed (what is stored on disk).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(&seed),
        }
    }

    /// Parses the stored form: the seed as 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, TopicError> {
        Ok(Self::from_seed(decode_hex32(text.trim())?))
    }

    /// The stored form: the seed as 64 hex digits.
    pub fn to_hex(&self) -> String {
        encode_hex(&self.key.to_bytes())
    }

    /// The public topic id.
    pub fn topic(&self) -> TopicKey {
        TopicKey(self.key.verifying_key().to_bytes())
    }

    /// Signs `head` for `branch` at `seq`, exactly as BEP 44 lays out the
    /// signed bytes (salt, seq, value), so any DHT node can verify it.
    pub fn sign_head(&self, branch: &Branch, head: &Head, seq: i64) -> SignedHead {
        let value = head.encode();
        let signable = crate::head::signable(branch.as_bytes(), seq, &value);
        let signature = self.key.sign(&signable).to_bytes();
        SignedHead {
            topic: self.topic(),
            branch: branch.clone(),
            seq,
            value,
            signature,
            head: head.clone(),
        }
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.key
    }
}

impl fmt::Debug for TopicSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicSecret(topic {})", self.topic())
    }
}

fn decode_hex32(text: &str) -> Result<[u8; 32], TopicError> {
    let bad = || TopicError::BadHex { len: text.len() };
    if text.len() != 64 || !text.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

pub(crate) fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_round_trips_through_hex_and_hides_itself_in_debug() {
        let secret = TopicSecret::generate().expect("random source");
        let again = TopicSecret::from_hex(&secret.to_hex()).expect("hex");
        assert_eq!(secret.topic(), again.topic());
        assert!(!format!("{secret:?}").contains(&secret.to_hex()));
    }

    #[test]
    fn topic_key_parse_refuses_bad_input() {
        let topic = TopicSecret::from_seed([1; 32]).topic();
        assert_eq!(TopicKey::from_hex(&topic.to_hex()), Ok(topic));
        assert_eq!(
            TopicKey::from_hex(&topic.to_hex().to_uppercase()),
            Ok(topic)
        );
        assert!(TopicKey::from_hex("abc").is_err());
        assert!(TopicKey::from_hex(&"g".repeat(64)).is_err());
        assert!(TopicKey::from_hex(&"é".repeat(32)).is_err());
    }
}
