//! The host kernel's hardening that Kennel relies on but never sets itself
//! (sysctls are the operator's): what `kennel check` reports about it.
//!
//! Each item is one line. A setting that is not as recommended is a
//! warning (VEs still start) that names the sysctl and the exact command
//! that fixes it. Every decision is a pure function of the values read, so
//! that it can be tested without changing the machine.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use super::{check, Check, CheckLevel};

/// What a sysctl should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    Is(i64),
    AtLeast(i64),
    Between(i64, i64),
}

impl Want {
    pub fn accepts(self, v: i64) -> bool {
        match self {
            Want::Is(w) => v == w,
            Want::AtLeast(w) => v >= w,
            Want::Between(lo, hi) => (lo..=hi).contains(&v),
        }
    }
}

/// A sysctl Kennel wants set a certain way, and why.
#[derive(Debug, Clone, Copy)]
pub struct SysctlRule {
    /// The check's name in `kennel check`.
    pub check: &'static str,
    pub sysctl: &'static str,
    pub want: Want,
    /// The value the fix sets.
    pub set: i64,
    /// What the recommended value gives.
    pub gives: &'static str,
    /// What a VE's root can do otherwise.
    pub risk: &'static str,
}

/// The sysctls, in the order `kennel check` shows them.
pub const SYSCTL_RULES: &[SysctlRule] = &[
    SysctlRule {
        check: "bpf",
        sysctl: "kernel.unprivileged_bpf_disabled",
        want: Want::Between(1, 2),
        set: 2,
        gives: "only the host's root loads BPF programs",
        risk: "every VE's root can load BPF programs into the host's kernel",
    },
    SysctlRule {
        check: "userfaultfd",
        sysctl: "vm.unprivileged_userfaultfd",
        want: Want::Is(0),
        set: 0,
        gives: "VEs cannot stall the kernel's own page faults",
        risk: "a VE can stall the kernel's page faults at will, a common exploit aid",
    },
    SysctlRule {
        check: "dmesg",
        sysctl: "kernel.dmesg_restrict",
        want: Want::Is(1),
        set: 1,
        gives: "the kernel log is the host's",
        risk: "VEs may read the kernel log (kernel addresses, other VEs' events)",
    },
    SysctlRule {
        check: "kernel pointers",
        sysctl: "kernel.kptr_restrict",
        want: Want::AtLeast(1),
        set: 1,
        gives: "kernel addresses are hidden from VEs",
        risk: "VEs may see kernel addresses in /proc (defeats KASLR)",
    },
    SysctlRule {
        check: "symlinks",
        sysctl: "fs.protected_symlinks",
        want: Want::Is(1),
        set: 1,
        gives: "symlinks in sticky world-writable directories are safe to follow",
        risk: "symlinks planted in /tmp and the like are followed (the host's and the VEs')",
    },
    SysctlRule {
        check: "hardlinks",
        sysctl: "fs.protected_hardlinks",
        want: Want::Is(1),
        set: 1,
        gives: "no hard links to files the linker may not write",
        risk: "a VE can hard-link files it may not write (set-user-ID programs, template files)",
    },
    SysctlRule {
        check: "fifos",
        sysctl: "fs.protected_fifos",
        want: Want::AtLeast(1),
        set: 1,
        gives: "no writing into others' FIFOs in sticky directories",
        risk: "FIFOs planted in sticky directories are opened by other users' programs",
    },
    SysctlRule {
        check: "regular files",
        sysctl: "fs.protected_regular",
        want: Want::AtLeast(1),
        set: 1,
        gives: "no writing into others' files in sticky directories",
        risk: "files planted in sticky directories are opened by other users' programs",
    },
    SysctlRule {
        check: "open files",
        sysctl: "fs.file-max",
        want: Want::Is(i64::MAX),
        set: i64::MAX,
        gives: "each VE's open files are bounded by its own memory limit alone (systemd's default)",
        risk: "the host has one table of open files and a VE's root is not exempt from it: one VE can leave the others none",
    },
];

fn sysctl_path(name: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(name.replace('.', "/"))
}

