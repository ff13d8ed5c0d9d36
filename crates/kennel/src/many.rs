//! `kennel start|stop|kill ID... | --all`. One VE goes as it always did
//! (its error is the command's, with its own exit status); several go at
//! once through the library's batch (`kennel_ve::lifecycle::batch`): a
//! line per VE as each one ends, a line per failure (`kennel: VE 12:
//! ...`), and a summary at the end.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Result;
use kennel_storage::shown::terminal_safe;
use kennel_ve::lifecycle::batch::{default_parallel, BatchOptions, Done, Op, Outcome, Report};
use kennel_ve::lifecycle::StopOutcome;
use kennel_ve::{Kennel, VeError, VeId};

use crate::cli::ManyArgs;
use crate::commands::say;

/// Runs `op` on the VEs `many` names; the `Ok` value is the exit status.
pub fn run(k: &Kennel, op: Op, many: &ManyArgs, quiet: bool) -> Result<i32> {
    if let (false, [id]) = (many.all, many.ids.as_slice()) {
        return one(k, op, &VeId::parse(id)?, quiet);
    }
    let ids = if many.all {
        k.ids()?
    } else {
        distinct(&many.ids)?
    };
    let opts = BatchOptions {
        parallel: many
            .parallel
            .map_or_else(|| default_parallel(op), usize::from),
        skip_idle: many.all,
        quiet,
        in_process: true,
    };
    let began = Instant::now();
    let mut tally = Tally::default();
    k.batch(op, &ids, &opts, &mut |r| tally.add(&r, op, quiet));
    if !quiet {
        let _ = say(quiet, tally.summary(op, began.elapsed()));
    }
    Ok(tally.exit_status())
}

