//! `/v1/events`: the event stream (Server-Sent Events). Being written.

use axum::extract::State;
use axum::http::StatusCode;

use crate::access::Caller;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};

/// The live stream of VE events the caller may see.
#[utoipa::path(get, path = "/v1/events", tag = "events",
    responses((status = 200, description = "text/event-stream"), (status = 401, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn stream(State(_app): State<AppState>, _caller: Caller) -> ApiResult<()> {
    Err(ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "not_implemented",
        "events are not served yet",
    ))
}
