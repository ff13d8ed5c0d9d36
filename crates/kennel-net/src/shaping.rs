//! The VE's ingress rate limit with `tc`: a token bucket (`tbf`) as the
//! root qdisc of the host end of each VE link, which queues, so TCP
//! settles on the rate. The VE's root cannot reach it.
//!
//! The egress rate (what the VE sends) is a policer in the VE's firewall
//! chain (`firewall::rules`), not here: ingress cannot queue, `act_police`
//! is missing from many kernels, and a tc redirect to an `ifb` device
//! would take the VE's packets past its anti-spoofing filter (the kernel
//! skips the netdev ingress hook for packets a tc action took).
//!
//! `tc` is run rather than spoken to over netlink: qdisc encodings are
//! large, and no maintained crate covers them; it runs only for VEs with
//! a rate.

use std::process::{Command, Stdio};

use crate::error::{NetError, Result};
use crate::model::{Rate, RateLimit};

/// Makes `dev`'s ingress shaping what `limit` says (removing it when it
/// has none).
pub fn apply(dev: &str, limit: &RateLimit) -> Result<()> {
    match limit.ingress {
        Some(r) => tbf(dev, r),
        None => {
            quiet(&["qdisc", "del", "dev", dev, "root"]);
            Ok(())
        }
    }
}

fn tbf(dev: &str, r: Rate) -> Result<()> {
    let burst = bucket(r).to_string();
    run(
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

fn run(args: &[&str], dev: &str) -> Result<()> {
    let out = Command::new("tc")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            NetError::Host(format!(
                "cannot run tc ({e}): install iproute2 (apt install iproute2); Kennel shapes VE traffic with it"
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

/// For removals, where "nothing there" is an expected answer.
fn quiet(args: &[&str]) {
    let _ = Command::new("tc")
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
