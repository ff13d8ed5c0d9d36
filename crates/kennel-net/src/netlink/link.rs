//! Links: lookup, dump, veth creation, deletion, up, master, IPv6 address
//! generation mode.

use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::{
    parse_string, Emitable, NlaBuffer, NlasIterator, ParseableParametrized, NLM_F_CREATE,
    NLM_F_EXCL,
};
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoData, InfoKind, InfoVeth, LinkAttribute,
    LinkFlags, LinkHeader, LinkInfo as LinkInfoAttr, LinkMessage,
};
use netlink_packet_route::RouteNetlinkMessage;

use rustix::io::Errno;

use super::{Netlink, NetlinkError, Result};

const RTM_NEWLINK: u16 = 16;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;

/// What [`Netlink::link`] reports about a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    /// `IFLA_INFO_KIND` ("veth", "bridge", ...); `None` for links without
    /// one (loopback, physical devices).
    pub kind: Option<String>,
    /// The link-layer address, when it is an Ethernet one (6 bytes).
    pub mac: Option<[u8; 6]>,
    /// The index of the bridge (or bond, ...) the link is enslaved to.
    pub master: Option<u32>,
    /// Whether `IFF_UP` is set (administratively up).
    pub up: bool,
}

/// One end of a veth pair for [`Netlink::create_veth`]. `None` leaves the
/// kernel's choice (random MAC, MTU 1500).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VethEnd<'a> {
    pub name: &'a str,
    pub mac: Option<[u8; 6]>,
    pub mtu: Option<u32>,
}

impl VethEnd<'_> {
    fn attributes(&self) -> Vec<LinkAttribute> {
        let mut attributes = vec![LinkAttribute::IfName(self.name.to_owned())];
        if let Some(mac) = self.mac {
            attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        if let Some(mtu) = self.mtu {
            attributes.push(LinkAttribute::Mtu(mtu));
        }
        attributes
    }
}

impl Netlink {
    /// The index of the link `name`, or `None` if there is no such link.
    pub fn link_index(&mut self, name: &str) -> Result<Option<u32>> {
        Ok(self.link(name)?.map(|link| link.index))
    }

    /// Index, kind, MAC, master and up state of the link `name`, or `None`
    /// if there is no such link.
    pub fn link(&mut self, name: &str) -> Result<Option<LinkInfo>> {
        let op = format!("look up link {name}");
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        self.one_link(&op, msg)
    }

    /// [`Netlink::link`] by index: one request, where a dump of every
    /// link would cost each start time in the number of VEs (the host's
    /// namespace holds a link per running VE).
    pub fn link_by_index(&mut self, index: u32) -> Result<Option<LinkInfo>> {
        let op = format!("look up link {index}");
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        self.one_link(&op, msg)
    }

    fn one_link(&mut self, op: &str, msg: LinkMessage) -> Result<Option<LinkInfo>> {
        let replies = match self.request(op, RouteNetlinkMessage::GetLink(msg), 0) {
            Ok(replies) => replies,
            Err(e) if e.is_kernel(Errno::NODEV) => return Ok(None),
            Err(e) => return Err(e),
        };
        let reply = replies
            .iter()
            .find(|r| r.kind == RTM_NEWLINK)
            .ok_or_else(|| NetlinkError::protocol(op, "the reply holds no link"))?;
        parse_link(op, &reply.payload).map(Some)
    }

    /// All links whose name starts with `prefix`.
    pub fn links_with_prefix(&mut self, prefix: &str) -> Result<Vec<LinkInfo>> {
        let op = format!("list links named {prefix}*");
        let replies = self.dump(&op, RouteNetlinkMessage::GetLink(LinkMessage::default()))?;
        let mut links = Vec::new();
        for reply in replies.iter().filter(|r| r.kind == RTM_NEWLINK) {
            let link = parse_link(&op, &reply.payload)?;
            if link.name.starts_with(prefix) {
                links.push(link);
            }
        }
        Ok(links)
    }

