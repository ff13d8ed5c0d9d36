//! Who is asking: the bearer token of a request (or root on the Unix
//! socket) turned into a [`Principal`], with failed attempts rate-limited
//! per client address.
//!
//! Tokens are checked against the token file (`kennel_api::store`) as it
//! is now: the file's identity (inode, size, modification time) is looked
//! at on every request, and a change drops every remembered check, so a
//! revoked token is refused from the next request on. A token once
//! checked is remembered by a SHA-256 of it: its Argon2id hash (tens of
//! milliseconds of CPU, on purpose) is computed once per token, not per
//! request, and at most two at a time.

pub mod limiter;
pub mod slots;

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use kennel_api::{Principal, Role, Token, TokenId, TokenRecord, TokenStore};
use kennel_ve::VeId;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

pub use limiter::FailLimiter;

use crate::app::AppState;
use crate::error::ApiError;

/// Token checks that may wait for a hash at once.
const MAX_WAITING: usize = 64;

/// Where a request came from (put on each request by `serve`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// The Unix socket, with the connecting process's uid.
    Unix {
        uid: u32,
    },
    Tcp(IpAddr),
}

impl Peer {
    /// The key failed attempts are counted under.
    fn limit_key(self) -> Option<IpAddr> {
        match self {
            Peer::Tcp(ip) => Some(ip),
            Peer::Unix { .. } => None,
        }
    }

    pub fn is_loopback(self) -> bool {
        match self {
            Peer::Tcp(ip) => ip.is_loopback(),
            Peer::Unix { .. } => true,
        }
    }
}

/// The token file as last read.
#[derive(Default)]
struct Cache {
    /// (inode, size, mtime ns) of the file; `None`: no file.
    stamp: Option<(u64, u64, i128)>,
    records: Arc<Vec<TokenRecord>>,
    /// SHA-256 of a whole token → its id, for tokens already checked.
    verified: HashMap<[u8; 32], TokenId>,
    /// SHA-256 of tokens found wrong (bounded): not hashed again.
    refused: std::collections::HashSet<[u8; 32]>,
}

/// Tokens found wrong that are remembered (then forgotten all at once).
const MAX_REFUSED: usize = 4096;

pub struct Access {
    store: TokenStore,
    cache: Mutex<Cache>,
    hashing: Semaphore,
    /// One check per token at a time: requests with a token being
    /// checked wait for that check, uncounted (a panel's workers with a
    /// new token arrive together).
    gates: Mutex<HashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>>,
    /// Checks waiting for [`Access::hashing`].
    waiting: AtomicUsize,
    pub fails: FailLimiter,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("store", &self.store)
            .finish()
    }
}

impl Access {
    pub fn new(store: TokenStore, fails: FailLimiter) -> Self {
        Access {
            store,
            cache: Mutex::new(Cache::default()),
            hashing: Semaphore::new(2),
            gates: Mutex::new(HashMap::new()),
            waiting: AtomicUsize::new(0),
            fails,
        }
    }

    pub fn store(&self) -> &TokenStore {
        &self.store
    }

