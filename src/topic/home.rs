//! xus's own directory on this machine (not per repository): the config
//! file, topic secrets, and the signed heads this machine has published or
//! followed.
//!
//! ```text
//! $XUS_HOME (or $XDG_CONFIG_HOME/xus, or ~/.config/xus)
//!   config.toml                    DHT settings, see `DhtSection`
//!   topics/<name>.secret           ed25519 seed, hex, mode 0600
//!   heads/<topic>/<branch-hex>     newest signed head seen: seq, value, signature
//!   indexes/<topic>                newest signed branch index seen, the same way
//! ```
//!
//! Stored heads are verified again on every load: the directory is not
//! trusted more than the DHT.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;
use tracker_free::{Branch, SignedHead, SignedIndex, TopicKey, TopicSecret};

/// The directory and what lives in it.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

/// `config.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `[dht]`.
    #[serde(default)]
    pub dht: DhtSection,
    /// `[push]`.
    #[serde(default)]
    pub push: PushSection,
    /// `[fetch]`: how long fetches by Git (`git-remote-xus`) wait.
    #[serde(default)]
    pub fetch: FetchSection,
    /// `[aliases]`: short names for topics this machine follows but does
    /// not own (`world = "<64 hex topic id>"`), usable wherever a topic is
    /// typed (`xus://world/main`).
    #[serde(default)]
    pub aliases: std::collections::BTreeMap<String, String>,
}

/// `[fetch]` of `config.toml`: the waits of `git clone`/`git fetch`, which
/// take no xus flags (`xus fetch` has `--metadata-timeout` and
/// `--stall-timeout`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchSection {
    /// Longest wait for a peer to send a commit torrent's metadata,
    /// seconds (default 60).
    pub metadata_timeout_secs: Option<u64>,
    /// Give up a download after this long without a verified piece,
    /// seconds (default 300).
    pub stall_timeout_secs: Option<u64>,
}

/// `[push]` of `config.toml`: where `xus push` goes when not told.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushSection {
    /// The master's base URL (`http://host:port/`).
    pub master: Option<String>,
}

/// `[dht]` of `config.toml`; command-line flags override each key.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DhtSection {
    /// `HOST:PORT` nodes to join through instead of the public routers.
    pub bootstrap: Option<Vec<String>>,
    /// UDP port of this machine's DHT node.
    pub port: Option<u16>,
    /// IPv4 address to bind the DHT node to.
    pub bind: Option<std::net::Ipv4Addr>,
    /// KRPC request timeout, milliseconds.
    pub request_timeout_ms: Option<u64>,
    /// Answer other nodes from the start (private DHTs, bootstrap nodes).
    pub server_mode: Option<bool>,
}

/// Largest config file read; anything bigger is a mistake.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

