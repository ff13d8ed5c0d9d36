//! What a VE's network is, as the operator writes it (the `[network]`
//! part of `ve.conf`), and the checks that keep bad values out.
//!
//! Two models, as OpenVZ operators know them:
//! * **routed** (venet-like, the default): `ips` are the VE's addresses on
//!   its `eth0`; the host routes each one to the VE and filters everything
//!   else;
//! * **bridged** (veth-like): each entry of `netifs` is an interface joined
//!   to a named Linux bridge, with a fixed MAC and its own allowed addresses.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::{NetError, Result};

/// Values kept in `ve.conf` as text: serde goes through `parse` and
/// `Display`.
macro_rules! text_serde {
    ($t:ty) => {
        impl TryFrom<String> for $t {
            type Error = NetError;
            fn try_from(s: String) -> Result<Self> {
                <$t>::parse(&s)
            }
        }

        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.to_string()
            }
        }
    };
}

/// Most addresses one VE holds, on all its interfaces.
pub const MAX_ADDRESSES: usize = 256;
/// Most bridged interfaces one VE has.
pub const MAX_NETIFS: usize = 16;

/// The VE-side name of the routed interface.
pub const ROUTED_IFNAME: &str = "eth0";

/// A VE's whole network configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VeNetwork {
    /// Routed addresses on `eth0` (`192.0.2.11/32`, `2001:db8::11/128`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpNet>,
    /// Bridged interfaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub netifs: Vec<Netif>,
    /// `/etc/resolv.conf` servers; empty leaves the VE's file alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<IpAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub searchdomains: Vec<String>,
    /// Traffic limits per interface.
    #[serde(default, skip_serializing_if = "RateLimit::is_empty")]
    pub rate: RateLimit,
    /// Outbound masquerade of the VE's IPv4 addresses through this host
    /// interface (opt-in, for private addresses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_via: Option<String>,
    /// Host address/port -> VE port forwards (opt-in).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forwards: Vec<Forward>,
}

impl VeNetwork {
    /// The network of a copy of this VE (a clone, a restore): what is
    /// the VE's own on a network never comes along. No address (routed
    /// or bridged) and no port forward, which would clash with the
    /// original's; every MAC new. DNS, rates, NAT and the bridges stay.
    pub fn for_copy(&self) -> Result<VeNetwork> {
        let mut n = self.clone();
        n.ips.clear();
        n.forwards.clear();
        for i in &mut n.netifs {
            i.mac = Mac::random()?;
            i.ips.clear();
            i.gateways.clear();
        }
        Ok(n)
    }
}

/// One bridged interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Netif {
    /// Name inside the VE (`eth1`).
    pub name: String,
    /// The host bridge it joins.
    pub bridge: String,
    /// The VE's MAC on it: generated once, then kept.
    pub mac: Mac,
    /// Addresses Kennel configures inside and the only ones the VE may
    /// use on this interface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpNet>,
    /// Default gateways on this interface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<IpAddr>,
    /// Whether the VE may use DHCP here; its IPv4 source is then not
    /// filtered (the lease is not known to the host), its MAC still is.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dhcp: bool,
}

/// Rates in bits per second, for traffic leaving the VE (`egress`) and
/// entering it (`ingress`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Rate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Rate>,
}

/// A bit rate, written as `tc` writes it (`100mbit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Rate(pub u64);

/// An Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Mac(pub [u8; 6]);

/// A port forward from the host to the VE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Forward {
    pub proto: Proto,
    /// Only packets to this host address; any when absent.
    pub host_addr: Option<IpAddr>,
    pub host_port: u16,
    pub ve_port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

impl VeNetwork {
    pub fn is_empty(&self) -> bool {
        *self == VeNetwork::default()
    }

    /// Whether the VE gets any link besides loopback.
    pub fn has_links(&self) -> bool {
        !self.ips.is_empty() || !self.netifs.is_empty()
    }

