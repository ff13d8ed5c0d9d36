//! Thin safe wrappers over the raw system calls the probes make. Every
//! failure is the raw errno: a probe's verdict names it.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub type Res<T> = Result<T, i32>;

pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// The symbolic name of an errno (for verdict lines).
pub fn ename(e: i32) -> String {
    let name = match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ENOTTY => "ENOTTY",
        libc::ETXTBSY => "ETXTBSY",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::ENOSYS => "ENOSYS",
        libc::ELOOP => "ELOOP",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EDQUOT => "EDQUOT",
        libc::ENOKEY => "ENOKEY",
        libc::ESTALE => "ESTALE",
        libc::ENETDOWN => "ENETDOWN",
        libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        _ => return format!("errno {e}"),
    };
    name.to_string()
}

fn cstr(s: &str) -> Res<CString> {
    CString::new(s).map_err(|_| libc::EINVAL)
}

fn check(r: libc::c_int) -> Res<libc::c_int> {
    if r < 0 {
        Err(errno())
    } else {
        Ok(r)
    }
}

/// A raw system call with up to six word-sized arguments.
///
/// # Safety
/// Any argument the kernel reads as a pointer must be valid for what
/// system call `nr` does with it (or null).
pub unsafe fn syscall(nr: libc::c_long, a: [usize; 6]) -> Res<isize> {
    // SAFETY: the caller vouches for the pointer arguments.
    let r = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
    if r < 0 {
        Err(errno())
    } else {
        Ok(r as isize)
    }
}

/// A system call through the 32-bit x86 entry (`int 0x80`), with every
/// argument zero (null pointers): enough to tell a seccomp refusal from
/// the kernel's own argument checks.
pub fn syscall_i386_zero(nr: u32) -> Res<i32> {
    let ret: i32;
    // SAFETY: int 0x80 with only zero arguments: the kernel reads no
    // memory of ours (null pointers fail with EFAULT). rbx is callee-saved
    // and reserved by the compiler, so it is saved and restored by hand.
    unsafe {
        std::arch::asm!(
            "push rbx",
            "xor ebx, ebx",
            "int 0x80",
            "pop rbx",
            inlateout("eax") nr as i32 => ret,
            in("ecx") 0u32,
            in("edx") 0u32,
            in("esi") 0u32,
            in("edi") 0u32,
        );
    }
    if ret < 0 {
        Err(-ret)
    } else {
        Ok(ret)
    }
}

/// A 32-bit system call through `int 0x80` with three register arguments
/// (values, or addresses below 4 GiB).
pub fn syscall_i386(nr: u32, a: [u32; 3]) -> Res<i32> {
    let ret: i32;
    // SAFETY: the caller passes values, or addresses below 4 GiB of live
    // memory laid out as call `nr` reads it. rbx is reserved by the
    // compiler, so it is saved and restored by hand.
    unsafe {
        std::arch::asm!(
            "push rbx",
            "mov ebx, {a0:e}",
            "int 0x80",
            "pop rbx",
            a0 = in(reg) a[0],
            inlateout("eax") nr as i32 => ret,
            in("ecx") a[1],
            in("edx") a[2],
        );
    }
    if ret < 0 {
        Err(-ret)
    } else {
        Ok(ret)
    }
}

pub fn open(path: &str, flags: libc::c_int) -> Res<OwnedFd> {
    openat(libc::AT_FDCWD, path, flags)
}