impl Home {
    /// `$XUS_HOME`, else `$XDG_CONFIG_HOME/xus`, else `~/.config/xus`.
    pub fn locate() -> anyhow::Result<Self> {
        let root = if let Some(dir) = std::env::var_os("XUS_HOME") {
            PathBuf::from(dir)
        } else if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME") {
            PathBuf::from(dir).join("xus")
        } else if let Some(home) = std::env::var_os("HOME") {
            PathBuf::from(home).join(".config").join("xus")
        } else {
            anyhow::bail!("cannot find a home for xus: set XUS_HOME or HOME");
        };
        Ok(Self { root })
    }

    /// A home at an explicit path (tests, `--home`).
    pub fn at(root: PathBuf) -> Self {
        Self { root }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Reads `config.toml`; a missing file is an empty config.
    pub fn config(&self) -> anyhow::Result<ConfigFile> {
        let path = self.root.join("config.toml");
        let text = match std::fs::metadata(&path) {
            Ok(meta) if meta.len() > MAX_CONFIG_BYTES => {
                anyhow::bail!("{} is larger than 1 MiB", path.display())
            }
            Ok(_) => crate::bounded_file::read_to_string(&path, MAX_CONFIG_BYTES)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ConfigFile::default()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Where this machine's writer key lives (`xus writer new`, `xus push`).
    pub fn writer_key_path(&self) -> PathBuf {
        self.root.join("writer.secret")
    }

    fn topic_path(&self, name: &str) -> PathBuf {
        self.root.join("topics").join(format!("{name}.secret"))
    }

    /// Makes a topic key pair and stores the secret, readable by the owner
    /// only. Refuses to overwrite an existing topic: a lost secret is a lost
    /// topic.
    pub fn create_topic(&self, name: &str) -> anyhow::Result<TopicSecret> {
        check_topic_name(name)?;
        let path = self.topic_path(name);
        let dir = path.parent().context("topic path has a parent")?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let secret = TopicSecret::generate()?;
        write_new_secret(&path, &secret.to_hex(), || {
            format!("topic '{name}' already exists ({})", path.display())
        })?;
        Ok(secret)
    }

    /// The secret of a local topic, by name or by topic id.
    pub fn topic_secret(&self, name_or_id: &str) -> anyhow::Result<TopicSecret> {
        if let Ok(topic) = TopicKey::from_hex(name_or_id) {
            return self
                .topics()?
                .into_iter()
                .find(|(_, secret)| secret.topic() == topic)
                .map(|(_, secret)| secret)
                .with_context(|| {
                    format!("no secret for topic {topic} in {}", self.root.display())
                });
        }
        check_topic_name(name_or_id)?;
        let path = self.topic_path(name_or_id);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "no topic named '{name_or_id}' ({} is unreadable); create it with `xus topic new {name_or_id}`",
                path.display()
            )
        })?;
        TopicSecret::from_hex(&text).with_context(|| format!("{} is corrupt", path.display()))
    }

    /// Every local topic, sorted by name.
    pub fn topics(&self) -> anyhow::Result<Vec<(String, TopicSecret)>> {
        let dir = self.root.join("topics");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry?;
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str().and_then(|n| n.strip_suffix(".secret")) else {
                continue;
            };
            if check_topic_name(name).is_err() {
                continue;
            }
            let text = std::fs::read_to_string(entry.path())?;
            let secret = TopicSecret::from_hex(&text)
                .with_context(|| format!("{} is corrupt", entry.path().display()))?;
            out.push((name.to_string(), secret));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// A topic id as typed: 64 hex digits, the name of a local topic, or
    /// an alias from `config.toml`'s `[aliases]` (a local topic wins over an
    /// alias of the same name).
    pub fn resolve_topic(&self, name_or_id: &str) -> anyhow::Result<TopicKey> {
        if let Ok(topic) = TopicKey::from_hex(name_or_id) {
            return Ok(topic);
        }
        if check_topic_name(name_or_id).is_ok() && self.topic_path(name_or_id).exists() {
            return Ok(self.topic_secret(name_or_id)?.topic());
        }
        let config = self.config()?;
        match config.aliases.get(name_or_id) {
            Some(id) => TopicKey::from_hex(id)
                .with_context(|| format!("alias {name_or_id:?} in config.toml is not a topic id")),
            None => anyhow::bail!(
                "{:?} is not a topic id, a local topic (`xus topic list`) \
                 or an alias in {}'s [aliases]",
                xus_codec::quote::short(name_or_id),
                self.root.join("config.toml").display()
            ),
        }
    }

    fn head_path(&self, topic: &TopicKey, branch: &Branch) -> PathBuf {
        self.root
            .join("heads")
            .join(topic.to_hex())
            .join(crate::hex::encode(branch.as_bytes()))
    }

    /// The newest head of `branch` this machine has seen, verified again.
    pub fn seen_head(
        &self,
        topic: &TopicKey,
        branch: &Branch,
    ) -> anyhow::Result<Option<SignedHead>> {
        let path = self.head_path(topic, branch);
        match std::fs::read_to_string(&path) {
            Ok(text) => parse_stored_head(*topic, branch.clone(), &text)
                .with_context(|| format!("stored head {} is corrupt", path.display()))
                .map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Records `head` unless a head with a higher seq is already recorded;
    /// the rollback guard rests on this never going backwards.
    pub fn record_head(&self, head: &SignedHead) -> anyhow::Result<()> {
        if let Some(seen) = self.seen_head(&head.topic, &head.branch)?
            && seen.seq > head.seq
        {
            return Ok(());
        }
        let text = format!(
            "branch {}\nseq {}\nvalue {}\nsignature {}\n",
            head.branch,
            head.seq,
            crate::hex::encode(&head.value),
            crate::hex::encode(&head.signature)
        );
        write_atomically(&self.head_path(&head.topic, &head.branch), &text)
    }

    fn index_path(&self, topic: &TopicKey) -> PathBuf {
        self.root.join("indexes").join(topic.to_hex())
    }

    /// The newest branch index of `topic` this machine has seen, verified
    /// again.
    pub fn seen_index(&self, topic: &TopicKey) -> anyhow::Result<Option<SignedIndex>> {
        let path = self.index_path(topic);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let (seq, value, signature) = parse_stored_item(&text)
                    .with_context(|| format!("stored index {} is corrupt", path.display()))?;
                Ok(Some(
                    SignedIndex::verify(*topic, seq, value, signature)
                        .with_context(|| format!("stored index {} is corrupt", path.display()))?,
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Records a topic's branch index unless one with a higher seq is
    /// recorded, so that `xus seed` can store it again on the DHT while its
    /// publisher is away.
    pub fn record_index(&self, index: &SignedIndex) -> anyhow::Result<()> {
        if let Some(seen) = self.seen_index(&index.topic).ok().flatten()
            && seen.seq > index.seq
        {
            return Ok(());
        }
        let text = format!(
            "seq {}\nvalue {}\nsignature {}\n",
            index.seq,
            crate::hex::encode(&index.value),
            crate::hex::encode(&index.signature)
        );
        write_atomically(&self.index_path(&index.topic), &text)
    }

    /// Every stored head, for republishing. Corrupt entries are skipped with
    /// a warning rather than stopping the others.
    pub fn all_heads(&self) -> anyhow::Result<Vec<SignedHead>> {
        let dir = self.root.join("heads");
        let mut out = Vec::new();
        let topics = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        for topic_dir in topics {
            let topic_dir = topic_dir?;
            let Some(topic) = topic_dir.file_name().to_str().and_then(stored_topic) else {
                continue;
            };
            for entry in std::fs::read_dir(topic_dir.path())? {
                let entry = entry?;
                let branch = entry
                    .file_name()
                    .to_str()
                    .and_then(|name| crate::hex::decode(name).ok())
                    .and_then(|b| String::from_utf8(b).ok())
                    .and_then(|b| Branch::new(&b).ok());
                let Some(branch) = branch else { continue };
                match self.seen_head(&topic, &branch) {
                    Ok(Some(head)) => out.push(head),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %format!("{e:#}"), "skipping a stored head"),
                }
            }
        }
        Ok(out)
    }
}

/// Writes `hex` and a newline to a new file readable by its owner only
/// (topic and writer secrets), refusing to replace an existing one with the
/// message `exists` gives: a lost secret is a lost identity.
pub fn write_new_secret(
    path: &Path,
    hex: &str,
    exists: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!(exists())
        } else {
            anyhow::Error::new(e).context(format!("creating {}", path.display()))
        }
    })?;
    writeln!(file, "{hex}")?;
    file.sync_all()?;
    Ok(())
}

/// Topic names are file names (here and in a master's data directory):
/// keep them short and plain.
pub fn check_topic_name(name: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        !name.is_empty()
            && name.len() <= 64
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
        "topic name {:?} must be 1-64 characters of A-Z a-z 0-9 . _ - and not start with '.'",
        xus_codec::quote::short(name)
    );
    Ok(())
}

