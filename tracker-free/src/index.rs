//! A topic's branch index: which branches the topic has and which one a
//! clone checks out. A BEP 44 mutable item under the topic key with no salt
//! (branch heads always have one, so the two never collide), signed like a
//! head. DHT items cannot be enumerated, so without it a reader could only
//! follow branches it already knows the names of (`git clone xus://TOPIC/`).
//!
//! The value is the bencoded dict `{b: [<branch>, ...], d: <default branch>,
//! url: <master URL>}` (`url` only when a master signed it), carried as a
//! bencode byte string as heads are. Branch names are sorted and unique, and
//! the default is one of them.
//!
//! The index only names branches: every branch head it names is read and
//! verified on its own (signature, rollback guard), so an old or partial
//! index can hide a branch but never move one. Branches are never deleted
//! (heads only move forward), so readers take the union of every index they
//! find, and two publishers racing on the same seq lose nothing.

use crate::head::{Branch, MAX_VALUE_LEN, master_url, put_string, signable, take_string};
use crate::topic::{TopicKey, TopicSecret};

/// What a topic's index says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicIndex {
    /// Every branch with a head, sorted, each once.
    branches: Vec<Branch>,
    /// The branch `git clone` checks out; one of `branches`.
    default: Branch,
    /// The topic master's HTTP base URL, as in heads.
    master: Option<String>,
}

/// Which branch an index published now checks out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexDefault {
    /// The current index's default; this branch only when there is no
    /// index yet (a publisher that is not the topic's authority).
    Keep(Branch),
    /// This branch, whatever the current index says (a topic master,
    /// configured).
    Set(Branch),
}

impl IndexDefault {
    /// The branch named.
    pub fn branch(&self) -> &Branch {
        match self {
            IndexDefault::Keep(branch) | IndexDefault::Set(branch) => branch,
        }
    }
}

/// Why an index value or signature was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum IndexError {
    /// Over [`MAX_VALUE_LEN`].
    #[error("branch index of {0} bytes is over the {MAX_VALUE_LEN}-byte limit")]
    Oversized(usize),
    /// Not exactly the canonical `{b, d, url}` dictionary.
    #[error("branch index is not a {{b, d, url}} dictionary: {0}")]
    Malformed(&'static str),
    /// The signature does not match the topic key.
    #[error("branch index signature does not verify against topic {0}")]
    BadSignature(TopicKey),
}

impl TopicIndex {
    /// An index of `branches` (in any order, repeats ignored) checking out
    /// `default`, which is added when missing. When the value would be over
    /// [`MAX_VALUE_LEN`], branches other than the default are left out from
    /// the end of the sorted list; [`TopicIndex::branches`] says which stayed.
    pub fn new(
        branches: impl IntoIterator<Item = Branch>,
        default: Branch,
        master: Option<String>,
    ) -> Self {
        let mut branches: Vec<Branch> = branches.into_iter().collect();
        branches.push(default.clone());
        branches.sort();
        branches.dedup();
        let master = master.filter(|url| crate::head::is_master_url(url));
        let mut index = Self {
            branches,
            default,
            master,
        };
        while index.encode().len() > MAX_VALUE_LEN {
            let Some(position) = index.branches.iter().rposition(|b| *b != index.default) else {
                break;
            };
            index.branches.remove(position);
        }
        index
    }

    /// The branches, sorted.
    pub fn branches(&self) -> &[Branch] {
        &self.branches
    }

    /// The branch a clone checks out.
    pub fn default_branch(&self) -> &Branch {
        &self.default
    }

    /// The master's URL, when a master signed the index.
    pub fn master(&self) -> Option<&str> {
        self.master.as_deref()
    }

    /// This index with `other`'s branches added (branches are never
    /// deleted, so an index missing one is only out of date); the default
    /// and master stay this index's.
    pub fn union(&self, other: &TopicIndex) -> Self {
        Self::new(
            self.branches.iter().chain(&other.branches).cloned(),
            self.default.clone(),
            self.master.clone(),
        )
    }

