//! A busybox template from the host's statically linked busybox: a few
//! megabytes, built offline in well under a second.

use std::fs;
use std::io::Read;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{io_err, Result, StorageError};
use crate::util::{mkdir_mode, write_file};

const CANDIDATES: &[&str] = &[
    "/bin/busybox",
    "/usr/bin/busybox",
    "/sbin/busybox",
    "/usr/sbin/busybox",
];

/// busybox init's configuration. No boot script by default: every program
/// a VE's boot runs is an exec of static busybox, whose C library start-up
/// probes the CPU with dozens of `cpuid` (each a trap to the hypervisor on
/// a virtual host: 7 us here); an `rcS` that only looked for `rc.local`
/// was 7% of the CPU of 1,000 VEs starting at once. Nor a `sync` at
/// shutdown: in a VE `sync` does nothing (docs/SECURITY.md), and init
/// syncs on its way down anyway.
const INITTAB: &str = "\
# Kennel busybox template: busybox init reads this file.
# A boot script of your own: write /etc/rc.local (executable) and
# uncomment the next line; init runs it once, before the login prompt.
#::sysinit:/etc/rc.local
# The VE's console (`kennel console`): a login prompt.
::respawn:/sbin/getty -L 0 /dev/console vt100
::ctrlaltdel:/sbin/reboot
";

const PROFILE: &str = "\
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PS1='\\u@\\h:\\w\\$ '
";

/// Finds a statically linked busybox on the host.
fn find_busybox() -> Result<PathBuf> {
    let mut dynamic = None;
    for c in CANDIDATES {
        let p = Path::new(c);
        if !p.is_file() {
            continue;
        }
        match is_static_elf(p) {
            Ok(true) => return Ok(p.to_path_buf()),
            Ok(false) => dynamic = Some(p),
            Err(_) => continue,
        }
    }
    Err(StorageError::Tool(match dynamic {
        Some(p) => format!(
            "{} is dynamically linked and cannot run inside a VE: install busybox-static (apt-get install busybox-static)",
            p.display()
        ),
        None => "busybox not found: install busybox-static (apt-get install busybox-static)".into(),
    }))
}

/// True if the ELF file at `p` has no program interpreter (PT_INTERP).
fn is_static_elf(p: &Path) -> std::io::Result<bool> {
    let mut f = fs::File::open(p)?;
    let mut hdr = [0u8; 64];
    f.read_exact(&mut hdr)?;
    if &hdr[..4] != b"\x7fELF" || hdr[4] != 2 {
        return Ok(false); // not a 64-bit ELF: treat as unusable
    }
    let phoff = u64::from_le_bytes(hdr[0x20..0x28].try_into().unwrap_or_default()) as usize;
    let phentsize = u16::from_le_bytes([hdr[0x36], hdr[0x37]]) as usize;
    let phnum = u16::from_le_bytes([hdr[0x38], hdr[0x39]]) as usize;
    let mut all = Vec::new();
    fs::File::open(p)?.read_to_end(&mut all)?;
    for i in 0..phnum {
        let off = phoff + i * phentsize;
        let Some(t) = all.get(off..off + 4) else {
            break;
        };
        if u32::from_le_bytes([t[0], t[1], t[2], t[3]]) == 3 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Builds the tree into `rootfs` and returns a description of the source.
pub(crate) fn build(rootfs: &Path) -> Result<String> {
    let bb = find_busybox()?;
    for (d, mode) in [
        ("bin", 0o755),
        ("sbin", 0o755),
        ("usr/bin", 0o755),
        ("usr/sbin", 0o755),
        ("etc/init.d", 0o755),
        ("proc", 0o555),
        ("sys", 0o555),
        ("dev", 0o755),
        ("run", 0o755),
        ("tmp", 0o1777),
        ("var/tmp", 0o1777),
        ("var/log", 0o755),
        ("root", 0o700),
        ("home", 0o755),
        ("mnt", 0o755),
    ] {
        mkdir_mode(&rootfs.join(d), mode)?;
    }
    let dst = rootfs.join("bin/busybox");
    fs::copy(&bb, &dst).map_err(io_err("copy", &dst))?;
    let out = Command::new(&dst)
        .arg("--list-full")
        .output()
        .map_err(io_err("run", &dst))?;
    if !out.status.success() {
        return Err(StorageError::Tool(format!(
            "{} --list-full failed",
            bb.display()
        )));
    }
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let applet = applet.trim().trim_start_matches('/');
        if applet.is_empty() || applet.contains("..") || applet == "bin/busybox" {
            continue;
        }
        let link = rootfs.join(applet);
        if link.symlink_metadata().is_ok() {
            continue;
        }
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent).map_err(io_err("create", parent))?;
        }
        symlink("/bin/busybox", &link).map_err(io_err("symlink", &link))?;
    }
    write_file(&rootfs.join("etc/inittab"), INITTAB, 0o644)?;
    write_file(&rootfs.join("etc/profile"), PROFILE, 0o644)?;
    write_file(
        &rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        0o644,
    )?;
    write_file(
        &rootfs.join("etc/group"),
        "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
        0o644,
    )?;
    // Root's password is locked; set one with `kennel exec ID -- passwd`.
    write_file(
        &rootfs.join("etc/shadow"),
        "root:*:20000:0:99999:7:::\nnobody:*:20000:0:99999:7:::\n",
        0o600,
    )?;
    write_file(
        &rootfs.join("etc/hosts"),
        "127.0.0.1\tlocalhost\n::1\tlocalhost\n",
        0o644,
    )?;
    write_file(&rootfs.join("etc/shells"), "/bin/sh\n/bin/ash\n", 0o644)?;
    let version = Command::new(&dst)
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .unwrap_or_default();
    write_file(
        &rootfs.join("etc/os-release"),
        &format!("NAME=BusyBox\nID=busybox\nVERSION_ID={}\nPRETTY_NAME=\"BusyBox {version} (Kennel template)\"\n", version.trim_start_matches('v')),
        0o644,
    )?;
    Ok(format!("busybox-static {version} from {}", bb.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_shell_is_dynamic() {
        // /bin/sh on Debian is dash, a dynamically linked program.
        assert_eq!(is_static_elf(Path::new("/bin/sh")).ok(), Some(false));
    }
}
