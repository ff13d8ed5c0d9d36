//! `kennel backup` and `kennel restore`: a VE's own layer as one stream
//! (`kennel_storage::backup` has the format), and a new VE made from one.
//!
//! A backup reads a copy of the VE's disk taken at one moment (a reflink
//! copy, the VE frozen for milliseconds if it runs), mounted read-only on
//! the host, never the live tree. A restore is untrusted input: it builds
//! a new VE the way `create` does (staged, swept if cut short) and unpacks
//! the layer into its fresh disk through the safe unpack, its files moved
//! to the new VE's ids; it commits only when the whole chain checked out.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use kennel_storage::backup::ids::IdShift;
use kennel_storage::backup::{BackupManifest, BackupReport, TemplateRef};

use super::status::VeState;
use super::Kennel;
use crate::config::{Backend, VeConfig};
use crate::error::{io, Result, VeError};
use crate::id::VeId;

/// Progress of long work, for a bar on a terminal.
pub trait Progress {
    /// How many bytes the work will handle, about.
    fn total(&self, bytes: u64);
    /// Bytes handled so far.
    fn done(&self, bytes: u64);
}

/// No progress shown.
#[derive(Debug)]
pub struct Quiet;

impl Progress for Quiet {
    fn total(&self, _: u64) {}
    fn done(&self, _: u64) {}
}

/// Where a backup goes.
#[derive(Debug, Clone)]
pub enum BackupTarget {
    /// A file, written under a temporary name and renamed when complete.
    File(PathBuf),
    Stdout,
}

/// What `kennel backup` asks for.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    pub id: VeId,
    pub target: BackupTarget,
    /// An earlier backup of the VE: only what changed since goes in.
    pub since: Option<PathBuf>,
    /// The VE's template goes in too, for a host that lacks it.
    pub with_template: bool,
}

impl Kennel {
    /// `kennel backup`.
    pub fn backup(&self, req: &BackupRequest, progress: &dyn Progress) -> Result<BackupReport> {
        if let BackupTarget::File(p) = &req.target {
            if p.exists() {
                return Err(VeError::BadInput(format!(
                    "{} exists: give a new file name (a backup never overwrites one)",
                    p.display()
                )));
            }
        }
        let base = match &req.since {
            Some(p) => Some(kennel_storage::backup::read_index(p)?),
            None => None,
        };
        let lock = self.lock_ve(&req.id)?;
        self.sweep_scratch();
        let cfg = self.config(&req.id)?;
        let store = kennel_storage::template::Store::new(self.paths.templates());
        let template = TemplateRef {
            name: cfg.template.clone(),
            digest: store.digest(&cfg.template)?,
        };
        let template_tree = if req.with_template {
            Some(store.get(&cfg.template)?.rootfs)
        } else {
            None
        };
        let ids = IdShift {
            uid_base: cfg.idmap.uid_base,
            gid_base: cfg.idmap.gid_base,
        };
        let ve_conf = cfg.to_toml()?;
        let write = |tree: &Path| -> Result<BackupReport> {
            progress.total(used_bytes(tree));
            let breq = kennel_storage::backup::BackupRequest {
                tree,
                ids,
                ve_conf: ve_conf.clone(),
                template: template.clone(),
                base: base.as_ref(),
                template_tree: template_tree.as_deref(),
                compression: Default::default(),
            };
            write_to(&req.target, |out| {
                Ok(kennel_storage::backup::write_backup(out, &breq, &|n| {
                    progress.done(n)
                })?)
            })
        };
        let running = self.settle(&req.id)? != VeState::Stopped;
        match self.volume_of(&cfg) {
            None => {
                if running {
                    return Err(VeError::BadInput(format!(
                        "VE {} keeps its files in a directory (storage backend `dir`), which has no snapshots: stop it to back it up",
                        req.id
                    )));
                }
                // Stopped and locked for the whole backup: nothing writes.
                let report = write(&self.paths.ve_layers(&req.id).join("upper"));
                drop(lock);
                report
            }
            Some(vol) => {
                self.require_pool()?;
                let scratch = self.paths.scratch(&format!("backup-{}", req.id));
                let mut report = None;
                let mut read = |root: &Path| -> kennel_storage::Result<()> {
                    report = Some(
                        write(&root.join("upper"))
                            .map_err(|e| kennel_storage::StorageError::Layer(e.to_string())),
                    );
                    Ok(())
                };
                // The copy under the lock; the (long) reading without it,
                // so that a start or stop need not wait for the backup.
                let (copy, _) = if running {
                    self.with_frozen_disk(&cfg, |r| Ok(vol.take_copy(Some(r))?))?
                } else {
                    vol.take_copy(None)?
                };
                drop(lock);
                vol.read_copy(copy, &scratch, &mut read)?;
                match report {
                    Some(r) => Ok(r?),
                    None => Err(VeError::BadInput("internal: the backup did not run".into())),
                }
            }
        }
    }