    /// The canonical value bytes:
    /// `d1:bl(<n>:<branch>)+e1:d<n>:<default>[3:url<n>:<url>]e`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.branches.len() * 16);
        out.extend_from_slice(b"d1:bl");
        for branch in &self.branches {
            put_string(&mut out, branch.as_bytes());
        }
        out.extend_from_slice(b"e1:d");
        put_string(&mut out, self.default.as_bytes());
        if let Some(url) = &self.master {
            out.extend_from_slice(b"3:url");
            put_string(&mut out, url.as_bytes());
        }
        out.push(b'e');
        out
    }

    /// Parses exactly the canonical form [`TopicIndex::encode`] writes:
    /// an empty or unsorted branch list, a name twice, a name that cannot
    /// be a branch, a default not in the list, other keys or trailing bytes
    /// are refused.
    pub fn decode(value: &[u8]) -> Result<Self, IndexError> {
        if value.len() > MAX_VALUE_LEN {
            return Err(IndexError::Oversized(value.len()));
        }
        let mut rest = value
            .strip_prefix(b"d1:bl")
            .ok_or(IndexError::Malformed("no leading 'b' list"))?;
        let mut branches: Vec<Branch> = Vec::new();
        while !rest.starts_with(b"e") {
            let (name, after) = branch_name(rest)?;
            if branches.last().is_some_and(|last| *last >= name) {
                return Err(IndexError::Malformed(
                    "branch names are not sorted and unique",
                ));
            }
            branches.push(name);
            rest = after;
        }
        if branches.is_empty() {
            return Err(IndexError::Malformed("an empty branch list"));
        }
        let rest = rest
            .strip_prefix(b"e1:d")
            .ok_or(IndexError::Malformed("no 'd' after the branch list"))?;
        let (default, mut rest) = branch_name(rest)?;
        if !branches.contains(&default) {
            return Err(IndexError::Malformed("the default branch is not listed"));
        }
        let mut master = None;
        if let Some(entry) = rest.strip_prefix(b"3:url") {
            let (url, after) = master_url(entry)
                .map_err(|_| IndexError::Malformed("the master URL is not a short http(s) URL"))?;
            master = Some(url);
            rest = after;
        }
        if rest != b"e" {
            return Err(IndexError::Malformed(
                "value does not end after 'd' or 'url'",
            ));
        }
        Ok(Self {
            branches,
            default,
            master,
        })
    }
}

/// A branch name string at the front of `bytes`: a canonical length of at
/// most two digits (a salt holds 64 bytes), then a name [`Branch::new`]
/// accepts.
fn branch_name(bytes: &[u8]) -> Result<(Branch, &[u8]), IndexError> {
    let (name, rest) = take_string(bytes, 2).ok_or(IndexError::Malformed(
        "a branch name's length is not canonical, or the value ends inside it",
    ))?;
    let branch = std::str::from_utf8(name)
        .ok()
        .and_then(|name| Branch::new(name).ok())
        .ok_or(IndexError::Malformed("a listed name cannot be a branch"))?;
    Ok((branch, rest))
}

/// An index as signed by its topic, ready to verify again or store on more
/// DHT nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIndex {
    /// Who signed.
    pub topic: TopicKey,
    /// BEP 44 sequence number; higher wins.
    pub seq: i64,
    /// The value bytes exactly as signed.
    pub value: Vec<u8>,
    /// ed25519 signature over seq and value (no salt).
    pub signature: [u8; 64],
    /// The decoded value.
    pub index: TopicIndex,
}

impl TopicSecret {
    /// Signs `index` at `seq` as BEP 44 lays out an item without salt.
    pub fn sign_index(&self, index: &TopicIndex, seq: i64) -> SignedIndex {
        let value = index.encode();
        let signature = self.sign(&signable(b"", seq, &value));
        SignedIndex {
            topic: self.topic(),
            seq,
            value,
            signature,
            index: index.clone(),
        }
    }
}

impl SignedIndex {
    /// Checks the signature strictly, then decodes the value: the only way
    /// to build a `SignedIndex` from bytes that came from elsewhere.
    pub fn verify(
        topic: TopicKey,
        seq: i64,
        value: Vec<u8>,
        signature: [u8; 64],
    ) -> Result<Self, IndexError> {
        if value.len() > MAX_VALUE_LEN {
            return Err(IndexError::Oversized(value.len()));
        }
        if !topic.verify(&signable(b"", seq, &value), &signature) {
            return Err(IndexError::BadSignature(topic));
        }
        let index = TopicIndex::decode(&value)?;
        Ok(Self {
            topic,
            seq,
            value,
            signature,
            index,
        })
    }
}

