//! nf_tables rules as data: chains of rules made of expressions (load a
//! field into a register, compare, look up in a set, give a verdict), and
//! small builders for them. [`super::rules`] and [`super::ipv6`] say what
//! the VE's chains hold; [`super::nfnl`] encodes them.

use std::net::IpAddr;

/// Hook priority: before anything of the host's (conntrack is -200).
pub const PRIORITY: i32 = -500;

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_IPV6: u16 = 0x86dd;

/// Where a payload field starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    Link,
    Network,
    Transport,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaKey {
    /// The frame's ethertype (2 bytes, network order).
    Protocol,
    /// The transport protocol (1 byte): the header after the last IPv6
    /// extension header nf_tables walks. No value (the rule fails) when
    /// it cannot walk the chain.
    L4Proto,
}

/// What a set's keys are, so that `nft list` shows them as such.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    EtherType,
    IcmpType,
    IgmpType,
    Icmp6Type,
    Port,
    Ipv4,
    Ipv6,
    /// An IP protocol number (IPv4 protocol, IPv6 next header).
    InetProto,
}

impl KeyKind {
    /// nft's data type number (`src/datatype.h` of nftables).
    pub fn nft_type(self) -> u32 {
        match self {
            KeyKind::Ipv4 => 7,
            KeyKind::Ipv6 => 8,
            KeyKind::EtherType => 10,
            KeyKind::InetProto => 12,
            KeyKind::Port => 13,
            KeyKind::IcmpType => 14,
            KeyKind::Icmp6Type => 29,
            KeyKind::IgmpType => 42,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    /// To a chain, coming back here when it ends without a verdict.
    Jump(String),
    /// To a chain, coming back to where this chain was jumped from.
    Goto(String),
    /// Back to the chain that jumped here.
    Return,
}

/// One expression; all of them work on register 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Meta(MetaKey),
    Payload {
        base: Base,
        offset: u32,
        len: u32,
    },
    /// A field of the first IPv6 extension header of type `kind` (the
    /// rule fails if there is none); with `present`, 1 or 0 for whether
    /// nf_tables finds one (0 too when it cannot walk the chain).
    Exthdr {
        kind: u8,
        offset: u32,
        len: u32,
        present: bool,
    },
    /// Compare the register with `data` (equal, or not).
    Cmp {
        eq: bool,
        data: Vec<u8>,
    },
    /// Register &= mask.
    Mask(Vec<u8>),
    /// Is the register one of `keys` (all of one length)? With `not`:
    /// is it none of them?
    Lookup {
        keys: Vec<Vec<u8>>,
        kind: KeyKind,
        not: bool,
    },
    /// True while more than `bytes_per_sec` pass (a policer whose bucket
    /// holds `burst` bytes and, as nf_tables' limit does, one second).
    Limit {
        bytes_per_sec: u64,
        burst: u32,
    },
    Verdict(Verdict),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hook {
    Ingress,
    Egress,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub name: String,
    /// A base chain's hook and device; `None` for a regular chain.
    pub hook: Option<(Hook, String)>,
    pub policy_accept: bool,
    pub rules: Vec<Vec<Expr>>,
}

impl Chain {
    /// A regular chain (jumped to).
    pub fn regular(name: String, rules: Vec<Vec<Expr>>) -> Self {
        Chain {
            name,
            hook: None,
            policy_accept: true,
            rules,
        }
    }
}

/// The register equals `data`.
pub fn is(data: &[u8]) -> Expr {
    Expr::Cmp {
        eq: true,
        data: data.to_vec(),
    }
}

/// The register differs from `data`.
pub fn is_not(data: &[u8]) -> Expr {
    Expr::Cmp {
        eq: false,
        data: data.to_vec(),
    }
}

/// The frame is of ethertype `p`.
pub fn proto(p: u16) -> [Expr; 2] {
    [Expr::Meta(MetaKey::Protocol), is(&p.to_be_bytes())]
}

/// The transport protocol is `p`.
pub fn l4(p: u8) -> [Expr; 2] {
    [Expr::Meta(MetaKey::L4Proto), is(&[p])]
}

/// The transport protocol is known (nf_tables walked the header chain).
pub fn l4_known() -> [Expr; 3] {
    [Expr::Meta(MetaKey::L4Proto), Expr::Mask(vec![0]), is(&[0])]
}

pub fn load(base: Base, offset: u32, len: u32) -> Expr {
    Expr::Payload { base, offset, len }
}

/// `len` bytes at `offset` of `base` are in the packet (the load
/// succeeds; the value does not matter).
pub fn readable(base: Base, offset: u32, len: u32) -> [Expr; 3] {
    let zero = vec![0; len as usize];
    [load(base, offset, len), Expr::Mask(zero.clone()), is(&zero)]
}

pub fn one_of(kind: KeyKind, keys: impl IntoIterator<Item = Vec<u8>>) -> Expr {
    Expr::Lookup {
        keys: keys.into_iter().collect(),
        kind,
        not: false,
    }
}

/// The register is none of the one-byte `keys`.
pub fn none_of_bytes(kind: KeyKind, keys: &[u8]) -> Expr {
    Expr::Lookup {
        keys: keys.iter().map(|k| vec![*k]).collect(),
        kind,
        not: true,
    }
}

/// One-byte keys (protocol numbers, message types).
pub fn one_of_bytes(kind: KeyKind, keys: &[u8]) -> Expr {
    one_of(kind, keys.iter().map(|k| vec![*k]))
}

pub fn rule(parts: impl IntoIterator<Item = Expr>, v: Verdict) -> Vec<Expr> {
    parts.into_iter().chain([Expr::Verdict(v)]).collect()
}

pub fn ip_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}
