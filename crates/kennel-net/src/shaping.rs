//! Per-VE rate limits with `tc`, on the host side of each VE link, where
//! the VE's root cannot reach them. Both directions are shaped by a token
//! bucket (`tbf`), which queues, so TCP settles on the rate:
//!
//! * into the VE: `tbf` as the root qdisc of the host end of the link;
//! * out of the VE: the host end's ingress is redirected (`u32` match-all
//!   filter, `mirred` action) to an `ifb` device named after the link
//!   (`kb101_eth0`), whose root qdisc is the `tbf`. Ingress itself cannot
//!   queue, and a policer (`act_police`) is often not built into kernels
//!   (it is not on Debian's cloud kernels), nor does it treat TCP as well.
//!
//! `tc` and `ip` are run rather than spoken to over netlink: qdisc, filter
//! and action encodings are large, and no maintained crate covers them.

use std::process::{Command, Stdio};

use crate::error::{NetError, Result};
use crate::model::{Rate, RateLimit};
use crate::names;

/// Makes `dev`'s shaping what `limit` says (removing what it does not).
pub fn apply(dev: &str, limit: &RateLimit) -> Result<()> {
    match limit.ingress {
        Some(r) => tbf(dev, r)?,
        None => quiet(tc_program(), &["qdisc", "del", "dev", dev, "root"]),
    }
    // The ingress qdisc goes and comes whole: its filter is its only content.
    quiet(tc_program(), &["qdisc", "del", "dev", dev, "ingress"]);
    let ifb = names::ifb_link(dev);
    let Some(r) = limit.egress else {
        quiet(ip_program(), &["link", "del", &ifb]);
        return Ok(());
    };
    quiet(ip_program(), &["link", "add", &ifb, "type", "ifb"]);
    run(ip_program(), &["link", "set", &ifb, "up"], dev)?;
    tbf(&ifb, r)?;
    run(
        tc_program(),
        &["qdisc", "add", "dev", dev, "handle", "ffff:", "ingress"],
        dev,
    )?;
    run(
        tc_program(),
        &[
            "filter", "add", "dev", dev, "parent", "ffff:", "protocol", "all", "prio", "1", "u32",
            "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", &ifb,
        ],
        dev,
    )
}

fn tbf(dev: &str, r: Rate) -> Result<()> {
    let burst = bucket(r).to_string();
    run(
        tc_program(),
        &[
            "qdisc",
            "replace",
            "dev",
            dev,
            "root",
            "tbf",
            "rate",
            &bits(r),
            "burst",
            &burst,
            "latency",
            "50ms",
        ],
        dev,
    )
}

fn bits(r: Rate) -> String {
    format!("{}bit", r.bits_per_sec())
}

/// Bucket size in bytes: 5 ms at the rate, at least 32 KiB (a few full
/// segments, so TSO-sized packets pass without being split too finely).
fn bucket(r: Rate) -> u64 {
    ((r.bits_per_sec() as f64 / 8.0 * 0.005) as u64).clamp(32 << 10, 64 << 20)
}

fn tc_program() -> String {
    "tc".into()
}

fn ip_program() -> String {
    "ip".into()
}

fn run(prog: String, args: &[&str], dev: &str) -> Result<()> {
    let out = Command::new(&prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            NetError::Host(format!(
                "cannot run {prog} ({e}): install iproute2 (apt install iproute2); Kennel shapes VE traffic with it"
            ))
        })?;
    if out.status.success() {
        return Ok(());
    }
    Err(NetError::Tool {
        tool: "tc",
        what: format!("set the rate on {dev}"),
        detail: String::from_utf8_lossy(&out.stderr)
            .lines()
            .next()
            .unwrap_or("failed")
            .to_string(),
    })
}

/// For removals and creations where "nothing there" or "already there"
/// is an expected answer.
fn quiet(prog: String, args: &[&str]) {
    let _ = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets() {
        let r = Rate::parse("100mbit").unwrap();
        assert_eq!(bucket(r), 62_500);
        let slow = Rate::parse("64kbit").unwrap();
        assert_eq!(bucket(slow), 32 << 10);
        assert_eq!(bits(r), "100000000bit");
    }
}
