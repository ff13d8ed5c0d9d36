//! Backups through the API: `POST /v1/ves/{id}/backups` runs `kennel
//! backup` as a job into kenneld's own directory (backup_dir.rs), and
//! `/v1/backups` lists, downloads, deletes and restores what is there.
//! Its own file because a backup outlives its VE and is named by the
//! service, not the client: whose it is comes from the sidecar kenneld
//! wrote (the VE's uuid), and a tenant sees only its own VEs' backups,
//! any other answering as a missing one (404).

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, Response, StatusCode};
use axum::Json;
use kennel_api::Role;
use kennel_ve::VeId;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use utoipa::{IntoParams, ToSchema};

use super::args::KennelArgs;
use super::backup_dir::{self as store, Entry, Sidecar};
use crate::access::Caller;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::jobs::Job;

/// A backup kept by the service.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackupBody {
    /// Its name: `<ve>-<uuid8>-<UTC time>.kbk`.
    pub name: String,
    /// The VE it is of (its id then).
    pub ve: String,
    /// RFC 3339.
    pub created: String,
    /// Bytes.
    pub size: u64,
    /// For an incremental: the backup it is on (a restore or a download
    /// needs that one too).
    pub incremental_since: Option<String>,
}

fn body(e: Entry) -> BackupBody {
    BackupBody {
        name: e.name,
        ve: e.sidecar.ve,
        created: e.sidecar.created,
        size: e.size,
        incremental_since: e.sidecar.since,
    }
}

/// A backup being made: its job, and the name it will have.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackupJob {
    #[serde(flatten)]
    pub job: Job,
    pub backup: String,
}

async fn blocking<T, F>(f: F) -> ApiResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> std::io::Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("the backup directory: {e}")))?
        .map_err(|e| ApiError::internal(format!("the backup directory: {e}")))
}

fn no_such_backup(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no backup {name}"),
    )
}

/// A backup of a VE the caller sees; an uploaded one (of no VE known
/// here) only by the host's own tokens.
fn sees(caller: &Caller, s: &Sidecar) -> bool {
    if s.ve.is_empty() {
        return caller.0.ves.is_none();
    }
    VeId::parse(&s.ve).is_ok_and(|id| caller.0.sees_uuid(&id, &s.uuid))
}

/// Backup `name`, if it is complete and the caller may see it; every
/// other name answers alike (404), a malformed one 400.
async fn visible(app: &AppState, caller: &Caller, name: &str) -> ApiResult<Entry> {
    if !store::valid_name(name) {
        return Err(ApiError::bad_input(store::NAME_RULE));
    }
    let (dir, n) = (app.settings.backup_dir.clone(), name.to_string());
    match blocking(move || store::entry(&dir, &n)).await? {
        Some(e) if sees(caller, &e.sidecar) => Ok(e),
        _ => Err(no_such_backup(name)),
    }
}

/// A backup to make.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBackup {
    /// Incremental: only what changed since this earlier backup of the
    /// same VE (a name from `GET /v1/backups`). Default: a full backup.
    pub incremental_since: Option<String>,
}

