//! `/v1/ves`: list, read, create, change and destroy VEs.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use kennel_ve::lifecycle::VeStatus;
use kennel_ve::VeId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::args::KennelArgs;
use super::net::{specs, Forward, Netif};
use super::set::few;
use crate::access::Caller;
use crate::app::AppState;
use crate::backend::detached;
use crate::error::{ApiError, ApiResult};

/// A VE in a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct VeSummary {
    pub id: String,
    pub uuid: String,
    /// `running`, `running (monitor lost)`, `stopping` or `stopped`.
    pub state: String,
    pub running: bool,
    pub hostname: String,
    pub template: String,
    pub init_pid: Option<i32>,
    pub uptime_secs: Option<u64>,
    /// Processes and threads.
    pub procs: Option<u64>,
    pub memory_bytes: Option<u64>,
    /// Started at the host's boot (`kennel boot`).
    pub onboot: bool,
    /// Its group at boot: higher starts earlier; `null` last.
    pub boot_order: Option<i64>,
}

/// How a VE's last run ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct LastExit {
    pub at: String,
    pub how: String,
}

/// One VE, in full.
#[derive(Debug, Serialize, ToSchema)]
pub struct VeDetail {
    #[serde(flatten)]
    pub summary: VeSummary,
    pub monitor_pid: Option<i32>,
    pub started_at: Option<String>,
    pub oom_kills: Option<u64>,
    pub last_exit: Option<LastExit>,
}

fn summary(st: &VeStatus) -> VeSummary {
    VeSummary {
        id: st.config.id.to_string(),
        uuid: st.config.uuid.clone(),
        state: st.state.as_str().to_string(),
        running: st.state.is_running(),
        hostname: st.config.hostname.clone(),
        template: st.config.template.clone(),
        init_pid: st.run.as_ref().map(|r| r.init_pid),
        uptime_secs: st.uptime_secs,
        procs: st.usage.tasks,
        memory_bytes: st.usage.memory,
        onboot: st.config.boot.onboot,
        boot_order: st.config.boot.order.map(i64::from),
    }
}

