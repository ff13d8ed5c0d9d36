//! Long operations (template builds, backups) as asynchronous jobs: the
//! request answers at once with a job; the job's progress and result are
//! read at `/v1/jobs/{id}`.

use std::collections::BTreeMap;
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

/// Jobs ended are kept this many, newest.
const KEEP_ENDED: usize = 256;

#[derive(Debug, Default)]
pub struct Jobs {
    table: Mutex<BTreeMap<u64, Job>>,
}

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
        let job = {
            let mut t = self.lock();
            let id = t.keys().next_back().map_or(1, |k| k + 1);
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
            t.insert(id, job.clone());
            job
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
            if let Some(j) = t.get_mut(&id) {
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
            let ended: Vec<u64> = t
                .values()
                .filter(|j| j.ended.is_some())
                .map(|j| j.id)
                .collect();
            for old in ended.iter().take(ended.len().saturating_sub(KEEP_ENDED)) {
                t.remove(old);
            }
        });
        job
    }

    fn set_progress(&self, id: u64, line: String) {
        if let Some(j) = self.lock().get_mut(&id) {
            if j.ended.is_none() {
                j.progress = Some(line);
            }
        }
    }

    pub fn get(&self, id: u64) -> Option<Job> {
        self.lock().get(&id).cloned()
    }

    pub fn list(&self) -> Vec<Job> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Job>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}
