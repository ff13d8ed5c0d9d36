//! `/v1/tokens`: a panel's way to the token file (host admins only),
//! the same as `kennel api token ...`.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use kennel_api::store::NewToken;
use kennel_api::{Role, Tenant, TokenId, TokenRecord};
use kennel_ve::VeId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::Caller;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenBody {
    pub id: String,
    /// `viewer`, `operator` or `admin`.
    pub role: String,
    pub tenant: Option<String>,
    /// The VEs a tenant's token may touch (`null`: all).
    pub ves: Option<Vec<String>>,
    /// Seconds since the epoch.
    pub created: u64,
    pub comment: Option<String>,
}

impl From<&TokenRecord> for TokenBody {
    fn from(t: &TokenRecord) -> Self {
        TokenBody {
            id: t.id.to_string(),
            role: t.role.to_string(),
            tenant: t.tenant.as_ref().map(ToString::to_string),
            ves: t
                .ves
                .as_ref()
                .map(|v| v.keys().map(ToString::to_string).collect()),
            created: t.created,
            comment: t.comment.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NewTokenBody {
    #[serde(flatten)]
    pub record: TokenBody,
    /// The token itself: shown this once.
    pub token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// `viewer`, `operator` or `admin`.
    pub role: String,
    pub tenant: Option<String>,
    /// With a tenant: the VEs it may touch (each must exist).
    pub ves: Option<Vec<String>>,
    pub comment: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenVes {
    pub ves: Vec<String>,
}

/// Every token (never a secret).
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens",
    responses((status = 200, body = [TokenBody]), (status = 403, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<TokenBody>>> {
    caller.require_host_admin("manage tokens")?;
    let store = app.access.store().clone();
    let all = blocking(move || store.load()).await?;
    Ok(Json(all.iter().map(TokenBody::from).collect()))
}

/// Makes a token; its secret is in this answer only.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", request_body = CreateToken,
    responses((status = 201, body = NewTokenBody), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateToken>,
) -> ApiResult<(StatusCode, Json<NewTokenBody>)> {
    caller.require_host_admin("manage tokens")?;
    let result = async {
        let ves = match &body.ves {
            Some(v) => Some(granted(&app, v).await?),
            None => None,
        };
        let new = NewToken {
            role: body.role.parse::<Role>()?,
            tenant: body.tenant.as_deref().map(Tenant::parse).transpose()?,
            ves,
            comment: body.comment.clone(),
        };
        let store = app.access.store().clone();
        blocking(move || store.create(new)).await
    }
    .await;
    app.audit.record(
        &caller,
        "token.create",
        result.as_ref().ok().map(|(t, _)| t.id.as_str()),
        &result,
    );
    let (token, rec) = result?;
    Ok((
        StatusCode::CREATED,
        Json(NewTokenBody {
            record: TokenBody::from(&rec),
            token: token.reveal(),
        }),
    ))
}

/// Revokes a token: refused from the next request on.
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "token id")),
    responses((status = 204), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_host_admin("manage tokens")?;
    let result = async {
        let id = TokenId::parse(&id)?;
        let store = app.access.store().clone();
        blocking(move || store.revoke(&id)).await.map(|_| ())
    }
    .await;
    app.audit
        .record(&caller, "token.revoke", Some(&id), &result);
    result.map(|()| StatusCode::NO_CONTENT)
}

/// Replaces the VEs a tenant's token may touch.
#[utoipa::path(put, path = "/v1/tokens/{id}/ves", tag = "tokens", request_body = TokenVes,
    params(("id" = String, Path, description = "token id")),
    responses((status = 200, body = TokenBody), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_ves(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<TokenVes>,
) -> ApiResult<Json<TokenBody>> {
    caller.require_host_admin("manage tokens")?;
    let result = async {
        let tid = TokenId::parse(&id)?;
        let ves = granted(&app, &body.ves).await?;
        let store = app.access.store().clone();
        blocking(move || store.set_ves(&tid, ves)).await
    }
    .await;
    app.audit
        .record(&caller, "token.set_ves", Some(&id), &result);
    Ok(Json(TokenBody::from(&result?)))
}

/// Each VE of `ids` with its uuid now.
async fn granted(app: &AppState, ids: &[String]) -> ApiResult<BTreeMap<VeId, String>> {
    if ids.len() > 10_000 {
        return Err(ApiError::bad_input("at most 10,000 VEs per token"));
    }
    let ids = ids
        .iter()
        .map(|s| VeId::parse(s).map_err(|e| ApiError::bad_input(e.to_string())))
        .collect::<ApiResult<Vec<_>>>()?;
    app.read(move |k| {
        ids.into_iter()
            .map(|id| k.config(&id).map(|c| (id, c.uuid)))
            .collect()
    })
    .await
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, kennel_api::ApiAccessError> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("the token file task failed: {e}")))?
        .map_err(ApiError::from)
}
