//! `xus fetch`: download a commit into a repository.
//!
//! Blobs already in the object database back their files directly, so the
//! pieces they cover verify at start-up and are never downloaded. Missing
//! bytes are staged in `<git dir>/xus/partial/<infohash>` and survive an
//! interruption: the next run re-checks them and downloads only what is
//! missing. Nothing enters Git until every piece is verified and every blob
//! hashes to the id its tree names.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::engine::{Engine, EngineConfig, Progress, TorrentHandle};
use crate::format::{self, CommitTorrent};
use crate::gitobj::ObjectId;
use crate::import::{self, RefOptions};
use crate::magnet::{self, Magnet};
use crate::storage::{Backing, BlobSource, DEFAULT_CACHE_BYTES, GitStorageFactory, StagedFile};
use crate::{repo, scavenge};

/// Options of `xus fetch`.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// `.torrent` path, magnet link or infohash.
    pub source: String,
    /// Repository to fetch into.
    pub repo: PathBuf,
    /// Create it bare when missing.
    pub bare: bool,
    /// What to do with refs afterwards.
    pub refs: RefOptions,
    /// Where to accept peers.
    pub listen: SocketAddr,
    /// Peers to dial.
    pub peers: Vec<SocketAddr>,
    /// Speed caps.
    pub rates: crate::engine::RateLimits,
    /// How long to wait for metadata from peers.
    pub metadata_timeout: Duration,
    /// Give up after this long without a new verified piece.
    pub stall_timeout: Duration,
}

/// What the user named.
enum Source {
    Torrent(Box<CommitTorrent>),
    InfoHash(ObjectId, Vec<SocketAddr>),
}

fn parse_source(text: &str) -> anyhow::Result<Source> {
    if text.starts_with("magnet:") {
        let m = Magnet::parse(text)?;
        return Ok(Source::InfoHash(m.info_hash, m.peers));
    }
    let path = Path::new(text);
    if !path.exists()
        && let Some(ih) = magnet::parse_info_hash(text)
    {
        return Ok(Source::InfoHash(ih, Vec::new()));
    }
    let meta = std::fs::metadata(path).with_context(|| {
        format!("{text:?} is not a magnet link, an infohash or a readable .torrent file")
    })?;
    anyhow::ensure!(
        meta.len() <= format::MAX_TORRENT_FILE_BYTES as u64,
        "{text} is {} bytes, larger than any valid commit torrent",
        meta.len()
    );
    let bytes = std::fs::read(path).with_context(|| format!("reading {text}"))?;
    let info = format::info_from_torrent_file(&bytes)
        .with_context(|| format!("{text} is not a valid .torrent file"))?;
    let torrent = CommitTorrent::parse(info)
        .with_context(|| format!("{text} is not a valid xus commit torrent"))?;
    Ok(Source::Torrent(Box::new(torrent)))
}

/// Downloads, verifies and imports; prints `fetched <commit> <infohash>`.
pub async fn run(options: FetchOptions, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    // Everything that can be refused is refused before anything is created.
    let source = parse_source(&options.source)?;
    import::check_ref_options(&options.refs, options.bare)?;
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let engine = Engine::start(&EngineConfig {
        listen: options.listen,
        work_dir: scratch.path().to_owned(),
        rates: options.rates,
    })
    .await?;
    let result = fetch_with(&engine, source, &options, out).await;
    engine.stop().await;
    result
}

async fn fetch_with(
    engine: &Engine,
    source: Source,
    options: &FetchOptions,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let mut peers = options.peers.clone();
    let torrent = match source {
        Source::Torrent(torrent) => *torrent,
        Source::InfoHash(ih, magnet_peers) => {
            peers.extend(magnet_peers);
            anyhow::ensure!(
                !peers.is_empty(),
                "no peer to ask for the metadata of {ih}: give one with --peer ADDR"
            );
            eprintln!("asking {} peer(s) for the metadata of {ih}", peers.len());
            let (info, seen) = engine
                .resolve_metadata(ih, &peers, options.metadata_timeout)
                .await?;
            peers.extend(seen);
            let torrent = CommitTorrent::parse(&info)
                .context("the metadata peers sent is not a valid xus commit torrent")?;
            anyhow::ensure!(
                torrent.info_hash == ih,
                "peers sent metadata for {} instead of {ih}",
                torrent.info_hash
            );
            torrent
        }
    };
    peers.sort();
    peers.dedup();

    let repo_path = options.repo.clone();
    let (bare, checkout) = (options.bare, options.refs.checkout);
    let git_dir = tokio::task::spawn_blocking(move || {
        let repo = repo::open_or_init(&repo_path, bare)?;
        if checkout && repo.is_bare() {
            return Err(import::ImportError::Bare.into());
        }
        anyhow::Ok(repo.path().to_owned())
    })
    .await??;
    let git_dir = git_dir.as_path();
    let repo = git2::Repository::open(git_dir)?;
    let already = repo.odb()?.exists(torrent.commit.to_git());
    if already {
        eprintln!("commit {} is already in the repository", torrent.commit);
    } else {
        let started = std::time::Instant::now();
        download(engine, &torrent, git_dir, &peers, options).await?;
        let downloaded = started.elapsed();
        let git_dir = git_dir.to_owned();
        let torrent = torrent.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let repo = git2::Repository::open(&git_dir)?;
            let payload = payload_path(&git_dir, torrent.info_hash);
            import::import(&repo, &torrent, &payload)?;
            let _ = std::fs::remove_file(&payload);
            Ok(())
        })
        .await??;
        eprintln!(
            "timing: download {:.3} s, import into Git {:.3} s",
            downloaded.as_secs_f64(),
            (started.elapsed() - downloaded).as_secs_f64()
        );
    }
    let git_dir = git_dir.to_owned();
    let commit = torrent.commit;
    let refs = options.refs.clone();
    tokio::task::spawn_blocking(move || {
        let repo = git2::Repository::open(&git_dir)?;
        import::set_refs(&repo, commit, &refs)?;
        anyhow::Ok(())
    })
    .await??;
    writeln!(out, "fetched {} {}", torrent.commit, torrent.info_hash)?;
    out.flush()?;
    Ok(())
}

