//! `POST /v1/ves/{id}/exec`: one command in a running VE, its output
//! answered as JSON (a panel's "run this", a billing system's check).
//!
//! The command runs through the CLI's own `kennel exec --no-tty ID --
//! ARGV` (so it enters the VE exactly as an operator's does: the VE's
//! seccomp filter, cgroups and namespaces, no descriptor of ours). The VE
//! chose what that command does, so everything of it is bounded here:
//!
//! * **output:** at most 1 MiB of stdout and of stderr each is kept
//!   ([`output`]); the rest is read and thrown away up to 256 MiB a
//!   stream (so a command that prints a lot does not fail for it), and
//!   then the stream is closed: its next write fails with `EPIPE`. So a
//!   command printing without end costs this service a fixed amount of
//!   memory, and the host a fixed amount of copying, not a core (two:
//!   `kennel exec`'s relay and this service) for its whole timeout;
//! * **time:** at `timeout_secs` the `kennel exec` process (ours, by its
//!   PID) gets SIGTERM, which it passes on to the command's process group;
//!   [`TERM_GRACE`] later a second signal, on which it kills the group and
//!   waits for it; should it still not end, it is killed itself;
//! * **number:** at most 32 commands at once over all VEs, 4 in one VE,
//!   8 of one tenant's and 24 of all tenants' (8 are kept for host
//!   callers) ([`places`]; 429 beyond).

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::Json;
use kennel_api::Role;
use kennel_ve::VeId;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use utoipa::ToSchema;

use super::args::KennelArgs;
use crate::access::Caller;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use output::{bounded, output, Output};
use places::claim;

mod output;
mod places;

const DEFAULT_TIMEOUT: u32 = 60;
const MAX_TIMEOUT: u32 = 3600;
/// Between the SIGTERM passed on at the timeout and the kill.
const TERM_GRACE: Duration = Duration::from_secs(2);
/// How long `kennel exec` may take to kill the command and end (it waits
/// 5 s for a command stuck in the kernel).
const KILL_WAIT: Duration = Duration::from_secs(10);
/// Arguments of one command, and bytes of one (the kernel's own bound).
const MAX_ARGS: usize = 4096;
const MAX_ARG: usize = 128 << 10;

/// A command to run in a VE.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecBody {
    /// The program and its arguments, e.g. `["sh", "-c", "uptime"]` (the
    /// VE's `PATH` is searched). No shell is involved unless named.
    pub command: Vec<String>,
    /// Fed to the command's standard input, then closed (none: empty).
    /// The whole request is at most 1 MiB.
    pub stdin: Option<String>,
    /// Seconds before the command is killed (default 60, 1 to 3600).
    pub timeout_secs: Option<u32>,
    /// Environment variables, `KEY=value` (`kennel exec -e`).
    #[serde(default)]
    pub env: Vec<String>,
    /// Working directory inside the VE (default `/`; `kennel exec -w`).
    pub workdir: Option<String>,
}

/// How the command ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExecResult {
    /// Its exit status, as a shell gives it: 0-255, 128+N when signal N
    /// ended it, 126 (could not run) and 127 (not found) as `env` does.
    pub exit_status: Option<i32>,
    /// The signal that ended it, when its status says so (128+N); a
    /// command that exits 130 itself looks the same.
    pub signal: Option<i32>,
    /// It ran into `timeout_secs` and was killed.
    pub timed_out: bool,
    pub stdout: Output,
    pub stderr: Output,
    pub duration_ms: u64,
}

/// Runs a command in a running VE and answers its output (operators; a
/// tenant's operator in its own VEs).
#[utoipa::path(post, path = "/v1/ves/{id}/exec", tag = "ves", request_body = ExecBody,
    params(("id" = String, Path, description = "VE id")),
    responses((status = 200, body = ExecResult, description = "the command ran (whatever its status, or killed at its timeout)"),
              (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody, description = "the VE is not running"),
              (status = 429, body = crate::error::ErrorBody, description = "too many commands running")),
    security(("bearer" = [])))]
