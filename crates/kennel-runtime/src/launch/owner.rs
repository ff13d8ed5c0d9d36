//! Who owns a VE's user namespace.
//!
//! The kernel charges what a user namespace's processes create (inotify
//! instances and watches, fanotify groups, and namespaces of every kind)
//! twice: to the creating uid inside the namespace, against that
//! namespace's limits (which start unlimited, and which the VE's root may
//! change), and then, level by level, to the namespace's *owner* in the
//! parent namespace, against the parent's per-user limits
//! (`/proc/sys/user/max_*`; `fs.inotify.max_user_instances` is 128 on most
//! hosts). Had the host's root created every VE's namespace, all VEs would
//! share root's share: one VE making 128 inotify instances would leave no
//! other VE, and none of the host's own root services (systemd, udev),
//! a single one.
//!
//! So the monitor creates the namespace with the VE's own host uid (the
//! base of its id range, an otherwise unused uid) as effective uid: each
//! VE is charged to a uid of its own, bounded by the host's per-user
//! limits, and the host's root keeps its own. Its capabilities are kept
//! meanwhile (`SECBIT_NO_SETUID_FIXUP`), for `CLONE_INTO_CGROUP`; the
//! child clears the bit at once (it would otherwise let programs in the VE
//! keep capabilities across `setuid`), and the monitor returns to uid 0.

use kennel_sys::clone::{clone3, CloneOptions, Forked};
use rustix::process::{waitpid, Pid, Uid, WaitOptions};
use rustix::thread::{
    capabilities_secure_bits, set_capabilities_secure_bits, set_thread_res_uid,
    CapabilitiesSecureBits,
};

use super::exhausted;
use crate::error::{Context, Result};

/// `clone3` with `opts` (which creates a user namespace) as effective uid
/// `owner`. The parent returns with the secure bits as they were before;
/// the child must call [`child_reset`] first thing.
pub(super) fn clone_as(owner: u32, opts: &CloneOptions<'_>) -> Result<Forked> {
    let before = capabilities_secure_bits().ctx(|| "read the secure bits".into())?;
    set_capabilities_secure_bits(before | CapabilitiesSecureBits::NO_SETUID_FIXUP)
        .ctx(|| "keep capabilities across the change of uid".into())?;
    let switched = set_thread_res_uid(None, Uid::from_raw(owner), None)
        .ctx(|| format!("become uid {owner} to create the VE's user namespace"));
    let forked = switched.and_then(|()| {
        clone3(opts).map_err(|e| {
            let mut facts = exhausted::HostFacts::read();
            if e.raw_os_error() == Some(libc::ENOSPC) {
                facts.ns_refused = refused_kind();
            }
            exhausted::clone_error_with(e, "create the VE's namespaces", Some(owner), &facts)
        })
    });
    if let Ok(Forked::Child) = forked {
        return forked;
    }
    set_thread_res_uid(None, Uid::ROOT, None).ctx(|| "return to uid 0".into())?;
    set_capabilities_secure_bits(before).ctx(|| "put the secure bits back".into())?;
    forked
}

/// The kind of namespace the kernel refuses to the current effective uid,
/// with its sysctl's value: a refused clone's `ENOSPC` does not say which
/// of the kinds it asked for was full, so each is tried on its own in a
/// child that exits at once.
fn refused_kind() -> Option<(&'static str, u64)> {
    for (flag, name) in exhausted::NS_KINDS {
        let tried = clone3(&CloneOptions {
            flags: (libc::CLONE_NEWUSER | flag) as u64,
            ..CloneOptions::default()
        });
        match tried {
            Ok(Forked::Child) => kennel_sys::process::exit_child(0),
            Ok(Forked::Parent { pid, .. }) => {
                if let Some(pid) = Pid::from_raw(pid) {
                    let _ = waitpid(Some(pid), WaitOptions::empty());
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                return Some((name, exhausted::sysctl(name)?));
            }
            Err(_) => return None,
        }
    }
    None
}

/// In the child: without `SECBIT_NO_SETUID_FIXUP`, whatever the host's
/// bits were (it holds every capability in its new user namespace, so it
/// may): programs in the VE lose their capabilities across `setuid`.
pub(crate) fn child_reset() -> std::io::Result<()> {
    let bits = capabilities_secure_bits()?;
    Ok(set_capabilities_secure_bits(
        bits - CapabilitiesSecureBits::NO_SETUID_FIXUP,
    )?)
}
