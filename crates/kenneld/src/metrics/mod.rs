//! What `/metrics` serves: a snapshot of every VE the scraper may see
//! (state, uptime, the kernel's counters, network and disk use), of the
//! host and of kenneld itself, encoded in the Prometheus (OpenMetrics)
//! text format.
//!
//! Why it is shaped this way:
//!
//! * **Cost.** A scrape reads a few dozen small files per running VE
//!   (`Kennel::sample`: configuration, run state, cgroup counters,
//!   network record, disk image), never a walk of its processes: with
//!   1,000 VEs that is tens of thousands of reads, spread over a few
//!   blocking threads ([`read`]); the network counters of all VEs come
//!   from one read of `/proc/net/dev` ([`netdev`]).
//! * **One collection for many scrapers.** Scrapes of everything share a
//!   collection that started after they asked ([`Snapshots`]): two
//!   Prometheus servers, or a scraper that retries, cost one walk, and
//!   no answer is older than its question.
//! * **Who sees what** ([`View`]): a tenant's scrape reads its own VEs
//!   only and shows nothing of the host; VEs it may not see are never
//!   read, so their absence is all it learns.

mod encode;
mod families;
mod host;
mod netdev;
mod read;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kennel_api::Principal;
use kennel_ve::lifecycle::stat::VeSample;
use kennel_ve::VeId;
use tokio::sync::Mutex;

pub use encode::{encode, CONTENT_TYPE};
pub use netdev::LinkCounters;

use crate::app::App;
use crate::error::ApiResult;

/// Whose series a scrape shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum View {
    /// Every VE, the host and kenneld: a host-wide token, root on the
    /// Unix socket, or a tokenless client on loopback.
    All,
    /// These VEs (id and the uuid granted), and of kenneld only its
    /// build: a tenant's token, or one limited to some VEs.
    Only(BTreeMap<VeId, String>),
}

impl View {
    pub fn of(p: &Principal) -> View {
        match &p.ves {
            None => View::All,
            Some(granted) => View::Only(granted.clone()),
        }
    }

    /// Whether VE `id` with `uuid` is shown (the uuid as
    /// `Principal::sees_uuid` checks it).
    pub fn shows(&self, id: &VeId, uuid: &str) -> bool {
        match self {
            View::All => true,
            View::Only(granted) => granted.get(id).is_some_and(|u| u == uuid),
        }
    }

    /// Whether the host's and kenneld's own series are shown (they
    /// would tell a tenant how busy the others are).
    pub fn shows_host(&self) -> bool {
        matches!(self, View::All)
    }
}

/// The host's memory and load (`/proc/meminfo`, `/proc/loadavg`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HostFacts {
    pub memory_available: Option<u64>,
    pub memory_total: Option<u64>,
    pub load: Option<[f64; 3]>,
}

/// kenneld's own process (`/proc/self/stat`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessFacts {
    pub start_time_secs: Option<f64>,
    pub cpu_secs: Option<f64>,
    pub resident_bytes: Option<u64>,
}

/// One collection.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The VEs read, in id order (for [`View::Only`], those granted).
    pub ves: Vec<VeSample>,
    /// Counters of the host ends of the VEs' links, by link name.
    pub links: HashMap<String, LinkCounters>,
    /// For [`View::All`] only.
    pub host: Option<HostFacts>,
    pub process: Option<ProcessFacts>,
    /// How long the collection took.
    pub took: Duration,
}

/// Scrapes answered by this process.
static SCRAPES: AtomicU64 = AtomicU64::new(0);

/// Counts a scrape; returns how many there were before it.
pub fn count_scrape() -> u64 {
    SCRAPES.fetch_add(1, Ordering::Relaxed)
}

/// The last collection of everything, shared by the scrapes that asked
/// before it started (see the module doc).
#[derive(Debug, Default)]
pub struct Snapshots {
    last: Mutex<Option<(Instant, Arc<Snapshot>)>>,
}

impl Snapshots {
    pub const fn new() -> Self {
        Snapshots {
            last: Mutex::const_new(None),
        }
    }

    /// A snapshot for `view` that was started after this call.
    pub async fn get(&self, app: &App, view: &View) -> ApiResult<Arc<Snapshot>> {
        let asked = Instant::now();
        Ok(match view {
            View::Only(granted) => {
                let ids: Vec<VeId> = granted.keys().cloned().collect();
                Arc::new(read::collect(app, Some(ids)).await?)
            }
            View::All => {
                let mut last = self.last.lock().await;
                match last.as_ref() {
                    Some((started, s)) if *started >= asked => Arc::clone(s),
                    _ => {
                        let started = Instant::now();
                        let s = Arc::new(read::collect(app, None).await?);
                        *last = Some((started, Arc::clone(&s)));
                        s
                    }
                }
            }
        })
    }
}

/// The service's one set of snapshots (one service per process).
pub static SNAPSHOTS: Snapshots = Snapshots::new();

#[cfg(test)]
mod tests {
    use kennel_api::Role;

    use super::*;

    fn id(s: &str) -> VeId {
        VeId::parse(s).expect("id")
    }

    #[test]
    fn the_view_of_a_principal() {
        assert_eq!(View::of(&Principal::root()), View::All);
        let mut granted = BTreeMap::new();
        granted.insert(id("7"), "u7".to_string());
        let tenant = Principal {
            token: None,
            role: Role::Viewer,
            tenant: None,
            ves: Some(granted.clone()),
        };
        let v = View::of(&tenant);
        assert!(v.shows(&id("7"), "u7"));
        assert!(!v.shows(&id("7"), "other"));
        assert!(!v.shows(&id("8"), "u7"));
        assert!(!v.shows_host());
        assert!(View::All.shows(&id("8"), "anything") && View::All.shows_host());
    }
}
