//! `POST /v1/ves/{id}/reinstall`: fresh files from the VE's template,
//! keeping its configuration, id and the paths asked for (`kennel
//! reinstall`), as a job. A tenant's operator may reinstall its own VE.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use kennel_api::Role;
use serde::Deserialize;
use utoipa::ToSchema;

use super::args::KennelArgs;
use crate::access::Caller;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::jobs::Job;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reinstall {
    /// Paths to carry over from the old files, e.g. `["/root", "/home"]`.
    #[serde(default)]
    pub keep: Vec<String>,
    /// Seconds a running VE gets to shut down cleanly (default 30, at
    /// most 3600).
    pub timeout: Option<u32>,
}

/// Reinstalls a VE as a job (operators): 202 with the job.
#[utoipa::path(post, path = "/v1/ves/{id}/reinstall", tag = "ves", request_body = Reinstall,
    params(("id" = String, Path, description = "VE id")),
    responses((status = 202, body = Job), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn reinstall(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<Reinstall>,
) -> ApiResult<(StatusCode, Json<Job>)> {
    let id = caller.visible_ve(&app, &id).await?;
    caller.require(Role::Operator, "reinstall VEs")?;
    let timeout = body.timeout.unwrap_or(30);
    if timeout > 3600 {
        return Err(ApiError::bad_input(
            "timeout: at most 3600 seconds (an hour)",
        ));
    }
    let keep = body.keep.join(",");
    let args = KennelArgs::new(&["reinstall"])
        .opt("expect-uuid", caller.granted_uuid(&id).as_deref())?
        .opt("keep", (!keep.is_empty()).then_some(keep.as_str()))?
        .opt("timeout", Some(&timeout.to_string()))?
        .positional(id.as_str())?;
    // Held by the job to its end: no other change to the VE meanwhile.
    let claim = app.changes.claim(&id)?;
    let (app2, caller2, target) = (app.clone(), caller.clone(), id.to_string());
    let job = app.jobs.spawn(
        format!("ve.reinstall {id}"),
        caller.0.token.clone(),
        async move {
            let _claim = claim;
            let r = app2.cli.run(args.into_vec()).await.map(|_| ());
            app2.audit
                .record(&caller2, "ve.reinstall", Some(&target), &r);
            r
        },
    );
    Ok((StatusCode::ACCEPTED, Json(job)))
}
