//! `git-remote-xus`: Git's own `clone`, `fetch`, `pull` and `push` on
//! `xus://TOPIC/BRANCH` URLs, as a remote helper (gitremote-helpers(7))
//! with the `fetch`, `push` and `option` capabilities. Heads are resolved
//! and verified as `xus fetch` does (signature, rollback guard) and objects
//! are written by xus; pushes go to the topic's master, signed with the
//! writer key. Git reads only protocol lines on stdout; everything a person
//! reads goes to stderr.

mod pack_locks;
pub mod protocol;

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tracker_free::{SignedHead, TopicIndex, TopicKey};

use self::pack_locks::PackLocks;
use self::protocol::{FetchRef, PushSpec, Request, Requests};
use super::report::StderrReport;
use crate::git::object::ObjectId;
use crate::master::push_client::{self, PushOptions};
use crate::swarm::discovery::{self, DhtOptions};
use crate::swarm::engine::{Progress, RateLimits};
use crate::swarm::fetch::{self, FetchEvent, FetchReport, FetchRequest, History};
use crate::swarm::{Swarm, SwarmOptions};
use crate::topic::head_address::HeadAddress;
use crate::topic::home::Home;
use crate::topic::push_answer::PushAnswer;
use crate::torrent::import::RefOptions;

/// How long to wait for metadata, as `xus fetch` does by default
/// (`[fetch] metadata_timeout_secs` in `config.toml` changes it).
const METADATA_TIMEOUT: Duration = Duration::from_secs(60);

/// Give up a download after this long without a verified piece
/// (`[fetch] stall_timeout_secs`).
const STALL_TIMEOUT: Duration = Duration::from_secs(300);

/// Longest wait for a master's answer to a push.
const PUSH_TIMEOUT: Duration = Duration::from_secs(900);

/// The helper's process: Git starts it as `git-remote-xus <remote> <url>`
/// with `$GIT_DIR` set and talks over stdin and stdout; an error is printed
/// on stderr (Git shows it as is) and fails the process.
pub fn main() -> ExitCode {
    init_logging();
    match run_from_env() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xus: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_from_env() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let remote = args
        .next()
        .context("usage: git-remote-xus <remote> [<url>] (Git runs this for xus:// URLs)")?;
    // Git passes the URL second; `git fetch xus://...` without a remote
    // name passes it as both.
    let url = args.next().unwrap_or(remote);
    // `git ls-remote` outside a repository sets no GIT_DIR: listing needs
    // none, fetch and push say so.
    let git_dir = std::env::var_os("GIT_DIR").map(PathBuf::from);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let options = HelperOptions {
        url,
        git_dir,
        home: Home::locate()?,
    };
    run(
        options,
        std::io::stdin().lock(),
        &mut std::io::stdout().lock(),
        &runtime,
    )
}

/// Warnings only, on stderr; `XUS_LOG` overrides, as for `xus`.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("XUS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
}

/// What Git starts the helper with.
#[derive(Debug, Clone)]
pub struct HelperOptions {
    /// The URL (`xus://TOPIC/BRANCH`).
    pub url: String,
    /// The repository Git works on (`$GIT_DIR`); none for `git ls-remote`
    /// run outside a repository.
    pub git_dir: Option<PathBuf>,
    /// xus's directory (topics, seen heads, `config.toml` with the DHT and
    /// the default master).
    pub home: Home,
}

/// Answers Git's commands from `input` on `out` until Git ends the session.
///
/// # Errors
///
/// A URL that names no head, unreadable input, or a failed fetch (Git then
/// stops and reports the helper's stderr); a refused push is an answer,
/// not an error.
pub fn run(
    options: HelperOptions,
    input: impl BufRead,
    out: &mut dyn Write,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    let remote = parse_url(&options.url, &options.home)?;
    let mut session = Session {
        options,
        remote,
        runtime,
        swarm: None,
        heads: BTreeMap::new(),
        index_master: None,
        default_ref: None,
        fetched: None,
        verbosity: 1,
        history: History::Whole,
        progress: false,
        dry_run: false,
        pack_locks: PackLocks::default(),
        refused: Arc::default(),
        depth_asked: false,
    };
    let result = session.serve(Requests::new(input), out);
    if let Some(swarm) = session.swarm.take() {
        runtime.block_on(swarm.stop());
    }
    result
}

