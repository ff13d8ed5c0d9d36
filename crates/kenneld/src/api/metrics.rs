//! `/metrics`: Prometheus (OpenMetrics text), per VE and for the host;
//! what is read and how is in `crate::metrics`.
//!
//! Who may scrape: any token (a viewer's is enough), which sees the
//! series of the VEs it may see; without a token, a client on loopback
//! (the host itself) sees everything, unless kenneld was started with
//! `--metrics-token-always`; anyone else without a token is refused
//! (401), as on every other endpoint.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Response};

use crate::access::Peer;
use crate::app::{AppState, Settings};
use crate::error::{ApiError, ApiResult};
use crate::metrics::{self, View};

/// Whether a request without a token from `peer` may scrape everything.
fn open_without_token(settings: &Settings, peer: Peer) -> bool {
    settings.metrics_open_on_loopback && peer.is_loopback()
}

/// Prometheus metrics: every VE the caller may see (state, uptime, CPU,
/// memory, swap, kernel memory, processes, OOM kills, I/O, network per
/// interface, disk), and, for callers who see the whole host, the host
/// and kenneld. Without a token from loopback: everything.
#[utoipa::path(get, path = "/metrics", tag = "metrics",
    responses((status = 200, description = "OpenMetrics text format",
               content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
              (status = 401, body = crate::error::ErrorBody)),
    security(("bearer" = []), ()))]
pub async fn metrics(State(app): State<AppState>, req: Request) -> ApiResult<Response<Body>> {
    let peer = req
        .extensions()
        .get::<Peer>()
        .copied()
        .ok_or_else(|| ApiError::internal("a request without its peer"))?;
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or(""));
    // Every role may read metrics: a viewer's token is enough.
    let view = match auth {
        None if open_without_token(&app.settings, peer) => View::All,
        _ => View::of(&app.access.authenticate(auth, peer).await?),
    };
    let snapshot = metrics::SNAPSHOTS.get(&app, &view).await?;
    let scrapes = metrics::count_scrape() + 1;
    let text = tokio::task::spawn_blocking(move || metrics::encode(snapshot, view, scrapes))
        .await
        .map_err(|e| ApiError::internal(format!("encoding metrics failed: {e}")))?
        .map_err(|_| ApiError::internal("encoding metrics failed"))?;
    let mut r = Response::new(Body::from(text));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    fn settings(open: bool) -> Settings {
        Settings {
            metrics_open_on_loopback: open,
            backup_dir: std::path::PathBuf::new(),
            max_upload: 0,
            backups_per_ve: 1,
            snapshots_per_ve: 1,
        }
    }

    #[test]
    fn only_loopback_scrapes_without_a_token_and_only_by_default() {
        let lo4 = Peer::Tcp(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let lo6 = Peer::Tcp(IpAddr::V6(Ipv6Addr::LOCALHOST));
        let far = Peer::Tcp(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)));
        assert!(open_without_token(&settings(true), lo4));
        assert!(open_without_token(&settings(true), lo6));
        assert!(open_without_token(&settings(true), Peer::Unix { uid: 0 }));
        assert!(!open_without_token(&settings(true), far));
        for p in [lo4, lo6, far] {
            assert!(!open_without_token(&settings(false), p), "{p:?}");
        }
    }
}
