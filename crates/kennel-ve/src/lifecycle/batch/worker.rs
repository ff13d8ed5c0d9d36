//! A worker's side: one operation on one VE at a time, in this process.

use std::io::{BufRead, Write};

use super::protocol::{self, one_line, Done, Outcome, Report};
use super::Op;
use crate::error::{ErrorKind, VeError};
use crate::id::VeId;
use crate::lifecycle::{Kennel, StopOutcome};

/// Whether `err` only says that VE `op` would act on is already where `op`
/// takes it, or no longer exists (a VE destroyed since the batch listed it).
fn already_there(op: Op, err: &VeError) -> bool {
    matches!(
        (op, err.kind()),
        (_, ErrorKind::NoSuchVe)
            | (Op::Start, ErrorKind::Running)
            | (Op::Stop { .. } | Op::Kill, ErrorKind::NotRunning)
    )
}

impl Kennel {
    /// Does `op` to VE `id` here and now, as `kennel start|stop|kill ID`
    /// would. The calling process must be single-threaded (see
    /// [`crate::lifecycle::batch`]).
    pub fn apply(&self, op: Op, id: &VeId, skip_idle: bool) -> Outcome {
        let done = match op {
            Op::Start => self.start(id).map(|s| Done::Started {
                init_pid: s.init_pid,
            }),
            Op::Stop { timeout } => self.stop(id, timeout).map(|o| match o {
                StopOutcome::Clean => Done::Stopped,
                StopOutcome::Killed => Done::StopTimedOut,
            }),
            Op::Kill => self.kill(id).map(|()| Done::Killed),
        };
        match done {
            Ok(d) => Outcome::Done(d),
            Err(e) if skip_idle && already_there(op, &e) => Outcome::Skipped,
            Err(e) => Outcome::Failed {
                code: e.kind().exit_code(),
                message: one_line(&e),
            },
        }
    }

    /// A worker's life (`kennel __batch-worker OP`): `op` for every id
    /// read from `input`, one report line each on `output`, until `input`
    /// ends. A line that is not an id is a broken batch: an error.
    pub fn serve_batch(
        &self,
        op: Op,
        skip_idle: bool,
        input: impl BufRead,
        mut output: impl Write,
    ) -> std::io::Result<()> {
        for line in input.lines() {
            let line = line?;
            let (id, uuid) = protocol::parse_request(&line).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "a batch worker reads one VE id a line (and, optionally, the uuid it must have)",
                )
            })?;
            tracing::debug!("batch worker: VE {id}");
            self.expect_uuid(uuid);
            let outcome = self.apply(op, &id, skip_idle);
            self.expect_uuid(None);
            let report = Report { outcome, id };
            writeln!(output, "{}", report.to_line())?;
            output.flush()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_all_skips() {
        let stop = Op::Stop {
            timeout: std::time::Duration::from_secs(1),
        };
        let running = VeError::AlreadyRunning("1".into());
        let stopped = VeError::NotRunning("1".into());
        let gone = VeError::NoSuchVe("1".into());
        let busy = VeError::Busy("1".into());
        assert!(already_there(Op::Start, &running));
        assert!(!already_there(Op::Start, &stopped));
        assert!(already_there(stop, &stopped) && already_there(Op::Kill, &stopped));
        assert!(!already_there(Op::Kill, &running));
        for op in [Op::Start, stop, Op::Kill] {
            assert!(already_there(op, &gone));
            assert!(!already_there(op, &busy));
        }
    }
}