pub async fn exec(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<ExecBody>,
) -> ApiResult<Json<ExecResult>> {
    let id = caller.visible_ve(&app, &id).await?;
    caller.require(Role::Operator, "run commands in VEs")?;
    let result = async {
        let (args, timeout) = command_line(&caller, &id, &body)?;
        let rid = id.clone();
        let st = app.read(move |k| k.status(&rid)).await?;
        if !st.state.is_running() {
            return Err(ApiError::from(kennel_ve::VeError::NotRunning(
                id.to_string(),
            )));
        }
        let tenant = caller.0.tenant.as_ref().map(|t| t.as_str().to_string());
        let slot = claim(&id, tenant)?;
        let input = body.stdin.clone().unwrap_or_default().into_bytes();
        let cmd = app.cli.command(&args);
        // In a task of its own: a client that goes away does not leave
        // the command unwatched; it is still killed at its timeout.
        let ran = tokio::spawn(async move {
            let _slot = slot;
            run(cmd, input, timeout).await
        })
        .await
        .map_err(|e| ApiError::internal(format!("an exec task failed: {e}")))??;
        answer(&app, &caller, &id, ran).await
    }
    .await;
    app.audit
        .record(&caller, "ve.exec", Some(id.as_str()), &result);
    result.map(Json)
}

/// `kennel -q exec ... ID -- ARGV` and the timeout, checked.
fn command_line(
    caller: &Caller,
    id: &VeId,
    body: &ExecBody,
) -> ApiResult<(Vec<std::ffi::OsString>, Duration)> {
    let timeout = body.timeout_secs.unwrap_or(DEFAULT_TIMEOUT);
    if !(1..=MAX_TIMEOUT).contains(&timeout) {
        return Err(ApiError::bad_input(
            "timeout_secs: from 1 to 3600 seconds (an hour)",
        ));
    }
    match body.command.first() {
        None => return Err(ApiError::bad_input("command: name the program to run")),
        Some(p) if p.is_empty() => {
            return Err(ApiError::bad_input("command: the program's name is empty"))
        }
        Some(_) => {}
    }
    if body.command.len() > MAX_ARGS {
        return Err(ApiError::bad_input(format!(
            "command: at most {MAX_ARGS} arguments"
        )));
    }
    // Any bytes but NUL (a script for `sh -c` has newlines): they go
    // after `--`, where nothing is read as an option, straight to execve.
    if body
        .command
        .iter()
        .any(|a| a.contains('\0') || a.len() > MAX_ARG)
    {
        return Err(ApiError::bad_input(format!(
            "command: an argument may not hold NUL or be longer than {MAX_ARG} bytes"
        )));
    }
    for e in &body.env {
        if !e.contains('=') || e.starts_with('=') {
            return Err(ApiError::bad_input(format!(
                "env: '{}' is not KEY=value",
                e.escape_default()
            )));
        }
    }
    let mut args = KennelArgs::new(&["exec"])
        .opt("expect-uuid", caller.granted_uuid(id).as_deref())?
        .flag("no-tty", true)
        .opts("env", &body.env)?
        .opt("workdir", body.workdir.as_deref())?
        .positional(id.as_str())?
        .into_vec();
    args.push("--".into());
    args.extend(body.command.iter().map(Into::into));
    Ok((args, Duration::from_secs(timeout.into())))
}

/// What became of a `kennel exec` process.
struct Ran {
    status: std::process::ExitStatus,
    stdout: (Vec<u8>, u64),
    stderr: (Vec<u8>, u64),
    timed_out: bool,
    took: Duration,
}

