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

fn net_err(e: kennel_net::NetError) -> VeError {
    VeError::from(e)
}

pub fn create_network(a: &CreateNetArgs) -> Result<VeNetwork> {
    let net = VeNetwork {
        ips: a
            .ips
            .iter()
            .map(|s| parse_ve_address(s))
            .collect::<Result<_, _>>()
            .map_err(net_err)?,
        netifs: a
            .netifs
            .iter()
            .map(|s| Netif::parse(s))
            .collect::<Result<_, _>>()
            .map_err(net_err)?,
        nameservers: a
            .nameservers
            .iter()
            .map(|s| nameserver(s))
            .collect::<Result<_, _>>()?,
        searchdomains: a.searchdomains.clone(),
        rate: a
            .rate
            .as_deref()
            .map(RateLimit::parse)
            .transpose()
            .map_err(net_err)?
            .unwrap_or_default(),
        nat_via: a.nat_via.clone(),
        forwards: a
            .forwards
            .iter()
            .map(|s| Forward::parse(s))
            .collect::<Result<_, _>>()
            .map_err(net_err)?,
    };
    Ok(net)
}

pub fn set_request(a: &SetArgs) -> Result<SetRequest> {
    Ok(SetRequest {
        hostname: a.hostname.clone(),
        ip_add: a
            .ip_add
            .iter()
            .map(|s| parse_ve_address(s))
            .collect::<Result<_, _>>()
            .map_err(net_err)?,
        ip_del: a.ip_del.clone(),
        netif_add: a
            .netif_add
            .iter()
            .map(|s| Netif::parse(s))
            .collect::<Result<_, _>>()
            .map_err(net_err)?,
        netif_del: a.netif_del.clone(),
        rate: a
            .rate
            .as_deref()
            .map(RateLimit::parse)
            .transpose()
            .map_err(net_err)?,
        nameservers: list_or_none(&a.nameservers, nameserver)?,
        searchdomains: list_or_none(&a.searchdomains, |s| Ok(s.to_string()))?,
        nat_via: a.nat_via.as_ref().map(|u| (u != "none").then(|| u.clone())),
        forward_add: a
            .forward_add
            .iter()
            .map(|s| Forward::parse(s))
            .collect::<Result<_, _>>()
            .map_err(net_err)?,
        forward_del: a
            .forward_del
            .iter()
            .map(|s| Forward::parse(s))
            .collect::<Result<_, _>>()
            .map_err(net_err)?,
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
