//! `xus push`: hand a commit to a topic's master (the writer's side is
//! [`crate::master::push_client`]).

use std::io::Write;

use super::failure::{ErrorKind, failure};
use super::report::print_json;

pub use crate::master::push_client::PushOptions;
use crate::master::push_client::{self, Offer, PushProgress};
use crate::topic::push_answer::PushAnswer;

/// Pushes; prints `pushed <topic>/<branch> <commit> seq <n>` once the
/// master holds the commit. A push that is not a fast-forward prints
/// `kept <ref>` (where the master keeps the commit) and fails. A commit the
/// branch already contains prints `contained <topic>/<branch> <commit> in
/// <tip>` and succeeds: nothing was lost, nothing moved.
///
/// With `json`, every line is a JSON object: `{"event":"offered",…}` once
/// the request is signed, `{"event":"progress","uploaded":N}` about once a
/// second while the master downloads, and the master's answer as
/// `{"event":"push","result":"accepted"|"contained"|"not-fast-forward"|…}`
/// with the answer's fields.
pub async fn run(
    options: PushOptions,
    json: bool,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let answer = push_client::push(&options, &CommandProgress { json }).await?;
    let mut out: Box<dyn Write + Send + '_> = if json {
        let mut event = serde_json::to_value(&answer)?;
        event["event"] = "push".into();
        print_json(&event);
        Box::new(std::io::sink())
    } else {
        Box::new(out)
    };
    let out = &mut out;
    match answer {
        PushAnswer::Accepted {
            topic,
            branch,
            commit,
            seq,
            backups,
            already,
            ..
        } => {
            if already {
                eprintln!("the master already had {branch} at {commit}");
            }
            eprintln!("backed up to: {}", backups.join(", "));
            writeln!(out, "pushed {topic}/{branch} {commit} seq {seq}")?;
            out.flush()?;
            Ok(())
        }
        PushAnswer::Contained {
            topic,
            branch,
            commit,
            current,
        } => {
            eprintln!(
                "the master's {branch} at {current} already contains {commit}; nothing moved"
            );
            writeln!(out, "contained {topic}/{branch} {commit} in {current}")?;
            out.flush()?;
            Ok(())
        }
        PushAnswer::NotFastForward {
            branch,
            commit,
            current,
            kept_ref,
            ..
        } => {
            writeln!(out, "kept {kept_ref} {commit}")?;
            out.flush()?;
            Err(failure(
                ErrorKind::Refused,
                format!(
                    "not a fast-forward: {branch} is at {current} on the master, which {commit} does not descend from; the master keeps your commit as {kept_ref}. Fetch {branch}, merge, and push again"
                ),
            ))
        }
        PushAnswer::Refused { message } => Err(failure(
            ErrorKind::Refused,
            format!("the master refused the push: {message}"),
        )),
        PushAnswer::Invalid { message } => Err(failure(
            ErrorKind::Refused,
            format!("the master rejected the request: {message}"),
        )),
        // The master says retrying is safe: something on its side (a
        // backup, the DHT) did not answer.
        PushAnswer::Failed { message } => Err(failure(
            ErrorKind::Network,
            format!("the push did not complete: {message}"),
        )),
    }
}

/// `xus push`'s progress: the offer on stderr as text; with `--json`, the
/// offer and the bytes uploaded as events on stdout.
struct CommandProgress {
    json: bool,
}

impl PushProgress for CommandProgress {
    fn offered(&self, offer: &Offer) {
        if self.json {
            print_json(&serde_json::json!({
                "event": "offered",
                "tip": offer.tip,
                "topic": offer.topic,
                "branch": offer.branch,
                "master": offer.master,
                "commits": offer.commits,
            }));
        } else {
            eprintln!(
                "pushing {} to {}/{} at {} ({} commit(s) offered)",
                offer.tip, offer.topic, offer.branch, offer.master, offer.commits
            );
        }
    }

    fn uploaded(&self, bytes: u64) {
        if self.json {
            print_json(&serde_json::json!({"event": "progress", "uploaded": bytes}));
        }
    }
}
