//! The security policy every process in a VE runs under: a reduced
//! capability bounding set ([`caps`]), a seccomp filter ([`seccomp`]) and
//! the VE's own resource limits ([`rlimits`]).
//!
//! A VE runs in its own user namespace, so its root's capabilities only
//! reach objects that namespace owns; most host-wide operations already
//! fail. The policy removes, explicitly, what is still host-wide, so that
//! it fails the same way on every kernel and so that programs inside (e.g.
//! systemd) can see up front that it is unavailable. The full lists and the
//! reason for each entry are in docs/SECURITY.md.

pub mod caps;
pub mod rlimits;
pub mod seccomp;
