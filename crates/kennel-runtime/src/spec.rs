//! What the runtime needs to start one VE. Built by `kennel-ve` from the
//! VE's configuration; the runtime never reads configuration files itself.

use std::path::PathBuf;

use kennel_storage::layers::LayerMode;

/// The VE's id range on the host: ids `0..size` inside map to
/// `base..base+size` outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMap {
    pub uid_base: u32,
    pub gid_base: u32,
    pub size: u32,
}

impl IdMap {
    /// `/proc/PID/uid_map` line.
    pub fn uid_line(&self) -> String {
        format!("0 {} {}\n", self.uid_base, self.size)
    }

    pub fn gid_line(&self) -> String {
        format!("0 {} {}\n", self.gid_base, self.size)
    }

    /// The host uid/gid of the VE's root.
    pub fn root(&self) -> (u32, u32) {
        (self.uid_base, self.gid_base)
    }
}

/// The VE's root filesystem.
#[derive(Debug, Clone)]
pub struct RootSpec {
    pub template: PathBuf,
    /// The VE's layer directory (upper/ and work/).
    pub layers_dir: PathBuf,
    pub mode: LayerMode,
}

/// Everything about the VE's init process.
#[derive(Debug, Clone)]
pub struct InitSpec {
    /// Path inside the VE (`/sbin/init`).
    pub path: String,
    pub args: Vec<String>,
    /// Environment, `KEY=value`.
    pub env: Vec<String>,
}

/// One VE start.
#[derive(Debug, Clone)]
pub struct StartSpec {
    pub id: String,
    pub hostname: String,
    pub idmap: IdMap,
    pub root: RootSpec,
    pub init: InitSpec,
    /// The VE's cgroup below each hierarchy (`kennel/101`), as recorded in
    /// its run directory before the start, and its limits.
    pub cgroup: kennel_cgroup::CgroupRecord,
    pub limits: kennel_cgroup::Limits,
    /// Where monitors live (`kennel/_monitor`).
    pub monitor_cgroup: String,
    /// The VE's run directory (state, sockets, mount points).
    pub run_dir: PathBuf,
    /// The compiled seccomp program.
    pub seccomp: Vec<kennel_sys::seccomp::SockFilter>,
    /// The `kennel-monitor` program to exec once the VE runs.
    pub monitor_exe: PathBuf,
    /// Arguments for the monitor after its fixed ones: how it calls
    /// `kennel` back when the VE ends.
    pub monitor_args: Vec<String>,
    /// The VE's network (links, addresses, DNS), and the host's settings
    /// for it.
    pub network: kennel_net::VeNetwork,
    pub host_net: kennel_net::HostNet,
    /// Opt-in features (`kennel create --features`).
    pub features: crate::features::Features,
    /// The VE's pty instance.
    pub devpts: crate::devpts::DevptsOptions,
    /// The hard open-files limit of the VE's processes.
    pub nofile: u64,
    /// Where lxcfs is mounted on the host, if it runs: its files then show
    /// the VE's own limits in its /proc and /sys.
    pub lxcfs: Option<std::path::PathBuf>,
}

impl StartSpec {
    pub fn lower_mountpoint(&self) -> PathBuf {
        self.run_dir.join("lower")
    }

    pub fn root_mountpoint(&self) -> PathBuf {
        self.run_dir.join("rootfs")
    }
}
