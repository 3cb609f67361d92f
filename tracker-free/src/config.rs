//! How a DHT node starts: whom it bootstraps from, where it listens.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::time::Duration;

/// The well-known public routers a node bootstraps from when it is given no
/// other nodes. Used only for real deployments; tests always name loopback
/// nodes (see [`DhtConfig::require_loopback`]).
pub const PUBLIC_BOOTSTRAP_NODES: [&str; 4] = mainline::DEFAULT_BOOTSTRAP_NODES;

/// Settings for one DHT node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhtConfig {
    /// `HOST:PORT` of nodes to join through. `None` means the public routers;
    /// an empty list means "join nobody" (the first node of a private DHT).
    pub bootstrap: Option<Vec<String>>,
    /// UDP port to listen on; `None` picks a free one.
    pub port: Option<u16>,
    /// IPv4 address to bind; `None` binds every interface.
    pub bind: Option<Ipv4Addr>,
    /// How long one KRPC request may take. Two seconds suits the Internet;
    /// loopback networks answer in well under 100 ms.
    pub request_timeout: Duration,
    /// Answer other nodes' queries from the start instead of after the
    /// node has proven reachable. Right for private DHTs and bootstrap nodes.
    pub server_mode: bool,
    /// Send nothing outside 127.0.0.0/8, whoever names the address (the
    /// test guard). Whatever this says, nothing is ever sent to the
    /// unspecified address, broadcast, multicast or port 0.
    pub loopback_only: bool,
}

impl Default for DhtConfig {
    fn default() -> Self {
        Self {
            bootstrap: None,
            port: None,
            bind: None,
            request_timeout: mainline::DEFAULT_REQUEST_TIMEOUT,
            server_mode: false,
            loopback_only: false,
        }
    }
}

/// Returned by [`DhtConfig::resolve_bootstrap`] and [`DhtConfig::require_loopback`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A bootstrap entry did not resolve to any IPv4 address.
    #[error("bootstrap node '{node}' does not resolve to an IPv4 address")]
    Unresolvable {
        /// The entry as given.
        node: String,
    },
    /// The configuration would contact nodes outside 127.0.0.0/8.
    #[error("DHT restricted to loopback, but {what} is not a loopback address")]
    NotLoopback {
        /// The public default or the offending entry.
        what: String,
    },
}

impl DhtConfig {
    /// The bootstrap list as socket addresses (IPv4 only: the mainline DHT of
    /// BEP 5 is IPv4). `None` stands for the public routers.
    pub fn resolve_bootstrap(&self) -> Result<Option<Vec<SocketAddrV4>>, ConfigError> {
        let Some(nodes) = &self.bootstrap else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(nodes.len());
        for node in nodes {
            let resolved: Vec<SocketAddrV4> = node
                .to_socket_addrs()
                .map_err(|_| ConfigError::Unresolvable { node: node.clone() })?
                .filter_map(|a| match a {
                    SocketAddr::V4(v4) => Some(v4),
                    SocketAddr::V6(_) => None,
                })
                .collect();
            if resolved.is_empty() {
                return Err(ConfigError::Unresolvable { node: node.clone() });
            }
            out.extend(resolved);
        }
        Ok(Some(out))
    }

    /// Refuses any setting that would reach beyond 127.0.0.0/8: the public
    /// routers, a remote bootstrap node, or a non-loopback bind address.
    /// Test harnesses turn this on so that no test can leak onto the Internet.
    pub fn require_loopback(&self) -> Result<(), ConfigError> {
        if let Some(bind) = self.bind
            && !bind.is_loopback()
        {
            return Err(ConfigError::NotLoopback {
                what: format!("bind address {bind}"),
            });
        }
        match self.resolve_bootstrap()? {
            None => Err(ConfigError::NotLoopback {
                what: "the public bootstrap routers".to_string(),
            }),
            Some(nodes) => match nodes.iter().find(|a| !a.ip().is_loopback()) {
                Some(bad) => Err(ConfigError::NotLoopback {
                    what: format!("bootstrap node {bad}"),
                }),
                None => Ok(()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_uses_public_routers_and_loopback_guard_refuses_it() {
        let config = DhtConfig::default();
        assert_eq!(config.resolve_bootstrap().expect("no lookup"), None);
        assert!(matches!(
            config.require_loopback(),
            Err(ConfigError::NotLoopback { .. })
        ));
    }

    #[test]
    fn loopback_guard_accepts_loopback_only() {
        let mut config = DhtConfig {
            bootstrap: Some(vec!["127.0.0.1:6881".into(), "127.0.0.2:1".into()]),
            bind: Some(Ipv4Addr::LOCALHOST),
            ..DhtConfig::default()
        };
        config.require_loopback().expect("all loopback");
        config.bootstrap = Some(vec!["127.0.0.1:6881".into(), "10.0.0.1:6881".into()]);
        assert!(config.require_loopback().is_err());
        config.bootstrap = Some(vec![]);
        config.bind = Some(Ipv4Addr::UNSPECIFIED);
        assert!(config.require_loopback().is_err());
    }

    #[test]
    fn unresolvable_bootstrap_is_an_error() {
        let config = DhtConfig {
            bootstrap: Some(vec!["not an address".into()]),
            ..DhtConfig::default()
        };
        assert!(matches!(
            config.resolve_bootstrap(),
            Err(ConfigError::Unresolvable { .. })
        ));
    }
}
