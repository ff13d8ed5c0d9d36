//! `/v1/host`: what the service runs on.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::access::Caller;
use crate::app::AppState;
use crate::error::ApiResult;

#[derive(Debug, Serialize, ToSchema)]
pub struct HostBody {
    /// Kennel's version.
    pub version: String,
    /// The kernel's release.
    pub kernel: String,
    /// VEs the caller may see, and how many of them run.
    pub ves: usize,
    pub running: usize,
    /// The newest event's position (resume events after it); not shown
    /// to a tenant, whom it would tell of others' VEs' activity.
    pub last_event: Option<u64>,
}

/// The host, as the caller may see it.
#[utoipa::path(get, path = "/v1/host", tag = "host",
    responses((status = 200, body = HostBody), (status = 401, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn host(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<HostBody>> {
    let p = caller.0.clone();
    let all = app.read(|k| k.list(&mut |_, _| {})).await?;
    let mine: Vec<_> = all
        .iter()
        .filter(|s| p.sees_uuid(&s.config.id, &s.config.uuid))
        .collect();
    Ok(Json(HostBody {
        version: env!("CARGO_PKG_VERSION").to_string(),
        kernel: rustix::system::uname()
            .release()
            .to_string_lossy()
            .into_owned(),
        ves: mine.len(),
        running: mine.iter().filter(|s| s.state.is_running()).count(),
        last_event: p.ves.is_none().then(|| app.events.last_seq()),
    }))
}
