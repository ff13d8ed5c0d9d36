//! `mount_setattr(2)` for idmapped, read-only and private mounts.
//!
//! rustix wraps the rest of the new mount API (open_tree, fsopen, fsmount,
//! move_mount) but not mount_setattr, which Kennel needs to idmap a
//! template's tree into a VE's user namespace.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// The kernel's `struct mount_attr` (include/uapi/linux/mount.h).
#[repr(C)]
#[derive(Debug, Default)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const AT_RECURSIVE: libc::c_uint = 0x8000;

/// Idmaps the detached mount `mount_fd` (from `open_tree(OPEN_TREE_CLONE)`)
/// with the id mapping of the user namespace `userns`, optionally also
/// making it read-only. Applies to the whole tree.
pub fn set_idmap(
    mount_fd: BorrowedFd<'_>,
    userns: BorrowedFd<'_>,
    read_only: bool,
) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP | if read_only { MOUNT_ATTR_RDONLY } else { 0 },
        userns_fd: userns.as_raw_fd() as u64,
        ..MountAttr::default()
    };
    setattr(mount_fd, attr, AT_RECURSIVE)
}

/// Makes the detached or attached mount `mount_fd` read-only (one mount,
/// not its children).
pub fn set_readonly(mount_fd: BorrowedFd<'_>) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        ..MountAttr::default()
    };
    setattr(mount_fd, attr, 0)
}

/// Sets the attributes `attrs` (`MOUNT_ATTR_NOSUID`, `NODEV`, `NOEXEC`,
/// `RDONLY`, ...) on the detached or attached mount `mount_fd` (one mount,
/// not its children), leaving the others as they are.
pub fn set_attrs(mount_fd: BorrowedFd<'_>, attrs: rustix::mount::MountAttrFlags) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: u64::from(attrs.bits()),
        ..MountAttr::default()
    };
    setattr(mount_fd, attr, 0)
}

/// Makes the detached mount `mount_fd` read-only and private: a copy of a
/// mount in a shared peer group (on a systemd host everything is shared)
/// would otherwise stay a peer of the host's, and mounts made on it
/// propagate back to the host and to every other copy.
#[allow(clippy::unnecessary_cast)] // `c_ulong` is u32 on 32-bit targets
pub fn set_readonly_private(mount_fd: BorrowedFd<'_>) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        propagation: libc::MS_PRIVATE as u64,
        ..MountAttr::default()
    };
    setattr(mount_fd, attr, 0)
}

fn setattr(mount_fd: BorrowedFd<'_>, mut attr: MountAttr, flags: libc::c_uint) -> io::Result<()> {
    // SAFETY: `attr` is a valid `struct mount_attr` whose size we pass, the
    // path is the empty C string with AT_EMPTY_PATH so the kernel acts on
    // `mount_fd` itself, and the descriptors in it are borrowed for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mount_fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint | flags,
            std::ptr::addr_of_mut!(attr),
            std::mem::size_of::<MountAttr>(),
        )
    };
    crate::check(ret).map(drop)
}
