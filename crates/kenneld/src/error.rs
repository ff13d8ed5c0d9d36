//! Errors as the API answers them: an HTTP status and a JSON body
//! `{"code": "...", "message": "..."}` whose `code` is stable (clients
//! branch on it) and whose message is one line for a person.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kennel_ve::{ErrorKind, VeError, VeId};
use serde::Serialize;
use utoipa::ToSchema;

/// An error's body.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable: `bad_input`, `unauthorized`, `forbidden`, `not_found`,
    /// `no_such_ve`, `exists`, `running`, `not_running`, `template`,
    /// `busy`, `in_use`, `start_failed`, `host_unsupported`,
    /// `too_many_requests`, `too_many_open`, `payload_too_large`, `insufficient_storage`,
    /// `internal`.
    pub code: String,
    pub message: String,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_input", message)
    }

    /// The answer for a VE that does not exist, and for one that exists
    /// but is not the caller's: the same status, code and words.
    pub fn no_such_ve(id: &VeId) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "no_such_ve",
            format!("VE {id} does not exist"),
        )
    }

    pub fn forbidden(what: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this token may not {what}"),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The error of a `kennel` command that exited with `code`
    /// (docs/CLI.md, "Exit status"), saying `message`.
    pub fn from_exit(code: i32, message: String) -> Self {
        let (status, name) = match code {
            2 => (StatusCode::BAD_REQUEST, "bad_input"),
            4 => (StatusCode::NOT_FOUND, "no_such_ve"),
            5 => (StatusCode::CONFLICT, "exists"),
            6 => (StatusCode::CONFLICT, "running"),
            7 => (StatusCode::CONFLICT, "not_running"),
            9 => (StatusCode::UNPROCESSABLE_ENTITY, "template"),
            10 => (StatusCode::NOT_IMPLEMENTED, "host_unsupported"),
            11 => (StatusCode::CONFLICT, "busy"),
            12 => (StatusCode::UNPROCESSABLE_ENTITY, "start_failed"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError::new(status, name, message)
    }
}

impl From<VeError> for ApiError {
    fn from(e: VeError) -> Self {
        if let VeError::NoSuchVe(id) = &e {
            // As for a VE the caller may not see (no hint to the CLI).
            return ApiError::new(
                StatusCode::NOT_FOUND,
                "no_such_ve",
                format!("VE {id} does not exist"),
            );
        }
        let code = match e.kind() {
            ErrorKind::CannotRun | ErrorKind::CommandNotFound => 2,
            k => k.exit_code(),
        };
        ApiError::from_exit(code, one_line(&e))
    }
}

impl From<kennel_api::ApiAccessError> for ApiError {
    fn from(e: kennel_api::ApiAccessError) -> Self {
        use kennel_api::ApiAccessError as E;
        match e {
            E::BadInput(m) => ApiError::bad_input(m),
            E::NoSuchToken(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string()),
            other => ApiError::internal(one_line(&other)),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!("answered {}: {}", self.status, self.message);
        }
        (
            self.status,
            Json(ErrorBody {
                code: self.code.to_string(),
                message: self.message,
            }),
        )
            .into_response()
    }
}

/// An error and its causes on one line, each said once (as the CLI and
/// its batch workers say them).
pub use kennel_ve::lifecycle::batch::protocol::one_line;

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses_map_to_stable_codes() {
        assert_eq!(ApiError::from_exit(4, String::new()).code, "no_such_ve");
        assert_eq!(
            ApiError::from_exit(11, String::new()).status,
            StatusCode::CONFLICT
        );
        assert_eq!(ApiError::from_exit(1, String::new()).code, "internal");
        assert_eq!(ApiError::from_exit(99, String::new()).code, "internal");
        let missing = ApiError::from(VeError::NoSuchVe("7".into()));
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
    }
}
