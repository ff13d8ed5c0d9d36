//! `PUT /v1/backups/{name}`: a backup made elsewhere (another host's
//! `kennel backup`, or a download from this API) uploaded into the
//! service's backup directory, to restore from (`POST
//! /v1/backups/{name}/restore`): how a panel moves a VE between hosts.
//! Host admins only: whose VE it was is not known here, so its sidecar
//! names none and no tenant ever sees it.
//!
//! The body is streamed to a hidden file (as a template upload is: at
//! most `--max-upload` bytes, a space reserve, removed however it ends),
//! checked by `kennel backup verify` as a job (a large backup takes a
//! while), and only then given its name. An incremental verifies only
//! with its base beside it: upload a chain oldest first.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;

use super::args::KennelArgs;
use super::backup_dir::{self as store, Sidecar};
use super::upload::{announced_too_large, stream_body, Upload};
use crate::access::Caller;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::jobs::Job;

/// Uploads a backup under `name` (host admins): 202 with the job that
/// verifies it; once it succeeds, the backup is listed.
#[utoipa::path(put, path = "/v1/backups/{name}", tag = "backups",
    params(("name" = String, Path, description = "the backup's name: a-z, A-Z, 0-9, '.', '_', '-', ending in .kbk")),
    request_body(content = super::upload::Tarball, content_type = "application/octet-stream",
                 description = "the backup file (`kennel backup`'s .kbk)"),
    responses((status = 202, body = Job), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody, description = "a backup of that name exists"),
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
    caller.require_host_admin("upload backups")?;
    let received = receive(&app, &name, &headers, body).await;
    if received.is_err() {
        app.audit
            .record(&caller, "backup.upload", Some(&name), &received);
    }
    let file = received?;
    let args = KennelArgs::new(&["backup", "verify"])
        .positional(&file.path().to_string_lossy())?
        .into_vec();
    let (app2, caller2) = (app.clone(), caller.clone());
    let what = format!("backup.upload {name}");
    let job = app.jobs.spawn(what, caller.0.token.clone(), async move {
        let r = match app2.cli.run(args).await {
            Ok(_) => keep(&app2.settings.backup_dir, &name, file),
            Err(e) => Err(e),
        };
        app2.audit
            .record(&caller2, "backup.upload", Some(&name), &r);
        r
    });
    Ok((StatusCode::ACCEPTED, Json(job)))
}

async fn receive(app: &AppState, name: &str, headers: &HeaderMap, body: Body) -> ApiResult<Upload> {
    if !store::valid_name(name) {
        return Err(ApiError::bad_input(store::NAME_RULE));
    }
    announced_too_large(headers, app.settings.max_upload)?;
    let dir = &app.settings.backup_dir;
    if taken(dir, name) {
        return Err(exists(name));
    }
    stream_body(
        dir,
        &format!(".{name}.upload"),
        body,
        app.settings.max_upload,
    )
    .await
}

/// Whether `name` or its sidecar is there (a backup, or one being made).
fn taken(dir: &std::path::Path, name: &str) -> bool {
    std::fs::symlink_metadata(dir.join(name)).is_ok()
        || store::sidecar(dir, name).map_or(true, |s| s.is_some())
}

fn exists(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "exists",
        format!("backup {name} exists: delete it first, or upload under another name"),
    )
}

/// The verified upload under its name, with a sidecar that names no VE
/// (written first: a sidecar alone is listed as nothing).
fn keep(dir: &std::path::Path, name: &str, file: Upload) -> ApiResult<()> {
    let host = |e: std::io::Error| ApiError::internal(format!("backup {name}: {e}"));
    if taken(dir, name) {
        return Err(exists(name));
    }
    let sidecar = Sidecar {
        ve: String::new(),
        uuid: String::new(),
        created: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        since: None,
    };
    store::write_sidecar(dir, name, &sidecar).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => exists(name),
        _ => host(e),
    })?;
    if let Err(e) = file.keep_as(&store::path(dir, name)) {
        let _ = store::remove_sidecar(dir, name);
        return Err(host(e));
    }
    Ok(())
}