pub fn openat(dir: RawFd, path: &str, flags: libc::c_int) -> Res<OwnedFd> {
    let p = cstr(path)?;
    // SAFETY: p is a valid C string; the mode is only read with O_CREAT.
    let fd = check(unsafe { libc::openat(dir, p.as_ptr(), flags | libc::O_CLOEXEC, 0o600) })?;
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Takes ownership of a descriptor a system call just returned.
pub fn own(fd: RawFd) -> OwnedFd {
    // SAFETY: callers pass only descriptors fresh from the kernel.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

pub fn fstat(fd: &OwnedFd) -> Res<libc::stat> {
    // SAFETY: an all-zero stat is a valid value to overwrite.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is a valid, writable stat buffer.
    check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

pub fn lstat(path: &str) -> Res<libc::stat> {
    let p = cstr(path)?;
    // SAFETY: an all-zero stat is a valid value to overwrite.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: p is a C string, st a writable stat buffer.
    check(unsafe { libc::lstat(p.as_ptr(), &mut st) })?;
    Ok(st)
}

pub fn unshare(flags: libc::c_int) -> Res<()> {
    // SAFETY: no pointers.
    check(unsafe { libc::unshare(flags) }).map(|_| ())
}

pub fn mount(
    src: Option<&str>,
    target: &str,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Res<()> {
    let src = src.map(cstr).transpose()?;
    let target = cstr(target)?;
    let fstype = fstype.map(cstr).transpose()?;
    let data = data.map(cstr).transpose()?;
    let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is a valid C string or null.
    check(unsafe {
        libc::mount(
            ptr(&src),
            target.as_ptr(),
            ptr(&fstype),
            flags,
            ptr(&data) as *const libc::c_void,
        )
    })
    .map(|_| ())
}

pub fn umount2(target: &str, flags: libc::c_int) -> Res<()> {
    let t = cstr(target)?;
    // SAFETY: t is a valid C string.
    check(unsafe { libc::umount2(t.as_ptr(), flags) }).map(|_| ())
}

pub fn mknod(path: &str, mode: libc::mode_t, major: u32, minor: u32) -> Res<()> {
    let p = cstr(path)?;
    // SAFETY: p is a valid C string.
    check(unsafe { libc::mknod(p.as_ptr(), mode, libc::makedev(major, minor)) }).map(|_| ())
}

/// A private copy of the caller's mount namespace, so that a probe can
/// unmount and remount without breaking the VE it runs in.
pub fn private_mount_ns() -> Res<()> {
    unshare(libc::CLONE_NEWNS)?;
    mount(None, "/", None, libc::MS_REC | libc::MS_PRIVATE, None)
}

/// A fresh empty directory for a mount point.
pub fn scratch_dir(tag: &str) -> Res<String> {
    let d = format!("/tmp/.kennel-attack-{tag}-{}", std::process::id());
    match std::fs::create_dir_all(&d) {
        Ok(()) => Ok(d),
        Err(e) => Err(e.raw_os_error().unwrap_or(libc::EIO)),
    }
}

pub fn read_text(path: &str) -> Res<String> {
    std::fs::read_to_string(path).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
}

pub fn write_text(path: &str, s: &str) -> Res<()> {
    std::fs::write(path, s).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
}

/// (device, inode) of what `fd` refers to.
pub fn id_of(fd: &OwnedFd) -> Res<(u64, u64)> {
    let st = fstat(fd)?;
    Ok((st.st_dev, st.st_ino))
}

/// Writes the uid and gid maps of a user namespace the caller just
/// created (root inside = the caller outside).
pub fn map_self_as_root(uid: u32, gid: u32) -> Res<()> {
    write_text("/proc/self/setgroups", "deny")?;
    write_text("/proc/self/uid_map", &format!("0 {uid} 1"))?;
    write_text("/proc/self/gid_map", &format!("0 {gid} 1"))
}

pub fn getuid() -> u32 {
    // SAFETY: no arguments.
    unsafe { libc::getuid() }
}

pub fn getgid() -> u32 {
    // SAFETY: no arguments.
    unsafe { libc::getgid() }
}

pub fn getpid() -> i32 {
    // SAFETY: no arguments.
    unsafe { libc::getpid() }
}

/// Numeric entries of /proc (process ids), without the caller.
pub fn pids() -> Vec<i32> {
    let me = getpid();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|&p| p != me)
        .collect()
}

pub fn sleep_ms(ms: u64) {
    std::thread::sleep(std::time::Duration::from_millis(ms));
}
