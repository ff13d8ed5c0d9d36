//! Kennel's networking: everything a VE's network is made of on the host
//! and inside the VE.
//!
//! * [`model`]: the `[network]` configuration (routed addresses, bridged
//!   interfaces, DNS, rates, NAT, port forwards) and its checks;
//! * [`plan`]: the links (veth pairs) a configuration needs, and their names
//!   ([`names`]);
//! * [`reconcile`]: makes the host side and the VE side match a
//!   configuration, on start, on a live `kennel set`, and on teardown;
//! * [`netlink`]: links, addresses, routes and neighbours over rtnetlink;
//! * [`firewall`]: the VE's nftables tables (anti-spoofing, NAT, forwards);
//! * [`shaping`]: rate limits with `tc`;
//! * [`bridges`]: what `kennel check` reads about the bridges VEs are on;
//! * [`guest`]: the VE's own files (hostname, hosts, resolv.conf, ifupdown,
//!   systemd-networkd), written without following the VE's symlinks;
//! * [`loopback_up`]: the VE's `lo`, brought up by the VE while it starts.

pub mod netlink;

pub mod bridges;
pub mod error;
pub mod firewall;
pub mod guest;
pub mod model;
pub mod names;
pub mod plan;
pub mod reconcile;
pub mod shaping;

use std::io;

pub use error::{NetError, Result};
pub use model::VeNetwork;
pub use reconcile::{HostNet, Target};

/// Brings up `lo` in the caller's network namespace.
pub fn loopback_up() -> io::Result<()> {
    kennel_sys::netif::set_up("lo")
}
