//! How many commands run through `exec` at once: at most [`MAX_EXECS`]
//! over all VEs, [`MAX_EXECS_PER_VE`] in one VE and
//! [`MAX_EXECS_PER_TENANT`] for one tenant (429 beyond). Apart from the
//! bound on changes (backend/changes.rs): a long command must not make
//! its VE "busy" for a restart, and a tenant with many VEs cannot take
//! every place.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use axum::http::StatusCode;
use kennel_ve::VeId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{ApiError, ApiResult};

/// Commands running at once over all VEs.
pub const MAX_EXECS: usize = 32;
/// Commands running at once in one VE.
pub const MAX_EXECS_PER_VE: usize = 4;
/// Commands running at once for one tenant, over its VEs.
pub const MAX_EXECS_PER_TENANT: usize = 8;
/// Commands of all tenants at once: the rest of [`MAX_EXECS`] is kept
/// for host callers (without it, four tenants took every place and the
/// host's own administrators got 429).
pub const MAX_TENANT_EXECS: usize = MAX_EXECS - 8;

/// Commands running: a bound over all VEs, and counts per VE and per
/// tenant.
struct Running {
    slots: Arc<Semaphore>,
    tenants: Arc<Semaphore>,
    counts: Mutex<HashMap<Key, usize>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Ve(VeId),
    Tenant(String),
}

fn running() -> &'static Running {
    static RUNNING: OnceLock<Running> = OnceLock::new();
    RUNNING.get_or_init(|| Running {
        slots: Arc::new(Semaphore::new(MAX_EXECS)),
        tenants: Arc::new(Semaphore::new(MAX_TENANT_EXECS)),
        counts: Mutex::new(HashMap::new()),
    })
}

/// One command's place; given back when dropped.
pub(super) struct Slot {
    keys: Vec<Key>,
    _permit: OwnedSemaphorePermit,
    _tenants: Option<OwnedSemaphorePermit>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = running().counts.lock().unwrap_or_else(|e| e.into_inner());
        for k in &self.keys {
            if let Some(n) = counts.get_mut(k) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    counts.remove(k);
                }
            }
        }
    }
}

/// A place for a command in VE `id` for `tenant` (none: a host caller).
pub(super) fn claim(id: &VeId, tenant: Option<String>) -> ApiResult<Slot> {
    let busy = |m: String| ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", m);
    let r = running();
    let permit = Arc::clone(&r.slots).try_acquire_owned().map_err(|_| {
        busy(format!(
            "{MAX_EXECS} commands are running in VEs: try again in a moment"
        ))
    })?;
    let tenants = match tenant {
        Some(_) => Some(Arc::clone(&r.tenants).try_acquire_owned().map_err(|_| {
            busy(format!(
                "{MAX_TENANT_EXECS} commands of tenants are running in VEs: try again in a moment"
            ))
        })?),
        None => None,
    };
    let mut keys = vec![(Key::Ve(id.clone()), MAX_EXECS_PER_VE)];
    if let Some(t) = tenant {
        keys.push((Key::Tenant(t), MAX_EXECS_PER_TENANT));
    }
    let mut counts = r.counts.lock().unwrap_or_else(|e| e.into_inner());
    for (k, max) in &keys {
        if counts.get(k).copied().unwrap_or(0) >= *max {
            return Err(busy(match k {
                Key::Ve(_) => {
                    format!("{max} commands are running in VE {id}: try again when one has ended")
                }
                Key::Tenant(_) => format!(
                    "{max} commands of this tenant are running: try again when one has ended"
                ),
            }));
        }
    }
    for (k, _) in &keys {
        *counts.entry(k.clone()).or_insert(0) += 1;
    }
    Ok(Slot {
        keys: keys.into_iter().map(|(k, _)| k).collect(),
        _permit: permit,
        _tenants: tenants,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The places are the process's: one test at a time holds them.
    fn serial() -> std::sync::MutexGuard<'static, ()> {
        static SERIAL: Mutex<()> = Mutex::new(());
        SERIAL.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[test]
    fn commands_are_bounded_per_ve_and_per_tenant() {
        let _serial = serial();
        let a = VeId::parse("exec-test-a").expect("id");
        let held: Vec<Slot> = (0..MAX_EXECS_PER_VE)
            .map(|_| claim(&a, None).expect("a place"))
            .collect();
        assert_eq!(
            claim(&a, None).err().map(|e| e.code),
            Some("too_many_requests")
        );
        drop(held);
        assert!(claim(&a, None).is_ok(), "given back");
        let t = || Some("exec-test-tenant".to_string());
        let held: Vec<Slot> = (0..MAX_EXECS_PER_TENANT)
            .map(|n| {
                let id = VeId::parse(&format!("exec-test-t{n}")).expect("id");
                claim(&id, t()).expect("a place")
            })
            .collect();
        let more = VeId::parse("exec-test-more").expect("id");
        assert_eq!(
            claim(&more, t()).err().map(|e| e.code),
            Some("too_many_requests"),
            "the tenant's share is taken"
        );
        assert!(claim(&more, None).is_ok(), "the host's is not");
        drop(held);
        assert!(claim(&more, t()).is_ok(), "given back");
    }

    #[test]
    fn tenants_leave_places_for_the_host() {
        let _serial = serial();
        // Tenants of 8 places each, one VE each, until tenants are full.
        let held: Vec<Slot> = (0..MAX_TENANT_EXECS)
            .map(|n| {
                let id = VeId::parse(&format!("exec-host-t{n}")).expect("id");
                claim(
                    &id,
                    Some(format!("exec-host-tenant-{}", n / MAX_EXECS_PER_TENANT)),
                )
                .expect("a place")
            })
            .collect();
        let id = VeId::parse("exec-host-last").expect("id");
        assert_eq!(
            claim(&id, Some("exec-host-another".into()))
                .err()
                .map(|e| e.code),
            Some("too_many_requests"),
            "another tenant waits"
        );
        assert!(claim(&id, None).is_ok(), "the host has its own");
        drop(held);
    }
}