/// What a URL names: one branch of a topic, or the whole topic.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Remote {
    /// `xus://TOPIC/BRANCH`.
    Branch(HeadAddress),
    /// `xus://TOPIC/`: every branch the topic's index names.
    Topic(TopicKey),
}

impl Remote {
    fn topic(&self) -> TopicKey {
        match self {
            Remote::Branch(address) => address.topic,
            Remote::Topic(topic) => *topic,
        }
    }
}

/// `xus://TOPIC/BRANCH` or `xus://TOPIC/`; TOPIC is a topic id, a local
/// topic name or an alias from `config.toml`.
fn parse_url(url: &str, home: &Home) -> anyhow::Result<Remote> {
    let shown = xus_codec::quote::short(url);
    let rest = url
        .strip_prefix("xus://")
        .with_context(|| format!("{shown:?} is not a xus:// URL"))?;
    let (topic, branch) = rest.split_once('/').unwrap_or((rest, ""));
    if branch.is_empty() {
        let topic = home
            .resolve_topic(topic)
            .with_context(|| format!("{shown:?}: unknown topic"))?;
        return Ok(Remote::Topic(topic));
    }
    let address = HeadAddress::parse(url, home)?
        .with_context(|| format!("{shown:?} is not a head address"))?;
    Ok(Remote::Branch(address))
}

struct Session<'a> {
    options: HelperOptions,
    remote: Remote,
    runtime: &'a tokio::runtime::Runtime,
    swarm: Option<Swarm>,
    /// The heads `list` gave Git, by ref name, which `fetch` then brings.
    heads: BTreeMap<String, SignedHead>,
    /// The master the topic's index names (pushes to a branch with no head
    /// yet go there).
    index_master: Option<String>,
    /// The ref `HEAD` points at, fetched first.
    default_ref: Option<String>,
    /// The last commit fetched in this session: the next branch's history
    /// from the master starts from it.
    fetched: Option<ObjectId>,
    verbosity: u8,
    /// `option depth`: the whole history unless Git asks for less.
    history: History,
    progress: bool,
    dry_run: bool,
    /// `.keep` files of the packs fetched, removed when Git is done.
    pack_locks: PackLocks,
    /// Why heads were refused in this session (see [`HelperReport`]).
    refused: Arc<std::sync::Mutex<Vec<String>>>,
    /// Git sent `option depth`: a shallow repository is to be deepened.
    depth_asked: bool,
}