/// Backs up a VE as a job (operators) into the service's backup
/// directory: 202 with the job and the backup's name. Refused (507) when
/// that directory's filesystem is nearly full, and (409) when the VE has
/// as many backups kept as one VE may (16 unless `--backups-per-ve`).
#[utoipa::path(post, path = "/v1/ves/{id}/backups", tag = "backups", request_body = CreateBackup,
    params(("id" = String, Path, description = "VE id")),
    responses((status = 202, body = BackupJob), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody, description = "a backup of the VE is under way (`busy`), or it has as many backups kept as it may (`too_many_backups`, `--backups-per-ve`)"),
              (status = 429, body = crate::error::ErrorBody, description = "4 backups are under way"),
              (status = 507, body = crate::error::ErrorBody, description = "the backup directory's filesystem is nearly full")),
    security(("bearer" = [])))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<CreateBackup>,
) -> ApiResult<(StatusCode, Json<BackupJob>)> {
    let id = caller.visible_ve(&app, &id).await?;
    caller.require(Role::Operator, "back up VEs")?;
    let rid = id.clone();
    let uuid = app.read(move |k| Ok(k.config(&rid)?.uuid)).await?;
    if !caller.0.sees_uuid(&id, &uuid) {
        return Err(ApiError::no_such_ve(&id));
    }
    let dir = app.settings.backup_dir.clone();
    if let Some(base) = &req.incremental_since {
        let b = visible(&app, &caller, base).await?;
        if b.sidecar.uuid != uuid {
            return Err(ApiError::bad_input(format!(
                "incremental_since: {base} is not a backup of VE {id}"
            )));
        }
    }
    let d = dir.clone();
    blocking(move || {
        store::ensure(&d)?;
        store::check_space(&d)
    })
    .await?
    .map_err(|m| ApiError::new(StatusCode::INSUFFICIENT_STORAGE, "insufficient_storage", m))?;
    let claim = app.backups.claim(&id)?;
    // Counted under the claim (one backup of a VE at a time), so two
    // requests cannot both take the last place.
    let (d, u, most) = (dir.clone(), uuid.clone(), app.settings.backups_per_ve);
    if blocking(move || store::count_of(&d, &u)).await? >= most {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "too_many_backups",
            format!("VE {id} has {most} backups kept, its most: delete one first"),
        ));
    }
    let name = store::new_name(id.as_str(), &uuid);
    let since_path = req
        .incremental_since
        .as_deref()
        .map(|b| store::path(&dir, b).to_string_lossy().into_owned());
    let file = store::path(&dir, &name).to_string_lossy().into_owned();
    // The VE backed up must be the one the sidecar names.
    let args = KennelArgs::new(&["backup"])
        .opt("expect-uuid", Some(&uuid))?
        .opt("since", since_path.as_deref())?
        .positional(id.as_str())?
        .positional(&file)?;
    let sidecar = Sidecar {
        ve: id.to_string(),
        uuid,
        created: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        since: req.incremental_since.clone(),
    };
    let (d, n) = (dir.clone(), name.clone());
    blocking(move || store::write_sidecar(&d, &n, &sidecar)).await?;
    let (app2, caller2, target) = (app.clone(), caller.clone(), format!("{id}/{name}"));
    let (d, n) = (dir, name.clone());
    let job = app.jobs.spawn_with(
        format!("ve.backup {target}"),
        caller.0.token.clone(),
        |progress| async move {
            let _claim = claim;
            let run = app2.cli.run(args.into_vec());
            tokio::pin!(run);
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let r = loop {
                tokio::select! {
                    r = &mut run => break r.map(|_| ()),
                    _ = tick.tick() => {
                        let (d, n) = (d.clone(), n.clone());
                        if let Ok(bytes) = tokio::task::spawn_blocking(move || store::partial_size(&d, &n)).await {
                            if bytes > 0 {
                                progress.say(format!("{} written", kennel_ve::units::human(bytes)));
                            }
                        }
                    }
                }
            };
            if r.is_err() {
                // A failed backup leaves no file; its sidecar goes too.
                let _ = blocking(move || store::remove_sidecar(&d, &n)).await;
            }
            app2.audit.record(&caller2, "ve.backup", Some(&target), &r);
            r
        },
    );
    Ok((StatusCode::ACCEPTED, Json(BackupJob { job, backup: name })))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only the backups of this VE id.
    pub ve: Option<String>,
}

/// The backups the caller may see (a tenant: its own VEs'), oldest first.
#[utoipa::path(get, path = "/v1/backups", tag = "backups", params(ListQuery),
    responses((status = 200, body = [BackupBody])),
    security(("bearer" = [])))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<BackupBody>>> {
    let dir = app.settings.backup_dir.clone();
    let all = blocking(move || store::list(&dir)).await?;
    Ok(Json(
        all.into_iter()
            .filter(|e| sees(&caller, &e.sidecar))
            .filter(|e| q.ve.as_ref().is_none_or(|v| *v == e.sidecar.ve))
            .map(body)
            .collect(),
    ))
}