/// A sysctl's value: `Ok(None)` if this kernel has no such setting.
fn read_sysctl(name: &str) -> Result<Option<String>, String> {
    match fs::read_to_string(sysctl_path(name)) {
        Ok(s) => Ok(Some(s.trim().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

fn read_number(name: &str) -> Option<u64> {
    read_sysctl(name).ok().flatten()?.parse().ok()
}

const PERSIST: &str = "(and persist it in /etc/sysctl.d/)";

/// The line for `rule`, given what its file read.
pub fn sysctl_check(rule: &SysctlRule, value: Result<Option<String>, String>) -> Check {
    let fix = format!("sysctl -w {}={} {PERSIST}", rule.sysctl, rule.set);
    match value {
        Ok(None) => check(
            rule.check,
            CheckLevel::Ok,
            format!("{}: not in this kernel (it lacks the feature)", rule.sysctl),
        ),
        Err(e) => check(
            rule.check,
            CheckLevel::Warn,
            format!("{}: cannot read it ({e}); want {fix}", rule.sysctl),
        ),
        Ok(Some(v)) => match v.parse::<i64>() {
            Ok(n) if rule.want.accepts(n) => check(
                rule.check,
                CheckLevel::Ok,
                format!("{} = {n}: {}", rule.sysctl, rule.gives),
            ),
            _ => check(
                rule.check,
                CheckLevel::Warn,
                format!("{} = {v}: {}; set: {fix}", rule.sysctl, rule.risk),
            ),
        },
    }
}

/// Kernel memory one tracked connection takes (measured: 200,000 entries,
/// 49 MB).
const CONNTRACK_ENTRY_BYTES: u64 = 250;

/// `max` and `count` from `net.netfilter.nf_conntrack_{max,count}` (the
/// host's own table), and `ves`, the entries the running VEs' own network
/// namespaces track together. The kernel caps each namespace's table at
/// `max` on its own and charges none of them to a memory cgroup. A host
/// table that is 80% full is a warning: when it is full, new connections
/// of the host (and of every VE it routes or NATs) are dropped.
pub fn conntrack_check(max: Option<u64>, count: Option<u64>, ves: u64) -> Check {
    let Some(max) = max else {
        return check(
            "conntrack",
            CheckLevel::Ok,
            "nf_conntrack not loaded (net.netfilter.nf_conntrack_max appears once it is)",
        );
    };
    let count = count.unwrap_or(0);
    let what = format!(
        "net.netfilter.nf_conntrack_max = {max}, {count} in use by the host; the VEs' own tables hold {ves} ({} MiB of kernel memory no VE is charged for; each may grow to {max})",
        ves.saturating_mul(CONNTRACK_ENTRY_BYTES) >> 20
    );
    if count.saturating_mul(5) >= max.saturating_mul(4) {
        check(
            "conntrack",
            CheckLevel::Warn,
            format!(
                "{what}, nearly full (new connections are dropped everywhere when it is); set: sysctl -w net.netfilter.nf_conntrack_max={} {PERSIST}",
                max.saturating_mul(2).max(65536)
            ),
        )
    } else {
        check("conntrack", CheckLevel::Ok, what)
    }
}

/// One of the kernel's neighbour tables: ARP or NDP.
#[derive(Debug, Clone, Copy)]
pub struct NeighTable {
    /// The check's name in `kennel check`.
    pub check: &'static str,
    pub what: &'static str,
    pub sysctl: &'static str,
    /// Its line in `/proc/net/stat/`.
    pub stat: &'static str,
}

pub const ARP_TABLE: NeighTable = NeighTable {
    check: "arp table",
    what: "ARP",
    sysctl: "net.ipv4.neigh.default.gc_thresh3",
    stat: "arp_cache",
};

pub const NDP_TABLE: NeighTable = NeighTable {
    check: "ndp table",
    what: "IPv6 neighbour",
    sysctl: "net.ipv6.neigh.default.gc_thresh3",
    stat: "ndisc_cache",
};

/// Entries a VE's own neighbours take of a table, about: a routed VE's
/// gateway in its namespace and the host's entry for it on its link; a
/// bridged VE has as many as its neighbours on the bridge.
const NEIGHBOURS_PER_VE: u64 = 8;

/// The gc_thresh3 to recommend: well above what is in use and what `ves`
/// VEs need, and above the current one.
pub fn neigh_recommended(thresh3: u64, entries: u64, ves: u64) -> u64 {
    thresh3
        .saturating_mul(2)
        .max(entries.saturating_mul(4))
        .max(ves.saturating_mul(NEIGHBOURS_PER_VE * 2))
        .max(1024)
        .checked_next_power_of_two()
        .unwrap_or(u64::MAX)
}

/// A neighbour table: the kernel has one of each (ARP, NDP) for every
/// network namespace together, and a namespace that holds `gc_thresh3`
/// entries in use leaves none for the others ("neighbor table overflow":
/// no new neighbour is resolved anywhere). A VE's root adds entries to it
/// with `ip neigh` in its own namespace. `entries` is the table's count
/// (`/proc/net/stat/`), `ves` the configured VEs. Warned: 80% full, or
/// too small for the VEs' own neighbours.
pub fn neigh_check(t: &NeighTable, thresh3: Option<u64>, entries: Option<u64>, ves: u64) -> Check {
    let (Some(max), Some(n)) = (thresh3, entries) else {
        return check(
            t.check,
            CheckLevel::Ok,
            format!(
                "{} and /proc/net/stat/{} are not here (only in the host's initial network namespace, and with the protocol on)",
                t.sysctl, t.stat
            ),
        );
    };
    let what = format!(
        "{n} of {} = {max} entries in use: one {} table for the host and every VE (a VE's root adds to it with ip neigh)",
        t.sysctl, t.what
    );
    let fix = format!(
        "set: sysctl -w {}={} {PERSIST}",
        t.sysctl,
        neigh_recommended(max, n, ves)
    );
    if n.saturating_mul(5) >= max.saturating_mul(4) {
        check(
            t.check,
            CheckLevel::Warn,
            format!(
                "{what}; nearly full (when full, no namespace resolves a new neighbour); {fix}"
            ),
        )
    } else if max < ves.saturating_mul(NEIGHBOURS_PER_VE) {
        check(
            t.check,
            CheckLevel::Warn,
            format!(
                "{what}; too small for {ves} VEs (each takes a few: its gateway, the host's entry for it, its bridged neighbours); {fix}"
            ),
        )
    } else {
        check(t.check, CheckLevel::Ok, what)
    }
}

/// `net.bridge.bridge-nf-call-iptables` and `-ip6tables` (there when
/// br_netfilter is loaded). On, bridged traffic (bridged VEs' included)
/// goes through the host namespace's iptables hooks, and so through
/// conntrack and IP defragmentation there: pools every VE shares (the
/// conntrack table, the reassembly memory), which a bridged VE then
/// fills with its own traffic.
pub fn bridge_nf_check(iptables: Option<String>, ip6tables: Option<String>) -> Check {
    const IP4: &str = "net.bridge.bridge-nf-call-iptables";
    const IP6: &str = "net.bridge.bridge-nf-call-ip6tables";
    if iptables.is_none() && ip6tables.is_none() {
        return check(
            "br_netfilter",
            CheckLevel::Ok,
            "not loaded: bridged traffic does not go through the host's conntrack and defragmentation",
        );
    }
    let shown = |v: &Option<String>| v.as_deref().unwrap_or("(absent)").to_string();
    let what = format!(
        "{IP4} = {}, {IP6} = {}",
        shown(&iptables),
        shown(&ip6tables)
    );
    let off = |v: &Option<String>| v.as_deref().is_none_or(|v| v == "0");
    if off(&iptables) && off(&ip6tables) {
        check(
            "br_netfilter",
            CheckLevel::Ok,
            format!("{what}: bridged traffic does not go through the host's conntrack and defragmentation"),
        )
    } else {
        check(
            "br_netfilter",
            CheckLevel::Warn,
            format!(
                "{what}: bridged traffic, VEs' included, is connection-tracked and defragmented in the host's namespace (its conntrack table and reassembly memory, which a bridged VE can fill for all); unless the host filters bridged traffic with iptables on purpose, set: sysctl -w {IP4}=0 {IP6}=0 {PERSIST}"
            ),
        )
    }
}

/// An interface name in a sysctl key: sysctl(8) reads a `/` there as a
/// `.` of the name (`net.ipv4.conf.br0/7.forwarding` for `br0.7`).
fn sysctl_ifname(name: &str) -> String {
    name.replace('.', "/")
}

/// The sysctls that stop the host routing what VEs send to `b` when it
/// has no address there of that family, as `key=value`.
pub fn bridge_routing_fixes(b: &kennel_net::bridges::VeBridge) -> Vec<String> {
    let name = sysctl_ifname(&b.name);
    let mut out = Vec::new();
    if b.ipv4_forwarding && !b.ipv4_address {
        out.push(format!("net.ipv4.conf.{name}.forwarding=0"));
    }
    if b.ipv6_forwarding && !b.ipv6_address {
        out.push(format!("net.ipv6.conf.{name}.disable_ipv6=1"));
    }
    out
}

/// Bridges with VE ports where the host has no address (of a family) but
/// routes what arrives on them: a bridged VE there can use the host as
/// its router (see `kennel_net::bridges`). `bridges` is what was read.
pub fn bridge_routing_check(bridges: Result<Vec<kennel_net::bridges::VeBridge>, String>) -> Check {
    let bridges = match bridges {
        Ok(b) => b,
        Err(e) => {
            return check(
                "bridge routing",
                CheckLevel::Warn,
                format!("cannot list the bridges VEs are on: {e}"),
            )
        }
    };
    let fixes: Vec<(String, Vec<String>)> = bridges
        .iter()
        .map(|b| (b.name.clone(), bridge_routing_fixes(b)))
        .filter(|(_, f)| !f.is_empty())
        .collect();
    if fixes.is_empty() {
        return check(
            "bridge routing",
            CheckLevel::Ok,
            format!(
                "{} bridges with VE ports; the host routes what VEs send only on those where it has an address",
                bridges.len()
            ),
        );
    }
    let names: Vec<&str> = fixes.iter().map(|(n, _)| n.as_str()).collect();
    let keys: Vec<&str> = fixes
        .iter()
        .flat_map(|(_, f)| f.iter().map(String::as_str))
        .collect();
    check(
        "bridge routing",
        CheckLevel::Warn,
        format!(
            "the host has no address on {} but routes what VEs there send to it (frames to the bridge's MAC, fe:ff:ff:ff:ff:ff on a bridge of VE ports alone): a bridged VE can use the host as its router; unless it should, set: sysctl -w {} {PERSIST}",
            names.join(", "),
            keys.join(" ")
        ),
    )
}

/// Ids a VE maps: each is a host uid with a key quota of its own.
const IDS_PER_VE: u64 = 65536;

/// Key quotas (`kernel.keys.maxkeys`, `maxbytes`) are per host uid, so a
/// VE's quota is its ids' quotas together. Informational.
pub fn keys_check(maxkeys: Option<u64>, maxbytes: Option<u64>) -> Check {
    match (maxkeys, maxbytes) {
        (Some(k), Some(b)) => check(
            "keys",
            CheckLevel::Ok,
            format!(
                "kernel.keys.maxkeys = {k}, kernel.keys.maxbytes = {b}, per host uid: a VE's {IDS_PER_VE} ids may hold {} keys, {} of kernel memory",
                k.saturating_mul(IDS_PER_VE),
                crate::units::human(b.saturating_mul(IDS_PER_VE))
            ),
        ),
        _ => check("keys", CheckLevel::Ok, "no key quotas in this kernel"),
    }
}

/// The inode of the initial mount namespace on kernels that give it a
/// fixed one (6.18 and later; never a dynamically allocated number, which
/// start at 0xF0000000).
pub const INITIAL_MNT_NS_INO: u64 = 0xEFFF_FFF8;

/// Whether Kennel runs in the host's initial mount namespace: `own` and
/// `init` are the inodes of `/proc/self/ns/mnt` and `/proc/1/ns/mnt` (the
/// latter unreadable in some setups), `fixed_inode` whether this kernel
/// gives the initial namespace [`INITIAL_MNT_NS_INO`].
pub fn mount_ns_check(own: Option<u64>, init: Option<u64>, fixed_inode: bool) -> Check {
    let fix = "run kennel in the host's mount namespace (not from a service with PrivateTmp=, ProtectSystem= or the like; from elsewhere: nsenter -t 1 -m kennel ...)";
    let why = "VEs' ptys come from kernel.pty.reserve only for devpts mounted there, and mounts made elsewhere are hidden from the host";
    let initial = match (own, init) {
        (Some(o), Some(i)) => Some(o == i),
        (Some(o), None) if o == INITIAL_MNT_NS_INO => Some(true),
        (Some(_), None) if fixed_inode => Some(false),
        _ => None,
    };
    match initial {
        Some(true) => check(
            "mount namespace",
            CheckLevel::Ok,
            "kennel runs in the host's initial mount namespace",
        ),
        Some(false) => check(
            "mount namespace",
            CheckLevel::Warn,
            format!("kennel runs in a mount namespace of its own, not the host's initial one ({why}): {fix}"),
        ),
        None => check(
            "mount namespace",
            CheckLevel::Warn,
            format!("cannot tell whether kennel runs in the host's initial mount namespace (/proc/1/ns/mnt is unreadable): {fix}"),
        ),
    }
}

/// cgroup v1 hierarchies whose `release_agent` is set: `(hierarchy,
/// agent)` for each v1 hierarchy whose root Kennel can read. A VE can make
/// the host run the agent, as root, for its own sub-cgroups (it may set
/// `notify_on_release` in cgroups it makes), with a cgroup path it chose.
pub fn release_agent_check(v1: &[(String, String)], any_v1: bool) -> Check {
    let set: Vec<String> = v1
        .iter()
        .filter(|(_, agent)| !agent.trim().is_empty())
        .map(|(h, agent)| format!("{h} runs '{}'", kennel_storage::shown::shown(agent.trim())))
        .collect();
    if !set.is_empty() {
        return check(
            "release_agent",
            CheckLevel::Warn,
            format!(
                "set on cgroup v1 hierarchies ({}): a VE can make the host run it as root for its own sub-cgroups (notify_on_release), with a path it chose; clear it (echo > MOUNT/release_agent) unless the host needs it",
                set.join("; ")
            ),
        );
    }
    check(
        "release_agent",
        CheckLevel::Ok,
        if any_v1 {
            "no cgroup v1 hierarchy has a release agent"
        } else {
            "no cgroup v1 hierarchy"
        },
    )
}

use crate::lifecycle::ptys::{pty_needs, PtyLimits, HOST_PTYS};

/// The line for the pty limits, for `ves` configured VEs that may hold
/// `ve_ptys` ptys together (their `numpty`).
pub fn pty_check(have: Option<PtyLimits>, ves: u64, ve_ptys: u64) -> Check {
    let Some(have) = have else {
        return check(
            "ptys",
            CheckLevel::Warn,
            "cannot read kernel.pty.max and kernel.pty.reserve",
        );
    };
    let what = format!(
        "kernel.pty.max = {}, kernel.pty.reserve = {}; the {ves} VEs may hold {ve_ptys} (their numpty), the host keeps {HOST_PTYS}",
        have.max, have.reserve
    );
    match pty_needs(have, ve_ptys) {
        None => check("ptys", CheckLevel::Ok, what),
        Some(need) => check(
            "ptys",
            CheckLevel::Warn,
            format!(
                "{what}: the reserve is too small for them; set: sysctl -w kernel.pty.reserve={} kernel.pty.max={} {PERSIST}",
                need.reserve, need.max
            ),
        ),
    }
}

/// What the VEs hold of shared pools, for [`report`].
#[derive(Debug, Clone, Copy, Default)]
pub struct VeShares {
    /// Configured VEs.
    pub ves: u64,
    /// Their `numpty` together.
    pub ptys: u64,
    /// Connections the running VEs' own network namespaces track.
    pub conntrack: u64,
    /// VEs given the `fuse` feature.
    pub fuse: u64,
    /// VEs of the sizing not running yet.
    pub starting: u64,
}

/// The longest a VE's FUSE server should take to answer, as
/// `fs.fuse.max_request_timeout` (seconds).
const FUSE_TIMEOUT: u64 = 600;

/// With the `fuse` feature, a VE's FUSE server can leave any process that
/// touches its mount waiting in the kernel beyond SIGKILL, for as long as
/// the server lives: processes of other VEs it lures there, and the
/// helpers host commands send in (which give up on them and leave them).
/// `fs.fuse.max_request_timeout` (Linux 6.14) aborts a connection whose
/// server does not answer within that time.
pub fn fuse_check(max_request_timeout: Option<u64>, fuse_ves: u64) -> Check {
    let name = "fuse";
    if fuse_ves == 0 {
        return check(name, CheckLevel::Ok, "no VE has the fuse feature");
    }
    match max_request_timeout {
        Some(t) if t > 0 => check(
            name,
            CheckLevel::Ok,
            format!("fs.fuse.max_request_timeout = {t}: a VE's FUSE server that stops answering loses its mount after {t} s"),
        ),
        Some(_) => check(
            name,
            CheckLevel::Warn,
            format!("{fuse_ves} VEs have the fuse feature, and a FUSE server that never answers holds whatever touches its mount, unkillable, for as long as it lives; set: sysctl -w fs.fuse.max_request_timeout={FUSE_TIMEOUT} {PERSIST}"),
        ),
        None => check(
            name,
            CheckLevel::Warn,
            format!("{fuse_ves} VEs have the fuse feature, and this kernel cannot time out a FUSE server that never answers (fs.fuse.max_request_timeout needs Linux 6.14): what touches its mount waits, unkillable, for as long as the server lives"),
        ),
    }
}

/// The memory controller's cgroups in use (`/proc/cgroups`), against the
/// kernel's 65,535 ids: every VE takes one, and on cgroup v2 each cgroup
/// its systemd makes another (at most 1024 per VE). When they are gone,
/// no VE starts and the host's systemd cannot make units.
/// `starting` is how many more VEs the sizing starts (each takes one).
pub fn memcg_check(in_use: Option<u64>, starting: u64) -> Check {
    const IDS: u64 = 65_535;
    let Some(n) = in_use else {
        return check("memory cgroups", CheckLevel::Ok, "no memory controller");
    };
    let what = format!(
        "{n} of the kernel's {IDS} memory cgroup ids in use, {starting} more for the VEs not running"
    );
    if n.saturating_add(starting).saturating_mul(5) >= IDS * 4 {
        check(
            "memory cgroups",
            CheckLevel::Warn,
            format!("{what}: nearly gone; stop VEs or move some to another host"),
        )
    } else {
        check("memory cgroups", CheckLevel::Ok, what)
    }
}

/// The `entries` column (hex) of a `/proc/net/stat/` table's first line
/// of figures: the same on every line, the table's (the namespace's)
/// count.
pub(super) fn stat_entries(text: &str) -> Option<u64> {
    let line = text.lines().nth(1)?;
    u64::from_str_radix(line.split_whitespace().next()?, 16).ok()
}

/// `num_cgroups` of the memory controller in `/proc/cgroups`.
fn memory_cgroups(text: &str) -> Option<u64> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.first() == Some(&"memory"))
        .and_then(|f| f.get(2)?.parse().ok())
}

/// Every line of the hardening report, read from this host, with what the
/// VEs hold of shared pools; `v1` are the cgroup v1 hierarchies (a name to
/// show, their mount point).
pub(super) fn report(shares: VeShares, v1: &[(String, PathBuf)], kernel: (u32, u32)) -> Vec<Check> {
    let mut out: Vec<Check> = SYSCTL_RULES
        .iter()
        .map(|r| sysctl_check(r, read_sysctl(r.sysctl)))
        .collect();
    out.push(conntrack_check(
        read_number("net.netfilter.nf_conntrack_max"),
        read_number("net.netfilter.nf_conntrack_count"),
        shares.conntrack,
    ));
    out.push(memcg_check(
        fs::read_to_string("/proc/cgroups")
            .ok()
            .and_then(|t| memory_cgroups(&t)),
        shares.starting,
    ));
    out.push(keys_check(
        read_number("kernel.keys.maxkeys"),
        read_number("kernel.keys.maxbytes"),
    ));
    let ino = |p: &str| fs::metadata(p).ok().map(|m| m.ino());
    out.push(mount_ns_check(
        ino("/proc/self/ns/mnt"),
        ino("/proc/1/ns/mnt"),
        kernel >= (6, 18),
    ));
    let agents: Vec<(String, String)> = v1
        .iter()
        .filter_map(|(name, mount)| {
            let agent = fs::read_to_string(mount.join("release_agent")).ok()?;
            Some((name.clone(), agent))
        })
        .collect();
    out.push(release_agent_check(&agents, !v1.is_empty()));
    for t in [&ARP_TABLE, &NDP_TABLE] {
        let entries = fs::read_to_string(format!("/proc/net/stat/{}", t.stat))
            .ok()
            .and_then(|text| stat_entries(&text));
        out.push(neigh_check(t, read_number(t.sysctl), entries, shares.ves));
    }
    let bridge_nf = |k: &str| read_sysctl(k).ok().flatten();
    out.push(bridge_nf_check(
        bridge_nf("net.bridge.bridge-nf-call-iptables"),
        bridge_nf("net.bridge.bridge-nf-call-ip6tables"),
    ));
    out.push(bridge_routing_check(
        kennel_net::bridges::ve_bridges().map_err(|e| e.to_string()),
    ));
    let ptys = read_number("kernel.pty.max")
        .zip(read_number("kernel.pty.reserve"))
        .map(|(max, reserve)| PtyLimits { max, reserve });
    out.push(pty_check(ptys, shares.ves, shares.ptys));
    out.push(fuse_check(
        read_number("fs.fuse.max_request_timeout"),
        shares.fuse,
    ));
    out
}

#[cfg(test)]
mod tests;