impl Session<'_> {
    /// The repository Git fetches into or pushes from.
    fn git_dir(&self) -> anyhow::Result<PathBuf> {
        self.options
            .git_dir
            .clone()
            .context("GIT_DIR is not set: fetch and push run inside a repository, started by Git")
    }

    fn serve(
        &mut self,
        mut requests: Requests<impl BufRead>,
        out: &mut dyn Write,
    ) -> anyhow::Result<()> {
        while let Some(request) = requests.next_request()? {
            match request {
                Request::Capabilities => write!(out, "option\nfetch\npush\n\n")?,
                Request::Option { name, value } => {
                    let answer = self.option(&name, &value);
                    writeln!(out, "{answer}")?;
                }
                Request::List { for_push } => {
                    for line in self.list(for_push)? {
                        writeln!(out, "{line}")?;
                    }
                    writeln!(out)?;
                }
                Request::Fetch(refs) => {
                    let git_dir = self.git_dir()?;
                    let before = pack_locks::packs(&git_dir);
                    let fetched = self.fetch(&refs);
                    if let Some(keep) = self.pack_locks.lock_new(&git_dir, &before) {
                        writeln!(out, "lock {}", keep.display())?;
                    }
                    fetched?;
                    writeln!(out)?;
                }
                Request::Push(specs) => {
                    for spec in &specs {
                        writeln!(out, "{}", self.push(spec))?;
                    }
                    writeln!(out)?;
                }
                Request::Unknown(line) => {
                    anyhow::bail!(
                        "git-remote-xus does not know the command {:?}",
                        xus_codec::quote::short(&line)
                    )
                }
            }
            out.flush()?;
        }
        Ok(())
    }

    /// `ok`, `unsupported` or `error <why>` for `option <name> <value>`.
    fn option(&mut self, name: &str, value: &str) -> String {
        let flag = match value {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        };
        match (name, flag) {
            ("verbosity", _) => match value.parse::<u8>() {
                Ok(level) => {
                    self.verbosity = level;
                    "ok".into()
                }
                Err(_) => format!("error verbosity {value:?} is not a number"),
            },
            ("progress", Some(on)) => {
                self.progress = on;
                "ok".into()
            }
            ("dry-run", Some(on)) => {
                self.dry_run = on;
                "ok".into()
            }
            ("cloning", Some(_)) => "ok".into(),
            ("depth", _) => match value.parse::<usize>() {
                // Git's `--unshallow` asks for its "infinite" depth.
                Ok(depth) if depth >= GIT_INFINITE_DEPTH => {
                    self.history = History::Whole;
                    self.depth_asked = true;
                    "ok".into()
                }
                Ok(depth) if depth >= 1 => {
                    self.history = History::from_depth(depth);
                    self.depth_asked = true;
                    "ok".into()
                }
                _ => format!("error depth {value:?} is not a number of commits"),
            },
            _ => "unsupported".into(),
        }
    }

    fn report(&self) -> Arc<dyn FetchReport> {
        Arc::new(HelperReport {
            inner: StderrReport::new(),
            verbosity: self.verbosity,
            progress: self.progress,
            refused: Arc::clone(&self.refused),
        })
    }

    /// The session's swarm (and DHT node), started on first use.
    fn swarm(&mut self) -> anyhow::Result<&Swarm> {
        if self.swarm.is_none() {
            let dht = discovery::config(&DhtOptions::default(), &self.options.home)?;
            let swarm = self.runtime.block_on(Swarm::start(&SwarmOptions {
                listen: "0.0.0.0:0".parse()?,
                rates: RateLimits::default(),
                lsd: true,
                dht: Some(dht),
                feed: false,
            }))?;
            self.swarm = Some(swarm);
        }
        self.swarm.as_ref().context("the swarm did not start")
    }

    /// Every head the URL names as `<commit> refs/heads/<branch>`, and
    /// `HEAD` pointing at the default one so `git clone` checks it out. No
    /// head: nothing to push onto (`for-push`), else an error naming what
    /// was asked.
    fn list(&mut self, for_push: bool) -> anyhow::Result<Vec<String>> {
        let (branches, default) = match self.remote.clone() {
            Remote::Branch(address) => (vec![address.branch.clone()], address.branch.clone()),
            Remote::Topic(topic) => match self.branch_index(topic)? {
                Some(index) => {
                    self.index_master = index.master().map(str::to_owned);
                    (index.branches().to_vec(), index.default_branch().clone())
                }
                None if for_push => return Ok(Vec::new()),
                None => anyhow::bail!(
                    "topic {topic} is unknown: no branch index of it was found on the DHT \
                     (is the topic id right, and is a node of its DHT reachable? A topic \
                     published only by an older xus has no index: name a branch, \
                     xus://{topic}/BRANCH)"
                ),
            },
        };
        let mut lines = Vec::new();
        let mut default_listed = false;
        let addresses: Vec<HeadAddress> = branches
            .into_iter()
            .map(|branch| HeadAddress {
                topic: self.remote.topic(),
                branch,
            })
            .collect();
        for (address, head) in self.resolve_all(addresses)? {
            let Some(head) = head else {
                if matches!(self.remote, Remote::Topic(_)) {
                    eprintln!(
                        "xus: warning: the topic's index names {}, but no head of it was found on the DHT",
                        address.url()
                    );
                }
                continue;
            };
            let name = format!("refs/heads/{}", address.branch);
            lines.push(format!("{} {name}", crate::hex::encode(&head.head.commit)));
            default_listed |= address.branch == default;
            self.heads.insert(name, head);
        }
        if default_listed {
            lines.push(format!("@refs/heads/{default} HEAD"));
            self.default_ref = Some(format!("refs/heads/{default}"));
        }
        let refused = self
            .refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if lines.is_empty() && !for_push && !refused.is_empty() {
            anyhow::bail!(
                "every head of {} the DHT returned was refused ({}): nothing was fetched; a DHT node may be forging heads, or the topic id is wrong",
                self.options.url,
                refused.join("; ")
            );
        }
        if lines.is_empty() && !for_push {
            anyhow::bail!(
                "no head of {} was found on the DHT (is the topic id right, and is a node of its DHT reachable?)",
                self.options.url
            );
        }
        Ok(lines)
    }

    /// The topic's branch index as found on the DHT, `None` when there is
    /// none.
    fn branch_index(&mut self, topic: TopicKey) -> anyhow::Result<Option<TopicIndex>> {
        let runtime = self.runtime;
        let dht = self
            .swarm()?
            .dht()
            .context("the swarm runs without a DHT")?;
        let mut found = runtime.block_on(dht.resolve_index(&topic));
        // Kept so that a `xus seed` on this machine stores it again.
        if let Some(newest) = found.iter().max_by_key(|index| index.seq)
            && let Err(error) = self.options.home.record_index(newest)
        {
            tracing::warn!(error = %format!("{error:#}"), "cannot record the topic's branch index");
        }
        // The index recorded here before counts too (branches are never
        // deleted): a DHT that lost the index, or holds an older one, still
        // lists every branch this machine knew. Each head is verified on
        // its own.
        match self.options.home.seen_index(&topic) {
            Ok(Some(recorded)) => found.push(recorded),
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "ignoring the recorded branch index")
            }
        }
        Ok(tracker_free::merge_indexes(&found))
    }

    /// The verified head of each address (`None` when the DHT has none),
    /// looked up all at once: a topic's branches cost one lookup's time,
    /// not one per branch.
    fn resolve_all(
        &mut self,
        addresses: Vec<HeadAddress>,
    ) -> anyhow::Result<Vec<(HeadAddress, Option<SignedHead>)>> {
        let report = self.report();
        let home = self.options.home.clone();
        let runtime = self.runtime;
        let dht = Arc::clone(
            self.swarm()?
                .dht()
                .context("the swarm runs without a DHT")?,
        );
        let lookups: Vec<_> = addresses
            .into_iter()
            .map(|address| {
                let (dht, home, report) = (Arc::clone(&dht), home.clone(), Arc::clone(&report));
                runtime.spawn(async move {
                    let head = fetch::resolve_head(&dht, &home, &address, report.as_ref()).await;
                    (address, head)
                })
            })
            .collect();
        runtime.block_on(async {
            let mut heads = Vec::with_capacity(lookups.len());
            for lookup in lookups {
                let (address, head) = lookup.await.context("a head lookup panicked")?;
                heads.push((address, head?));
            }
            Ok(heads)
        })
    }

    /// Brings every wanted commit that is not here yet, the default
    /// branch's first so that the other branches' histories from the master
    /// start from it.
    fn fetch(&mut self, refs: &[FetchRef]) -> anyhow::Result<()> {
        for wanted in refs {
            anyhow::ensure!(
                self.heads.contains_key(&wanted.name),
                "Git asked for {}, which {} does not list",
                wanted.name,
                self.options.url
            );
        }
        let mut order: Vec<&FetchRef> = refs.iter().collect();
        order.sort_by_key(|wanted| Some(&wanted.name) != self.default_ref.as_ref());
        for wanted in order {
            let git_dir = self.git_dir()?;
            // A commit already here is skipped, unless Git asked for more
            // history (`--unshallow`, `--depth`) of a shallow repository.
            let deepen = self.depth_asked && git_dir.join("shallow").exists();
            if has_commit(&git_dir, wanted.id) && !deepen {
                self.fetched = Some(wanted.id);
                continue;
            }
            let head = self
                .heads
                .get(&wanted.name)
                .filter(|head| ObjectId::from_slice(&head.head.commit) == Some(wanted.id))
                .cloned()
                .with_context(|| {
                    format!(
                        "Git asked for {} at {}, which is not the head listed",
                        wanted.name, wanted.id
                    )
                })?;
            let address = HeadAddress {
                topic: head.topic,
                branch: head.branch.clone(),
            };
            let waits = self.options.home.config()?.fetch;
            let request = FetchRequest {
                repo: git_dir,
                bare: true,
                refs: RefOptions {
                    branch: None,
                    force: false,
                    checkout: false,
                    tracking: None,
                },
                peers: Vec::new(),
                webseeds: Vec::new(),
                metadata_timeout: waits
                    .metadata_timeout_secs
                    .map_or(METADATA_TIMEOUT, |secs| Duration::from_secs(secs.max(1))),
                stall_timeout: waits
                    .stall_timeout_secs
                    .map_or(STALL_TIMEOUT, |secs| Duration::from_secs(secs.max(1))),
                require_parents: false,
                use_updates: true,
                history: self.history,
                base: self.fetched,
                // Git asks for several refs in one session: each fetch's
                // timings count from its own start.
                timed_from: Some(std::time::Instant::now()),
                repair: false,
                deepen,
            };
            let report = self.report();
            let runtime = self.runtime;
            let swarm = self.swarm()?;
            let fetched =
                runtime.block_on(fetch::fetch_head(swarm, &address, &head, &request, &report))?;
            if self.verbosity >= 1 {
                eprintln!("xus: fetched {} ({})", fetched.commit, address.url());
            }
            self.fetched = Some(fetched.commit);
        }
        Ok(())
    }

    /// `ok <dst>` or `error <dst> <why>` for one ref: the push goes to the
    /// topic's master, which moves the branch only as a fast-forward.
    fn push(&mut self, spec: &PushSpec) -> String {
        match self.push_one(spec) {
            Ok(()) => format!("ok {}", spec.dst),
            Err(why) => format!("error {} {}", spec.dst, one_line(&why)),
        }
    }

    fn push_one(&mut self, spec: &PushSpec) -> Result<(), String> {
        if spec.src.is_empty() {
            return Err(
                "deleting a branch is not possible: a topic's heads only move forward".into(),
            );
        }
        let branch = spec.dst.strip_prefix("refs/heads/").ok_or_else(|| {
            format!(
                "a topic holds branches only (refs/heads/...), not {}",
                spec.dst
            )
        })?;
        let master = self
            .heads
            .get(&spec.dst)
            .and_then(|head| head.head.master.clone())
            .or_else(|| self.index_master.clone())
            .or_else(|| {
                self.options
                    .home
                    .config()
                    .ok()
                    .and_then(|config| config.push.master)
            })
            .ok_or("no master known for this topic: its heads and index name none, and config.toml has no [push] master")?;
        if self.dry_run {
            return Ok(());
        }
        let options = PushOptions {
            repo: self.git_dir().map_err(|e| format!("{e:#}"))?,
            rev: Some(spec.src.clone()),
            topic: Some(self.remote.topic().to_hex()),
            branch: Some(branch.to_owned()),
            master: Some(master),
            key: None,
            listen: "0.0.0.0:0".parse().map_err(|e| format!("{e}"))?,
            timeout: PUSH_TIMEOUT,
            home: self.options.home.clone(),
        };
        let verbosity = self.verbosity;
        let answer = self
            .runtime
            .block_on(push_client::push(
                &options,
                &HelperPushProgress { verbosity },
            ))
            .map_err(|e| format!("{e:#}"))?;
        match answer {
            PushAnswer::Accepted { .. } => Ok(()),
            // Git's own remotes refuse a push behind the branch; here the
            // commit is already in it (a retried push after others built
            // on it), which is what the user wanted.
            PushAnswer::Contained { current, .. } => {
                if verbosity >= 1 {
                    eprintln!("xus: the master's {branch} at {current} already contains it");
                }
                Ok(())
            }
            PushAnswer::NotFastForward {
                current, kept_ref, ..
            } => Err(format!(
                "non-fast-forward: the master's {branch} is at {current}; it keeps your commit as {kept_ref}{}",
                if spec.force {
                    " (a topic master never forces)"
                } else {
                    ""
                }
            )),
            PushAnswer::Refused { message } => Err(format!("refused by the master: {message}")),
            PushAnswer::Invalid { message } => {
                Err(format!("the master rejected the request: {message}"))
            }
            PushAnswer::Failed { message } => Err(format!("the push did not complete: {message}")),
        }
    }
}

