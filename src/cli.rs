//! Command-line syntax. Parsed into these structs, then handed to
//! `commands::*` as plain option structs; nothing below this module sees clap.

use std::net::{Ipv4Addr, SocketAddr};
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
    /// Machine-readable output: an error ends as one JSON object on stderr
    /// (`{"event":"error","kind":…,"exit_status":…,"message":…}`); `xus
    /// master status` prints `/status`'s JSON.
    #[arg(long, global = true)]
    pub json: bool,
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
    /// Make and list topics: key pairs whose owner signs branch heads.
    #[command(subcommand)]
    Topic(TopicCommand),
    /// Sign a branch head into the DHT and announce its torrent.
    Publish(PublishArgs),
    /// Keep a local branch at a topic's head, fetching each new head.
    Follow(FollowArgs),
    /// Run DHT nodes (a bootstrap node, or a whole private DHT).
    #[command(subcommand)]
    Dht(DhtCommand),
    /// Serve commits to BitTorrent clients over HTTP (a BEP 19 webseed),
    /// straight from the object database, until interrupted.
    Webseed(WebseedArgs),
    /// This machine's writer key, which signs pushes to topic masters.
    #[command(subcommand)]
    Writer(WriterCommand),
    /// Hand a commit to a topic's master, which moves the branch, backs it
    /// up and publishes the head before answering.
    Push(PushArgs),
    /// Run a topic master (`--config FILE`), or show a running one's state.
    Master(MasterArgs),
    /// What a repository follows (local vs published heads, peers on the
    /// DHT) and what a `xus seed` on it serves.
    Status(StatusArgs),
    /// Check a repository and its work tree against a commit (missing or
    /// corrupt objects, damaged packs, edited files); with --repair, fetch
    /// only what is broken from the swarm or a webseed.
    Verify(VerifyArgs),
    /// Remove what killed xus processes left in a repository (temporary
    /// packs of an interrupted import); fetches do it too.
    Gc(GcArgs),
    /// Print the shell completion script of `xus`, generated from these
    /// definitions so it always matches the options this binary accepts.
    Completions(CompletionsArgs),
    /// Print the man page of `xus`, or write one page per subcommand into
    /// a directory: for packagers and for `man xus` on machines without
    /// this README.
    Man(ManArgs),
}

/// `xus completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `xus man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write `xus.1` and a page per subcommand (`xus-fetch.1`,
    /// `xus-topic-new.1`, ...) into this directory (created when missing)
    /// instead of printing the top-level page.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// `xus gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// The repository.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
}

/// `xus status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The repository.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// Only what this machine knows: no DHT lookups.
    #[arg(long)]
    pub offline: bool,
    /// DHT options.
    #[command(flatten)]
    pub dht: DhtArgs,
}

/// `xus verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The commit to check against: a branch, a ref or an id (read from
    /// the ref, so a broken commit object can still be named).
    #[arg(default_value = "HEAD")]
    pub rev: String,
    /// The repository.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// Set broken objects aside (kept under `.git/xus/damaged/`), fetch
    /// them back, and check edited or deleted files out again (the edited
    /// ones are kept there too).
    #[arg(long)]
    pub repair: bool,
    /// The commit's torrent, when no followed head names the commit and no
    /// torrent of it is cached: a magnet link, a `.torrent` file or an
    /// infohash.
    #[arg(long)]
    pub source: Option<String>,
    /// A webseed to download from as well (repeatable).
    #[arg(long = "webseed", value_name = "URL")]
    pub webseeds: Vec<String>,
    /// Give up when no peer sends the metadata within this many seconds.
    #[arg(long, default_value_t = 60)]
    pub metadata_timeout: u64,
    /// Give up when no new piece verifies for this many seconds.
    #[arg(long, default_value_t = 300)]
    pub stall_timeout: u64,
    /// Network options.
    #[command(flatten)]
    pub net: NetArgs,
    /// Never use the DHT: only --peer, magnet peers and webseeds.
    #[arg(long)]
    pub no_dht: bool,
    /// DHT options.
    #[command(flatten)]
    pub dht: DhtArgs,
}

/// `xus writer`.
#[derive(Debug, Subcommand)]
pub enum WriterCommand {
    /// Make this machine's writer key; prints the public key for the
    /// master's configuration.
    New {
        /// Where to keep the secret (default: `writer.secret` in xus's home).
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Print the public key.
    Show {
        /// The secret key file (default: `writer.secret` in xus's home).
        #[arg(long)]
        key: Option<PathBuf>,
    },
}

/// `xus push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The commit (default: the tip of --branch).
    pub rev: Option<String>,
    /// The master's base URL (default: `master` under `[push]` in config.toml).
    #[arg(long, value_name = "URL")]
    pub master: Option<String>,
    /// Topic, by the master's name for it or its id (default: the master's
    /// only topic).
    #[arg(long)]
    pub topic: Option<String>,
    /// Branch to move (default: the current branch).
    #[arg(long)]
    pub branch: Option<String>,
    /// The repository.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// The writer's secret key file (default: `writer.secret` in xus's home).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Address to seed the pushed commits on while the master takes them.
    #[arg(long, default_value = "0.0.0.0:0")]
    pub listen: SocketAddr,
    /// Seconds to wait for the master's answer.
    #[arg(long, default_value_t = 900)]
    pub timeout: u64,
}

