//! `PATCH /v1/ves/{id}`: change a VE (`kennel set`): its hostname,
//! resources, disk, features, boot settings and network (routed
//! addresses, bridged interfaces, DNS, traffic rate, NAT, port
//! forwards). Saved, and applied at once to a running VE, by the CLI's
//! own `kennel set`. Host admins only: a tenant does not set its own
//! limits or network. (Its own file: the body mirrors most of `kennel
//! set`'s options.)

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;

use super::args::KennelArgs;
use super::net::{specs, Forward, Netif, MAX_ITEMS};
use super::ves::{detail, visible_status, ResourcesBody, VeDetail};
use crate::access::Caller;
use crate::app::AppState;
use crate::backend::detached;
use crate::error::{ApiError, ApiResult};

/// A change to a VE (`kennel set`): saved, and applied at once if it
/// runs. Each field left out keeps its value.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetVe {
    pub hostname: Option<String>,
    #[serde(default)]
    pub resources: ResourcesBody,
    /// The disk's new size, e.g. `20G`: grown at once on a running VE,
    /// shrunk while it is stopped (backend `image`).
    pub disk: Option<String>,
    /// Inodes on the disk, e.g. `2M` (they grow with `disk`).
    pub disk_inodes: Option<String>,
    /// Routed addresses to add, `ADDR[/PREFIX]` (`--ip-add`).
    #[serde(default)]
    pub ip_add: Vec<String>,
    /// Routed addresses to remove, or `all` (`--ip-del`).
    #[serde(default)]
    pub ip_del: Vec<String>,
    /// Bridged interfaces to add, or to replace by name (`--netif`).
    #[serde(default)]
    pub netif_add: Vec<Netif>,
    /// Bridged interfaces to remove, by name (`--netif-del`).
    #[serde(default)]
    pub netif_del: Vec<String>,
    /// DNS servers (replaces the list; `["none"]` empties it).
    #[serde(default)]
    pub nameserver: Vec<String>,
    /// DNS search domains (replaces the list; `["none"]` empties it).
    #[serde(default)]
    pub searchdomain: Vec<String>,
    /// Traffic limit per interface: `100mbit` both ways,
    /// `egress=RATE,ingress=RATE`, or `none`.
    pub rate: Option<String>,
    /// Masquerade the VE's IPv4 addresses behind this host interface, or
    /// `none` to stop (`--nat-via`).
    pub nat_via: Option<String>,
    /// Host ports to forward to the VE (`--forward-add`).
    #[serde(default)]
    pub forward_add: Vec<Forward>,
    /// Forwards to remove (`--forward-del`), as they were added.
    #[serde(default)]
    pub forward_del: Vec<Forward>,
    /// Opt-in features (replaces the list; `[]` for none).
    pub features: Option<Vec<String>>,
    /// Start it at the host's boot.
    pub onboot: Option<bool>,
    /// Its group at boot (higher starts earlier), or `none`.
    pub boot_order: Option<String>,
}

/// A list of plain values, bounded.
pub(super) fn few<'a>(items: &'a [String], what: &str) -> ApiResult<&'a [String]> {
    if items.len() > MAX_ITEMS {
        return Err(ApiError::bad_input(format!(
            "{what}: at most {MAX_ITEMS} in one request"
        )));
    }
    Ok(items)
}

impl SetVe {
    fn args(&self, id: &str) -> ApiResult<KennelArgs> {
        let features = self.features.as_ref().map(|f| {
            if f.is_empty() {
                "none".to_string()
            } else {
                f.join(",")
            }
        });
        let args = KennelArgs::new(&["set"])
            .positional(id)?
            .opt("hostname", self.hostname.as_deref())?
            .opt("disk", self.disk.as_deref())?
            .opt("disk-inodes", self.disk_inodes.as_deref())?
            .opts("ip-add", few(&self.ip_add, "ip_add")?)?
            .opts("ip-del", few(&self.ip_del, "ip_del")?)?
            .opts("netif", &specs(&self.netif_add, "netif_add", Netif::spec)?)?
            .opts("netif-del", few(&self.netif_del, "netif_del")?)?
            .opts("nameserver", few(&self.nameserver, "nameserver")?)?
            .opts("searchdomain", few(&self.searchdomain, "searchdomain")?)?
            .opt("rate", self.rate.as_deref())?
            .opt("nat-via", self.nat_via.as_deref())?
            .opts(
                "forward-add",
                &specs(&self.forward_add, "forward_add", Forward::spec)?,
            )?
            .opts(
                "forward-del",
                &specs(&self.forward_del, "forward_del", Forward::spec)?,
            )?
            .opt("features", features.as_deref())?
            .opt("onboot", self.onboot.map(|b| if b { "yes" } else { "no" }))?
            .opt("boot-order", self.boot_order.as_deref())?;
        self.resources.add(args)
    }
}

/// Changes a VE (host admins only: a tenant does not set its own limits
/// or network).
#[utoipa::path(patch, path = "/v1/ves/{id}", tag = "ves", request_body = SetVe,
    params(("id" = String, Path, description = "VE id")),
    responses((status = 200, body = VeDetail), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn set(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<SetVe>,
) -> ApiResult<Json<VeDetail>> {
    let id = caller.visible_ve(&app, &id).await?;
    caller.require_host_admin("change a VE's settings")?;
    let result = {
        let (app, caller) = (app.clone(), caller.clone());
        let id = id.clone();
        detached(async move {
            let result = async {
                let args = body.args(id.as_str())?;
                let _claim = app.changes.claim(&id)?;
                app.cli.run(args.into_vec()).await?;
                visible_status(&app, &caller, &id).await
            }
            .await;
            app.audit
                .record(&caller, "ve.set", Some(id.as_str()), &result);
            result
        })
        .await
    };
    Ok(Json(detail(result?)))
}
