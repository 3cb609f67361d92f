//! What the long-running commands (`seed`, `follow`, `publish`, a fetch
//! that stays to seed) tell whoever reads their stdout: one [`Event`] per
//! line, as the text a person reads or, with `--json`, as one JSON object
//! a script parses. The library hands events to an [`Output`]; the choice
//! of form is made once, by the command.

use std::fmt;
use std::io::{self, Write};
use std::net::SocketAddr;

use serde::Serialize;

use crate::git::object::ObjectId;
use crate::torrent::info_hash::InfoHash;

/// One thing a service did that its reader may act on. Serialized with its
/// snake-case name as `event` and the fields below (ids in hex); the text
/// form is the line README documents for each command. Names and fields
/// are stable: scripts match on them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A commit's torrent is served (to peers, and on the webseed).
    Seeding {
        commit: ObjectId,
        info_hash: InfoHash,
        magnet: String,
    },
    /// An update torrent from `from` to `to` is built or served; `magnet`
    /// when it is served here.
    Update {
        from: ObjectId,
        to: ObjectId,
        info_hash: InfoHash,
        bytes: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        magnet: Option<String>,
    },
    /// A history torrent (an update from nothing) up to `commit` is built.
    History {
        commit: ObjectId,
        info_hash: InfoHash,
        bytes: u64,
    },
    /// The webseed serving every seeded commit over HTTP.
    Webseed { url: String },
    /// Where Prometheus metrics are served.
    Metrics { url: String },
    /// The BitTorrent address peers reach; the service is ready.
    Listening { address: SocketAddr },
    /// A fetched commit is served for a while before the process ends.
    SeedingFor {
        commit: ObjectId,
        info_hash: InfoHash,
        address: Option<SocketAddr>,
        seconds: u64,
    },
    /// The service stops; what it gave the swarm since it started.
    Uploaded { bytes: u64 },
    /// `follow` started: the head it reads and the branch it moves.
    Following { url: String, branch: String },
    /// A commit was fetched, verified and written.
    Fetched {
        commit: ObjectId,
        info_hash: InfoHash,
    },
    /// A local branch moved to a signed head.
    Updated {
        branch: String,
        commit: ObjectId,
        seq: i64,
    },
    /// A signed head was stored on the DHT.
    Published {
        url: String,
        commit: ObjectId,
        info_hash: InfoHash,
        seq: i64,
    },
    /// The BEP 46 link naming a topic's branch.
    Magnet { link: String },
    /// Something went wrong that the service survives (it goes on).
    Warning { message: String },
    /// `xus verify` found something broken: `what` is `missing_object`,
    /// `corrupt_object`, `damaged_pack`, `changed_file` or `missing_file`.
    Broken {
        what: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<ObjectId>,
        #[serde(skip_serializing_if = "Option::is_none")]
        kind: Option<&'static str>,
        /// Where the commit uses it, or the damaged file.
        path: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// `xus verify` checked a commit; `files` is null when the work tree
    /// was not compared.
    Verified {
        commit: ObjectId,
        objects: usize,
        bytes: u64,
        files: Option<usize>,
        problems: usize,
    },
    /// A repair moved a damaged file out of the object database (kept).
    SetAside { path: String },
    /// A repair copied the readable objects of damaged packs into a fresh
    /// pack; `unreadable` were lost here.
    Salvaged { objects: usize, unreadable: usize },
    /// A repair checked a work-tree file out again; `backup` holds the file
    /// it replaced.
    Restored {
        path: String,
        backup: Option<String>,
    },
    /// A repair left the repository whole against the commit.
    Repaired { commit: ObjectId },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Seeding {
                commit,
                info_hash,
                magnet,
            } => write!(f, "seeding {commit} {info_hash} {magnet}"),
            Event::Update {
                from,
                to,
                info_hash,
                bytes,
                magnet,
            } => {
                write!(f, "update {from}..{to} {info_hash} {bytes} bytes")?;
                match magnet {
                    Some(magnet) => write!(f, " {magnet}"),
                    None => Ok(()),
                }
            }
            Event::History {
                commit,
                info_hash,
                bytes,
            } => write!(f, "history {commit} {info_hash} {bytes} bytes"),
            Event::Webseed { url } => write!(f, "webseed {url}"),
            Event::Metrics { url } => write!(f, "metrics {url}"),
            Event::Listening { address } => write!(f, "listening {address}"),
            Event::SeedingFor {
                commit,
                info_hash,
                address,
                seconds,
            } => {
                let address =
                    address.map_or_else(|| "no listening address".to_owned(), |a| a.to_string());
                write!(
                    f,
                    "seeding {commit} {info_hash} on {address} for {seconds} s"
                )
            }
            Event::Uploaded { bytes } => write!(f, "uploaded {bytes} bytes"),
            Event::Following { url, branch } => write!(f, "following {url} into {branch}"),
            Event::Fetched { commit, info_hash } => write!(f, "fetched {commit} {info_hash}"),
            Event::Updated {
                branch,
                commit,
                seq,
            } => write!(f, "updated {branch} {commit} seq {seq}"),
            Event::Published {
                url,
                commit,
                info_hash,
                seq,
            } => write!(f, "published {url} {commit} {info_hash} seq {seq}"),
            Event::Magnet { link } => write!(f, "magnet {link}"),
            Event::Warning { message } => write!(f, "warning: {message}"),
            Event::Broken {
                what,
                id,
                kind,
                path,
                detail,
            } => {
                write!(f, "{}", what.replace('_', " "))?;
                if let Some(id) = id {
                    write!(f, " {id}")?;
                }
                if let Some(kind) = kind {
                    write!(f, " ({kind})")?;
                }
                if !path.is_empty() {
                    write!(f, " {path}")?;
                }
                match detail {
                    Some(detail) => write!(f, ": {detail}"),
                    None => Ok(()),
                }
            }
            Event::Verified {
                commit,
                objects,
                bytes,
                files,
                problems,
            } => {
                write!(f, "verified {commit}: {objects} objects ({bytes} bytes), ")?;
                match files {
                    Some(files) => write!(f, "{files} work-tree files")?,
                    None => write!(f, "work tree not compared")?,
                }
                write!(f, ", {problems} problem(s)")
            }
            Event::SetAside { path } => write!(f, "set aside {path}"),
            Event::Salvaged {
                objects,
                unreadable,
            } => write!(
                f,
                "salvaged {objects} objects from damaged packs, {unreadable} unreadable"
            ),
            Event::Restored { path, backup } => {
                write!(f, "restored {path}")?;
                match backup {
                    Some(backup) => write!(f, " (the replaced file is kept as {backup})"),
                    None => Ok(()),
                }
            }
            Event::Repaired { commit } => write!(f, "repaired {commit}"),
        }
    }
}