/// `xus master`.
#[derive(Debug, Args)]
#[command(subcommand_negates_reqs = true)]
pub struct MasterArgs {
    /// The master's configuration (TOML: data directory, listen addresses,
    /// DHT, topics with their writers and backup remotes; see the README).
    #[arg(long, required = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Start a topic with no history when its repository is missing and no
    /// backup remote can be read (a new topic whose backups do not exist
    /// yet). Without it the master refuses, rather than fork a history it
    /// cannot see.
    #[arg(long)]
    pub init: bool,
    /// Ask a running master instead of running one.
    #[command(subcommand)]
    pub action: Option<MasterAction>,
}

/// `xus master status`.
#[derive(Debug, Subcommand)]
pub enum MasterAction {
    /// Print each topic's branches and each backup remote's lag.
    Status {
        /// The running master's configuration (its HTTP address is read there).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

/// `xus webseed`.
#[derive(Debug, Args)]
pub struct WebseedArgs {
    /// Commits to serve (default HEAD); nothing else in the repository is.
    pub revs: Vec<String>,
    /// Serve the tip of every local branch as well.
    #[arg(long)]
    pub all_branches: bool,
    /// The repository.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// Address to accept HTTP connections on; port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// The URL clients reach this server by, put in the `url-list` of the
    /// torrents it serves (default: `http://<Host header>/`).
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Memory for inflated blobs, in MiB.
    #[arg(long, default_value_t = 256)]
    pub cache_mb: u64,
}

/// DHT options of the commands that use the DHT; each overrides the `[dht]`
/// section of `config.toml` in xus's home.
#[derive(Debug, Args, Clone)]
pub struct DhtArgs {
    /// DHT node to join through (repeatable). Default: `config.toml`, else
    /// the public mainline routers.
    #[arg(long = "bootstrap", value_name = "HOST:PORT")]
    pub bootstrap: Vec<String>,
    /// UDP port of this machine's DHT node (default: a free port).
    #[arg(long, value_name = "PORT")]
    pub dht_port: Option<u16>,
    /// IPv4 address the DHT node binds (default: all; the DHT is IPv4
    /// only, peers and webseeds may be IPv6).
    #[arg(long, value_name = "ADDR")]
    pub dht_bind: Option<Ipv4Addr>,
    /// How long one DHT request may take, in milliseconds (default 2000).
    #[arg(long, value_name = "MS")]
    pub dht_timeout_ms: Option<u64>,
}

impl DhtArgs {
    /// As the plain options the commands take.
    pub fn options(&self) -> crate::swarm::discovery::DhtOptions {
        crate::swarm::discovery::DhtOptions {
            bootstrap: self.bootstrap.clone(),
            port: self.dht_port,
            bind: self.dht_bind,
            request_timeout: self.dht_timeout_ms.map(std::time::Duration::from_millis),
        }
    }
}

/// `xus topic`.
#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Make a key pair; prints the topic id readers use.
    New {
        /// A local name for the topic.
        name: String,
    },
    /// List local topics: `<name> <topic id>`.
    List,
}

/// `xus publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The commit (default: the tip of --branch).
    pub rev: Option<String>,
    /// Topic to publish under, by name or id (default: the only local topic).
    #[arg(long)]
    pub topic: Option<String>,
    /// Branch name the head is published as (default: the current branch).
    #[arg(long)]
    pub branch: Option<String>,
    /// The repository.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// TCP port to announce the torrent on (default: the port of the
    /// `xus seed` running on this repository, if any).
    #[arg(long)]
    pub port: Option<u16>,
    /// DHT options.
    #[command(flatten)]
    pub dht: DhtArgs,
}

/// `xus follow`.
#[derive(Debug, Args)]
pub struct FollowArgs {
    /// The head to follow: `xus://TOPIC/BRANCH` or a BEP 46 magnet link.
    pub head: String,
    /// The repository (created when missing).
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// Create the repository bare when it does not exist.
    #[arg(long)]
    pub bare: bool,
    /// Local branch to keep at the head (default: the topic's branch name).
    #[arg(long)]
    pub branch: Option<String>,
    /// Seconds between checks for a new head.
    #[arg(long, default_value_t = 10)]
    pub interval: u64,
    /// Give up on one head when no new piece verifies for this many seconds;
    /// the next check tries again.
    #[arg(long, default_value_t = 300)]
    pub stall_timeout: u64,
    /// Fetch each head's commit torrent even when it lists an update
    /// torrent from the commit this repository holds.
    #[arg(long)]
    pub no_updates: bool,
    /// Network options.
    #[command(flatten)]
    pub net: NetArgs,
    /// DHT options.
    #[command(flatten)]
    pub dht: DhtArgs,
}