    /// `kennel backup verify`: the backup and, for an incremental, every
    /// backup of its chain (found beside it).
    pub fn backup_verify(
        &self,
        file: &Path,
        progress: &dyn Progress,
    ) -> Result<Vec<(PathBuf, kennel_storage::backup::VerifyReport)>> {
        let chain = chain_of(file)?;
        let mut out = Vec::new();
        for p in chain {
            let f = fs::File::open(&p).map_err(io(format!("open {}", p.display())))?;
            progress.total(f.metadata().map(|m| m.len()).unwrap_or(0));
            let r =
                kennel_storage::backup::verify(std::io::BufReader::new(f), &|n| progress.done(n))?;
            out.push((p, r));
        }
        Ok(out)
    }
}

/// The backups a restore of `file` needs, full first: each incremental's
/// base is looked for beside it, by the file name its manifest records.
pub(crate) fn chain_of(file: &Path) -> Result<Vec<PathBuf>> {
    let mut chain = vec![file.to_path_buf()];
    let mut m: BackupManifest = kennel_storage::backup::read_manifest(file)?;
    while let Some(base) = m.base.clone() {
        if chain.len() > 1000 {
            return Err(VeError::BadInput(format!(
                "the backup chain of {} is longer than 1000 backups",
                file.display()
            )));
        }
        let name = Path::new(&base.file)
            .file_name()
            .filter(|n| Path::new(n) == Path::new(&base.file))
            .ok_or_else(|| {
                VeError::BadInput(format!(
                    "{}: its base's name is not a file name",
                    file.display()
                ))
            })?;
        let dir = chain[chain.len() - 1]
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let p = dir.join(name);
        if !p.is_file() {
            return Err(VeError::BadInput(format!(
                "{} is an incremental backup on {}, which is not beside it: put the whole chain in one directory",
                chain[chain.len() - 1].display(),
                p.display()
            )));
        }
        let bm = kennel_storage::backup::read_manifest(&p)?;
        if bm.id != base.id {
            return Err(VeError::BadInput(format!(
                "{} is not the backup {} was made on (another backup of that name?)",
                p.display(),
                chain[chain.len() - 1].display()
            )));
        }
        chain.push(p);
        m = bm;
    }
    chain.reverse();
    Ok(chain)
}

/// Bytes in use on the filesystem of `tree`: what a backup will read, about.
fn used_bytes(tree: &Path) -> u64 {
    rustix::fs::statvfs(tree)
        .map(|s| (s.f_blocks.saturating_sub(s.f_bfree)).saturating_mul(s.f_frsize))
        .unwrap_or(0)
}

/// Removes what killed backups to `path` left (`.NAME.tmp-PID` whose
/// process is gone).
fn sweep_partial_backups(path: &Path, stem: &str) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name.strip_prefix(stem).and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

