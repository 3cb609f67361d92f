//! A private network namespace for one test (`ip netns`): a world with no
//! route out, holding only its loopback interface, which carries 127.0.0.1
//! and the addresses the test gives it. Stock clients that default to the public DHT routers
//! (Transmission, qBittorrent) cannot reach them from inside, whatever their
//! settings, and addresses outside 127.0.0.0/8 (which Transmission refuses
//! as peers and DHT nodes) carry the traffic. Removed on drop, also when the
//! test panics.

//!
//! [`Lan`] builds the other shape: several such worlds, each a machine with
//! its own address, cabled (veth pairs) to one bridge.

use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use super::clients::require_program;

/// A named namespace, deleted on drop.
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates the namespace with loopback up, carrying `addresses` too (each
    /// a /32 on `lo`: the kernel has no dummy devices), all local to it and
    /// reachable from each other. For separate machines on one segment, see
    /// [`Lan`].
    pub fn new(tag: &str, addresses: &[Ipv4Addr]) -> Self {
        require_program("ip", "iproute2");
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "xus-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name]);
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        for address in addresses {
            ns.ip(&["addr", "add", &format!("{address}/32"), "dev", "lo"]);
        }
        ns
    }

    /// `program` to run inside the namespace (`ip netns exec NAME program`,
    /// which execs it: the child's pid is the program's).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// The namespace's name, for `ip netns exec`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME ARGS`, panicking on failure.
    fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all);
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Processes still inside keep the namespace alive until they exit;
        // the name goes now either way.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A LAN segment inside the test: a bridge in a namespace of its own, and
/// hosts, each a namespace with one veth cable to the bridge, address
/// `10.88.0.<n>/24` (n from 1), and its default route onto the segment, as a
/// machine on an office LAN has (nothing beyond the hosts answers). Multicast
/// crosses the bridge (BEP 14 local service discovery works); nothing
/// leaves the test's namespaces. Removed on drop, also when the test panics.
pub struct Lan {
    // Dropped first: the hosts, then the bridge (veth pairs go with them).
    hosts: Vec<NetNs>,
    _bridge: NetNs,
}

impl Lan {
    /// `count` hosts on one bridge.
    pub fn new(tag: &str, count: usize) -> Self {
        assert!((1..=250).contains(&count), "a /24 holds the hosts");
        let bridge = NetNs::new(&format!("{tag}-br"), &[]);
        bridge.ip(&["link", "add", "br0", "type", "bridge"]);
        // Every group flooded to every port: no IGMP querier needed.
        bridge.ip(&[
            "link",
            "set",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        bridge.ip(&["link", "set", "br0", "up"]);
        let mut hosts = Vec::with_capacity(count);
        for n in 1..=count {
            let host = NetNs::new(&format!("{tag}-h{n}"), &[]);
            let port = format!("port{n}");
            // Made inside the host, its peer end sent straight to the
            // bridge's namespace: no name is ever taken in the root one.
            host.ip(&[
                "link",
                "add",
                "eth0",
                "type",
                "veth",
                "peer",
                "name",
                &port,
                "netns",
                bridge.name(),
            ]);
            bridge.ip(&["link", "set", &port, "master", "br0"]);
            bridge.ip(&["link", "set", &port, "up"]);
            let address = Self::address_of(n);
            host.ip(&["addr", "add", &format!("{address}/24"), "dev", "eth0"]);
            host.ip(&["link", "set", "eth0", "up"]);
            host.ip(&["route", "add", "default", "dev", "eth0"]);
            hosts.push(host);
        }
        Self {
            hosts,
            _bridge: bridge,
        }
    }

    /// Host `n` (from 1).
    pub fn host(&self, n: usize) -> &NetNs {
        &self.hosts[n - 1]
    }

    /// Host `n`'s address.
    pub fn address(&self, n: usize) -> Ipv4Addr {
        assert!((1..=self.hosts.len()).contains(&n), "no host {n}");
        Self::address_of(n)
    }

    /// Bytes host `n` has sent on its cable so far (the kernel's count):
    /// what a peer uploaded, whatever the peer says about itself.
    pub fn sent_bytes(&self, n: usize) -> u64 {
        let out = self
            .host(n)
            .command("cat")
            .arg("/sys/class/net/eth0/statistics/tx_bytes")
            .output()
            .expect("reading the cable's byte count");
        assert!(out.status.success(), "cat tx_bytes: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("tx_bytes is a number")
    }

    /// Starts counting the bytes host `to` receives from host `from` (an
    /// nftables counter in `to`'s namespace; read with [`Lan::received`]).
    pub fn count_received(&self, to: usize, from: usize) {
        let table = "table inet xus_count { chain input { type filter hook input priority 0; }; }";
        self.nft(to, &["-f", "-"], Some(table));
        let source = self.address(from).to_string();
        self.nft(
            to,
            &[
                "add",
                "rule",
                "inet",
                "xus_count",
                "input",
                "ip",
                "saddr",
                &source,
                "counter",
            ],
            None,
        );
    }

    /// Bytes host `to` received from host `from` since
    /// [`Lan::count_received`].
    pub fn received(&self, to: usize, from: usize) -> u64 {
        let listing = self.nft(to, &["list", "chain", "inet", "xus_count", "input"], None);
        let needle = format!("ip saddr {} counter", self.address(from));
        let line = listing
            .lines()
            .find(|l| l.contains(&needle))
            .unwrap_or_else(|| panic!("no counter for host {from} on host {to}:\n{listing}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        words
            .iter()
            .position(|w| *w == "bytes")
            .and_then(|i| words.get(i + 1))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no byte count in {line:?}"))
    }

    /// `nft ARGS` inside host `n`, with `stdin`; panics on failure.
    fn nft(&self, n: usize, args: &[&str], stdin: Option<&str>) -> String {
        use std::io::Write;
        require_program("nft", "nftables");
        let mut child = self
            .host(n)
            .command("nft")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("running nft");
        let mut input = child.stdin.take().expect("stdin");
        input
            .write_all(stdin.unwrap_or("").as_bytes())
            .expect("writing to nft");
        drop(input);
        let out = child.wait_with_output().expect("nft");
        assert!(
            out.status.success(),
            "nft {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn address_of(n: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 88, 0, u8::try_from(n).expect("at most 250 hosts"))
    }
}

/// `ip ARGS`, panicking with its stderr on failure.
fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running ip {args:?}: {e}"));
    assert!(
        out.status.success(),
        "ip {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
