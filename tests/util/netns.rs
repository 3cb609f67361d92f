//! A private network namespace for one test (`ip netns`): a world with no
//! route out, holding only its loopback interface, which carries 127.0.0.1
//! and the addresses the test gives it. Stock clients that default to the public DHT routers
//! (Transmission, qBittorrent) cannot reach them from inside, whatever their
//! settings, and addresses outside 127.0.0.0/8 (which Transmission refuses
//! as peers and DHT nodes) carry the traffic. Removed on drop, also when the
//! test panics.

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
    /// a /32; this machine's kernel has no dummy or veth devices), all local
    /// to it and reachable from each other.
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
