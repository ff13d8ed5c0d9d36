//! `POST /v1/ves/{id}/exec`: one command in a running VE, its output
//! answered as JSON (a panel's "run this", a billing system's check).
//!
//! The command runs through the CLI's own `kennel exec --no-tty ID --
//! ARGV` (so it enters the VE exactly as an operator's does: the VE's
//! seccomp filter, cgroups and namespaces, no descriptor of ours). The VE
//! chose what that command does, so everything of it is bounded here:
//!
//! * **output:** at most [`MAX_STREAM`] bytes of stdout and of stderr are
//!   kept; the rest is read and thrown away (the command is not made to
//!   fail with `EPIPE`), so a command printing without end costs this
//!   service a fixed amount of memory;
//! * **time:** at `timeout_secs` the `kennel exec` process (ours, by its
//!   PID) gets SIGTERM, which it passes on to the command's process group;
//!   [`TERM_GRACE`] later a second signal, on which it kills the group and
//!   waits for it; should it still not end, it is killed itself;
//! * **number:** at most [`MAX_EXECS`] commands at once over all VEs,
//!   [`MAX_EXECS_PER_VE`] in one VE and [`MAX_EXECS_PER_TENANT`] for one
//!   tenant (429 beyond; a tenant with many VEs cannot take every place),
//!   apart from the bound on changes: a long command must not make its VE
//!   "busy" for a restart.

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use kennel_api::Role;
use kennel_ve::VeId;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use utoipa::ToSchema;

use super::args::KennelArgs;
use crate::access::Caller;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};

/// Output kept of each of stdout and stderr.
pub const MAX_STREAM: usize = 1 << 20;
/// Commands running at once over all VEs.
pub const MAX_EXECS: usize = 32;
/// Commands running at once in one VE.
pub const MAX_EXECS_PER_VE: usize = 4;
/// Commands running at once for one tenant, over its VEs.
pub const MAX_EXECS_PER_TENANT: usize = 8;
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

/// How one output stream is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// `data` is the bytes themselves (they were UTF-8).
    Utf8,
    /// `data` is the bytes in standard base64 (they were not UTF-8).
    Base64,
}

/// What the command wrote on one stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct Output {
    pub data: String,
    pub encoding: Encoding,
    /// Bytes the command wrote in all (more than `data` holds when
    /// truncated).
    pub bytes: u64,
    /// Only the first 1 MiB is kept.
    pub truncated: bool,
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

/// Commands running: a bound over all VEs, and counts per VE and per
/// tenant.
struct Running {
    slots: Arc<Semaphore>,
    counts: Mutex<HashMap<Key, usize>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Ve(VeId),
    Tenant(String),
}

fn running() -> &'static Running {
    static RUNNING: OnceLock<Running> = OnceLock::new();
    RUNNING.get_or_init(|| Running {
        slots: Arc::new(Semaphore::new(MAX_EXECS)),
        counts: Mutex::new(HashMap::new()),
    })
}

/// One command's place; given back when dropped.
struct Slot {
    keys: Vec<Key>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = running().counts.lock().unwrap_or_else(|e| e.into_inner());
        for k in &self.keys {
            if let Some(n) = counts.get_mut(k) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    counts.remove(k);
                }
            }
        }
    }
}

/// A place for a command in VE `id` for `tenant` (none: a host caller).
fn claim(id: &VeId, tenant: Option<String>) -> ApiResult<Slot> {
    let busy = |m: String| ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", m);
    let r = running();
    let permit = Arc::clone(&r.slots).try_acquire_owned().map_err(|_| {
        busy(format!(
            "{MAX_EXECS} commands are running in VEs: try again in a moment"
        ))
    })?;
    let mut keys = vec![(Key::Ve(id.clone()), MAX_EXECS_PER_VE)];
    if let Some(t) = tenant {
        keys.push((Key::Tenant(t), MAX_EXECS_PER_TENANT));
    }
    let mut counts = r.counts.lock().unwrap_or_else(|e| e.into_inner());
    for (k, max) in &keys {
        if counts.get(k).copied().unwrap_or(0) >= *max {
            return Err(busy(match k {
                Key::Ve(_) => {
                    format!("{max} commands are running in VE {id}: try again when one has ended")
                }
                Key::Tenant(_) => format!(
                    "{max} commands of this tenant are running: try again when one has ended"
                ),
            }));
        }
    }
    for (k, _) in &keys {
        *counts.entry(k.clone()).or_insert(0) += 1;
    }
    Ok(Slot {
        keys: keys.into_iter().map(|(k, _)| k).collect(),
        _permit: permit,
    })
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

/// Reads `from` to its end, keeping the first [`MAX_STREAM`] bytes;
/// returns them and how many there were in all.
async fn bounded(mut from: impl AsyncRead + Unpin) -> std::io::Result<(Vec<u8>, u64)> {
    let mut kept = Vec::new();
    let mut total = 0u64;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return Ok((kept, total));
        }
        total += n as u64;
        let room = MAX_STREAM.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
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

/// A stream's bytes as text when they are UTF-8 (a character cut by the
/// bound is dropped), else as base64.
fn output((bytes, total): (Vec<u8>, u64)) -> Output {
    let truncated = total > bytes.len() as u64;
    let text = match std::str::from_utf8(&bytes) {
        Ok(s) => Some(s),
        // Only the end is cut mid-character.
        Err(e) if truncated && e.error_len().is_none() => {
            std::str::from_utf8(&bytes[..e.valid_up_to()]).ok()
        }
        Err(_) => None,
    };
    let (data, encoding) = match text {
        Some(s) => (s.to_string(), Encoding::Utf8),
        None => (base64(&bytes), Encoding::Base64),
    };
    Output {
        data,
        encoding,
        bytes: total,
        truncated,
    }
}

/// Standard base64 (RFC 4648), padded.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_the_standard_one() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), coded);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn output_is_text_when_it_can_be() {
        let o = output((b"hi\n".to_vec(), 3));
        assert_eq!(
            (o.data.as_str(), o.encoding, o.truncated),
            ("hi\n", Encoding::Utf8, false)
        );
        let o = output((vec![0xff, b'a'], 2));
        assert_eq!((o.data.as_str(), o.encoding), ("/2E=", Encoding::Base64));
        // "é" cut in two by the bound: the text up to it.
        let o = output((vec![b'a', 0xc3], 10));
        assert_eq!(
            (o.data.as_str(), o.encoding, o.truncated),
            ("a", Encoding::Utf8, true)
        );
    }

    #[test]
    fn commands_are_bounded_per_ve_and_per_tenant() {
        let a = VeId::parse("exec-test-a").expect("id");
        let held: Vec<Slot> = (0..MAX_EXECS_PER_VE)
            .map(|_| claim(&a, None).expect("a place"))
            .collect();
        assert_eq!(
            claim(&a, None).err().map(|e| e.code),
            Some("too_many_requests")
        );
        drop(held);
        assert!(claim(&a, None).is_ok(), "given back");
        let t = || Some("exec-test-tenant".to_string());
        let held: Vec<Slot> = (0..MAX_EXECS_PER_TENANT)
            .map(|n| {
                let id = VeId::parse(&format!("exec-test-t{n}")).expect("id");
                claim(&id, t()).expect("a place")
            })
            .collect();
        let more = VeId::parse("exec-test-more").expect("id");
        assert_eq!(
            claim(&more, t()).err().map(|e| e.code),
            Some("too_many_requests"),
            "the tenant's share is taken"
        );
        assert!(claim(&more, None).is_ok(), "the host's is not");
        drop(held);
        assert!(claim(&more, t()).is_ok(), "given back");
    }
}
