//! `xus webseed`: serve commits to BitTorrent clients over HTTP (BEP 19),
//! straight from the object database.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use webseed::ServerOptions;

use crate::git::blobs::BlobSource;
use crate::git::object::ObjectId;
use crate::git::repo;
use crate::swarm::webseed_server::{base_url, bind, local_url};
use crate::swarm::webseed_source::GitWebseed;
use crate::torrent::cache;
use crate::torrent::format::CommitTorrent;

/// Options of `xus webseed`.
#[derive(Debug, Clone)]
pub struct WebseedOptions {
    /// Repository path.
    pub repo: PathBuf,
    /// Revisions to serve; HEAD when empty and `all_branches` is off.
    pub revs: Vec<String>,
    /// Also serve every local branch tip.
    pub all_branches: bool,
    /// Where to accept HTTP connections.
    pub listen: SocketAddr,
    /// The URL clients reach the server by (behind a proxy, say), put in the
    /// `url-list` of served torrents; `http://<Host header>/` when `None`.
    pub public_url: Option<String>,
    /// Bound on inflated blob bytes kept in memory.
    pub cache_bytes: u64,
}

/// Serves until Ctrl-C or SIGTERM. Prints `serving <commit> <infohash>` per
/// commit, then `webseed <url>`: the base URL to give torrents as their
/// `url-list` (clients request `<url><commit>/<path>`).
///
/// # Errors
///
/// A revision that names no commit, a torrent that cannot be built, an
/// unusable `--public-url`, or an address that cannot be bound; all before
/// anything is served.
pub async fn run(options: WebseedOptions, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let public_url = options.public_url.as_deref().map(base_url).transpose()?;
    let repo_path = options.repo.clone();
    let revs = options.revs.clone();
    let all_branches = options.all_branches;
    let (git_dir, torrents) = tokio::task::spawn_blocking(move || {
        let repo = repo::open(&repo_path)?;
        let commits = named_commits(&repo, &revs, all_branches)?;
        let torrents = commits
            .into_iter()
            .map(|commit| {
                cache::load_or_build(&repo, commit)
                    .with_context(|| format!("building the torrent of commit {commit}"))
            })
            .collect::<anyhow::Result<Vec<CommitTorrent>>>()?;
        anyhow::Ok((repo.path().to_owned(), torrents))
    })
    .await??;

    let blobs = BlobSource::open(&git_dir, options.cache_bytes)?;
    let source = Arc::new(GitWebseed::new(blobs));
    let listener = bind(options.listen).await?;
    let addr = listener
        .local_addr()
        .context("reading the webseed's listening address")?;
    let shutdown = super::shutdown_signal();
    for torrent in torrents {
        let (commit, info_hash) = (torrent.commit, torrent.info_hash);
        source.publish(Arc::new(torrent));
        writeln!(out, "serving {commit} {info_hash}")?;
    }
    let url = public_url.clone().unwrap_or_else(|| local_url(addr));
    writeln!(out, "webseed {url}")?;
    out.flush()?;
    let server_options = ServerOptions {
        public_url,
        ..ServerOptions::default()
    };
    webseed::serve(listener, source, server_options, shutdown)
        .await
        .with_context(|| format!("serving the webseed on {addr}"))?;
    Ok(())
}

/// The commits a user named: each revision, every branch tip with
/// `all_branches`, HEAD when nothing else is named; without repeats.
fn named_commits(
    repo: &git2::Repository,
    revs: &[String],
    all_branches: bool,
) -> anyhow::Result<Vec<ObjectId>> {
    let mut commits = Vec::new();
    if revs.is_empty() && !all_branches {
        commits.push(repo::resolve_commit(repo, "HEAD")?);
    }
    for rev in revs {
        commits.push(repo::resolve_commit(repo, rev)?);
    }
    if all_branches {
        commits.extend(repo::all_branches(repo)?.into_iter().map(|(_, id)| id));
    }
    let mut seen = std::collections::HashSet::new();
    commits.retain(|c| seen.insert(*c));
    Ok(commits)
}
