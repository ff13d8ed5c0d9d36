//! A VE's network options in request bodies (create, `PATCH`), typed,
//! and turned into the CLI's own spellings: `--netif
//! NAME,bridge=BR[,mac=M][,ip=A]...[,gw=G]...[,dhcp=yes]` and `--forward
//! PROTO:[HOSTADDR:]HOSTPORT:VEPORT`. The parts of a spec are checked
//! here (a name with `,` or `=` would otherwise add keys of its own to
//! the spec); addresses, MACs and rates are checked by the CLI, which
//! answers 400 with what is wrong.

use std::net::{IpAddr, Ipv4Addr};

use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};

/// Entries of one list in one request (interfaces, forwards, addresses).
pub const MAX_ITEMS: usize = 256;

/// A bridged interface (`kennel create|set --netif`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Netif {
    /// Its name inside the VE, e.g. `eth1` (1-15 letters, digits, `-`,
    /// `_`, `.`).
    pub name: String,
    /// The host bridge it joins, e.g. `br0`.
    pub bridge: String,
    /// The VE's MAC on it, `02:00:00:ab:cd:ef` (default: made up once,
    /// then kept; a change keeps the old one).
    pub mac: Option<String>,
    /// Addresses Kennel configures in the VE, `ADDR/PREFIX`: the only ones
    /// the VE may send from on it.
    #[serde(default)]
    pub ip: Vec<String>,
    /// Default gateways on it.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub gw: Vec<IpAddr>,
    /// The VE may use DHCP on it (its IPv4 source is then not filtered).
    #[serde(default)]
    pub dhcp: bool,
}

impl Netif {
    /// The CLI's spec of this interface.
    pub fn spec(&self) -> ApiResult<String> {
        ifname(&self.name, "netif name")?;
        ifname(&self.bridge, "netif bridge")?;
        if self.ip.len() > MAX_ITEMS || self.gw.len() > MAX_ITEMS {
            return Err(ApiError::bad_input(format!(
                "netif: at most {MAX_ITEMS} addresses and gateways"
            )));
        }
        let mut s = format!("{},bridge={}", self.name, self.bridge);
        if let Some(m) = &self.mac {
            plain(m, "netif mac")?;
            s.push_str(&format!(",mac={m}"));
        }
        for a in &self.ip {
            plain(a, "netif ip")?;
            s.push_str(&format!(",ip={a}"));
        }
        for g in &self.gw {
            s.push_str(&format!(",gw={g}"));
        }
        if self.dhcp {
            s.push_str(",dhcp=yes");
        }
        Ok(s)
    }
}

/// A protocol a port is forwarded for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

/// A host port forwarded to the VE (`--forward`, `--forward-add`,
/// `--forward-del`): DNAT to the VE's first IPv4 address.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Forward {
    pub proto: Proto,
    /// Only traffic to this host address (IPv4); any when left out.
    #[schema(value_type = Option<String>, format = Ipv4)]
    pub host_addr: Option<Ipv4Addr>,
    /// 1-65535.
    pub host_port: u16,
    /// 1-65535.
    pub ve_port: u16,
}

impl Forward {
    /// The CLI's spec of this forward.
    pub fn spec(&self) -> ApiResult<String> {
        if self.host_port == 0 || self.ve_port == 0 {
            return Err(ApiError::bad_input(
                "forward: ports are 1-65535 (host_port, ve_port)",
            ));
        }
        let proto = match self.proto {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        };
        Ok(match self.host_addr {
            Some(a) => format!("{proto}:{a}:{}:{}", self.host_port, self.ve_port),
            None => format!("{proto}:{}:{}", self.host_port, self.ve_port),
        })
    }
}

/// The specs of `items`, at most [`MAX_ITEMS`] of them.
pub fn specs<T>(
    items: &[T],
    what: &str,
    spec: impl Fn(&T) -> ApiResult<String>,
) -> ApiResult<Vec<String>> {
    if items.len() > MAX_ITEMS {
        return Err(ApiError::bad_input(format!(
            "{what}: at most {MAX_ITEMS} in one request"
        )));
    }
    items.iter().map(spec).collect()
}

/// An interface or bridge name, as the kernel and Kennel take them.
fn ifname(name: &str, what: &str) -> ApiResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_input(format!(
            "{what}: '{}' is not a name: 1-15 letters, digits, '-', '_' or '.'",
            name.escape_default()
        )))
    }
}

/// A value inside a spec: no separator of the spec's own.
fn plain(v: &str, what: &str) -> ApiResult<()> {
    if v.is_empty() || v.contains([',', '=']) {
        return Err(ApiError::bad_input(format!(
            "{what}: '{}' cannot be empty or hold ',' or '='",
            v.escape_default()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_the_clis_and_cannot_be_extended_by_a_value() {
        let n = Netif {
            name: "eth1".into(),
            bridge: "br0".into(),
            mac: Some("02:00:00:00:00:01".into()),
            ip: vec!["198.51.100.7/24".into()],
            gw: vec!["198.51.100.1".parse().expect("ip")],
            dhcp: true,
        };
        assert_eq!(
            n.spec().expect("spec"),
            "eth1,bridge=br0,mac=02:00:00:00:00:01,ip=198.51.100.7/24,gw=198.51.100.1,dhcp=yes"
        );
        let sneaky = Netif {
            bridge: "br0,dhcp=yes".into(),
            ..n
        };
        assert!(sneaky.spec().is_err());
        let f = Forward {
            proto: Proto::Udp,
            host_addr: Some(Ipv4Addr::new(192, 0, 2, 1)),
            host_port: 5353,
            ve_port: 53,
        };
        assert_eq!(f.spec().expect("spec"), "udp:192.0.2.1:5353:53");
        let zero = Forward { host_port: 0, ..f };
        assert!(zero.spec().is_err());
    }
}