/// The index a reader goes by from every copy a lookup found: the union of
/// their branches, with the default and master of the highest seq (ties to
/// the larger value, so every reader picks the same).
pub fn merge_indexes(found: &[SignedIndex]) -> Option<TopicIndex> {
    let newest = found
        .iter()
        .max_by(|a, b| a.seq.cmp(&b.seq).then_with(|| a.value.cmp(&b.value)))?;
    Some(found.iter().fold(newest.index.clone(), |merged, other| {
        merged.union(&other.index)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn branch(name: &str) -> Branch {
        Branch::new(name).expect("a branch name")
    }

    #[test]
    fn an_index_round_trips_and_lists_the_default() {
        let index = TopicIndex::new(
            [branch("main"), branch("dev"), branch("main")],
            branch("release"),
            Some("http://127.0.0.1:8080/".into()),
        );
        let names: Vec<&str> = index.branches().iter().map(Branch::as_str).collect();
        assert_eq!(names, ["dev", "main", "release"]);
        assert_eq!(
            index.encode(),
            b"d1:bl3:dev4:main7:releasee1:d7:release3:url22:http://127.0.0.1:8080/e"
        );
        assert_eq!(TopicIndex::decode(&index.encode()), Ok(index.clone()));
        let bare = TopicIndex::new([], branch("main"), None);
        assert_eq!(bare.encode(), b"d1:bl4:maine1:d4:maine");
        assert_eq!(TopicIndex::decode(&bare.encode()), Ok(bare));
    }

    #[test]
    fn too_many_branches_keep_the_default_and_fit() {
        let many = (0..40).map(|i| branch(&format!("{i:02}-{}", "x".repeat(60))));
        let index = TopicIndex::new(many, branch("zz-default"), None);
        assert!(index.encode().len() <= MAX_VALUE_LEN);
        assert!(index.branches().contains(&branch("zz-default")));
        assert!(index.branches().len() < 41);
        assert_eq!(TopicIndex::decode(&index.encode()), Ok(index));
    }

    #[test]
    fn anything_but_the_canonical_form_is_refused() {
        let good = b"d1:bl3:dev4:maine1:d4:maine".to_vec();
        TopicIndex::decode(&good).expect("canonical");
        for bad in [
            &b"d1:ble1:d4:maine"[..],
            b"d1:bl4:main3:deve1:d4:maine",
            b"d1:bl4:main4:maine1:d4:maine",
            b"d1:bl3:dev4:maine1:d3:fooe",
            b"d1:bl3:dev04:maine1:d4:maine",
            b"d1:bl0:e1:d0:e",
            b"d1:bl3:d\x01v4:maine1:d4:maine",
            b"d1:bl4:maine1:d4:main3:url4:ftp:e",
            b"d1:bl4:maine1:d4:main1:x1:ye",
            b"d1:bl4:maine1:d4:maineXX",
            b"d1:bl999:maine1:d4:maine",
        ] {
            assert!(
                TopicIndex::decode(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        for cut in 0..good.len() {
            assert!(TopicIndex::decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(
            TopicIndex::decode(&vec![b'x'; MAX_VALUE_LEN + 1]),
            Err(IndexError::Oversized(MAX_VALUE_LEN + 1))
        );
    }

    #[test]
    fn signed_indexes_verify_and_merge_into_the_union() {
        let secret = TopicSecret::from_seed([3; 32]);
        let old = secret.sign_index(&TopicIndex::new([branch("dev")], branch("dev"), None), 5);
        let new = secret.sign_index(
            &TopicIndex::new([branch("main")], branch("main"), Some("http://m/".into())),
            9,
        );
        let read = SignedIndex::verify(secret.topic(), new.seq, new.value.clone(), new.signature)
            .expect("verifies");
        assert_eq!(read, new);
        assert!(matches!(
            SignedIndex::verify(secret.topic(), 10, new.value.clone(), new.signature),
            Err(IndexError::BadSignature(_))
        ));
        let other = TopicSecret::from_seed([4; 32]);
        assert!(SignedIndex::verify(other.topic(), 9, new.value.clone(), new.signature).is_err());
        let merged = merge_indexes(&[old, new]).expect("some");
        assert_eq!(merged.default_branch(), &branch("main"));
        assert_eq!(merged.master(), Some("http://m/"));
        assert_eq!(merged.branches(), [branch("dev"), branch("main")]);
        assert_eq!(merge_indexes(&[]), None);
    }
}
