//! The writer's side of a push (`xus push`): the writer seeds the
//! commits the master lacks and signs a request naming them; the master
//! takes them over BitTorrent, moves the branch, backs it up and publishes
//! the head before it answers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use tracker_free::{Branch, TopicKey};

use crate::git::blobs::{BlobSource, DEFAULT_CACHE_BYTES};
use crate::git::object::ObjectId;
use crate::git::repo;
use crate::swarm::engine::{Engine, EngineConfig};
use crate::swarm::seeder::Seeder;
use crate::swarm::webseed_server::base_url;
use crate::topic::home::Home;
use crate::topic::metadata_offer::MetadataOffer;
use crate::topic::push_answer::{PushAnswer, Status, TopicSummary};
use crate::topic::push_request::{MAX_PUSH_COMMITS, PushRequest, PushedCommit, SignedPush};
use crate::topic::writer_key::WriterSecret;
use crate::torrent::cache;
use crate::torrent::info_hash::InfoHash;

/// Options of `xus push`.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// The repository.
    pub repo: PathBuf,
    /// Commit to push (default: the branch's tip).
    pub rev: Option<String>,
    /// Topic, by master-side name, local name or id (default: the master's
    /// only topic).
    pub topic: Option<String>,
    /// Branch to move (default: the current branch).
    pub branch: Option<String>,
    /// The master's URL (default: `[push] master` in `config.toml`).
    pub master: Option<String>,
    /// The writer's secret key file (default: `writer.secret` in xus's home).
    pub key: Option<PathBuf>,
    /// Where this writer seeds the commits for the master.
    pub listen: SocketAddr,
    /// How long to wait for the master's answer.
    pub timeout: Duration,
    /// xus's directory.
    pub home: Home,
}

/// What a push offers the master, told before the answer comes.
#[derive(Debug, Clone)]
pub struct Offer {
    /// The commit the branch should move to.
    pub tip: ObjectId,
    /// The topic, by the master's name.
    pub topic: String,
    /// The branch.
    pub branch: String,
    /// The master's base URL.
    pub master: String,
    /// Commits offered (the tip and its ancestors the master lacks).
    pub commits: usize,
}

/// What a push tells its user before the master answers, which can take as
/// long as the master's download: a silent wait looks like a hang.
pub trait PushProgress {
    /// The request is signed and about to go: what it offers.
    fn offered(&self, offer: &Offer);

    /// Bytes this writer has uploaded so far (to the master, or to anyone
    /// it dials), about once a second until the answer comes.
    fn uploaded(&self, _bytes: u64) {}
}

/// How often [`PushProgress::uploaded`] is told.
const UPLOAD_REPORT_EVERY: Duration = Duration::from_secs(1);

