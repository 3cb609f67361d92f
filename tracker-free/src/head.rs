//! Branch heads as BEP 44 mutable items: the value format, signing and
//! signature checks side by side, and the choice of which head to follow.
//! Pure: no I/O here. Keys come from `topic.rs`, which knows nothing of
//! heads.
//!
//! The value is the bencoded dict `{commit: <raw commit id>, hi: [<to>,
//! <history infohash>], ih: <infohash>, up: [[<from commit>, <update
//! infohash>], ...]}` (BEP 46's `{ih: ...}` plus the commit id and, when
//! there are any, the history torrent a clone starts from, the update
//! torrents from recent heads, and `url:` the topic master's HTTP address
//! when a master signed it), carried as a bencode byte string because the
//! `mainline` crate signs and sends `v` as bytes.

use std::fmt;

use crate::topic::{TopicKey, TopicSecret};

/// BEP 44's limit on a value, in bytes. Larger values are refused unread.
pub const MAX_VALUE_LEN: usize = 1000;

/// BEP 44's limit on a salt: a branch name longer than this cannot be a head.
const MAX_SALT_LEN: usize = 64;

/// A BitTorrent v1 infohash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfoHash(pub [u8; 20]);

impl InfoHash {
    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        xus_codec::hex::encode(&self.0)
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash({})", self.to_hex())
    }
}

/// A branch name used as the BEP 44 salt. Checked once here so that every
/// head in the program has a salt the DHT accepts.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Branch(String);

/// Returned by [`Branch::new`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BranchError {
    /// Empty names have no salt.
    #[error("a branch name cannot be empty")]
    Empty,
    /// Longer than the 64-byte salt of BEP 44.
    #[error("branch name '{0}' is longer than the 64 bytes a DHT salt can hold")]
    TooLong(String),
    /// Control characters never belong in a branch name.
    #[error("branch name {0:?} contains control characters")]
    Control(String),
    /// Git would not take it as a branch (`git check-ref-format --branch`).
    #[error("branch name {0:?} is not one Git accepts: {1}")]
    NotGitBranch(String, &'static str),
}

impl Branch {
    /// Checks `name` fits in a salt and is a branch name Git accepts
    /// (`git check-ref-format --branch`): a head whose branch Git would
    /// refuse could be published but never checked out or pushed.
    pub fn new(name: &str) -> Result<Self, BranchError> {
        if name.is_empty() {
            return Err(BranchError::Empty);
        }
        if name.len() > MAX_SALT_LEN {
            let shown = xus_codec::quote::short(name);
            return Err(BranchError::TooLong(shown));
        }
        check_git_branch_name(name)?;
        Ok(Self(name.to_string()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The salt bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// Checks `name` is a branch name Git accepts (`git check-ref-format
/// --branch`), whatever its length: the rule for local branches (`--branch`),
/// which are no DHT salt. Errors quote at most 80 characters of it.
pub fn check_git_branch_name(name: &str) -> Result<(), BranchError> {
    let shown = || xus_codec::quote::short(name);
    if name.is_empty() {
        return Err(BranchError::Empty);
    }
    if name.chars().any(char::is_control) {
        return Err(BranchError::Control(shown()));
    }
    if let Some(why) = git_branch_problem(name) {
        return Err(BranchError::NotGitBranch(shown(), why));
    }
    Ok(())
}

/// Why Git's `check-ref-format --branch` refuses `name` (already non-empty
/// and free of control characters), `None` when it takes it.
fn git_branch_problem(name: &str) -> Option<&'static str> {
    if name == "HEAD" {
        return Some("HEAD names the checked-out commit");
    }
    if name.starts_with('-') {
        return Some("it starts with '-'");
    }
    if name == "@" {
        return Some("'@' alone means HEAD");
    }
    if name.contains("..") {
        return Some("it contains '..'");
    }
    if name.contains("@{") {
        return Some("it contains '@{'");
    }
    if name
        .chars()
        .any(|c| matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\'))
    {
        return Some("it contains one of ' ~^:?*[\\'");
    }
    if name.ends_with('.') {
        return Some("it ends with '.'");
    }
    for component in name.split('/') {
        if component.is_empty() {
            return Some("it starts or ends with '/', or has '//'");
        }
        if component.starts_with('.') {
            return Some("a component starts with '.'");
        }
        if component.ends_with(".lock") {
            return Some("a component ends with '.lock'");
        }
    }
    None
}

impl fmt::Display for Branch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Branch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Branch({:?})", self.0)
    }
}

/// Most update torrents one head lists: 8 entries of a 32-byte commit id and
/// an infohash keep the value well under [`MAX_VALUE_LEN`].
pub const MAX_HEAD_UPDATES: usize = 8;

/// Longest master URL a head carries: with 8 updates of 32-byte ids the
/// value stays under 800 bytes, inside [`MAX_VALUE_LEN`].
pub const MAX_MASTER_URL_LEN: usize = 200;

/// What a head says: this commit, shared as this torrent, and reachable
/// from these recent commits through these (much smaller) update torrents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The torrent to fetch.
    pub infohash: InfoHash,
    /// The raw commit id (20 bytes for SHA-1 repositories, 32 for SHA-256),
    /// so a reader can check the torrent it gets is the commit it was told.
    pub commit: Vec<u8>,
    /// Update torrents to `commit`, each from an earlier commit (a reader
    /// holding it downloads only what changed); at most
    /// [`MAX_HEAD_UPDATES`], newest `from` first, no `from` twice.
    pub updates: Vec<HeadUpdate>,
    /// The history torrent (the update from nothing) to `to`, which is the
    /// head's commit or one of the `from`s of `updates`: a reader holding
    /// nothing downloads it from the swarm, then the listed updates from
    /// its `to`, and has the branch's whole history without asking a
    /// server. Kept across head moves while the chain still reaches it, so
    /// a publisher compresses the whole history once every few moves.
    pub history: Option<HeadHistory>,
    /// The topic master's HTTP base URL (`http(s)://host[:port]/...`, at
    /// most [`MAX_MASTER_URL_LEN`] bytes of visible ASCII), when a master
    /// signed the head: readers too far behind for the listed updates ask it
    /// for one from the commit they hold, and writers know where to push.
    /// Signed with the rest, so only the topic owner can point readers at
    /// a server; what the server sends is still checked object by object.
    pub master: Option<String>,
}

/// One update torrent a head lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadUpdate {
    /// The raw id of the commit the update starts from (as long as the
    /// head's own commit id).
    pub from: Vec<u8>,
    /// The update torrent.
    pub infohash: InfoHash,
}

