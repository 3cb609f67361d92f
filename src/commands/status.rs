//! `xus status`: what a repository follows and serves, against what the
//! DHT says now.

use std::io::Write;
use std::path::PathBuf;

use crate::swarm::discovery::{self, DhtOptions};
use crate::swarm::repo_status::{self, Published, RepoStatus, Standing};
use crate::topic::home::Home;

/// Options of `xus status`.
#[derive(Debug, Clone)]
pub struct StatusOptions {
    /// The repository.
    pub repo: PathBuf,
    /// Report only what is on this machine: no DHT lookups.
    pub offline: bool,
    /// Which DHT.
    pub dht: DhtOptions,
    /// xus's directory.
    pub home: Home,
}

/// Prints the status:
///
/// ```text
/// repository <git dir>
/// follows <url> [owned]
///   local     <commit> (branches: main)
///   seen      <commit> seq <n>
///   published <commit> seq <n>: up to date | behind | ahead | diverged
///   peers     <n> on the DHT
/// seed <addr> pid <pid>: <n> torrent(s), running | not running
/// ```
///
/// With `json`, one line instead: `{"event":"status",…}` with the same
/// facts (see [`to_json`]).
pub async fn run(
    options: StatusOptions,
    json: bool,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let dht = if options.offline {
        None
    } else {
        let config = discovery::config(&options.dht, &options.home)?;
        Some(discovery::start(&config).await?)
    };
    let status = repo_status::gather(&options.repo, &options.home, dht.as_deref()).await?;
    if json {
        serde_json::to_writer(&mut *out, &to_json(&status))?;
        writeln!(out)?;
    } else {
        print(&status, out)?;
    }
    out.flush()?;
    Ok(())
}

/// The status as `xus status --json` prints it: `repository`, `followed`
/// (per branch: `url`, `owned`, `local`, `branches`, `seen` and `published`
/// heads with `commit` and `seq`, `standing`
/// `up_to_date`|`behind`|`ahead`|`diverged`, `peers`; `published` is null
/// offline and `{"found":false,"refused":[…]}` when the DHT has none), and
/// `seed` (null, or `address`, `pid`, `torrents`, `running`).
pub fn to_json(status: &RepoStatus) -> serde_json::Value {
    use serde_json::{Value, json};
    let head = |head: &tracker_free::SignedHead| json!({"commit": crate::hex::encode(&head.head.commit), "seq": head.seq});
    let followed: Vec<Value> = status
        .followed
        .iter()
        .map(|followed| {
            let published = match &followed.published {
                None => Value::Null,
                Some(Published::NotFound { refused }) => {
                    json!({"found": false, "refused": refused})
                }
                Some(Published::Head {
                    head: signed,
                    standing,
                    peers,
                }) => {
                    let mut value = head(signed);
                    value["found"] = true.into();
                    value["standing"] = match standing {
                        Standing::UpToDate => "up_to_date",
                        Standing::Behind => "behind",
                        Standing::Ahead => "ahead",
                        Standing::Diverged => "diverged",
                    }
                    .into();
                    value["peers"] = (*peers).into();
                    value
                }
            };
            json!({
                "url": followed.address.url(),
                "owned": followed.owned,
                "local": followed.local,
                "branches": followed.branches,
                "seen": followed.seen.as_ref().map(head),
                "published": published,
            })
        })
        .collect();
    let seed = status.seed.as_ref().map(|seed| {
        json!({
            "address": seed.addr,
            "pid": seed.pid,
            "torrents": seed.torrents,
            "running": seed.running,
        })
    });
    json!({
        "event": "status",
        "repository": status.git_dir,
        "followed": followed,
        "seed": seed,
    })
}

fn print(status: &RepoStatus, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    writeln!(out, "repository {}", status.git_dir.display())?;
    if status.followed.is_empty() {
        writeln!(
            out,
            "follows nothing (xus fetch or git clone xus://… records what it follows)"
        )?;
    }
    for followed in &status.followed {
        let owned = if followed.owned { " [owned]" } else { "" };
        writeln!(out, "follows {}{owned}", followed.address.url())?;
        let branches = if followed.branches.is_empty() {
            String::new()
        } else {
            format!(" (branches: {})", followed.branches.join(", "))
        };
        writeln!(out, "  local     {}{branches}", followed.local)?;
        if let Some(seen) = &followed.seen {
            writeln!(
                out,
                "  seen      {} seq {}",
                crate::hex::encode(&seen.head.commit),
                seen.seq
            )?;
        }
        match &followed.published {
            None => {}
            Some(Published::NotFound { refused }) => {
                writeln!(out, "  published none found on the DHT")?;
                for reason in refused {
                    writeln!(out, "  refused   {reason}")?;
                }
            }
            Some(Published::Head {
                head,
                standing,
                peers,
            }) => {
                let standing = match standing {
                    Standing::UpToDate => "up to date",
                    Standing::Behind => "behind (xus fetch or git pull brings it)",
                    Standing::Ahead => "ahead (the local commit is not published)",
                    Standing::Diverged => "diverged (neither descends from the other)",
                };
                writeln!(
                    out,
                    "  published {} seq {}: {standing}",
                    crate::hex::encode(&head.head.commit),
                    head.seq
                )?;
                writeln!(out, "  peers     {peers} on the DHT")?;
            }
        }
    }
    match &status.seed {
        None => writeln!(out, "seed none")?,
        Some(seed) => writeln!(
            out,
            "seed {} pid {}: {} torrent(s), {}",
            seed.addr,
            seed.pid
                .map_or_else(|| "?".to_owned(), |pid| pid.to_string()),
            seed.torrents,
            if seed.running {
                "running"
            } else {
                "not running"
            }
        )?,
    }
    Ok(())
}
