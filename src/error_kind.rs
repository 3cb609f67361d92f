//! The kinds of failure a command ends with, for the scripts that run xus
//! (see `commands::failure` for how an error is classified). Here, below
//! every layer, so that the library can say the kind of a failure no typed
//! error of its own carries.

use serde::Serialize;

/// What kind of failure ended a command. The names and exit statuses are
/// stable: scripts match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Anything not classified below (exit status 1).
    Failed,
    /// The command line, a file or a link given is wrong: retrying the same
    /// command cannot help (exit status 2, as for a usage error).
    BadInput,
    /// What was asked for does not exist: no head on the DHT, no such
    /// repository, commit or file (exit status 3).
    NotFound,
    /// Nobody could be reached or nothing arrived in time: no peer, a
    /// stalled download, a master or webseed that does not answer, a DHT
    /// write that found no node; retrying later may help (exit status 4).
    Network,
    /// A peer, a master or this repository's rules said no: a push refused
    /// or not a fast-forward, a head or data that failed verification
    /// (exit status 5).
    Refused,
    /// Stopped by Ctrl-C or SIGTERM before it finished (exit status 130).
    Interrupted,
}

impl ErrorKind {
    /// Every kind, in exit-status order.
    pub const ALL: [Self; 6] = [
        Self::Failed,
        Self::BadInput,
        Self::NotFound,
        Self::Network,
        Self::Refused,
        Self::Interrupted,
    ];

    /// The process's exit status for this kind.
    pub fn exit_status(self) -> u8 {
        match self {
            Self::Failed => 1,
            Self::BadInput => 2,
            Self::NotFound => 3,
            Self::Network => 4,
            Self::Refused => 5,
            Self::Interrupted => 130,
        }
    }

    /// The stable name (as in JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::BadInput => "bad_input",
            Self::NotFound => "not_found",
            Self::Network => "network",
            Self::Refused => "refused",
            Self::Interrupted => "interrupted",
        }
    }
}

/// An error that states its kind: for failures no typed error carries.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// The kind.
    pub kind: ErrorKind,
    /// What happened.
    pub message: String,
}

/// An [`anyhow::Error`] of `kind` saying `message`.
pub fn failure(kind: ErrorKind, message: impl Into<String>) -> anyhow::Error {
    Failure {
        kind,
        message: message.into(),
    }
    .into()
}
