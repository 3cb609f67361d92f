//! Signed push requests: what `xus push` sends a topic master.
//!
//! The HTTP body is a canonical bencode dictionary
//! `d3:req<len>:<request>3:sig64:<signature>e`. The request is itself a
//! canonical bencode dictionary:
//!
//! | key | value |
//! | --- | --- |
//! | `branch` | the branch name, 1 to 64 bytes, one Git accepts (`git check-ref-format --branch`) |
//! | `commits` | list of 40-byte strings: commit id (20) then infohash (20), parents before children; the last is the new tip; 1 to [`MAX_PUSH_COMMITS`] |
//! | `port` | the writer's BitTorrent port on the address the request comes from, 0 to 65535 (0: not seeding) |
//! | `time` | Unix seconds at signing |
//! | `topic` | the topic's 32-byte public key |
//! | `v` | 1 |
//! | `writer` | the writer's 32-byte ed25519 public key |
//!
//! The signature is ed25519 by `writer` over `xus-push-v1\n` followed by the
//! exact request bytes. Anything else (unknown keys, non-canonical
//! encodings, repeated commits, a body over [`MAX_PUSH_BODY`]) is refused;
//! whether the writer may push is for the master to decide.

use std::collections::HashSet;

use tracker_free::{Branch, TopicKey};

use crate::git::object::ObjectId;
use crate::topic::writer_key::{WriterKey, WriterSecret};
use crate::torrent::bencode::{self, Limits, Owned};
use crate::torrent::info_hash::InfoHash;

/// Most commits one push may offer.
pub const MAX_PUSH_COMMITS: usize = 4096;

/// Largest push body accepted: room for [`MAX_PUSH_COMMITS`] commits.
pub const MAX_PUSH_BODY: usize = 256 * 1024;

/// Prefix of the signed bytes, so that a push signature can never be
/// mistaken for a signature of anything else.
const SIGNING_DOMAIN: &[u8] = b"xus-push-v1\n";

/// The format version.
const VERSION: i64 = 1;

/// What a writer asks of a master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRequest {
    /// The topic.
    pub topic: TopicKey,
    /// The branch to move.
    pub branch: Branch,
    /// Commits the master may lack, parents before children; the last one
    /// is the new tip.
    pub commits: Vec<PushedCommit>,
    /// The writer's BitTorrent port, on the address the HTTP request comes
    /// from (0: none).
    pub peer_port: u16,
    /// Unix seconds at signing; the master refuses requests too far from
    /// its clock.
    pub time: u64,
    /// Who signs.
    pub writer: WriterKey,
}

/// A commit and the infohash of its torrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PushedCommit {
    /// The commit id.
    pub commit: ObjectId,
    /// Its torrent's infohash.
    pub info_hash: InfoHash,
}

/// Why a push body was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PushRequestError {
    /// Larger than [`MAX_PUSH_BODY`].
    #[error("the push request is {len} bytes, more than {MAX_PUSH_BODY}")]
    TooLarge {
        /// Its size.
        len: usize,
    },
    /// Not a push request.
    #[error("malformed push request: {0}")]
    Malformed(String),
    /// The signature does not verify with the writer key the request names.
    #[error("the push request's signature does not verify with the writer key it names")]
    BadSignature,
}

fn malformed(what: impl Into<String>) -> PushRequestError {
    PushRequestError::Malformed(what.into())
}

impl PushRequest {
    /// The new tip: the last commit.
    ///
    /// # Panics
    ///
    /// Never for a parsed request (it has at least one commit); a request
    /// built by hand with no commit is a programming error.
    pub fn tip(&self) -> &PushedCommit {
        self.commits
            .last()
            .expect("a push request holds at least one commit")
    }

    /// The canonical request bytes (what is signed).
    pub fn encode(&self) -> Vec<u8> {
        self.as_bencode().encode()
    }

    fn as_bencode(&self) -> Owned {
        let commits = self
            .commits
            .iter()
            .map(|c| {
                let mut both = Vec::with_capacity(40);
                both.extend_from_slice(&c.commit.0);
                both.extend_from_slice(&c.info_hash.0);
                Owned::Bytes(both)
            })
            .collect();
        bencode::dict([
            ("branch", Owned::bytes(self.branch.as_bytes())),
            ("commits", Owned::List(commits)),
            ("port", Owned::Int(i64::from(self.peer_port))),
            (
                "time",
                Owned::Int(i64::try_from(self.time).unwrap_or(i64::MAX)),
            ),
            ("topic", Owned::bytes(self.topic.0)),
            ("v", Owned::Int(VERSION)),
            ("writer", Owned::bytes(self.writer.0)),
        ])
    }

