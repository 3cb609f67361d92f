//! `xus torrent`: the torrent of one commit, written to a file.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use crate::{cache, repo};

/// Options of `xus torrent`.
#[derive(Debug, Clone)]
pub struct TorrentOptions {
    /// Repository path.
    pub repo: PathBuf,
    /// Revision.
    pub rev: String,
    /// Output file; `<commit>.torrent` when `None`.
    pub output: Option<PathBuf>,
}

/// Builds the torrent and prints `commit`, `infohash`, `magnet` and `torrent` lines.
pub fn run(options: &TorrentOptions, out: &mut dyn Write) -> anyhow::Result<()> {
    let repo = repo::open(&options.repo)?;
    let commit = repo::resolve_commit(&repo, &options.rev)?;
    let torrent = cache::load_or_build(&repo, commit)
        .with_context(|| format!("building the torrent of commit {commit}"))?;
    let path = options
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{commit}.torrent")));
    std::fs::write(&path, torrent.torrent_file(&[]))
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(out, "commit {commit}")?;
    writeln!(out, "infohash {}", torrent.info_hash)?;
    writeln!(out, "magnet {}", torrent.magnet(&[]))?;
    writeln!(out, "torrent {}", path.display())?;
    Ok(())
}
