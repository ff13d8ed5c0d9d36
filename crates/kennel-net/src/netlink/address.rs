//! Addresses: add (replace), delete, list.

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{Emitable, NlasIterator, Parseable, NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeader, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use rustix::io::Errno;

use super::{Netlink, NetlinkError, Result};

const RTM_NEWADDR: u16 = 20;

impl Netlink {
    /// Adds `addr` on link `index`, replacing it if present (so adding
    /// twice is fine). `nodad` makes an IPv6 address usable at once (no
    /// duplicate address detection). The scope is link for 169.254.0.0/16
    /// and fe80::/10, host for 127.0.0.0/8, universe otherwise.
    pub fn add_address(&mut self, index: u32, addr: IpNet, nodad: bool) -> Result<()> {
        let op = format!("add address {addr} on link {index}");
        let mut msg = address_message(index, addr);
        msg.header.scope = scope_of(addr.addr());
        match addr {
            IpNet::V4(net) => {
                let ip = IpAddr::V4(net.addr());
                msg.attributes.push(AddressAttribute::Local(ip));
                msg.attributes.push(AddressAttribute::Address(ip));
                // /31 and /32 have no broadcast address (RFC 3021).
                if net.prefix_len() <= 30 {
                    msg.attributes
                        .push(AddressAttribute::Broadcast(net.broadcast()));
                }
            }
            IpNet::V6(net) => {
                msg.attributes
                    .push(AddressAttribute::Address(IpAddr::V6(net.addr())));
                if nodad {
                    msg.header.flags |= AddressHeaderFlags::Nodad;
                    msg.attributes
                        .push(AddressAttribute::Flags(AddressFlags::Nodad));
                }
            }
        }
        self.request(
            &op,
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .map(drop)
    }

    /// Deletes `addr` (address and prefix length) from link `index`.
    /// `Ok(false)` if it was not there.
    pub fn del_address(&mut self, index: u32, addr: IpNet) -> Result<bool> {
        let op = format!("delete address {addr} from link {index}");
        let mut msg = address_message(index, addr);
        if let IpNet::V4(net) = addr {
            msg.attributes
                .push(AddressAttribute::Local(IpAddr::V4(net.addr())));
        }
        msg.attributes.push(AddressAttribute::Address(addr.addr()));
        match self.request(&op, RouteNetlinkMessage::DelAddress(msg), 0) {
            Ok(_) => Ok(true),
            Err(e) if e.is_kernel(Errno::ADDRNOTAVAIL) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The addresses (IPv4 and IPv6) on link `index`, in the kernel's order.
    pub fn addresses(&mut self, index: u32) -> Result<Vec<IpNet>> {
        let op = format!("list addresses of link {index}");
        let replies = self.dump(
            &op,
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
        )?;
        let mut addrs = Vec::new();
        for reply in replies.iter().filter(|r| r.kind == RTM_NEWADDR) {
            let header = AddressHeader::parse(&reply.payload)
                .map_err(|e| NetlinkError::protocol(&op, format!("bad address message: {e}")))?;
            if header.index != index {
                continue;
            }
            // IFA_LOCAL is the address itself; IFA_ADDRESS is the peer on a
            // point-to-point link and the address otherwise (always, for
            // IPv6 without a peer).
            let (mut local, mut address) = (None, None);
            let attributes = reply.payload.get(header.buffer_len()..).unwrap_or_default();
            for nla in NlasIterator::new(attributes).map_while(|nla| nla.ok()) {
                match AddressAttribute::parse(&nla) {
                    Ok(AddressAttribute::Local(ip)) => local = Some(ip),
                    Ok(AddressAttribute::Address(ip)) => address = Some(ip),
                    _ => {}
                }
            }
            if let Some(ip) = local.or(address) {
                let net = IpNet::new(ip, header.prefix_len)
                    .map_err(|e| NetlinkError::protocol(&op, format!("bad address {ip}: {e}")))?;
                addrs.push(net);
            }
        }
        Ok(addrs)
    }
}

fn address_message(index: u32, addr: IpNet) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = family_of(addr.addr());
    msg.header.prefix_len = addr.prefix_len();
    msg.header.index = index;
    msg
}

pub(super) fn family_of(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn scope_of(ip: IpAddr) -> AddressScope {
    match ip {
        IpAddr::V4(v4) if v4.is_link_local() => AddressScope::Link,
        IpAddr::V4(v4) if v4.is_loopback() => AddressScope::Host,
        IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 => AddressScope::Link,
        _ => AddressScope::Universe,
    }
}