    /// Every address the VE holds, on any interface.
    pub fn all_ips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.ips
            .iter()
            .chain(self.netifs.iter().flat_map(|n| n.ips.iter()))
            .map(IpNet::addr)
    }

    /// Checks the whole configuration (each value, and how they fit).
    pub fn validate(&self) -> Result<()> {
        if self.all_ips().count() > MAX_ADDRESSES || self.netifs.len() > MAX_NETIFS {
            return Err(NetError::BadInput(format!(
                "too many addresses or interfaces: a VE has at most {MAX_ADDRESSES} addresses and {MAX_NETIFS} bridged interfaces"
            )));
        }
        let mut seen: Vec<IpAddr> = Vec::new();
        let mut check_ip = |ip: &IpNet| -> Result<()> {
            validate_ve_address(ip)?;
            if seen.contains(&ip.addr()) {
                return Err(NetError::BadInput(format!(
                    "address {} is given twice: list each address once",
                    ip.addr()
                )));
            }
            seen.push(ip.addr());
            Ok(())
        };
        for ip in &self.ips {
            check_ip(ip)?;
        }
        let mut names: Vec<&str> = Vec::new();
        let mut macs: Vec<Mac> = Vec::new();
        for n in &self.netifs {
            validate_ifname(&n.name, "interface")?;
            validate_ifname(&n.bridge, "bridge")?;
            if n.name == ROUTED_IFNAME && !self.ips.is_empty() {
                return Err(NetError::BadInput(format!(
                    "interface name {ROUTED_IFNAME} is the routed interface of this VE: name the bridged one eth1 or higher"
                )));
            }
            if names.contains(&n.name.as_str()) {
                return Err(NetError::BadInput(format!(
                    "interface {} is given twice",
                    n.name
                )));
            }
            names.push(&n.name);
            n.mac.validate_unicast()?;
            if macs.contains(&n.mac) {
                return Err(NetError::BadInput(format!(
                    "MAC {} is given to two interfaces",
                    n.mac
                )));
            }
            macs.push(n.mac);
            for ip in &n.ips {
                check_ip(ip)?;
            }
            for gw in &n.gateways {
                validate_host_address(*gw, "gateway")?;
            }
        }
        for ns in &self.nameservers {
            if ns.is_unspecified() || ns.is_multicast() {
                return Err(NetError::BadInput(format!(
                    "invalid nameserver {ns}: give a unicast address"
                )));
            }
        }
        for d in &self.searchdomains {
            validate_domain(d)?;
        }
        if let Some(up) = &self.nat_via {
            validate_ifname(up, "uplink")?;
        }
        if (!self.forwards.is_empty() || self.nat_via.is_some())
            && !self.all_ips().any(|a| a.is_ipv4())
        {
            return Err(NetError::BadInput(
                "NAT and port forwards need an IPv4 address on the VE: add one with --ip".into(),
            ));
        }
        for (i, f) in self.forwards.iter().enumerate() {
            if self.forwards[..i].iter().any(|g| {
                g.proto == f.proto && g.host_port == f.host_port && g.host_addr == f.host_addr
            }) {
                return Err(NetError::BadInput(format!(
                    "port forward {f} is given twice"
                )));
            }
        }
        Ok(())
    }
}

/// A VE address must be one a host can route to one VE: not loopback,
/// multicast, unspecified, broadcast or link-local (the VE's gateway lives
/// there).
pub fn validate_ve_address(net: &IpNet) -> Result<()> {
    validate_host_address(net.addr(), "address")?;
    let linklocal = match net.addr() {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
    };
    if linklocal {
        return Err(NetError::BadInput(format!(
            "invalid address {net}: link-local addresses are the VE's own; give a routable one (e.g. 192.0.2.11)"
        )));
    }
    Ok(())
}

fn validate_host_address(a: IpAddr, what: &str) -> Result<()> {
    if let IpAddr::V6(v) = a {
        // ::ffff:127.0.0.1 is an IPv4 address in IPv6 clothes, which the
        // IPv4 checks below would never see.
        if let Some(v4) = v.to_ipv4_mapped() {
            return Err(NetError::BadInput(format!(
                "invalid {what} {a}: write the IPv4 address itself ({v4})"
            )));
        }
    }
    let bad = match a {
        IpAddr::V4(v) => {
            v.is_unspecified() || v.is_loopback() || v.is_multicast() || v.is_broadcast()
        }
        IpAddr::V6(v) => v.is_unspecified() || v.is_loopback() || v.is_multicast(),
    };
    if bad {
        return Err(NetError::BadInput(format!(
            "invalid {what} {a}: give a unicast address (e.g. 192.0.2.11 or 2001:db8::11)"
        )));
    }
    Ok(())
}

