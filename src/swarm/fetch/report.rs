//! What a fetch tells whoever watches it. The library never prints: it
//! hands typed [`FetchEvent`]s and progress to a [`FetchReport`]; the CLI
//! prints them on stderr, a topic master logs them through `tracing`
//! ([`LogReport`]), so its log filter controls them.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::git::object::ObjectId;
use crate::swarm::engine::Progress;
use crate::torrent::info_hash::InfoHash;

/// Something worth telling about a fetch under way. `Display` gives the
/// line a person reads (the CLI prints exactly that); with `--json` it is
/// serialized as one object whose `event` is the variant's snake-case name
/// and whose other keys are its fields (ids in hex, durations in seconds).
/// Those names are stable: scripts read them.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum FetchEvent {
    /// A head was refused (bad signature, rollback, malformed value).
    HeadRefused {
        /// `xus://TOPIC/BRANCH`.
        url: String,
        /// Why.
        reason: String,
    },
    /// No DHT node answered with a head; the one seen before is used.
    HeadUnreachable {
        /// `xus://TOPIC/BRANCH`.
        url: String,
        /// Nodes asked.
        queried: usize,
        /// Nodes that answered.
        responded: usize,
    },
    /// The head to fetch.
    HeadResolved {
        /// `xus://TOPIC/BRANCH`.
        url: String,
        /// The commit it names (hex).
        commit: String,
        /// Its torrent (hex).
        info_hash: String,
        /// The head's sequence number.
        seq: i64,
        /// Since the swarm started.
        #[serde(serialize_with = "seconds")]
        after: Duration,
    },
    /// The commit is already in the repository: nothing to download.
    AlreadyHave {
        /// The commit.
        commit: ObjectId,
    },
    /// No webseed served `<name>.torrent`; peers are asked instead.
    NoTorrentFromWebseeds {
        /// The torrent's name (the commit id).
        name: String,
        /// The last error, with its causes.
        error: String,
    },
    /// The metadata came from a webseed.
    MetadataFromWebseed {
        /// The torrent.
        info_hash: InfoHash,
        /// Where from.
        url: String,
    },
    /// Peers are asked for the metadata (BEP 9).
    AskingForMetadata {
        /// The torrent.
        info_hash: InfoHash,
        /// Peers given, or `None` when they come from the DHT.
        peers: Option<usize>,
    },
    /// The first peer turned up on the DHT.
    FirstDhtPeer {
        /// Since the swarm started.
        #[serde(serialize_with = "seconds")]
        after: Duration,
    },
    /// A peer sent the metadata.
    MetadataReceived {
        /// Since the swarm started.
        #[serde(serialize_with = "seconds")]
        after: Duration,
    },
    /// With no peer known, the webseeds serve from the start.
    WebseedsOnly {
        /// How many.
        count: usize,
    },
    /// A peer or URL the request named that is not dialled (see
    /// [`crate::swarm::dial_policy`]).
    NotDialled {
        /// The address or URL, cut to 80 characters.
        what: String,
        /// Why.
        why: String,
    },
    /// What will be downloaded and what is already here.
    Plan {
        /// The commit.
        commit: ObjectId,
        /// Payload bytes.
        total: u64,
        /// Files in the torrent.
        files: usize,
        /// Bytes of blobs already in Git.
        reused: u64,
        /// Bytes rebuilt from older versions of changed files.
        patched: u64,
        /// Bytes that verified at start.
        verified: u64,
    },
    /// Webseeds join the download.
    WebseedsJoin {
        /// Because no peer is connected (else: peers are slow).
        no_peer: bool,
        /// The bridge's loopback address.
        bridge: SocketAddr,
    },
    /// The download is complete.
    Downloaded {
        /// Bytes from peers (webseed bytes excluded).
        from_peers: u64,
        /// Bytes that were here already.
        reused: u64,
    },
    /// What the webseeds sent.
    WebseedBytes {
        /// Bytes in all.
        bytes: u64,
        /// Failed HTTP requests.
        http_errors: u64,
        /// Bytes per URL.
        per_url: Vec<(String, u64)>,
    },
    /// The update torrent to try: the reader has its `from` commit.
    UpdatePlan {
        /// The commit the update starts from (here).
        from: ObjectId,
        /// The update torrent.
        info_hash: InfoHash,
    },
    /// An update was downloaded and every object it carries rebuilt and
    /// checked against its Git id (in a quarantine: nothing written yet).
    UpdateApplied {
        /// Payload bytes.
        payload: u64,
        /// Objects rebuilt.
        objects: usize,
        /// Their bytes, uncompressed.
        object_bytes: u64,
    },
    /// The commit torrent rebuilt from the updates matches the signed head;
    /// their objects are now in the repository.
    UpdateVerified {
        /// The head's commit.
        commit: ObjectId,
    },
    /// No update the head lists starts from a commit here: the topic
    /// master is asked for one from the commit the branch is at.
    UpdateFromMaster {
        /// The commit the update is to start from (here), or the null id
        /// for the whole history.
        from: ObjectId,
        /// The request.
        url: String,
    },
    /// The master sent no usable update; the commit torrent is fetched
    /// instead.
    MasterUpdateFailed {
        /// The request.
        url: String,
        /// Why, with causes.
        reason: String,
    },
    /// The update could not be used; the commit torrent is fetched instead.
    UpdateFailed {
        /// The update torrent.
        info_hash: InfoHash,
        /// Why, with causes.
        reason: String,
    },
    /// Every byte this fetch received, by what carried it.
    Transferred(Transferred),
    /// How long the two halves took.
    Timing {
        /// Download.
        #[serde(serialize_with = "seconds")]
        download: Duration,
        /// Verification and import into Git.
        #[serde(serialize_with = "seconds")]
        import: Duration,
    },
}

