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

    /// `xus` inside the namespace with `XUS_HOME` set to `home`, and no
    /// loopback test guard: a test's namespaces have no way out, and the
    /// guard would refuse the namespace's own addresses.
    pub fn xus(&self, home: &std::path::Path) -> Command {
        let mut command = self.command(super::xus_bin());
        command.env("XUS_HOME", home);
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
    // Dropped in this order: home networks, hosts, then the bridge (veth
    // pairs go with their namespaces).
    sites: Vec<NatSite>,
    hosts: Vec<NetNs>,
    bridge: NetNs,
}

/// A home network behind a NAT router on the [`Lan`] (see
/// [`Lan::add_nat_site`]).
struct NatSite {
    // The hosts go before their router.
    hosts: Vec<NetNs>,
    _router: NetNs,
}

/// Cables `host`'s new interface `name` (veth) to `bridge` (an existing
/// bridge in namespace `switch`) through a port called `port`, both up.
fn cable(host: &NetNs, name: &str, switch: &NetNs, bridge: &str, port: &str) {
    // Made inside the host, its peer end sent straight to the switch's
    // namespace: no name is ever taken in the root one.
    host.ip(&[
        "link",
        "add",
        name,
        "type",
        "veth",
        "peer",
        "name",
        port,
        "netns",
        switch.name(),
    ]);
    switch.ip(&["link", "set", port, "master", bridge]);
    switch.ip(&["link", "set", port, "up"]);
    host.ip(&["link", "set", name, "up"]);
}

/// A bridge `name` in `ns`, up, flooding every multicast group to every
/// port (no IGMP querier needed).
fn bridge_in(ns: &NetNs, name: &str) {
    ns.ip(&["link", "add", name, "type", "bridge"]);
    ns.ip(&["link", "set", name, "type", "bridge", "mcast_snooping", "0"]);
    ns.ip(&["link", "set", name, "up"]);
}

impl Lan {
    /// `count` hosts on one bridge.
    pub fn new(tag: &str, count: usize) -> Self {
        assert!(
            (1..=199).contains(&count),
            "hosts stay below the routers' .200 and up"
        );
        let bridge = NetNs::new(&format!("{tag}-br"), &[]);
        bridge_in(&bridge, "br0");
        let mut hosts = Vec::with_capacity(count);
        for n in 1..=count {
            let host = NetNs::new(&format!("{tag}-h{n}"), &[]);
            cable(&host, "eth0", &bridge, "br0", &format!("port{n}"));
            let address = Self::address_of(n);
            host.ip(&["addr", "add", &format!("{address}/24"), "dev", "eth0"]);
            host.ip(&["route", "add", "default", "dev", "eth0"]);
            hosts.push(host);
        }
        Self {
            sites: Vec::new(),
            hosts,
            bridge,
        }
    }

    /// Gives every host an IPv6 address besides its IPv4 one,
    /// [`Lan::address6`] (`fd88::<n>/64`, a unique local address, usable at
    /// once: no duplicate address detection).
    pub fn enable_ipv6(&self) {
        for (i, host) in self.hosts.iter().enumerate() {
            let address = Self::address6_of(i + 1);
            host.ip(&[
                "-6",
                "addr",
                "add",
                &format!("{address}/64"),
                "dev",
                "eth0",
                "nodad",
            ]);
        }
    }

    /// Host `n`'s IPv6 address (after [`Lan::enable_ipv6`]).
    pub fn address6(&self, n: usize) -> std::net::Ipv6Addr {
        assert!((1..=self.hosts.len()).contains(&n), "no host {n}");
        Self::address6_of(n)
    }

    fn address6_of(n: usize) -> std::net::Ipv6Addr {
        std::net::Ipv6Addr::new(
            0xfd88,
            0,
            0,
            0,
            0,
            0,
            0,
            u16::try_from(n).expect("a host number"),
        )
    }