/// Runs `write` on the target: a file is written under a temporary name,
/// synced and renamed into place only when complete.
fn write_to<T>(
    target: &BackupTarget,
    write: impl FnOnce(&mut dyn Write) -> Result<T>,
) -> Result<T> {
    match target {
        BackupTarget::Stdout => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            let r = write(&mut lock)?;
            lock.flush()
                .map_err(io("write the backup to standard output"))?;
            Ok(r)
        }
        BackupTarget::File(path) => {
            let name = path.file_name().ok_or_else(|| {
                VeError::BadInput(format!("{} is not a file name", path.display()))
            })?;
            let stem = format!(".{}.tmp-", name.to_string_lossy());
            sweep_partial_backups(path, &stem);
            let tmp = path.with_file_name(format!("{stem}{}", std::process::id()));
            // The tenant's whole layer: for root's eyes only.
            let f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io(format!("create {}", tmp.display())))?;
            let mut buf = std::io::BufWriter::with_capacity(1 << 20, f);
            let done = write(&mut buf).and_then(|r| {
                let f = buf.into_inner().map_err(|e| VeError::Io {
                    what: format!("write {}", tmp.display()),
                    source: e.into_error(),
                })?;
                f.sync_all()
                    .map_err(io(format!("sync {}", tmp.display())))?;
                if path.exists() {
                    return Err(VeError::BadInput(format!(
                        "{} exists: give a new file name (a backup never overwrites one)",
                        path.display()
                    )));
                }
                fs::rename(&tmp, path).map_err(io(format!("rename {}", tmp.display())))?;
                Ok(r)
            });
            if done.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            done
        }
    }
}

impl Kennel {
    /// The configuration a restore starts from: the backed-up VE's, read
    /// as untrusted input.
    /// Makes template `name` from the backup of `chain` that holds it
    /// (`backup --with-template`), if this host lacks it; true if made.
    fn template_from_backup(
        &self,
        store: &kennel_storage::template::Store,
        name: &str,
        chain: &[PathBuf],
        progress: &dyn Progress,
    ) -> Result<bool> {
        match store.get(name) {
            Err(kennel_storage::StorageError::NoSuchTemplate(_)) => {}
            _ => return Ok(false),
        }
        let mut holder = None;
        for p in chain.iter().rev() {
            if kennel_storage::backup::read_manifest(p)?.template_included {
                holder = Some(p.clone());
                break;
            }
        }
        let Some(file) = holder else {
            return Ok(false);
        };
        let _host = self.lock_host()?;
        progress.total(fs::metadata(&file).map(|m| m.len()).unwrap_or(0));
        store.create(
            name,
            &kennel_storage::template::Source::Backup(file, self.host.unpack_limits()),
            &mut |_| {},
        )?;
        Ok(true)
    }

    /// The new VE's configuration. A backup is untrusted input, so by
    /// default it brings data, never rights: the template, the hostname
    /// and the disk's size (at most the pool's) come from it; the plan,
    /// features, interfaces, NAT and forwards are the host's defaults, as
    /// for `create`. `--trust-config` takes those from the backup too.
    fn restored_config(
        &self,
        req: &RestoreRequest,
        old: &VeConfig,
        template: &kennel_storage::template::Template,
        pool: &kennel_storage::pool::Pool,
    ) -> Result<VeConfig> {
        let base = if req.trust_config {
            old.clone()
        } else {
            VeConfig {
                resources: Default::default(),
                features: Default::default(),
                network: kennel_net::VeNetwork {
                    nameservers: old.network.nameservers.clone(),
                    searchdomains: old.network.searchdomains.clone(),
                    ..Default::default()
                },
                init: crate::config::InitConfig {
                    kind: template.meta.init,
                    path: "/sbin/init".into(),
                },
                ..old.clone()
            }
        };
        let hostname = req.hostname.clone().unwrap_or_else(|| old.hostname.clone());
        let mut cfg = self.config_for_copy(&base, &req.id, Some(hostname))?;
        if !req.trust_config {
            cfg.resources = cfg.resources.over(&self.host.plan());
        }
        cfg.storage.layer = if kennel_storage::layers::idmap_supported(&template.rootfs)? {
            kennel_storage::layers::LayerMode::Idmapped
        } else {
            kennel_storage::layers::LayerMode::Shifted
        };
        cfg.storage.backend = Backend::Image;
        cfg.storage.pool = Some(pool.record.path.clone());
        let pool_size = pool.usage()?.size.max(kennel_storage::volume::MIN_DISK);
        let wanted = req
            .disk
            .or(old.storage.disk)
            .map(|d| crate::units::Size(d.bytes().min(pool_size)));
        // The backed-up disk's inodes, when its size is kept (a VE of many
        // small files needs them), at most one per 4K block.
        let inodes = match (req.disk, wanted, old.storage.disk_inodes) {
            (None, Some(w), Some(n)) => Some(n.min(w.bytes() / 4096)),
            _ => None,
        };
        let size = super::storage::disk_size(&self.host.storage, wanted, inodes)?;
        cfg.storage.disk = Some(crate::units::Size(size.bytes));
        cfg.storage.disk_inodes = Some(size.inodes);
        Ok(cfg)
    }