/// Downloads a backup (operators of its VE): the file as it is, streamed.
#[utoipa::path(get, path = "/v1/backups/{name}", tag = "backups",
    params(("name" = String, Path, description = "backup name")),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>,
               description = "the backup, with its Content-Length"),
              (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn download(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Response<Body>> {
    let e = visible(&app, &caller, &name).await?;
    caller.require(Role::Operator, "download backups")?;
    let (dir, n) = (app.settings.backup_dir.clone(), e.name.clone());
    let opened = blocking(move || {
        let f = store::open(&dir, &n)?;
        let len = f.metadata()?.len();
        Ok((f, len))
    })
    .await;
    // Who took a VE's whole files is worth a line, though a read.
    app.audit
        .record(&caller, "backup.download", Some(&name), &opened);
    let (f, len) = opened?;
    let stream = futures_util::stream::unfold(Some(tokio::fs::File::from_std(f)), |f| async move {
        let mut f = f?;
        let mut buf = vec![0u8; 256 << 10];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(buf)), Some(f)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    let mut r = Response::new(Body::from_stream(stream));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    // Already compressed: the service's compression leaves it alone.
    h.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

/// Deletes a backup (operators of its VE); refused (409 `in_use`) while
/// an incremental backup is on it.
#[utoipa::path(delete, path = "/v1/backups/{name}", tag = "backups",
    params(("name" = String, Path, description = "backup name")),
    responses((status = 204), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let e = visible(&app, &caller, &name).await?;
    caller.require(Role::Operator, "delete backups")?;
    let dir = app.settings.backup_dir.clone();
    let n = e.name.clone();
    let result = blocking(move || {
        if store::is_base(&dir, &n)? {
            return Ok(false);
        }
        store::remove(&dir, &n).map(|()| true)
    })
    .await
    .and_then(|removed| {
        if removed {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::CONFLICT,
                "in_use",
                format!("{name} is the base of an incremental backup: delete that one first"),
            ))
        }
    });
    app.audit
        .record(&caller, "backup.delete", Some(&name), &result);
    result.map(|()| StatusCode::NO_CONTENT)
}

/// A new VE from a backup (`kennel restore`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreBackup {
    /// The new VE's id: 1-32 characters a-z, 0-9 and '-'.
    pub id: String,
    /// Its hostname (default: the backed-up VE's).
    pub hostname: Option<String>,
    /// Its disk size, e.g. `10G` (default: the backed-up VE's).
    pub disk: Option<String>,
    /// Also take the backed-up VE's limits, features and addresses (if
    /// free) from the backup.
    #[serde(default)]
    pub trust_config: bool,
}

/// Makes a new VE from a backup, as a job (host admins only, as
/// creating a VE): 202 with the job.
#[utoipa::path(post, path = "/v1/backups/{name}/restore", tag = "backups", request_body = RestoreBackup,
    params(("name" = String, Path, description = "backup name")),
    responses((status = 202, body = Job), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn restore(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(req): Json<RestoreBackup>,
) -> ApiResult<(StatusCode, Json<Job>)> {
    let e = visible(&app, &caller, &name).await?;
    caller.require_host_admin("restore backups (it makes a VE)")?;
    let new_id = VeId::parse(&req.id).map_err(|e| ApiError::bad_input(e.to_string()))?;
    let file = store::path(&app.settings.backup_dir, &e.name)
        .to_string_lossy()
        .into_owned();
    let args = KennelArgs::new(&["restore"])
        .opt("hostname", req.hostname.as_deref())?
        .opt("disk", req.disk.as_deref())?
        .flag("trust-config", req.trust_config)
        .positional(&file)?
        .positional(new_id.as_str())?;
    let claim = app.changes.claim(&new_id)?;
    let (app2, caller2, target) = (app.clone(), caller.clone(), format!("{name} -> {new_id}"));
    let job = app.jobs.spawn(
        format!("backup.restore {target}"),
        caller.0.token.clone(),
        async move {
            let _claim = claim;
            let r = app2.cli.run(args.into_vec()).await.map(|_| ());
            app2.audit
                .record(&caller2, "backup.restore", Some(&target), &r);
            r
        },
    );
    Ok((StatusCode::ACCEPTED, Json(job)))
}
