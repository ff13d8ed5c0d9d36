//! The REST API, `/v1`: the router, and the OpenAPI document generated
//! from the handlers' own annotations (served at `/v1/openapi.json`, kept
//! in docs/openapi.json and checked against the code by a test).

mod actions;
mod args;
mod backup_dir;
mod backup_upload;
mod backups;
mod console;
mod copies;
mod events;
mod exec;
mod host;
mod metrics;
mod net;
mod password;
mod reinstall;
mod set;
mod snapshots;
mod stat;
mod storage;
mod templates;
mod tokens;
mod upload;
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
pub use upload::{sweep_uploads, MAX_UPLOAD};

#[derive(OpenApi)]
#[openapi(
    info(title = "Kennel API", description = "Kennel's VEs, templates, events and metrics: the same operations as the `kennel` command."),
    paths(
        ves::list, ves::get, ves::config, ves::create, set::set, ves::destroy, exec::exec,
        actions::act, stat::stat, reinstall::reinstall, console::console, console::shell,
        templates::list, templates::create, templates::remove, templates::jobs, templates::job,
        tokens::list, tokens::create, tokens::revoke, tokens::set_ves,
        host::host, events::stream, metrics::metrics,
        snapshots::list, snapshots::create, snapshots::rollback, snapshots::delete,
        backups::create, backups::list, backups::download, backups::delete, backups::restore,
        copies::clone, copies::rename,
        storage::info, storage::init, storage::remove,
        password::set_password,
        upload::upload,
        backup_upload::upload,
    ),
    components(schemas(ErrorBody, actions::Action, ves::ListState)),
    modifiers(&Bearer, &CommonErrors),
    tags((name = "ves", description = "virtual environments"), (name = "templates"),
         (name = "jobs", description = "long operations"), (name = "tokens", description = "API access (host admins)"),
         (name = "host"), (name = "events", description = "the event stream"),
         (name = "metrics", description = "Prometheus"),
         (name = "snapshots", description = "snapshots of a VE's disk"),
         (name = "backups", description = "backups kept by the service"),
         (name = "storage", description = "the pool of VEs' disks (host)"))
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

/// The errors any operation may answer, whatever it does: a malformed
/// request, a missing or refused token, too many failed attempts, a body
/// too large, a VE the caller may not see, a failure of the host.
struct CommonErrors;

const COMMON_ERRORS: &[(&str, &str)] = &[
    ("400", "bad input: the message says what and how to fix it"),
    ("401", "no token, or not a valid one"),
    ("403", "the token's role or scope does not allow this"),
    (
        "404",
        "no such VE (or not the caller's), job, token or endpoint",
    ),
    ("405", "the path does not take this method"),
    ("413", "the request body is larger than 1 MiB"),
    ("415", "a body that is not `application/json`"),
    ("429", "too many failed attempts from this address"),
    ("500", "the host failed; the message says how"),
];

impl Modify for CommonErrors {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let error = || {
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(Ref::from_schema_name("ErrorBody"))))
                .build()
        };
        for item in doc.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                for (code, why) in COMMON_ERRORS {
                    op.responses
                        .responses
                        .entry((*code).to_string())
                        .or_insert_with(|| {
                            ResponseBuilder::new()
                                .description(*why)
                                .content("application/json", error())
                                .build()
                                .into()
                        });
                }
            }
        }
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
            get(ves::get).patch(set::set).delete(ves::destroy),
        )
        .route("/v1/ves/{id}/config", get(ves::config))
        .route("/v1/ves/{id}/stat", get(stat::stat))
        .route("/v1/ves/{id}/actions/{action}", post(actions::act))
        .route("/v1/ves/{id}/reinstall", post(reinstall::reinstall))
        .route("/v1/ves/{id}/console", get(console::console))
        .route("/v1/ves/{id}/shell", get(console::shell))
        .route("/v1/ves/{id}/exec", post(exec::exec))
        .route("/v1/ves/{id}/password", post(password::set_password))
        .route(
            "/v1/ves/{id}/snapshots",
            get(snapshots::list).post(snapshots::create),
        )
        .route("/v1/ves/{id}/snapshots/{name}", delete(snapshots::delete))
        .route(
            "/v1/ves/{id}/snapshots/{name}/rollback",
            post(snapshots::rollback),
        )
        .route("/v1/ves/{id}/backups", post(backups::create))
        .route("/v1/backups", get(backups::list))
        .route(
            "/v1/backups/{name}",
            get(backups::download)
                .delete(backups::delete)
                .put(backup_upload::upload),
        )
        .route("/v1/backups/{name}/restore", post(backups::restore))
        .route("/v1/ves/{id}/clone", post(copies::clone))
        .route("/v1/ves/{id}/rename", post(copies::rename))
        .route(
            "/v1/templates",
            get(templates::list).post(templates::create),
        )
        .route(
            "/v1/templates/{name}",
            delete(templates::remove).put(upload::upload),
        )
        .route("/v1/jobs", get(templates::jobs))
        .route("/v1/jobs/{id}", get(templates::job))
        .route("/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/v1/tokens/{id}", delete(tokens::revoke))
        .route("/v1/tokens/{id}/ves", put(tokens::set_ves))
        .route("/v1/host", get(host::host))
        .route(
            "/v1/storage",
            get(storage::info)
                .post(storage::init)
                .delete(storage::remove),
        )
        .route("/v1/events", get(events::stream))
        .route("/metrics", get(metrics::metrics))
        .route("/v1/openapi.json", get(openapi))
        .fallback(not_found)
        .layer(axum::middleware::map_response(json_errors))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        // For clients that ask (Prometheus does: /metrics of 1,000 VEs is
        // 1.3 MB); never the event stream (tower-http's default).
        .layer(tower_http::compression::CompressionLayer::new())
        .with_state(app)
}

async fn openapi() -> Response<Body> {
    // Made once: it is served to anyone, without a token.
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let mut r = Response::new(Body::from(DOC.get_or_init(openapi_json).clone()));
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_kept_in_the_repository_is_the_codes() {
        let kept = include_str!("../../../../docs/openapi.json");
        assert!(
            kept.trim() == super::openapi_json().trim(),
            "docs/openapi.json differs from the code: cargo run -p kenneld -- openapi > docs/openapi.json"
        );
    }

    #[test]
    fn every_operation_answers_errors_in_the_documented_shape() {
        let doc: serde_json::Value =
            serde_json::from_str(&super::openapi_json()).expect("the document is JSON");
        let paths = doc["paths"].as_object().expect("paths");
        assert!(paths.len() >= 15, "{}", paths.len());
        for (path, ops) in paths {
            for (method, op) in ops.as_object().expect("operations") {
                assert!(
                    op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                    "{method} {path} documents its answers"
                );
            }
        }
    }
}