/// The history torrent a head lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadHistory {
    /// The raw id of the commit the history rebuilds (as long as the
    /// head's own commit id).
    pub to: Vec<u8>,
    /// The update torrent from nothing to `to`.
    pub infohash: InfoHash,
}

/// Why a head value or signature was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum HeadError {
    /// Over [`MAX_VALUE_LEN`].
    #[error("head value of {0} bytes is over the {MAX_VALUE_LEN}-byte limit")]
    Oversized(usize),
    /// Not exactly `d6:commit<20|32>:...2:ih20:...[2:upl...e]e`.
    #[error("head value is not a {{commit, ih, up}} dictionary: {0}")]
    Malformed(&'static str),
    /// The signature does not match the topic key.
    #[error("head signature does not verify against topic {0}")]
    BadSignature(TopicKey),
}

impl Head {
    /// A head with no update torrents and no master.
    pub fn new(commit: Vec<u8>, infohash: InfoHash) -> Self {
        Self {
            infohash,
            commit,
            updates: Vec::new(),
            history: None,
            master: None,
        }
    }

    /// The canonical value bytes:
    /// `d6:commit<n>:<id>2:ih20:<infohash>e`, with a history
    /// `2:hil<n>:<to>20:<infohash>e` after the commit, with updates
    /// `2:upl(l<n>:<from>20:<infohash>e)+e` after `ih`, and a master as
    /// `3:url<n>:<url>` before the final `e` (keys in bencode's order).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.updates.len() * 64);
        out.extend_from_slice(b"d6:commit");
        put_string(&mut out, &self.commit);
        if let Some(history) = &self.history {
            out.extend_from_slice(b"2:hil");
            put_string(&mut out, &history.to);
            put_string(&mut out, &history.infohash.0);
            out.push(b'e');
        }
        out.extend_from_slice(b"2:ih");
        put_string(&mut out, &self.infohash.0);
        if !self.updates.is_empty() {
            out.extend_from_slice(b"2:upl");
            for update in &self.updates {
                out.push(b'l');
                put_string(&mut out, &update.from);
                put_string(&mut out, &update.infohash.0);
                out.push(b'e');
            }
            out.push(b'e');
        }
        if let Some(url) = &self.master {
            out.extend_from_slice(b"3:url");
            put_string(&mut out, url.as_bytes());
        }
        out.push(b'e');
        out
    }

    /// Parses exactly the canonical form [`Head::encode`] writes; anything
    /// else (extra keys, other lengths, an empty or oversized update list, a
    /// `from` twice or equal to the commit, a history to a commit the head
    /// does not reach, a master URL that is not a plain `http(s)://` URL,
    /// trailing bytes) is refused.
    pub fn decode(value: &[u8]) -> Result<Self, HeadError> {
        if value.len() > MAX_VALUE_LEN {
            return Err(HeadError::Oversized(value.len()));
        }
        let rest = value
            .strip_prefix(b"d6:commit")
            .ok_or(HeadError::Malformed("no leading 'commit' key"))?;
        let (commit_len, rest) = if let Some(r) = rest.strip_prefix(b"20:") {
            (20, r)
        } else if let Some(r) = rest.strip_prefix(b"32:") {
            (32, r)
        } else {
            return Err(HeadError::Malformed("commit id is not 20 or 32 bytes"));
        };
        let (commit, mut rest) = take(rest, commit_len, "value ends inside the commit id")?;
        let mut history = None;
        if let Some(entry) = rest.strip_prefix(b"2:hil") {
            let entry = entry
                .strip_prefix(format!("{commit_len}:").as_bytes())
                .ok_or(HeadError::Malformed(
                    "the history's commit is not as long as the head's",
                ))?;
            let (to, entry) = take(entry, commit_len, "value ends inside the history's commit")?;
            let entry = entry.strip_prefix(b"20:").ok_or(HeadError::Malformed(
                "the history's infohash is not 20 bytes",
            ))?;
            let (history_ih, entry) = take(entry, 20, "value ends inside the history's infohash")?;
            rest = entry
                .strip_prefix(b"e")
                .ok_or(HeadError::Malformed("the history has more than two items"))?;
            history = Some(HeadHistory {
                to: to.to_vec(),
                infohash: InfoHash(to_array(history_ih)),
            });
        }
        let rest = rest
            .strip_prefix(b"2:ih20:")
            .ok_or(HeadError::Malformed("no 20-byte 'ih' key after 'commit'"))?;
        let (infohash, mut rest) = take(rest, 20, "value ends inside 'ih'")?;
        let mut updates: Vec<HeadUpdate> = Vec::new();
        if let Some(list) = rest.strip_prefix(b"2:upl") {
            rest = list;
            let from_prefix = format!("l{commit_len}:");
            while let Some(entry) = rest.strip_prefix(from_prefix.as_bytes()) {
                if updates.len() == MAX_HEAD_UPDATES {
                    return Err(HeadError::Malformed("more than 8 update torrents"));
                }
                let (from, entry) =
                    take(entry, commit_len, "value ends inside an update's 'from'")?;
                let entry = entry
                    .strip_prefix(b"20:")
                    .ok_or(HeadError::Malformed("an update's infohash is not 20 bytes"))?;
                let (update_ih, entry) = take(entry, 20, "value ends inside an update's infohash")?;
                rest = entry.strip_prefix(b"e").ok_or(HeadError::Malformed(
                    "an update entry has more than two items",
                ))?;
                if from == commit || updates.iter().any(|u| u.from == from) {
                    return Err(HeadError::Malformed(
                        "an update starts from the head's commit or from a commit listed twice",
                    ));
                }
                updates.push(HeadUpdate {
                    from: from.to_vec(),
                    infohash: InfoHash(to_array(update_ih)),
                });
            }
            if updates.is_empty() {
                return Err(HeadError::Malformed("an empty 'up' list"));
            }
            rest = rest
                .strip_prefix(b"e")
                .ok_or(HeadError::Malformed("the 'up' list holds something else"))?;
        }
        let mut master = None;
        if let Some(entry) = rest.strip_prefix(b"3:url") {
            let (url, after) = master_url(entry)?;
            master = Some(url);
            rest = after;
        }
        if rest != b"e" {
            return Err(HeadError::Malformed(
                "value does not end after 'ih', 'up' or 'url'",
            ));
        }
        if let Some(history) = &history
            && history.to != commit
            && !updates.iter().any(|u| u.from == history.to)
        {
            return Err(HeadError::Malformed(
                "the history leads to a commit that is neither the head's nor a listed 'from'",
            ));
        }
        Ok(Self {
            infohash: InfoHash(to_array(infohash)),
            commit: commit.to_vec(),
            updates,
            history,
            master,
        })
    }
}

