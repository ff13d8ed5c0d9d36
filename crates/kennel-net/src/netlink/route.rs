//! Routes of the main table: add (replace), delete, lookup.

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{Parseable, NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
    RouteType,
};
use netlink_packet_route::RouteNetlinkMessage;

use super::address::family_of;
use rustix::io::Errno;

use super::{Netlink, NetlinkError, Result};

const RTM_NEWROUTE: u16 = 24;

/// A route of the main table for [`Netlink::add_route`] and
/// [`Netlink::del_route`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The destination; host bits are cleared before use.
    pub dst: IpNet,
    /// The output link's index.
    pub dev: u32,
    pub gateway: Option<IpAddr>,
    /// `RTNH_F_ONLINK`: the gateway is on the link even if no address of
    /// the link covers it.
    pub onlink: bool,
}

impl Route {
    fn message(&self) -> RouteMessage {
        let dst = self.dst.trunc();
        let mut msg = RouteMessage::default();
        msg.header.address_family = family_of(dst.addr());
        msg.header.destination_prefix_length = dst.prefix_len();
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Static;
        if dst.prefix_len() > 0 {
            msg.attributes
                .push(RouteAttribute::Destination(RouteAddress::from(dst.addr())));
        }
        msg.attributes.push(RouteAttribute::Oif(self.dev));
        if let Some(gateway) = self.gateway {
            msg.attributes
                .push(RouteAttribute::Gateway(RouteAddress::from(gateway)));
        }
        msg
    }
}

impl Netlink {
    /// Adds `route` (proto static), replacing an existing route to the same
    /// destination. Scope link without a gateway, universe with one.
    pub fn add_route(&mut self, route: &Route) -> Result<()> {
        let op = format!("add route {}", describe(route));
        let mut msg = route.message();
        msg.header.kind = RouteType::Unicast;
        msg.header.scope = if route.gateway.is_some() {
            RouteScope::Universe
        } else {
            RouteScope::Link
        };
        if route.onlink {
            msg.header.flags |= RouteFlags::Onlink;
        }
        self.request(
            &op,
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
        .map(drop)
    }

    /// Deletes `route`: it must match destination, device, gateway (if
    /// given) and proto static, so routes others made are left alone.
    /// `Ok(false)` if there was no such route (or no such device).
    pub fn del_route(&mut self, route: &Route) -> Result<bool> {
        let op = format!("delete route {}", describe(route));
        let mut msg = route.message();
        // Any scope and type (as `ip route del` asks).
        msg.header.scope = RouteScope::NoWhere;
        msg.header.kind = RouteType::Unspec;
        match self.request(&op, RouteNetlinkMessage::DelRoute(msg), 0) {
            Ok(_) => Ok(true),
            Err(e)
                if e.is_kernel(Errno::SRCH)
                    || e.is_kernel(Errno::NOENT)
                    || e.is_kernel(Errno::NODEV) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// The index of the link the kernel would send a packet to `dst` out of
    /// (like `ip route get`), or `None` if `dst` is unreachable.
    pub fn route_dev(&mut self, dst: IpAddr) -> Result<Option<u32>> {
        Ok(self.lookup(dst)?.map(|(dev, _)| dev))
    }

    /// Like [`Netlink::route_dev`], but only when `dst` is on that link's
    /// own network (the route has no gateway): where a neighbour on that
    /// link could ask for `dst` by ARP or NDP.
    pub fn route_dev_on_link(&mut self, dst: IpAddr) -> Result<Option<u32>> {
        Ok(self
            .lookup(dst)?
            .and_then(|(dev, via_gateway)| (!via_gateway).then_some(dev)))
    }

    /// Whether `dst` is one of this namespace's own addresses (the route
    /// to it is of type local).
    pub fn is_local_address(&mut self, dst: IpAddr) -> Result<bool> {
        Ok(self
            .route_to(dst)?
            .is_some_and(|r| r.header.kind == RouteType::Local))
    }

    /// The output link of the route to `dst`, and whether it goes through
    /// a gateway.
    fn lookup(&mut self, dst: IpAddr) -> Result<Option<(u32, bool)>> {
        let Some(found) = self.route_to(dst)? else {
            return Ok(None);
        };
        // IPv6 answers unreachable/prohibit/blackhole routes with a route
        // out of `lo` instead of an error.
        if matches!(
            found.header.kind,
            RouteType::Unreachable | RouteType::Prohibit | RouteType::BlackHole | RouteType::Throw
        ) {
            return Ok(None);
        }
        let via_gateway = found
            .attributes
            .iter()
            .any(|attr| matches!(attr, RouteAttribute::Gateway(_)));
        Ok(found
            .attributes
            .iter()
            .find_map(|attr| match attr {
                RouteAttribute::Oif(index) => Some(*index),
                _ => None,
            })
            .map(|dev| (dev, via_gateway)))
    }

    /// The kernel's answer to `ip route get DST`; `None` when unreachable.
    fn route_to(&mut self, dst: IpAddr) -> Result<Option<RouteMessage>> {
        let op = format!("look up route to {dst}");
        let mut msg = RouteMessage::default();
        msg.header.address_family = family_of(dst);
        msg.header.destination_prefix_length = match dst {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(dst)));
        let replies = match self.request(&op, RouteNetlinkMessage::GetRoute(msg), 0) {
            Ok(replies) => replies,
            Err(e)
                if [
                    Errno::NETUNREACH,
                    Errno::HOSTUNREACH,
                    Errno::NETDOWN,
                    Errno::ACCESS,
                ]
                .iter()
                .any(|&errno| e.is_kernel(errno)) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        let reply = replies
            .iter()
            .find(|r| r.kind == RTM_NEWROUTE)
            .ok_or_else(|| NetlinkError::protocol(&op, "the reply holds no route"))?;
        let found = RouteMessage::parse(reply.payload.as_slice())
            .map_err(|e| NetlinkError::protocol(&op, format!("bad route message: {e}")))?;
        Ok(Some(found))
    }
}

fn describe(route: &Route) -> String {
    let mut text = format!("{} dev {}", route.dst.trunc(), route.dev);
    if let Some(gateway) = route.gateway {
        text.push_str(&format!(" via {gateway}"));
    }
    if route.onlink {
        text.push_str(" onlink");
    }
    text
}
