//! What `xus status` reports about one repository: the topic branches it
//! follows (local commit, the head this machine last saw, the head on the
//! DHT now and how many peers announce its torrent), and what a `xus seed`
//! on it serves. Gathered here, printed by the command.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use tracker_free::{Branch, Dht, HeadChoice, SignedHead, TopicKey};

use crate::git::object::ObjectId;
use crate::git::repo;
use crate::swarm::seeder::seed_addr_path;
use crate::topic::head_address::HeadAddress;
use crate::topic::home::Home;

/// Where fetches record a followed head: `refs/xus/topics/<topic>/<branch>`.
const TRACKING_PREFIX: &str = "refs/xus/topics/";

/// How long to wait for a seed's port to accept a connection.
const SEED_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Most peers counted per head: enough to say "a swarm", bounded work.
const MAX_PEERS_COUNTED: usize = 200;

/// The whole report.
#[derive(Debug, Clone)]
pub struct RepoStatus {
    /// The git directory.
    pub git_dir: std::path::PathBuf,
    /// Every followed branch, by URL.
    pub followed: Vec<Followed>,
    /// The `xus seed` recorded for this repository, if any.
    pub seed: Option<SeedStatus>,
}

/// One followed topic branch.
#[derive(Debug, Clone)]
pub struct Followed {
    /// Which head.
    pub address: HeadAddress,
    /// The commit the tracking ref holds.
    pub local: ObjectId,
    /// Local branches at that commit (what the user works on).
    pub branches: Vec<String>,
    /// Whether this machine holds the topic's secret (it publishes it).
    pub owned: bool,
    /// The newest head this machine saw (the rollback guard's floor).
    pub seen: Option<SignedHead>,
    /// The head on the DHT now; `None` when offline or not asked.
    pub published: Option<Published>,
}

/// The head read from the DHT now.
#[derive(Debug, Clone)]
pub enum Published {
    /// The newest head found (which may be the one seen before).
    Head {
        /// The head.
        head: Box<SignedHead>,
        /// How the local commit stands against it.
        standing: Standing,
        /// Peers the DHT names for its torrent (at most 200 counted).
        peers: usize,
    },
    /// No head found, or only refused ones.
    NotFound {
        /// Why heads were refused, if any were.
        refused: Vec<String>,
    },
}

/// The local commit against the published head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// The same commit.
    UpToDate,
    /// The published commit is newer (not here, or descends from local).
    Behind,
    /// Local descends from the published commit (a push not yet published).
    Ahead,
    /// Neither descends from the other.
    Diverged,
}

/// A `xus seed` recorded in `<git dir>/xus/seed.addr`.
#[derive(Debug, Clone)]
pub struct SeedStatus {
    /// Its BitTorrent address.
    pub addr: SocketAddr,
    /// Its process id.
    pub pid: Option<u32>,
    /// How many torrents (commits and updates) it serves.
    pub torrents: usize,
    /// Whether its port accepts connections now (a seed killed without
    /// cleaning up leaves the file behind).
    pub running: bool,
}

/// Gathers the status of the repository at `repo_path`; with `dht`, each
/// followed head is also read from the DHT and its peers counted.
///
/// # Errors
///
/// The repository cannot be opened or its refs read.
pub async fn gather(
    repo_path: &Path,
    home: &Home,
    dht: Option<&Dht>,
) -> anyhow::Result<RepoStatus> {
    let path = repo_path.to_owned();
    let (git_dir, tracked) = tokio::task::spawn_blocking(move || {
        let repo = repo::open(&path)?;
        let tracked = tracking_refs(&repo)?;
        anyhow::Ok((repo.path().to_owned(), tracked))
    })
    .await??;
    let owned: Vec<TopicKey> = home
        .topics()
        .unwrap_or_default()
        .into_iter()
        .map(|(_, secret)| secret.topic())
        .collect();
    let mut followed = Vec::new();
    for (address, local, branches) in tracked {
        let seen = home.seen_head(&address.topic, &address.branch)?;
        let published = match dht {
            Some(dht) => Some(read_published(dht, &git_dir, &address, local, seen.as_ref()).await),
            None => None,
        };
        followed.push(Followed {
            owned: owned.contains(&address.topic),
            address,
            local,
            branches,
            seen,
            published,
        });
    }
    Ok(RepoStatus {
        seed: read_seed(&git_dir),
        git_dir,
        followed,
    })
}

