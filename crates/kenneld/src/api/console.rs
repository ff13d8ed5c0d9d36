//! `/v1/ves/{id}/console` and `/v1/ves/{id}/shell`: a VE's console (its
//! getty) and a root shell in it, over a WebSocket, for a web panel.
//!
//! Each session runs the CLI's own `kennel console ID` or `kennel enter
//! ID` on a fresh pseudo-terminal of the host that this service holds the
//! master of, as a new session with that terminal as its controlling one
//! (`setsid --ctty`). Those commands are what a person at a terminal
//! runs, with every guard they have: the VE only ever sees a terminal of
//! its own, never this one (crates/kennel-runtime/src/join). Bytes from
//! the browser (binary messages) go to the terminal; a text message
//! `{"cols": C, "rows": R}` resizes it; what the terminal prints goes
//! back as binary messages. Closing the WebSocket hangs the terminal up,
//! which ends the command.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::process::Stdio;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::Response;
use kennel_api::Role;
use rustix::fs::OFlags;
use rustix::pty::OpenptFlags;
use serde::Deserialize;
use tokio::io::unix::AsyncFd;

use crate::access::slots::SlotKind;
use crate::access::Caller;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};

/// A browser message is at most this long.
const MAX_MESSAGE: usize = 64 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Console,
    Shell,
}

/// The VE's console (its getty) over a WebSocket (operators).
#[utoipa::path(get, path = "/v1/ves/{id}/console", tag = "ves",
    params(("id" = String, Path, description = "VE id")),
    responses((status = 101, description = "WebSocket: binary = terminal bytes; text {\"cols\",\"rows\"} = resize"),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody),
              (status = 429, body = crate::error::ErrorBody, description = "as many sessions open as the token, or the host, may have")),
    security(("bearer" = [])))]
pub async fn console(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    session(app, caller, id, &headers, ws, Kind::Console).await
}

/// A root shell in the VE over a WebSocket (operators).
#[utoipa::path(get, path = "/v1/ves/{id}/shell", tag = "ves",
    params(("id" = String, Path, description = "VE id")),
    responses((status = 101, description = "WebSocket: binary = terminal bytes; text {\"cols\",\"rows\"} = resize"),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody),
              (status = 429, body = crate::error::ErrorBody, description = "as many sessions open as the token, or the host, may have")),
    security(("bearer" = [])))]
pub async fn shell(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    session(app, caller, id, &headers, ws, Kind::Shell).await
}

async fn session(
    app: AppState,
    caller: Caller,
    id: String,
    headers: &HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    kind: Kind,
) -> ApiResult<Response> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let id = caller.visible_ve(&app, &id).await?;
    caller.require(Role::Operator, "open a VE's console or shell")?;
    // Checked after the VE and the role (a VE the caller may not see
    // answers 404 whatever the request's headers), and before anything
    // is recorded: a plain GET opens nothing.
    let ws = ws.map_err(|e| ApiError::bad_input(format!("not a WebSocket request: {e}")))?;
    let rid = id.clone();
    let st = app.read(move |k| k.status(&rid)).await?;
    let result = if st.state.is_running() {
        Ok(())
    } else {
        Err(ApiError::from(kennel_ve::VeError::NotRunning(
            id.to_string(),
        )))
    };
    let action = match kind {
        Kind::Console => "ve.console",
        Kind::Shell => "ve.shell",
    };
    let result = result.and_then(|()| app.slots.take(caller.0.token.as_ref(), SlotKind::Terminal));
    app.audit
        .record(&caller, action, Some(id.as_str()), &result);
    let slot = result?;
    let cmd = match kind {
        Kind::Console => "console",
        Kind::Shell => "enter",
    };
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    if let Some(u) = caller.granted_uuid(&id) {
        args.push(format!("--expect-uuid={u}").into());
    }
    args.extend([cmd.into(), id.as_str().into()]);
    let command = app.cli.command(&args);
    let session = Session {
        app: app.clone(),
        caller,
        authorization,
        id: id.clone(),
    };
    Ok(ws
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| async move {
            let _slot = slot;
            if let Err(e) = relay(socket, command, session).await {
                tracing::warn!("VE {id}: {cmd} session: {e}");
            }
        }))
}