/// What `net`'s address is to its own network if it is no host's: the
/// network or broadcast address of an IPv4 network of more than two
/// addresses (/31 has neither, RFC 3021), or the subnet-router anycast
/// address (all-zero interface bits, RFC 4291) of an IPv6 one shorter
/// than /127 (RFC 6164), which every router on the link answers to.
fn reserved_in_network(net: &IpNet) -> Option<&'static str> {
    match net {
        IpNet::V4(n) if n.prefix_len() < 31 => {
            if n.addr() == n.network() {
                Some("network address")
            } else if n.addr() == n.broadcast() {
                Some("broadcast address")
            } else {
                None
            }
        }
        IpNet::V6(n) if n.prefix_len() < 127 && n.addr() == n.network() => {
            Some("subnet-router anycast address")
        }
        _ => None,
    }
}

/// Parses a VE address as the CLI takes it: `192.0.2.11`, `192.0.2.11/24`
/// or `2001:db8::11/64`. Without a prefix it is a host address (/32, /128).
/// With one, it must be a host's address in that network (not its
/// network or broadcast address).
pub fn parse_ve_address(s: &str) -> Result<IpNet> {
    let bad = || {
        NetError::BadInput(format!(
            "invalid address '{s}': give an IPv4 or IPv6 address, optionally with /prefix (e.g. 192.0.2.11 or 2001:db8::11/64)"
        ))
    };
    let net = if s.contains('/') {
        IpNet::from_str(s).map_err(|_| bad())?
    } else {
        IpNet::from(IpAddr::from_str(s).map_err(|_| bad())?)
    };
    validate_ve_address(&net)?;
    if let Some(what) = reserved_in_network(&net) {
        return Err(NetError::BadInput(format!(
            "invalid address {net}: it is the {what} of {}; give a host's address in it",
            net.trunc()
        )));
    }
    Ok(net)
}

/// Interface and bridge names: what the kernel takes (1-15 bytes, no `/`,
/// `:` or space), restricted to the characters operators use.
pub fn validate_ifname(name: &str, what: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !ok || name == "lo" {
        return Err(NetError::BadInput(format!(
            "invalid {what} name '{name}': use 1-15 letters, digits, '-', '_' or '.'"
        )));
    }
    Ok(())
}

fn validate_domain(d: &str) -> Result<()> {
    let ok = !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !ok {
        return Err(NetError::BadInput(format!(
            "invalid search domain '{d}': use dot-separated labels of letters, digits and '-'"
        )));
    }
    Ok(())
}

impl RateLimit {
    pub fn is_empty(&self) -> bool {
        self.egress.is_none() && self.ingress.is_none()
    }

    /// `--rate` as the CLI takes it: `100mbit` (both ways),
    /// `egress=10mbit,ingress=100mbit`, or `none`.
    pub fn parse(s: &str) -> Result<Self> {
        if s == "none" || s == "unlimited" {
            return Ok(RateLimit::default());
        }
        if !s.contains('=') {
            let r = Rate::parse(s)?;
            return Ok(RateLimit {
                egress: Some(r),
                ingress: Some(r),
            });
        }
        let mut out = RateLimit::default();
        for part in s.split(',') {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let r = if v == "none" {
                None
            } else {
                Some(Rate::parse(v)?)
            };
            match k {
                "egress" | "out" => out.egress = r,
                "ingress" | "in" => out.ingress = r,
                _ => {
                    return Err(NetError::BadInput(format!(
                        "invalid rate '{s}': use RATE, or egress=RATE,ingress=RATE (e.g. 100mbit)"
                    )))
                }
            }
        }
        Ok(out)
    }
}

const RATE_UNITS: &[(&str, u64)] = &[
    ("gbit", 1_000_000_000),
    ("mbit", 1_000_000),
    ("kbit", 1_000),
    ("bit", 1),
    ("gbps", 8_000_000_000),
    ("mbps", 8_000_000),
    ("kbps", 8_000),
    ("bps", 8),
];

/// The smallest rate a VE may be given: below it TCP barely works.
pub const MIN_RATE: u64 = 8_000;

