//! The commit id in a request path: validated once, so sources never see junk.

use std::fmt;

/// A commit id as it appears in a webseed URL: 40 (SHA-1) or 64 (SHA-256) hex digits, stored in
/// lowercase.
///
/// The server parses every request's first path component into this type before calling the
/// source, so a [`ByteSource`](crate::ByteSource) can rely on the shape and need not re-check it.
/// Uppercase digits are accepted and normalised, so `ABC…` and `abc…` name the same commit.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommitId(String);

/// Returned by [`CommitId::parse`] when the text is not a 40- or 64-digit hex id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("'{text}' is not a 40- or 64-digit hex commit id")]
pub struct CommitIdError {
    /// The refused text (shortened when very long, so logs stay readable).
    pub text: String,
}

impl CommitId {
    /// Parses a hex commit id, accepting either case and normalising to lowercase.
    ///
    /// # Errors
    ///
    /// [`CommitIdError`] when `text` is not 40 or 64 hex digits.
    pub fn parse(text: &str) -> Result<Self, CommitIdError> {
        // Either case: the id is matched by its bytes, and written back in
        // lowercase, the one form sources look up.
        let bytes = matches!(text.len(), 40 | 64)
            .then(|| xus_codec::hex::decode_case(text, xus_codec::hex::Case::Either).ok())
            .flatten();
        match bytes {
            Some(bytes) => Ok(Self(xus_codec::hex::encode(&bytes))),
            None => Err(CommitIdError {
                text: xus_codec::quote::short(text),
            }),
        }
    }

    /// The id as lowercase hex, exactly as the source should look it up.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CommitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for CommitId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA1: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn accepts_sha1_and_sha256_lengths() {
        assert_eq!(
            CommitId::parse(SHA1).map(|c| c.to_string()),
            Ok(SHA1.to_owned())
        );
        let sha256 = "ab".repeat(32);
        assert_eq!(CommitId::parse(&sha256).map(|c| c.to_string()), Ok(sha256));
    }

    #[test]
    fn normalises_uppercase() {
        let upper = SHA1.to_ascii_uppercase();
        assert_eq!(
            CommitId::parse(&upper).map(|c| c.to_string()),
            Ok(SHA1.to_owned())
        );
    }

    #[test]
    fn refuses_other_shapes() {
        for bad in [
            "",
            "abc",
            &SHA1[1..],
            &format!("{SHA1}0"),
            &SHA1.replace('a', "g"),
            // A sign or a space is no digit (`u8::from_str_radix` takes `+`).
            &format!("+{}", &SHA1[1..]),
            &format!("-{}", &SHA1[1..]),
            &format!(" {}", &SHA1[1..]),
        ] {
            assert!(CommitId::parse(bad).is_err(), "{bad:?} accepted");
        }
        // Non-ASCII text of the right byte length is refused, not sliced.
        assert!(CommitId::parse(&"é".repeat(20)).is_err());
    }
}
