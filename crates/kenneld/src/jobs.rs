//! Long operations (template builds, backups) as asynchronous jobs: the
//! request answers at once with a job; the job's progress and result are
//! read at `/v1/jobs/{id}`.
//!
//! A job's id is not its place in the order jobs were made: were it,
//! a tenant's two jobs would tell how many jobs others (other tenants,
//! the host) ran between them. It is the place put through a keyed hash
//! whose key is drawn at random when the service starts (SipHash, from
//! the standard library's `RandomState`), cut to 53 bits so that every
//! JSON client reads it exactly. The table is kept in the order jobs
//! were made, so a listing is still oldest first.

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Job {
    pub id: u64,
    /// What it does, e.g. `template.create busybox`.
    pub what: String,
    /// `running`, `succeeded` or `failed`.
    pub state: String,
    /// The last progress line its command printed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// Its error, when failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::error::ErrorBody>,
    pub started: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
    /// Who asked (a token's id; `root` on the Unix socket).
    #[serde(skip)]
    pub owner: Option<kennel_api::TokenId>,
}

/// Where a running job says how far it is (its `progress`).
#[derive(Debug, Clone)]
pub struct Progress {
    jobs: Arc<Jobs>,
    id: u64,
}

impl Progress {
    /// The job's progress is now `line` (until the next one, or its end).
    pub fn say(&self, line: String) {
        self.jobs.set_progress(self.id, line);
    }
}

/// Jobs ended are kept this many of one owner (token), newest: one
/// tenant's many jobs do not push another's results out before it read
/// them (with one bound over all, they did).
const KEEP_ENDED_PER_OWNER: usize = 64;
/// And this many over all owners (tokens are few and made by admins).
const KEEP_ENDED: usize = 4096;

#[derive(Debug, Default)]
pub struct Jobs {
    /// By the order they were made (not their ids).
    table: Mutex<Table>,
    /// The key that makes places into ids.
    ids: std::collections::hash_map::RandomState,
}

#[derive(Debug, Default)]
struct Table {
    /// Jobs made so far (the next one's place).
    made: u64,
    jobs: BTreeMap<u64, Job>,
}

impl Table {
    /// Forgets the oldest ended jobs beyond [`KEEP_ENDED_PER_OWNER`] of
    /// one owner and [`KEEP_ENDED`] in all.
    fn trim(&mut self) {
        let mut per_owner: std::collections::HashMap<Option<&kennel_api::TokenId>, usize> =
            std::collections::HashMap::new();
        let mut kept = 0;
        let mut old = Vec::new();
        // Newest first: what is beyond a bound is the oldest.
        for (place, j) in self.jobs.iter().rev() {
            if j.ended.is_none() {
                continue;
            }
            let n = per_owner.entry(j.owner.as_ref()).or_default();
            if *n >= KEEP_ENDED_PER_OWNER || kept >= KEEP_ENDED {
                old.push(*place);
            } else {
                *n += 1;
                kept += 1;
            }
        }
        for place in old {
            self.jobs.remove(&place);
        }
    }

    fn by_id(&mut self, id: u64) -> Option<&mut Job> {
        self.jobs.values_mut().find(|j| j.id == id)
    }
}

/// Ids are below 2^53: a JSON number any client reads exactly.
const ID_BITS: u64 = (1 << 53) - 1;

fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

impl Jobs {
    /// Starts `work` as a job and returns it as it is now.
    pub fn spawn<F>(
        self: &Arc<Self>,
        what: String,
        owner: Option<kennel_api::TokenId>,
        work: F,
    ) -> Job
    where
        F: std::future::Future<Output = Result<(), ApiError>> + Send + 'static,
    {
        self.spawn_with(what, owner, |_| work)
    }