impl Rate {
    /// `100mbit`, `1.5gbit`, `800kbit`; `kbps`/`mbps`/`gbps` are bytes per
    /// second, as in `tc`. A unit is required: a bare number is refused.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || {
            NetError::BadInput(format!(
                "invalid rate '{s}': give a number with a unit: kbit, mbit, gbit (bits/s) or kbps, mbps, gbps (bytes/s), e.g. 100mbit"
            ))
        };
        let t = s.trim().to_ascii_lowercase();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, unit) = t.split_at(split);
        let mult = RATE_UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, m)| *m)
            .ok_or_else(bad)?;
        let n: f64 = num.parse().map_err(|_| bad())?;
        let bits = n * mult as f64;
        if !bits.is_finite() || bits < MIN_RATE as f64 || bits > 1e13 {
            return Err(NetError::BadInput(format!(
                "rate '{s}' is out of range: give between 8kbit and 10000gbit"
            )));
        }
        Ok(Rate(bits.round() as u64))
    }

    pub fn bits_per_sec(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, m) in &RATE_UNITS[..4] {
            if self.0 >= *m && self.0.is_multiple_of(*m) {
                return write!(f, "{}{unit}", self.0 / m);
            }
        }
        write!(f, "{}bit", self.0)
    }
}

text_serde!(Rate);

impl Mac {
    /// A random locally administered unicast address.
    pub fn random() -> Result<Self> {
        let mut b = [0u8; 6];
        let n = rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty()).map_err(
            |e| NetError::Io {
                what: "get random bytes for a MAC".into(),
                source: e.into(),
            },
        )?;
        if n != b.len() {
            return Err(NetError::Io {
                what: "get random bytes for a MAC".into(),
                source: std::io::Error::other("short read"),
            });
        }
        b[0] = (b[0] & 0xfc) | 0x02;
        Ok(Mac(b))
    }

    pub fn parse(s: &str) -> Result<Self> {
        let bad = || {
            NetError::BadInput(format!(
                "invalid MAC '{s}': write six hex bytes separated by ':' (e.g. 02:00:00:ab:cd:ef)"
            ))
        };
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for b in &mut out {
            let p = parts.next().ok_or_else(bad)?;
            if p.len() != 2 {
                return Err(bad());
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Mac(out))
    }

    fn validate_unicast(&self) -> Result<()> {
        if self.0[0] & 1 == 1 || self.0 == [0; 6] {
            return Err(NetError::BadInput(format!(
                "invalid MAC {self}: a VE needs a unicast address (first byte even, not all zero)"
            )));
        }
        Ok(())
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

text_serde!(Mac);

impl Netif {
    /// `--netif` as the CLI takes it: `NAME,bridge=BR[,mac=M][,ip=A]...
    /// [,gw=G]...[,dhcp=yes]`. A MAC is generated when none is given.
    pub fn parse(s: &str) -> Result<Self> {
        Self::parse_spec(s).map(|(n, _)| n)
    }

    /// [`Netif::parse`], and whether the MAC was given (rather than made
    /// up), so that a change to an interface can keep its MAC.
    pub fn parse_spec(s: &str) -> Result<(Self, bool)> {
        let usage = "use NAME,bridge=BRIDGE[,mac=MAC][,ip=ADDR/PREFIX][,gw=ADDR][,dhcp=yes] (e.g. eth1,bridge=br0)";
        let mut parts = s.split(',');
        let name = parts.next().unwrap_or_default().to_string();
        if name.contains('=') {
            return Err(NetError::BadInput(format!(
                "invalid --netif '{s}': the interface name comes first; {usage}"
            )));
        }
        let (mut bridge, mut mac, mut ips, mut gateways, mut dhcp) =
            (None, None, Vec::new(), Vec::new(), false);
        for p in parts {
            let (k, v) = p.split_once('=').ok_or_else(|| {
                NetError::BadInput(format!("invalid --netif '{s}' at '{p}': {usage}"))
            })?;
            match k {
                "bridge" => bridge = Some(v.to_string()),
                "mac" => mac = Some(Mac::parse(v)?),
                "ip" => ips.push(parse_ve_address(v)?),
                "gw" => gateways.push(IpAddr::from_str(v).map_err(|_| {
                    NetError::BadInput(format!(
                        "invalid gateway '{v}' in --netif: give an IP address"
                    ))
                })?),
                "dhcp" => {
                    dhcp = match v {
                        "yes" | "on" | "true" => true,
                        "no" | "off" | "false" => false,
                        _ => {
                            return Err(NetError::BadInput(format!(
                                "invalid dhcp={v} in --netif: use yes or no"
                            )))
                        }
                    }
                }
                _ => {
                    return Err(NetError::BadInput(format!(
                        "unknown key '{k}' in --netif '{s}': {usage}"
                    )))
                }
            }
        }
        let bridge = bridge
            .ok_or_else(|| NetError::BadInput(format!("--netif '{s}' names no bridge: {usage}")))?;
        let given = mac.is_some();
        let n = Netif {
            name,
            bridge,
            mac: match mac {
                Some(m) => m,
                None => Mac::random()?,
            },
            ips,
            gateways,
            dhcp,
        };
        validate_ifname(&n.name, "interface")?;
        validate_ifname(&n.bridge, "bridge")?;
        n.mac.validate_unicast()?;
        Ok((n, given))
    }
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl Forward {
    /// `tcp:8080:80` or `tcp:198.51.100.1:8080:80` (host port, then VE port).
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || {
            NetError::BadInput(format!(
                "invalid port forward '{s}': use PROTO:[HOSTADDR:]HOSTPORT:VEPORT (e.g. tcp:8080:80 or tcp:198.51.100.1:8080:80)"
            ))
        };
        let (proto, rest) = s.split_once(':').ok_or_else(bad)?;
        let proto = match proto {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            _ => return Err(bad()),
        };
        let (front, ve_port) = rest.rsplit_once(':').ok_or_else(bad)?;
        let (host_addr, host_port) = match front.rsplit_once(':') {
            Some((a, p)) => {
                let a = a.trim_start_matches('[').trim_end_matches(']');
                (Some(IpAddr::from_str(a).map_err(|_| bad())?), p)
            }
            None => (None, front),
        };
        let port = |p: &str| p.parse::<u16>().ok().filter(|&n| n != 0).ok_or_else(bad);
        let f = Forward {
            proto,
            host_addr,
            host_port: port(host_port)?,
            ve_port: port(ve_port)?,
        };
        if let Some(a) = f.host_addr {
            if !a.is_ipv4() {
                return Err(NetError::BadInput(format!(
                    "port forward '{s}': only IPv4 host addresses are forwarded"
                )));
            }
            validate_host_address(a, "host address")?;
        }
        Ok(f)
    }
}

impl fmt::Display for Forward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_addr {
            Some(a) => write!(
                f,
                "{}:{a}:{}:{}",
                self.proto.as_str(),
                self.host_port,
                self.ve_port
            ),
            None => write!(
                f,
                "{}:{}:{}",
                self.proto.as_str(),
                self.host_port,
                self.ve_port
            ),
        }
    }
}