/// The ids given, checked before anything is done, each once.
fn distinct(given: &[String]) -> Result<Vec<VeId>> {
    let mut seen = BTreeSet::new();
    let mut ids = Vec::new();
    for s in given {
        let id = VeId::parse(s)?;
        if seen.insert(id.to_string()) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// One VE, as `kennel start ID` always was.
fn one(k: &Kennel, op: Op, id: &VeId, quiet: bool) -> Result<i32> {
    let done = match op {
        Op::Start => Done::Started {
            init_pid: k.start(id)?.init_pid,
        },
        Op::Stop { timeout } => match k.stop(id, timeout)? {
            StopOutcome::Clean => Done::Stopped,
            StopOutcome::Killed => Done::StopTimedOut,
        },
        Op::Kill => {
            k.kill(id)?;
            Done::Killed
        }
    };
    say(quiet, done_line(id, done, op))?;
    Ok(0)
}

/// "Started VE 101 (init pid 4242)" and the like.
fn done_line(id: &VeId, done: Done, op: Op) -> String {
    match (done, op) {
        (Done::Started { init_pid }, _) => format!("Started VE {id} (init pid {init_pid})"),
        (Done::Stopped, _) => format!("Stopped VE {id}"),
        (Done::StopTimedOut, Op::Stop { timeout }) => format!(
            "Killed VE {id}: it did not shut down within {}s",
            timeout.as_secs()
        ),
        (Done::StopTimedOut | Done::Killed, _) => format!("Killed VE {id}"),
    }
}

/// A batch's count so far (also `kennel boot` and `shutdown`'s).
#[derive(Debug, Default)]
pub(crate) struct Tally {
    done: usize,
    skipped: usize,
    failed: usize,
    codes: BTreeSet<i32>,
}

impl Tally {
    /// Counts and prints one VE's report.
    pub(crate) fn add(&mut self, r: &Report, op: Op, quiet: bool) {
        match &r.outcome {
            Outcome::Done(d) => {
                self.done += 1;
                // A reader that went away does not stop the batch.
                let _ = say(quiet, done_line(&r.id, *d, op));
            }
            Outcome::Skipped => self.skipped += 1,
            Outcome::Failed { code, message } => {
                self.failed += 1;
                self.codes.insert(*code);
                eprintln!("kennel: {}", failure_line(&r.id, message));
            }
        }
    }

    /// "started 998 of 1000 VEs in 4.2 s; 2 failed".
    pub(crate) fn summary(&self, op: Op, took: Duration) -> String {
        let mut s = format!(
            "{} {} of {} VEs in {:.1} s",
            op.past_tense(),
            self.done,
            self.done + self.failed,
            took.as_secs_f64()
        );
        if self.failed > 0 {
            s.push_str(&format!("; {} failed", self.failed));
        }
        if self.skipped > 0 {
            let state = match op {
                Op::Start => "running",
                Op::Stop { .. } | Op::Kill => "not running",
            };
            s.push_str(&format!("; {} skipped ({state})", self.skipped));
        }
        s
    }

    /// 0; a failure's own status if all failures had the same; else 1.
    pub(crate) fn exit_status(&self) -> i32 {
        match (self.failed, self.codes.len()) {
            (0, _) => 0,
            (_, 1) => self.codes.first().copied().unwrap_or(1),
            _ => 1,
        }
    }
}

/// `VE 12: ...`, or the message itself when it already starts with the VE
/// ("VE 12 failed to start: ...").
fn failure_line(id: &VeId, message: &str) -> String {
    let message = terminal_safe(message);
    if message.starts_with(&format!("VE {id} ")) {
        message.into_owned()
    } else {
        format!("VE {id}: {message}")
    }
}

/// `kennel __batch-worker OP`: the worker side of a batch.
pub fn worker(k: &Kennel, op_args: &[String]) -> Result<i32> {
    let Some((op, skip_idle)) = Op::from_worker_args(op_args) else {
        return Err(VeError::BadInput(format!(
            "invalid batch worker arguments {op_args:?}: kennel runs its own workers"
        ))
        .into());
    };
    k.serve_batch(
        op,
        skip_idle,
        std::io::stdin().lock(),
        std::io::stdout().lock(),
    )?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> VeId {
        VeId::parse(s).expect("id")
    }

    #[test]
    fn failures_name_their_ve_once() {
        assert_eq!(
            failure_line(&id("12"), "VE 12 failed to start: mount: busy"),
            "VE 12 failed to start: mount: busy"
        );
        assert_eq!(
            failure_line(&id("12"), "VE 123 is busy"),
            "VE 12: VE 123 is busy"
        );
        assert_eq!(
            failure_line(&id("12"), "template 'x' does not exist"),
            "VE 12: template 'x' does not exist"
        );
    }

    #[test]
    fn the_summary_counts() {
        let mut t = Tally::default();
        let fail = |code| Report {
            id: id("1"),
            outcome: Outcome::Failed {
                code,
                message: "x".into(),
            },
        };
        for _ in 0..3 {
            t.add(
                &Report {
                    id: id("2"),
                    outcome: Outcome::Done(Done::Killed),
                },
                Op::Kill,
                true,
            );
        }
        assert_eq!(t.exit_status(), 0);
        t.add(&fail(4), Op::Kill, true);
        assert_eq!(t.exit_status(), 4);
        t.add(&fail(12), Op::Kill, true);
        assert_eq!(t.exit_status(), 1);
        t.add(
            &Report {
                id: id("3"),
                outcome: Outcome::Skipped,
            },
            Op::Kill,
            true,
        );
        assert_eq!(
            t.summary(Op::Kill, Duration::from_millis(4249)),
            "killed 3 of 5 VEs in 4.2 s; 2 failed; 1 skipped (not running)"
        );
        assert_eq!(
            Tally::default().summary(Op::Start, Duration::ZERO),
            "started 0 of 0 VEs in 0.0 s"
        );
    }

    #[test]
    fn ids_are_checked_and_kept_once() {
        let given: Vec<String> = ["3", "1", "3", "2"].iter().map(|s| s.to_string()).collect();
        let ids = distinct(&given).expect("ids");
        assert_eq!(
            ids.iter().map(VeId::as_str).collect::<Vec<_>>(),
            ["3", "1", "2"]
        );
        assert!(distinct(&["1".into(), "../x".into()]).is_err());
    }
}
