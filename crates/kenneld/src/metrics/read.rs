//! Reading a snapshot: the VEs' samples in a few parts at once, each on a
//! blocking thread, and bounded across all scrapes, so that many
//! scrapers at once never take more threads than a scrape alone does
//! (the rest wait for a permit).
//!
//! Each VE is a few dozen small files: with 1,000 VEs a single thread
//! spends most of a scrape in system calls, which threads on other cores
//! overlap. More threads than cores gain nothing and cost the service's
//! other requests their share of the CPU.

use std::sync::Arc;
use std::time::Instant;

use kennel_ve::lifecycle::stat::VeSample;
use kennel_ve::{Kennel, VeError, VeId};
use tokio::sync::Semaphore;

use super::{host, netdev, Snapshot};
use crate::app::App;
use crate::error::{ApiError, ApiResult};

/// At most this many threads read for metrics, across all scrapes.
const READERS_MAX: usize = 4;

/// Fewer VEs than this are read by one thread (a thread's start and the
/// join cost more than they save).
const PART_MIN: usize = 32;

static READERS: Semaphore = Semaphore::const_new(READERS_MAX);

/// How many threads a scrape reads with: the CPUs, at most
/// [`READERS_MAX`].
fn readers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, READERS_MAX)
}

/// Reads VEs `ids` (`None`: every VE, with the host and the process).
pub async fn collect(app: &App, ids: Option<Vec<VeId>>) -> ApiResult<Snapshot> {
    let began = Instant::now();
    let everything = ids.is_none();
    let (ids, host_uptime) = app
        .read(move |k| {
            let ids = match ids {
                Some(ids) => ids,
                None => k.ids()?,
            };
            Ok((ids, kennel_runtime::procfs::uptime_secs()))
        })
        .await?;
    let per_part = ids.len().div_ceil(readers()).max(PART_MIN);
    let mut parts = tokio::task::JoinSet::new();
    for (n, part) in ids.chunks(per_part).enumerate() {
        let part = part.to_vec();
        let k = Arc::clone(&app.kennel);
        let permit = READERS
            .acquire()
            .await
            .map_err(|_| ApiError::internal("the metrics readers are closed"))?;
        parts.spawn_blocking(move || {
            let _permit = permit;
            (n, read_part(&k, &part, host_uptime))
        });
    }
    let mut read: Vec<(usize, Vec<VeSample>)> = Vec::new();
    while let Some(done) = parts.join_next().await {
        read.push(
            done.map_err(|e| ApiError::internal(format!("reading VEs for metrics failed: {e}")))?,
        );
    }
    read.sort_by_key(|(n, _)| *n);
    let ves: Vec<VeSample> = read.into_iter().flat_map(|(_, v)| v).collect();
    let any_links = ves.iter().any(|v| !v.links.is_empty());
    let (links, host, process) = tokio::task::spawn_blocking(move || {
        let links = if any_links {
            netdev::read()
        } else {
            Default::default()
        };
        if everything {
            (links, Some(host::host_facts()), Some(host::process_facts()))
        } else {
            (links, None, None)
        }
    })
    .await
    .map_err(|e| ApiError::internal(format!("reading the host for metrics failed: {e}")))?;
    Ok(Snapshot {
        ves,
        links,
        host,
        process,
        took: began.elapsed(),
    })
}

/// The samples of `ids`, in their order; a VE that cannot be read is
/// logged and left out, so one broken VE never hides the others.
fn read_part(kennel: &Kennel, ids: &[VeId], host_uptime: Option<f64>) -> Vec<VeSample> {
    ids.iter()
        .filter_map(|id| match kennel.sample(id, host_uptime) {
            Ok(s) => s,
            Err(VeError::NoSuchVe(_)) => None,
            Err(e) => {
                tracing::warn!("metrics: VE {id}: {}", crate::error::one_line(&e));
                None
            }
        })
        .collect()
}
