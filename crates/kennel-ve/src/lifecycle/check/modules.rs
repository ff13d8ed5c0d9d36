//! Whether the kernel has a module Kennel needs: loaded, built in, on
//! disk (the kernel loads nf_tables expressions on first use), or
//! missing. Read from `/proc/modules` and the module index of the running
//! kernel; a kernel without loadable modules has neither, and cannot say.

use std::fs;

/// Where a kernel module stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleState {
    Loaded,
    BuiltIn,
    /// Not loaded, but the kernel can load it when first used.
    OnDisk,
    Missing,
    /// No loadable modules at all: whatever the kernel has is built in,
    /// and nothing lists it.
    Unknown,
}

/// `name`'s state from the texts of `/proc/modules`, `modules.builtin`
/// and `modules.dep` (each `None` when absent).
pub fn module_state(
    name: &str,
    loaded: Option<&str>,
    builtin: Option<&str>,
    dep: Option<&str>,
) -> ModuleState {
    let Some(loaded) = loaded else {
        return ModuleState::Unknown;
    };
    if loaded.lines().any(|l| l.split(' ').next() == Some(name)) {
        return ModuleState::Loaded;
    }
    // Paths such as kernel/net/netfilter/nft_connlimit.ko(.xz|.zst).
    let listed = |text: Option<&str>| {
        text.is_some_and(|t| {
            t.lines().any(|l| {
                let path = l.split(':').next().unwrap_or_default();
                let file = path.rsplit('/').next().unwrap_or_default();
                file.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(".ko"))
            })
        })
    };
    if listed(builtin) {
        ModuleState::BuiltIn
    } else if listed(dep) {
        ModuleState::OnDisk
    } else {
        ModuleState::Missing
    }
}

/// `name`'s state on this host.
pub fn read_module_state(name: &str) -> ModuleState {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let index = |f: &str| fs::read_to_string(format!("/lib/modules/{}/{f}", release.trim())).ok();
    module_state(
        name,
        fs::read_to_string("/proc/modules").ok().as_deref(),
        index("modules.builtin").as_deref(),
        index("modules.dep").as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_module_wherever_it_is() {
        let loaded = "nf_tables 356352 3 nft_ct, Live 0x0\nnft_connlimit 12288 0 - Live 0x0\n";
        let dep = "kernel/net/netfilter/nft_connlimit.ko.xz: kernel/net/netfilter/nf_conncount.ko.xz\nkernel/net/netfilter/nft_connlimits_not.ko: \n";
        let builtin = "kernel/net/netfilter/nf_tables.ko\n";
        let st = |l, b, d| module_state("nft_connlimit", l, b, d);
        assert_eq!(st(Some(loaded), None, None), ModuleState::Loaded);
        assert_eq!(st(Some(""), None, Some(dep)), ModuleState::OnDisk);
        assert_eq!(
            st(
                Some(""),
                Some("kernel/net/netfilter/nft_connlimit.ko\n"),
                None
            ),
            ModuleState::BuiltIn
        );
        assert_eq!(st(Some(""), Some(builtin), Some("")), ModuleState::Missing);
        assert_eq!(
            module_state("nft_conn", Some(""), None, Some(dep)),
            ModuleState::Missing,
            "a name is matched whole"
        );
        assert_eq!(st(None, None, None), ModuleState::Unknown);
    }
}
