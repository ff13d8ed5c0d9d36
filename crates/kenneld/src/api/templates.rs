//! `/v1/templates`: list, build (as a job) and remove OS templates.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::args::KennelArgs;
use crate::access::Caller;
use crate::app::AppState;
use crate::backend::detached;
use crate::error::{ApiError, ApiResult};
use crate::jobs::Job;

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateBody {
    pub name: String,
    pub os: String,
    /// The init it boots: `busybox`, `systemd`, ...
    pub init: String,
    pub size_bytes: u64,
    pub created: String,
}

/// The host's templates (every caller may see them).
#[utoipa::path(get, path = "/v1/templates", tag = "templates",
    responses((status = 200, body = [TemplateBody]), (status = 401, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(app): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<Vec<TemplateBody>>> {
    let ts = app
        .read(|k| k.template_store().list().map_err(kennel_ve::VeError::from))
        .await?;
    Ok(Json(
        ts.into_iter()
            .map(|t| TemplateBody {
                name: t.meta.name,
                os: t.meta.os,
                init: t.meta.init.as_str().to_string(),
                size_bytes: t.meta.size_bytes,
                created: t.meta.created,
            })
            .collect(),
    ))
}

/// A template to build (`kennel template create`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTemplate {
    pub name: String,
    /// What to build: `busybox` or `debian-12` (default: the name).
    pub from: Option<String>,
    /// Debian mirror, for `debian-12`.
    pub mirror: Option<String>,
}

/// Builds a template as a job (host admins only): 202 with the job.
#[utoipa::path(post, path = "/v1/templates", tag = "templates", request_body = CreateTemplate,
    responses((status = 202, body = Job), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateTemplate>,
) -> ApiResult<(StatusCode, Json<Job>)> {
    caller.require_host_admin("build templates")?;
    let args = KennelArgs::new(&["template", "create"])
        .positional(&body.name)?
        .opt("from", body.from.as_deref())?
        .opt("mirror", body.mirror.as_deref())?;
    let what = format!("template.create {}", body.name);
    let app2 = app.clone();
    let caller2 = caller.clone();
    let what2 = what.clone();
    let job = app.jobs.spawn(what, caller.0.token.clone(), async move {
        let r = app2.cli.run(args.into_vec()).await.map(|_| ());
        app2.audit
            .record(&caller2, "template.create", Some(&what2), &r);
        r
    });
    Ok((StatusCode::ACCEPTED, Json(job)))
}

/// Removes a template no VE uses (host admins only).
#[utoipa::path(delete, path = "/v1/templates/{name}", tag = "templates",
    params(("name" = String, Path, description = "template name")),
    responses((status = 204), (status = 403, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn remove(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_host_admin("remove templates")?;
    let result = {
        let (app, caller) = (app.clone(), caller.clone());
        detached(async move {
            let result = async {
                let args = KennelArgs::new(&["template", "remove"]).positional(&name)?;
                app.cli.run(args.into_vec()).await.map(|_| ())
            }
            .await;
            app.audit
                .record(&caller, "template.remove", Some(&name), &result);
            result
        })
        .await
    };
    result.map(|()| StatusCode::NO_CONTENT)
}

/// The caller's jobs (a host admin's: every job).
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs",
    responses((status = 200, body = [Job])), security(("bearer" = [])))]
pub async fn jobs(State(app): State<AppState>, caller: Caller) -> Json<Vec<Job>> {
    Json(
        app.jobs
            .list()
            .into_iter()
            .filter(|j| caller.0.is_host_admin() || j.owner == caller.0.token)
            .collect(),
    )
}

/// One job: its state, last progress and result.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = u64, Path, description = "job id")),
    responses((status = 200, body = Job), (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn job(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<u64>,
) -> ApiResult<Json<Job>> {
    app.jobs
        .get(id)
        .filter(|j| caller.0.is_host_admin() || j.owner == caller.0.token)
        .map(Json)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no job {id}")))
}
