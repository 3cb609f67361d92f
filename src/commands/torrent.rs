//! `xus torrent`: the torrent of one commit, or the update torrent from
//! one commit to another, written to a file.

use std::io::Write;

use super::report::print_json;
use std::path::PathBuf;

use anyhow::Context;

use crate::git::object::ObjectId;
use crate::git::repo;
use crate::torrent::cache;
use crate::torrent::update::{UpdateSettings, UpdateStore};

/// Options of `xus torrent`.
#[derive(Debug, Clone)]
pub struct TorrentOptions {
    /// Repository path.
    pub repo: PathBuf,
    /// Revision.
    pub rev: String,
    /// Output file; `<commit>.torrent` when `None`.
    pub output: Option<PathBuf>,
    /// Webseed base URLs (BEP 19): the `url-list` of the file and `ws=` in
    /// the magnet. Outside the info dictionary, so the infohash is the same
    /// with or without them.
    pub webseeds: Vec<String>,
    /// Make the update torrent from this revision to `rev` instead.
    pub from: Option<String>,
    /// Print one JSON object (`--json`): `{"event":"torrent",…}` or
    /// `{"event":"update_torrent",…}`.
    pub json: bool,
}

/// Builds the torrent and prints `commit`, `infohash`, `magnet` and `torrent` lines.
///
/// # Errors
///
/// A webseed that is not an `http://` or `https://` URL (checked first), a
/// revision that names no commit, a commit that cannot become a torrent, or
/// an output file that cannot be written.
pub fn run(options: &TorrentOptions, out: &mut dyn Write) -> anyhow::Result<()> {
    for url in &options.webseeds {
        // Checked only: the URL goes into the torrent as the user wrote it.
        crate::swarm::webseed_server::base_url(url)?;
    }
    let repo = repo::open(&options.repo)?;
    let commit = repo::resolve_commit(&repo, &options.rev)?;
    if let Some(from) = &options.from {
        let from = repo::resolve_commit(&repo, from)?;
        return update(&repo, from, commit, options, out);
    }
    let torrent = cache::load_or_build(&repo, commit)
        .with_context(|| format!("building the torrent of commit {commit}"))?;
    let path = options
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{commit}.torrent")));
    std::fs::write(&path, torrent.torrent_file(&options.webseeds))
        .with_context(|| format!("writing {}", path.display()))?;
    let magnet = torrent.magnet_with_webseeds(&[], &options.webseeds);
    if options.json {
        print_json(&serde_json::json!({
            "event": "torrent",
            "commit": commit,
            "info_hash": torrent.info_hash,
            "magnet": magnet,
            "torrent": path.display().to_string(),
        }));
        return Ok(());
    }
    writeln!(out, "commit {commit}")?;
    writeln!(out, "infohash {}", torrent.info_hash)?;
    writeln!(out, "magnet {magnet}")?;
    writeln!(out, "torrent {}", path.display())?;
    Ok(())
}

/// `xus torrent --from`: builds (or loads) the update torrent into the
/// repository's update store and writes its `.torrent`; prints `update`,
/// `infohash`, `payload` (bytes), `magnet` and `torrent` lines.
fn update(
    repo: &git2::Repository,
    from: ObjectId,
    to: ObjectId,
    options: &TorrentOptions,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let stored = UpdateStore::of(repo.path())
        .load_or_build(repo, from, to, &UpdateSettings::default())
        .with_context(|| format!("building the update from {from} to {to}"))?;
    let torrent = &stored.torrent;
    let path = options
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.torrent", torrent.name())));
    std::fs::write(&path, torrent.torrent_file(&options.webseeds))
        .with_context(|| format!("writing {}", path.display()))?;
    if options.json {
        print_json(&serde_json::json!({
            "event": "update_torrent",
            "from": from,
            "to": to,
            "info_hash": torrent.info_hash(),
            "payload": torrent.length,
            "magnet": torrent.magnet(&[]),
            "torrent": path.display().to_string(),
        }));
        return Ok(());
    }
    writeln!(out, "update {from} {to}")?;
    writeln!(out, "infohash {}", torrent.info_hash())?;
    writeln!(out, "payload {}", torrent.length)?;
    writeln!(out, "magnet {}", torrent.magnet(&[]))?;
    writeln!(out, "torrent {}", path.display())?;
    Ok(())
}