    /// The principal of a request with `authorization` (the header's
    /// value) from `peer`.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        peer: Peer,
    ) -> Result<Principal, ApiError> {
        let Some(value) = authorization else {
            return match peer {
                Peer::Unix { uid: 0 } => Ok(Principal::root()),
                _ => Err(unauthorized(
                    "send a token: Authorization: Bearer TOKEN (make one with `kennel api token create`)",
                )),
            };
        };
        // A token already checked passes, even from an address that
        // others' failures have blocked (a panel behind one address).
        if let Some(p) = self.known(value)? {
            return Ok(p);
        }
        let digest = bearer(value).map(|(_, d)| d);
        let gate = digest.map(|d| {
            let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(gates.entry(d).or_default())
        });
        let result = self
            .authenticate_gated(value, peer, digest, gate.as_deref())
            .await;
        if let Some(d) = digest {
            let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
            if gates.get(&d).is_some_and(|g| Arc::strong_count(g) <= 2) {
                gates.remove(&d);
            }
        }
        result
    }

    /// [`Access::authenticate`] for a token not known to be good, one
    /// check of each token at a time (`gate`).
    async fn authenticate_gated(
        &self,
        value: &str,
        peer: Peer,
        digest: Option<[u8; 32]>,
        gate: Option<&tokio::sync::Mutex<()>>,
    ) -> Result<Principal, ApiError> {
        let _turn = match gate {
            Some(g) => Some(g.lock().await),
            None => None,
        };
        // Checked by the request this one waited for.
        if let Some(p) = self.known(value)? {
            return Ok(p);
        }
        let refused = digest.is_some_and(|d| self.lock().refused.contains(&d));
        // Any other attempt counts against its address before any hash is
        // computed, in one step: a burst cannot outrun the limit; a
        // success is forgiven.
        let ip = peer.limit_key();
        if let Some(ip) = ip {
            if let Err(wait) = self.fails.attempt(ip) {
                return Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_requests",
                    format!(
                        "too many failed attempts from {ip}: try again in {} s",
                        wait.as_secs().max(1)
                    ),
                ));
            }
        }
        let checked = if refused {
            None
        } else {
            self.check(value).await?
        };
        match checked {
            Some(p) => {
                if let Some(ip) = ip {
                    self.fails.forgive(ip);
                }
                Ok(p)
            }
            None => {
                if let Some(d) = digest {
                    let mut cache = self.lock();
                    if cache.refused.len() >= MAX_REFUSED {
                        cache.refused.clear();
                    }
                    cache.refused.insert(d);
                }
                Err(unauthorized(
                    "the token is not valid (revoked, mistyped, or for another host)",
                ))
            }
        }
    }

    /// The principal of a token already checked (no hash); `None`
    /// otherwise.
    fn known(&self, value: &str) -> Result<Option<Principal>, ApiError> {
        let Some((_, digest)) = bearer(value) else {
            return Ok(None);
        };
        let records = self.current()?;
        Ok(self.verified(&digest, &records))
    }

    /// The principal of the token whose digest is `digest`, if it was
    /// checked against `records` and is still one of them.
    fn verified(&self, digest: &[u8; 32], records: &[TokenRecord]) -> Option<Principal> {
        let id = self.lock().verified.get(digest).cloned()?;
        records
            .iter()
            .find(|r| r.id == id)
            .map(TokenRecord::principal)
    }

    /// The principal of a request already let in, checked again (a
    /// long session: an event stream, a console): as
    /// [`Access::authenticate`], but without the per-address limiter,
    /// whose refusal says nothing of the token. Any error ends the
    /// session (fail closed); its client may connect again.
    pub async fn recheck(
        &self,
        authorization: Option<&str>,
        peer: Peer,
    ) -> Result<Principal, ApiError> {
        match authorization {
            None if peer == (Peer::Unix { uid: 0 }) => Ok(Principal::root()),
            None => Err(unauthorized("the session has no token")),
            Some(value) => self
                .check(value)
                .await?
                .ok_or_else(|| unauthorized("the token was revoked")),
        }
    }

    /// The principal of header value `value`; `None`: not a valid token.
    async fn check(&self, value: &str) -> Result<Option<Principal>, ApiError> {
        let Some((token, digest)) = bearer(value) else {
            return Ok(None);
        };
        let records = self.current()?;
        if let Some(p) = self.verified(&digest, &records) {
            return Ok(Some(p));
        }
        if !records.iter().any(|r| r.id == token.id) {
            return Ok(None);
        }
        // At most MAX_WAITING checks wait for a hash: beyond, refuse
        // rather than queue without bound.
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= MAX_WAITING {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "too many new tokens are being checked: try again in a moment",
            ));
        }
        let permit = self.hashing.acquire().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let _permit = permit.map_err(|_| ApiError::internal("the token checker is closed"))?;
        // Many requests with one new token arrive at once (a panel's
        // workers): the first to get here checks it, the others find it
        // checked.
        if let Some(p) = self.verified(&digest, &records) {
            return Ok(Some(p));
        }
        let recs = Arc::clone(&records);
        let checked = tokio::task::spawn_blocking(move || {
            TokenStore::verify(&recs, &token).map(TokenRecord::principal)
        })
        .await
        .map_err(|e| ApiError::internal(format!("checking a token failed: {e}")))?;
        if let Some(p) = &checked {
            let mut cache = self.lock();
            // Only if the file is still the one checked against.
            if Arc::ptr_eq(&cache.records, &records) {
                if let Some(id) = &p.token {
                    cache.verified.insert(digest, id.clone());
                }
            }
        }
        Ok(checked)
    }

    /// The token records, read again if the file changed.
    fn current(&self) -> Result<Arc<Vec<TokenRecord>>, ApiError> {
        let stamp = match std::fs::metadata(self.store.file()) {
            Ok(m) => Some((
                m.ino(),
                m.size(),
                i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(ApiError::internal(format!("stat the token file: {e}"))),
        };
        let mut cache = self.lock();
        if cache.stamp != stamp || (stamp.is_some() && cache.records.is_empty()) {
            let records = self.store.load().map_err(ApiError::from)?;
            cache.records = Arc::new(records);
            cache.verified.clear();
            cache.refused.clear();
            cache.stamp = stamp;
        }
        Ok(Arc::clone(&cache.records))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The token of an `Authorization` header's value, with the SHA-256 of
/// it that checked tokens are remembered by.
fn bearer(value: &str) -> Option<(Token, [u8; 32])> {
    let token = value
        .strip_prefix("Bearer ")
        .map(str::trim)
        .and_then(Token::parse)?;
    let digest: [u8; 32] = Sha256::digest(token.reveal().as_bytes()).into();
    Some((token, digest))
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

/// The principal of a request and where it came from, for handlers.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal, pub Peer);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<Peer>()
            .copied()
            .ok_or_else(|| ApiError::internal("a request without its peer"))?;
        let auth = parts
            .headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or(""));
        app.access
            .authenticate(auth, peer)
            .await
            .map(|p| Caller(p, peer))
    }
}

impl Caller {
    /// The caller's role must be at least `need` to `what`.
    pub fn require(&self, need: Role, what: &str) -> Result<(), ApiError> {
        if self.0.may(need) {
            Ok(())
        } else {
            Err(ApiError::forbidden(what))
        }
    }

    /// Host-wide work (templates, tokens, creating VEs): admins without a
    /// tenant only.
    pub fn require_host_admin(&self, what: &str) -> Result<(), ApiError> {
        if self.0.is_host_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden(what))
        }
    }

    /// VE `id` parsed and within reach: a VE the caller may not see is
    /// answered as a missing one, before anything of it is read.
    pub fn ve(&self, id: &str) -> Result<VeId, ApiError> {
        let id = VeId::parse(id).map_err(|e| ApiError::bad_input(e.to_string()))?;
        if self.0.sees(&id) {
            Ok(id)
        } else {
            Err(ApiError::no_such_ve(&id))
        }
    }

    /// The uuid a tenant was granted VE `id` with (`None` for a caller
    /// that reaches every VE): what a change for it must still find under
    /// the VE's lock.
    pub fn granted_uuid(&self, id: &VeId) -> Option<String> {
        self.0.ves.as_ref().and_then(|v| v.get(id).cloned())
    }

    /// [`Caller::ve`], and for a tenant also the VE's uuid against its
    /// grant (a VE made again under a granted id is not the tenant's):
    /// every check of visibility comes before any check of the role, so
    /// a VE the caller may not see never answers anything but 404.
    pub async fn visible_ve(&self, app: &AppState, id: &str) -> Result<VeId, ApiError> {
        let id = self.ve(id)?;
        if self.0.ves.is_some() {
            let rid = id.clone();
            let cfg = app.read(move |k| k.config(&rid)).await?;
            if !self.0.sees_uuid(&id, &cfg.uuid) {
                return Err(ApiError::no_such_ve(&id));
            }
        }
        Ok(id)
    }
}