/// Pushes and returns the master's answer, whatever it says (the caller
/// decides what a refusal means to its user). `progress` hears what is
/// offered once the request is signed, then the bytes uploaded until the
/// master answers.
///
/// # Errors
///
/// Before the request is sent: no master or key, a master that is not a
/// xus master, a revision or branch that cannot be pushed. After: the
/// connection failed (pushing again is safe).
pub async fn push(
    options: &PushOptions,
    progress: &dyn PushProgress,
) -> anyhow::Result<PushAnswer> {
    let master = match &options.master {
        Some(url) => url.clone(),
        None => options.home.config()?.push.master.context(
            "no master to push to: give --master URL or set `master` under [push] in config.toml",
        )?,
    };
    let master = base_url(&master).with_context(|| format!("master URL {master:?}"))?;
    crate::swarm::dial_policy::check_url(&master)
        .map_err(|why| anyhow::anyhow!("not pushing to {master}: {why}"))?;
    let key_path = options
        .key
        .clone()
        .unwrap_or_else(|| options.home.writer_key_path());
    let secret = WriterSecret::load(&key_path).with_context(|| {
        format!(
            "reading the writer key {} (make one with `xus writer new` and give its public key to the master)",
            key_path.display()
        )
    })?;
    let client = reqwest::Client::builder()
        .redirect(crate::swarm::dial_policy::redirect_policy())
        .timeout(options.timeout)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .context("starting the HTTP client")?;
    let status = get_status(&client, &master).await?;
    let topic = choose_topic(&status, options.topic.as_deref(), &options.home)?;
    let topic_key = TopicKey::from_hex(&topic.id)
        .with_context(|| format!("the master names topic id {:?}", topic.id))?;

    let repo_path = options.repo.clone();
    let (branch, rev) = (options.branch.clone(), options.rev.clone());
    let master_tips: Vec<ObjectId> = topic
        .branches
        .iter()
        .filter_map(|b| ObjectId::from_hex(&b.commit))
        .collect();
    let (git_dir, branch, commits) = tokio::task::spawn_blocking(move || {
        let repo = repo::open(&repo_path)?;
        let branch = match branch {
            Some(branch) => branch,
            None => current_branch(&repo)?,
        };
        let rev = rev.unwrap_or_else(|| format!("refs/heads/{branch}"));
        let tip = repo::resolve_commit(&repo, &rev)?;
        let commits = commits_to_push(&repo, tip, &master_tips)?;
        anyhow::Ok((repo.path().to_owned(), branch, commits))
    })
    .await??;
    let branch_key = Branch::new(&branch).with_context(|| format!("branch {branch:?}"))?;
    let tip = *commits.last().context("nothing to push")?;

    // Seed every commit the master may lack, for as long as the push lasts.
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let engine = Engine::start(&EngineConfig {
        listen: options.listen,
        work_dir: scratch.path().to_owned(),
        rates: crate::swarm::engine::RateLimits::default(),
        // The writer dials the master it was given; nobody needs to find it.
        lsd: false,
    })
    .await?;
    let result = async {
        let addr = engine
            .listen_addr()
            .context("BitTorrent session is not listening")?;
        let mut seeder = Seeder::new(
            &engine,
            BlobSource::open(&git_dir, DEFAULT_CACHE_BYTES)?,
            git_dir.clone(),
        )?
        .unadvertised();
        let mut pushed = Vec::with_capacity(commits.len());
        let mut sink = std::io::sink();
        let mut quiet = crate::swarm::output::Output::text(&mut sink);
        for &commit in &commits {
            let info_hash = seeder.add(commit, &mut quiet).await?;
            pushed.push(PushedCommit { commit, info_hash });
        }
        let pushed_ids: Vec<(ObjectId, InfoHash)> =
            pushed.iter().map(|p| (p.commit, p.info_hash)).collect();
        let request = PushRequest {
            topic: topic_key,
            branch: branch_key,
            commits: pushed,
            peer_port: addr.port(),
            time: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            writer: secret.public(),
        };
        progress.offered(&Offer {
            tip,
            topic: topic.name.clone(),
            branch: branch.clone(),
            master: master.clone(),
            commits: request.commits.len(),
        });
        let body = SignedPush::sign(request, &secret).to_body();
        let handover = Handover {
            client: &client,
            master: &master,
            secret: &secret,
            topic: topic_key,
            commits: &pushed_ids,
        };
        let master_peer = handover
            .offer_metadata(&git_dir, status.bittorrent_port)
            .await;
        // While the master downloads, this writer dials it too: the master
        // cannot dial a writer behind NAT, and a BitTorrent connection
        // carries pieces whichever side opened it.
        let dialling = async {
            let Some(peer) = master_peer else {
                return std::future::pending::<anyhow::Result<PushAnswer>>().await;
            };
            let torrents = handover.commits.iter().map(|&(_, ih)| ih).collect();
            loop {
                let started = engine.dial(&torrents, peer);
                tracing::trace!(%peer, started, "dialled the master");
                tokio::time::sleep(REDIAL_INTERVAL).await;
            }
        };
        let reporting = async {
            let mut tick = tokio::time::interval(UPLOAD_REPORT_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                progress.uploaded(engine.uploaded_bytes());
            }
        };
        tokio::select! {
            answer = send(&client, &master, body) => answer,
            never = dialling => never,
            never = reporting => never,
        }
    }
    .await;
    engine.stop().await;
    result
}

/// How often a pushing writer dials the master again for each commit
/// until the master answers: its first dial may come before the master
/// started the download, which it then refuses.
const REDIAL_INTERVAL: Duration = Duration::from_millis(500);

/// Hands the master what it needs without dialling this writer: the info
/// dictionaries (uploaded over HTTP) and this writer's address to connect
/// to (it dials the master's BitTorrent port).
struct Handover<'a> {
    client: &'a reqwest::Client,
    master: &'a str,
    secret: &'a WriterSecret,
    topic: TopicKey,
    /// Commit and infohash, oldest first.
    commits: &'a [(ObjectId, InfoHash)],
}

