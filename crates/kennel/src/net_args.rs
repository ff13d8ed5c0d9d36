//! Turning the network options of `create` and `set` into the library's
//! types; every parser names the option and the expected form on error.

use std::net::IpAddr;

use anyhow::Result;
use kennel_net::model::{parse_ve_address, Forward, Netif, RateLimit};
use kennel_net::VeNetwork;
use kennel_ve::lifecycle::SetRequest;
use kennel_ve::VeError;

use crate::cli::{CreateNetArgs, SetArgs};

fn nameserver(s: &str) -> Result<IpAddr, VeError> {
    s.parse().map_err(|_| {
        VeError::BadInput(format!(
            "invalid --nameserver '{s}': give an IP address (e.g. 192.0.2.53)"
        ))
    })
}

/// A repeated list option where `none` alone means "empty".
fn list_or_none<T>(
    items: &[String],
    parse: impl Fn(&str) -> Result<T, VeError>,
) -> Result<Option<Vec<T>>, VeError> {
    match items {
        [] => Ok(None),
        [one] if one == "none" => Ok(Some(Vec::new())),
        many => many
            .iter()
            .map(|s| parse(s))
            .collect::<Result<_, _>>()
            .map(Some),
    }
}

/// Parses every value of a repeated option.
fn all<T>(
    items: &[String],
    parse: impl Fn(&str) -> Result<T, kennel_net::NetError>,
) -> Result<Vec<T>, VeError> {
    items
        .iter()
        .map(|s| parse(s).map_err(VeError::from))
        .collect()
}

fn rate(s: Option<&str>) -> Result<Option<RateLimit>, VeError> {
    s.map(RateLimit::parse).transpose().map_err(VeError::from)
}

pub fn create_network(a: &CreateNetArgs) -> Result<VeNetwork> {
    Ok(VeNetwork {
        ips: all(&a.ips, parse_ve_address)?,
        netifs: all(&a.netifs, Netif::parse)?,
        nameservers: a
            .nameservers
            .iter()
            .map(|s| nameserver(s))
            .collect::<Result<_, _>>()?,
        searchdomains: a.searchdomains.clone(),
        rate: rate(a.rate.as_deref())?.unwrap_or_default(),
        nat_via: a.nat_via.clone(),
        forwards: all(&a.forwards, Forward::parse)?,
    })
}

pub fn set_request(a: &SetArgs) -> Result<SetRequest> {
    Ok(SetRequest {
        hostname: a.hostname.clone(),
        ip_add: all(&a.ip_add, parse_ve_address)?,
        ip_del: a.ip_del.clone(),
        netif_add: all(&a.netif_add, Netif::parse_spec)?,
        netif_del: a.netif_del.clone(),
        rate: rate(a.rate.as_deref())?,
        nameservers: list_or_none(&a.nameservers, nameserver)?,
        searchdomains: list_or_none(&a.searchdomains, |s| Ok(s.to_string()))?,
        nat_via: a.nat_via.as_ref().map(|u| (u != "none").then(|| u.clone())),
        forward_add: all(&a.forward_add, Forward::parse)?,
        forward_del: all(&a.forward_del, Forward::parse)?,
        ..SetRequest::default()
    })
}

/// The VE's addresses, as `list -o ip` shows them.
pub fn ips_text(net: &VeNetwork) -> String {
    let v: Vec<String> = net.all_ips().map(|a| a.to_string()).collect();
    if v.is_empty() {
        "-".into()
    } else {
        v.join(",")
    }
}