/// Where a service's events go: a writer (stdout in the binary, a buffer
/// in tests) and the form to write them in.
pub struct Output<'a> {
    writer: &'a mut (dyn Write + Send),
    json: bool,
}

impl<'a> Output<'a> {
    /// Events as JSON lines when `json`, as text lines otherwise.
    pub fn new(writer: &'a mut (dyn Write + Send), json: bool) -> Self {
        Self { writer, json }
    }

    /// Events as the text lines a person reads.
    pub fn text(writer: &'a mut (dyn Write + Send)) -> Self {
        Self::new(writer, false)
    }

    /// Whether events go out as JSON.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Writes one event as one line and flushes it, so a reader waiting
    /// for it (a script, a test) sees it at once.
    pub fn emit(&mut self, event: &Event) -> io::Result<()> {
        if self.json {
            serde_json::to_writer(&mut *self.writer, event).map_err(io::Error::other)?;
            writeln!(self.writer)?;
        } else {
            writeln!(self.writer, "{event}")?;
        }
        self.writer.flush()
    }

    /// Tells of a problem the service survives: through `tracing` as text
    /// (stdout keeps only results; the log shows warnings by default), as a
    /// `warning` event with `--json` (a script reads one stream). A closed
    /// stdout only loses it.
    pub fn warn(&mut self, message: impl fmt::Display) {
        if self.json {
            let _ = self.emit(&Event::Warning {
                message: message.to_string(),
            });
        } else {
            tracing::warn!("{message}");
        }
    }

    /// The writer itself, for the lines of a service that has no JSON
    /// form (the master's).
    pub fn writer(&mut self) -> &mut (dyn Write + Send) {
        self.writer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(byte: u8) -> ObjectId {
        ObjectId::from_slice(&[byte; 20]).expect("20 bytes")
    }

    #[test]
    fn an_event_is_one_line_of_text_or_one_json_object() {
        let event = Event::Updated {
            branch: "main".into(),
            commit: id(0xab),
            seq: 7,
        };
        let mut text = Vec::new();
        Output::text(&mut text).emit(&event).expect("write");
        assert_eq!(
            String::from_utf8(text).expect("utf8"),
            format!("updated main {} seq 7\n", "ab".repeat(20))
        );
        let mut json = Vec::new();
        Output::new(&mut json, true).emit(&event).expect("write");
        let line = String::from_utf8(json).expect("utf8");
        assert_eq!(line.lines().count(), 1);
        let value: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert_eq!(value["event"], "updated");
        assert_eq!(value["commit"], "ab".repeat(20));
        assert_eq!(value["seq"], 7);
    }

    #[test]
    fn an_update_names_its_magnet_only_when_served() {
        let built = Event::Update {
            from: id(1),
            to: id(2),
            info_hash: InfoHash::from_hex(&"cd".repeat(20)).expect("hex"),
            bytes: 10,
            magnet: None,
        };
        assert!(built.to_string().ends_with(" 10 bytes"));
        let value = serde_json::to_value(&built).expect("json");
        assert!(value.get("magnet").is_none());
    }
}