    pub(crate) fn config_from_backup(&self, m: &BackupManifest) -> Result<VeConfig> {
        let bad = |e: String| {
            VeError::BadInput(format!("the backup's VE configuration is not valid: {e}"))
        };
        let cfg: VeConfig = toml::from_str(&m.ve_conf).map_err(|e| bad(e.to_string()))?;
        // Every check a configuration file passes, under its own id.
        VeConfig::parse(&m.ve_conf, &cfg.id, Path::new("backup"))
            .map_err(|e| bad(e.to_string()))?;
        if cfg.storage.backend == Backend::Dir && cfg.storage.disk.is_none() {
            // A `dir` VE becomes an `image` one: the host's default disk.
        }
        Ok(cfg)
    }
}

/// Where a restore reads from.
#[derive(Debug, Clone)]
pub enum RestoreSource {
    /// A backup file; an incremental's bases are found beside it.
    File(PathBuf),
    /// Standard input: a full backup.
    Stdin,
}

/// What `kennel restore` asks for.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    pub source: RestoreSource,
    pub id: VeId,
    /// The new VE's hostname (default: the backed-up VE's).
    pub hostname: Option<String>,
    /// The new VE's disk (default: the backed-up VE's, at most the pool).
    pub disk: Option<crate::units::Size>,
    /// Take the backed-up VE's plan, features and interfaces from the
    /// backup (only for backups one made oneself).
    pub trust_config: bool,
}

/// What a restore made.
#[derive(Debug, Clone)]
pub struct Restored {
    pub config: VeConfig,
    /// Backups the chain held.
    pub backups: usize,
    /// The backed-up VE's addresses, left out because another VE here
    /// has them (or they are not valid here).
    pub addresses_dropped: bool,
    /// This host's template differs from the backed-up VE's.
    pub template_differs: bool,
    /// The template was made from the backup (`--with-template`).
    pub made_template: bool,
    /// What the restore refused or left out of the backup, in one line.
    pub refused: Option<String>,
}

