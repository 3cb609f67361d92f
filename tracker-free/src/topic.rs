//! Topic identities: an ed25519 key pair per topic. The public key is the
//! topic id every reader uses; the secret signs the topic's branch heads.
//!
//! Keys only: this module knows nothing of heads. Signing and verifying a
//! head live together in `head.rs`, which uses the two primitives here,
//! `TopicSecret::sign` and `TopicKey::verify`, so data flows one way
//! (`head` -> `topic`).

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use xus_codec::hex::{self, Case};

/// A topic id: the ed25519 public key that signs the topic's heads.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicKey(pub [u8; 32]);

/// Returned when a topic key or secret does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TopicError {
    /// Not 64 hexadecimal digits.
    #[error("a topic key is 64 hexadecimal digits, and these {len} bytes are not")]
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
    ///
    /// Either case is accepted: topic ids are typed and pasted by people and
    /// arrive in BEP 46 links written by other programs, and only the 32
    /// bytes matter afterwards ([`TopicKey::to_hex`] prints lowercase). No
    /// sign, prefix or other spelling is. A weak (small-order) key is
    /// refused too: under the strict verification rule no head can ever
    /// verify against it.
    pub fn from_hex(text: &str) -> Result<Self, TopicError> {
        let bytes = hex::decode_array_case::<32>(text, Case::Either)
            .map_err(|_| TopicError::BadHex { len: text.len() })?;
        let key =
            VerifyingKey::from_bytes(&bytes).map_err(|_| TopicError::NotAKey(text.to_string()))?;
        if key.is_weak() {
            return Err(TopicError::NotAKey(text.to_string()));
        }
        Ok(Self(bytes))
    }

    /// Lowercase hex, the form printed and typed.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }

    /// Whether `signature` signs `message` with this key.
    ///
    /// **The verification rule of xus: ed25519 is always verified strictly**
    /// (`verify_strict`), for topic heads here as for writer keys in the xus
    /// core: a signature whose `R` does not decompress or has small order, or
    /// a key of small order, is refused even where the lenient check would
    /// pass. With a small-order key the lenient check holds for `R = [s]B`
    /// and any `s`, so anyone could "sign" heads for such a topic; strictness
    /// costs no interoperability, because every honest ed25519 signer
    /// (ed25519-dalek, libtorrent, the `mainline` crate) produces signatures
    /// that pass the strict check, and `mainline`'s own lenient check of the
    /// items it receives is only a first filter before this one. See
    /// `docs/FORMAT.md`.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(&self.0) else {
            return false;
        };
        key.verify_strict(message, &Signature::from_bytes(signature))
            .is_ok()
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

    /// Parses the stored form: the seed as 64 hex digits, surrounding
    /// whitespace (the file's newline) ignored.
    ///
    /// Either case is accepted: a secret may be provisioned by other tools
    /// (`xxd -u`), and it is never compared as text.
    pub fn from_hex(text: &str) -> Result<Self, TopicError> {
        let text = text.trim();
        let seed = hex::decode_array_case::<32>(text, Case::Either)
            .map_err(|_| TopicError::BadHex { len: text.len() })?;
        Ok(Self::from_seed(seed))
    }

    /// The stored form: the seed as 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.key.to_bytes())
    }

    /// The public topic id.
    pub fn topic(&self) -> TopicKey {
        TopicKey(self.key.verifying_key().to_bytes())
    }

    /// The ed25519 signature of `message` (head signing, in `head.rs`,
    /// builds the BEP 44 bytes).
    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    /// The key itself, for tests that sign through `mainline` and compare.
    #[cfg(test)]
    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.key
    }
}

impl fmt::Debug for TopicSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicSecret(topic {})", self.topic())
    }
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
        // `u8::from_str_radix` took a leading `+`: "+X" read as "0X".
        let hex = topic.to_hex();
        let at = (0..64)
            .step_by(2)
            .find(|&i| hex.as_bytes()[i] == b'0')
            .expect("this key has a byte below 0x10");
        let plus = format!("{}+{}", &hex[..at], &hex[at + 1..]);
        assert_eq!(
            TopicKey::from_hex(&plus),
            Err(TopicError::BadHex { len: 64 })
        );
        assert_eq!(
            TopicSecret::from_hex(&format!("+{}", &"0".repeat(63))).map(|s| s.topic()),
            Err(TopicError::BadHex { len: 64 })
        );
    }

    #[test]
    fn weak_topic_keys_are_refused() {
        // The identity point: a valid encoding, of order 1.
        let identity = format!("01{}", "00".repeat(31));
        assert!(matches!(
            TopicKey::from_hex(&identity),
            Err(TopicError::NotAKey(_))
        ));
    }
}