/// A duration as seconds, to the microsecond.
fn seconds<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64((duration.as_micros() as f64) / 1e6)
}

impl fmt::Display for FetchEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HeadRefused { url, reason } => {
                write!(f, "warning: refused a head of {url}: {reason}")
            }
            Self::HeadUnreachable {
                url,
                queried,
                responded,
            } => write!(
                f,
                "warning: no DHT node holds a head of {url} ({queried} asked, {responded} answered); using the one seen before"
            ),
            Self::HeadResolved {
                url,
                commit,
                info_hash,
                seq,
                after,
            } => write!(
                f,
                "head of {url}: commit {commit} torrent {info_hash} seq {seq} (resolved after {} ms)",
                after.as_millis()
            ),
            Self::AlreadyHave { commit } => {
                write!(f, "commit {commit} is already in the repository")
            }
            Self::NoTorrentFromWebseeds { name, error } => {
                write!(
                    f,
                    "note: no webseed served {name}.torrent ({error}); asking peers"
                )
            }
            Self::MetadataFromWebseed { info_hash, url } => {
                write!(f, "metadata of {info_hash} read from {url}")
            }
            Self::AskingForMetadata { info_hash, peers } => match peers {
                Some(n) => write!(f, "asking {n} peer(s) for the metadata of {info_hash}"),
                None => write!(
                    f,
                    "asking peers found on the DHT for the metadata of {info_hash}"
                ),
            },
            Self::FirstDhtPeer { after } => write!(
                f,
                "timing: first peer found on the DHT after {} ms",
                after.as_millis()
            ),
            Self::MetadataReceived { after } => write!(
                f,
                "timing: metadata received from a connected peer after {} ms",
                after.as_millis()
            ),
            Self::NotDialled { what, why } => write!(f, "not dialling {what}: {why}"),
            Self::WebseedsOnly { count } => {
                write!(f, "no peer known: downloading from {count} webseed(s)")
            }
            Self::Plan {
                commit,
                total,
                files,
                reused,
                patched,
                verified,
            } => write!(
                f,
                "commit {commit}: {total} bytes in {files} files; {reused} bytes of local blobs reused, {patched} bytes patched from older versions, {verified} bytes already verified, {} to download",
                total.saturating_sub(*verified)
            ),
            Self::WebseedsJoin { no_peer, .. } => write!(
                f,
                "{}: using webseeds as well",
                if *no_peer {
                    "no peer connected"
                } else {
                    "peers are slow"
                }
            ),
            Self::Downloaded { from_peers, reused } => write!(
                f,
                "downloaded {from_peers} bytes from peers; reused {reused} bytes already here"
            ),
            Self::WebseedBytes {
                bytes,
                http_errors,
                per_url,
            } => {
                write!(
                    f,
                    "downloaded {bytes} bytes from webseeds ({http_errors} failed HTTP requests)"
                )?;
                for (url, bytes) in per_url {
                    write!(f, "\n  {bytes} bytes from {url}")?;
                }
                Ok(())
            }
            Self::UpdatePlan { from, info_hash } if *from == crate::torrent::update::NOTHING => {
                write!(
                    f,
                    "history torrent {info_hash}: the branch's history, from the swarm"
                )
            }
            Self::UpdatePlan { from, info_hash } => {
                write!(
                    f,
                    "update torrent {info_hash} from commit {from}, which is here"
                )
            }
            Self::UpdateApplied {
                payload,
                objects,
                object_bytes,
            } => write!(
                f,
                "update applied: {payload} bytes rebuilt {objects} objects ({object_bytes} bytes)"
            ),
            Self::UpdateVerified { commit } => write!(
                f,
                "update verified: the commit torrent of {commit} rebuilt from it matches the signed head"
            ),
            Self::UpdateFromMaster { from, url } if *from == crate::torrent::update::NOTHING => {
                write!(f, "asking the topic master for the whole history: {url}")
            }
            Self::UpdateFromMaster { from, url } => write!(
                f,
                "no listed update starts from commit {from}, which is here; asking the topic master: {url}"
            ),
            Self::MasterUpdateFailed { url, reason } => write!(
                f,
                "warning: no update from {url} ({reason}); fetching the commit torrent"
            ),
            Self::UpdateFailed { info_hash, reason } => write!(
                f,
                "warning: update torrent {info_hash} not used ({reason}); fetching the commit torrent"
            ),
            Self::Transferred(t) => write!(
                f,
                "bytes: update {}, commit {}, webseed {}, metadata {}",
                t.update, t.commit, t.webseed, t.metadata
            ),
            Self::Timing { download, import } => write!(
                f,
                "timing: download {:.3} s, import into Git {:.3} s",
                download.as_secs_f64(),
                import.as_secs_f64()
            ),
        }
    }
}