impl Kennel {
    /// `kennel restore`: a new VE from a backup (or a chain of them).
    pub fn restore(&self, req: &RestoreRequest, progress: &dyn Progress) -> Result<Restored> {
        // Read (and checked) before anything is made.
        let (manifest, chain, mut stdin_head) = match &req.source {
            RestoreSource::File(f) => {
                let chain = chain_of(f)?;
                let m = kennel_storage::backup::read_manifest(f)?;
                (m, chain, None)
            }
            RestoreSource::Stdin => {
                let mut rec = Recorder {
                    inner: std::io::stdin().lock(),
                    seen: Vec::new(),
                };
                let m = kennel_storage::backup::manifest_of_stream(&mut rec)?;
                (m, Vec::new(), Some(rec.seen))
            }
        };
        if stdin_head.is_some() && manifest.base.is_some() {
            return Err(VeError::BadInput(
                "an incremental backup cannot be restored from standard input: give its file (its chain must be beside it)".into(),
            ));
        }
        let old = self.config_from_backup(&manifest)?;
        let store = kennel_storage::template::Store::new(self.paths.templates());
        let made_template = if req.trust_config {
            self.template_from_backup(&store, &old.template, &chain, progress)?
        } else {
            false
        };
        let template = store.get(&old.template).map_err(|e| match e {
            // A template is shared by every VE made from it: one a backup
            // carries is made only when the operator trusts the backup.
            kennel_storage::StorageError::NoSuchTemplate(t) => VeError::BadInput(format!(
                "the backup's VE was made from template '{t}', which this host lacks: make it first (`kennel template create {t}`), or, for a backup you made with --with-template, restore with --trust-config"
            )),
            other => other.into(),
        })?;
        let template_differs = store.digest(&old.template)? != manifest.template.digest;
        let _lock = self.lock_ve(&req.id)?;
        let _host = self.lock_host()?;
        let pool = self.pool()?;
        let cfg = self.restored_config(req, &old, &template, &pool)?;
        let size = kennel_storage::volume::DiskSize {
            bytes: cfg.storage.disk.map_or(0, |d| d.bytes()),
            inodes: cfg.storage.disk_inodes.unwrap_or(0),
        };
        // Addresses route the host's traffic (and answer ARP on its LAN):
        // they are rights, taken only from a trusted backup, and then
        // only when no VE here has them (a move to another host).
        let mut cfg = cfg;
        let mut with_addresses = cfg.clone();
        with_addresses.network.ips = old.network.ips.clone();
        let addresses_dropped = !old.network.ips.is_empty()
            && (!req.trust_config
                || self
                    .check_network(&req.id, &with_addresses.network, &self.claims()?)
                    .is_err());
        if !addresses_dropped {
            cfg = with_addresses;
        }
        let vol = self
            .volume_of(&cfg)
            .ok_or_else(|| VeError::BadInput("internal: a restored VE has no disk".into()))?;
        let ids = IdShift {
            uid_base: cfg.idmap.uid_base,
            gid_base: cfg.idmap.gid_base,
        };
        let total: u64 = chain
            .iter()
            .map(|p| fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            .sum();
        progress.total(total);
        let scratch = self.paths.scratch(&format!("restore-{}", req.id));
        let owner = (cfg.idmap.uid_base, cfg.idmap.gid_base);
        let backups = chain.len().max(1);
        let mut report = None;
        self.build_new_ve(&cfg, |_| {
            let shift_dir = self.paths.scratch(&format!("restore-shift-{}", req.id));
            vol.create(
                size,
                owner,
                &scratch,
                Some(&mut |root: &Path| {
                    if cfg.storage.layer == kennel_storage::layers::LayerMode::Shifted {
                        // The template's files with the VE's owners first; the
                        // backup's layer (without its metadata-only copies)
                        // goes over them.
                        kennel_storage::layers::prepare_shifted(
                            &template.rootfs,
                            &kennel_storage::layers::VeLayers::new(root),
                            &shift_dir,
                            cfg.idmap.uid_base,
                        )?;
                    }
                    let opts = kennel_storage::backup::RestoreOptions {
                        over_prepared: cfg.storage.layer
                            == kennel_storage::layers::LayerMode::Shifted,
                        ids,
                        limits: kennel_storage::unpack::UnpackLimits {
                            max_bytes: size.bytes.saturating_mul(2),
                            ..Default::default()
                        },
                    };
                    let upper = root.join("upper");
                    match stdin_head.take() {
                        Some(head) => {
                            let r = std::io::Cursor::new(head).chain(std::io::stdin().lock());
                            report = Some(kennel_storage::backup::restore_chain(
                                [r],
                                &upper,
                                &opts,
                                &|n| progress.done(n),
                            )?);
                        }
                        None => {
                            let mut readers = Vec::new();
                            for p in &chain {
                                let f = fs::File::open(p).map_err(|e| {
                                    kennel_storage::StorageError::Layer(format!(
                                        "open {}: {e}",
                                        p.display()
                                    ))
                                })?;
                                readers.push(std::io::BufReader::new(f));
                            }
                            report = Some(kennel_storage::backup::restore_chain(
                                readers,
                                &upper,
                                &opts,
                                &|n| progress.done(n),
                            )?);
                        }
                    }
                    Ok(())
                }),
            )?;
            Ok(())
        })?;
        Ok(Restored {
            config: cfg,
            backups,
            made_template,
            refused: report
                .and_then(|r: kennel_storage::backup::RestoreReport| r.refused_summary()),
            addresses_dropped,
            template_differs,
        })
    }
}

/// A reader that keeps what it read.
struct Recorder<R> {
    inner: R,
    seen: Vec<u8>,
}

impl<R: std::io::Read> std::io::Read for Recorder<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.seen.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}
