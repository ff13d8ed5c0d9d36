//! Step 3: `/dev` (tmpfs with the host's harmless nodes, the VE's devpts,
//! the console) and `/run`, both places of the VE's one tmpfs
//! ([`super::scratch`]).
//!
//! A user namespace cannot create usable device nodes, so the nodes are the
//! host's own, bind-mounted one by one. Only these exist: null, zero, full,
//! random, urandom, tty, the VE's own ptys, and with the `tun` and `fuse`
//! features `/dev/net/tun` and `/dev/fuse`. The devpts instance is the one
//! the host made for the VE (`crate::devpts`): attached here, it is the
//! VE's `/dev/pts`, and the console comes from it.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{openat, symlinkat, Mode, OFlags};
use rustix::pty::{ioctl_tiocgptpeer, unlockpt, OpenptFlags};

use super::kernfs::mount_and_open;
use super::mnt::{attach, clone_of, open_target, Make};
use super::rootfs::VeRoot;
use crate::error::{Context, Result, RuntimeError};
use crate::features::Features;
use crate::launch::devnodes::FeatureNode;

/// Host device nodes bound into every VE.
pub const NODES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// `/dev`'s and `/dev/shm`'s places on the VE's tmpfs.
#[derive(Debug)]
pub struct DevPlaces {
    pub dev: OwnedFd,
    pub shm: OwnedFd,
}

/// The VE's console: a pty from its own devpts. Init gets the peer
/// (`/dev/console`), the monitor the master.
#[derive(Debug)]
pub struct Console {
    pub master: OwnedFd,
    pub peer: OwnedFd,
}

fn missing(what: &str) -> RuntimeError {
    RuntimeError::Setup(format!("{what} could not be created"))
}

/// `/dev` and `/dev/shm` are places of the VE's one tmpfs
/// ([`super::scratch`]): `scratch` gives them.
pub fn mount_dev(
    root: &VeRoot,
    scratch: DevPlaces,
    devpts: OwnedFd,
    nodes: &[OwnedFd],
    features: &Features,
) -> Result<Console> {
    let dev = mount_and_open(root.fd.as_fd(), "dev", scratch.dev, 0o755)?;
    let d = dev.as_fd();
    for n in NODES {
        let host = rustix::fs::open(
            format!("/dev/{n}"),
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("open host /dev/{n}"))?;
        bind_node(d, n, host.as_fd())?;
    }
    // Made by the monitor (`launch::devnodes`), in this order.
    let wanted: Vec<_> = crate::launch::devnodes::wanted(features).collect();
    if wanted.len() != nodes.len() {
        return Err(RuntimeError::Protocol(format!(
            "the monitor sent {} feature devices for {} features",
            nodes.len(),
            wanted.len()
        )));
    }
    for (&FeatureNode { at, .. }, node) in wanted.iter().zip(nodes) {
        if let Some((dir, _)) = at.split_once('/') {
            open_target(d, dir, Make::Dir(0o755))?;
        }
        bind_node(d, at, node.as_fd())?;
    }
    let pts = mount_and_open(d, "pts", devpts, 0o755)?;
    let console = open_console(pts.as_fd())?;
    let cons_target =
        open_target(d, "console", Make::File)?.ok_or_else(|| missing("/dev/console"))?;
    let cm = clone_of(console.peer.as_fd(), "")?;
    attach(cm.as_fd(), cons_target.as_fd(), "/dev/console")?;
    let dir = rustix::fs::openat(
        d,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "open /dev".into())?;
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        symlinkat(target, dir.as_fd(), link).ctx(|| format!("create /dev/{link}"))?;
    }
    mount_and_open(d, "shm", scratch.shm, 0o1777)?;
    Ok(console)
}

/// Binds the device node `node` over a new file `name` below `dev`.
fn bind_node(dev: BorrowedFd<'_>, name: &str, node: BorrowedFd<'_>) -> Result<()> {
    let target = open_target(dev, name, Make::File)?.ok_or_else(|| missing(name))?;
    let m = clone_of(node, "")?;
    attach(m.as_fd(), target.as_fd(), &format!("/dev/{name}"))
}

/// Allocates the console pty from the VE's devpts (so it is `/dev/pts/0`
/// inside and owned by the VE's root).
fn open_console(pts: BorrowedFd<'_>) -> Result<Console> {
    let master = openat(
        pts,
        "ptmx",
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    // The first pty of a fresh instance: ENOSPC is the host's pool.
    .map_err(|e| crate::launch::exhausted::pty_error(e.into(), "open the VE's console pty"))?;
    unlockpt(&master).ctx(|| "unlock the console pty".into())?;
    let peer = ioctl_tiocgptpeer(
        &master,
        OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC,
    )
    .ctx(|| "open the console pty's peer".into())?;
    let size = rustix::termios::Winsize {
        ws_row: 25,
        ws_col: 80,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let _ = rustix::termios::tcsetwinsize(&master, size);
    Ok(Console { master, peer })
}

/// `/run` (`place`: its place on the VE's tmpfs), with systemd's
/// container-interface file `/run/host/container-manager`.
pub fn mount_run(root: &VeRoot, place: OwnedFd) -> Result<()> {
    let run = mount_and_open(root.fd.as_fd(), "run", place, 0o755)?;
    let run = openat(
        run.as_fd(),
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "open /run".into())?;
    rustix::fs::mkdirat(run.as_fd(), "host", Mode::from_raw_mode(0o755))
        .ctx(|| "create /run/host".into())?;
    let f = openat(
        run.as_fd(),
        "host/container-manager",
        OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o444),
    )
    .ctx(|| "create /run/host/container-manager".into())?;
    rustix::io::write(&f, b"kennel\n").ctx(|| "write /run/host/container-manager".into())?;
    Ok(())
}
