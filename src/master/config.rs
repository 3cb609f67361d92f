//! `xus master --config FILE`: what a master owns and where it listens.
//!
//! ```toml
//! data_dir = "data"                     # relative paths are relative to this file
//!
//! [listen]
//! bittorrent = "0.0.0.0:6881"
//! http = "127.0.0.1:8080"               # push endpoint, status, webseed
//! public_url = "http://example.org:8080/"  # optional: the webseed URL put in magnets
//! lsd = true                            # optional: local service discovery (BEP 14), default on
//!
//! [dht]                                 # as `[dht]` in xus's config.toml
//! bootstrap = ["192.0.2.1:6881"]
//!
//! [[topic]]
//! name = "world"
//! secret_file = "world.secret"          # as written by `xus topic new`
//! writers = ["<64 hex: a writer's public key, from `xus writer new`>"]
//! backups = ["/srv/backup/world.git", "http://git.example.org/world.git"]
//! ```

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;
use tracker_free::{Branch, TopicSecret};

use crate::topic::home::{DhtSection, check_topic_name};
use crate::topic::writer_key::WriterKey;

/// Largest configuration file read.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The fewest backup remotes a topic may have: one remote is one disk or
/// one host away from losing the topic.
pub const MIN_BACKUPS: usize = 2;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    data_dir: PathBuf,
    listen: RawListen,
    #[serde(default)]
    dht: DhtSection,
    #[serde(default)]
    limits: RawLimits,
    #[serde(rename = "topic", default)]
    topics: Vec<RawTopic>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListen {
    bittorrent: SocketAddr,
    http: SocketAddr,
    public_url: Option<String>,
    lsd: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_clock_skew_secs: Option<u64>,
    backup_wait_secs: Option<u64>,
    backup_retry_max_secs: Option<u64>,
    fetch_stall_secs: Option<u64>,
    republish_secs: Option<u64>,
    cache_mb: Option<u64>,
    max_upload_kib: Option<u32>,
    update_peers: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopic {
    name: String,
    secret_file: PathBuf,
    #[serde(default)]
    writers: Vec<String>,
    backups: Vec<String>,
    default_branch: Option<String>,
}

/// A checked configuration: every path absolute, every key parsed.
#[derive(Debug, Clone)]
pub struct MasterConfig {
    /// Where the topics' repositories live (`<data_dir>/<topic>.git`).
    pub data_dir: PathBuf,
    /// BitTorrent address.
    pub bittorrent: SocketAddr,
    /// HTTP address: push endpoint, status and webseed.
    pub http: SocketAddr,
    /// The webseed URL magnets carry, when not `http://<http address>/`.
    pub public_url: Option<String>,
    /// Answer and send local service discovery announces (BEP 14), so
    /// readers on the master's LAN find it without the DHT.
    pub lsd: bool,
    /// The DHT node's settings.
    pub dht: DhtSection,
    /// Timeouts and sizes.
    pub limits: Limits,
    /// The topics this master owns.
    pub topics: Vec<TopicConfig>,
}

/// Timeouts and sizes; each has a default fit for a small cluster.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Push requests signed further than this from the master's clock are
    /// refused (limits replays of a captured request).
    pub max_clock_skew: Duration,
    /// How long a push waits for a first backup remote to hold it.
    pub backup_wait: Duration,
    /// Longest pause between retries of a backup remote that is down.
    pub backup_retry_max: Duration,
    /// A push's download gives up after this long without progress.
    pub fetch_stall: Duration,
    /// Pause between refreshes of the DHT heads.
    pub republish: Duration,
    /// Memory for inflated blobs, per topic.
    pub cache_bytes: u64,
    /// Cap on the master's BitTorrent upload, bytes per second: with it,
    /// fresh peers take most pieces from each other and the master's link
    /// stays free for pushes.
    pub max_upload_bps: Option<u32>,
    /// How many peers at once each update torrent is served to, so that
    /// followers pass an update on rather than all taking it from here.
    pub update_peers: usize,
}

/// One owned topic.
#[derive(Debug, Clone)]
pub struct TopicConfig {
    /// Local name; also the repository's directory name.
    pub name: String,
    /// The key heads are signed with.
    pub secret: TopicSecret,
    /// Who may push.
    pub writers: Vec<WriterKey>,
    /// Git remotes (paths or `http(s)://` URLs) holding copies, in restore
    /// order.
    pub backups: Vec<String>,
    /// The branch `git clone xus://TOPIC/` checks out (the topic's branch
    /// index names it); `main` unless set.
    pub default_branch: Branch,
}

