//! Many VEs at once: `kennel start|stop|kill ID...` and `--all`, and the
//! host's boot and shutdown (`kennel boot`, `kennel shutdown`: `host.rs`,
//! group by group in boot order, [`order`]).
//!
//! **Processes, not threads.** A start forks the VE's monitor with a raw
//! `clone3`, and the child then does ordinary Rust work (it allocates). In
//! a multi-threaded process a lock that another thread held at the fork
//! stays held in the child for ever, so VEs are never started from threads
//! of one process. The work is fanned out over at most P *worker
//! processes* instead, each single-threaded: `kennel __batch-worker OP`
//! reads VE ids on its standard input, one a line, does OP to each in turn
//! in its own process, and writes one report line per id on its standard
//! output ([`protocol`]). Each VE still takes its own lock, as a command of
//! its own would; a VE that fails is that VE's report, and the others go
//! on.
//!
//! **Long-lived workers, not one `kennel start ID` per VE.** A `kennel`
//! process costs an exec, the relocation of a static-PIE binary, the
//! state root's checks, the host configuration and the cgroup layout
//! before it does anything: 1.5 ms of a core here (`perf stat` of
//! `kennel status`), a seventh of the 10 ms a start may cost when 1,000
//! VEs are to start in 5 s on 2 cores. A worker pays it once for all the
//! VEs it starts: 200 VEs started in 8.9 ms each with `start --all`
//! against 14.0 ms with one `kennel start` per VE at the same parallelism
//! (bench/start-many.sh). Forking P workers from the CLI before any thread
//! exists would save those P execs too (a few ms in all), but only a
//! process that has no threads yet can do that: the API service cannot.
//!
//! **Reuse by the API service** (a multi-threaded tokio daemon): spawning
//! a worker is fork and exec at once (`std::process::Command`), which is
//! safe from any thread; so the service calls [`Kennel::batch`] from a
//! blocking task with [`BatchOptions::in_process`] false, or speaks the
//! line protocol itself over `tokio::process` pipes ([`Op::worker_args`],
//! [`protocol::Report::parse`]), keeping a pool of warm workers between
//! requests.

mod host;
pub mod order;
mod pool;
pub mod protocol;
mod worker;

use std::time::Duration;

pub use host::HostEvent;
pub use order::Group;
pub use protocol::{Done, Outcome, Report};

/// The hidden `kennel` subcommand a worker runs.
pub const WORKER_COMMAND: &str = "__batch-worker";

/// What a batch does to each VE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Start,
    /// A clean shutdown, killed after `timeout`.
    Stop {
        timeout: Duration,
    },
    Kill,
}

impl Op {
    /// The worker's arguments after [`WORKER_COMMAND`]; `skip_idle`: a VE
    /// already in the wanted state is skipped, not a failure (`--all`).
    pub fn worker_args(self, skip_idle: bool) -> Vec<String> {
        let mut v: Vec<String> = match self {
            Op::Start => vec!["start".into()],
            Op::Stop { timeout } => vec![
                "stop".into(),
                "--timeout".into(),
                timeout.as_secs().to_string(),
            ],
            Op::Kill => vec!["kill".into()],
        };
        if skip_idle {
            v.push("--skip-idle".into());
        }
        v
    }

    /// The operation and `skip_idle` from a worker's arguments.
    pub fn from_worker_args(args: &[String]) -> Option<(Op, bool)> {
        let (skip, args) = match args.split_last() {
            Some((last, rest)) if last == "--skip-idle" => (true, rest),
            _ => (false, args),
        };
        let op = match args {
            [op] if op == "start" => Op::Start,
            [op] if op == "kill" => Op::Kill,
            [op, flag, secs] if op == "stop" && flag == "--timeout" => Op::Stop {
                timeout: Duration::from_secs(secs.parse().ok()?),
            },
            _ => return None,
        };
        Some((op, skip))
    }

    /// "started", "stopped", "killed": for a summary line.
    pub fn past_tense(self) -> &'static str {
        match self {
            Op::Start => "started",
            Op::Stop { .. } => "stopped",
            Op::Kill => "killed",
        }
    }
}

/// How a batch runs.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// Workers at most (at least 1); [`default_parallel`] measures best.
    pub parallel: usize,
    /// A VE already in the wanted state (running for a start, stopped
    /// for a stop or kill) or gone meanwhile is reported
    /// [`Outcome::Skipped`], not failed: `--all`.
    pub skip_idle: bool,
    /// Workers print only errors (`kennel -q`).
    pub quiet: bool,
    /// One VE, or `parallel` 1: in this process rather than in a worker.
    /// Only for a caller that is single-threaded (the CLI): a start forks.
    pub in_process: bool,
}

/// Workers by default for `op`. A start is CPU work with some waiting
/// (for the monitor, the VE's setup, its disk's reads through the loop
/// device, the kernel's RCU on namespace and mount changes): with two per
/// CPU a core still idled a tenth of the time; four per CPU fill it
/// (2 CPUs, 1,000 VEs on disks, bench/start-many.sh: 4.78-4.83 s with 8
/// workers, 5.05-5.11 s with 4, same run). A kill is the same. A stop is mostly
/// waiting for each VE's init to shut down (busybox takes 2 s, systemd
/// longer) while the VEs' monitors do the teardown, and a waiting worker
/// costs an exec (about 2 ms of CPU) and 0.5 MiB: 128 per CPU.
pub fn default_parallel(op: Op) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    match op {
        Op::Start | Op::Kill => cpus * 4,
        Op::Stop { .. } => cpus * 128,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_args_round_trip() {
        for op in [
            Op::Start,
            Op::Kill,
            Op::Stop {
                timeout: Duration::from_secs(30),
            },
        ] {
            for skip in [false, true] {
                assert_eq!(
                    Op::from_worker_args(&op.worker_args(skip)),
                    Some((op, skip))
                );
            }
        }
        let bad =
            |a: &[&str]| Op::from_worker_args(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(bad(&[]), None);
        assert_eq!(bad(&["stop"]), None);
        assert_eq!(bad(&["stop", "--timeout", "x"]), None);
        assert_eq!(bad(&["start", "extra"]), None);
        assert_eq!(bad(&["--skip-idle"]), None);
    }
}
