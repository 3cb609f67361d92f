//! `xus seed`: serve commits to the swarm straight from the object database.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use crate::engine::{Engine, EngineConfig};
use crate::format::CommitTorrent;
use crate::gitobj::ObjectId;
use crate::storage::{Backing, BlobSource, GitStorageFactory};
use crate::{cache, repo};

/// Options of `xus seed`.
#[derive(Debug, Clone)]
pub struct SeedOptions {
    /// Repository path.
    pub repo: PathBuf,
    /// Revisions to seed; HEAD when empty and `all_branches` is off.
    pub revs: Vec<String>,
    /// Also seed every local branch tip.
    pub all_branches: bool,
    /// Where to accept peers.
    pub listen: SocketAddr,
    /// Peers to dial.
    pub peers: Vec<SocketAddr>,
    /// Speed caps.
    pub rates: crate::engine::RateLimits,
    /// Bound on inflated blob bytes kept in memory.
    pub cache_bytes: u64,
}

/// How each file of a torrent is read when every blob is local.
pub fn local_backings(torrent: &CommitTorrent) -> Vec<Backing> {
    let commit_raw: Arc<[u8]> = Arc::from(torrent.commit_raw.as_slice());
    torrent
        .files
        .iter()
        .map(|f| match f.blob {
            Some(blob) => Backing::Blob(blob),
            None => Backing::Inline(commit_raw.clone()),
        })
        .collect()
}

/// Seeds until Ctrl-C or SIGTERM. Prints `seeding <commit> <infohash> <magnet>`
/// per commit, then `listening <addr>` once everything is being served.
pub async fn run(options: SeedOptions, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let repo_path = options.repo.clone();
    let revs = options.revs.clone();
    let all_branches = options.all_branches;
    let (git_dir, torrents) = tokio::task::spawn_blocking(move || {
        let repo = repo::open(&repo_path)?;
        let mut commits: Vec<ObjectId> = Vec::new();
        if revs.is_empty() && !all_branches {
            commits.push(repo::resolve_commit(&repo, "HEAD")?);
        }
        for rev in &revs {
            commits.push(repo::resolve_commit(&repo, rev)?);
        }
        if all_branches {
            commits.extend(repo::all_branches(&repo)?.into_iter().map(|(_, id)| id));
        }
        let mut seen = std::collections::HashSet::new();
        commits.retain(|c| seen.insert(*c));
        let torrents = commits
            .into_iter()
            .map(|c| {
                cache::load_or_build(&repo, c)
                    .with_context(|| format!("building the torrent of commit {c}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        anyhow::Ok((repo.path().to_owned(), torrents))
    })
    .await??;

    let source = BlobSource::open(&git_dir, options.cache_bytes)?;
    let engine = Engine::start(&EngineConfig {
        listen: options.listen,
        work_dir: git_dir.join("xus").join("session"),
        rates: options.rates,
    })
    .await?;
    let addr = engine
        .listen_addr()
        .context("BitTorrent session is not listening")?;
    let advertised: Vec<SocketAddr> = if addr.ip().is_unspecified() {
        Vec::new()
    } else {
        vec![addr]
    };
    for torrent in &torrents {
        let storage =
            GitStorageFactory::new(torrent.info_hash, source.clone(), local_backings(torrent));
        let handle = engine
            .add(torrent.torrent_file(&[]), storage, &options.peers)
            .await
            .with_context(|| format!("seeding commit {}", torrent.commit))?;
        let progress = Engine::progress(&handle);
        anyhow::ensure!(
            progress.finished,
            "only {} of {} bytes of commit {} verify against its torrent; is the torrent cache stale?",
            progress.have,
            progress.total,
            torrent.commit
        );
        writeln!(
            out,
            "seeding {} {} {}",
            torrent.commit,
            torrent.info_hash,
            torrent.magnet(&advertised)
        )?;
    }
    writeln!(out, "listening {addr}")?;
    out.flush()?;
    super::shutdown_signal().await;
    tracing::info!("stopping");
    engine.stop().await;
    Ok(())
}
