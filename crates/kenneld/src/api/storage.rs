//! `/v1/storage`: the storage pool that holds VEs' disks (`kennel
//! storage info|init|remove`), for host admins; a host viewer may read
//! it. A tenant gets 403: the pool is the host's, not any VE's.
//!
//! Reading never mounts: `kennel storage info` mounts a pool that is
//! down (after a reboot), but a read here only looks at the pool's record
//! and, if it is mounted, at its space. Making and removing run the CLI's
//! own commands; making one (mkfs, maybe a loop device) is a job. One of
//! them at a time (409 `busy`); the CLI takes the host lock besides.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use kennel_storage::pool::{PoolRecord, PoolSource};
use kennel_ve::VeId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::args::KennelArgs;
use crate::access::Caller;
use crate::app::AppState;
use crate::backend::detached;
use crate::error::{ApiError, ApiResult};
use crate::jobs::Job;

/// The pool, as its record and the kernel show it.
#[derive(Debug, Serialize, ToSchema)]
pub struct StorageInfo {
    /// Whether there is a pool (`kennel storage init`, or the first
    /// `kennel create` of a VE with a disk, made it).
    pub exists: bool,
    /// The directory that holds the VEs' disks.
    pub path: Option<String>,
    /// `loop` (an XFS image in the state root), `dir` (a directory on a
    /// filesystem with reflinks) or `device` (XFS on a block device).
    pub kind: Option<String>,
    /// A loop pool's image file.
    pub image: Option<String>,
    /// A device pool's block device.
    pub device: Option<String>,
    /// False while a making was cut short (`POST /v1/storage` again).
    pub ready: bool,
    /// Whether it is mounted now (after a reboot the next command that
    /// needs it mounts it); sizes are known only then.
    pub mounted: bool,
    pub size_bytes: Option<u64>,
    pub used_bytes: Option<u64>,
    pub free_bytes: Option<u64>,
    /// The VEs that keep a disk in it (backend `image`).
    pub disks: Vec<String>,
}

fn host_only(caller: &Caller, need: kennel_api::Role, what: &str) -> ApiResult<()> {
    if caller.0.ves.is_some() || caller.0.tenant.is_some() {
        return Err(ApiError::forbidden(what));
    }
    caller.require(need, what)
}

/// The storage pool (host viewers and admins).
#[utoipa::path(get, path = "/v1/storage", tag = "storage",
    responses((status = 200, body = StorageInfo), (status = 403, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn info(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<StorageInfo>> {
    host_only(&caller, kennel_api::Role::Viewer, "read the host's storage")?;
    app.read(|k| {
        let record = PoolRecord::load(&k.paths().storage_record())?;
        let disks = disk_holders(k)?;
        Ok(describe(record, disks))
    })
    .await
    .map(Json)
}

/// The VEs whose configuration says they have a disk in the pool.
fn disk_holders(k: &kennel_ve::Kennel) -> kennel_ve::Result<Vec<VeId>> {
    Ok(k.ids()?
        .into_iter()
        .filter(|id| {
            k.config(id).map_or(true, |c| {
                c.storage.backend == kennel_ve::config::Backend::Image
            })
        })
        .collect())
}

fn describe(record: Option<PoolRecord>, disks: Vec<VeId>) -> StorageInfo {
    let disks = disks.iter().map(ToString::to_string).collect();
    let Some(r) = record else {
        return StorageInfo {
            exists: false,
            path: None,
            kind: None,
            image: None,
            device: None,
            ready: false,
            mounted: false,
            size_bytes: None,
            used_bytes: None,
            free_bytes: None,
            disks,
        };
    };
    let show = |p: &Path| Some(p.display().to_string());
    let (kind, image, device) = match &r.source {
        PoolSource::Dir => ("dir", None, None),
        PoolSource::Loop { image, .. } => ("loop", show(image), None),
        PoolSource::Device { device } => ("device", None, show(device)),
    };
    let mounted = r.ready
        && match r.source {
            PoolSource::Dir => r.path.is_dir(),
            _ => is_mount_root(&r.path),
        };
    let space = mounted
        .then(|| rustix::fs::statvfs(&r.path).ok())
        .flatten()
        .map(|s| {
            let size = s.f_blocks.saturating_mul(s.f_frsize);
            let used = size.saturating_sub(s.f_bfree.saturating_mul(s.f_frsize));
            (size, used, s.f_bavail.saturating_mul(s.f_frsize))
        });
    StorageInfo {
        exists: true,
        path: show(&r.path),
        kind: Some(kind.into()),
        image,
        device,
        ready: r.ready,
        mounted,
        size_bytes: space.map(|s| s.0),
        used_bytes: space.map(|s| s.1),
        free_bytes: space.map(|s| s.2),
        disks,
    }
}

/// Whether `path` is the root of a mount: a filesystem of its own, on
/// another device than its parent's (the pool is never a bind mount).
fn is_mount_root(path: &Path) -> bool {
    let parent = path.parent().unwrap_or(Path::new("/"));
    match (
        std::fs::symlink_metadata(path),
        std::fs::symlink_metadata(parent),
    ) {
        (Ok(m), Ok(p)) => m.is_dir() && m.dev() != p.dev(),
        _ => false,
    }
}

/// The pool to make (`kennel storage init`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InitStorage {
    /// A loop pool's size, e.g. `20G` (default a fifth of the free space,
    /// 5G-30G).
    pub size: Option<String>,
    /// Make the pool on this empty block device instead (XFS is made on
    /// it), e.g. `/dev/vdb`.
    pub device: Option<String>,
}

/// One storage change at a time.
static BUSY: AtomicBool = AtomicBool::new(false);

struct StorageClaim;

impl StorageClaim {
    fn take() -> ApiResult<Self> {
        if BUSY.swap(true, Ordering::SeqCst) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "busy",
                "the storage pool is being changed: try again when that is done",
            ));
        }
        Ok(StorageClaim)
    }
}

