//! The host's nftables objects of one VE, removed whole with it; nothing
//! outside them is ever listed, flushed or reordered:
//!
//! * a `netdev` table `kennel-ID` whose chains hook the host end of each of
//!   the VE's links ([`rules`] says what they filter), made and removed in
//!   one netlink transaction each ([`nfnl`]): no program runs on a start;
//! * with NAT or port forwards (opt-in), an `ip` table of the same name,
//!   written as nft's own text and applied by `nft -f` in one transaction.
//!   Every value in it has been validated (addresses, names of at most 15
//!   safe characters), and the text is what an operator reads back with
//!   `nft list table ip kennel-101`.

pub mod nfnl;
pub mod rules;

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use crate::error::{NetError, Result};
use crate::model::{Proto, VeNetwork};
use crate::names;

fn has_nat(net: &VeNetwork) -> bool {
    net.nat_via.is_some() || !net.forwards.is_empty()
}

/// Creates VE `ve`'s tables for `net` at a start (nothing of the VE's
/// exists: the teardown of any earlier run came first). Creating alone is
/// quick; a transaction that deletes makes the kernel wait for an RCU
/// grace period (10-20 ms here).
pub fn create(ve: &str, net: &VeNetwork) -> Result<()> {
    let table = names::table(ve);
    let chains = rules::chains(ve, net);
    match nfnl::apply(&table, &chains, nfnl::Mode::Create) {
        Err(e) if nfnl::is_exists(&e) => nfnl::apply(&table, &chains, nfnl::Mode::Replace)?,
        other => other?,
    }
    if has_nat(net) {
        run_nft(
            &render_nat_replace(&table, net),
            "create the VE's NAT table",
        )?;
    }
    Ok(())
}

/// Makes VE `ve`'s tables what `net` needs, whatever they are now (`old`
/// is what was applied last: it says whether a NAT table may exist).
pub fn apply(ve: &str, net: &VeNetwork, old: &VeNetwork) -> Result<()> {
    let table = names::table(ve);
    nfnl::apply(&table, &rules::chains(ve, net), nfnl::Mode::Replace)?;
    if has_nat(net) || has_nat(old) {
        run_nft(&render_nat_replace(&table, net), "apply the VE's NAT table")?;
    }
    Ok(())
}

/// Removes VE `ve`'s tables, whichever exist (the NAT table only when
/// `nat` says it may).
pub fn remove(ve: &str, nat: bool) -> Result<()> {
    let table = names::table(ve);
    nfnl::apply(&table, &[], nfnl::Mode::Replace)?;
    if nat {
        run_nft(
            &render_nat_replace(&table, &VeNetwork::default()),
            "remove the VE's NAT table",
        )?;
    }
    Ok(())
}

/// Whether VE `ve`'s filter table exists (for `kennel check`: the host's
/// `nft flush ruleset` removes it).
pub fn exists(ve: &str) -> bool {
    Command::new("nft")
        .args(["list", "table", "netdev", &names::table(ve)])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether `net` has a NAT table.
pub fn needs_nat(net: &VeNetwork) -> bool {
    has_nat(net)
}

/// The nft script that makes the VE's `ip` table what `net` needs: `add`
/// then `delete` (both idempotent), then its definition, if any.
pub fn render_nat_replace(table: &str, net: &VeNetwork) -> String {
    let mut s = format!("add table ip {table}\ndelete table ip {table}\n");
    render_nat(&mut s, table, net);
    s
}

fn render_nat(s: &mut String, table: &str, net: &VeNetwork) {
    if net.nat_via.is_none() && net.forwards.is_empty() {
        return;
    }
    let v4: Vec<IpAddr> = net.all_ips().filter(IpAddr::is_ipv4).collect();
    let Some(first) = v4.first() else { return };
    let _ = writeln!(s, "table ip {table} {{");
    if let (Some(up), Some(set)) = (&net.nat_via, set_of(v4.iter())) {
        let _ = writeln!(
            s,
            "  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n    oifname \"{up}\" ip saddr {set} masquerade\n  }}"
        );
    }
    if !net.forwards.is_empty() {
        s.push_str(
            "  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n",
        );
        for f in &net.forwards {
            // Only traffic to the host itself: never traffic passing
            // through to another VE or beyond.
            let dst = f.host_addr.map_or_else(
                || "fib daddr type local ".to_string(),
                |a| format!("ip daddr {a} "),
            );
            let proto = match f.proto {
                Proto::Tcp => "tcp",
                Proto::Udp => "udp",
            };
            let _ = writeln!(
                s,
                "    {dst}{proto} dport {} dnat to {first}:{}",
                f.host_port, f.ve_port
            );
        }
        s.push_str("  }\n");
    }
    s.push_str("}\n");
}

fn set_of<T: ToString>(items: impl IntoIterator<Item = T>) -> Option<String> {
    let v: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    (!v.is_empty()).then(|| format!("{{ {} }}", v.join(", ")))
}

/// Runs `script` as one nft transaction; nft's first error line on
/// failure. The script is a few KiB at most: it fits the pipe, so writing
/// it all before nft reads cannot block.
fn run_nft(script: &str, what: &'static str) -> Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            NetError::Host(format!(
                "cannot run nft ({e}): install nftables (apt install nftables); Kennel makes NAT and port forwards with it"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(crate::error::io_err("write to nft"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(crate::error::io_err("wait for nft"))?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stderr);
    let detail = text
        .lines()
        .find(|l| l.contains("Error"))
        .or_else(|| text.lines().next())
        .unwrap_or("failed")
        .trim()
        .to_string();
    Err(NetError::Tool {
        tool: "nft",
        what: what.into(),
        detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{parse_ve_address, Forward};

    #[test]
    fn nat_and_forwards() {
        let net = VeNetwork {
            ips: vec![parse_ve_address("10.0.0.11").unwrap()],
            nat_via: Some("uplink0".into()),
            forwards: vec![
                Forward::parse("tcp:8080:80").unwrap(),
                Forward::parse("udp:198.51.100.1:53:53").unwrap(),
            ],
            ..Default::default()
        };
        let s = render_nat_replace("kennel-101", &net);
        assert!(
            s.starts_with("add table ip kennel-101\ndelete table ip kennel-101\n"),
            "{s}"
        );
        assert!(
            s.contains("oifname \"uplink0\" ip saddr { 10.0.0.11 } masquerade"),
            "{s}"
        );
        assert!(
            s.contains("fib daddr type local tcp dport 8080 dnat to 10.0.0.11:80"),
            "{s}"
        );
        assert!(
            s.contains("ip daddr 198.51.100.1 udp dport 53 dnat to 10.0.0.11:53"),
            "{s}"
        );
    }

    #[test]
    fn no_nat_only_removes() {
        assert_eq!(
            render_nat_replace("kennel-101", &VeNetwork::default()),
            "add table ip kennel-101\ndelete table ip kennel-101\n"
        );
    }
}