text_serde!(Forward);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_takes_no_address_forward_or_mac_of_the_original() {
        let mac = Mac::random().unwrap();
        let orig = VeNetwork {
            ips: vec![parse_ve_address("192.0.2.11").unwrap()],
            netifs: vec![Netif {
                name: "eth1".into(),
                bridge: "br0".into(),
                mac,
                ips: vec!["198.51.100.5/24".parse().unwrap()],
                gateways: vec!["198.51.100.1".parse().unwrap()],
                dhcp: true,
            }],
            nameservers: vec!["192.0.2.1".parse().unwrap()],
            nat_via: Some("eth0".into()),
            ..Default::default()
        };
        let copy = orig.for_copy().unwrap();
        assert!(copy.ips.is_empty() && copy.forwards.is_empty());
        assert_ne!(copy.netifs[0].mac, mac);
        assert!(copy.netifs[0].ips.is_empty() && copy.netifs[0].dhcp);
        assert_eq!(copy.nameservers, orig.nameservers);
        assert_eq!(copy.nat_via, orig.nat_via);
    }

    #[test]
    fn addresses() {
        assert_eq!(
            parse_ve_address("192.0.2.11").unwrap().to_string(),
            "192.0.2.11/32"
        );
        assert_eq!(
            parse_ve_address("2001:db8::11").unwrap().to_string(),
            "2001:db8::11/128"
        );
        assert_eq!(
            parse_ve_address("192.0.2.12/24").unwrap().to_string(),
            "192.0.2.12/24"
        );
        for bad in [
            "",
            "192.0.2",
            "127.0.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "169.254.0.1",
            "fe80::1",
            "::1",
            "192.0.2.1/33",
            "x",
            "::ffff:127.0.0.1",
            "::ffff:192.0.2.11",
        ] {
            assert!(parse_ve_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn network_and_broadcast_addresses_are_no_hosts() {
        for (bad, what) in [
            ("192.0.2.255/24", "broadcast address of 192.0.2.0/24"),
            ("192.0.2.0/24", "network address of 192.0.2.0/24"),
            ("198.51.100.3/30", "broadcast address of 198.51.100.0/30"),
            ("10.0.0.0/8", "network address of 10.0.0.0/8"),
            (
                "2001:db8::/64",
                "subnet-router anycast address of 2001:db8::/64",
            ),
        ] {
            let e = parse_ve_address(bad).unwrap_err().to_string();
            assert!(e.contains(what) && !e.contains('\n'), "{bad}: {e}");
        }
        // Host addresses of the same networks; /31, /32, /127 and /128
        // have no network or broadcast address to avoid.
        for good in [
            "192.0.2.254/24",
            "192.0.2.1/24",
            "198.51.100.2/30",
            "192.0.2.0/31",
            "192.0.2.1/31",
            "192.0.2.255",
            "192.0.2.0/32",
            "2001:db8::1/64",
            "2001:db8::/127",
            "2001:db8::/128",
        ] {
            let net = parse_ve_address(good).unwrap_or_else(|e| panic!("{good}: {e}"));
            assert_eq!(parse_ve_address(&net.to_string()).unwrap(), net);
        }
    }

    #[test]
    fn rates() {
        assert_eq!(Rate::parse("100mbit").unwrap().0, 100_000_000);
        assert_eq!(Rate::parse("1.5gbit").unwrap().to_string(), "1500mbit");
        assert_eq!(Rate::parse("10mbps").unwrap().0, 80_000_000);
        assert_eq!(Rate::parse("100MBit").unwrap().to_string(), "100mbit");
        for bad in [
            "100",
            "",
            "mbit",
            "100 furlongs",
            "1bit",
            "-5mbit",
            "1e9mbit",
        ] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
        let r = RateLimit::parse("egress=10mbit,ingress=20mbit").unwrap();
        assert_eq!(r.egress, Some(Rate(10_000_000)));
        assert_eq!(r.ingress, Some(Rate(20_000_000)));
        assert!(RateLimit::parse("none").unwrap().is_empty());
        assert!(RateLimit::parse("sideways=1mbit").is_err());
    }

    #[test]
    fn macs() {
        let m = Mac::random().unwrap();
        assert_eq!(m.0[0] & 3, 2);
        assert_eq!(Mac::parse(&m.to_string()).unwrap(), m);
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:00:00",
            "0g:00:00:00:00:00",
            "2:0:0:0:0:0",
        ] {
            assert!(Mac::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn netifs() {
        let n = Netif::parse(
            "eth1,bridge=br-cust7,mac=02:00:00:00:00:07,ip=192.0.2.21/24,gw=192.0.2.1",
        )
        .unwrap();
        assert_eq!(n.name, "eth1");
        assert_eq!(n.bridge, "br-cust7");
        assert_eq!(n.mac.to_string(), "02:00:00:00:00:07");
        assert_eq!(n.ips.len(), 1);
        assert!(Netif::parse("eth1").is_err());
        assert!(Netif::parse("eth1,bridge=br0,colour=red").is_err());
        assert!(Netif::parse("eth1,bridge=br0,mac=01:00:00:00:00:01").is_err());
        assert!(Netif::parse("bridge=br0").is_err());
        assert!(Netif::parse("eth1,bridge=a/b").is_err());
    }

    #[test]
    fn forwards() {
        let f = Forward::parse("tcp:8080:80").unwrap();
        assert_eq!((f.host_port, f.ve_port, f.host_addr), (8080, 80, None));
        let f = Forward::parse("udp:198.51.100.1:53:5353").unwrap();
        assert_eq!(f.to_string(), "udp:198.51.100.1:53:5353");
        for bad in ["tcp:80", "sctp:1:2", "tcp:0:80", "tcp:x:1:2", "tcp:70000:1"] {
            assert!(Forward::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn whole_config() {
        let mut n = VeNetwork {
            ips: vec![parse_ve_address("192.0.2.11").unwrap()],
            ..Default::default()
        };
        n.validate().unwrap();
        n.ips.push(parse_ve_address("192.0.2.11/24").unwrap());
        assert!(n.validate().is_err(), "duplicate address");
        n.ips.pop();
        n.netifs.push(Netif::parse("eth0,bridge=br0").unwrap());
        assert!(n.validate().is_err(), "eth0 is the routed interface");
        let text = toml::to_string(&VeNetwork {
            ips: vec![parse_ve_address("2001:db8::11").unwrap()],
            rate: RateLimit::parse("100mbit").unwrap(),
            ..Default::default()
        })
        .unwrap();
        assert!(text.contains("egress = \"100mbit\""), "{text}");
    }
}
