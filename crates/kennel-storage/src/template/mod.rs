//! The template store: one read-only root filesystem per template, shared
//! by every VE made from it.
//!
//! Layout below the store directory:
//!
//! ```text
//! <name>/template.toml      metadata (TemplateMeta)
//! <name>/rootfs/            the tree, owned by host uid 0 (VEs see it idmapped)
//! .<name>.tmp-<pid>/        a template being built; renamed into place when done
//! ```
//!
//! Building always happens in a staging directory that is renamed into
//! place at the end, so a crash never leaves a half-made template under its
//! real name; leftover staging directories are swept by the next build.
//!
//! A template can also come out of a VE's backup made with
//! `--with-template` ([`Source::Backup`], [`from_backup`]), so a VE can be
//! restored on a host that never had its template: the tree goes through
//! the same unpacker as a tarball's, then the same last step.

mod busybox;
mod debootstrap;
mod digest;
mod finalize;
mod from_backup;
mod import;
mod meta;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use digest::tree_digest;
pub use import::decompressed;
pub use meta::TemplateMeta;

use crate::error::{io_err, Result, StorageError};
use crate::remove::remove_tree;
use crate::shown::shown;
use crate::unpack::UnpackLimits;

/// How to make a new template.
#[derive(Debug, Clone)]
pub enum Source {
    /// From the host's statically linked busybox.
    Busybox,
    /// `debootstrap` of a Debian suite with systemd as init.
    Debootstrap {
        suite: String,
        mirror: Option<String>,
        cache_dir: PathBuf,
    },
    /// An untrusted root filesystem tarball (.tar, .tar.gz, .tar.zst),
    /// unpacked within the limits.
    Tarball(PathBuf, UnpackLimits),
    /// The template held by a backup file made with `--with-template`
    /// (any backup of a chain that holds it), unpacked within the limits.
    Backup(PathBuf, UnpackLimits),
}

impl Source {
    /// The source for `kennel template create NAME`: `busybox` or
    /// `debian-<n>` (`debian-12` is bookworm).
    pub fn named(name: &str, mirror: Option<String>, cache_dir: PathBuf) -> Result<Self> {
        let suite = match name {
            "busybox" => return Ok(Source::Busybox),
            "debian-12" | "debian-bookworm" => "bookworm",
            "debian-13" | "debian-trixie" => "trixie",
            other => return Err(StorageError::UnknownSource(other.to_string())),
        };
        Ok(Source::Debootstrap {
            suite: suite.into(),
            mirror,
            cache_dir,
        })
    }
}

/// A template in the store.
#[derive(Debug, Clone)]
pub struct Template {
    pub meta: TemplateMeta,
    pub rootfs: PathBuf,
}

/// The directory holding all templates.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// Template names: `[a-z0-9][a-z0-9._-]{0,63}`.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StorageError::BadTemplateName(name.to_string()))
    }
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Store { dir: dir.into() }
    }

    fn path_of(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The template `name`, or [`StorageError::NoSuchTemplate`].
    pub fn get(&self, name: &str) -> Result<Template> {
        validate_name(name)?;
        let dir = self.path_of(name);
        let meta = match TemplateMeta::load(&dir.join(meta::FILE)) {
            Ok(m) => m,
            Err(StorageError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Err(StorageError::NoSuchTemplate(name.to_string()))
            }
            Err(e) => return Err(e),
        };
        Ok(Template {
            meta,
            rootfs: dir.join("rootfs"),
        })
    }

    /// All complete templates, sorted by name.
    pub fn list(&self) -> Result<Vec<Template>> {
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("read", &self.dir)(e)),
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if validate_name(&name).is_err() {
                continue;
            }
            if let Ok(t) = self.get(&name) {
                out.push(t);
            }
        }
        out.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
        Ok(out)
    }

    /// Builds template `name` from `source`. `progress` receives one-line
    /// status messages for the user.
    pub fn create(
        &self,
        name: &str,
        source: &Source,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Template> {
        validate_name(name)?;
        if self.path_of(name).exists() {
            return Err(StorageError::TemplateExists(name.to_string()));
        }
        fs::create_dir_all(&self.dir).map_err(io_err("create", &self.dir))?;
        crate::util::mkdir_mode(&self.dir, 0o700)?;
        crate::staging::sweep(&self.dir);
        let staging = crate::staging::building(&self.dir, name);
        remove_tree(&staging)?;
        let result = self.build_into(name, source, &staging, progress);
        if result.is_err() {
            let _ = remove_tree(&staging);
        }
        result
    }

    fn build_into(
        &self,
        name: &str,
        source: &Source,
        staging: &Path,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Template> {
        let rootfs = staging.join("rootfs");
        crate::util::mkdir_mode(&rootfs, 0o755)?;
        let mut recorded_digest = None;
        let source_desc = match source {
            Source::Busybox => busybox::build(&rootfs)?,
            Source::Debootstrap {
                suite,
                mirror,
                cache_dir,
            } => debootstrap::build(&rootfs, suite, mirror.as_deref(), cache_dir, progress)?,
            Source::Tarball(path, limits) => import::build(&rootfs, path, limits, progress)?,
            Source::Backup(path, limits) => {
                let built = from_backup::build(&rootfs, path, limits, progress)?;
                recorded_digest = Some(built.recorded_digest);
                built.source
            }
        };
        progress("finishing template");
        let meta = finalize::finish(name, &rootfs, source_desc)?;
        if let Some(recorded) = recorded_digest.filter(|d| !d.is_empty()) {
            if recorded != meta.digest {
                progress(&format!(
                    "the template's digest ({}) differs from the one the backup recorded ({})",
                    meta.digest,
                    shown(recorded.as_bytes())
                ));
            }
        }
        meta.save(&staging.join(meta::FILE))?;
        let dest = self.path_of(name);
        // rename(2) refuses to replace a non-empty directory, so a template
        // made concurrently under the same name is never clobbered.
        fs::rename(staging, &dest).map_err(|e| {
            if e.raw_os_error() == Some(libc::ENOTEMPTY) || e.kind() == io::ErrorKind::AlreadyExists
            {
                StorageError::TemplateExists(name.to_string())
            } else {
                io_err("rename", &dest)(e)
            }
        })?;
        Ok(Template {
            meta,
            rootfs: dest.join("rootfs"),
        })
    }

    /// The digest of template `name`, computed and saved the first time
    /// for a template made before digests.
    pub fn digest(&self, name: &str) -> Result<String> {
        let mut t = self.get(name)?;
        if t.meta.digest.is_empty() {
            t.meta.digest = digest::tree_digest(&t.rootfs)?;
            t.meta.save(&self.path_of(name).join(meta::FILE))?;
        }
        Ok(t.meta.digest)
    }

    /// Deletes template `name`. The caller checks that no VE uses it.
    pub fn remove(&self, name: &str) -> Result<()> {
        self.get(name)?;
        let dir = self.path_of(name);
        // Rename first so that a crash mid-way leaves no half-deleted
        // template under its real name.
        let trash = crate::staging::deleting(&self.dir, name);
        fs::rename(&dir, &trash).map_err(io_err("rename", &dir))?;
        remove_tree(&trash).map(drop)
    }
}
