//! `xus master`: run a topic master, or ask a running one how it is doing.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use crate::master::config::MasterConfig;

/// Runs the master of `config` until Ctrl-C or SIGTERM; `init` lets a
/// topic whose backups cannot be read start empty.
pub async fn run(config: &Path, init: bool, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let config = MasterConfig::load(config)?;
    crate::master::run(config, init, super::shutdown_signal(), out).await
}

/// Prints the running master's branches and each backup remote's lag (the
/// JSON of `GET /status` with `json`).
pub async fn status(config: &Path, json: bool, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let config = MasterConfig::load(config)?;
    let addr = reachable(config.http);
    let url = match addr {
        SocketAddr::V4(a) => format!("http://{}:{}/status", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("http://[{}]:{}/status", a.ip(), a.port()),
    };
    let client = reqwest::Client::builder()
        .redirect(crate::swarm::dial_policy::redirect_policy())
        .timeout(Duration::from_secs(30))
        .build()
        .context("starting the HTTP client")?;
    let response = client
        .get(&url)
        .send()
        .await
        .with_context(|| format!("asking the master at {url}; is it running?"))?;
    let code = response.status();
    let body = response.bytes().await.context("reading the status")?;
    anyhow::ensure!(
        code.is_success(),
        "{url} answered {code}: {}",
        String::from_utf8_lossy(&body[..body.len().min(512)])
    );
    if json {
        out.write_all(&body)?;
        return Ok(());
    }
    let status: serde_json::Value =
        serde_json::from_slice(&body).with_context(|| format!("{url} is not a xus master"))?;
    print_status(&status, out)
}

/// A wildcard bind address is reached on loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => {
            SocketAddr::from(([127, 0, 0, 1], a.port()))
        }
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port()))
        }
        other => other,
    }
}

fn print_status(status: &serde_json::Value, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let text = |v: &serde_json::Value, key: &str| {
        v.get(key)
            .map(|x| match x {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => "-".to_owned(),
                other => other.to_string(),
            })
            .unwrap_or_else(|| "-".to_owned())
    };
    let empty = Vec::new();
    let topics = status
        .get("topics")
        .and_then(|t| t.as_array())
        .unwrap_or(&empty);
    for topic in topics {
        writeln!(out, "topic {} {}", text(topic, "name"), text(topic, "id"))?;
        for branch in topic
            .get("branches")
            .and_then(|b| b.as_array())
            .unwrap_or(&empty)
        {
            writeln!(
                out,
                "  branch {} {} seq {}",
                text(branch, "name"),
                text(branch, "commit"),
                text(branch, "seq")
            )?;
        }
        for backup in topic
            .get("backups")
            .and_then(|b| b.as_array())
            .unwrap_or(&empty)
        {
            writeln!(out, "  backup {}", describe_backup(backup))?;
        }
    }
    Ok(())
}

/// One line per backup remote, from the fields of
/// [`crate::master::backup::RemoteStatus`].
fn describe_backup(backup: &serde_json::Value) -> String {
    let url = backup["url"].as_str().unwrap_or("?");
    let refs = backup["refs_behind"].as_u64().unwrap_or(0);
    let mut line = if refs == 0 {
        format!("{url}: up to date")
    } else {
        let mut line = format!(
            "{url}: {} commit(s) behind on {refs} ref(s)",
            backup["commits_behind"].as_u64().unwrap_or(0)
        );
        if let Some(since) = backup["behind_since"].as_u64() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            line.push_str(&format!(" for {} s", now.saturating_sub(since)));
        }
        line
    };
    if let Some(error) = backup["last_error"].as_str() {
        line.push_str(&format!("; last error: {error}"));
    }
    line
}
