//! Warm batch workers (`kennel __batch-worker OP`): one VE id a line in,
//! one report line out (kennel_ve::lifecycle::batch::protocol).
//!
//! A few idle workers per operation are kept between requests, so a
//! start through the API costs what `kennel start` costs less its exec
//! and set-up. A worker is used by one request at a time; a request
//! that finds none idle starts another. A worker that breaks the
//! protocol or dies is dropped (its standard input closes, so it ends).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kennel_ve::lifecycle::batch::{Op, Outcome, Report, WORKER_COMMAND};
use kennel_ve::VeId;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};

use super::KennelCli;
use crate::error::{ApiError, ApiResult};

/// Idle workers kept per operation.
const IDLE_PER_OP: usize = 4;
/// A report line longer than this is a broken worker.
const MAX_LINE: usize = 64 << 10;

#[derive(Debug)]
struct Worker {
    child: Child,
    to: ChildStdin,
    from: BufReader<ChildStdout>,
}

#[derive(Debug)]
pub struct Workers {
    cli: KennelCli,
    idle: Mutex<HashMap<String, Vec<Worker>>>,
}

/// The pool key of an operation (a stop's timeout is part of it).
fn key(op: Op) -> String {
    op.worker_args(false).join(" ")
}

/// The operations whose workers are kept between requests: start, kill,
/// and a stop with the default timeout.
fn kept_warm(op: Op) -> bool {
    match op {
        Op::Start | Op::Kill => true,
        Op::Stop { timeout } => timeout == DEFAULT_STOP,
    }
}

/// A stop's timeout when the client names none (as `kennel stop`).
pub const DEFAULT_STOP: Duration = Duration::from_secs(30);

impl Workers {
    pub fn new(cli: KennelCli) -> Self {
        Workers {
            cli,
            idle: Mutex::new(HashMap::new()),
        }
    }

    /// Starts one idle worker for each of `ops` ahead of the first
    /// request.
    pub fn warm(&self, ops: &[Op]) {
        for &op in ops {
            match self.spawn(op) {
                Ok(w) => self.put_back(op, w),
                Err(e) => tracing::warn!("cannot start a {} worker: {e}", key(op)),
            }
        }
    }

    /// Does `op` to VE `id` in a worker; finished even if the caller
    /// goes away.
    /// `uuid`: the VE must have it when the worker holds its lock.
    pub async fn apply(
        self: &std::sync::Arc<Self>,
        op: Op,
        id: &VeId,
        uuid: Option<String>,
    ) -> ApiResult<Outcome> {
        let me = std::sync::Arc::clone(self);
        let id = id.clone();
        tokio::spawn(async move { me.apply_here(op, &id, uuid).await })
            .await
            .map_err(|e| ApiError::internal(format!("a worker task failed: {e}")))?
    }

    async fn apply_here(&self, op: Op, id: &VeId, uuid: Option<String>) -> ApiResult<Outcome> {
        let mut worker = match self.take(op) {
            Some(w) => w,
            None => self
                .spawn(op)
                .map_err(|e| ApiError::internal(format!("cannot run a kennel worker: {e}")))?,
        };
        match ask(&mut worker, id, uuid.as_deref()).await {
            Some(report) if &report.id == id => {
                self.put_back(op, worker);
                Ok(report.outcome)
            }
            _ => {
                let _ = worker.child.start_kill();
                Err(ApiError::internal(format!(
                    "the kennel worker for VE {id} ended without a report (see the service's log)"
                )))
            }
        }
    }

    fn take(&self, op: Op) -> Option<Worker> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(&key(op))?;
        while let Some(mut w) = list.pop() {
            // One that ended while idle is dropped.
            if matches!(w.child.try_wait(), Ok(None)) {
                return Some(w);
            }
        }
        None
    }

    fn put_back(&self, op: Op, w: Worker) {
        if !kept_warm(op) {
            // Dropped: its standard input closes and it ends. A stop with
            // any timeout a client picks would otherwise leave an idle
            // worker per timeout, for ever.
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(key(op)).or_default();
        if list.len() < IDLE_PER_OP {
            list.push(w);
        }
        // Else dropped: its standard input closes and it ends.
    }

    fn spawn(&self, op: Op) -> std::io::Result<Worker> {
        let mut args: Vec<std::ffi::OsString> = vec!["-q".into(), WORKER_COMMAND.into()];
        args.extend(op.worker_args(false).into_iter().map(Into::into));
        let mut cmd = self.cli.command(&args);
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(false);
        let mut child = cmd.spawn()?;
        let (Some(to), Some(from)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.start_kill();
            return Err(std::io::Error::other("a worker without pipes"));
        };
        Ok(Worker {
            child,
            to,
            from: BufReader::new(from),
        })
    }
}

/// Hands `id` to `w` and reads its report; `None` if it broke.
async fn ask(w: &mut Worker, id: &VeId, uuid: Option<&str>) -> Option<Report> {
    let line = match uuid {
        Some(u) => format!("{id} {u}\n"),
        None => format!("{id}\n"),
    };
    w.to.write_all(line.as_bytes()).await.ok()?;
    w.to.flush().await.ok()?;
    let mut line = String::new();
    // A stop waits for the VE's init: no time limit here beyond the
    // operation's own (the worker kills after the stop's timeout).
    let mut bounded = AsyncReadExt::take(&mut w.from, MAX_LINE as u64);
    let read = bounded.read_line(&mut line);
    match tokio::time::timeout(Duration::from_secs(24 * 3600), read).await {
        Ok(Ok(n)) if n > 0 && line.ends_with('\n') => Report::parse(line.trim_end()),
        _ => None,
    }
}

/// The API's answer for a worker's outcome.
pub fn outcome_result(outcome: Outcome) -> ApiResult<kennel_ve::lifecycle::batch::Done> {
    match outcome {
        Outcome::Done(d) => Ok(d),
        Outcome::Skipped => Err(ApiError::internal("skipped without being asked to")),
        Outcome::Failed { code, message } => Err(ApiError::from_exit(code, message)),
    }
}
