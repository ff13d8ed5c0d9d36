//! `fuse-hello DIR`: does FUSE work in this VE (the `fuse` feature)?
//!
//! Mounts a FUSE filesystem at DIR served by a child of this probe: one
//! file, `hello`, holding [`HELLO`]; reads it through the mount, unmounts.
//! No FUSE library exists in a busybox VE, so this speaks the kernel's
//! protocol (Documentation/filesystems/fuse.rst, `include/uapi/linux/fuse.h`)
//! for the handful of requests a read needs, and answers every other
//! request with ENOSYS. A feature probe: `WORKS` when the file reads back,
//! `BLOCKED` when the VE cannot mount FUSE (no `/dev/fuse`).
//!
//! `fuse-stall DIR`: mounts the same filesystem at DIR, but its server
//! (left running) reads every request after INIT and never answers: a
//! process that touches DIR then waits in the kernel beyond SIGKILL, for
//! as long as the server lives. What a VE can do to host tools that work
//! on its files.

use std::ffi::CString;

use crate::sys::ename;
use crate::verdict::{self, Verdict};

const HELLO: &[u8] = b"hello from fuse\n";
const ROOT: u64 = 1;
const FILE: u64 = 2;

const LOOKUP: u32 = 1;
const FORGET: u32 = 2;
const GETATTR: u32 = 3;
const OPEN: u32 = 14;
const READ: u32 = 15;
const RELEASE: u32 = 18;
const FLUSH: u32 = 25;
const INIT: u32 = 26;
const OPENDIR: u32 = 27;
const RELEASEDIR: u32 = 29;
const BATCH_FORGET: u32 = 42;

/// `struct fuse_in_header`: 40 bytes.
const IN_HEADER: usize = 40;

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8).map_or(0, |s| {
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        u64::from_le_bytes(a)
    })
}

/// `struct fuse_attr` (88 bytes) of the root or the file.
fn attr(node: u64) -> Vec<u8> {
    let (mode, size, nlink) = if node == ROOT {
        (0o040_755u32, 0u64, 2u32)
    } else {
        (0o100_444, HELLO.len() as u64, 1)
    };
    let mut a = Vec::with_capacity(88);
    for v in [node, size, size.div_ceil(512), 0, 0, 0] {
        a.extend_from_slice(&v.to_le_bytes());
    }
    // atimensec mtimensec ctimensec mode nlink uid gid rdev blksize flags
    for v in [0u32, 0, 0, mode, nlink, 0, 0, 0, 4096, 0] {
        a.extend_from_slice(&v.to_le_bytes());
    }
    a
}

/// The answer to one request: `Some((error, body))`, or `None` for
/// requests that get none (forgets).
fn answer(opcode: u32, node: u64, body: &[u8]) -> Option<(i32, Vec<u8>)> {
    let ok = |b: Vec<u8>| Some((0, b));
    match opcode {
        FORGET | BATCH_FORGET => None,
        INIT => {
            let mut out = Vec::with_capacity(64);
            out.extend_from_slice(&7u32.to_le_bytes()); // major
            out.extend_from_slice(&31u32.to_le_bytes()); // minor
            out.extend_from_slice(&u32_at(body, 8).to_le_bytes()); // max_readahead
            out.extend_from_slice(&0u32.to_le_bytes()); // flags
            out.extend_from_slice(&16u16.to_le_bytes()); // max_background
            out.extend_from_slice(&12u16.to_le_bytes()); // congestion_threshold
            out.extend_from_slice(&4096u32.to_le_bytes()); // max_write
            out.extend_from_slice(&1u32.to_le_bytes()); // time_gran
            out.resize(64, 0);
            ok(out)
        }
        LOOKUP => {
            let name = body.split(|&b| b == 0).next().unwrap_or_default();
            if node != ROOT || name != b"hello" {
                return Some((-libc::ENOENT, Vec::new()));
            }
            let mut out = Vec::with_capacity(128);
            for v in [FILE, 0, 1, 1] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(&[0u8; 8]);
            out.extend(attr(FILE));
            ok(out)
        }
        GETATTR => {
            let mut out = vec![0u8; 16];
            out[..8].copy_from_slice(&1u64.to_le_bytes());
            out.extend(attr(node));
            ok(out)
        }
        OPEN | OPENDIR => ok(vec![0u8; 16]),
        READ => {
            let offset = (u64_at(body, 8) as usize).min(HELLO.len());
            let size = u32_at(body, 16) as usize;
            ok(HELLO[offset..(offset + size).min(HELLO.len())].to_vec())
        }
        RELEASE | RELEASEDIR | FLUSH => ok(Vec::new()),
        _ => Some((-libc::ENOSYS, Vec::new())),
    }
}

