//! The host's nftables objects of one VE, removed whole with it; nothing
//! outside them is ever listed, flushed or reordered:
//!
//! * a `netdev` table `kennel-ID` whose chains hook the host end of each of
//!   the VE's links ([`rules`] and [`ipv6`] say what they filter, as data
//!   of [`expr`]), made and removed in one netlink transaction each
//!   ([`nfnl`]): no program runs on a start;
//! * with NAT or port forwards (opt-in), an `ip` table of the same name
//!   ([`nat`]), written as nft's own text and applied by `nft -f` in one
//!   transaction.

pub mod expr;
pub mod ipv6;
pub mod nat;
pub mod nfnl;
pub mod rules;

use std::io::Write as _;
use std::process::{Command, Stdio};

use crate::error::{NetError, Result};
use crate::model::VeNetwork;
use crate::names;
use crate::reconcile::HostNet;

pub use nat::needs_nat;

/// Creates VE `ve`'s tables for `net` at a start (nothing of the VE's
/// exists: the teardown of any earlier run came first). Creating alone is
/// quick; a transaction that deletes makes the kernel wait for an RCU
/// grace period (10-20 ms here).
pub fn create(ve: &str, net: &VeNetwork, host: &HostNet) -> Result<()> {
    let table = names::table(ve);
    let chains = rules::chains(ve, net);
    match nfnl::apply(&table, &chains, nfnl::Mode::Create) {
        Err(e) if nfnl::is_exists(&e) => nfnl::apply(&table, &chains, nfnl::Mode::Replace)?,
        other => other?,
    }
    if needs_nat(net) {
        run_nft(
            &nat::render_replace(ve, net, host.nat_conntrack_max),
            "create the VE's NAT table",
        )?;
    }
    Ok(())
}

/// Makes VE `ve`'s tables what `net` needs, whatever they are now
/// (`nat_may_exist`: whether a NAT table may exist, from the record).
pub fn apply(ve: &str, net: &VeNetwork, nat_may_exist: bool, host: &HostNet) -> Result<()> {
    let table = names::table(ve);
    nfnl::apply(&table, &rules::chains(ve, net), nfnl::Mode::Replace)?;
    if needs_nat(net) || nat_may_exist {
        run_nft(
            &nat::render_replace(ve, net, host.nat_conntrack_max),
            "apply the VE's NAT table",
        )?;
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
            &nat::render_replace(ve, &VeNetwork::default(), 0),
            "remove the VE's NAT table",
        )?;
    }
    Ok(())
}

/// Refuses a start whose filter table exists already: the teardown of the
/// VE's earlier run has removed its own, so that one is another state
/// root's VE's with the same id, whose filter a start would replace.
pub fn refuse_foreign_table(ve: &str) -> Result<()> {
    let table = names::table(ve);
    if nfnl::table_exists(&table)? {
        return Err(NetError::Host(format!(
            "host nftables table netdev {table} exists but is not VE {ve}'s (another Kennel root with a VE {ve}?): remove it (nft delete table netdev {table}) or use another id"
        )));
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
