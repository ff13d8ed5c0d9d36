//! `POST /v1/ves/{id}/password`: a user's password in a running VE, set
//! by the VE's own `chpasswd` (`kennel set --userpasswd`), the panel's
//! "reset root password". A tenant's operator may set it in its own VE.
//!
//! The password goes to `kennel` on its standard input, never on its
//! command line (any host user may read that in `/proc`), and never into
//! the audit log.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use kennel_api::Role;
use serde::Deserialize;
use utoipa::ToSchema;

use super::args::KennelArgs;
use crate::access::Caller;
use crate::app::AppState;
use crate::backend::detached;
use crate::error::{ApiError, ApiResult};

/// The longest password taken: `kennel set` reads a line of at most
/// 4,096 bytes, its line break included.
const MAX_PASSWORD: usize = 4095;
/// The longest user name (Linux's `useradd` takes 32).
const MAX_USER: usize = 32;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    /// The user, e.g. `root`.
    pub user: String,
    /// The new password: at most 4,095 bytes, one line.
    pub password: String,
}

impl std::fmt::Debug for SetPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetPassword")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Sets a user's password in a running VE (operators): 204.
#[utoipa::path(post, path = "/v1/ves/{id}/password", tag = "ves", request_body = SetPassword,
    params(("id" = String, Path, description = "VE id")),
    responses((status = 204, description = "the password was set"),
              (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody, description = "the VE is not running, or busy")),
    security(("bearer" = [])))]
pub async fn set_password(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<SetPassword>,
) -> ApiResult<StatusCode> {
    let id = caller.visible_ve(&app, &id).await?;
    caller.require(Role::Operator, "set passwords in VEs")?;
    let result = {
        let (app, caller) = (app.clone(), caller.clone());
        let id = id.clone();
        detached(async move {
            let result = async {
                check(&body)?;
                let args = KennelArgs::new(&["set"])
                    .opt("expect-uuid", caller.granted_uuid(&id).as_deref())?
                    .opt("userpasswd", Some(&body.user))?
                    .positional(id.as_str())?;
                let _claim = app.changes.claim(&id)?;
                let mut input = body.password.clone().into_bytes();
                input.push(b'\n');
                app.cli
                    .run_with_input(args.into_vec(), Some(input))
                    .await
                    .map(|_| ())
            }
            .await;
            app.audit
                .record(&caller, "ve.password", Some(id.as_str()), &result);
            result
        })
        .await
    };
    result.map(|()| StatusCode::NO_CONTENT)
}

/// A user name `kennel set` can be given alone, and a password that is
/// one line (a line break would end it early).
fn check(body: &SetPassword) -> ApiResult<()> {
    let user = &body.user;
    let user_ok = !user.is_empty()
        && user.len() <= MAX_USER
        && !user.starts_with('-')
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !user_ok {
        return Err(ApiError::bad_input(format!(
            "user: '{}' is not a user name (letters, digits, '.', '_', '-', at most {MAX_USER})",
            user.chars().take(64).collect::<String>().escape_default()
        )));
    }
    let p = &body.password;
    if p.is_empty() || p.len() > MAX_PASSWORD || p.chars().any(char::is_control) {
        return Err(ApiError::bad_input(format!(
            "password: 1 to {MAX_PASSWORD} bytes, without control characters (no line breaks)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(user: &str, password: &str) -> SetPassword {
        SetPassword {
            user: user.into(),
            password: password.into(),
        }
    }

    #[test]
    fn only_a_user_name_and_a_one_line_password_pass() {
        assert!(check(&body("root", "s3cret: with spaces")).is_ok());
        assert!(check(&body("www-data", "x")).is_ok());
        for (u, p) in [
            ("", "x"),
            ("-root", "x"),
            ("root:x", "x"),
            ("ro ot", "x"),
            ("root", ""),
            ("root", "a\nroot2:b"),
            ("root", "a\rb"),
            ("root", "a\0b"),
        ] {
            let e = check(&body(u, p)).expect_err(&format!("{u:?} {p:?}"));
            assert!(
                !e.message.contains(p) || p.is_empty() || p == "x",
                "{}",
                e.message
            );
        }
        assert!(check(&body("root", &"x".repeat(MAX_PASSWORD + 1))).is_err());
        let debug = format!("{:?}", body("root", "hunter2"));
        assert!(!debug.contains("hunter2"), "{debug}");
    }
}