    /// Parses canonical request bytes.
    fn decode(raw: &[u8]) -> Result<Self, PushRequestError> {
        let value = bencode::decode(raw, limits()).map_err(|e| malformed(e.to_string()))?;
        let entries = value
            .as_dict()
            .ok_or_else(|| malformed("the request is not a dictionary"))?;
        const KEYS: [&[u8]; 7] = [
            b"branch", b"commits", b"port", b"time", b"topic", b"v", b"writer",
        ];
        if let Some((key, _)) = entries.iter().find(|(k, _)| !KEYS.contains(k)) {
            return Err(malformed(format!(
                "unknown key {:?}",
                xus_codec::quote::short(&String::from_utf8_lossy(key))
            )));
        }
        let field = |key: &str| {
            value
                .get(key.as_bytes())
                .ok_or_else(|| malformed(format!("no {key}")))
        };
        let bytes = |key: &str| {
            field(key)?
                .as_bytes()
                .ok_or_else(|| malformed(format!("{key} is not a string")))
        };
        let int = |key: &str| {
            field(key)?
                .as_int()
                .ok_or_else(|| malformed(format!("{key} is not an integer")))
        };
        if int("v")? != VERSION {
            return Err(malformed(format!("version {} is not supported", int("v")?)));
        }
        let branch = std::str::from_utf8(bytes("branch")?)
            .ok()
            .and_then(|b| Branch::new(b).ok())
            .ok_or_else(|| {
                malformed("branch is not 1 to 64 bytes of UTF-8 naming a branch Git accepts")
            })?;
        let topic: [u8; 32] = bytes("topic")?
            .try_into()
            .map_err(|_| malformed("topic is not 32 bytes"))?;
        let topic = TopicKey::from_hex(&crate::hex::encode(&topic))
            .map_err(|_| malformed("topic is not an ed25519 public key"))?;
        let writer: [u8; 32] = bytes("writer")?
            .try_into()
            .map_err(|_| malformed("writer is not 32 bytes"))?;
        let writer = WriterKey::from_bytes(writer)
            .map_err(|_| malformed("writer is not a usable ed25519 public key"))?;
        let peer_port =
            u16::try_from(int("port")?).map_err(|_| malformed("port is not 0 to 65535"))?;
        let time = u64::try_from(int("time")?).map_err(|_| malformed("time is negative"))?;
        let list = field("commits")?
            .as_list()
            .ok_or_else(|| malformed("commits is not a list"))?;
        if list.is_empty() || list.len() > MAX_PUSH_COMMITS {
            return Err(malformed(format!(
                "{} commits: 1 to {MAX_PUSH_COMMITS} are allowed",
                list.len()
            )));
        }
        let mut seen = HashSet::with_capacity(list.len());
        let mut commits = Vec::with_capacity(list.len());
        for item in list {
            let both = item
                .as_bytes()
                .filter(|b| b.len() == 40)
                .ok_or_else(|| malformed("a commit entry is not 40 bytes"))?;
            let (commit, info_hash) = both.split_at(20);
            let pushed = PushedCommit {
                commit: ObjectId::from_slice(commit).ok_or_else(|| malformed("commit id"))?,
                info_hash: InfoHash::from_slice(info_hash).ok_or_else(|| malformed("infohash"))?,
            };
            if !seen.insert(pushed.commit) {
                return Err(malformed(format!(
                    "commit {} is listed twice",
                    pushed.commit
                )));
            }
            commits.push(pushed);
        }
        let request = Self {
            topic,
            branch,
            commits,
            peer_port,
            time,
            writer,
        };
        // The decoder refuses non-canonical forms; this also catches any
        // field this parser would normalise.
        if request.encode() != raw {
            return Err(malformed("the request is not in canonical form"));
        }
        Ok(request)
    }
}

fn limits() -> Limits {
    Limits {
        max_depth: 4,
        max_items: MAX_PUSH_COMMITS + 64,
    }
}

/// A request with its writer's signature, as it travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPush {
    /// The parsed request.
    pub request: PushRequest,
    raw: Vec<u8>,
    signature: [u8; 64],
}

impl SignedPush {
    /// Signs `request` with `secret`. The request's `writer` should be
    /// `secret.public()`; a master refuses it otherwise.
    pub fn sign(request: PushRequest, secret: &WriterSecret) -> Self {
        let raw = request.encode();
        let signature = secret.sign(&signable(&raw));
        Self {
            request,
            raw,
            signature,
        }
    }

    /// The HTTP body.
    pub fn to_body(&self) -> Vec<u8> {
        bencode::dict([
            ("req", Owned::Bytes(self.raw.clone())),
            ("sig", Owned::bytes(self.signature)),
        ])
        .encode()
    }

