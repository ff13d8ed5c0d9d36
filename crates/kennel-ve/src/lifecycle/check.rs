//! `kennel check`: what this host offers and what Kennel needs, and the
//! host kernel's hardening it relies on (`hardening`); kernel modules in
//! `modules`; the shared kernel pools a number of VEs needs in
//! `super::pools` (for the VEs defined, or a planned number: [`Sizing`]).

pub(crate) mod hardening;
mod modules;

use std::fs;
use std::path::Path;

use super::status::VeState;
use super::Kennel;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckLevel {
    Ok,
    /// Works, with a limitation.
    Warn,
    /// VEs cannot start.
    Fail,
}

#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub level: CheckLevel,
    pub detail: String,
}

pub(super) fn check(name: &'static str, level: CheckLevel, detail: impl Into<String>) -> Check {
    Check {
        name,
        level,
        detail: detail.into(),
    }
}

fn kernel_version() -> (u32, u32, String) {
    let rel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let mut it = rel
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|s| s.parse::<u32>().ok());
    (it.next().unwrap_or(0), it.next().unwrap_or(0), rel)
}

fn on_path(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
        .unwrap_or(false)
}

/// The nf_tables `ct count` expression bounds each NAT VE's connections
/// (`nat_conntrack_max`): without it such a VE cannot start.
fn connlimit_check(state: modules::ModuleState, nat_max: u32) -> Check {
    use modules::ModuleState::*;
    let name = "nat bound";
    if nat_max == 0 {
        return check(name, CheckLevel::Ok, "off (nat_conntrack_max = 0)");
    }
    match state {
        Loaded | BuiltIn | OnDisk => check(
            name,
            CheckLevel::Ok,
            format!("nft_connlimit available (nat_conntrack_max = {nat_max})"),
        ),
        Unknown => check(
            name,
            CheckLevel::Ok,
            "a kernel without loadable modules: NAT VEs need CONFIG_NFT_CONNLIMIT built in",
        ),
        Missing => check(
            name,
            CheckLevel::Warn,
            "the kernel has no nft_connlimit, so VEs with NAT or port forwards cannot start: build it (CONFIG_NFT_CONNLIMIT), or set nat_conntrack_max = 0 under [network] in kennel.toml",
        ),
    }
}

/// The VEs `kennel check` sizes the host's shared pools for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Sizing {
    /// Those defined (all of them running).
    #[default]
    Defined,
    /// `ves` VEs running, made from `template` (else the smallest kind:
    /// busybox) with the host's default plan (`[default_plan]`).
    Planned { ves: u64, template: Option<String> },
}

