//! `/v1/ves/{id}/actions/{action}`: start, stop, restart, kill.
//! Start, stop and kill go to warm batch workers; restart runs `kennel
//! restart`, which holds the VE's lock across its stop and start.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::Json;
use kennel_api::Role;
use kennel_ve::lifecycle::batch::{Done, Op};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::args::KennelArgs;
use crate::access::Caller;
use crate::app::AppState;
use crate::backend::detached;
use crate::backend::workers::outcome_result;
use crate::error::{ApiError, ApiResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Start,
    Stop,
    Restart,
    Kill,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Restart => "restart",
            Action::Kill => "kill",
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActionQuery {
    /// stop, restart: seconds to wait for a clean shutdown before killing
    /// (default 30, at most 3600).
    pub timeout: Option<u32>,
}

/// What an action did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionResult {
    pub ve: String,
    /// `started`, `stopped`, `stop_timed_out` (killed after the timeout),
    /// `killed` or `restarted`.
    pub result: String,
    /// The VE's init, after a start or restart.
    pub init_pid: Option<i32>,
}

/// Default seconds a stop waits, as `kennel stop`.
const STOP_TIMEOUT: u32 = 30;

/// Starts, stops, restarts or kills a VE (operators and admins).
#[utoipa::path(post, path = "/v1/ves/{id}/actions/{action}", tag = "ves",
    params(("id" = String, Path, description = "VE id"),
           ("action" = Action, Path, description = "start, stop, restart or kill"), ActionQuery),
    responses((status = 200, body = ActionResult), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn act(
    State(app): State<AppState>,
    caller: Caller,
    Path((id, action)): Path<(String, Action)>,
    Query(q): Query<ActionQuery>,
) -> ApiResult<Json<ActionResult>> {
    let id = caller.visible_ve(&app, &id).await?;
    caller.require(Role::Operator, &format!("{} VEs", action.name()))?;
    let timeout = q.timeout.unwrap_or(STOP_TIMEOUT);
    if timeout > 3600 {
        return Err(ApiError::bad_input(
            "timeout: at most 3600 seconds (an hour)",
        ));
    }
    let result = {
        let (app, caller) = (app.clone(), caller.clone());
        let id = id.clone();
        detached(async move {
            let result = async {
                let _claim = app.changes.claim(&id)?;
                let done = match action {
                    Action::Start => Op::Start,
                    Action::Kill => Op::Kill,
                    Action::Stop => Op::Stop {
                        timeout: Duration::from_secs(timeout.into()),
                    },
                    Action::Restart => {
                        let args = KennelArgs::new(&["restart"])
                            .opt("expect-uuid", caller.granted_uuid(&id).as_deref())?
                            .positional(id.as_str())?
                            .opt("timeout", Some(&timeout.to_string()))?;
                        app.cli.run(args.into_vec()).await?;
                        let rid = id.clone();
                        let st = app.read(move |k| k.status(&rid)).await?;
                        return Ok(ActionResult {
                            ve: id.to_string(),
                            result: "restarted".into(),
                            init_pid: st.run.map(|r| r.init_pid),
                        });
                    }
                };
                let outcome = app
                    .workers
                    .apply(done, &id, caller.granted_uuid(&id))
                    .await?;
                let (result, init_pid) = match outcome_result(outcome)? {
                    Done::Started { init_pid } => ("started", Some(init_pid)),
                    Done::Stopped => ("stopped", None),
                    Done::StopTimedOut => ("stop_timed_out", None),
                    Done::Killed => ("killed", None),
                };
                Ok(ActionResult {
                    ve: id.to_string(),
                    result: result.into(),
                    init_pid,
                })
            }
            .await;
            app.audit.record(
                &caller,
                &format!("ve.{}", action.name()),
                Some(id.as_str()),
                &result,
            );
            result
        })
        .await
    };
    result.map(Json)
}