    /// Parses an HTTP body and checks the signature against the writer key
    /// it names. Whether that writer may push is for the caller to decide.
    pub fn from_body(body: &[u8]) -> Result<Self, PushRequestError> {
        if body.len() > MAX_PUSH_BODY {
            return Err(PushRequestError::TooLarge { len: body.len() });
        }
        let outer = bencode::decode(
            body,
            Limits {
                max_depth: 2,
                max_items: 8,
            },
        )
        .map_err(|e| malformed(e.to_string()))?;
        let entries = outer
            .as_dict()
            .ok_or_else(|| malformed("the body is not a dictionary"))?;
        if entries.len() != 2 {
            return Err(malformed("the body must hold exactly req and sig"));
        }
        let raw = outer
            .get(b"req")
            .and_then(|v| v.as_bytes())
            .ok_or_else(|| malformed("no req string"))?;
        let signature: [u8; 64] = outer
            .get(b"sig")
            .and_then(|v| v.as_bytes())
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| malformed("no 64-byte sig"))?;
        let request = PushRequest::decode(raw)?;
        if !request.writer.verify(&signable(raw), &signature) {
            return Err(PushRequestError::BadSignature);
        }
        Ok(Self {
            request,
            raw: raw.to_vec(),
            signature,
        })
    }
}