pub(super) fn detail(st: VeStatus) -> VeDetail {
    VeDetail {
        summary: summary(&st),
        monitor_pid: st.run.as_ref().map(|r| r.monitor_pid),
        started_at: st.run.as_ref().map(|r| r.started_at.clone()),
        oom_kills: st.usage.oom_kills,
        last_exit: st.last_exit.map(|e| LastExit {
            at: e.at,
            how: e.how,
        }),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only VEs that run (`running`) or do not (`stopped`).
    pub state: Option<ListState>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ListState {
    Running,
    Stopped,
}

/// The VEs the caller may see.
#[utoipa::path(get, path = "/v1/ves", tag = "ves", params(ListQuery),
    responses((status = 200, body = [VeSummary]), (status = 401, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<VeSummary>>> {
    let principal = caller.0.clone();
    let all = match &principal.ves {
        // A tenant: only its own VEs are read at all.
        Some(granted) => {
            let ids: Vec<VeId> = granted.keys().cloned().collect();
            app.read(move |k| {
                Ok(ids
                    .iter()
                    .filter_map(|id| k.status(id).ok())
                    .collect::<Vec<_>>())
            })
            .await?
        }
        None => {
            app.read(|k| {
                k.list(&mut |id, e| tracing::warn!("VE {id}: cannot read its status: {e}"))
            })
            .await?
        }
    };
    Ok(Json(
        all.iter()
            .filter(|st| principal.sees_uuid(&st.config.id, &st.config.uuid))
            .filter(|st| match q.state {
                None => true,
                Some(ListState::Running) => st.state.is_running(),
                Some(ListState::Stopped) => !st.state.is_running(),
            })
            .map(summary)
            .collect(),
    ))
}

/// The status of a VE the caller may see (its uuid checked too).
pub(super) async fn visible_status(
    app: &AppState,
    caller: &Caller,
    id: &VeId,
) -> ApiResult<VeStatus> {
    let rid = id.clone();
    let st = app.read(move |k| k.status(&rid)).await?;
    if caller.0.sees_uuid(id, &st.config.uuid) {
        Ok(st)
    } else {
        Err(ApiError::no_such_ve(id))
    }
}

/// One VE: its state, processes, memory and last exit.
#[utoipa::path(get, path = "/v1/ves/{id}", tag = "ves",
    params(("id" = String, Path, description = "VE id")),
    responses((status = 200, body = VeDetail), (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<VeDetail>> {
    let id = caller.ve(&id)?;
    Ok(Json(detail(visible_status(&app, &caller, &id).await?)))
}

/// A VE's configuration, as `kennel config ID` shows it.
#[utoipa::path(get, path = "/v1/ves/{id}/config", tag = "ves",
    params(("id" = String, Path, description = "VE id")),
    responses((status = 200, body = Object), (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn config(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let id = caller.ve(&id)?;
    let rid = id.clone();
    let cfg = app.read(move |k| k.config(&rid)).await?;
    if !caller.0.sees_uuid(&id, &cfg.uuid) {
        return Err(ApiError::no_such_ve(&id));
    }
    serde_json::to_value(&cfg)
        .map(Json)
        .map_err(|e| ApiError::internal(format!("encode VE {id}'s configuration: {e}")))
}

/// What a VE may use; each left out keeps its value (or, at create, the
/// host's default). Values as the CLI takes them: `512M`, `2G`,
/// `unlimited`, `50%`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourcesBody {
    pub memory: Option<String>,
    pub swap: Option<String>,
    pub cpus: Option<String>,
    pub cpu_limit: Option<String>,
    pub cpu_weight: Option<String>,
    pub cpumask: Option<String>,
    pub numproc: Option<String>,
    pub numpty: Option<String>,
    pub nofile: Option<String>,
    pub io_weight: Option<String>,
    pub io_limit: Option<String>,
    pub iops_limit: Option<String>,
}

impl ResourcesBody {
    pub(super) fn add(&self, a: KennelArgs) -> ApiResult<KennelArgs> {
        a.opt("memory", self.memory.as_deref())?
            .opt("swap", self.swap.as_deref())?
            .opt("cpus", self.cpus.as_deref())?
            .opt("cpu-limit", self.cpu_limit.as_deref())?
            .opt("cpu-weight", self.cpu_weight.as_deref())?
            .opt("cpumask", self.cpumask.as_deref())?
            .opt("numproc", self.numproc.as_deref())?
            .opt("numpty", self.numpty.as_deref())?
            .opt("nofile", self.nofile.as_deref())?
            .opt("io-weight", self.io_weight.as_deref())?
            .opt("io-limit", self.io_limit.as_deref())?
            .opt("iops-limit", self.iops_limit.as_deref())
    }
}

/// A new VE (`kennel create`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVe {
    /// 1-32 characters a-z, 0-9 and '-' (e.g. `101`).
    pub id: String,
    pub template: String,
    pub hostname: Option<String>,
    #[serde(default)]
    pub resources: ResourcesBody,
    /// Disk size (e.g. `10G`), for the `image` backend.
    pub disk: Option<String>,
    /// `image` (default) or `dir`.
    pub storage: Option<String>,
    /// Opt-in features: `tun`, `fuse`, `nesting`, `keyring`.
    #[serde(default)]
    pub features: Vec<String>,
    /// Inodes on the disk, e.g. `2M` (default one per 16K of disk).
    pub disk_inodes: Option<String>,
    /// Routed addresses on the VE's eth0, `ADDR[/PREFIX]` (`--ip`).
    #[serde(default)]
    pub ip: Vec<String>,
    /// Bridged interfaces (`--netif`).
    #[serde(default)]
    pub netif: Vec<Netif>,
    /// DNS servers for the VE's /etc/resolv.conf.
    #[serde(default)]
    pub nameserver: Vec<String>,
    /// DNS search domains.
    #[serde(default)]
    pub searchdomain: Vec<String>,
    /// Traffic limit per interface: `100mbit` both ways, or
    /// `egress=RATE,ingress=RATE`.
    pub rate: Option<String>,
    /// Masquerade the VE's IPv4 addresses behind this host interface.
    pub nat_via: Option<String>,
    /// Host ports forwarded to the VE (`--forward`).
    #[serde(default)]
    pub forward: Vec<Forward>,
}

/// Makes a VE (host admins only).
#[utoipa::path(post, path = "/v1/ves", tag = "ves", request_body = CreateVe,
    responses((status = 201, body = VeDetail), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
              (status = 422, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateVe>,
) -> ApiResult<(StatusCode, Json<VeDetail>)> {
    caller.require_host_admin("create VEs")?;
    let id = VeId::parse(&body.id).map_err(|e| ApiError::bad_input(e.to_string()))?;
    let result = {
        let (app, caller) = (app.clone(), caller.clone());
        let id = id.clone();
        detached(async move {
            let result = async {
                let _claim = app.changes.claim(&id)?;
                let features = body.features.join(",");
                let args = KennelArgs::new(&["create"])
                    .positional(id.as_str())?
                    .opt("template", Some(&body.template))?
                    .opt("hostname", body.hostname.as_deref())?
                    .opt("disk", body.disk.as_deref())?
                    .opt("storage", body.storage.as_deref())?
                    .opt(
                        "features",
                        (!features.is_empty()).then_some(features.as_str()),
                    )?
                    .opt("disk-inodes", body.disk_inodes.as_deref())?
                    .opts("ip", few(&body.ip, "ip")?)?
                    .opts("netif", &specs(&body.netif, "netif", Netif::spec)?)?
                    .opts("nameserver", few(&body.nameserver, "nameserver")?)?
                    .opts("searchdomain", few(&body.searchdomain, "searchdomain")?)?
                    .opt("rate", body.rate.as_deref())?
                    .opt("nat-via", body.nat_via.as_deref())?
                    .opts("forward", &specs(&body.forward, "forward", Forward::spec)?)?;
                let args = body.resources.add(args)?;
                app.cli.run(args.into_vec()).await?;
                visible_status(&app, &caller, &id).await
            }
            .await;
            app.audit
                .record(&caller, "ve.create", Some(id.as_str()), &result);
            result
        })
        .await
    };
    Ok((StatusCode::CREATED, Json(detail(result?))))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DestroyQuery {
    /// Kill the VE first if it runs.
    #[serde(default)]
    pub force: bool,
}

/// Deletes a VE and all its files (host admins only).
#[utoipa::path(delete, path = "/v1/ves/{id}", tag = "ves",
    params(("id" = String, Path, description = "VE id"), DestroyQuery),
    responses((status = 204), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn destroy(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<DestroyQuery>,
) -> ApiResult<StatusCode> {
    let id = caller.visible_ve(&app, &id).await?;
    caller.require_host_admin("destroy VEs")?;
    let result = {
        let (app, caller) = (app.clone(), caller.clone());
        let id = id.clone();
        detached(async move {
            let result = async {
                let _claim = app.changes.claim(&id)?;
                let args = KennelArgs::new(&["destroy"])
                    .positional(id.as_str())?
                    .flag("force", q.force);
                app.cli.run(args.into_vec()).await.map(|_| ())
            }
            .await;
            app.audit
                .record(&caller, "ve.destroy", Some(id.as_str()), &result);
            result
        })
        .await
    };
    result.map(|()| StatusCode::NO_CONTENT)
}
