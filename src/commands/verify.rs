//! `xus verify`: check a repository and its work tree against a commit, and
//! with `--repair` fetch back only what is broken (the library side is
//! [`crate::swarm::repair`]).

use std::net::SocketAddr;
use std::sync::Arc;

use super::failure::{ErrorKind, failure};
use super::report::{JsonReport, StderrReport};
use crate::git::integrity::{Problem, Report};
use crate::swarm::discovery::{self, DhtOptions};
use crate::swarm::engine::RateLimits;
use crate::swarm::fetch::{FetchReport, FetchRequest, Source, parse_source};
use crate::swarm::output::{Event, Output};
use crate::swarm::repair;
use crate::swarm::{Swarm, SwarmOptions};
use crate::topic::home::Home;

/// Options of `xus verify`.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// The commit to check against (a ref, a branch or an id).
    pub rev: String,
    /// Fetch what is broken and check the work tree out again.
    pub repair: bool,
    /// Where the commit's torrent comes from, when neither a followed head
    /// nor the torrent cache knows it.
    pub source: Option<String>,
    /// The fetch's settings (`repo`, peers, webseeds, timeouts).
    pub request: FetchRequest,
    /// Where to accept peers.
    pub listen: SocketAddr,
    /// Speed caps.
    pub rates: RateLimits,
    /// Local service discovery.
    pub lsd: bool,
    /// Which DHT.
    pub dht: DhtOptions,
    /// Stay off the DHT (only --peer, magnet peers and webseeds).
    pub no_dht: bool,
    /// xus's directory.
    pub home: Home,
}

/// Prints each problem (`missing object <id> (<kind>) <path>`, `corrupt
/// object …`, `damaged pack <file>: <why>`, `changed file <path>`, `missing
/// file <path>`) and `verified <commit>: …, N problem(s)`. With `repair`,
/// then what it set aside, the fetch's report on stderr, each `restored
/// <path>`, and `repaired <commit>`. Without `repair`, problems end in an
/// error (exit 1).
pub async fn run(options: VerifyOptions, out: &mut Output<'_>) -> anyhow::Result<()> {
    let named = match &options.source {
        Some(text) => Some(parse_source(text, &options.home)?),
        None => None,
    };
    let (repo_path, rev) = (options.request.repo.clone(), options.rev.clone());
    let (git_dir, commit) = tokio::task::spawn_blocking(move || {
        let repo = crate::git::repo::open(&repo_path)?;
        let commit = repair::target_commit(&repo, &rev)?;
        anyhow::Ok((repo.path().to_owned(), commit))
    })
    .await??;
    let report = repair::check(&options.request.repo, commit).await?;
    print_report(&report, out)?;
    if report.problems.is_empty() {
        return Ok(());
    }
    if !options.repair {
        return Err(failure(
            ErrorKind::Failed,
            format!(
                "{} problem(s) against {commit}: `xus verify --repair` fetches what is broken and checks the files out again",
                report.problems.len()
            ),
        ));
    }
    let needs_fetch = report.problems.iter().any(Problem::is_in_object_database);
    let is_head = matches!(named, Some(Source::Head(_)));
    anyhow::ensure!(
        !is_head,
        "--source names a head, whose commit may have moved on: give the commit's magnet link, .torrent or infohash"
    );
    let dht = if needs_fetch && !options.no_dht {
        Some(discovery::config(&options.dht, &options.home)?)
    } else {
        None
    };
    let swarm = Swarm::start(&SwarmOptions {
        listen: options.listen,
        rates: options.rates,
        lsd: options.lsd && needs_fetch,
        dht,
        feed: !options.request.webseeds.is_empty()
            || named.as_ref().is_some_and(Source::names_webseeds),
    })
    .await?;
    let fetch_report: Arc<dyn FetchReport> = if out.is_json() {
        Arc::new(JsonReport::new())
    } else {
        Arc::new(StderrReport::new())
    };
    let repaired = repair::repair(
        &swarm,
        report,
        || repair::repair_source(&git_dir, commit, named, &options.home),
        &options.request,
        &fetch_report,
    )
    .await;
    swarm.stop().await;
    let repaired = repaired?;
    if let Some(aside) = &repaired.set_aside {
        for path in &aside.moved {
            out.emit(&Event::SetAside {
                path: path.display().to_string(),
            })?;
        }
        out.emit(&Event::Salvaged {
            objects: aside.salvaged,
            unreadable: aside.unreadable.len(),
        })?;
    }
    if let Some(fetched) = &repaired.fetched {
        out.emit(&Event::Fetched {
            commit: fetched.commit,
            info_hash: fetched.info_hash,
        })?;
    }
    for path in &repaired.restored {
        let backup = repaired
            .backups
            .iter()
            .find(|b| b.ends_with(path))
            .map(|b| b.display().to_string());
        out.emit(&Event::Restored {
            path: path.clone(),
            backup,
        })?;
    }
    print_report(&repaired.after, out)?;
    out.emit(&Event::Repaired { commit })?;
    Ok(())
}

fn print_report(report: &Report, out: &mut Output<'_>) -> anyhow::Result<()> {
    for problem in &report.problems {
        out.emit(&broken(problem))?;
    }
    out.emit(&Event::Verified {
        commit: report.commit,
        objects: report.objects_checked,
        bytes: report.object_bytes,
        files: report.files_checked,
        problems: report.problems.len(),
    })?;
    Ok(())
}

fn broken(problem: &Problem) -> Event {
    let kind_name = |kind: &git2::ObjectType| Some(kind.str());
    match problem {
        Problem::MissingObject { id, kind, path } => Event::Broken {
            what: "missing_object",
            id: Some(*id),
            kind: kind_name(kind),
            path: path.clone(),
            detail: None,
        },
        Problem::CorruptObject {
            id,
            kind,
            path,
            loose,
        } => Event::Broken {
            what: "corrupt_object",
            id: Some(*id),
            kind: kind_name(kind),
            path: path.clone(),
            detail: Some(match loose {
                Some(file) => format!("loose object {}", file.display()),
                None => "in a pack".to_owned(),
            }),
        },
        Problem::DamagedPack { pack, why } => Event::Broken {
            what: "damaged_pack",
            id: None,
            kind: None,
            path: pack.display().to_string(),
            detail: Some(why.clone()),
        },
        Problem::ChangedFile { path, expected } => Event::Broken {
            what: "changed_file",
            id: Some(*expected),
            kind: None,
            path: path.clone(),
            detail: None,
        },
        Problem::MissingFile { path, expected } => Event::Broken {
            what: "missing_file",
            id: Some(*expected),
            kind: None,
            path: path.clone(),
            detail: None,
        },
    }
}