impl Handover<'_> {
    /// Uploads every commit's info dictionary, and returns the master's
    /// BitTorrent address to dial (its HTTP host, `port`). Failures only
    /// log: the master can still ask this writer for the metadata and dial
    /// it, as masters before this did.
    async fn offer_metadata(&self, git_dir: &Path, port: Option<u16>) -> Option<SocketAddr> {
        for &(commit, info_hash) in self.commits {
            if let Err(error) = self.offer_one(git_dir, commit, info_hash).await {
                tracing::info!(%commit, error = %format!("{error:#}"), "the master did not take the metadata; it will ask for it");
                break;
            }
        }
        let port = port?;
        let url = reqwest::Url::parse(self.master).ok()?;
        let host = url
            .host_str()?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let addr = tokio::net::lookup_host((host.as_str(), port))
            .await
            .ok()?
            .find(|addr| crate::swarm::dial_policy::check_peer(*addr).is_ok());
        if addr.is_none() {
            tracing::info!(%host, port, "cannot dial the master's BitTorrent port; it must dial this writer");
        }
        addr
    }

    async fn offer_one(
        &self,
        git_dir: &Path,
        commit: ObjectId,
        info_hash: InfoHash,
    ) -> anyhow::Result<()> {
        let git_dir = git_dir.to_owned();
        let info = tokio::task::spawn_blocking(move || {
            let repo = git2::Repository::open(&git_dir)?;
            anyhow::Ok(cache::load_or_build(&repo, commit)?.info_bytes)
        })
        .await??;
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let offer = MetadataOffer::sign(self.secret, self.topic, info_hash, time);
        let url = format!("{}push/metadata/{info_hash}", self.master);
        let mut put = self.client.put(&url).body(info);
        for (name, value) in offer.headers() {
            put = put.header(name, value);
        }
        let response = put
            .send()
            .await
            .with_context(|| format!("uploading to {url}"))?;
        let code = response.status();
        if code.is_success() {
            return Ok(());
        }
        let body = response.bytes().await.unwrap_or_default();
        anyhow::bail!(
            "{url} answered {code}: {}",
            String::from_utf8_lossy(&body[..body.len().min(512)]).trim()
        )
    }
}

/// Reads the master's topics and branch tips.
async fn get_status(client: &reqwest::Client, master: &str) -> anyhow::Result<Status> {
    let url = format!("{master}status");
    let response = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("asking the master at {url}"))?;
    let code = response.status();
    let body = response
        .bytes()
        .await
        .with_context(|| format!("reading the answer of {url}"))?;
    anyhow::ensure!(
        code.is_success(),
        "{url} answered {code}: {}",
        String::from_utf8_lossy(&body[..body.len().min(512)])
    );
    serde_json::from_slice(&body).with_context(|| format!("{url} is not a xus master"))
}

/// Posts the signed request and reads the answer, whatever its status.
async fn send(client: &reqwest::Client, master: &str, body: Vec<u8>) -> anyhow::Result<PushAnswer> {
    let url = format!("{master}push");
    let response = client.post(&url).body(body).send().await.with_context(|| {
        format!(
            "sending the push to {url} (the master may or may not have it: pushing again is safe)"
        )
    })?;
    let code = response.status();
    let body = response.bytes().await.with_context(|| {
        format!("the master at {url} did not finish its answer; pushing again is safe")
    })?;
    serde_json::from_slice(&body).map_err(|_| {
        anyhow::anyhow!(
            "{url} answered {code}: {}",
            String::from_utf8_lossy(&body[..body.len().min(512)]).trim()
        )
    })
}

/// The topic named by `wanted` (master-side name, topic id, or the name of
/// a local topic), or the master's only topic.
fn choose_topic<'a>(
    status: &'a Status,
    wanted: Option<&str>,
    home: &Home,
) -> anyhow::Result<&'a TopicSummary> {
    let names = || {
        status
            .topics
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(wanted) = wanted else {
        return match status.topics.as_slice() {
            [only] => Ok(only),
            _ => anyhow::bail!(
                "the master owns topics {}: choose one with --topic",
                names()
            ),
        };
    };
    if let Some(topic) = status
        .topics
        .iter()
        .find(|t| t.name == wanted || t.id.eq_ignore_ascii_case(wanted))
    {
        return Ok(topic);
    }
    if let Ok(key) = home.resolve_topic(wanted)
        && let Some(topic) = status.topics.iter().find(|t| t.id == key.to_hex())
    {
        return Ok(topic);
    }
    anyhow::bail!(
        "the master does not own topic {wanted:?} (it owns {})",
        names()
    )
}

