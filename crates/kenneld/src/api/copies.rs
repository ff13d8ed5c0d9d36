//! `POST /v1/ves/{id}/clone` and `/rename`: a VE under another id, as a
//! copy (`kennel clone`, a job: it copies a disk) or moved (`kennel
//! rename`). Together because both make a VE id appear, which only a host
//! admin may (as `POST /v1/ves`): a tenant's grant names ids, and a new
//! one is not in it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use kennel_ve::VeId;
use serde::Deserialize;
use utoipa::ToSchema;

use super::args::KennelArgs;
use super::ves::{visible_status, VeDetail};
use crate::access::Caller;
use crate::app::AppState;
use crate::backend::detached;
use crate::error::{ApiError, ApiResult};
use crate::jobs::Job;

fn new_id(old: &VeId, s: &str) -> ApiResult<VeId> {
    let id = VeId::parse(s).map_err(|e| ApiError::bad_input(format!("new_id: {e}")))?;
    if id == *old {
        return Err(ApiError::bad_input("new_id: the VE's own id"));
    }
    Ok(id)
}

/// A copy of a VE.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloneVe {
    /// The copy's id: 1-32 characters a-z, 0-9 and '-'.
    pub new_id: String,
    /// The copy's hostname (default: its id).
    pub hostname: Option<String>,
}

/// Copies a VE (running or not; one with a disk of its own) to a new VE,
/// as a job (host admins only): new ids, uuid, MACs and hostname, no
/// addresses. The copy is stopped. 202 with the job.
#[utoipa::path(post, path = "/v1/ves/{id}/clone", tag = "ves", request_body = CloneVe,
    params(("id" = String, Path, description = "VE id")),
    responses((status = 202, body = Job), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn clone(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<CloneVe>,
) -> ApiResult<(StatusCode, Json<Job>)> {
    let id = caller.visible_ve(&app, &id).await?;
    caller.require_host_admin("clone VEs (it makes a VE)")?;
    let to = new_id(&id, &req.new_id)?;
    let args = KennelArgs::new(&["clone"])
        .opt("hostname", req.hostname.as_deref())?
        .positional(id.as_str())?
        .positional(to.as_str())?;
    let claims = (app.changes.claim(&id)?, app.changes.claim(&to)?);
    let (app2, caller2, target) = (app.clone(), caller.clone(), format!("{id} -> {to}"));
    let job = app.jobs.spawn(
        format!("ve.clone {target}"),
        caller.0.token.clone(),
        async move {
            let _claims = claims;
            let r = app2.cli.run(args.into_vec()).await.map(|_| ());
            app2.audit.record(&caller2, "ve.clone", Some(&target), &r);
            r
        },
    );
    Ok((StatusCode::ACCEPTED, Json(job)))
}

/// A VE's new id.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameVe {
    /// 1-32 characters a-z, 0-9 and '-'.
    pub new_id: String,
}

/// Gives a stopped VE a new id (host admins only): 200 with the VE under
/// it. A running VE is refused (409 `running`), as is an id in use (409
/// `exists`).
#[utoipa::path(post, path = "/v1/ves/{id}/rename", tag = "ves", request_body = RenameVe,
    params(("id" = String, Path, description = "VE id")),
    responses((status = 200, body = VeDetail), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody, description = "the VE runs, or the new id is taken")),
    security(("bearer" = [])))]
pub async fn rename(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<RenameVe>,
) -> ApiResult<Json<VeDetail>> {
    let id = caller.visible_ve(&app, &id).await?;
    caller.require_host_admin("rename VEs")?;
    let result = {
        let (app, caller) = (app.clone(), caller.clone());
        let id = id.clone();
        detached(async move {
            let result = async {
                let to = new_id(&id, &req.new_id)?;
                let _claims = (app.changes.claim(&id)?, app.changes.claim(&to)?);
                let args = KennelArgs::new(&["rename"])
                    .positional(id.as_str())?
                    .positional(to.as_str())?;
                app.cli.run(args.into_vec()).await?;
                visible_status(&app, &caller, &to).await
            }
            .await;
            app.audit.record(
                &caller,
                "ve.rename",
                Some(&format!("{id} -> {}", req.new_id.escape_default())),
                &result,
            );
            result
        })
        .await
    };
    result.map(|st| Json(super::ves::detail(st)))
}