    /// Adds home network `k` (1, 2, ...; returned) of `count` hosts behind
    /// a NAT router, as a reader at home or a laptop in a café has: the
    /// router is on the LAN at [`Lan::router_address`], and on its own
    /// bridge at `192.168.k.1/24`, to which the site's hosts are cabled
    /// ([`Lan::behind_address`], default route via the router). It
    /// masquerades what leaves for the LAN and, as home routers do, drops
    /// every connection that starts outside; nothing on the LAN has a route
    /// to the site's addresses either.
    pub fn add_nat_site(&mut self, count: usize) -> usize {
        let k = self.sites.len() + 1;
        assert!(k <= 50 && (1..=250).contains(&count), "sites and hosts fit");
        let tag = self.bridge.name().trim_end_matches("-br").to_owned();
        let router = NetNs::new(&format!("nat{k}-r"), &[]);
        cable(&router, "eth0", &self.bridge, "br0", &format!("rport{k}"));
        let outside = Self::router_address_of(k);
        router.ip(&["addr", "add", &format!("{outside}/24"), "dev", "eth0"]);
        router.ip(&["route", "add", "default", "dev", "eth0"]);
        bridge_in(&router, "home0");
        router.ip(&["addr", "add", &format!("192.168.{k}.1/24"), "dev", "home0"]);
        let forwarding = router
            .command("sh")
            .args(["-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"])
            .status()
            .expect("turning forwarding on");
        assert!(forwarding.success(), "ip_forward in the router");
        nft_in(
            &router,
            &["-f", "-"],
            Some(concat!(
                "table ip nat { chain post { type nat hook postrouting priority srcnat; ",
                "oifname \"eth0\" masquerade; }; }\n",
                "table inet filter { chain forward { type filter hook forward priority filter; ",
                "policy drop; ct state established,related accept; iifname \"home0\" accept; }; }\n",
            )),
        );
        let mut hosts = Vec::with_capacity(count);
        for n in 1..=count {
            let host = NetNs::new(&format!("{tag}-s{k}h{n}"), &[]);
            cable(&host, "eth0", &router, "home0", &format!("hport{n}"));
            let address = Self::behind_address_of(k, n);
            host.ip(&["addr", "add", &format!("{address}/24"), "dev", "eth0"]);
            host.ip(&["route", "add", "default", "via", &format!("192.168.{k}.1")]);
            hosts.push(host);
        }
        self.sites.push(NatSite {
            hosts,
            _router: router,
        });
        k
    }

    /// Gives LAN host `n` a route into home network `k` through its
    /// router, as if the private addresses were reachable: only the
    /// router's firewall then stands between them (what a test of "nobody
    /// outside can open a connection in" needs).
    pub fn route_into_site(&self, n: usize, k: usize) {
        let via = self.router_address(k).to_string();
        self.host(n)
            .ip(&["route", "add", &format!("192.168.{k}.0/24"), "via", &via]);
    }

    /// Host `n` of home network `k`.
    pub fn behind(&self, k: usize, n: usize) -> &NetNs {
        &self.sites[k - 1].hosts[n - 1]
    }

    /// The private address of host `n` of home network `k`.
    pub fn behind_address(&self, k: usize, n: usize) -> Ipv4Addr {
        assert!(k <= self.sites.len() && n <= self.sites[k - 1].hosts.len());
        Self::behind_address_of(k, n)
    }

    /// The LAN address of home network `k`'s router: what its hosts look
    /// like from outside.
    pub fn router_address(&self, k: usize) -> Ipv4Addr {
        assert!((1..=self.sites.len()).contains(&k), "no site {k}");
        Self::router_address_of(k)
    }

    fn behind_address_of(k: usize, n: usize) -> Ipv4Addr {
        let k = u8::try_from(k).expect("site");
        Ipv4Addr::new(192, 168, k, u8::try_from(n + 1).expect("host"))
    }

    fn router_address_of(k: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 88, 0, 200 + u8::try_from(k).expect("site"))
    }

    /// `xus seed` of `repo`'s HEAD on host `n`, on its LAN address, DHT off
    /// and no peer given, with `extra` options; returns it and the bare
    /// magnet (no `x.pe`, no `ws=`: nothing but the infohash).
    pub fn seed(
        &self,
        n: usize,
        home: &std::path::Path,
        repo: &std::path::Path,
        extra: &[&str],
    ) -> (super::Seeder, String) {
        let listen = format!("{}:0", self.address(n));
        let mut args = vec!["--listen", listen.as_str()];
        args.extend_from_slice(extra);
        // Without `--bootstrap`, spawn_seed_with adds --no-dht.
        let seeder = super::spawn_seed_with(self.host(n).xus(home), repo, &args);
        let seeded = seeder.seeded.first().expect("a `seeding` line");
        let magnet = format!("magnet:?xt=urn:btih:{}", seeded.info_hash);
        (seeder, magnet)
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

    /// Makes host `from` drop every packet it sends to host `to`'s `port`,
    /// TCP and UDP (uTP shares the BitTorrent port number): as if a
    /// firewall between them let only other ports through.
    pub fn block_port(&self, from: usize, to: usize, port: u16) {
        let table =
            "table inet xus_block { chain output { type filter hook output priority 0; }; }";
        self.nft(from, &["-f", "-"], Some(table));
        let (dest, port) = (self.address(to).to_string(), port.to_string());
        for protocol in ["tcp", "udp"] {
            self.nft(
                from,
                &[
                    "add",
                    "rule",
                    "inet",
                    "xus_block",
                    "output",
                    "ip",
                    "daddr",
                    &dest,
                    protocol,
                    "dport",
                    &port,
                    "drop",
                ],
                None,
            );
        }
    }

    /// `nft ARGS` inside host `n`, with `stdin`; panics on failure.
    fn nft(&self, n: usize, args: &[&str], stdin: Option<&str>) -> String {
        nft_in(self.host(n), args, stdin)
    }

    fn address_of(n: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 88, 0, u8::try_from(n).expect("at most 250 hosts"))
    }
}

/// `nft ARGS` inside `ns`, with `stdin`; panics on failure.
fn nft_in(ns: &NetNs, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    require_program("nft", "nftables");
    let mut child = ns
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