/// Every `refs/xus/topics/<topic>/<branch>` with its commit and the local
/// branches at the same commit, sorted by URL.
fn tracking_refs(
    repo: &git2::Repository,
) -> anyhow::Result<Vec<(HeadAddress, ObjectId, Vec<String>)>> {
    let mut branches_at: Vec<(ObjectId, String)> = Vec::new();
    for (name, commit) in repo::all_branches(repo)? {
        branches_at.push((commit, name));
    }
    let mut out = Vec::new();
    let refs = repo
        .references_glob(&format!("{TRACKING_PREFIX}*"))
        .context("reading the repository's refs")?;
    for reference in refs.flatten() {
        let Ok(name) = reference.name() else { continue };
        let Some(rest) = name.strip_prefix(TRACKING_PREFIX) else {
            continue;
        };
        let Some((topic, branch)) = rest.split_once('/') else {
            continue;
        };
        let (Ok(topic), Ok(branch)) = (TopicKey::from_hex(topic), Branch::new(branch)) else {
            continue;
        };
        let Some(local) = reference.target().and_then(ObjectId::from_git) else {
            continue;
        };
        let branches = branches_at
            .iter()
            .filter(|(commit, _)| *commit == local)
            .map(|(_, name)| name.clone())
            .collect();
        out.push((HeadAddress { topic, branch }, local, branches));
    }
    out.sort_by_key(|(address, _, _)| address.url());
    Ok(out)
}

/// The head of `address` on the DHT now, how `local` stands against it,
/// and how many peers announce its torrent.
async fn read_published(
    dht: &Dht,
    git_dir: &Path,
    address: &HeadAddress,
    local: ObjectId,
    seen: Option<&SignedHead>,
) -> Published {
    let mut lookup = dht.resolve_head(&address.topic, &address.branch).await;
    let choice = lookup.choose(None);
    let refused: Vec<String> = lookup.refused.iter().map(ToString::to_string).collect();
    let head = match choice {
        HeadChoice::New(head) => *head,
        HeadChoice::Unchanged | HeadChoice::NotFound => return Published::NotFound { refused },
    };
    // A DHT that answers with an older head than this machine saw is a
    // rollback: report the one seen, which is what a fetch goes by.
    let head = match seen {
        Some(seen) if seen.seq > head.seq => seen.clone(),
        _ => head,
    };
    let standing = ObjectId::from_slice(&head.head.commit).map_or(Standing::Behind, |published| {
        standing(git_dir, local, published)
    });
    let mut peers = std::collections::HashSet::new();
    let mut stream = dht.peers(head.head.infohash);
    while peers.len() < MAX_PEERS_COUNTED
        && let Some(batch) = stream.next().await
    {
        peers.extend(batch);
    }
    Published::Head {
        head: Box::new(head),
        standing,
        peers: peers.len().min(MAX_PEERS_COUNTED),
    }
}

/// How `local` stands against `published` in the repository's history.
fn standing(git_dir: &Path, local: ObjectId, published: ObjectId) -> Standing {
    if local == published {
        return Standing::UpToDate;
    }
    let Ok(repo) = git2::Repository::open(git_dir) else {
        return Standing::Behind;
    };
    let descends = |a: ObjectId, b: ObjectId| {
        repo.graph_descendant_of(a.to_git(), b.to_git())
            .unwrap_or(false)
    };
    if repo.find_commit(published.to_git()).is_err() || descends(published, local) {
        Standing::Behind
    } else if descends(local, published) {
        Standing::Ahead
    } else {
        Standing::Diverged
    }
}

/// The seed recorded in `<git dir>/xus/seed.addr`, probed for life.
fn read_seed(git_dir: &Path) -> Option<SeedStatus> {
    let text = std::fs::read_to_string(seed_addr_path(git_dir)).ok()?;
    let mut lines = text.lines();
    let mut first = lines.next()?.split_whitespace();
    let addr: SocketAddr = first.next()?.parse().ok()?;
    let pid = first.next().and_then(|pid| pid.parse().ok());
    let torrents = lines.filter(|line| line.len() == 40).count();
    let probe = if addr.ip().is_unspecified() {
        SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    let running = TcpStream::connect_timeout(&probe, SEED_PROBE_TIMEOUT).is_ok();
    Some(SeedStatus {
        addr,
        pid,
        torrents,
        running,
    })
}
