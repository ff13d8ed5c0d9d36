//! Kennel's networking.
//!
//! Today a VE's network is its own namespace with loopback up (done inside
//! the VE while it starts: [`loopback_up`]). Links, addresses, routes and
//! the per-VE nftables objects of the routed and bridged models live here
//! too as they are added (issue "VE networking").

use std::io;

/// Brings up `lo` in the caller's network namespace.
pub fn loopback_up() -> io::Result<()> {
    kennel_sys::netif::set_up("lo")
}