/// The topic a `heads/<topic>` directory is named after: exactly the 64
/// lowercase digits [`Home::record_head`] writes. Another spelling of the
/// same key (uppercase, which `TopicKey::from_hex` takes from people) is not
/// a directory xus wrote, and would name the same head twice.
fn stored_topic(name: &str) -> Option<TopicKey> {
    crate::hex::decode(name).ok()?;
    TopicKey::from_hex(name).ok()
}

/// Reads a file [`Home::record_head`] wrote, in exactly the form it writes:
/// lowercase hex for `value` and `signature` (no uppercase, sign or odd
/// digit), a plain decimal `seq` (no `+`, no leading zeros). Anything else
/// means the file was not written by xus and is refused, whatever its
/// signature says.
fn parse_stored_head(topic: TopicKey, branch: Branch, text: &str) -> anyhow::Result<SignedHead> {
    let (seq, value, signature) = parse_stored_item(text)?;
    Ok(SignedHead::verify(topic, branch, seq, value, signature)?)
}

/// The `seq`, `value` and `signature` lines of a stored item (a head or a
/// branch index), in exactly the form xus writes them.
fn parse_stored_item(text: &str) -> anyhow::Result<(i64, Vec<u8>, [u8; 64])> {
    let mut seq = None;
    let mut value = None;
    let mut signature = None;
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("seq", v)) => {
                let parsed = v.parse::<i64>().ok().filter(|n| n.to_string() == v);
                seq = Some(parsed.with_context(|| format!("seq {v:?} is not a plain integer"))?);
            }
            Some(("value", v)) => {
                value = Some(crate::hex::decode(v).context("value is not lowercase hex")?);
            }
            Some(("signature", v)) => {
                signature = Some(
                    xus_codec::hex::decode_array::<64>(v)
                        .context("signature is not 128 lowercase hex digits")?,
                );
            }
            _ => {}
        }
    }
    let (Some(seq), Some(value), Some(signature)) = (seq, value, signature) else {
        anyhow::bail!("missing seq, value or signature");
    };
    Ok((seq, value, signature))
}

