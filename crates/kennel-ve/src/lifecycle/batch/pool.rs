//! A batch's side: at most P workers, each given the next VE as soon as it
//! reports the last; reports are passed on as they come.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use rustix::event::{poll, PollFd, PollFlags};

use super::protocol::{Outcome, Report};
use super::{BatchOptions, Op, WORKER_COMMAND};
use crate::id::VeId;
use crate::lifecycle::Kennel;

/// One worker process and the VE it works on.
struct Worker {
    child: Child,
    to: ChildStdin,
    from: BufReader<ChildStdout>,
    busy: Option<VeId>,
}

impl Worker {
    /// Hands VE `id` to the worker; false if it is gone.
    fn give(&mut self, id: &VeId) -> bool {
        if writeln!(self.to, "{id}")
            .and_then(|()| self.to.flush())
            .is_err()
        {
            return false;
        }
        self.busy = Some(id.clone());
        true
    }

    /// The worker's report on the VE it works on; `None` if it ended or
    /// said something else.
    fn report(&mut self) -> Option<Report> {
        let mut line = String::new();
        match self.from.read_line(&mut line) {
            Ok(n) if n > 0 => Report::parse(line.trim_end_matches('\n'))
                .filter(|r| Some(&r.id) == self.busy.as_ref()),
            _ => None,
        }
    }

    /// Ends a worker that broke the protocol or died.
    fn end(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Kennel {
    /// Does `op` to every VE of `ids`, at most `opts.parallel` at a time,
    /// and calls `on_report` once per VE as each one ends, in the order
    /// they end. Never stops early: a VE that fails is its report.
    pub fn batch(
        &self,
        op: Op,
        ids: &[VeId],
        opts: &BatchOptions,
        on_report: &mut dyn FnMut(Report),
    ) {
        let parallel = opts.parallel.clamp(1, ids.len().max(1));
        if opts.in_process && parallel == 1 {
            for id in ids {
                on_report(Report {
                    id: id.clone(),
                    outcome: self.apply(op, id, opts.skip_idle),
                });
            }
            return;
        }
        let mut queue: VecDeque<VeId> = ids.iter().cloned().collect();
        let mut workers: Vec<Worker> = Vec::new();
        // A worker that dies is replaced, but not over and over.
        let mut spawns_left = parallel * 2;
        loop {
            while workers.len() < parallel.min(queue.len() + busy(&workers)) && spawns_left > 0 {
                spawns_left -= 1;
                match self.spawn_worker(op, opts) {
                    Ok(w) => workers.push(w),
                    Err(e) => {
                        tracing::warn!("cannot run a batch worker: {e}");
                        break;
                    }
                }
            }
            // Hand out work; a worker that cannot take it is gone.
            let mut i = 0;
            while i < workers.len() {
                if workers[i].busy.is_none() {
                    if let Some(id) = queue.pop_front() {
                        if !workers[i].give(&id) {
                            queue.push_front(id);
                            workers.swap_remove(i).end();
                            continue;
                        }
                    }
                }
                i += 1;
            }
            if busy(&workers) == 0 {
                if queue.is_empty() || spawns_left == 0 {
                    break;
                }
                continue;
            }
            let ready = wait_for_reports(&workers);
            for i in ready.into_iter().rev() {
                let Some(id) = workers[i].busy.clone() else {
                    continue;
                };
                match workers[i].report() {
                    Some(r) => {
                        workers[i].busy = None;
                        on_report(r);
                    }
                    None => {
                        workers.swap_remove(i).end();
                        on_report(Report {
                            id,
                            outcome: Outcome::Failed {
                                code: 1,
                                message:
                                    "its batch worker ended without a report (see the log above)"
                                        .into(),
                            },
                        });
                    }
                }
            }
        }
        // No worker is left to take what remains.
        for id in queue {
            on_report(Report {
                id,
                outcome: Outcome::Failed {
                    code: 1,
                    message: "no batch worker could be run for it".into(),
                },
            });
        }
        for mut w in workers {
            drop(w.to);
            let _ = w.child.wait();
        }
    }

    /// `kennel [--root R] [-q] __batch-worker OP`, with pipes both ways.
    fn spawn_worker(&self, op: Op, opts: &BatchOptions) -> std::io::Result<Worker> {
        let mut cmd = Command::new(&self.exe.kennel);
        match &self.paths.custom_root {
            Some(r) => cmd.arg("--root").arg(r),
            None => cmd.env_remove("KENNEL_ROOT"),
        };
        if opts.quiet {
            cmd.arg("-q");
        }
        let mut child = cmd
            .arg(WORKER_COMMAND)
            .args(op.worker_args(opts.skip_idle))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let (Some(to), Some(from)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other("a batch worker without pipes"));
        };
        Ok(Worker {
            child,
            to,
            from: BufReader::new(from),
            busy: None,
        })
    }
}

/// Indexes (ascending) of the busy workers that have something to say.
fn wait_for_reports(workers: &[Worker]) -> Vec<usize> {
    let busy: Vec<usize> = (0..workers.len())
        .filter(|&i| workers[i].busy.is_some())
        .collect();
    let mut fds: Vec<PollFd<'_>> = busy
        .iter()
        .map(|&i| PollFd::new(workers[i].from.get_ref(), PollFlags::IN))
        .collect();
    loop {
        match poll(&mut fds, None) {
            Ok(_) => break,
            Err(rustix::io::Errno::INTR) => continue,
            // Cannot wait: read each, which blocks until it reports.
            Err(_) => return busy,
        }
    }
    busy.iter()
        .zip(&fds)
        .filter(|(_, fd)| !fd.revents().is_empty())
        .map(|(&i, _)| i)
        .collect()
}

fn busy(workers: &[Worker]) -> usize {
    workers.iter().filter(|w| w.busy.is_some()).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::Executables;

    /// Workers that die at once (here: `false` as the kennel program)
    /// fail each VE with a line of its own, and the batch ends.
    #[test]
    fn workers_that_die_fail_their_ves_and_the_batch_ends() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root (Kennel::open)");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = Executables {
            kennel: "/bin/false".into(),
            monitor: "/bin/false".into(),
        };
        let k = Kennel::open(Some(dir.path()), exe).expect("open");
        let ids: Vec<VeId> = ["1", "2", "3", "4", "5"]
            .iter()
            .map(|s| VeId::parse(s).expect("id"))
            .collect();
        let opts = BatchOptions {
            parallel: 2,
            skip_idle: false,
            quiet: true,
            in_process: false,
        };
        let mut seen = Vec::new();
        k.batch(Op::Start, &ids, &opts, &mut |r| seen.push(r));
        seen.sort_by(|a, b| a.id.sort_key().cmp(&b.id.sort_key()));
        assert_eq!(
            seen.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["1", "2", "3", "4", "5"],
            "each VE is reported once"
        );
        assert!(
            seen.iter()
                .all(|r| matches!(r.outcome, Outcome::Failed { code: 1, .. })),
            "{seen:?}"
        );
    }
}