/// A host pseudo-terminal: the master (non-blocking, watched by tokio)
/// and the path of its other end.
fn open_pty() -> std::io::Result<(OwnedFd, std::path::PathBuf)> {
    // Close-on-exec from the start: another session's command, or a
    // worker spawned this moment, must never inherit this master.
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    let name = rustix::pty::ptsname(&master, Vec::new())?;
    let flags = rustix::fs::fcntl_getfl(&master)?;
    rustix::fs::fcntl_setfl(&master, flags | OFlags::NONBLOCK)?;
    let path = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(name.as_bytes()));
    Ok((master, path))
}

#[derive(Debug, Deserialize)]
struct Resize {
    cols: u16,
    rows: u16,
}

/// Who a session is for, to check again while it lasts.
struct Session {
    app: AppState,
    caller: Caller,
    authorization: Option<String>,
    id: kennel_ve::VeId,
}

impl Session {
    /// Whether the session may go on: its token still valid, still an
    /// operator's, and the VE still the one it may see (fail closed).
    async fn still_allowed(&self) -> bool {
        let Ok(p) = self
            .app
            .access
            .recheck(self.authorization.as_deref(), self.caller.1)
            .await
        else {
            return false;
        };
        if !p.may(Role::Operator) || !p.sees(&self.id) {
            return false;
        }
        let fresh = Caller(p, self.caller.1);
        fresh.visible_ve(&self.app, self.id.as_str()).await.is_ok()
    }
}

/// How often a session's token and grant are checked again.
const RECHECK: std::time::Duration = std::time::Duration::from_secs(5);

async fn relay(
    mut socket: WebSocket,
    mut command: tokio::process::Command,
    session: Session,
) -> std::io::Result<()> {
    let (master, slave_path) = open_pty()?;
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(&slave_path)?;
    let std_cmd = command.as_std_mut();
    let program = std_cmd.get_program().to_owned();
    let args: Vec<_> = std_cmd.get_args().map(ToOwned::to_owned).collect();
    // By its path, with an environment of its own: nothing of the
    // service's (its log level, say) reaches the tenant's terminal.
    let mut setsid = tokio::process::Command::new("/usr/bin/setsid");
    setsid
        .arg("--ctty")
        .arg("--wait")
        .arg(program)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("TERM", "xterm-256color")
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::from(slave.try_clone()?))
        .stdout(Stdio::from(slave.try_clone()?))
        .stderr(Stdio::from(slave))
        .kill_on_drop(true);
    let mut child = setsid.spawn()?;
    // SAFETY: the `OwnedFd` is moved into the `AsyncFd`, which owns it
    // from here on: the descriptor stays open, and the same, until the
    // `AsyncFd` is dropped.
    let master = unsafe { AsyncFd::register(master) }.map_err(|e| e.into_parts().1)?;
    let mut buf = vec![0u8; 16 << 10];
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.tick().await;
    loop {
        tokio::select! {
            _ = recheck.tick() => {
                if !session.still_allowed().await {
                    tracing::info!("VE {}: a session of {} ended: its token or grant changed", session.id, session.caller.0.who());
                    break;
                }
            }
            msg = socket.recv() => match msg {
                Some(Ok(Message::Binary(b))) => write_all(&master, &b).await?,
                Some(Ok(Message::Text(t))) => {
                    if let Ok(r) = serde_json::from_str::<Resize>(t.as_str()) {
                        let ws = rustix::termios::Winsize { ws_row: r.rows, ws_col: r.cols, ws_xpixel: 0, ws_ypixel: 0 };
                        let _ = rustix::termios::tcsetwinsize(master.get_ref(), ws);
                    } else {
                        write_all(&master, t.as_bytes()).await?;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            ready = master.readable() => {
                let mut guard = ready?;
                match guard.try_io(|fd| rustix::io::read(fd.get_ref().as_fd(), &mut buf).map_err(Into::into)) {
                    Ok(Ok(0)) | Ok(Err(_)) => break, // EIO: the command ended
                    Ok(Ok(n)) => {
                        if socket.send(Message::Binary(buf[..n].to_vec().into())).await.is_err() {
                            break;
                        }
                    }
                    Err(_would_block) => continue,
                }
            }
            _ = child.wait() => {
                // Say what is left, then close.
                break;
            }
        }
    }
    drop(master);
    let _ = child.start_kill();
    let _ = child.wait().await;
    let _ = socket.send(Message::Close(None)).await;
    Ok(())
}

/// Writes `data` to the terminal, waiting while it is full.
async fn write_all(master: &AsyncFd<OwnedFd>, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        let mut guard = master.writable().await?;
        match guard.try_io(|fd| rustix::io::write(fd.get_ref().as_fd(), data).map_err(Into::into)) {
            Ok(Ok(n)) => data = &data[n..],
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
    Ok(())
}