/// Runs `kennel exec` with `input` on its stdin, keeping a bounded part
/// of its output, and ends it at `timeout`.
async fn run(
    mut cmd: tokio::process::Command,
    input: Vec<u8>,
    timeout: Duration,
) -> ApiResult<Ran> {
    let began = Instant::now();
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false);
    let mut child = cmd
        .spawn()
        .map_err(|e| ApiError::internal(format!("cannot run kennel exec: {e}")))?;
    let pid = child.id();
    let (Some(mut stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        let _ = child.start_kill();
        let _ = child.wait().await;
        return Err(ApiError::internal("kennel exec started without its pipes"));
    };
    let feed = async move {
        // A command that does not read its input closes it: not an error.
        let _ = stdin.write_all(&input).await;
        drop(stdin);
    };
    let work = async {
        let ((), out, err) = tokio::join!(feed, bounded(stdout), bounded(stderr));
        (out, err, child.wait().await)
    };
    tokio::pin!(work);
    let mut timed_out = false;
    let ended = match tokio::time::timeout(timeout, &mut work).await {
        Ok(done) => done,
        Err(_) => {
            timed_out = true;
            // `work` has not reaped the process (it would have ended):
            // the PID is still our child's.
            signal(pid, rustix::process::Signal::TERM);
            match tokio::time::timeout(TERM_GRACE, &mut work).await {
                Ok(done) => done,
                Err(_) => {
                    // The second signal: `kennel exec` kills the group.
                    signal(pid, rustix::process::Signal::HUP);
                    match tokio::time::timeout(KILL_WAIT, &mut work).await {
                        Ok(done) => done,
                        Err(_) => {
                            tracing::warn!("kennel exec (pid {pid:?}) did not end after its command was killed: killing it");
                            signal(pid, rustix::process::Signal::KILL);
                            tokio::time::timeout(KILL_WAIT, &mut work)
                                .await
                                .map_err(|_| {
                                    ApiError::internal("kennel exec did not end when killed")
                                })?
                        }
                    }
                }
            }
        }
    };
    let (stdout, stderr, status) = ended;
    let status = status.map_err(|e| ApiError::internal(format!("wait for kennel exec: {e}")))?;
    Ok(Ran {
        status,
        stdout: stdout.map_err(|e| ApiError::internal(format!("read the output: {e}")))?,
        stderr: stderr.map_err(|e| ApiError::internal(format!("read the output: {e}")))?,
        timed_out,
        took: began.elapsed(),
    })
}

/// Sends `sig` to our child `pid` (not yet reaped, so not reused).
fn signal(pid: Option<u32>, sig: rustix::process::Signal) {
    let pid = pid
        .and_then(|p| i32::try_from(p).ok())
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// The answer for a `kennel exec` that ended. Its exit status is the
/// command's; only when it says the VE is gone or stopped (4, 7) and the
/// VE indeed is, is the failure kennel's: the VE was re-made or stopped
/// between the check and the command.
async fn answer(app: &AppState, caller: &Caller, id: &VeId, ran: Ran) -> ApiResult<ExecResult> {
    let exit_status = ran.status.code();
    if let Some(code @ (4 | 7)) = exit_status {
        let rid = id.clone();
        let now = app.read(move |k| k.status(&rid)).await;
        match now {
            Ok(st) if !caller.0.sees_uuid(id, &st.config.uuid) => {
                return Err(ApiError::no_such_ve(id))
            }
            Ok(st) if code == 7 && !st.state.is_running() => {
                return Err(ApiError::from(kennel_ve::VeError::NotRunning(
                    id.to_string(),
                )))
            }
            Err(e) if e.code == "no_such_ve" => return Err(ApiError::no_such_ve(id)),
            _ => {}
        }
    }
    let signal = match exit_status {
        Some(s) if (129..=128 + 64).contains(&s) => Some(s - 128),
        Some(_) => None,
        None => ran.status.signal(),
    };
    Ok(ExecResult {
        exit_status,
        signal,
        timed_out: ran.timed_out,
        stdout: output(ran.stdout),
        stderr: output(ran.stderr),
        duration_ms: u64::try_from(ran.took.as_millis()).unwrap_or(u64::MAX),
    })
}
