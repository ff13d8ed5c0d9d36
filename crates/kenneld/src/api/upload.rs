//! `PUT /v1/templates/{name}`: a root filesystem tarball (`.tar`,
//! `.tar.gz`, `.tar.zst`: told by its first bytes) sent as the request
//! body and imported as a template (`kennel template import`), as a job.
//! Host admins only.
//!
//! The body is the one request larger than 1 MiB the service takes, so it
//! is bounded on its own: at most `--max-upload` bytes (413 beyond), and
//! none is taken while its filesystem has less than 5% or 1 GiB free (it
//! is the state root's, often the host's own). It is streamed to a file
//! of the service's own directory (`<lib>/api/uploads`, 0700), never held
//! in memory, and that file is removed however the upload or the import
//! ends. The tarball's contents are the import's to check: it unpacks as
//! any template import does (docs/SECURITY.md, "Templates").

use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::args::KennelArgs;
use super::backup_dir;
use crate::access::Caller;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::jobs::Job;

/// The largest upload taken by default: 8 GiB.
pub const MAX_UPLOAD: u64 = 8 << 30;
/// Free space the filesystem keeps at least: this share (percent) and
/// this many bytes; checked before and every [`CHECK_EVERY`] bytes.
const RESERVE_PERCENT: u64 = 5;
const RESERVE_BYTES: u64 = 1 << 30;
const CHECK_EVERY: u64 = 64 << 20;

/// The request body, as the OpenAPI document names it: bytes.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // Only its schema is used; the body is streamed.
pub struct Tarball(Vec<u8>);

/// Uploads under way, to name their files apart.
static NEXT: AtomicU64 = AtomicU64::new(1);

/// Imports the request body as template `name` (host admins): 202 with
/// the job.
#[utoipa::path(put, path = "/v1/templates/{name}", tag = "templates",
    params(("name" = String, Path, description = "the new template's name")),
    request_body(content = Tarball, content_type = "application/octet-stream",
                 description = "a root filesystem tarball: .tar, .tar.gz or .tar.zst"),
    responses((status = 202, body = Job), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody, description = "a template of that name exists"),
              (status = 413, body = crate::error::ErrorBody, description = "larger than --max-upload"),
              (status = 507, body = crate::error::ErrorBody, description = "too little free space")),
    security(("bearer" = [])))]
pub async fn upload(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<Job>)> {
    caller.require_host_admin("import templates")?;
    let received = match announced_too_large(&headers, app.settings.max_upload) {
        Ok(()) => receive(&app, &name, body).await,
        Err(e) => Err(e),
    };
    if received.is_err() {
        app.audit
            .record(&caller, "template.import", Some(&name), &received);
    }
    let (args, file) = received?;
    let (app2, caller2, what) = (
        app.clone(),
        caller.clone(),
        format!("template.import {name}"),
    );
    let job = app
        .jobs
        .spawn(what.clone(), caller.0.token.clone(), async move {
            let r = app2.cli.run(args).await.map(|_| ());
            drop(file);
            app2.audit
                .record(&caller2, "template.import", Some(&what), &r);
            r
        });
    Ok((StatusCode::ACCEPTED, Json(job)))
}

/// Checks the name, then streams the body to a file of its own: the
/// import's command line and that file (removed when dropped).
async fn receive(
    app: &AppState,
    name: &str,
    body: Body,
) -> ApiResult<(Vec<std::ffi::OsString>, Upload)> {
    // The CLI's own rule, before a byte of the body is read.
    kennel_storage::template::validate_name(name)
        .map_err(|e| ApiError::bad_input(e.to_string()))?;
    let args = KennelArgs::new(&["template", "import"]).positional(name)?;
    let wanted = name.to_string();
    let exists = app
        .read(move |k| {
            Ok(k.template_store()
                .list()
                .map_err(kennel_ve::VeError::from)?
                .iter()
                .any(|t| t.meta.name == wanted))
        })
        .await?;
    if exists {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "exists",
            format!("template {name} exists: remove it first, or choose another name"),
        ));
    }
    let dir = app.kennel.paths().lib.join("api").join("uploads");
    let file = stream_body(&dir, ".upload", body, app.settings.max_upload).await?;
    let mut args = args.into_vec();
    args.push(file.0.clone().into());
    Ok((args, file))
}