/// The staging file of a torrent's downloaded bytes.
fn payload_path(git_dir: &Path, info_hash: ObjectId) -> PathBuf {
    git_dir.join("xus").join("partial").join(info_hash.to_hex())
}

/// For each file, whether its blob must be downloaded (is not in Git).
fn missing_files(repo: &git2::Repository, torrent: &CommitTorrent) -> anyhow::Result<Vec<bool>> {
    let odb = repo.odb()?;
    Ok(torrent
        .files
        .iter()
        .map(|f| f.blob.is_some_and(|blob| !repo::has_object(&odb, blob)))
        .collect())
}

async fn download(
    engine: &Engine,
    torrent: &CommitTorrent,
    git_dir: &Path,
    peers: &[SocketAddr],
    options: &FetchOptions,
) -> anyhow::Result<()> {
    let source = BlobSource::open(git_dir, DEFAULT_CACHE_BYTES)?;
    let repo = git2::Repository::open(git_dir)?;
    let missing = missing_files(&repo, torrent)?;
    drop(repo);
    let payload = Arc::new(StagedFile::new(payload_path(git_dir, torrent.info_hash)));
    let patched = if payload.path().exists() {
        // An interrupted fetch: the engine re-checks what is there.
        scavenge::Recovered::default()
    } else {
        let (git_dir, torrent, missing) = (git_dir.to_owned(), torrent.clone(), missing.clone());
        let payload = payload.clone();
        tokio::task::spawn_blocking(move || {
            let repo = git2::Repository::open(&git_dir)?;
            scavenge::prefill(&repo, &torrent, &missing, &payload)
        })
        .await??
    };
    let commit_raw: Arc<[u8]> = Arc::from(torrent.commit_raw.as_slice());
    let mut reused = 0u64;
    let backings: Vec<Backing> = torrent
        .files
        .iter()
        .zip(&missing)
        .map(|(f, &missing)| match f.blob {
            None => Backing::Inline(commit_raw.clone()),
            Some(_) if missing => Backing::Staged {
                file: payload.clone(),
                base: f.offset,
            },
            Some(blob) => {
                reused += f.length;
                Backing::Blob(blob)
            }
        })
        .collect();
    let storage = GitStorageFactory::new(torrent.info_hash, source, backings);
    let handle = engine
        .add(torrent.torrent_file(&[]), storage, peers)
        .await
        .with_context(|| format!("starting the download of {}", torrent.commit))?;
    let start = Engine::progress(&handle);
    eprintln!(
        "commit {}: {} bytes in {} files; {} bytes of local blobs reused, {} bytes patched from older versions, {} bytes already verified, {} to download",
        torrent.commit,
        start.total,
        torrent.files.len(),
        reused,
        patched.bytes,
        start.have,
        start.total - start.have
    );
    if !start.finished {
        anyhow::ensure!(
            !peers.is_empty(),
            "{} bytes are missing and no peer is known: give one with --peer ADDR",
            start.total - start.have
        );
        watch(&handle, options.stall_timeout).await?;
    }
    let end = Engine::progress(&handle);
    eprintln!(
        "downloaded {} bytes from peers; reused {} bytes already here",
        end.fetched, start.have
    );
    engine.remove(torrent.info_hash).await?;
    Ok(())
}

/// Reports progress until the torrent is complete, or fails when no piece
/// arrives for `stall_timeout` (what was verified stays for the next run).
async fn watch(handle: &TorrentHandle, stall_timeout: Duration) -> anyhow::Result<()> {
    let mut last_have = Engine::progress(handle).have;
    let mut last_change = std::time::Instant::now();
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(Engine::progress(handle).total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut done = std::pin::pin!(Engine::wait_complete(handle));
    let mut tick = tokio::time::interval(Duration::from_millis(if bar.is_some() {
        200
    } else {
        2000
    }));
    loop {
        tokio::select! {
            result = &mut done => {
                if let Some(bar) = &bar {
                    bar.finish_and_clear();
                }
                return result;
            }
            _ = tick.tick() => {
                let p: Progress = Engine::progress(handle);
                if p.have != last_have {
                    last_have = p.have;
                    last_change = std::time::Instant::now();
                } else if last_change.elapsed() >= stall_timeout {
                    if let Some(bar) = &bar {
                        bar.abandon();
                    }
                    anyhow::bail!(
                        "no progress for {} s with {} peers: {} of {} bytes verified and kept; run again to resume",
                        stall_timeout.as_secs(),
                        p.peers,
                        p.have,
                        p.total
                    );
                }
                match &bar {
                    Some(bar) => {
                        bar.set_position(p.have);
                        bar.set_message(format!("{} peers", p.peers));
                    }
                    None => eprintln!("progress {}/{} bytes, {} peers", p.have, p.total, p.peers),
                }
            }
        }
    }
}
