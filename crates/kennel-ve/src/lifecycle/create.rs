//! `kennel create`: a new VE from a template. Copies nothing: the VE gets
//! an empty writable layer over the shared template.

use std::fs;

use kennel_storage::layers::{idmap_supported, prepare_shifted, LayerMode, VeLayers};
use kennel_storage::template::Store;

use super::Kennel;
use crate::claims::thing::{things_of, Grid};
use crate::claims::Claims;
use crate::config::{validate_hostname, Backend, InitConfig, Resources, StorageConfig, VeConfig};
use crate::error::{io, Result, VeError};
use crate::id::VeId;
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
    /// `--disk`, `--disk-inodes`, `--storage`.
    pub disk: Option<crate::units::Size>,
    pub disk_inodes: Option<u64>,
    pub backend: Option<Backend>,
}

impl Kennel {
    /// The claims index (see `crate::claims`), built if this state root
    /// has none yet. Call with the host lock held.
    pub(crate) fn claims(&self) -> Result<Claims<'_>> {
        let (claims, built) = Claims::open(self, self.paths.lib.join("claims"), self.grid())?;
        if built {
            // Leftovers of crashed commands from before the staging
            // directory, once.
            self.sweep_dir(&self.paths.ves());
        }
        Ok(claims)
    }

    /// The claims index if this state root has one (nothing to release
    /// from one that does not exist yet). Host lock held.
    pub(crate) fn existing_claims(&self) -> Result<Option<Claims<'_>>> {
        Claims::open_existing(self, self.paths.lib.join("claims"), self.grid())
    }

    fn grid(&self) -> Grid {
        Grid {
            base: self.host.idmap_base,
            slots: self.host.idmap_ranges,
        }
    }

    /// Makes the VE and staging directories; returns the latter.
    pub(crate) fn make_ve_dirs(&self) -> Result<std::path::PathBuf> {
        let staging = self.staging_dir();
        for d in [self.paths.ves(), staging.clone()] {
            fs::create_dir_all(&d).map_err(io(format!("create {}", d.display())))?;
        }
        Ok(staging)
    }

    /// Where new VEs are built and destroyed ones removed: beside the
    /// VEs' directory, so that sweeping what crashes left reads no VE's
    /// entry (a rename within one filesystem moves them in and out).
    pub(crate) fn staging_dir(&self) -> std::path::PathBuf {
        self.paths.lib.join("ve-staging")
    }

    pub fn create(&self, req: &CreateRequest) -> Result<VeConfig> {
        let hostname = req.hostname.clone().unwrap_or_else(|| req.id.to_string());
        validate_hostname(&hostname)?;
        // The host's plan fills what the request leaves out, written into
        // ve.conf: a later change of the plan never moves existing VEs.
        let resources = req.resources.over(&self.host.plan());
        resources.validate()?;
        let backend = match req.backend {
            Some(b) => b,
            None => self.default_backend()?,
        };
        let disk = match backend {
            Backend::Image => Some(super::storage::disk_size(
                &self.host.storage,
                req.disk,
                req.disk_inodes,
            )?),
            Backend::Dir if req.disk.is_some() || req.disk_inodes.is_some() => {
                return Err(VeError::BadInput(
                    "--disk and --disk-inodes need a disk of its own: leave out `--storage dir`"
                        .into(),
                ))
            }
            Backend::Dir => None,
        };
        // The id's own lock first, as every command that makes or removes
        // a VE holds it: a destroy of the same id still under way (it
        // releases that id's claims last) is waited for, never raced.
        let _ve = self.lock_ve(&req.id)?;
        let _host = self.lock_host()?;
        let claims = self.claims()?;
        self.check_network(&req.id, &req.network, &claims)?;
        // Under the host lock: `template remove` takes it too, so the
        // template cannot go between this check and the new VE's config.
        let template = Store::new(self.paths.templates()).get(&req.template)?;
        let pool = match backend {
            Backend::Image => Some(self.pool()?),
            Backend::Dir => None,
        };
        let staging = self.make_ve_dirs()?;
        self.sweep_ves();
        let dest = self.paths.ve_dir(&req.id);
        if dest.exists() {
            return Err(VeError::Exists(req.id.to_string()));
        }
        let range = claims.allocate()?;
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
                backend,
                pool: pool.as_ref().map(|p| p.record.path.clone()),
                disk: disk.map(|d| crate::units::Size(d.bytes)),
                disk_inodes: disk.map(|d| d.inodes),
            },
            // Marked with `kennel set --onboot yes`.
            boot: Default::default(),
        };
        // Claimed before its configuration exists: a crash leaves at worst
        // a stale claim, never a VE whose things are free for others.
        let things = things_of(&cfg, &claims.grid());
        claims.take(&req.id, &things)?;
        // Build under a staging name, then rename: a crash never leaves a
        // half-made VE under its real id.
        let building = staging::building(&staging, req.id.as_str());
        let build = || -> Result<()> {
            fs::create_dir(&building).map_err(io(format!("create {}", building.display())))?;
            // Before the disk exists: a crash from here on leaves a
            // configuration that tells the sweep which disk to remove.
            cfg.save(&building.join("ve.conf"))?;
            let owner = (range.uid_base, range.gid_base);
            let shift = |layers: &VeLayers, scratch: &std::path::Path| -> Result<()> {
                if cfg.storage.layer == LayerMode::Shifted {
                    prepare_shifted(&template.rootfs, layers, scratch, range.uid_base)?;
                }
                Ok(())
            };
            match (self.volume_of(&cfg), disk) {
                (Some(vol), Some(size)) => {
                    let scratch = self.paths.scratch(&format!("create-{}", req.id));
                    let mut prepare = |root: &std::path::Path| {
                        shift(&VeLayers::new(root), &building.join("shift"))
                            .map_err(|e| kennel_storage::StorageError::Layer(e.to_string()))
                    };
                    // Only a shifted layer needs the new disk mounted.
                    let shifted = cfg.storage.layer == LayerMode::Shifted;
                    vol.create(
                        size,
                        owner,
                        &scratch,
                        shifted.then_some(&mut prepare as &mut dyn FnMut(&std::path::Path) -> _),
                    )?;
                }
                _ => {
                    let layers = VeLayers::new(building.join("fs"));
                    layers.create(owner)?;
                    shift(&layers, &building.join("shift"))?;
                }
            }
            fs::rename(&building, &dest).map_err(io(format!(
                "rename {} to {}",
                building.display(),
                dest.display()
            )))
        };
        if let Err(e) = build() {
            if let Some(vol) = self.volume_of(&cfg) {
                let _ = vol.destroy();
            }
            // A shifted layer copies the template's tree, which an
            // imported tarball shaped: removed by descriptor.
            let _ = kennel_storage::remove::remove_tree(&building);
            if let Err(r) = claims.release(&req.id, &things) {
                tracing::warn!("VE {}: {r}", req.id);
            }
            return Err(e);
        }
        Ok(cfg)
    }
}
