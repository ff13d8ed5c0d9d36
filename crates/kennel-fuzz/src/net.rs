//! The network values operators write: VE addresses (`--ip`), rates
//! (`--rate`), port forwards (`--forward`), bridged interfaces (`--netif`,
//! with their MACs). Each is also stored in `ve.conf` as text, so each must
//! read back as itself.

use std::fmt::Debug;
use std::net::IpAddr;

use kennel_net::model::{
    parse_ve_address, validate_ifname, Forward, Mac, Netif, Rate, RateLimit, MIN_RATE,
};
use kennel_net::VeNetwork;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// `value` through TOML (as `ve.conf` holds it) and back.
fn toml_round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) {
    let text = match toml::to_string(value) {
        Ok(t) => t,
        Err(e) => panic!("{value:?} cannot be written as TOML: {e}"),
    };
    match toml::from_str::<T>(&text) {
        Ok(back) => assert_eq!(&back, value, "written as:\n{text}"),
        Err(e) => panic!("{value:?}, written as\n{text}\nis refused: {e}"),
    }
}

/// An address as `--ip` takes it.
pub fn address(data: &[u8]) {
    let Some(s) = crate::text(data) else { return };
    let Ok(net) = parse_ve_address(s) else { return };
    // An IPv4 address spelt as IPv6 (::ffff:127.0.0.1) would pass none of
    // the IPv4 checks (loopback, broadcast, link-local).
    if let IpAddr::V6(v6) = net.addr() {
        assert!(
            v6.to_ipv4_mapped().is_none(),
            "accepted {s:?}: an IPv4-mapped address dodges the IPv4 checks"
        );
    }
    let printed = net.to_string();
    match parse_ve_address(&printed) {
        Ok(back) => assert_eq!(back, net, "{s:?} -> {printed:?}"),
        Err(e) => panic!("{s:?} -> {printed:?}, which is refused: {e}"),
    }
    let n = VeNetwork {
        ips: vec![net],
        ..Default::default()
    };
    if let Err(e) = n.validate() {
        panic!("--ip {s:?} accepted, but the configuration holding it is refused: {e}");
    }
    toml_round_trip(&n);
}

/// A rate as `--rate` takes it.
pub fn rate(data: &[u8]) {
    let Some(s) = crate::text(data) else { return };
    let Ok(r) = RateLimit::parse(s) else { return };
    if !s.contains('=') {
        assert_eq!(r.egress, r.ingress, "{s:?} is one rate for both ways");
    }
    for one in [r.egress, r.ingress].into_iter().flatten() {
        let bits = one.bits_per_sec();
        assert!(
            (MIN_RATE..=10_000_000_000_000).contains(&bits),
            "{s:?} -> {bits} bit/s"
        );
        let printed = one.to_string();
        match Rate::parse(&printed) {
            Ok(back) => assert_eq!(back, one, "{s:?} -> {printed:?}"),
            Err(e) => panic!("{s:?} -> {printed:?}, which is refused: {e}"),
        }
    }
    toml_round_trip(&r);
}

/// A port forward as `--forward` takes it.
pub fn forward(data: &[u8]) {
    let Some(s) = crate::text(data) else { return };
    let Ok(f) = Forward::parse(s) else { return };
    assert!(f.host_port != 0 && f.ve_port != 0, "{s:?} -> {f:?}");
    if let Some(a) = f.host_addr {
        assert!(
            a.is_ipv4() && !a.is_loopback() && !a.is_multicast() && !a.is_unspecified(),
            "{s:?} -> host address {a}"
        );
    }
    let printed = f.to_string();
    match Forward::parse(&printed) {
        Ok(back) => assert_eq!(back, f, "{s:?} -> {printed:?}"),
        Err(e) => panic!("{s:?} -> {printed:?}, which is refused: {e}"),
    }
}

/// A bridged interface as `--netif` takes it; the input is also tried as a
/// MAC alone.
pub fn netif(data: &[u8]) {
    let Some(s) = crate::text(data) else { return };
    if let Ok(m) = Mac::parse(s) {
        mac_round_trip(s, m);
    }
    let Ok((n, given)) = Netif::parse_spec(s) else {
        return;
    };
    for (name, what) in [(&n.name, "interface"), (&n.bridge, "bridge")] {
        assert!(
            validate_ifname(name, what).is_ok(),
            "{s:?} -> {what} {name:?}"
        );
    }
    let m = n.mac.0;
    assert!(m[0] & 1 == 0 && m != [0; 6], "{s:?} -> MAC {}", n.mac);
    if !given {
        assert!(m[0] & 2 == 2, "made-up MAC {} is not local", n.mac);
    }
    mac_round_trip(s, n.mac);
    // Written back as a spec (MAC included), it reads as the same
    // interface, with its MAC kept.
    let spec = spec_of(&n);
    match Netif::parse_spec(&spec) {
        Ok((back, true)) => assert_eq!(back, n, "{s:?} -> {spec:?}"),
        Ok((_, false)) => panic!("{spec:?}: the MAC given is taken as made up"),
        Err(e) => panic!("{s:?} -> {spec:?}, which is refused: {e}"),
    }
    toml_round_trip(&VeNetwork {
        netifs: vec![n],
        ..Default::default()
    });
}

fn mac_round_trip(s: &str, m: Mac) {
    let printed = m.to_string();
    assert_eq!(Mac::parse(&printed).ok(), Some(m), "{s:?} -> {printed:?}");
}

/// The `--netif` spec that says everything `n` holds.
fn spec_of(n: &Netif) -> String {
    let mut spec = format!("{},bridge={},mac={}", n.name, n.bridge, n.mac);
    for ip in &n.ips {
        spec.push_str(&format!(",ip={ip}"));
    }
    for gw in &n.gateways {
        spec.push_str(&format!(",gw={gw}"));
    }
    if n.dhcp {
        spec.push_str(",dhcp=yes");
    }
    spec
}
