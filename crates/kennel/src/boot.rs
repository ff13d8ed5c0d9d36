//! `kennel boot` and `kennel shutdown`: the host's boot starts the VEs
//! marked `onboot`, its shutdown stops every running VE, group by group in
//! boot order (`kennel_ve::lifecycle::batch::order`), each group through
//! the batch's workers. `kennel-onboot.service` (scripts/systemd) runs
//! both. The output is `kennel start|stop --all`'s, with a line per group.

use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use kennel_ve::lifecycle::batch::{default_parallel, BatchOptions, Group, HostEvent, Op};
use kennel_ve::Kennel;

use crate::commands::say;
use crate::many::Tally;

#[derive(Debug, Args)]
pub struct BootArgs {
    /// VEs of one boot order at most at once (default: four per CPU).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub parallel: Option<u16>,
}

#[derive(Debug, Args)]
pub struct ShutdownArgs {
    /// Seconds each VE has to shut down cleanly before it is killed.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub timeout: u64,
    /// VEs of one boot order at most at once (default: 128 per CPU).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub parallel: Option<u16>,
}

/// `kennel boot`; the `Ok` value is the exit status.
pub fn boot(k: &Kennel, a: &BootArgs, quiet: bool) -> Result<i32> {
    let op = Op::Start;
    let opts = options(op, a.parallel, quiet);
    run(op, quiet, |on_event| k.boot(&opts, on_event))
}

/// `kennel shutdown`; the `Ok` value is the exit status.
pub fn shutdown(k: &Kennel, a: &ShutdownArgs, quiet: bool) -> Result<i32> {
    let op = Op::Stop {
        timeout: Duration::from_secs(a.timeout),
    };
    let opts = options(op, a.parallel, quiet);
    run(op, quiet, |on_event| {
        k.shutdown(Duration::from_secs(a.timeout), &opts, on_event)
    })
}

fn options(op: Op, parallel: Option<u16>, quiet: bool) -> BatchOptions {
    BatchOptions {
        parallel: parallel.map_or_else(|| default_parallel(op), usize::from),
        skip_idle: true,
        quiet,
        in_process: true,
    }
}

/// Prints each group and each VE's report as they come, then a summary.
fn run(
    op: Op,
    quiet: bool,
    work: impl FnOnce(&mut dyn FnMut(HostEvent)) -> kennel_ve::Result<()>,
) -> Result<i32> {
    let began = Instant::now();
    let mut tally = Tally::default();
    work(&mut |event| match event {
        // A reader that went away does not stop the boot.
        HostEvent::Group(g) => drop(say(quiet, group_line(&g, op))),
        HostEvent::Report(r) => tally.add(&r, op, quiet),
    })?;
    let _ = say(quiet, tally.summary(op, began.elapsed()));
    Ok(tally.exit_status())
}

/// "Boot order 10: starting 3 VEs", "No boot order: stopping 1 VE".
fn group_line(g: &Group, op: Op) -> String {
    let doing = match op {
        Op::Start => "starting",
        Op::Stop { .. } => "stopping",
        Op::Kill => "killing",
    };
    let n = g.ids.len();
    let ves = if n == 1 { "VE" } else { "VEs" };
    match g.order {
        Some(o) => format!("Boot order {o}: {doing} {n} {ves}"),
        None => format!("No boot order: {doing} {n} {ves}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kennel_ve::VeId;

    #[test]
    fn group_lines() {
        let g = |order, n: usize| Group {
            order,
            ids: (0..n)
                .map(|i| VeId::parse(&i.to_string()).expect("id"))
                .collect(),
        };
        assert_eq!(
            group_line(&g(Some(10), 3), Op::Start),
            "Boot order 10: starting 3 VEs"
        );
        let stop = Op::Stop {
            timeout: Duration::from_secs(1),
        };
        assert_eq!(
            group_line(&g(None, 1), stop),
            "No boot order: stopping 1 VE"
        );
    }
}
