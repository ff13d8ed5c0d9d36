//! `/v1/ves/{id}/snapshots`: a VE's disk snapshots (`kennel snapshot`).
//! Its own file because snapshots are the tenant's own undo: an operator
//! of the VE's tenant takes, rolls back and deletes them (as it may
//! reinstall), a viewer lists them. All run `kennel snapshot ...` (the
//! list too, see [`list_of`]); a rollback, which may stop and start the
//! VE, runs as a job.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use kennel_api::Role;
use kennel_ve::VeId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::args::KennelArgs;
use crate::access::Caller;
use crate::app::AppState;
use crate::backend::detached;
use crate::error::{ApiError, ApiResult};
use crate::jobs::Job;

/// A snapshot of a VE's disk.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SnapshotBody {
    pub name: String,
    /// RFC 3339.
    pub created: String,
    /// The disk's size then, in bytes.
    pub size: u64,
    /// How long the VE was frozen for it, if it ran.
    pub frozen_ms: Option<f64>,
}

/// A snapshot name as the storage takes it (it becomes a directory):
/// 1-64 characters a-z, A-Z, 0-9, '.', '_', '-', the first a letter or
/// digit. So no '/', and no `..` of its own.
pub(super) fn check_name(name: &str) -> ApiResult<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_input(
            "a snapshot name is 1-64 characters a-z, A-Z, 0-9, '.', '_' or '-', starting with a letter or digit",
        ))
    }
}

/// `kennel snapshot list` processes at once (more requests wait).
static LISTING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(8);

/// The snapshots of VE `id`, which the caller may see. Read by `kennel
/// snapshot list --json`, not in-process: the library mounts the
/// storage pool when it is not (after a reboot), and kenneld mounts
/// nothing itself.
async fn list_of(app: &AppState, caller: &Caller, id: &VeId) -> ApiResult<Vec<SnapshotBody>> {
    let args = KennelArgs::new(&["snapshot", "list"])
        .positional(id.as_str())?
        .flag("json", true);
    // Bounded, as changes are: no client makes the service run
    // processes without bound. The slot is held to the process's end,
    // even if the client goes away.
    let slot = LISTING
        .acquire()
        .await
        .map_err(|_| ApiError::internal("the snapshot lister is closed"))?;
    let cli = app.cli.clone();
    let out = tokio::spawn(async move {
        let _slot = slot;
        cli.run(args.into_vec()).await
    })
    .await
    .map_err(|e| ApiError::internal(format!("kennel snapshot list: {e}")))??;
    let snaps: Vec<SnapshotBody> = serde_json::from_str(&out)
        .map_err(|e| ApiError::internal(format!("kennel snapshot list --json: {e}")))?;
    // A VE made again under the id while this was read is not the tenant's.
    let rid = id.clone();
    let uuid = app.read(move |k| Ok(k.config(&rid)?.uuid)).await?;
    if !caller.0.sees_uuid(id, &uuid) {
        return Err(ApiError::no_such_ve(id));
    }
    Ok(snaps)
}

/// 404 unless VE `id` has snapshot `name`.
async fn require_snapshot(app: &AppState, caller: &Caller, id: &VeId, name: &str) -> ApiResult<()> {
    if list_of(app, caller, id)
        .await?
        .iter()
        .any(|s| s.name == name)
    {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("VE {id} has no snapshot '{name}'"),
        ))
    }
}