/// Whether `url` is a master URL a head may carry: `http://` or `https://`,
/// a host, visible ASCII only, at most [`MAX_MASTER_URL_LEN`] bytes.
pub fn is_master_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    url.len() <= MAX_MASTER_URL_LEN
        && url.bytes().all(|b| b.is_ascii_graphic())
        && rest.is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
}

/// Reads the master URL string at the front of `bytes` (after the `url`
/// key): a length of at most three digits without a leading zero, then the
/// URL, which must pass [`is_master_url`].
pub(crate) fn master_url(bytes: &[u8]) -> Result<(String, &[u8]), HeadError> {
    let (url, rest) = take_string(bytes, 3).ok_or(HeadError::Malformed(
        "the master URL's length is not canonical, or the value ends inside it",
    ))?;
    let url = std::str::from_utf8(url)
        .ok()
        .filter(|url| is_master_url(url))
        .ok_or(HeadError::Malformed(
            "the master URL is not a short http(s):// URL of visible ASCII",
        ))?;
    Ok((url.to_owned(), rest))
}

/// Splits the bencode byte string at the front of `bytes` into (its
/// bytes, what follows), when its length has at most `max_digits` digits
/// and no leading zero (the canonical form) and the bytes are all there.
pub(crate) fn take_string(bytes: &[u8], max_digits: usize) -> Option<(&[u8], &[u8])> {
    let colon = bytes.iter().take(max_digits + 1).position(|&b| b == b':')?;
    let digits = std::str::from_utf8(&bytes[..colon]).ok()?;
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let len: usize = digits.parse().ok()?;
    let rest = &bytes[colon + 1..];
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// Appends a bencode byte string.
pub(crate) fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(bytes.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(bytes);
}

/// Splits `n` bytes off the front, or says where the value ended.
fn take<'a>(
    bytes: &'a [u8],
    n: usize,
    short: &'static str,
) -> Result<(&'a [u8], &'a [u8]), HeadError> {
    if bytes.len() < n {
        return Err(HeadError::Malformed(short));
    }
    Ok(bytes.split_at(n))
}