/// Whether `id` is a commit in the repository at `git_dir`.
fn has_commit(git_dir: &std::path::Path, id: ObjectId) -> bool {
    let Ok(repo) = git2::Repository::open(git_dir) else {
        return false;
    };
    repo.odb()
        .and_then(|odb| odb.read_header(id.to_git()))
        .is_ok_and(|(_, kind)| kind == git2::ObjectType::Commit)
}

/// The depth Git asks for with `--unshallow` (its `INFINITE_DEPTH`).
const GIT_INFINITE_DEPTH: usize = 0x7fff_ffff;

/// `text` on one line, as a protocol answer must be.
fn one_line(text: &str) -> String {
    text.split(['\n', '\r'])
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The fetch report Git's verbosity asks for: warnings always, progress
/// when Git asked for it, every step at `-v`.
struct HelperReport {
    inner: StderrReport,
    verbosity: u8,
    progress: bool,
    /// Why heads were refused, for the error when no head is left.
    refused: Arc<std::sync::Mutex<Vec<String>>>,
}

impl FetchReport for HelperReport {
    fn event(&self, event: FetchEvent) {
        if let FetchEvent::HeadRefused { reason, .. } = &event {
            let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
            refused.push(reason.clone());
        }
        if self.verbosity >= 2 || event.is_warning() {
            self.inner.event(event);
        }
    }

    fn progress(&self, progress: &Progress) {
        if self.progress && self.verbosity >= 1 {
            self.inner.progress(progress);
        }
    }

    fn download_ended(&self, complete: bool) {
        self.inner.download_ended(complete);
    }
}

/// What `git push` shows while the master takes the commits: the offer
/// at `-v` (Git's default verbosity is 1).
struct HelperPushProgress {
    verbosity: u8,
}

impl push_client::PushProgress for HelperPushProgress {
    fn offered(&self, offer: &push_client::Offer) {
        if self.verbosity >= 1 {
            eprintln!(
                "xus: pushing {} to {}/{} at {} ({} commit(s) offered)",
                offer.tip, offer.topic, offer.branch, offer.master, offer.commits
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracker_free::TopicSecret;

    #[test]
    fn urls_name_a_topic_or_one_of_its_branches() {
        let home = Home::at(std::env::temp_dir().join("xus-helper-no-home"));
        let topic = TopicSecret::from_seed([9; 32]).topic();
        for whole in [format!("xus://{topic}"), format!("xus://{topic}/")] {
            assert_eq!(
                parse_url(&whole, &home).expect("a topic"),
                Remote::Topic(topic)
            );
        }
        let Remote::Branch(address) =
            parse_url(&format!("xus://{topic}/feature/x"), &home).expect("a branch")
        else {
            panic!("not a branch");
        };
        assert_eq!(
            (address.topic, address.branch.as_str()),
            (topic, "feature/x")
        );
        for bad in [
            "http://example/".to_owned(),
            "xus://no-such-topic/main".to_owned(),
            "xus://no-such-topic/".to_owned(),
            format!("xus://{}/main", "ab".repeat(32)),
        ] {
            assert!(parse_url(&bad, &home).is_err(), "{bad}");
        }
        assert_eq!(one_line("a\nb\r\nc"), "a; b; c");
    }
}
