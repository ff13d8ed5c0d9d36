//! A network laboratory for one test, made of namespaces the test owns:
//!
//! * `<tag>-h` plays the host: Kennel runs there (see
//!   [`super::TestRoot::in_netns`]); its uplink `up0` holds 192.0.2.1/24
//!   and 2001:db8::1/64, with forwarding and proxy NDP on (only in this
//!   namespace, never in the machine's own);
//! * `<tag>-l` plays the LAN: `lan0` holds 192.0.2.100/24 and
//!   2001:db8::100/64, default routes via the host. A netdev chain on
//!   `lan0` counts what arrives, for checks "at the receiver".
//!
//! A bridge lab adds `br0` in the host namespace with a second LAN port
//! (`lan1`, 198.51.100.100/24) in the LAN namespace.
//!
//! Dropping the lab deletes both namespaces (and so every link in them).
//! [`NetLab::leaks`] lists Kennel objects left in the host namespace.
//!
//! [`forge`] sends hand-made frames from inside a VE, as its root could
//! (`forge.py`: Python's standard library, with the VE root's rights).
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static SEQ: AtomicU32 = AtomicU32::new(0);

pub const BUSYBOX: &str = "/bin/busybox";

/// Debian's Python (a pyenv shim earlier in `PATH` may need a home).
pub const PYTHON: &str = "/usr/bin/python3";

/// The frame builders of `forge.py`.
pub const FORGE_LIB: &str = include_str!("forge.py");

pub struct NetLab {
    pub host: String,
    pub lan: String,
}

fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {args:?}: {e}"))
}

