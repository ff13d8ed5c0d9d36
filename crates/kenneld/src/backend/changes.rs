//! Bounds on changes in flight: one per VE (a second one is answered
//! 409 `busy` at once, without a process, rather than queue on the VE's
//! lock for 20 s), and at most [`MAX_CHANGES`] `kennel` processes for
//! changes at a time (429 beyond). So no client can make the service
//! start processes without bound.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use kennel_ve::VeId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// Runs a change, with its audit line, to its end in a task of its own,
/// whatever becomes of the request that asked for it. A client that goes
/// away (or resets its HTTP/2 stream) has hyper drop the handler: done
/// in the handler, that gave back the VE's claim and skipped the audit
/// line while the `kennel` process the change started went on, so a
/// client that asked and hung up at once could start processes without
/// bound (found by a hostile review; test
/// `review::changes_outlive_their_clients_and_keep_their_claim`).
pub async fn detached<T, F>(change: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: std::future::Future<Output = Result<T, ApiError>> + Send + 'static,
{
    tokio::spawn(change)
        .await
        .map_err(|e| ApiError::internal(format!("a change's task failed: {e}")))?
}

/// Changes running at once, over all VEs.
pub const MAX_CHANGES: usize = 64;

/// Backups running at once (each reads a whole disk and writes a file).
pub const MAX_BACKUPS: usize = 4;

#[derive(Debug)]
pub struct Changes {
    ves: Mutex<HashSet<VeId>>,
    slots: Arc<Semaphore>,
    limit: usize,
}

impl Default for Changes {
    fn default() -> Self {
        Self::with_limit(MAX_CHANGES)
    }
}

/// A change to one VE in flight; released when dropped.
#[derive(Debug)]
pub struct Claim {
    changes: Arc<Changes>,
    id: VeId,
    _slot: OwnedSemaphorePermit,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.changes.lock().remove(&self.id);
    }
}

impl Changes {
    /// One per VE, at most `limit` over all (e.g. backups, which are
    /// long and heavy on the disk).
    pub fn with_limit(limit: usize) -> Self {
        Changes {
            ves: Mutex::new(HashSet::new()),
            slots: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }

    /// Claims VE `id` for one change.
    pub fn claim(self: &Arc<Self>, id: &VeId) -> Result<Claim, ApiError> {
        let slot = Arc::clone(&self.slots).try_acquire_owned().map_err(|_| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                format!(
                    "{} changes are under way: try again in a moment",
                    self.limit
                ),
            )
        })?;
        if !self.lock().insert(id.clone()) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "busy",
                format!("VE {id} is busy: another change to it is under way (try again)"),
            ));
        }
        Ok(Claim {
            changes: Arc::clone(self),
            id: id.clone(),
            _slot: slot,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<VeId>> {
        self.ves.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_change_per_ve_and_a_bound_over_all() {
        let c = Arc::new(Changes::default());
        let a = VeId::parse("a").expect("id");
        let first = c.claim(&a).expect("free");
        let second = c.claim(&a).expect_err("busy");
        assert_eq!(second.code, "busy");
        drop(first);
        let mut held = vec![c.claim(&a).expect("free again")];
        for n in 1..MAX_CHANGES {
            held.push(
                c.claim(&VeId::parse(&format!("v{n}")).expect("id"))
                    .expect("slot"),
            );
        }
        let full = c
            .claim(&VeId::parse("z").expect("id"))
            .expect_err("no slot");
        assert_eq!(full.code, "too_many_requests");
        drop(held);
        assert!(c.claim(&VeId::parse("z").expect("id")).is_ok());
    }
}
