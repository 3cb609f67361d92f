//! `xus dht serve`: DHT nodes that answer others, for clusters that run
//! their own DHT (no Internet) and for bootstrap nodes.

use std::io::Write;
use std::net::Ipv4Addr;

use anyhow::Context;
use tracker_free::{Dht, DhtConfig};

use crate::swarm::discovery::LOOPBACK_ONLY_ENV;

/// Options of `xus dht serve`.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// How many nodes.
    pub nodes: usize,
    /// Address to bind.
    pub bind: Ipv4Addr,
    /// Port of the first node.
    pub port: Option<u16>,
    /// Nodes to join; empty starts a new DHT.
    pub bootstrap: Vec<String>,
}

/// Runs the nodes until Ctrl-C or SIGTERM; prints `dht <addr>` per node.
pub async fn serve(options: ServeOptions, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=1000).contains(&options.nodes),
        "--nodes must be between 1 and 1000"
    );
    let first = DhtConfig {
        bootstrap: Some(options.bootstrap.clone()),
        port: options.port,
        bind: Some(options.bind),
        server_mode: true,
        loopback_only: crate::swarm::dial_policy::loopback_only(),
        ..DhtConfig::default()
    };
    if first.loopback_only {
        first
            .require_loopback()
            .with_context(|| format!("{LOOPBACK_ONLY_ENV}=1 is set"))?;
    }
    let nodes = if options.bootstrap.is_empty() && options.port.is_none() && options.nodes > 1 {
        // A fresh private DHT: every node starts knowing every other.
        Dht::start_private_network(options.nodes, options.bind, first.loopback_only)?
    } else {
        let mut nodes = vec![Dht::start(&first)?];
        let entry = nodes[0].local_addr().await.to_string();
        for _ in 1..options.nodes {
            let mut config = first.clone();
            config.port = None;
            let mut bootstrap = vec![entry.clone()];
            bootstrap.extend(options.bootstrap.iter().cloned());
            config.bootstrap = Some(bootstrap);
            nodes.push(Dht::start(&config)?);
        }
        nodes
    };
    let shutdown = super::shutdown_signal();
    for node in &nodes {
        writeln!(out, "dht {}", node.local_addr().await)?;
    }
    out.flush()?;
    shutdown.await;
    drop(nodes);
    Ok(())
}