impl Kennel {
    /// Checks the host, its shared pools sized for `sizing`; any
    /// [`CheckLevel::Fail`] means VEs cannot start. An error only when
    /// `sizing` names a template that does not exist.
    pub fn check(&self, sizing: &Sizing) -> crate::error::Result<Vec<Check>> {
        use CheckLevel::{Fail, Warn};
        let (shares, plan) = self.sized(sizing)?;
        let ok = CheckLevel::Ok;
        let mut out = Vec::new();
        let (maj, min, rel) = kernel_version();
        out.push(if (maj, min) >= (5, 19) {
            check(
                "kernel",
                ok,
                format!("{rel} (idmapped overlay layers need 5.19)"),
            )
        } else {
            check(
                "kernel",
                Fail,
                format!("{rel}: Kennel needs Linux 5.19 or newer"),
            )
        });
        let userns = fs::read_to_string("/proc/sys/user/max_user_namespaces")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok());
        out.push(match userns {
            Some(n) if n > 0 => check("user namespaces", ok, format!("max_user_namespaces = {n}")),
            _ => check(
                "user namespaces",
                Fail,
                "disabled: set sysctl user.max_user_namespaces to a positive number",
            ),
        });
        out.push(self.cgroups_check());
        out.push(self.lxcfs_check());
        let fss = fs::read_to_string("/proc/filesystems").unwrap_or_default();
        out.push(if fss.lines().any(|l| l.ends_with("\toverlay")) {
            check("overlayfs", ok, "available")
        } else {
            check(
                "overlayfs",
                Warn,
                "not loaded yet (modprobe overlay); VEs need it",
            )
        });
        let lib = self.paths.lib.clone();
        let probe = if lib.exists() {
            lib.clone()
        } else {
            lib.ancestors()
                .find(|p| p.exists())
                .unwrap_or(Path::new("/"))
                .to_path_buf()
        };
        out.push(match kennel_storage::layers::idmap_supported(&probe) {
            Ok(true) => check(
                "idmapped mounts",
                ok,
                format!("supported on {}", probe.display()),
            ),
            Ok(false) => check(
                "idmapped mounts",
                Warn,
                format!(
                    "not supported on {}: VEs use shifted layers (slower create)",
                    probe.display()
                ),
            ),
            Err(e) => check("idmapped mounts", Warn, format!("cannot tell: {e}")),
        });
        out.push(
            if Path::new("/proc/sys/kernel/seccomp/actions_avail").exists() {
                check("seccomp", ok, "filters available")
            } else {
                check("seccomp", Fail, "the kernel has no seccomp filter support")
            },
        );
        out.push(if self.exe.monitor.is_file() {
            check("monitor", ok, self.exe.monitor.display().to_string())
        } else {
            check(
                "monitor",
                Fail,
                format!("{} is missing", self.exe.monitor.display()),
            )
        });
        out.push(self.storage_check());
        for (tool, package, template) in [
            ("busybox", "busybox-static", "busybox"),
            ("debootstrap", "debootstrap", "debian-12"),
        ] {
            out.push(if on_path(tool) {
                check(tool, ok, format!("present (template create {template})"))
            } else {
                check(
                    tool,
                    Warn,
                    format!(
                        "missing: apt-get install {package} (for `template create {template}`)"
                    ),
                )
            });
        }
        out.extend(self.check_host_network());
        out.extend(hardening::report(
            shares,
            &self.v1_hierarchies(),
            (maj, min),
        ));
        out.extend(super::pools::report(self.host_pid_pool(), plan));
        Ok(out)
    }

    /// What the VEs `sizing` names take of the shared pools.
    fn sized(
        &self,
        sizing: &Sizing,
    ) -> crate::error::Result<(hardening::VeShares, super::pools::Plan)> {
        use super::pools::Plan;
        let mut shares = self.ve_shares();
        match sizing {
            Sizing::Defined => {
                let mut plan = Plan::default();
                for id in self.ids().unwrap_or_default() {
                    if let Ok(cfg) = self.config(&id) {
                        plan.add(cfg.init.kind, cfg.storage.backend);
                    }
                }
                shares.starting = shares.ves.saturating_sub(self.running_ves());
                Ok((shares, plan))
            }
            Sizing::Planned { ves, template } => {
                let init = match template {
                    Some(t) => self.template_store().get(t)?.meta.init,
                    None => kennel_storage::InitKind::Busybox,
                };
                let numpty = u64::from(self.host.plan().numpty());
                shares.ves = *ves;
                shares.ptys = ves.saturating_mul(numpty);
                shares.starting = ves.saturating_sub(self.running_ves());
                Ok((shares, Plan::uniform(*ves, init, self.default_backend()?)))
            }
        }
    }

    /// How many of this root's VEs run.
    fn running_ves(&self) -> u64 {
        let ids = self.ids().unwrap_or_default();
        ids.iter()
            .filter(|id| matches!(self.run_state(id), Ok(Some(_))))
            .count() as u64
    }

    /// The host's PID figures, without what the running VEs hold (their
    /// threads are counted in their own pids cgroups' `pids.current`,
    /// here estimated from the census like the plan).
    fn host_pid_pool(&self) -> Option<super::pools::PidPool> {
        let mut pool = super::pools::read_pid_pool()?;
        let mut running = 0;
        for id in self.ids().unwrap_or_default() {
            let Ok(cfg) = self.config(&id) else { continue };
            if matches!(self.run_state(&id), Ok(Some(_))) {
                running += super::pools::ve_pids(cfg.init.kind, cfg.storage.backend);
            }
        }
        pool.host_threads = pool.host_threads.saturating_sub(running);
        Some(pool)
    }

    /// The storage pool: made and mounted, and how full.
    fn storage_check(&self) -> Check {
        let tools = ["mkfs.ext4", "e2fsck", "resize2fs", "mkfs.xfs"];
        let missing: Vec<&str> = tools.into_iter().filter(|t| !on_path(t)).collect();
        if !missing.is_empty() && self.default_backend().ok() == Some(crate::config::Backend::Image)
        {
            return check(
                "storage",
                CheckLevel::Fail,
                format!(
                    "{} missing: apt-get install e2fsprogs xfsprogs (VE disks need them)",
                    missing.join(", ")
                ),
            );
        }
        match self.existing_pool() {
            Ok(None) => check(
                "storage",
                CheckLevel::Ok,
                "no pool yet: `kennel storage init` (or the first create) makes one",
            ),
            Ok(Some(pool)) => match pool.usage() {
                Ok(u) if u.size > 0 && u.free < u.size / 10 => check(
                    "storage",
                    CheckLevel::Warn,
                    format!(
                        "the pool at {} is {}% full ({} free): every VE's writes fail when it is full; grow it or move VEs",
                        pool.record.path.display(),
                        100 - u.free * 100 / u.size,
                        crate::units::human(u.free)
                    ),
                ),
                Ok(u) => check(
                    "storage",
                    CheckLevel::Ok,
                    format!(
                        "pool at {}: {} free of {}",
                        pool.record.path.display(),
                        crate::units::human(u.free),
                        crate::units::human(u.size)
                    ),
                ),
                Err(e) => check("storage", CheckLevel::Fail, format!("the pool: {e}")),
            },
            Err(e) => check("storage", CheckLevel::Fail, format!("the pool: {e}")),
        }
    }

    /// Whether lxcfs serves the VEs' /proc views of their own limits.
    fn lxcfs_check(&self) -> Check {
        let Some(dir) = self.host.lxcfs_dir() else {
            return check(
                "lxcfs",
                CheckLevel::Ok,
                "off (lxcfs_dir = \"none\"): VEs see the host's memory, CPUs and uptime in /proc",
            );
        };
        match kennel_runtime::lxcfs::probe(&dir) {
            Ok(()) => check(
                "lxcfs",
                CheckLevel::Ok,
                format!("serving at {}: VEs see their own limits in /proc", dir.display()),
            ),
            Err(why) => check(
                "lxcfs",
                CheckLevel::Warn,
                format!(
                    "{why}: VEs see the host's memory, CPUs and uptime in /proc (apt-get install lxcfs; systemctl start lxcfs)"
                ),
            ),
        }
    }

    /// The cgroup layout, and the controllers VE limits need.
    fn cgroups_check(&self) -> Check {
        use CheckLevel::{Fail, Warn};
        match self.cgroups() {
            Ok(h) => {
                let missing: Vec<&str> = ["memory", "cpu", "pids"]
                    .into_iter()
                    .filter(|c| h.hierarchy_for(c).is_none())
                    .collect();
                if missing.is_empty() {
                    check(
                        "cgroups",
                        CheckLevel::Ok,
                        format!(
                            "{} with memory, cpu and pids; VEs below {}/",
                            h.layout_name(),
                            self.cgroup_parent()
                        ),
                    )
                } else {
                    check(
                        "cgroups",
                        Warn,
                        format!(
                            "{}; missing controllers {}: limits on them fail",
                            h.layout_name(),
                            missing.join(", ")
                        ),
                    )
                }
            }
            Err(e) => check("cgroups", Fail, e.to_string()),
        }
    }

    /// The host's cgroup v1 hierarchies: a name to show, and where each is
    /// mounted.
    fn v1_hierarchies(&self) -> Vec<(String, std::path::PathBuf)> {
        self.cgroups()
            .map(|h| {
                h.hierarchies()
                    .iter()
                    .filter_map(|x| match &x.kind {
                        kennel_cgroup::HierarchyKind::V1 { name } => Some((
                            name.as_ref()
                                .map(|n| format!("name={n}"))
                                .unwrap_or_else(|| x.controllers.join(",")),
                            x.mount_point.clone(),
                        )),
                        kennel_cgroup::HierarchyKind::V2 => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// What the VEs hold of the host's shared pools: their pty limits
    /// (configured), and the connections the running ones' own network
    /// namespaces track (`/proc/PID/net/stat/nf_conntrack` of each init:
    /// a kernel file, whatever the VE does).
    fn ve_shares(&self) -> hardening::VeShares {
        let ids = self.ids().unwrap_or_default();
        let mut shares = hardening::VeShares {
            ves: ids.len() as u64,
            ..Default::default()
        };
        for id in &ids {
            let cfg = self.config(id).ok();
            shares.ptys += cfg
                .as_ref()
                .map_or(u64::from(crate::config::DEFAULT_NUMPTY), |c| {
                    u64::from(self.resources_of(c).numpty())
                });
            if cfg.is_some_and(|c| c.features.has(kennel_runtime::features::Feature::Fuse)) {
                shares.fuse += 1;
            }
            if let Ok(Some(run)) = self.run_state(id) {
                let stat = format!("/proc/{}/net/stat/nf_conntrack", run.init_pid);
                shares.conntrack += fs::read_to_string(stat)
                    .ok()
                    .and_then(|t| hardening::stat_entries(&t))
                    .unwrap_or(0);
            }
        }
        shares
    }

    /// The network part: tools VE links need, and the host switches the
    /// routed model needs to reach beyond this host. Kennel never turns
    /// those on itself; this says which are off and how to turn them on.
    fn check_host_network(&self) -> Vec<Check> {
        use CheckLevel::Warn;
        let ok = CheckLevel::Ok;
        let mut out = Vec::new();
        for (tool, package, why) in [
            ("nft", "nftables", "NAT and port forwards"),
            ("tc", "iproute2", "rate limits"),
        ] {
            out.push(if on_path(tool) {
                check(tool, ok, format!("present ({why})"))
            } else {
                check(
                    tool,
                    Warn,
                    format!("missing: apt-get install {package} ({why})"),
                )
            });
        }
        out.push(connlimit_check(
            modules::read_module_state("nft_connlimit"),
            self.host.network.nat_conntrack_max,
        ));
        let (maj, min, _) = kernel_version();
        if (maj, min) < (5, 16) {
            out.push(check(
                "bridged model",
                Warn,
                "needs Linux 5.16 (netdev egress hooks filter what a bridge delivers to a VE); routed VEs work",
            ));
        }
        let needs = kennel_net::reconcile::routed_model_needs();
        out.push(if needs.is_empty() {
            check("routed model", ok, "forwarding and proxy NDP are on")
        } else {
            check(
                "routed model",
                Warn,
                format!(
                    "the host reaches its routed VEs, but the LAN does not until you set: sysctl -w {} (and persist it in /etc/sysctl.d/)",
                    needs.join(" ")
                ),
            )
        });
        let mut missing = Vec::new();
        let mut unfiltered = Vec::new();
        let mut nl = kennel_net::netlink::Netlink::open().ok();
        for id in self.ids().unwrap_or_default() {
            let Ok(cfg) = self.config(&id) else { continue };
            let running = matches!(
                self.state_of(&id),
                Ok((VeState::Running | VeState::RunningWithoutMonitor, _))
            );
            if running && cfg.network.has_links() && !kennel_net::firewall::exists(id.as_str()) {
                unfiltered.push(id.to_string());
            }
            for n in &cfg.network.netifs {
                let found = nl
                    .as_mut()
                    .map(|nl| kennel_net::reconcile::check_bridge(nl, &n.bridge).is_ok());
                if found == Some(false) {
                    missing.push(format!("{} (VE {id})", n.bridge));
                }
            }
        }
        if !missing.is_empty() {
            out.push(check(
                "bridges",
                Warn,
                format!("missing, so these VEs cannot start: {}", missing.join(", ")),
            ));
        }
        if !unfiltered.is_empty() {
            out.push(check(
                "VE filters",
                CheckLevel::Fail,
                format!(
                    "running without their nftables table (was the host's ruleset flushed?): restart VE {} to restore it",
                    unfiltered.join(", ")
                ),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::modules::ModuleState;
    use super::*;

    #[test]
    fn the_nat_bound_needs_connlimit() {
        assert_eq!(
            connlimit_check(ModuleState::Missing, 16384).level,
            CheckLevel::Warn
        );
        assert_eq!(
            connlimit_check(ModuleState::Missing, 0).level,
            CheckLevel::Ok
        );
        assert_eq!(
            connlimit_check(ModuleState::OnDisk, 16384).level,
            CheckLevel::Ok
        );
    }
}