impl FetchEvent {
    /// Whether the event is a warning (a log shows it at warn level).
    pub fn is_warning(&self) -> bool {
        matches!(
            self,
            Self::HeadRefused { .. }
                | Self::HeadUnreachable { .. }
                | Self::UpdateFailed { .. }
                | Self::MasterUpdateFailed { .. }
        )
    }
}

/// Bytes one fetch received, by what carried them (see
/// [`FetchEvent::Transferred`]): what a benchmark compares with `git fetch`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Transferred {
    /// Update payload bytes: from peers (update torrents), or from the
    /// topic master when the reader was behind every update a head lists.
    pub update: u64,
    /// Commit torrent payload bytes from peers.
    pub commit: u64,
    /// Payload bytes from webseeds (HTTP).
    pub webseed: u64,
    /// Info dictionaries and `.torrent` files.
    pub metadata: u64,
}

impl Transferred {
    /// Their sum.
    pub fn total(&self) -> u64 {
        self.update + self.commit + self.webseed + self.metadata
    }
}

/// Counts [`Transferred`] while a fetch runs (its tasks share it).
#[derive(Debug, Default)]
pub struct Tally {
    /// See [`Transferred::update`].
    pub update: AtomicU64,
    /// See [`Transferred::commit`].
    pub commit: AtomicU64,
    /// See [`Transferred::webseed`].
    pub webseed: AtomicU64,
    /// See [`Transferred::metadata`].
    pub metadata: AtomicU64,
}