impl TopicConfig {
    /// Where this topic's bare repository lives.
    pub fn git_dir(&self, data_dir: &Path) -> PathBuf {
        data_dir.join(format!("{}.git", self.name))
    }
}

impl MasterConfig {
    /// Reads and checks `path`. Relative paths inside are taken from the
    /// file's directory, so a config can travel with its secrets.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let meta =
            std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
        anyhow::ensure!(
            meta.len() <= MAX_CONFIG_BYTES,
            "{} is larger than 1 MiB",
            path.display()
        );
        let text = crate::bounded_file::read_to_string(path, MAX_CONFIG_BYTES)?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };
        Self::parse(&text, &base).with_context(|| format!("in {}", path.display()))
    }

    /// Parses configuration text; relative paths are joined to `base`.
    pub fn parse(text: &str, base: &Path) -> anyhow::Result<Self> {
        let raw: RawConfig = toml::from_str(text).context("not a valid master configuration")?;
        anyhow::ensure!(!raw.topics.is_empty(), "no [[topic]] is configured");
        let mut names = HashSet::new();
        let mut topic_keys = HashSet::new();
        let mut topics = Vec::with_capacity(raw.topics.len());
        for topic in raw.topics {
            check_topic_name(&topic.name)?;
            anyhow::ensure!(
                names.insert(topic.name.clone()),
                "topic '{}' is configured twice",
                topic.name
            );
            let secret_path = base.join(&topic.secret_file);
            let secret_text = std::fs::read_to_string(&secret_path).with_context(|| {
                format!(
                    "reading the secret of topic '{}' from {}",
                    topic.name,
                    secret_path.display()
                )
            })?;
            let secret = TopicSecret::from_hex(&secret_text)
                .with_context(|| format!("{} is not a topic secret", secret_path.display()))?;
            anyhow::ensure!(
                topic_keys.insert(secret.topic()),
                "topic '{}' has the same key as another topic",
                topic.name
            );
            let writers = topic
                .writers
                .iter()
                .map(|w| {
                    w.parse::<WriterKey>()
                        .map_err(|e| anyhow::anyhow!("writer {w:?} of topic '{}': {e}", topic.name))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            anyhow::ensure!(
                topic.backups.len() >= MIN_BACKUPS,
                "topic '{}' has {} backup remote(s); at least {MIN_BACKUPS} are needed",
                topic.name,
                topic.backups.len()
            );
            let mut backups = Vec::with_capacity(topic.backups.len());
            for remote in &topic.backups {
                let remote = backup_url(remote, base)
                    .with_context(|| format!("backup {remote:?} of topic '{}'", topic.name))?;
                anyhow::ensure!(
                    !backups.contains(&remote),
                    "backup {remote} of topic '{}' is listed twice",
                    topic.name
                );
                backups.push(remote);
            }
            let default_branch = topic.default_branch.as_deref().unwrap_or("main");
            let default_branch = Branch::new(default_branch).with_context(|| {
                format!("topic {:?}: default_branch cannot be a branch", topic.name)
            })?;
            topics.push(TopicConfig {
                name: topic.name,
                secret,
                writers,
                backups,
                default_branch,
            });
        }
        if let Some(url) = &raw.listen.public_url {
            anyhow::ensure!(
                url.starts_with("http://") || url.starts_with("https://"),
                "public_url {url:?} is not an http:// or https:// URL"
            );
            anyhow::ensure!(
                tracker_free::is_master_url(url),
                "public_url {url:?} must be at most {} bytes of visible ASCII with a host: \
                 heads carry it to readers",
                tracker_free::MAX_MASTER_URL_LEN
            );
        }
        let limits = Limits {
            max_clock_skew: Duration::from_secs(raw.limits.max_clock_skew_secs.unwrap_or(600)),
            backup_wait: Duration::from_secs(raw.limits.backup_wait_secs.unwrap_or(60).max(1)),
            backup_retry_max: Duration::from_secs(
                raw.limits.backup_retry_max_secs.unwrap_or(30).max(1),
            ),
            fetch_stall: Duration::from_secs(raw.limits.fetch_stall_secs.unwrap_or(120).max(1)),
            republish: Duration::from_secs(raw.limits.republish_secs.unwrap_or(3600).max(1)),
            cache_bytes: raw
                .limits
                .cache_mb
                .unwrap_or(256)
                .saturating_mul(1024 * 1024),
            max_upload_bps: raw.limits.max_upload_kib.map(|k| k.saturating_mul(1024)),
            update_peers: raw
                .limits
                .update_peers
                .unwrap_or(crate::swarm::seeder::ORIGIN_UPDATE_PEERS)
                .max(1),
        };
        Ok(Self {
            data_dir: base.join(raw.data_dir),
            bittorrent: raw.listen.bittorrent,
            http: raw.listen.http,
            public_url: raw.listen.public_url,
            lsd: raw.listen.lsd.unwrap_or(true),
            dht: raw.dht,
            limits,
            topics,
        })
    }
}

/// A backup remote as git2 takes it: URLs as given, paths made absolute.
fn backup_url(remote: &str, base: &Path) -> anyhow::Result<String> {
    if remote.starts_with("http://") || remote.starts_with("https://") {
        return Ok(remote.to_owned());
    }
    anyhow::ensure!(
        !remote.contains("://") && !remote.starts_with("git@"),
        "only file paths and http(s):// remotes are supported"
    );
    anyhow::ensure!(!remote.is_empty(), "empty remote");
    let path = base.join(remote);
    path.to_str()
        .map(str::to_owned)
        .context("the path is not UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_secret(dir: &Path, name: &str) -> TopicSecret {
        let secret = TopicSecret::generate().expect("secret");
        std::fs::write(dir.join(name), secret.to_hex()).expect("write");
        secret
    }

    fn writer() -> String {
        crate::topic::writer_key::WriterSecret::generate()
            .expect("writer key")
            .public()
            .to_hex()
    }

    #[test]
    fn a_full_config_parses_with_paths_from_its_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = write_secret(dir.path(), "w.secret");
        let w = writer();
        let text = format!(
            r#"
data_dir = "data"
[listen]
bittorrent = "127.0.0.1:0"
http = "127.0.0.1:8080"
[dht]
bootstrap = ["127.0.0.1:6881"]
[limits]
backup_wait_secs = 5
[[topic]]
name = "world"
secret_file = "w.secret"
writers = ["{w}"]
backups = ["backup/a.git", "http://127.0.0.1:9/git/b.git"]
"#
        );
        let config = MasterConfig::parse(&text, dir.path()).expect("valid");
        assert_eq!(config.data_dir, dir.path().join("data"));
        assert_eq!(config.topics.len(), 1);
        let topic = &config.topics[0];
        assert_eq!(topic.secret.topic(), secret.topic());
        assert_eq!(topic.writers[0].to_hex(), w);
        assert_eq!(
            topic.backups[0],
            dir.path().join("backup/a.git").to_str().expect("utf-8")
        );
        assert_eq!(topic.backups[1], "http://127.0.0.1:9/git/b.git");
        assert_eq!(config.limits.backup_wait, Duration::from_secs(5));
        assert_eq!(
            topic.git_dir(&config.data_dir),
            dir.path().join("data/world.git")
        );
    }

    #[test]
    fn mistakes_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_secret(dir.path(), "w.secret");
        let w = writer();
        let head =
            "data_dir = \"d\"\n[listen]\nbittorrent = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\n";
        let topic = |name: &str, writers: &str, backups: &str| {
            format!(
                "[[topic]]\nname = \"{name}\"\nsecret_file = \"w.secret\"\nwriters = [{writers}]\nbackups = [{backups}]\n"
            )
        };
        let two = "\"a\", \"b\"";
        let cases = [
            (head.to_string(), "no [[topic]]"),
            (
                format!("{head}{}", topic("w", &format!("\"{w}\""), "\"a\"")),
                "at least 2",
            ),
            (format!("{head}{}", topic("../x", "", two)), "topic name"),
            (format!("{head}{}", topic("w", "\"00ff\"", two)), "writer"),
            (
                format!("{head}{}", topic("w", "", "\"a\", \"ssh://h/x\"")),
                "file paths and http",
            ),
            (
                format!("{head}{}", topic("w", "", "\"a\", \"a\"")),
                "listed twice",
            ),
            (
                format!("{head}{}{}", topic("w", "", two), topic("w", "", two)),
                "twice",
            ),
            (
                format!("{head}surprise = 1\n{}", topic("w", "", two)),
                "unknown field",
            ),
        ];
        for (text, expected) in cases {
            let error = MasterConfig::parse(&text, dir.path()).expect_err(&text);
            let message = format!("{error:#}");
            assert!(
                message.contains(expected),
                "{message:?} lacks {expected:?}\n{text}"
            );
        }
    }
}