/// The branch HEAD names.
fn current_branch(repo: &git2::Repository) -> anyhow::Result<String> {
    let head = repo.find_reference("HEAD")?;
    let target = head
        .symbolic_target()
        .context("HEAD names a branch that is not UTF-8")?
        .context("HEAD is detached: name the branch with --branch")?;
    target
        .strip_prefix("refs/heads/")
        .map(str::to_owned)
        .context("HEAD is not on a branch: name one with --branch")
}

/// The commits from `tip` back to what the master has (any of its branch
/// tips known here), parents first.
fn commits_to_push(
    repo: &git2::Repository,
    tip: ObjectId,
    master_tips: &[ObjectId],
) -> anyhow::Result<Vec<ObjectId>> {
    let mut walk = repo.revwalk()?;
    walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)?;
    walk.push(tip.to_git())?;
    let odb = repo.odb()?;
    for known in master_tips {
        if odb.exists(known.to_git()) {
            walk.hide(known.to_git())?;
        }
    }
    let mut commits = Vec::new();
    for oid in walk {
        let oid = oid?;
        commits.push(ObjectId::from_git(oid).context("SHA-256 repositories are not supported")?);
        anyhow::ensure!(
            commits.len() <= MAX_PUSH_COMMITS,
            "more than {MAX_PUSH_COMMITS} commits separate {tip} from what the master has: fetch its branch first, or push an older commit first"
        );
    }
    if commits.is_empty() {
        // The master already has the tip (a retried push): offer it alone,
        // so the branch still moves if it has to.
        commits.push(tip);
    }
    Ok(commits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(repo: &git2::Repository, parents: &[git2::Oid], text: &str) -> git2::Oid {
        let sig = git2::Signature::new("t", "t@t", &git2::Time::new(1, 0)).expect("sig");
        let mut index = git2::Index::new().expect("index");
        let blob = repo.blob(text.as_bytes()).expect("blob");
        index
            .add(&git2::IndexEntry {
                ctime: git2::IndexTime::new(0, 0),
                mtime: git2::IndexTime::new(0, 0),
                dev: 0,
                ino: 0,
                mode: 0o100644,
                uid: 0,
                gid: 0,
                file_size: 0,
                id: blob,
                flags: 0,
                flags_extended: 0,
                path: b"f".to_vec(),
            })
            .expect("add");
        let tree = repo
            .find_tree(index.write_tree_to(repo).expect("tree"))
            .expect("tree");
        let parents: Vec<git2::Commit> = parents
            .iter()
            .map(|p| repo.find_commit(*p).expect("parent"))
            .collect();
        let refs: Vec<&git2::Commit> = parents.iter().collect();
        repo.commit(None, &sig, &sig, text, &tree, &refs)
            .expect("commit")
    }

    #[test]
    fn only_commits_the_master_lacks_are_offered_parents_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = git2::Repository::init_bare(dir.path()).expect("repo");
        let a = commit(&repo, &[], "a");
        let b = commit(&repo, &[a], "b");
        let c = commit(&repo, &[b], "c");
        let id = |o: git2::Oid| ObjectId::from_git(o).expect("sha1");
        let all = commits_to_push(&repo, id(c), &[]).expect("walk");
        assert_eq!(all, vec![id(a), id(b), id(c)]);
        let rest = commits_to_push(&repo, id(c), &[id(a)]).expect("walk");
        assert_eq!(rest, vec![id(b), id(c)]);
        let unknown = ObjectId::from_hex("0123456789012345678901234567890123456789").expect("id");
        let rest = commits_to_push(&repo, id(c), &[id(b), unknown]).expect("walk");
        assert_eq!(rest, vec![id(c)]);
        let retried = commits_to_push(&repo, id(c), &[id(c)]).expect("walk");
        assert_eq!(retried, vec![id(c)]);
    }
}