/// Replaces `path` with `text` (written to a temporary file beside it,
/// synced, then renamed), creating its directory.
fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let dir = path.parent().context("a stored item's path has a parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracker_free::{Head, InfoHash};

    #[test]
    fn topics_are_private_and_never_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::at(dir.path().to_owned());
        let secret = home.create_topic("game").expect("create");
        assert!(home.create_topic("game").is_err());
        assert!(home.create_topic("../escape").is_err());
        assert_eq!(home.resolve_topic("game").expect("by name"), secret.topic());
        assert!(home.resolve_topic("other").is_err());
        let other = TopicSecret::from_seed([5; 32]).topic();
        std::fs::write(
            dir.path().join("config.toml"),
            format!("[aliases]\nother = \"{other}\"\ngame = \"{other}\"\nbad = \"12\"\n"),
        )
        .expect("config");
        assert_eq!(home.resolve_topic("other").expect("by alias"), other);
        assert_eq!(
            home.resolve_topic("game").expect("own topic first"),
            secret.topic()
        );
        assert!(home.resolve_topic("bad").is_err());
        let hex = secret.topic().to_hex();
        assert_eq!(
            home.topic_secret(&hex).expect("by id").topic(),
            secret.topic()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("topics/game.secret"))
                .expect("stat")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn recorded_heads_never_go_backwards_and_are_reverified() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::at(dir.path().to_owned());
        let secret = TopicSecret::from_seed([3; 32]);
        let branch = Branch::new("main").expect("branch");
        let head = |b: u8| Head::new(vec![b; 20], InfoHash([b; 20]));
        let newer = secret.sign_head(&branch, &head(2), 20);
        home.record_head(&newer).expect("record");
        home.record_head(&secret.sign_head(&branch, &head(1), 10))
            .expect("older is ignored");
        assert_eq!(
            home.seen_head(&secret.topic(), &branch).expect("load"),
            Some(newer.clone())
        );
        assert_eq!(home.all_heads().expect("all"), vec![newer]);
        // Indexes the same way.
        let index = |b: &str, seq| {
            secret.sign_index(
                &tracker_free::TopicIndex::new([], Branch::new(b).expect("branch"), None),
                seq,
            )
        };
        home.record_index(&index("dev", 7)).expect("record");
        home.record_index(&index("main", 5))
            .expect("older is ignored");
        assert_eq!(
            home.seen_index(&secret.topic()).expect("load"),
            Some(index("dev", 7))
        );
        // A tampered file does not load.
        let path = home.head_path(&secret.topic(), &branch);
        let text = std::fs::read_to_string(&path).expect("read");
        std::fs::write(&path, text.replace("seq 20", "seq 21")).expect("write");
        assert!(home.seen_head(&secret.topic(), &branch).is_err());
    }
}