/// `xus dht`.
#[derive(Debug, Subcommand)]
pub enum DhtCommand {
    /// Run DHT nodes that answer others until interrupted; prints
    /// `dht <addr>` per node. With no --bootstrap and --nodes N > 1 the
    /// nodes form a private DHT of their own.
    Serve(DhtServeArgs),
}

/// `xus dht serve`.
#[derive(Debug, Args)]
pub struct DhtServeArgs {
    /// How many nodes to run.
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// IPv4 address to bind (the DHT is IPv4 only: no BEP 32).
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: Ipv4Addr,
    /// UDP port of the first node (default: a free port).
    #[arg(long)]
    pub port: Option<u16>,
    /// Existing nodes to join (repeatable); none starts a new DHT.
    #[arg(long = "bootstrap", value_name = "HOST:PORT")]
    pub bootstrap: Vec<String>,
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
    /// Where to write the `.torrent` (default: `<commit>.torrent`, or
    /// `<from>..<commit>.xup.torrent` with --from).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Make the update torrent from this commit instead (what a head lists
    /// for readers holding it); its payload is kept in the repository's
    /// update store, which `xus seed` serves from.
    #[arg(long, value_name = "REV")]
    pub from: Option<String>,
    /// A webseed base URL (BEP 19; repeatable): clients fetch
    /// `<URL>/<commit>/<path>`. Goes into the `.torrent`'s `url-list` and the
    /// magnet's `ws=`; the infohash does not change.
    #[arg(long = "webseed", value_name = "URL")]
    pub webseeds: Vec<String>,
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
    /// Do not look for peers on the local network by multicast (BEP 14,
    /// local service discovery), nor announce to them.
    #[arg(long)]
    pub no_lsd: bool,
}

impl NetArgs {
    /// The engine configuration these options describe.
    pub fn rates(&self) -> crate::swarm::engine::RateLimits {
        crate::swarm::engine::RateLimits {
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
    /// Do not join the DHT (no announces, no head refresh).
    #[arg(long)]
    pub no_dht: bool,
    /// Seconds between looks for newly published heads and branch moves.
    #[arg(long, default_value_t = 5)]
    pub rescan: u64,
    /// Seconds between refreshes of stored heads in the DHT (items expire
    /// after about two hours).
    #[arg(long, default_value_t = 3600)]
    pub republish: u64,
    /// DHT options.
    #[command(flatten)]
    pub dht: DhtArgs,
    /// Also serve every seeded commit over HTTP (a BEP 19 webseed) on this
    /// address; magnets then carry its URL (`ws=`).
    #[arg(long, value_name = "ADDR")]
    pub webseed_listen: Option<SocketAddr>,
    /// The URL clients reach that webseed by (default:
    /// `http://<--webseed-listen>/`, left out of magnets when that address
    /// is unspecified, like 0.0.0.0).
    #[arg(long, value_name = "URL", requires = "webseed_listen")]
    pub webseed_url: Option<String>,
    /// Serve Prometheus metrics (`GET /metrics`: bytes up and down by
    /// source, peers, DHT operations and their latency, head publishes) on
    /// this address.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
}

/// `xus fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// A `.torrent` file, a magnet link, an infohash, `xus://TOPIC/BRANCH`
    /// or a BEP 46 magnet (`magnet:?xs=urn:btpk:<key>&s=<hex branch>`).
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
    /// Keep serving the fetched commit for this many seconds afterwards (or
    /// until Ctrl-C), so later readers take it from here, not the master.
    #[arg(long, value_name = "SECS")]
    pub seed_for: Option<u64>,
    /// Network options.
    #[command(flatten)]
    pub net: NetArgs,
    /// Never use the DHT: only --peer and magnet peers are asked.
    #[arg(long)]
    pub no_dht: bool,
    /// Fetch a head's commit torrent even when the head lists an update
    /// torrent from a commit this repository has.
    #[arg(long)]
    pub no_updates: bool,
    /// Commits of history to bring when the repository holds nothing of the
    /// branch yet, from the topic master the head names: 1 is the head's
    /// commit alone (a shallow boundary, from the swarm), 0 the whole
    /// history.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub depth: usize,
    /// A webseed to download from as well (repeatable): any HTTP server with
    /// Range support laying files out as `<commit>/<path>`. Used at once when
    /// no peer is known, else when peers are slow.
    #[arg(long = "webseed", value_name = "URL")]
    pub webseeds: Vec<String>,
    /// DHT options (used when no --peer is given, and for heads).
    #[command(flatten)]
    pub dht: DhtArgs,
}
