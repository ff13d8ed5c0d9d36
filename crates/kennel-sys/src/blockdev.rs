//! Loop devices and the filesystem ioctls a VE's disk needs: freeze and
//! thaw (consistent snapshots) and ext4's online resize.
//!
//! `loopdev-3` wraps loop devices, but only through `LOOP_SET_FD` followed
//! by `LOOP_SET_STATUS64`: two calls, between which the device exists
//! without its flags (no autoclear, no direct I/O). `LOOP_CONFIGURE` (5.8)
//! sets file, block size and flags in one call, so a crash can never leave
//! a device that outlives its last mount. rustix has no wrapper for these
//! ioctls either; they are a few lines each.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LOOP_SET_CAPACITY: libc::c_ulong = 0x4C07;
const LOOP_GET_STATUS64: libc::c_ulong = 0x4C05;
const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_FLAGS_DIRECT_IO: u32 = 16;
/// `_IOWR('X', 119, int)`.
const FIFREEZE: libc::c_ulong = 0xC004_5877;
/// `_IOWR('X', 120, int)`.
const FITHAW: libc::c_ulong = 0xC004_5878;
/// `_IOW('f', 16, __u64)`.
const EXT4_IOC_RESIZE_FS: libc::c_ulong = 0x4008_6610;

/// The kernel's `struct loop_info64` (include/uapi/linux/loop.h).
#[repr(C)]
struct LoopInfo64 {
    device: u64,
    inode: u64,
    rdevice: u64,
    offset: u64,
    sizelimit: u64,
    number: u32,
    encrypt_type: u32,
    encrypt_key_size: u32,
    flags: u32,
    file_name: [u8; 64],
    crypt_name: [u8; 64],
    encrypt_key: [u8; 32],
    init: [u64; 2],
}

impl LoopInfo64 {
    const fn zeroed() -> Self {
        LoopInfo64 {
            device: 0,
            inode: 0,
            rdevice: 0,
            offset: 0,
            sizelimit: 0,
            number: 0,
            encrypt_type: 0,
            encrypt_key_size: 0,
            flags: 0,
            file_name: [0; 64],
            crypt_name: [0; 64],
            encrypt_key: [0; 32],
            init: [0; 2],
        }
    }
}

/// The kernel's `struct loop_config`.
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// How a loop device is attached.
#[derive(Debug, Clone, Copy)]
pub struct LoopOptions {
    pub read_only: bool,
    /// Bypass the page cache of the backing file: the filesystem on the
    /// device has its own, and two would hold every page twice.
    pub direct_io: bool,
    /// The logical block size (512 or 4096).
    pub block_size: u32,
}

/// An attached loop device. It detaches itself when its last user (an
/// open descriptor or a mount) goes (`LO_FLAGS_AUTOCLEAR`).
#[derive(Debug)]
pub struct LoopDevice {
    pub index: u32,
    pub fd: OwnedFd,
}

impl LoopDevice {
    pub fn path(&self) -> String {
        format!("/dev/loop{}", self.index)
    }
}

fn ioctl_int(fd: BorrowedFd<'_>, request: libc::c_ulong, arg: libc::c_ulong) -> io::Result<i32> {
    // SAFETY: the requests passed here take an integer argument by value
    // (or none), so no memory is shared with the kernel; `fd` is borrowed
    // for the call.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, arg) };
    crate::check(ret as libc::c_long).map(|r| r as i32)
}

/// Attaches `file` to a free loop device with `opts`, autoclear set.
pub fn loop_attach(file: BorrowedFd<'_>, opts: LoopOptions) -> io::Result<LoopDevice> {
    let control = rustix::fs::open(
        "/dev/loop-control",
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    // Another process may take the free device between GET_FREE and
    // CONFIGURE (EBUSY): ask again.
    let mut last = io::Error::from_raw_os_error(libc::EBUSY);
    for _ in 0..32 {
        let index = ioctl_int(control.as_fd(), LOOP_CTL_GET_FREE, 0)? as u32;
        let access = if opts.read_only {
            rustix::fs::OFlags::RDONLY
        } else {
            rustix::fs::OFlags::RDWR
        };
        let dev = rustix::fs::open(
            format!("/dev/loop{index}"),
            access | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        let mut flags = LO_FLAGS_AUTOCLEAR;
        if opts.read_only {
            flags |= LO_FLAGS_READ_ONLY;
        }
        if opts.direct_io {
            flags |= LO_FLAGS_DIRECT_IO;
        }
        let config = LoopConfig {
            fd: file.as_raw_fd() as u32,
            block_size: opts.block_size,
            info: LoopInfo64 {
                flags,
                ..LoopInfo64::zeroed()
            },
            reserved: [0; 8],
        };
        // SAFETY: `config` is a valid, fully initialised `struct
        // loop_config` that lives across the call; the kernel only reads it.
        // Both descriptors are open for the call.
        let ret = unsafe {
            libc::ioctl(
                dev.as_raw_fd(),
                LOOP_CONFIGURE as _,
                std::ptr::addr_of!(config),
            )
        };
        match crate::check(ret as libc::c_long) {
            Ok(_) => return Ok(LoopDevice { index, fd: dev }),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// The device and inode numbers of the file loop device `dev` is backed
/// by (what a path in sysfs cannot prove: that it is this very file).
pub fn loop_backing(dev: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
    let mut info = LoopInfo64::zeroed();
    // SAFETY: LOOP_GET_STATUS64 writes one `struct loop_info64` through the
    // pointer, which points at `info`, valid and writable for the call.
    let ret = unsafe {
        libc::ioctl(
            dev.as_raw_fd(),
            LOOP_GET_STATUS64 as _,
            std::ptr::addr_of_mut!(info),
        )
    };
    crate::check(ret as libc::c_long)?;
    Ok((info.device, info.inode))
}

/// Tells loop device `dev` that its backing file changed size.
pub fn loop_set_capacity(dev: BorrowedFd<'_>) -> io::Result<()> {
    ioctl_int(dev, LOOP_SET_CAPACITY, 0).map(drop)
}

/// Freezes the filesystem that `fd` (any file or directory on it) is on:
/// dirty data is written and new writes wait until [`fs_thaw`].
pub fn fs_freeze(fd: BorrowedFd<'_>) -> io::Result<()> {
    ioctl_int(fd, FIFREEZE, 0).map(drop)
}

/// Thaws a filesystem frozen by [`fs_freeze`].
pub fn fs_thaw(fd: BorrowedFd<'_>) -> io::Result<()> {
    ioctl_int(fd, FITHAW, 0).map(drop)
}

/// Grows the mounted ext4 filesystem that `fd` is on to `blocks` of its
/// block size. The kernel asks for CAP_SYS_RESOURCE (EPERM without it).
pub fn ext4_resize(fd: BorrowedFd<'_>, blocks: u64) -> io::Result<()> {
    // SAFETY: EXT4_IOC_RESIZE_FS reads one `__u64` through the pointer,
    // which points at `blocks` for the duration of the call.
    let ret = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            EXT4_IOC_RESIZE_FS as _,
            std::ptr::addr_of!(blocks),
        )
    };
    crate::check(ret as libc::c_long).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structs_have_the_kernels_sizes() {
        assert_eq!(std::mem::size_of::<LoopInfo64>(), 232);
        assert_eq!(std::mem::size_of::<LoopConfig>(), 232 + 8 + 64);
    }
}