fn signable(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SIGNING_DOMAIN.len() + raw.len());
    out.extend_from_slice(SIGNING_DOMAIN);
    out.extend_from_slice(raw);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(byte: u8) -> ObjectId {
        ObjectId([byte; 20])
    }

    fn request(secret: &WriterSecret, commits: usize) -> PushRequest {
        let topic = tracker_free::TopicSecret::from_seed([7; 32]).topic();
        PushRequest {
            topic,
            branch: Branch::new("main").expect("branch"),
            commits: (0..commits)
                .map(|i| PushedCommit {
                    commit: id(i as u8),
                    info_hash: InfoHash(id(200 - i as u8).0),
                })
                .collect(),
            peer_port: 6881,
            time: 1_795_000_000,
            writer: secret.public(),
        }
    }

    #[test]
    fn a_signed_request_round_trips() {
        let secret = WriterSecret::generate().expect("key");
        let signed = SignedPush::sign(request(&secret, 3), &secret);
        let body = signed.to_body();
        let parsed = SignedPush::from_body(&body).expect("valid");
        assert_eq!(parsed, signed);
        assert_eq!(parsed.request.tip().commit, id(2));
        assert_eq!(parsed.to_body(), body);
    }

    #[test]
    fn every_single_byte_change_is_refused() {
        let secret = WriterSecret::generate().expect("key");
        let body = SignedPush::sign(request(&secret, 2), &secret).to_body();
        for at in 0..body.len() {
            for flip in [1u8, 0x80] {
                let mut changed = body.clone();
                changed[at] ^= flip;
                assert!(
                    SignedPush::from_body(&changed).is_err(),
                    "byte {at} ^ {flip:#x} accepted"
                );
            }
        }
    }

    #[test]
    fn another_key_or_a_claimed_key_does_not_verify() {
        let (a, b) = (
            WriterSecret::generate().expect("key"),
            WriterSecret::generate().expect("key"),
        );
        // Claims to be b, signed by a.
        let mut claimed = request(&a, 1);
        claimed.writer = b.public();
        let body = SignedPush::sign(claimed, &a).to_body();
        assert_eq!(
            SignedPush::from_body(&body),
            Err(PushRequestError::BadSignature)
        );
    }

    #[test]
    fn more_commits_than_the_limit_are_refused() {
        let secret = WriterSecret::generate().expect("random source");
        let request = |count: usize| {
            let mut request = request(&secret, 1);
            request.commits = (0..count)
                .map(|n| {
                    let mut id = [0u8; 20];
                    id[..8].copy_from_slice(&(n as u64 + 1).to_be_bytes());
                    PushedCommit {
                        commit: ObjectId(id),
                        info_hash: InfoHash(id),
                    }
                })
                .collect();
            SignedPush::sign(request, &secret).to_body()
        };
        assert!(SignedPush::from_body(&request(MAX_PUSH_COMMITS)).is_ok());
        let over = request(MAX_PUSH_COMMITS + 1);
        assert!(over.len() <= MAX_PUSH_BODY, "{}", over.len());
        let error = SignedPush::from_body(&over).expect_err("4,097 commits");
        assert!(error.to_string().contains("4097 commits"), "{error}");
    }

    #[test]
    fn malformed_bodies_are_refused_with_a_reason() {
        let secret = WriterSecret::generate().expect("key");
        let good = request(&secret, 1);
        let sign_raw = |raw: Vec<u8>| {
            let signature = secret.sign(&signable(&raw));
            bencode::dict([("req", Owned::Bytes(raw)), ("sig", Owned::bytes(signature))]).encode()
        };
        type Fields = std::collections::BTreeMap<Vec<u8>, Owned>;
        let with = |edit: &dyn Fn(&mut Fields)| {
            let Owned::Dict(mut map) = good.as_bencode() else {
                panic!("dict")
            };
            edit(&mut map);
            sign_raw(Owned::Dict(map).encode())
        };
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (Vec::new(), "ends early"),
            (b"d3:reqi1ee".to_vec(), "exactly req and sig"),
            (b"le".to_vec(), "not a dictionary"),
            (vec![b'x'; MAX_PUSH_BODY + 1], "more than"),
            (
                with(&|m| {
                    m.insert(b"v".to_vec(), Owned::Int(2));
                }),
                "version 2",
            ),
            (
                with(&|m| {
                    m.insert(b"zz".to_vec(), Owned::Int(0));
                }),
                "unknown key",
            ),
            (
                with(&|m| {
                    m.remove(b"topic".as_slice());
                }),
                "no topic",
            ),
            (
                with(&|m| {
                    m.insert(b"port".to_vec(), Owned::Int(70000));
                }),
                "port",
            ),
            (
                with(&|m| {
                    m.insert(b"time".to_vec(), Owned::Int(-1));
                }),
                "negative",
            ),
            (
                with(&|m| {
                    m.insert(b"commits".to_vec(), Owned::List(Vec::new()));
                }),
                "0 commits",
            ),
            (
                with(&|m| {
                    let one = Owned::Bytes([[1u8; 20], [2u8; 20]].concat());
                    m.insert(b"commits".to_vec(), Owned::List(vec![one.clone(), one]));
                }),
                "listed twice",
            ),
            (
                with(&|m| {
                    m.insert(
                        b"commits".to_vec(),
                        Owned::List(vec![Owned::bytes([1u8; 39])]),
                    );
                }),
                "40 bytes",
            ),
            (
                with(&|m| {
                    m.insert(b"branch".to_vec(), Owned::bytes(""));
                }),
                "branch",
            ),
            (
                with(&|m| {
                    m.insert(b"writer".to_vec(), Owned::bytes([0u8; 31]));
                }),
                "writer",
            ),
        ];
        for (body, expected) in cases {
            let error = SignedPush::from_body(&body)
                .expect_err(expected)
                .to_string();
            assert!(error.contains(expected), "{error:?} lacks {expected:?}");
        }
        // Non-canonical: a leading zero in the port.
        let raw = good.encode();
        let text = String::from_utf8_lossy(&raw).replace("4:porti6881e", "4:porti06881e");
        assert!(SignedPush::from_body(&sign_raw(text.into_bytes())).is_err());
    }

    /// The fuzzer's seed `fuzz/seeds/push_request/signed` is a valid body
    /// of today's format (fixed key, so the same bytes every time); with
    /// `XUS_PUSH_SEED_OUT` set it writes the seed instead
    /// (`fuzz/gen-seeds.sh`).
    #[test]
    fn the_fuzz_seed_is_a_current_signed_body() {
        let secret = WriterSecret::from_hex(&"42".repeat(32)).expect("key");
        let body = SignedPush::sign(request(&secret, 3), &secret).to_body();
        if let Some(path) = std::env::var_os("XUS_PUSH_SEED_OUT") {
            std::fs::write(path, &body).expect("writing the seed");
            return;
        }
        let seed =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/push_request/signed");
        let stored = std::fs::read(&seed).expect("the committed fuzz seed");
        assert_eq!(stored, body, "regenerate it with fuzz/gen-seeds.sh");
        assert!(SignedPush::from_body(&stored).is_ok());
    }

    proptest! {
        #[test]
        fn random_requests_round_trip(
            commits in proptest::collection::hash_set(any::<[u8; 20]>(), 1..50),
            port in any::<u16>(),
            time in 0u64..(i64::MAX as u64),
            branch in "[a-z0-9][a-z0-9_-]{0,30}(/[a-z0-9][a-z0-9_-]{0,10}(\\.[0-9]{1,8})?)?",
        ) {
            let secret = WriterSecret::from_hex(&"11".repeat(32)).expect("key");
            let mut r = request(&secret, 0);
            r.commits = commits.into_iter().map(|c| PushedCommit { commit: ObjectId(c), info_hash: InfoHash(c) }).collect();
            r.peer_port = port;
            r.time = time;
            r.branch = Branch::new(&branch).expect("branch");
            let body = SignedPush::sign(r.clone(), &secret).to_body();
            let parsed = SignedPush::from_body(&body).expect("valid");
            prop_assert_eq!(parsed.request, r);
        }

        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = SignedPush::from_body(&body);
        }
    }
}