/// A 20-byte slice as an array (callers took exactly 20 bytes).
fn to_array(bytes: &[u8]) -> [u8; 20] {
    let mut out = [0u8; 20];
    out.copy_from_slice(&bytes[..20]);
    out
}

/// A head as signed by its topic: everything needed to verify it again or
/// to store it on more DHT nodes (anyone may republish a signed item).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHead {
    /// Who signed.
    pub topic: TopicKey,
    /// The salt.
    pub branch: Branch,
    /// BEP 44 sequence number; higher wins.
    pub seq: i64,
    /// The head dictionary's bytes (the canonical [`Head::encode`]).
    pub value: Vec<u8>,
    /// How `value` sits in the BEP 44 item, which decides the signed bytes.
    pub form: ValueForm,
    /// ed25519 signature over salt, seq and value.
    pub signature: [u8; 64],
    /// The decoded value.
    pub head: Head,
}

/// How a head's dictionary is carried as the BEP 44 `v`. Readers take both,
/// so heads signed before BEP 46 form stay valid until their topic moves on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueForm {
    /// BEP 46: `v` is the dictionary itself, so a stock client's
    /// `dht_get_item` reads `ih` in one decode. Every new head.
    Dictionary,
    /// Heads written by xus before BEP 46 form: `v` is a byte string whose
    /// contents are the dictionary.
    ByteString,
}

impl ValueForm {
    /// `value` bencoded as this form's `v`.
    pub fn bencode(self, value: &[u8]) -> Vec<u8> {
        match self {
            Self::Dictionary => value.to_vec(),
            Self::ByteString => {
                let mut out = Vec::with_capacity(value.len() + 5);
                put_string(&mut out, value);
                out
            }
        }
    }
}

impl TopicSecret {
    /// Signs `head` for `branch` at `seq`, exactly as BEP 44 lays out the
    /// signed bytes (salt, seq, value), so any DHT node can verify it.
    ///
    /// Lives beside [`SignedHead::verify`] so the bytes signed and the bytes
    /// checked come from one function, `signable`.
    pub fn sign_head(&self, branch: &Branch, head: &Head, seq: i64) -> SignedHead {
        let value = head.encode();
        let form = ValueForm::Dictionary;
        let signature = self.sign(&signable_bencoded(
            branch.as_bytes(),
            seq,
            &form.bencode(&value),
        ));
        SignedHead {
            topic: self.topic(),
            branch: branch.clone(),
            seq,
            value,
            form,
            signature,
            head: head.clone(),
        }
    }
}

impl SignedHead {
    /// Checks the signature, then decodes the value. With
    /// [`SignedHead::verify_as`], the only way to build a `SignedHead` from
    /// bytes that came from elsewhere (the DHT, the home's stored heads).
    /// `value` is the head dictionary's bytes; the signature may cover them
    /// in either [`ValueForm`] (stored heads do not record which).
    ///
    /// The signature is verified strictly (`TopicKey::verify` states the
    /// rule and why; so does `docs/FORMAT.md`): a signature that only the lenient ed25519 check
    /// accepts is a [`HeadError::BadSignature`].
    pub fn verify(
        topic: TopicKey,
        branch: Branch,
        seq: i64,
        value: Vec<u8>,
        signature: [u8; 64],
    ) -> Result<Self, HeadError> {
        match Self::verify_as(
            topic,
            branch.clone(),
            seq,
            value.clone(),
            signature,
            ValueForm::Dictionary,
        ) {
            Err(HeadError::BadSignature(_)) => {
                Self::verify_as(topic, branch, seq, value, signature, ValueForm::ByteString)
            }
            other => other,
        }
    }

    /// [`SignedHead::verify`] for a value read from the DHT, whose form is
    /// known: the item's `v` as it came, a dictionary or a byte string.
    pub fn from_bencoded(
        topic: TopicKey,
        branch: Branch,
        seq: i64,
        bencoded: &[u8],
        signature: [u8; 64],
    ) -> Result<Self, HeadError> {
        if bencoded.first() == Some(&b'd') {
            return Self::verify_as(
                topic,
                branch,
                seq,
                bencoded.to_vec(),
                signature,
                ValueForm::Dictionary,
            );
        }
        let (value, rest) = take_string(bencoded, 4).ok_or(HeadError::Malformed(
            "value is neither a dictionary nor a string",
        ))?;
        if !rest.is_empty() {
            return Err(HeadError::Malformed("bytes after the value"));
        }
        Self::verify_as(
            topic,
            branch,
            seq,
            value.to_vec(),
            signature,
            ValueForm::ByteString,
        )
    }

