//! Command-line syntax. Parsed into these structs, then handed to
//! `commands::*` as plain option structs; nothing below this module sees clap.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Share Git repositories over BitTorrent, with no tracker.
#[derive(Debug, Parser)]
#[command(name = "xus", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Log more (repeat for more detail); logs go to stderr.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write the torrent of a commit and print its infohash and magnet link.
    Torrent(TorrentArgs),
    /// Seed commits straight from the object database until interrupted.
    Seed(SeedArgs),
    /// Download a commit into a repository, reusing every blob already there.
    Fetch(FetchArgs),
}

/// `xus torrent`.
#[derive(Debug, Args)]
pub struct TorrentArgs {
    /// The commit (any revision Git understands).
    #[arg(default_value = "HEAD")]
    pub rev: String,
    /// The repository.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// Where to write the `.torrent` (default: `<commit>.torrent`).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// Network options shared by commands that run a BitTorrent session.
#[derive(Debug, Args)]
pub struct NetArgs {
    /// Address to accept peers on; port 0 picks a free port.
    #[arg(long, default_value = "0.0.0.0:0")]
    pub listen: SocketAddr,
    /// A peer to dial (repeatable).
    #[arg(long = "peer", value_name = "ADDR")]
    pub peers: Vec<SocketAddr>,
    /// Cap on upload speed, KiB/s.
    #[arg(long, value_name = "KIB_PER_S")]
    pub max_upload: Option<u32>,
    /// Cap on download speed, KiB/s.
    #[arg(long, value_name = "KIB_PER_S")]
    pub max_download: Option<u32>,
}

impl NetArgs {
    /// The engine configuration these options describe.
    pub fn rates(&self) -> crate::engine::RateLimits {
        crate::engine::RateLimits {
            upload_bps: self.max_upload.map(|k| k.saturating_mul(1024)),
            download_bps: self.max_download.map(|k| k.saturating_mul(1024)),
        }
    }
}

/// `xus seed`.
#[derive(Debug, Args)]
pub struct SeedArgs {
    /// Commits to seed (default HEAD).
    pub revs: Vec<String>,
    /// Seed the tip of every local branch as well.
    #[arg(long)]
    pub all_branches: bool,
    /// The repository.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// Network options.
    #[command(flatten)]
    pub net: NetArgs,
    /// Memory for inflated blobs, in MiB.
    #[arg(long, default_value_t = 256)]
    pub cache_mb: u64,
}

/// `xus fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// A `.torrent` file, a magnet link or an infohash.
    pub source: String,
    /// The repository to fetch into (created when missing).
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// Create the repository bare when it does not exist.
    #[arg(long)]
    pub bare: bool,
    /// Point this branch at the fetched commit (fast-forward only, unless --force).
    #[arg(long)]
    pub branch: Option<String>,
    /// Move --branch even when it is not a fast-forward.
    #[arg(long)]
    pub force: bool,
    /// Fill the work tree with the fetched commit.
    #[arg(long)]
    pub checkout: bool,
    /// Give up when no peer sends the metadata within this many seconds.
    #[arg(long, default_value_t = 60)]
    pub metadata_timeout: u64,
    /// Give up when no new piece verifies for this many seconds (what was
    /// verified is kept; running again resumes).
    #[arg(long, default_value_t = 300)]
    pub stall_timeout: u64,
    /// Network options.
    #[command(flatten)]
    pub net: NetArgs,
}
