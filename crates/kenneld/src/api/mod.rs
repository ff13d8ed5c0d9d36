//! The REST API, `/v1`: the router, and the OpenAPI document generated
//! from the handlers' own annotations (served at `/v1/openapi.json`, kept
//! in docs/openapi.json and checked against the code by a test).

mod actions;
mod args;
mod console;
mod events;
mod host;
mod metrics;
mod stat;
mod templates;
mod tokens;
mod ves;

use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, Response, StatusCode};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::app::AppState;
use crate::error::ErrorBody;

/// A request body larger than this is refused (413) before it is read.
pub const MAX_BODY: usize = 1 << 20;

#[derive(OpenApi)]
#[openapi(
    info(title = "Kennel API", description = "Kennel's VEs, templates, events and metrics: the same operations as the `kennel` command."),
    paths(
        ves::list, ves::get, ves::config, ves::create, ves::set, ves::destroy,
        actions::act, stat::stat, console::console, console::shell,
        templates::list, templates::create, templates::remove, templates::jobs, templates::job,
        tokens::list, tokens::create, tokens::revoke, tokens::set_ves,
        host::host, events::stream, metrics::metrics,
    ),
    components(schemas(ErrorBody)),
    modifiers(&Bearer),
    tags((name = "ves", description = "virtual environments"), (name = "templates"),
         (name = "jobs", description = "long operations"), (name = "tokens", description = "API access (host admins)"),
         (name = "host"), (name = "events", description = "the event stream"),
         (name = "metrics", description = "Prometheus"))
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let comps = doc.components.get_or_insert_with(Default::default);
        comps.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document as JSON.
pub fn openapi_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

pub fn router(app: AppState) -> Router {
    Router::new()
        .route("/v1/ves", get(ves::list).post(ves::create))
        .route(
            "/v1/ves/{id}",
            get(ves::get).patch(ves::set).delete(ves::destroy),
        )
        .route("/v1/ves/{id}/config", get(ves::config))
        .route("/v1/ves/{id}/stat", get(stat::stat))
        .route("/v1/ves/{id}/actions/{action}", post(actions::act))
        .route("/v1/ves/{id}/console", get(console::console))
        .route("/v1/ves/{id}/shell", get(console::shell))
        .route(
            "/v1/templates",
            get(templates::list).post(templates::create),
        )
        .route("/v1/templates/{name}", delete(templates::remove))
        .route("/v1/jobs", get(templates::jobs))
        .route("/v1/jobs/{id}", get(templates::job))
        .route("/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/v1/tokens/{id}", delete(tokens::revoke))
        .route("/v1/tokens/{id}/ves", put(tokens::set_ves))
        .route("/v1/host", get(host::host))
        .route("/v1/events", get(events::stream))
        .route("/metrics", get(metrics::metrics))
        .route("/v1/openapi.json", get(openapi))
        .fallback(not_found)
        .layer(axum::middleware::map_response(json_errors))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
}

async fn openapi() -> Response<Body> {
    let mut r = Response::new(Body::from(openapi_json()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

async fn not_found() -> (StatusCode, Json<ErrorBody>) {
    (
        StatusCode::NOT_FOUND,
        Json(ErrorBody {
            code: "not_found".into(),
            message: "no such endpoint (see /v1/openapi.json)".into(),
        }),
    )
}

/// Every error is JSON with a stable code, also those the framework
/// makes itself (a malformed body, a wrong method, a body too large).
async fn json_errors(resp: Response<Body>) -> Response<Body> {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::NOT_FOUND => "not_found",
        s if s.is_server_error() => "internal",
        _ => "bad_input",
    };
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let mut message = String::from_utf8_lossy(&text).trim().to_string();
    if message.is_empty() {
        message = status
            .canonical_reason()
            .unwrap_or("request refused")
            .to_string();
    }
    // A framework's 422 (a body of the wrong shape) is bad input: 400.
    let status = if status == StatusCode::UNPROCESSABLE_ENTITY {
        StatusCode::BAD_REQUEST
    } else {
        status
    };
    let mut out = Response::new(Body::from(
        serde_json::to_string(&ErrorBody {
            code: code.into(),
            message,
        })
        .unwrap_or_default(),
    ));
    *out.status_mut() = status;
    let mut headers = parts.headers;
    headers.remove(header::CONTENT_LENGTH);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    *out.headers_mut() = headers;
    out
}