    /// Creates a veth pair: `host` in the socket's namespace, `peer` made
    /// directly inside `peer_netns`. An existing name (on either side) is an
    /// error (`EEXIST`). Returns the index of the host end.
    pub fn create_veth(
        &mut self,
        host: &VethEnd<'_>,
        peer: &VethEnd<'_>,
        peer_netns: BorrowedFd<'_>,
    ) -> Result<u32> {
        let op = format!("create veth {}", host.name);
        let mut peer_msg = LinkMessage::default();
        peer_msg.attributes = peer.attributes();
        peer_msg
            .attributes
            .push(LinkAttribute::NetNsFd(peer_netns.as_raw_fd()));
        let mut msg = LinkMessage::default();
        msg.attributes = host.attributes();
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfoAttr::Kind(InfoKind::Veth),
            LinkInfoAttr::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]));
        self.request(
            &op,
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )?;
        self.link_index(host.name)?
            .ok_or_else(|| NetlinkError::protocol(&op, "the new link vanished"))
    }

    /// Deletes the link `name` (for a veth, both ends go). `Ok(false)` if
    /// there was no such link.
    pub fn delete_link(&mut self, name: &str) -> Result<bool> {
        let op = format!("delete link {name}");
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        match self.request(&op, RouteNetlinkMessage::DelLink(msg), 0) {
            Ok(_) => Ok(true),
            Err(e) if e.is_kernel(Errno::NODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Sets `IFF_UP` on link `index`.
    pub fn set_up(&mut self, index: u32) -> Result<()> {
        let op = format!("set link {index} up");
        let mut msg = link_message(index);
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        self.request(&op, RouteNetlinkMessage::SetLink(msg), 0)
            .map(drop)
    }

    /// Enslaves link `index` to the bridge `master` (`IFLA_MASTER`).
    pub fn set_master(&mut self, index: u32, master: u32) -> Result<()> {
        let op = format!("set master of link {index} to {master}");
        let mut msg = link_message(index);
        msg.attributes.push(LinkAttribute::Controller(master));
        self.request(&op, RouteNetlinkMessage::SetLink(msg), 0)
            .map(drop)
    }

    /// Sets the IPv6 address generation mode of link `index` to none, so
    /// that the kernel makes no link-local address for it when it comes up.
    pub fn set_addr_gen_mode_none(&mut self, index: u32) -> Result<()> {
        let op = format!("set IPv6 address generation mode of link {index} to none");
        let mut msg = link_message(index);
        msg.attributes
            .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
                vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)],
            )]));
        self.request(&op, RouteNetlinkMessage::SetLink(msg), 0)
            .map(drop)
    }
}

fn link_message(index: u32) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg
}

/// Reads a `RTM_NEWLINK` payload. Attributes the crate cannot parse (newer
/// kernels add some) are skipped rather than failing the whole reply.
fn parse_link(op: &str, payload: &[u8]) -> Result<LinkInfo> {
    let header = LinkHeader::parse(payload)
        .map_err(|e| NetlinkError::protocol(op, format!("bad link message: {e}")))?;
    let mut link = LinkInfo {
        index: header.index,
        name: String::new(),
        kind: None,
        mac: None,
        master: None,
        up: header.flags.contains(LinkFlags::Up),
    };
    let attributes = payload.get(header.buffer_len()..).unwrap_or_default();
    for nla in NlasIterator::new(attributes).map_while(|nla| nla.ok()) {
        if nla.kind() == IFLA_LINKINFO {
            link.kind = info_kind(nla.value());
            continue;
        }
        match LinkAttribute::parse_with_param(&nla, header.interface_family) {
            Ok(LinkAttribute::IfName(name)) => link.name = name,
            Ok(LinkAttribute::Address(mac)) => link.mac = mac.try_into().ok(),
            Ok(LinkAttribute::Controller(master)) if master != 0 => link.master = Some(master),
            _ => {}
        }
    }
    Ok(link)
}

/// `IFLA_INFO_KIND` inside `IFLA_LINKINFO`, read by hand: the crate's parse
/// of the whole `IFLA_LINKINFO` would also parse the kind-specific data,
/// which need not succeed for every kind.
fn info_kind(linkinfo: &[u8]) -> Option<String> {
    NlasIterator::new(linkinfo)
        .map_while(|nla| nla.ok())
        .find(|nla: &NlaBuffer<&[u8]>| nla.kind() == IFLA_INFO_KIND)
        .and_then(|nla| parse_string(nla.value()).ok())
        .filter(|kind| !kind.is_empty())
}