impl Tally {
    /// Adds `bytes` to `counter` (one of this tally's fields).
    pub fn add(&self, counter: &AtomicU64, bytes: u64) {
        counter.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn snapshot(&self) -> Transferred {
        Transferred {
            update: self.update.load(Ordering::Relaxed),
            commit: self.commit.load(Ordering::Relaxed),
            webseed: self.webseed.load(Ordering::Relaxed),
            metadata: self.metadata.load(Ordering::Relaxed),
        }
    }
}

/// Receives what a fetch reports. Shared by the tasks of one fetch.
pub trait FetchReport: Send + Sync {
    /// A step of the fetch.
    fn event(&self, event: FetchEvent);

    /// Where the download stands, a few times a second while it runs.
    fn progress(&self, progress: &Progress) {
        let _ = progress;
    }

    /// The download ended (complete or given up); a progress display
    /// clears itself here.
    fn download_ended(&self, complete: bool) {
        let _ = complete;
    }
}

/// Logs every event through `tracing` (info, or warn for warnings): what a
/// daemon such as a topic master uses, so that its log filter decides.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogReport;

impl FetchReport for LogReport {
    fn event(&self, event: FetchEvent) {
        if event.is_warning() {
            tracing::warn!("{event}");
        } else {
            tracing::info!("{event}");
        }
    }