/// The request's body as a new file in `dir` (the service's own, made
/// 0700 if missing), named `PREFIX-PID-N`: at most `max` bytes, none
/// while the filesystem is short of its reserve. Removed when the guard
/// returned is dropped, or on any error.
pub(super) async fn stream_body(
    dir: &FsPath,
    prefix: &str,
    body: Body,
    max: u64,
) -> ApiResult<Upload> {
    backup_dir::ensure(dir).map_err(|e| host_error(dir, &e))?;
    enough_space(dir)?;
    let file = Upload(dir.join(format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )));
    let mut out = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&file.0)
        .await
        .map_err(|e| host_error(&file.0, &e))?;
    let (mut total, mut checked) = (0u64, 0u64);
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_input(format!("the upload broke off: {e}")))?;
        total += chunk.len() as u64;
        if total > max {
            return Err(too_large(max));
        }
        if total - checked >= CHECK_EVERY {
            checked = total;
            enough_space(dir)?;
        }
        out.write_all(&chunk)
            .await
            .map_err(|e| host_error(&file.0, &e))?;
    }
    if total == 0 {
        return Err(ApiError::bad_input(
            "the request has no body: send the file as the body",
        ));
    }
    out.sync_all().await.map_err(|e| host_error(&file.0, &e))?;
    Ok(file)
}

/// A body announced larger than `max` is refused before a byte of it is
/// read.
pub(super) fn announced_too_large(headers: &HeaderMap, max: u64) -> ApiResult<()> {
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match announced {
        Some(n) if n > max => Err(too_large(max)),
        _ => Ok(()),
    }
}

/// Removes the upload files a kenneld that died left (template tarballs
/// in `<lib>/api/uploads`, backups in the backup directory, by the names
/// only uploads have): they would count against the space reserve, and
/// no request can reach them.
pub fn sweep_uploads(lib: &FsPath, backup_dir: &FsPath) {
    let uploads = lib.join("api").join("uploads");
    for (dir, is_upload) in [
        (
            &uploads,
            (|n: &str| n.starts_with(".upload-")) as fn(&str) -> bool,
        ),
        (&backup_dir.to_path_buf(), |n: &str| {
            n.starts_with('.') && n.contains(".upload-")
        }),
    ] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            if name.to_str().is_some_and(is_upload) {
                match std::fs::remove_file(e.path()) {
                    Ok(()) => tracing::info!(
                        "removed {}, an upload left half-written",
                        e.path().display()
                    ),
                    Err(err) => tracing::warn!("cannot remove {}: {err}", e.path().display()),
                }
            }
        }
    }
}

/// An uploaded file, removed when dropped.
#[derive(Debug)]
pub(super) struct Upload(PathBuf);

impl Upload {
    pub(super) fn path(&self) -> &FsPath {
        &self.0
    }

    /// Moves the file to `to` (in the same directory) and keeps it.
    pub(super) fn keep_as(mut self, to: &FsPath) -> std::io::Result<()> {
        std::fs::rename(&self.0, to)?;
        self.0 = PathBuf::new();
        Ok(())
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.0.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!(
            "the tarball is larger than {} (kenneld --max-upload)",
            kennel_ve::units::human(max)
        ),
    )
}

/// 507 when the upload's filesystem is short of its reserve.
fn enough_space(dir: &FsPath) -> ApiResult<()> {
    let st = rustix::fs::statvfs(dir).map_err(|e| host_error(dir, &e.into()))?;
    let unit = st.f_frsize.max(1);
    let free = st.f_bavail.saturating_mul(unit);
    let reserve = (st.f_blocks.saturating_mul(unit) / 100 * RESERVE_PERCENT).max(RESERVE_BYTES);
    if free < reserve {
        return Err(ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "insufficient_storage",
            format!(
                "{} has {} free, less than the {} kept free: free some space first",
                dir.display(),
                kennel_ve::units::human(free),
                kennel_ve::units::human(reserve)
            ),
        ));
    }
    Ok(())
}

fn host_error(path: &FsPath, e: &std::io::Error) -> ApiError {
    ApiError::internal(format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_uploads_left_half_written_are_swept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lib = dir.path().join("lib");
        let uploads = lib.join("api/uploads");
        let backups = dir.path().join("backups");
        std::fs::create_dir_all(&uploads).expect("mkdir");
        std::fs::create_dir_all(&backups).expect("mkdir");
        let files = [
            (uploads.join(".upload-7-1"), false),
            (uploads.join("keep"), true),
            (backups.join(".moved.kbk.upload-7-2"), false),
            (backups.join("moved.kbk"), true),
            (backups.join("moved.json"), true),
            (backups.join(".other.kbk.tmp-9"), true),
        ];
        for (f, _) in &files {
            std::fs::write(f, b"x").expect("write");
        }
        sweep_uploads(&lib, &backups);
        for (f, kept) in &files {
            assert_eq!(f.exists(), *kept, "{}", f.display());
        }
    }
}