/// Serves requests on `dev` until the filesystem goes away; with `stall`,
/// answers nothing but INIT.
fn serve(dev: i32, stall: bool) -> ! {
    let mut buf = vec![0u8; 1 << 17];
    loop {
        // SAFETY: `buf` is a valid writable buffer of its length.
        let n = unsafe { libc::read(dev, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = crate::sys::errno();
            if e == libc::EINTR || e == libc::EAGAIN {
                continue;
            }
            // ENODEV: unmounted.
            // SAFETY: _exit takes no pointers.
            unsafe { libc::_exit(0) }
        }
        let req = &buf[..n as usize];
        if req.len() < IN_HEADER {
            continue;
        }
        let opcode = u32_at(req, 4);
        if stall && opcode != INIT {
            continue;
        }
        let unique = u64_at(req, 8);
        let node = u64_at(req, 16);
        let Some((error, body)) = answer(opcode, node, &req[IN_HEADER..]) else {
            continue;
        };
        let mut out = Vec::with_capacity(16 + body.len());
        out.extend_from_slice(&((16 + body.len()) as u32).to_le_bytes());
        out.extend_from_slice(&error.to_le_bytes());
        out.extend_from_slice(&unique.to_le_bytes());
        out.extend(body);
        // SAFETY: `out` is a valid buffer of its length.
        unsafe { libc::write(dev, out.as_ptr().cast(), out.len()) };
    }
}

/// Mounts a FUSE filesystem at `cdir` and forks its server; returns the
/// server's PID.
fn mount_and_serve(cdir: &CString, stall: bool) -> Result<i32, Verdict> {
    // SAFETY: a NUL-terminated path literal.
    let dev = unsafe { libc::open(c"/dev/fuse".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if dev < 0 {
        return Err(verdict::blocked(format!(
            "open /dev/fuse: {}",
            ename(crate::sys::errno())
        )));
    }
    let Ok(opts) = CString::new(format!("fd={dev},rootmode=40000,user_id=0,group_id=0")) else {
        return Err(verdict::error("options"));
    };
    // SAFETY: every pointer is a NUL-terminated string that outlives the call.
    let r = unsafe {
        libc::mount(
            c"kennel-fuse".as_ptr(),
            cdir.as_ptr(),
            c"fuse".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            opts.as_ptr().cast(),
        )
    };
    if r != 0 {
        return Err(verdict::blocked(format!(
            "mount fuse: {}",
            ename(crate::sys::errno())
        )));
    }
    // SAFETY: fork in a single-threaded program; the child only reads,
    // writes and exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        serve(dev, stall);
    }
    // SAFETY: closing our copy; the child serves on its own.
    unsafe { libc::close(dev) };
    Ok(pid)
}

fn dir_arg(args: &[String], usage: &str) -> Result<(String, CString), Verdict> {
    let dir = args
        .first()
        .ok_or_else(|| verdict::error(format!("usage: {usage} DIR")))?;
    let cdir = CString::new(dir.as_str()).map_err(|_| verdict::error("bad DIR"))?;
    Ok((dir.clone(), cdir))
}

pub fn fuse_hello(args: &[String]) -> Verdict {
    let (dir, cdir) = match dir_arg(args, "fuse-hello") {
        Ok(d) => d,
        Err(v) => return v,
    };
    let pid = match mount_and_serve(&cdir, false) {
        Ok(p) => p,
        Err(v) => return v,
    };
    let read = std::fs::read(format!("{dir}/hello"));
    // SAFETY: a NUL-terminated path that outlives the call.
    unsafe { libc::umount2(cdir.as_ptr(), libc::MNT_DETACH) };
    if pid > 0 {
        let mut status = 0;
        // SAFETY: our child; status is a valid out-pointer.
        unsafe { libc::waitpid(pid, &mut status, 0) };
    }
    match read {
        Ok(b) if b == HELLO => verdict::works(format!(
            "read {:?} through a FUSE mount at {dir}",
            String::from_utf8_lossy(&b).trim()
        )),
        Ok(b) => verdict::error(format!("read back {:?}", String::from_utf8_lossy(&b))),
        Err(e) => verdict::error(format!("read through the FUSE mount: {e}")),
    }
}

pub fn fuse_stall(args: &[String]) -> Verdict {
    let (dir, cdir) = match dir_arg(args, "fuse-stall") {
        Ok(d) => d,
        Err(v) => return v,
    };
    match mount_and_serve(&cdir, true) {
        Ok(pid) => verdict::works(format!(
            "a FUSE server (pid {pid}) that never answers is mounted at {dir}"
        )),
        Err(v) => v,
    }
}