impl Drop for StorageClaim {
    fn drop(&mut self) {
        BUSY.store(false, Ordering::SeqCst);
    }
}

/// Makes the storage pool, as a job (host admins); idempotent.
#[utoipa::path(post, path = "/v1/storage", tag = "storage", request_body = InitStorage,
    responses((status = 202, body = Job), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody, description = "a storage change is under way")),
    security(("bearer" = [])))]
pub async fn init(
    State(app): State<AppState>,
    caller: Caller,
    Json(body): Json<InitStorage>,
) -> ApiResult<(StatusCode, Json<Job>)> {
    caller.require_host_admin("make the storage pool")?;
    if let Some(d) = &body.device {
        if !Path::new(d).is_absolute() {
            return Err(ApiError::bad_input(
                "device: give the block device's absolute path, e.g. /dev/vdb",
            ));
        }
    }
    let args = KennelArgs::new(&["storage", "init"])
        .opt("size", body.size.as_deref())?
        .opt("device", body.device.as_deref())?;
    let claim = StorageClaim::take()?;
    let (app2, caller2) = (app.clone(), caller.clone());
    let job = app
        .jobs
        .spawn("storage.init".into(), caller.0.token.clone(), async move {
            let _claim = claim;
            let r = app2.cli.run(args.into_vec()).await.map(|_| ());
            app2.audit.record(&caller2, "storage.init", None, &r);
            r
        });
    Ok((StatusCode::ACCEPTED, Json(job)))
}

/// What a removal did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Removed {
    /// Where the pool was; `null`: there was none.
    pub removed: Option<String>,
}

/// Takes the pool down and removes its image (host admins); refused
/// (409 `in_use`) while a VE has a disk in it.
#[utoipa::path(delete, path = "/v1/storage", tag = "storage",
    responses((status = 200, body = Removed), (status = 403, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody, description = "VEs have disks in it (`in_use`), or a storage change is under way (`busy`)")),
    security(("bearer" = [])))]
pub async fn remove(State(app): State<AppState>, caller: Caller) -> ApiResult<Json<Removed>> {
    caller.require_host_admin("remove the storage pool")?;
    let result = {
        let (app, caller) = (app.clone(), caller.clone());
        detached(async move {
            let result = async {
                let _claim = StorageClaim::take()?;
                let record = app
                    .read(|k| {
                        Ok((
                            PoolRecord::load(&k.paths().storage_record())?,
                            disk_holders(k)?,
                        ))
                    })
                    .await?;
                let (record, users) = record;
                if !users.is_empty() {
                    let ids: Vec<String> = users.iter().map(ToString::to_string).collect();
                    return Err(in_use(&ids.join(", ")));
                }
                let args = KennelArgs::new(&["storage", "remove"]);
                match app.cli.run(args.into_vec()).await {
                    Ok(_) => Ok(record.map(|r| r.path.display().to_string())),
                    // A VE made since the look above: the CLI's refusal.
                    Err(e) if e.message.contains("holds the disks of") => {
                        Err(ApiError::new(StatusCode::CONFLICT, "in_use", e.message))
                    }
                    Err(e) => Err(e),
                }
            }
            .await;
            app.audit.record(&caller, "storage.remove", None, &result);
            result
        })
        .await
    };
    result.map(|removed| Json(Removed { removed }))
}

fn in_use(ids: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "in_use",
        format!("the storage pool holds the disks of VE {ids}: destroy them first"),
    )
}
