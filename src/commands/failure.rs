//! How a failed command ends, for the scripts that run xus: its
//! [`ErrorKind`], read from the error's causes (the typed errors of the
//! library say what went wrong: a magnet that does not parse, a fetch with
//! no peer, a branch that would not fast-forward; a failure no typed error
//! carries says its kind with [`failure`]), the exit status that goes with
//! it, and (with `--json`) the error as one JSON object on stderr.

pub use crate::error_kind::{ErrorKind, Failure, failure};
use crate::swarm::fetch::FetchError;
use crate::torrent::import::ImportError;

/// The kind of `error`: that of the outermost cause whose type says one,
/// else [`ErrorKind::Failed`].
pub fn classify(error: &anyhow::Error) -> ErrorKind {
    error.chain().find_map(kind_of).unwrap_or(ErrorKind::Failed)
}

fn kind_of(cause: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    use ErrorKind::*;
    if let Some(failure) = cause.downcast_ref::<Failure>() {
        return Some(failure.kind);
    }
    if let Some(error) = cause.downcast_ref::<FetchError>() {
        return match error {
            FetchError::NoPeer { .. } | FetchError::Stalled { .. } => Some(Network),
            FetchError::HeadNotFound { .. } | FetchError::MissingParent { .. } => Some(NotFound),
            FetchError::WrongCommit { .. } => Some(Refused),
            FetchError::Import(import) => import_kind(import),
            // Transparent: the wrapped error's own causes are not in the
            // outer chain, so look through it.
            FetchError::Other(inner) => inner.chain().find_map(kind_of),
        };
    }
    if let Some(import) = cause.downcast_ref::<ImportError>() {
        return import_kind(import);
    }
    let bad_input = cause.is::<crate::torrent::magnet::MagnetError>()
        || cause.is::<crate::torrent::format::FormatError>()
        || cause.is::<crate::torrent::bencode::DecodeError>()
        || cause.is::<crate::topic::writer_key::WriterKeyError>()
        || cause.is::<xus_codec::hex::HexError>()
        || cause.is::<tracker_free::BranchError>()
        || cause.is::<tracker_free::TopicError>()
        || cause.is::<tracker_free::ConfigError>()
        || cause.is::<clap::Error>();
    if bad_input {
        return Some(BadInput);
    }
    if cause.is::<tracker_free::HeadError>() || cause.is::<crate::torrent::update::UpdateError>() {
        return Some(Refused);
    }
    if cause.is::<tracker_free::PublishError>()
        || cause.is::<tracker_free::AnnounceError>()
        || cause.is::<reqwest::Error>()
        || cause.is::<tokio::time::error::Elapsed>()
    {
        return Some(Network);
    }
    if let Some(error) = cause.downcast_ref::<git2::Error>() {
        return (error.code() == git2::ErrorCode::NotFound).then_some(NotFound);
    }
    if let Some(error) = cause.downcast_ref::<std::io::Error>() {
        use std::io::ErrorKind as Io;
        return match error.kind() {
            Io::NotFound => Some(NotFound),
            Io::ConnectionRefused
            | Io::ConnectionReset
            | Io::ConnectionAborted
            | Io::TimedOut
            | Io::HostUnreachable
            | Io::NetworkUnreachable
            | Io::AddrNotAvailable => Some(Network),
            Io::Interrupted => Some(Interrupted),
            Io::InvalidFilename | Io::IsADirectory | Io::NotADirectory | Io::InvalidInput => {
                Some(BadInput)
            }
            _ => None,
        };
    }
    None
}

/// A branch that would not move, or bytes that failed verification, are
/// refused; a bad branch name or a bare repository asked to check out are
/// bad input; reading or writing the repository is left unclassified.
fn import_kind(error: &ImportError) -> Option<ErrorKind> {
    match error {
        ImportError::NotFastForward { .. }
        | ImportError::AncestryUnknown { .. }
        | ImportError::BlobMismatch { .. } => Some(ErrorKind::Refused),
        ImportError::BadBranch(..) | ImportError::Bare => Some(ErrorKind::BadInput),
        ImportError::Missing(_) => Some(ErrorKind::NotFound),
        _ => None,
    }
}

/// The error as the JSON object `--json` prints on stderr:
/// `{"event":"error","kind":"network","exit_status":4,"message":"…","causes":["…"]}`.
pub fn to_json(error: &anyhow::Error) -> String {
    let kind = classify(error);
    let value = serde_json::json!({
        "event": "error",
        "kind": kind,
        "exit_status": kind.exit_status(),
        "message": format!("{error:#}"),
        "causes": error.chain().map(|c| c.to_string()).collect::<Vec<_>>(),
    });
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses_are_distinct_and_names_stable() {
        let statuses: std::collections::HashSet<u8> =
            ErrorKind::ALL.iter().map(|k| k.exit_status()).collect();
        assert_eq!(statuses.len(), ErrorKind::ALL.len());
        for kind in ErrorKind::ALL {
            assert_eq!(
                serde_json::to_value(kind).expect("json"),
                serde_json::Value::String(kind.as_str().into())
            );
        }
    }

    #[test]
    fn the_outermost_typed_cause_decides() {
        let no_peer = anyhow::Error::from(FetchError::NoPeer { missing: 5 }).context("fetching");
        assert_eq!(classify(&no_peer), ErrorKind::Network);
        let io = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::NotFound))
            .context("opening the repository");
        assert_eq!(classify(&io), ErrorKind::NotFound);
        let said = failure(ErrorKind::Refused, "the master refused the push").context("push");
        assert_eq!(classify(&said), ErrorKind::Refused);
        assert_eq!(classify(&anyhow::anyhow!("something")), ErrorKind::Failed);
        let wrapped = anyhow::Error::from(FetchError::Other(failure(
            ErrorKind::Network,
            "no peer sent the metadata",
        )));
        assert_eq!(classify(&wrapped), ErrorKind::Network);
        let json: serde_json::Value = serde_json::from_str(&to_json(&said)).expect("json");
        assert_eq!(json["kind"], "refused");
        assert_eq!(json["exit_status"], 5);
        assert_eq!(json["causes"][1], "the master refused the push");
    }
}
