//! Writer keys: an ed25519 key pair per writer machine. A topic master
//! lists the public keys that may push to each topic; the secret signs push
//! requests, so a master never trusts an address or a password.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use anyhow::Context;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::hex;

/// Largest writer key file read (64 hex digits and a newline, with slack).
const MAX_KEY_FILE_BYTES: u64 = 4096;

/// A writer's public key, as a master's configuration lists it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct WriterKey(pub [u8; 32]);

/// Returned when a writer key does not parse or a signature does not hold.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WriterKeyError {
    /// Not 64 hexadecimal digits.
    #[error("a writer key is 64 hexadecimal digits, and these {len} bytes are not")]
    BadHex {
        /// Length of what was given.
        len: usize,
    },
    /// 32 bytes that are not a usable ed25519 public key.
    #[error("{0} is not a valid ed25519 public key")]
    NotAKey(String),
    /// The system random source failed.
    #[error("the system random source failed: {0}")]
    Random(String),
}

impl WriterKey {
    /// Parses 64 hex digits and refuses bytes that are not a point on the
    /// curve, or a weak (small-order) key whose signatures prove nothing.
    pub fn from_hex(text: &str) -> Result<Self, WriterKeyError> {
        let bytes = decode32(text)?;
        Self::from_bytes(bytes).map_err(|_| WriterKeyError::NotAKey(text.to_owned()))
    }

    /// Checks raw bytes the same way (a key inside a push request).
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, WriterKeyError> {
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| WriterKeyError::NotAKey(hex::encode(&bytes)))?;
        if key.is_weak() {
            return Err(WriterKeyError::NotAKey(hex::encode(&bytes)));
        }
        Ok(Self(bytes))
    }

    /// Lowercase hex, the form printed and configured.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }

    /// Whether `signature` signs `message` with this key.
    ///
    /// Strict verification (`verify_strict`): the one ed25519 rule of xus,
    /// the same as for topic heads in `tracker-free` (see
    /// `tracker_free::TopicKey`'s `verify` and `docs/FORMAT.md`). A signature
    /// whose `R` has small order or does not decompress is refused even where
    /// the lenient check would pass; weak keys never get this far
    /// ([`WriterKey::from_bytes`]).
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(&self.0) else {
            return false;
        };
        key.verify_strict(message, &Signature::from_bytes(signature))
            .is_ok()
    }
}

impl fmt::Display for WriterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for WriterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WriterKey({})", self.to_hex())
    }
}

impl FromStr for WriterKey {
    type Err = WriterKeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s.trim())
    }
}

/// A writer's secret key; `Debug` never prints it.
#[derive(Clone)]
pub struct WriterSecret {
    key: SigningKey,
}

impl WriterSecret {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self, WriterKeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| WriterKeyError::Random(e.to_string()))?;
        Ok(Self {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// Parses the stored form: the 32-byte seed as 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, WriterKeyError> {
        Ok(Self {
            key: SigningKey::from_bytes(&decode32(text.trim())?),
        })
    }

    /// The stored form.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.key.to_bytes())
    }

    /// The public half, for the master's configuration.
    pub fn public(&self) -> WriterKey {
        WriterKey(self.key.verifying_key().to_bytes())
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    /// Reads a key file written by [`Self::create`].
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let meta =
            std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
        anyhow::ensure!(
            meta.len() <= MAX_KEY_FILE_BYTES,
            "{} is too large to be a writer key",
            path.display()
        );
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_hex(&text).with_context(|| format!("{} is not a writer key", path.display()))
    }

    /// Makes a key and stores it at `path`, readable by the owner only.
    /// Refuses to replace an existing key: a lost key means reconfiguring
    /// every master that trusts it.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let secret = Self::generate()?;
        crate::topic::home::write_new_secret(path, &secret.to_hex(), || {
            format!(
                "a writer key already exists at {} (`xus writer show` prints it)",
                path.display()
            )
        })?;
        Ok(secret)
    }
}

impl fmt::Debug for WriterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WriterSecret(public {})", self.public())
    }
}

/// 64 hex digits, either case: writer keys are pasted into a master's
/// configuration and typed on command lines, and only the 32 bytes are
/// compared afterwards ([`WriterKey::to_hex`] prints lowercase). No sign,
/// prefix or other spelling is read.
fn decode32(text: &str) -> Result<[u8; 32], WriterKeyError> {
    xus_codec::hex::decode_array_case(text, xus_codec::hex::Case::Either)
        .map_err(|_| WriterKeyError::BadHex { len: text.len() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_secrets_stay_hidden() {
        let secret = WriterSecret::generate().expect("key");
        let again = WriterSecret::from_hex(&secret.to_hex()).expect("parse");
        assert_eq!(again.public(), secret.public());
        let public = secret.public();
        assert_eq!(public.to_hex().parse::<WriterKey>(), Ok(public));
        assert!(!format!("{secret:?}").contains(&secret.to_hex()));
    }

    #[test]
    fn signatures_verify_only_with_the_right_key_and_message() {
        let (a, b) = (
            WriterSecret::generate().expect("key"),
            WriterSecret::generate().expect("key"),
        );
        let signature = a.sign(b"hello");
        assert!(a.public().verify(b"hello", &signature));
        assert!(!a.public().verify(b"hellO", &signature));
        assert!(!b.public().verify(b"hello", &signature));
        let mut broken = signature;
        broken[10] ^= 1;
        assert!(!a.public().verify(b"hello", &broken));
    }

    #[test]
    fn bad_public_keys_are_refused() {
        assert!(matches!(
            WriterKey::from_hex("00ff"),
            Err(WriterKeyError::BadHex { .. })
        ));
        assert!(WriterKey::from_hex(&"zz".repeat(32)).is_err());
        // `u8::from_str_radix` took a leading `+`.
        assert!(matches!(
            WriterKey::from_hex(&format!("+{}", "1".repeat(63))),
            Err(WriterKeyError::BadHex { len: 64 })
        ));
        // The identity point is a small-order (weak) key.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(WriterKey::from_bytes(identity).is_err());
    }

    #[test]
    fn create_refuses_to_overwrite_and_load_reads_it_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("writer.secret");
        let made = WriterSecret::create(&path).expect("create");
        assert_eq!(
            WriterSecret::load(&path).expect("load").public(),
            made.public()
        );
        assert!(WriterSecret::create(&path).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
