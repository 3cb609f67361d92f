//! Talking to one backup remote through libgit2: listing what it holds,
//! network timeouts, and how its URL is shown.

use std::collections::HashMap;
use std::sync::Once;

use anyhow::Context;
use git2::{Direction, Oid};

use super::BACKED_UP;

/// Connects, lists the backed-up refs the remote advertises, disconnects.
pub(super) fn list(
    remote: &mut git2::Remote<'_>,
    direction: Direction,
    url: &str,
) -> anyhow::Result<HashMap<String, Oid>> {
    remote
        .connect(direction)
        .with_context(|| format!("connecting to {url}"))?;
    let refs = remote
        .list()
        .with_context(|| format!("listing {url}"))?
        .iter()
        .filter(|head| BACKED_UP.iter().any(|p| head.name().starts_with(p)))
        .map(|head| (head.name().to_owned(), head.oid()))
        .collect();
    let _ = remote.disconnect();
    Ok(refs)
}

/// `url` with the secret of its user info (`https://user:token@host/`,
/// `https://token@host/`) replaced by `***`: remotes are shown in status, answers and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        // `user:password@`: the user may show. A lone `token@` is the
        // secret itself.
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => format!("{scheme}://***@{host}{path}"),
        },
        None => url.to_owned(),
    }
}

/// Remotes are URLs or paths; only `http(s)://` URLs are not paths here.
pub(super) fn is_path(url: &str) -> bool {
    !url.contains("://")
}

/// A remote that does not answer must fail an attempt, not hang a worker:
/// libgit2's HTTP and socket timeouts, set once per process.
pub(super) fn set_network_timeouts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: libgit2 global options, set once before any transport is
        // used by this process's backup workers.
        let result = unsafe {
            git2::opts::set_server_connect_timeout_in_milliseconds(5_000)
                .and_then(|()| git2::opts::set_server_timeout_in_milliseconds(60_000))
        };
        if let Err(error) = result {
            tracing::warn!(%error, "cannot set libgit2 network timeouts");
        }
    });
}
