//! `/v1/ves/{id}/stat`: a running VE's counters, as `kennel stat ID`.

use axum::extract::{Path, State};
use axum::Json;
use kennel_ve::lifecycle::stat::{Accounting, Counter};
use serde::Serialize;
use utoipa::ToSchema;

use crate::access::Caller;
use crate::app::AppState;
use crate::error::ApiResult;

/// `/stat` reads at once.
const STAT_AT_ONCE: usize = 4;

/// One resource: held now, peak, limit (`null`: none) and how often the
/// limit was hit.
#[derive(Debug, Serialize, ToSchema)]
pub struct CounterBody {
    pub held: Option<u64>,
    pub peak: Option<u64>,
    pub limit: Option<u64>,
    pub fails: Option<u64>,
}

impl From<Counter> for CounterBody {
    fn from(c: Counter) -> Self {
        CounterBody {
            held: c.held,
            peak: c.peak,
            limit: c.limit,
            fails: c.fails,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CpuBody {
    pub usage_ns: Option<u64>,
    pub throttled: Option<u64>,
    pub throttled_ns: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IoBody {
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub reads: u64,
    pub writes: u64,
}

/// A running VE's counters.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatBody {
    pub ve: String,
    pub memory: CounterBody,
    pub swap: CounterBody,
    pub kernel_memory: CounterBody,
    pub processes: CounterBody,
    pub open_files: CounterBody,
    pub cpu: CpuBody,
    pub io: Option<IoBody>,
    pub oom_kills: Option<u64>,
}

pub fn stat_body(ve: String, a: Accounting) -> StatBody {
    StatBody {
        ve,
        memory: a.memory.into(),
        swap: a.swap.into(),
        kernel_memory: a.kernel_memory.into(),
        processes: a.processes.into(),
        open_files: a.open_files.into(),
        cpu: CpuBody {
            usage_ns: a.cpu.usage_ns,
            throttled: a.cpu.throttled,
            throttled_ns: a.cpu.throttled_ns,
        },
        io: a.io.map(|i| IoBody {
            read_bytes: i.read_bytes,
            write_bytes: i.write_bytes,
            reads: i.reads,
            writes: i.writes,
        }),
        oom_kills: a.oom_kills,
    }
}

/// A running VE's counters: held, peak, limit and fails of each
/// resource, CPU time, I/O and OOM kills.
#[utoipa::path(get, path = "/v1/ves/{id}/stat", tag = "ves",
    params(("id" = String, Path, description = "VE id")),
    responses((status = 200, body = StatBody), (status = 404, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn stat(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<StatBody>> {
    let id = caller.visible_ve(&app, &id).await?;
    // Counting a VE's open files walks its processes' descriptors for
    // up to 2 s, as long as its root makes it: at most STAT_AT_ONCE such
    // reads run at once, so the service's other reads never wait on
    // them.
    static STAT_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(STAT_AT_ONCE);
    let _slot = STAT_SLOTS
        .acquire()
        .await
        .map_err(|_| crate::error::ApiError::internal("the stat readers are closed"))?;
    let rid = id.clone();
    let a = app.read(move |k| k.stat(&rid)).await?;
    Ok(Json(stat_body(id.to_string(), a)))
}