    /// Checks the signature over `value` in `form`, then decodes it.
    pub fn verify_as(
        topic: TopicKey,
        branch: Branch,
        seq: i64,
        value: Vec<u8>,
        signature: [u8; 64],
        form: ValueForm,
    ) -> Result<Self, HeadError> {
        if value.len() > MAX_VALUE_LEN {
            return Err(HeadError::Oversized(value.len()));
        }
        let signed = signable_bencoded(branch.as_bytes(), seq, &form.bencode(&value));
        if !topic.verify(&signed, &signature) {
            return Err(HeadError::BadSignature(topic));
        }
        let head = Head::decode(&value)?;
        Ok(Self {
            topic,
            branch,
            seq,
            value,
            form,
            signature,
            head,
        })
    }

    /// The BEP 44 `v` to store on DHT nodes, bencoded in this head's form.
    pub fn bencoded_value(&self) -> Vec<u8> {
        self.form.bencode(&self.value)
    }
}

/// The bytes BEP 44 signs for a byte-string value:
/// `4:salt<n>:<salt>3:seqi<seq>e1:v<n>:<value>` (signed indexes, and heads
/// written before BEP 46 form).
pub(crate) fn signable(salt: &[u8], seq: i64, value: &[u8]) -> Vec<u8> {
    signable_bencoded(salt, seq, &ValueForm::ByteString.bencode(value))
}

/// The bytes BEP 44 signs: `4:salt<n>:<salt>3:seqi<seq>e1:v<bencoded v>`.
pub(crate) fn signable_bencoded(salt: &[u8], seq: i64, bencoded: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bencoded.len() + salt.len() + 40);
    if !salt.is_empty() {
        out.extend_from_slice(format!("4:salt{}:", salt.len()).as_bytes());
        out.extend_from_slice(salt);
    }
    out.extend_from_slice(format!("3:seqi{seq}e1:v").as_bytes());
    out.extend_from_slice(bencoded);
    out
}

/// A head that was read from the DHT and not followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Nodes answered with items whose signature did not verify.
    BadSignature {
        /// How many answers.
        count: u32,
    },
    /// Correctly signed, but the value is not a head.
    Malformed {
        /// Its sequence number.
        seq: i64,
        /// What is wrong with it.
        error: HeadError,
    },
    /// The newest head found is older than one this machine already saw.
    Rollback {
        /// The newest found.
        seq: i64,
        /// The highest seen before.
        seen: i64,
    },
    /// Two different values signed with the same sequence number.
    Equivocation {
        /// The sequence number.
        seq: i64,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::BadSignature { count } => {
                write!(f, "{count} answer(s) carried a head with a bad signature")
            }
            Refusal::Malformed { seq, error } => write!(f, "head seq {seq}: {error}"),
            Refusal::Rollback { seq, seen } => write!(
                f,
                "newest head found has seq {seq}, lower than seq {seen} already seen (rollback)"
            ),
            Refusal::Equivocation { seq } => {
                write!(f, "two different heads were signed with seq {seq}")
            }
        }
    }
}

/// Everything one DHT read of a head brought back.
#[derive(Debug, Clone, Default)]
pub struct HeadLookup {
    /// Heads that verified and decoded.
    pub candidates: Vec<SignedHead>,
    /// What was thrown away, and why.
    pub refused: Vec<Refusal>,
    /// DHT nodes asked.
    pub queried: u32,
    /// DHT nodes that answered.
    pub responded: u32,
}

/// Outcome of [`HeadLookup::choose`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadChoice {
    /// A head newer than anything seen: follow it.
    New(Box<SignedHead>),
    /// Nothing newer than what was seen.
    Unchanged,
    /// No valid head at all.
    NotFound,
}