    /// [`Jobs::spawn`] for work that says how far it is: `make` gets the
    /// job's [`Progress`] and returns the work.
    pub fn spawn_with<M, F>(
        self: &Arc<Self>,
        what: String,
        owner: Option<kennel_api::TokenId>,
        make: M,
    ) -> Job
    where
        M: FnOnce(Progress) -> F,
        F: std::future::Future<Output = Result<(), ApiError>> + Send + 'static,
    {
        let (place, job) = {
            let mut t = self.lock();
            t.made += 1;
            let place = t.made;
            // A new id (0 and ids in use never: a clash of two of 2^53 is
            // as good as never, but must not confuse two jobs).
            let mut id = 0;
            for salt in 0u64.. {
                id = self.ids.hash_one((place, salt)) & ID_BITS;
                if id != 0 && t.by_id(id).is_none() {
                    break;
                }
            }
            let job = Job {
                id,
                what,
                state: "running".into(),
                progress: None,
                error: None,
                started: now(),
                ended: None,
                owner,
            };
            t.jobs.insert(place, job.clone());
            (place, job)
        };
        let me = Arc::clone(self);
        let id = job.id;
        let work = make(Progress {
            jobs: Arc::clone(self),
            id,
        });
        tokio::spawn(async move {
            let result = work.await;
            let mut t = me.lock();
            if let Some(j) = t.jobs.get_mut(&place) {
                j.ended = Some(now());
                match result {
                    Ok(()) => j.state = "succeeded".into(),
                    Err(e) => {
                        j.state = "failed".into();
                        j.error = Some(crate::error::ErrorBody {
                            code: e.code.to_string(),
                            message: e.message,
                        });
                    }
                }
            }
            t.trim();
        });
        job
    }

    fn set_progress(&self, id: u64, line: String) {
        if let Some(j) = self.lock().by_id(id) {
            if j.ended.is_none() {
                j.progress = Some(line);
            }
        }
    }

    pub fn get(&self, id: u64) -> Option<Job> {
        self.lock().by_id(id).map(|j| j.clone())
    }

    pub fn list(&self) -> Vec<Job> {
        self.lock().jobs.values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ids_tell_nothing_of_the_order_and_a_listing_keeps_it() {
        let jobs = Arc::new(Jobs::default());
        let made: Vec<u64> = (0..64)
            .map(|n| {
                jobs.spawn(format!("job {n}"), None, std::future::pending())
                    .id
            })
            .collect();
        let listed: Vec<u64> = jobs.list().iter().map(|j| j.id).collect();
        assert_eq!(listed, made, "oldest first");
        assert!(made.iter().all(|&id| id != 0 && id <= ID_BITS));
        let neighbours = made.windows(2).filter(|w| w[0].abs_diff(w[1]) < 1 << 20);
        assert_eq!(neighbours.count(), 0, "{made:?}");
        assert_eq!(jobs.get(made[7]).map(|j| j.what), Some("job 7".into()));
        assert!(jobs.get(made[7] ^ 1).is_none());
    }

    #[tokio::test]
    async fn one_owners_many_jobs_do_not_push_out_anothers() {
        let jobs = Arc::new(Jobs::default());
        let owner = |s: &str| Some(kennel_api::TokenId::parse(s).expect("token id"));
        let theirs = jobs
            .spawn("theirs".into(), owner("aaaaaaaaaaaaaaaa"), async { Ok(()) })
            .id;
        // More than one bound over all owners (256) once was.
        for n in 0..300 {
            jobs.spawn(format!("mine {n}"), owner("bbbbbbbbbbbbbbbb"), async {
                Ok(())
            });
        }
        // Each ends in a task of its own.
        for _ in 0..1000 {
            tokio::task::yield_now().await;
        }
        assert!(jobs.get(theirs).is_some(), "another owner's result is kept");
        let mine = jobs
            .list()
            .iter()
            .filter(|j| j.what.starts_with("mine"))
            .count();
        assert_eq!(mine, KEEP_ENDED_PER_OWNER);
        let newest = "mine 299";
        assert!(
            jobs.list().iter().any(|j| j.what == newest),
            "the newest kept"
        );
    }
}
