//! `kennel create`: a new VE from a template. Copies nothing: the VE gets
//! an empty writable layer over the shared template.

use std::fs;

use kennel_storage::layers::{idmap_supported, prepare_shifted, LayerMode, VeLayers};
use kennel_storage::template::Store;

use super::Kennel;
use crate::config::{validate_hostname, IdRange, InitConfig, Resources, StorageConfig, VeConfig};
use crate::error::{io, Result, VeError};
use crate::id::VeId;
use crate::idmap;
use kennel_storage::staging;

/// What `kennel create` asks for.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub id: VeId,
    pub template: String,
    pub hostname: Option<String>,
    pub resources: Resources,
    pub features: kennel_runtime::features::Features,
    pub network: kennel_net::VeNetwork,
}

impl Kennel {
    pub fn create(&self, req: &CreateRequest) -> Result<VeConfig> {
        let hostname = req.hostname.clone().unwrap_or_else(|| req.id.to_string());
        validate_hostname(&hostname)?;
        // The host's plan fills what the request leaves out, written into
        // ve.conf: a later change of the plan never moves existing VEs.
        let resources = req.resources.over(&self.host.plan());
        resources.validate()?;
        let _host = self.lock_host()?;
        self.check_network(&req.id, &req.network)?;
        // Under the host lock: `template remove` takes it too, so the
        // template cannot go between this check and the new VE's config.
        let template = Store::new(self.paths.templates()).get(&req.template)?;
        let ves = self.paths.ves();
        fs::create_dir_all(&ves).map_err(io(format!("create {}", ves.display())))?;
        staging::sweep(&ves);
        let dest = self.paths.ve_dir(&req.id);
        if dest.exists() {
            return Err(VeError::Exists(req.id.to_string()));
        }
        // Every VE's range counts, so a VE whose configuration cannot be
        // read stops the allocation: its ids must never go to another VE.
        let mut used: Vec<IdRange> = Vec::new();
        for id in self.ids()? {
            let cfg = self.config(&id).map_err(|e| {
                VeError::BadInput(format!(
                    "cannot read the configuration of VE {id} ({e}); fix it first: its id range must not be given to another VE"
                ))
            })?;
            used.push(cfg.idmap);
        }
        let range = idmap::allocate(&self.host, &used)?;
        let cfg = VeConfig {
            id: req.id.clone(),
            uuid: uuid::Uuid::new_v4().to_string(),
            hostname,
            template: req.template.clone(),
            created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            resources,
            idmap: range,
            init: InitConfig {
                kind: template.meta.init,
                path: "/sbin/init".into(),
            },
            features: req.features.clone(),
            network: req.network.clone(),
            storage: StorageConfig {
                layer: if idmap_supported(&template.rootfs)? {
                    LayerMode::Idmapped
                } else {
                    LayerMode::Shifted
                },
            },
        };
        // Build under a staging name, then rename: a crash never leaves a
        // half-made VE under its real id.
        let building = staging::building(&ves, req.id.as_str());
        let build = || -> Result<()> {
            fs::create_dir(&building).map_err(io(format!("create {}", building.display())))?;
            let layers = VeLayers::new(building.join("fs"));
            layers.create((range.uid_base, range.gid_base))?;
            if cfg.storage.layer == LayerMode::Shifted {
                prepare_shifted(
                    &template.rootfs,
                    &layers,
                    &building.join("shift"),
                    range.uid_base,
                )?;
            }
            cfg.save(&building.join("ve.conf"))?;
            fs::rename(&building, &dest).map_err(io(format!(
                "rename {} to {}",
                building.display(),
                dest.display()
            )))
        };
        if let Err(e) = build() {
            // A shifted layer copies the template's tree, which an
            // imported tarball shaped: removed by descriptor.
            let _ = kennel_storage::remove::remove_tree(&building);
            return Err(e);
        }
        Ok(cfg)
    }
}