/// A VE's snapshots, oldest first (viewers).
#[utoipa::path(get, path = "/v1/ves/{id}/snapshots", tag = "snapshots",
    params(("id" = String, Path, description = "VE id")),
    responses((status = 200, body = [SnapshotBody]),
              (status = 400, body = crate::error::ErrorBody, description = "a VE without a disk of its own (storage `dir`)"),
              (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<SnapshotBody>>> {
    let id = caller.visible_ve(&app, &id).await?;
    list_of(&app, &caller, &id).await.map(Json)
}

/// A snapshot to take.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSnapshot {
    /// 1-64 characters a-z, A-Z, 0-9, '.', '_', '-' (default: the UTC
    /// time, e.g. `20261207T221534Z`).
    pub name: Option<String>,
}

/// Takes a snapshot of a VE's disk (operators): a running VE is frozen
/// for milliseconds. At most 8 a VE (`--snapshots-per-ve`): each can come
/// to hold as much of the shared pool as the VE's disk.
#[utoipa::path(post, path = "/v1/ves/{id}/snapshots", tag = "snapshots", request_body = CreateSnapshot,
    params(("id" = String, Path, description = "VE id")),
    responses((status = 201, body = SnapshotBody), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody, description = "a snapshot of that name exists (`exists`), the VE is busy, or it has as many snapshots as it may (`too_many_snapshots`, `--snapshots-per-ve`)")),
    security(("bearer" = [])))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<CreateSnapshot>,
) -> ApiResult<(StatusCode, Json<SnapshotBody>)> {
    let id = caller.visible_ve(&app, &id).await?;
    caller.require(Role::Operator, "take snapshots")?;
    let name = req.name.unwrap_or_else(|| super::backup_dir::stamp(false));
    let result = {
        let (app, caller) = (app.clone(), caller.clone());
        let id = id.clone();
        detached(async move {
            let result = async {
                check_name(&name)?;
                let _claim = app.changes.claim(&id)?;
                let taken = list_of(&app, &caller, &id).await?;
                if taken.iter().any(|s| s.name == name) {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "exists",
                        format!("VE {id} has a snapshot '{name}': delete it first or choose another name"),
                    ));
                }
                // Counted under the VE's change claim: no two requests take the
                // last place.
                let most = app.settings.snapshots_per_ve;
                if taken.len() >= most {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "too_many_snapshots",
                        format!("VE {id} has {most} snapshots, its most: delete one first"),
                    ));
                }
                let args = KennelArgs::new(&["snapshot", "create"])
                    .opt("expect-uuid", caller.granted_uuid(&id).as_deref())?
                    .positional(id.as_str())?
                    .positional(&name)?;
                app.cli.run(args.into_vec()).await?;
                list_of(&app, &caller, &id)
                    .await?
                    .into_iter()
                    .find(|s| s.name == name)
                    .ok_or_else(|| {
                        ApiError::internal(format!("snapshot '{name}' was taken but is not listed"))
                    })
            }
            .await;
            app.audit.record(
                &caller,
                "ve.snapshot.create",
                Some(&format!("{id}/{name}")),
                &result,
            );
            result
        })
        .await
    };
    Ok((StatusCode::CREATED, Json(result?)))
}

/// A rollback.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    /// Seconds a running VE gets to shut down cleanly (default 30, at
    /// most 3600); it is started again after.
    pub timeout: Option<u32>,
}

/// Makes a VE's disk what a snapshot holds, as a job (operators): a
/// running VE is stopped and started again. 202 with the job.
#[utoipa::path(post, path = "/v1/ves/{id}/snapshots/{name}/rollback", tag = "snapshots", request_body = Rollback,
    params(("id" = String, Path, description = "VE id"), ("name" = String, Path, description = "snapshot name")),
    responses((status = 202, body = Job), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn rollback(
    State(app): State<AppState>,
    caller: Caller,
    Path((id, name)): Path<(String, String)>,
    Json(req): Json<Rollback>,
) -> ApiResult<(StatusCode, Json<Job>)> {
    let id = caller.visible_ve(&app, &id).await?;
    caller.require(Role::Operator, "roll back snapshots")?;
    check_name(&name)?;
    let timeout = req.timeout.unwrap_or(30);
    if timeout > 3600 {
        return Err(ApiError::bad_input(
            "timeout: at most 3600 seconds (an hour)",
        ));
    }
    // A wrong name is answered now, not as a failed job.
    require_snapshot(&app, &caller, &id, &name).await?;
    let args = KennelArgs::new(&["snapshot", "rollback"])
        .opt("expect-uuid", caller.granted_uuid(&id).as_deref())?
        .opt("timeout", Some(&timeout.to_string()))?
        .positional(id.as_str())?
        .positional(&name)?;
    let claim = app.changes.claim(&id)?;
    let (app2, caller2, target) = (app.clone(), caller.clone(), format!("{id}/{name}"));
    let job = app.jobs.spawn(
        format!("ve.snapshot.rollback {target}"),
        caller.0.token.clone(),
        async move {
            let _claim = claim;
            let r = app2.cli.run(args.into_vec()).await.map(|_| ());
            app2.audit
                .record(&caller2, "ve.snapshot.rollback", Some(&target), &r);
            r
        },
    );
    Ok((StatusCode::ACCEPTED, Json(job)))
}

/// Deletes a snapshot (operators).
#[utoipa::path(delete, path = "/v1/ves/{id}/snapshots/{name}", tag = "snapshots",
    params(("id" = String, Path, description = "VE id"), ("name" = String, Path, description = "snapshot name")),
    responses((status = 204), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = caller.visible_ve(&app, &id).await?;
    caller.require(Role::Operator, "delete snapshots")?;
    let result = {
        let (app, caller) = (app.clone(), caller.clone());
        let id = id.clone();
        detached(async move {
            let result = async {
                check_name(&name)?;
                require_snapshot(&app, &caller, &id, &name).await?;
                let _claim = app.changes.claim(&id)?;
                let args = KennelArgs::new(&["snapshot", "delete"])
                    .opt("expect-uuid", caller.granted_uuid(&id).as_deref())?
                    .positional(id.as_str())?
                    .positional(&name)?;
                app.cli.run(args.into_vec()).await.map(|_| ())
            }
            .await;
            app.audit.record(
                &caller,
                "ve.snapshot.delete",
                Some(&format!("{id}/{name}")),
                &result,
            );
            result
        })
        .await
    };
    result.map(|()| StatusCode::NO_CONTENT)
}