    fn progress(&self, progress: &Progress) {
        tracing::trace!(
            have = progress.have,
            total = progress.total,
            peers = progress.peers,
            "progress"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `event` name and fields of each event, as README documents them:
    /// names and fields are a promise to scripts. The match has no
    /// wildcard, so a new event does not compile until it is listed here.
    fn promised(event: &FetchEvent) -> (&'static str, &'static [&'static str]) {
        match event {
            FetchEvent::HeadRefused { .. } => ("head_refused", &["url", "reason"]),
            FetchEvent::HeadUnreachable { .. } => {
                ("head_unreachable", &["url", "queried", "responded"])
            }
            FetchEvent::HeadResolved { .. } => (
                "head_resolved",
                &["url", "commit", "info_hash", "seq", "after"],
            ),
            FetchEvent::AlreadyHave { .. } => ("already_have", &["commit"]),
            FetchEvent::NoTorrentFromWebseeds { .. } => {
                ("no_torrent_from_webseeds", &["name", "error"])
            }
            FetchEvent::MetadataFromWebseed { .. } => {
                ("metadata_from_webseed", &["info_hash", "url"])
            }
            FetchEvent::AskingForMetadata { .. } => {
                ("asking_for_metadata", &["info_hash", "peers"])
            }
            FetchEvent::FirstDhtPeer { .. } => ("first_dht_peer", &["after"]),
            FetchEvent::MetadataReceived { .. } => ("metadata_received", &["after"]),
            FetchEvent::WebseedsOnly { .. } => ("webseeds_only", &["count"]),
            FetchEvent::NotDialled { .. } => ("not_dialled", &["what", "why"]),
            FetchEvent::Plan { .. } => (
                "plan",
                &["commit", "total", "files", "reused", "patched", "verified"],
            ),
            FetchEvent::WebseedsJoin { .. } => ("webseeds_join", &["no_peer", "bridge"]),
            FetchEvent::Downloaded { .. } => ("downloaded", &["from_peers", "reused"]),
            FetchEvent::WebseedBytes { .. } => {
                ("webseed_bytes", &["bytes", "http_errors", "per_url"])
            }
            FetchEvent::UpdatePlan { .. } => ("update_plan", &["from", "info_hash"]),
            FetchEvent::UpdateApplied { .. } => {
                ("update_applied", &["payload", "objects", "object_bytes"])
            }
            FetchEvent::UpdateVerified { .. } => ("update_verified", &["commit"]),
            FetchEvent::UpdateFromMaster { .. } => ("update_from_master", &["from", "url"]),
            FetchEvent::MasterUpdateFailed { .. } => ("master_update_failed", &["url", "reason"]),
            FetchEvent::UpdateFailed { .. } => ("update_failed", &["info_hash", "reason"]),
            FetchEvent::Transferred(_) => {
                ("transferred", &["update", "commit", "webseed", "metadata"])
            }
            FetchEvent::Timing { .. } => ("timing", &["download", "import"]),
        }
    }

    fn every_event() -> Vec<FetchEvent> {
        let id = ObjectId([0xab; 20]);
        let ih = InfoHash([0xcd; 20]);
        let text = || "x".to_owned();
        let after = Duration::from_millis(1500);
        vec![
            FetchEvent::HeadRefused {
                url: text(),
                reason: text(),
            },
            FetchEvent::HeadUnreachable {
                url: text(),
                queried: 8,
                responded: 0,
            },
            FetchEvent::HeadResolved {
                url: text(),
                commit: id.to_hex(),
                info_hash: ih.to_hex(),
                seq: 7,
                after,
            },
            FetchEvent::AlreadyHave { commit: id },
            FetchEvent::NoTorrentFromWebseeds {
                name: text(),
                error: text(),
            },
            FetchEvent::MetadataFromWebseed {
                info_hash: ih,
                url: text(),
            },
            FetchEvent::AskingForMetadata {
                info_hash: ih,
                peers: Some(2),
            },
            FetchEvent::FirstDhtPeer { after },
            FetchEvent::MetadataReceived { after },
            FetchEvent::WebseedsOnly { count: 1 },
            FetchEvent::NotDialled {
                what: text(),
                why: text(),
            },
            FetchEvent::Plan {
                commit: id,
                total: 10,
                files: 1,
                reused: 0,
                patched: 0,
                verified: 0,
            },
            FetchEvent::WebseedsJoin {
                no_peer: true,
                bridge: "127.0.0.1:1".parse().expect("address"),
            },
            FetchEvent::Downloaded {
                from_peers: 10,
                reused: 0,
            },
            FetchEvent::WebseedBytes {
                bytes: 10,
                http_errors: 0,
                per_url: vec![(text(), 10)],
            },
            FetchEvent::UpdatePlan {
                from: id,
                info_hash: ih,
            },
            FetchEvent::UpdateApplied {
                payload: 1,
                objects: 1,
                object_bytes: 1,
            },
            FetchEvent::UpdateVerified { commit: id },
            FetchEvent::UpdateFromMaster {
                from: id,
                url: text(),
            },
            FetchEvent::MasterUpdateFailed {
                url: text(),
                reason: text(),
            },
            FetchEvent::UpdateFailed {
                info_hash: ih,
                reason: text(),
            },
            FetchEvent::Transferred(Transferred {
                update: 0,
                commit: 10,
                webseed: 0,
                metadata: 1,
            }),
            FetchEvent::Timing {
                download: after,
                import: after,
            },
        ]
    }

    #[test]
    fn every_fetch_event_has_its_documented_json_name_and_fields() {
        let readme = include_str!("../../../README.md");
        let events = every_event();
        let mut names = std::collections::HashSet::new();
        for event in &events {
            let (name, fields) = promised(event);
            assert!(names.insert(name), "{name} listed twice");
            let value = serde_json::to_value(event).expect("serializable");
            let object = value.as_object().expect("an object");
            assert_eq!(object.get("event").and_then(|e| e.as_str()), Some(name));
            let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
            keys.retain(|k| *k != "event");
            keys.sort_unstable();
            let mut expected = fields.to_vec();
            expected.sort_unstable();
            assert_eq!(keys, expected, "fields of {name}");
            assert!(
                readme.contains(&format!("`{name}`")),
                "README does not document the {name} event"
            );
            // Ids in hex, durations in seconds.
            if let Some(after) = object.get("after") {
                assert_eq!(after.as_f64(), Some(1.5), "{name}");
            }
            for key in ["commit", "info_hash", "from"] {
                if let Some(id) = object.get(key).and_then(|v| v.as_str()) {
                    assert_eq!(id.len(), 40, "{name}.{key}");
                }
            }
        }
        assert_eq!(names.len(), events.len());
    }
}
