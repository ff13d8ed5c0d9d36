//! The capability bounding set of a VE.

use caps::{CapSet, Capability};

use crate::error::{Result, RuntimeError};

/// Capabilities no process in a VE can ever gain, and why.
pub const DROPPED: &[(Capability, &str)] = &[
    (Capability::CAP_SYS_MODULE, "kernel modules are shared by the whole host (systemd also takes its absence to skip module loading)"),
    (Capability::CAP_SYS_RAWIO, "raw I/O ports and device memory belong to the host"),
    (Capability::CAP_SYS_TIME, "the system clock is shared by every VE"),
    (Capability::CAP_SYSLOG, "the kernel log is the host's"),
    (Capability::CAP_MAC_ADMIN, "LSM policy is host-wide"),
    (Capability::CAP_MAC_OVERRIDE, "LSM policy is host-wide"),
    (Capability::CAP_WAKE_ALARM, "wake-up timers act on the host"),
    (Capability::CAP_BLOCK_SUSPEND, "would block suspend of the host"),
    (Capability::CAP_AUDIT_CONTROL, "the audit subsystem is not namespaced (systemd's container interface asks not to pass audit capabilities)"),
    (Capability::CAP_AUDIT_READ, "as CAP_AUDIT_CONTROL"),
    (Capability::CAP_AUDIT_WRITE, "as CAP_AUDIT_CONTROL"),
    (Capability::CAP_SYS_PACCT, "process accounting is host-wide"),
    (Capability::CAP_BPF, "BPF programs run in the host's kernel; only the host may load them"),
    (Capability::CAP_PERFMON, "performance monitoring observes the whole host"),
];

/// Removes [`DROPPED`] from the calling thread's bounding set and clears
/// its ambient and inheritable sets. Needs `CAP_SETPCAP` (in its user
/// namespace).
pub fn drop_bounding() -> Result<()> {
    for (cap, _) in DROPPED {
        // A capability the running kernel does not know is not in the set.
        if caps::has_cap(None, CapSet::Bounding, *cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, *cap).map_err(|e| {
                RuntimeError::Capabilities(format!("drop {cap} from the bounding set: {e}"))
            })?;
        }
    }
    caps::clear(None, CapSet::Ambient)
        .map_err(|e| RuntimeError::Capabilities(format!("clear ambient capabilities: {e}")))?;
    caps::clear(None, CapSet::Inheritable)
        .map_err(|e| RuntimeError::Capabilities(format!("clear inheritable capabilities: {e}")))?;
    Ok(())
}
