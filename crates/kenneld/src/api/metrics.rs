//! `/metrics`: Prometheus text format, per VE and for the host. Being
//! written.

use axum::extract::State;
use axum::http::StatusCode;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "metrics",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain"),
              (status = 401, body = crate::error::ErrorBody)),
    security(("bearer" = []), ()))]
pub async fn metrics(State(_app): State<AppState>) -> ApiResult<()> {
    Err(ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "not_implemented",
        "metrics are not served yet",
    ))
}
