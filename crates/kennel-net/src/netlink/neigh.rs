//! Proxy ARP/NDP entries (`ip neigh ... proxy ADDR dev DEV`).

use std::net::IpAddr;

use netlink_packet_core::{
    Emitable, NlasIterator, ParseableParametrized, NLM_F_CREATE, NLM_F_REPLACE,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourHeader, NeighbourMessage,
    NeighbourState,
};
use netlink_packet_route::RouteNetlinkMessage;

use super::address::family_of;
use rustix::io::Errno;

use super::{Netlink, NetlinkError, Result};

const RTM_NEWNEIGH: u16 = 28;

fn proxy_message(dev: u32, addr: IpAddr) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = family_of(addr);
    msg.header.ifindex = dev;
    msg.header.state = NeighbourState::Permanent;
    msg.header.flags = NeighbourFlags::Proxy;
    let dst = match addr {
        IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
        IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
    };
    msg.attributes.push(NeighbourAttribute::Destination(dst));
    msg
}

impl Netlink {
    /// Adds a proxy ARP (IPv4) or NDP (IPv6) entry for `addr` on link
    /// `dev` (`NTF_PROXY`), replacing an existing one.
    pub fn add_proxy_neigh(&mut self, dev: u32, addr: IpAddr) -> Result<()> {
        let op = format!("add proxy neighbour {addr} on link {dev}");
        self.request(
            &op,
            RouteNetlinkMessage::NewNeighbour(proxy_message(dev, addr)),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .map(drop)
    }

    /// Deletes the proxy entry for `addr` on link `dev`. `Ok(false)` if it
    /// was not there (or the link is gone).
    pub fn del_proxy_neigh(&mut self, dev: u32, addr: IpAddr) -> Result<bool> {
        let op = format!("delete proxy neighbour {addr} on link {dev}");
        match self.request(
            &op,
            RouteNetlinkMessage::DelNeighbour(proxy_message(dev, addr)),
            0,
        ) {
            Ok(_) => Ok(true),
            Err(e) if e.is_kernel(Errno::NOENT) || e.is_kernel(Errno::NODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// All proxy entries (IPv4 and IPv6) as (link index, address); the
    /// index is 0 for an entry bound to no link.
    pub fn proxy_neighs(&mut self) -> Result<Vec<(u32, IpAddr)>> {
        let op = "list proxy neighbours";
        let mut msg = NeighbourMessage::default();
        // The kernel dumps the proxy tables only if the flags are exactly
        // NTF_PROXY.
        msg.header.flags = NeighbourFlags::Proxy;
        let replies = self.dump(op, RouteNetlinkMessage::GetNeighbour(msg))?;
        let mut entries = Vec::new();
        for reply in replies.iter().filter(|r| r.kind == RTM_NEWNEIGH) {
            let header = NeighbourHeader::parse(&reply.payload)
                .map_err(|e| NetlinkError::protocol(op, format!("bad neighbour message: {e}")))?;
            if !header.flags.contains(NeighbourFlags::Proxy) {
                continue;
            }
            let attributes = reply.payload.get(header.buffer_len()..).unwrap_or_default();
            let dst = NlasIterator::new(attributes)
                .map_while(|nla| nla.ok())
                .find_map(
                    |nla| match NeighbourAttribute::parse_with_param(&nla, header.family) {
                        Ok(NeighbourAttribute::Destination(NeighbourAddress::Inet(v4))) => {
                            Some(IpAddr::V4(v4))
                        }
                        Ok(NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6))) => {
                            Some(IpAddr::V6(v6))
                        }
                        _ => None,
                    },
                );
            if let Some(ip) = dst {
                entries.push((header.ifindex, ip));
            }
        }
        Ok(entries)
    }
}