fn must(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a shell script in namespace `ns`; it must succeed.
fn sh_in(ns: &str, script: &str) {
    must(&["ip", "netns", "exec", ns, "sh", "-ec", script]);
}

impl NetLab {
    pub fn new(tag: &str) -> Self {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let base = format!("kt-{tag}-{}-{n}", std::process::id());
        let lab = NetLab {
            host: format!("{base}-h"),
            lan: format!("{base}-l"),
        };
        must(&["ip", "netns", "add", &lab.host]);
        must(&["ip", "netns", "add", &lab.lan]);
        let h = lab.host.as_str();
        let l = lab.lan.as_str();
        must(&[
            "ip", "-n", h, "link", "add", "up0", "type", "veth", "peer", "name", "lan0", "netns", l,
        ]);
        for (ns, script) in [
            (
                h,
                "ip link set lo up; ip addr add 192.0.2.1/24 dev up0; ip addr add 2001:db8::1/64 dev up0 nodad; ip link set up0 up; \
                 sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 net.ipv6.conf.all.proxy_ndp=1 \
                 net.ipv4.neigh.up0.proxy_delay=0 net.ipv6.neigh.up0.proxy_delay=0",
            ),
            (
                l,
                "ip link set lo up; ip addr add 192.0.2.100/24 dev lan0; ip addr add 2001:db8::100/64 dev lan0 nodad; ip link set lan0 up; \
                 ip route add default via 192.0.2.1; ip -6 route add default via 2001:db8::1",
            ),
        ] {
            sh_in(ns, script);
        }
        lab.nft_lan(
            "table netdev watch { chain rx { type filter hook ingress device \"lan0\" priority 0; }; }",
        );
        lab
    }

    /// Adds a bridge `br0` in the host namespace with a LAN port: `lan1`
    /// in the LAN namespace, 198.51.100.100/24.
    pub fn add_bridge(&self) {
        let h = self.host.as_str();
        let l = self.lan.as_str();
        must(&["ip", "-n", h, "link", "add", "br0", "type", "bridge"]);
        must(&[
            "ip", "-n", h, "link", "add", "brport", "type", "veth", "peer", "name", "lan1",
            "netns", l,
        ]);
        sh_in(
            h,
            "ip link set brport master br0; ip link set brport up; ip link set br0 up",
        );
        sh_in(
            l,
            "ip addr add 198.51.100.100/24 dev lan1; ip link set lan1 up",
        );
        self.nft_lan(
            "table netdev watch1 { chain rx { type filter hook ingress device \"lan1\" priority 0; }; }",
        );
    }

    fn nft_lan(&self, script: &str) {
        must(&["ip", "netns", "exec", &self.lan, "nft", script]);
    }

    /// Counts packets matching `expr` arriving at `lan0` (or `lan1` with
    /// `bridge`) from now on; read them with [`NetLab::count`].
    pub fn watch(&self, bridge: bool, expr: &str) {
        let t = watch_table(bridge);
        self.nft_lan(&format!("add rule netdev {t} rx {expr} counter"));
    }

    /// Packets counted by the watch rule `expr`.
    pub fn count(&self, bridge: bool, expr: &str) -> u64 {
        let t = watch_table(bridge);
        let text = must(&[
            "ip", "netns", "exec", &self.lan, "nft", "list", "chain", "netdev", t, "rx",
        ]);
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(&format!("{expr} counter packets")))
            .unwrap_or_else(|| panic!("no watch rule {expr} in:\n{text}"));
        line.split("counter packets ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .expect("packet count")
    }

    /// Runs a command in the LAN namespace.
    pub fn lan(&self, args: &[&str]) -> Output {
        let mut v = vec!["ip", "netns", "exec", &self.lan];
        v.extend_from_slice(args);
        run(&v)
    }

    /// Runs a command in the host namespace.
    pub fn host_cmd(&self, args: &[&str]) -> Output {
        let mut v = vec!["ip", "netns", "exec", &self.host];
        v.extend_from_slice(args);
        run(&v)
    }

    /// What a LAN client gets from TCP `addr:port` (busybox nc, 3 s).
    pub fn lan_fetch(&self, addr: &str, port: u16) -> String {
        let out = self.lan(&[
            BUSYBOX,
            "timeout",
            "3",
            BUSYBOX,
            "nc",
            addr,
            &port.to_string(),
        ]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Whether the LAN gets an answer to a ping of `addr`.
    pub fn lan_pings(&self, addr: &str) -> bool {
        self.lan(&[BUSYBOX, "ping", "-c", "1", "-W", "2", addr])
            .status
            .success()
    }

    /// The host namespace's nftables ruleset, as text.
    pub fn host_ruleset(&self) -> String {
        String::from_utf8_lossy(&self.host_cmd(&["nft", "list", "ruleset"]).stdout).into_owned()
    }

    /// Kennel objects in the host namespace: links, proxy neighbours,
    /// nftables tables, routes through Kennel links.
    pub fn leaks(&self) -> Vec<String> {
        let mut out = Vec::new();
        let text =
            |args: &[&str]| String::from_utf8_lossy(&self.host_cmd(args).stdout).into_owned();
        for l in text(&["ip", "-o", "link"]).lines() {
            let name = l
                .split(": ")
                .nth(1)
                .unwrap_or("")
                .split('@')
                .next()
                .unwrap_or("");
            if name.starts_with("kv") {
                out.push(format!("link {name}"));
            }
        }
        for fam in ["-4", "-6"] {
            for l in text(&["ip", fam, "neigh", "show", "proxy"]).lines() {
                out.push(format!("proxy neighbour {l}"));
            }
            for l in text(&["ip", fam, "route"])
                .lines()
                .filter(|l| l.contains(" kv"))
            {
                out.push(format!("route {l}"));
            }
        }
        for l in text(&["nft", "list", "tables"])
            .lines()
            .filter(|l| l.contains("kennel"))
        {
            out.push(format!("nft {l}"));
        }
        out
    }
}

/// The counting table on `lan1` (the bridge's LAN port) or `lan0`.
fn watch_table(bridge: bool) -> &'static str {
    if bridge {
        "watch1"
    } else {
        "watch"
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        for ns in [&self.host, &self.lan] {
            let _ = run(&["ip", "netns", "del", ns]);
        }
    }
}

/// A command that runs in the user and network namespaces of the process
/// `pid` (a VE's init): with the VE root's rights on the VE's own
/// interfaces, and nothing of the VE's files. Add the program and its
/// arguments.
pub fn as_ve_root(pid: i32) -> Command {
    let mut c = Command::new("nsenter");
    c.args(["--target", &pid.to_string(), "--user", "--net", "--"]);
    c
}

/// Runs `forge.py` followed by `code` in the user and network namespaces
/// of the process `pid` (a VE's init): with exactly the VE root's rights
/// on the VE's own interfaces. It must succeed.
pub fn forge(pid: i32, code: &str) {
    let script = format!("{FORGE_LIB}\n{code}\n");
    let out = as_ve_root(pid)
        .args([PYTHON, "-c"])
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {PYTHON}: {e}"));
    assert!(
        out.status.success(),
        "forging in {pid} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