impl HeadLookup {
    /// Picks the head to follow given the highest head this machine saw
    /// before (`seen`), recording rollbacks and equivocations in
    /// [`HeadLookup::refused`]. Never goes backwards.
    pub fn choose(&mut self, seen: Option<&SignedHead>) -> HeadChoice {
        let Some(top_seq) = self.candidates.iter().map(|c| c.seq).max() else {
            return HeadChoice::NotFound;
        };
        let mut top: Vec<&SignedHead> = self
            .candidates
            .iter()
            .filter(|c| c.seq == top_seq)
            .collect();
        top.sort_by(|a, b| b.value.cmp(&a.value));
        top.dedup_by(|a, b| a.value == b.value);
        if top.len() > 1 {
            self.refused.push(Refusal::Equivocation { seq: top_seq });
        }
        let best = top[0].clone();
        match seen {
            Some(seen) if best.seq < seen.seq => {
                self.refused.push(Refusal::Rollback {
                    seq: best.seq,
                    seen: seen.seq,
                });
                HeadChoice::Unchanged
            }
            Some(seen) if best.seq == seen.seq => {
                if best.value != seen.value && top.len() == 1 {
                    self.refused.push(Refusal::Equivocation { seq: best.seq });
                }
                HeadChoice::Unchanged
            }
            _ => HeadChoice::New(Box::new(best)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TopicSecret;

    fn head(byte: u8) -> Head {
        Head::new(vec![byte; 20], InfoHash([byte; 20]))
    }

    fn with_updates(commit_len: usize, n: usize) -> Head {
        Head {
            infohash: InfoHash([9; 20]),
            commit: vec![3; commit_len],
            updates: (0..n)
                .map(|i| HeadUpdate {
                    from: vec![100 + i as u8; commit_len],
                    infohash: InfoHash([200 + i as u8; 20]),
                })
                .collect(),
            history: None,
            master: None,
        }
    }

    #[test]
    fn a_history_round_trips_with_the_longest_head_and_must_lead_into_the_chain() {
        for commit_len in [20, 32] {
            let mut h = with_updates(commit_len, MAX_HEAD_UPDATES);
            h.master = Some(format!("https://{}/", "m".repeat(MAX_MASTER_URL_LEN - 9)));
            for to in [
                h.commit.clone(),
                h.updates[MAX_HEAD_UPDATES - 1].from.clone(),
            ] {
                h.history = Some(HeadHistory {
                    to,
                    infohash: InfoHash([7; 20]),
                });
                let bytes = h.encode();
                assert!(bytes.len() <= MAX_VALUE_LEN, "{}", bytes.len());
                assert_eq!(Head::decode(&bytes), Ok(h.clone()));
            }
            let mut elsewhere = h.clone();
            elsewhere.history = Some(HeadHistory {
                to: vec![1; commit_len],
                infohash: InfoHash([7; 20]),
            });
            assert!(Head::decode(&elsewhere.encode()).is_err(), "to elsewhere");
            let mut short = h.clone();
            short.history = Some(HeadHistory {
                to: vec![3; commit_len - 1],
                infohash: InfoHash([7; 20]),
            });
            assert!(Head::decode(&short.encode()).is_err(), "short to");
        }
        let mut alone = head(4);
        alone.history = Some(HeadHistory {
            to: alone.commit.clone(),
            infohash: InfoHash([8; 20]),
        });
        let good = alone.encode();
        assert_eq!(Head::decode(&good), Ok(alone));
        for cut in 0..good.len() {
            assert!(Head::decode(&good[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn a_master_url_round_trips_and_a_bad_one_is_refused() {
        let longest = format!("https://{}/", "m".repeat(MAX_MASTER_URL_LEN - 9));
        for url in [
            "http://127.0.0.1:8080/",
            "https://master.example/xus/",
            &longest,
        ] {
            let mut h = with_updates(32, MAX_HEAD_UPDATES);
            h.master = Some(url.to_owned());
            let bytes = h.encode();
            assert!(bytes.len() <= 800, "{}", bytes.len());
            assert_eq!(Head::decode(&bytes), Ok(h.clone()));
            let mut plain = head(1);
            plain.master = Some(url.to_owned());
            assert_eq!(Head::decode(&plain.encode()), Ok(plain));
        }
        let too_long = format!("{longest}x");
        for bad in [
            "",
            "ftp://host/",
            "http://",
            "http:///path",
            "http://host /",
            "http://h\u{7f}ost/",
            "http://hóst/",
            too_long.as_str(),
        ] {
            let mut h = head(2);
            h.master = Some(bad.to_owned());
            assert!(Head::decode(&h.encode()).is_err(), "{bad:?}");
        }
        let good = {
            let mut h = head(3);
            h.master = Some("http://a/".to_owned());
            h.encode()
        };
        let leading_zero = String::from_utf8_lossy(&good).replace("3:url9:", "3:url09:");
        assert!(Head::decode(leading_zero.as_bytes()).is_err());
        for cut in 0..good.len() {
            assert!(Head::decode(&good[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn updates_round_trip_within_the_value_limit() {
        for commit_len in [20, 32] {
            for n in 0..=MAX_HEAD_UPDATES {
                let h = with_updates(commit_len, n);
                let bytes = h.encode();
                assert!(bytes.len() <= MAX_VALUE_LEN, "{}", bytes.len());
                assert_eq!(Head::decode(&bytes), Ok(h));
            }
        }
        let nine = with_updates(20, MAX_HEAD_UPDATES + 1).encode();
        assert!(Head::decode(&nine).is_err(), "nine updates");
        let plain = head(1).encode();
        let empty = [&plain[..plain.len() - 1], b"2:uplee"].concat();
        assert!(
            Head::decode(&empty).is_err(),
            "an empty list is not canonical"
        );
        let mut twice = with_updates(20, 2);
        twice.updates[1].from = twice.updates[0].from.clone();
        assert!(Head::decode(&twice.encode()).is_err(), "a from twice");
        let mut to_self = with_updates(20, 1);
        to_self.updates[0].from = to_self.commit.clone();
        assert!(
            Head::decode(&to_self.encode()).is_err(),
            "from the commit itself"
        );
        let mut short = with_updates(32, 1);
        short.updates[0].from = vec![1; 20];
        assert!(
            Head::decode(&short.encode()).is_err(),
            "from of another length"
        );
        let good = with_updates(20, 3).encode();
        for cut in 0..good.len() {
            assert!(Head::decode(&good[..cut]).is_err(), "cut at {cut}");
            let mut flipped = good.clone();
            flipped[cut] ^= 0xff;
            let _ = Head::decode(&flipped);
        }
    }

    #[test]
    fn value_round_trips_and_strict_decoder_refuses_variants() {
        for commit_len in [20, 32] {
            let h = Head::new(vec![3; commit_len], InfoHash([9; 20]));
            assert_eq!(Head::decode(&h.encode()), Ok(h));
        }
        let good = head(1).encode();
        for bad in [
            &b""[..],
            b"de",
            b"d2:ih20:aaaaaaaaaaaaaaaaaaaae",
            &good[..good.len() - 1],
            &[good.as_slice(), b"x"].concat(),
            b"d6:commit19:aaaaaaaaaaaaaaaaaaa2:ih20:aaaaaaaaaaaaaaaaaaaae",
            b"d6:commit20:aaaaaaaaaaaaaaaaaaaa2:ih21:aaaaaaaaaaaaaaaaaaaaae",
            b"d6:commit20:aaaaaaaaaaaaaaaaaaaa2:ih20:aaaaaaaaaaaaaaaaaaaa1:xi0ee",
        ] {
            assert!(
                Head::decode(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            Head::decode(&vec![b'd'; MAX_VALUE_LEN + 1]),
            Err(HeadError::Oversized(MAX_VALUE_LEN + 1))
        );
    }

    #[test]
    fn decode_never_panics_on_prefixes_and_bytes() {
        let good = head(7).encode();
        for cut in 0..good.len() {
            let _ = Head::decode(&good[..cut]);
            let mut flipped = good.clone();
            flipped[cut] ^= 0xff;
            let _ = Head::decode(&flipped);
        }
    }

    #[test]
    fn signatures_bind_topic_branch_seq_and_value() {
        let secret = TopicSecret::from_seed([5; 32]);
        let main = Branch::new("main").expect("branch");
        let signed = secret.sign_head(&main, &head(1), 10);
        let ok = SignedHead::verify(
            signed.topic,
            main.clone(),
            10,
            signed.value.clone(),
            signed.signature,
        );
        assert_eq!(ok.as_ref().map(|h| &h.head), Ok(&head(1)));
        let other = TopicSecret::from_seed([6; 32]).topic();
        let dev = Branch::new("dev").expect("branch");
        for (topic, branch, seq, value) in [
            (other, main.clone(), 10, signed.value.clone()),
            (signed.topic, dev, 10, signed.value.clone()),
            (signed.topic, main.clone(), 11, signed.value.clone()),
            (signed.topic, main.clone(), 10, head(2).encode()),
        ] {
            assert!(matches!(
                SignedHead::verify(topic, branch, seq, value, signed.signature),
                Err(HeadError::BadSignature(_))
            ));
        }
    }

    /// A signature the lenient ed25519 check accepts and the strict one
    /// refuses: the topic key is the identity point (small order), so
    /// `[s]B - [k]A = [s]B` whatever the message, and `R = B`, `s = 1`
    /// "signs" everything. It must not verify.
    #[test]
    fn signatures_only_the_lenient_check_accepts_are_refused() {
        use ed25519_dalek::{Signature, Verifier, VerifyingKey};

        let mut identity = [0u8; 32];
        identity[0] = 1;
        let topic = TopicKey(identity);
        // The compressed Ed25519 base point B, then the scalar 1.
        let mut forged = [0u8; 64];
        forged[0] = 0x58;
        forged[1..32].fill(0x66);
        forged[32] = 1;
        let main = Branch::new("main").expect("branch");
        let value = head(1).encode();
        let message = signable(main.as_bytes(), 1, &value);
        let lenient = VerifyingKey::from_bytes(&identity)
            .expect("the identity point decodes")
            .verify(&message, &Signature::from_bytes(&forged));
        assert!(lenient.is_ok(), "the forged signature passes `verify`");
        assert_eq!(
            SignedHead::verify(topic, main, 1, value, forged),
            Err(HeadError::BadSignature(topic))
        );
    }

    #[test]
    fn signable_matches_mainline() {
        let secret = TopicSecret::from_seed([5; 32]);
        let main = Branch::new("main").expect("branch");
        let ours = secret.sign_head(&main, &head(4), 77);
        assert_eq!(ours.form, ValueForm::Dictionary);
        assert_eq!(
            ours.bencoded_value(),
            ours.value,
            "v is the dictionary itself"
        );
        let theirs = mainline::MutableItem::new_bencoded(
            secret.signing_key().clone(),
            &ours.value,
            77,
            Some(b"main"),
        );
        assert_eq!(theirs.signature(), &ours.signature);
    }

    /// Heads signed before BEP 46 form (the dictionary inside a byte
    /// string) still verify, from the home's store and from the DHT, and
    /// keep their form; a signature of one form never passes as the other.
    #[test]
    fn heads_in_the_old_byte_string_form_still_verify() {
        let secret = TopicSecret::from_seed([6; 32]);
        let main = Branch::new("main").expect("branch");
        let value = head(3).encode();
        let old =
            mainline::MutableItem::new(secret.signing_key().clone(), &value, 9, Some(b"main"));
        assert_eq!(
            old.bencoded_value(),
            format!("{}:", value.len())
                .into_bytes()
                .iter()
                .chain(&value)
                .copied()
                .collect::<Vec<u8>>(),
            "a byte string holding the dictionary"
        );

        let stored = SignedHead::verify(
            secret.topic(),
            main.clone(),
            9,
            value.clone(),
            *old.signature(),
        )
        .expect("the stored old head verifies");
        assert_eq!(stored.form, ValueForm::ByteString);
        assert_eq!(stored.bencoded_value(), old.bencoded_value());
        let read = SignedHead::from_bencoded(
            secret.topic(),
            main.clone(),
            9,
            old.bencoded_value(),
            *old.signature(),
        )
        .expect("the old head read from the DHT verifies");
        assert_eq!(read, stored);

        // The old signature over the dictionary form, and the new one over the string form.
        assert_eq!(
            SignedHead::verify_as(
                secret.topic(),
                main.clone(),
                9,
                value.clone(),
                *old.signature(),
                ValueForm::Dictionary
            ),
            Err(HeadError::BadSignature(secret.topic()))
        );
        let new = secret.sign_head(&main, &head(3), 9);
        assert_eq!(
            SignedHead::from_bencoded(
                secret.topic(),
                main.clone(),
                9,
                &ValueForm::ByteString.bencode(&value),
                new.signature
            ),
            Err(HeadError::BadSignature(secret.topic()))
        );
        // Trailing bytes after the string, and values of neither form.
        let mut trailing = old.bencoded_value().to_vec();
        trailing.push(b'x');
        for bad in [&trailing[..], b"i3e", b"", b"4:ab"] {
            assert!(
                matches!(
                    SignedHead::from_bencoded(
                        secret.topic(),
                        main.clone(),
                        9,
                        bad,
                        *old.signature()
                    ),
                    Err(HeadError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn choose_follows_newest_and_refuses_rollback() {
        let secret = TopicSecret::from_seed([5; 32]);
        let main = Branch::new("main").expect("branch");
        let old = secret.sign_head(&main, &head(1), 1);
        let new = secret.sign_head(&main, &head(2), 2);

        let mut lookup = HeadLookup {
            candidates: vec![old.clone(), new.clone()],
            ..Default::default()
        };
        assert_eq!(lookup.choose(None), HeadChoice::New(Box::new(new.clone())));
        assert_eq!(lookup.choose(Some(&new)), HeadChoice::Unchanged);
        assert!(lookup.refused.is_empty());

        let mut rollback = HeadLookup {
            candidates: vec![old.clone()],
            ..Default::default()
        };
        assert_eq!(rollback.choose(Some(&new)), HeadChoice::Unchanged);
        assert_eq!(
            rollback.refused,
            vec![Refusal::Rollback { seq: 1, seen: 2 }]
        );

        let forked = secret.sign_head(&main, &head(3), 2);
        let mut equivocation = HeadLookup {
            candidates: vec![forked],
            ..Default::default()
        };
        assert_eq!(equivocation.choose(Some(&new)), HeadChoice::Unchanged);
        assert_eq!(equivocation.refused, vec![Refusal::Equivocation { seq: 2 }]);

        assert_eq!(HeadLookup::default().choose(None), HeadChoice::NotFound);
    }

    #[test]
    fn branch_names_must_fit_a_salt() {
        assert!(Branch::new("main").is_ok());
        assert_eq!(Branch::new(""), Err(BranchError::Empty));
        assert!(Branch::new(&"x".repeat(65)).is_err());
        assert!(Branch::new("a\nb").is_err());
        for good in [
            "main",
            "feature/x",
            "release-1.2",
            "v1",
            "a.b",
            "ünïcode",
            "x@y",
            "m-",
        ] {
            assert!(Branch::new(good).is_ok(), "{good}");
        }
        for bad in [
            "HEAD",
            "-x",
            "@",
            "../x",
            "a..b",
            "main.lock",
            "ma in",
            "ma@{in",
            "main/",
            "/main",
            "a//b",
            "refs/heads/../../x",
            ".hidden",
            "a/.b",
            "x.",
            "a~1",
            "a^",
            "a:b",
            "a?",
            "a*",
            "a[b",
            "a\\b",
            "x/y.lock/z",
        ] {
            assert!(
                matches!(Branch::new(bad), Err(BranchError::NotGitBranch(..))),
                "{bad}"
            );
        }
    }
}
