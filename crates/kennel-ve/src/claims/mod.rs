//! The claims index: what each VE holds alone (its id range's slots, its
//! uuid, its addresses, MACs and forwarded host ports), so that a command
//! on one VE checks and takes them without reading every other VE's
//! configuration.
//!
//! A claim is a symlink whose name is the thing claimed and whose target
//! is the id of the VE that holds it (`claims/addr/192.0.2.7 -> 101`): one
//! `symlink(2)` and one `rename(2)` make it, complete or not at all, and a
//! `readlink(2)` names the holder. Claims live in `<lib>/claims/`.
//!
//! The rules that keep the index true:
//! - Everything here runs under the host lock.
//! - A claim is taken (and made durable) before the configuration that
//!   holds the thing is written, and released only after that
//!   configuration no longer holds it (the VE is gone, or `set` saved a
//!   configuration without it). So a crash leaves at worst a claim whose
//!   holder does not hold the thing: *stale*. A stale claim is harmless:
//!   whenever a claim stands in the way, its holder's configuration is
//!   read, and a claim the holder no longer holds is swept. A holder
//!   whose configuration cannot be read keeps its claims.
//! - A state root made before the index has none: the first command that
//!   needs it builds it from every `ve.conf` (refusing, as the scans
//!   before it did, if one cannot be read) and writes the `complete`
//!   marker last. The marker records the id range grid; a changed
//!   `idmap_base` or `idmap_ranges` builds the index again.
//! - A rename journals itself (`renaming`), so that a crash between
//!   moving the VE and renaming its claims is repaired by the next
//!   command, before any claim is judged stale.
//!
//! Allocation of the lowest free id range slot starts at a hint
//! (`range-hint`, never above the lowest free slot: lowered before a
//! slot's claim goes, raised after one is taken), so that it stats one
//! claim, not every one.

pub(crate) mod thing;

use std::ffi::OsStr;
use std::fs;
use std::io::ErrorKind as IoKind;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::config::{IdRange, VeConfig};
use crate::error::{io, Result, VeError};
use crate::host_config::IDS_PER_VE;
use crate::id::VeId;
use crate::lifecycle::Kennel;
use thing::{port_thing, Grid, Thing};

/// The marker of a complete index; its target records the grid.
const COMPLETE: &str = "complete";
/// The lowest slot that may be free.
const HINT: &str = "range-hint";
/// A rename in progress: `FROM TO`.
const RENAMING: &str = "renaming";

/// The index of one state root, opened under the host lock.
pub(crate) struct Claims<'k> {
    kennel: &'k Kennel,
    dir: PathBuf,
    grid: Grid,
}

impl<'k> Claims<'k> {
    /// The index, complete: repaired after a crashed rename, built if
    /// missing. Returns whether it was built now. Host lock held.
    pub fn open(kennel: &'k Kennel, dir: PathBuf, grid: Grid) -> Result<(Self, bool)> {
        let claims = Claims { kennel, dir, grid };
        if claims.is_complete() {
            claims.settle_rename()?;
            return Ok((claims, false));
        }
        claims.build()?;
        Ok((claims, true))
    }

    /// The index if it is complete, without building it (a destroy has
    /// nothing to release from an index that does not exist yet).
    pub fn open_existing(kennel: &'k Kennel, dir: PathBuf, grid: Grid) -> Result<Option<Self>> {
        let claims = Claims { kennel, dir, grid };
        if !claims.is_complete() {
            return Ok(None);
        }
        claims.settle_rename()?;
        Ok(Some(claims))
    }

    pub fn grid(&self) -> Grid {
        self.grid
    }

    fn marker_text(&self) -> String {
        format!("{} {}", self.grid.base, self.grid.slots)
    }

    fn is_complete(&self) -> bool {
        read_link(&self.dir.join(COMPLETE)).as_deref() == Some(&self.marker_text())
    }

    /// The holder named by the claim at `path`, if there is one.
    fn holder_at(&self, path: &Path) -> Option<String> {
        read_link(&self.dir.join(path))
    }

    /// The VE whose claim holds `uuid`, if any.
    pub fn holder_of_uuid(&self, uuid: &str) -> Option<VeId> {
        let u = uuid::Uuid::parse_str(uuid).ok()?.hyphenated().to_string();
        self.holder_at(&Thing::Uuid(u).path())
            .and_then(|h| VeId::parse(&h).ok())
    }

    /// Whether VE `holder` still holds `thing` (by its configuration). A
    /// configuration that cannot be read holds everything: its things
    /// must not go to another VE.
    fn holds(&self, holder: &str, thing: &Thing) -> bool {
        let Ok(id) = VeId::parse(holder) else {
            return false;
        };
        match self.kennel.config(&id) {
            Ok(cfg) => thing::things_of(&cfg, &self.grid).contains(thing),
            Err(VeError::NoSuchVe(_)) => false,
            Err(_) => true,
        }
    }

    /// The VE other than `me` that holds something clashing with `thing`;
    /// stale claims in the way are swept.
    fn clash(&self, me: &VeId, thing: &Thing) -> Result<Option<String>> {
        let candidates: Vec<(PathBuf, Thing)> = match thing {
            Thing::Port { proto, port, .. } => {
                let dir = thing::port_dir(*proto, *port);
                let names = match fs::read_dir(self.dir.join(&dir)) {
                    Ok(rd) => rd
                        .flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect(),
                    Err(e) if e.kind() == IoKind::NotFound => Vec::new(),
                    Err(e) => return Err(io(format!("read {}", dir.display()))(e)),
                };
                names
                    .iter()
                    .filter_map(|n| port_thing(*proto, *port, n).map(|t| (dir.join(n), t)))
                    .filter(|(_, t)| t.clashes_with(thing))
                    .collect()
            }
            other => vec![(other.path(), other.clone())],
        };
        for (path, theirs) in candidates {
            let Some(holder) = self.holder_at(&path) else {
                continue;
            };
            if holder == me.as_str() {
                continue;
            }
            if self.holds(&holder, &theirs) {
                return Ok(Some(holder));
            }
            tracing::debug!("sweeping the stale claim {} of VE {holder}", path.display());
            remove_claim(&self.dir.join(&path))?;
        }
        Ok(None)
    }

    /// Fails with what to do unless VE `me` may hold every one of
    /// `things`.
    pub fn check(&self, me: &VeId, things: &[Thing]) -> Result<()> {
        for t in things {
            if let Some(other) = self.clash(me, t)? {
                return Err(VeError::BadInput(t.taken_message(&other)));
            }
        }
        Ok(())
    }

    /// Checks `things` for VE `me` and claims them, durably, before the
    /// configuration that holds them is written.
    pub fn take(&self, me: &VeId, things: &[Thing]) -> Result<()> {
        self.check(me, things)?;
        let mut dirs: Vec<PathBuf> = Vec::new();
        for t in things {
            let path = self.dir.join(t.path());
            if read_link(&path).as_deref() == Some(me.as_str()) {
                continue;
            }
            write_link(&path, me.as_str())?;
            if let Some(d) = path.parent() {
                if !dirs.iter().any(|x| x == d) {
                    dirs.push(d.to_path_buf());
                }
            }
        }
        for d in &dirs {
            sync_dir(d)?;
        }
        for t in things {
            if let Thing::Slot(i) = t {
                if self.hint() == *i {
                    self.set_hint(i + 1)?;
                }
            }
        }
        Ok(())
    }

    /// Gives up VE `me`'s claims on `things`, once its configuration no
    /// longer holds them (claims another VE holds stay).
    pub fn release(&self, me: &VeId, things: &[Thing]) -> Result<()> {
        for t in things {
            let path = self.dir.join(t.path());
            if read_link(&path).as_deref() != Some(me.as_str()) {
                continue;
            }
            if let Thing::Slot(i) = t {
                // Lowered first: a crash between leaves a hint below a
                // taken slot, which costs one stat, never a lost slot.
                if *i < self.hint() {
                    self.set_hint(*i)?;
                }
            }
            remove_claim(&path)?;
            if let Thing::Port { .. } = t {
                if let Some(d) = path.parent() {
                    let _ = fs::remove_dir(d);
                }
            }
        }
        Ok(())
    }

    /// The lowest free id range (not yet claimed: [`Claims::take`] claims
    /// it with the rest of the new VE's things).
    pub fn allocate(&self) -> Result<IdRange> {
        let range = |i: u32| IdRange {
            uid_base: self.grid.slot_base(i),
            gid_base: self.grid.slot_base(i),
            size: IDS_PER_VE,
        };
        let hint = self.hint().min(self.grid.slots);
        for i in hint..self.grid.slots {
            if self.holder_at(&Thing::Slot(i).path()).is_none() {
                if i > hint {
                    self.set_hint(i)?;
                }
                return Ok(range(i));
            }
        }
        // Every slot from the hint up is claimed: the rare full pass,
        // which also sweeps what crashes left.
        for i in 0..self.grid.slots {
            let path = Thing::Slot(i).path();
            match self.holder_at(&path) {
                None => return Ok(range(i)),
                Some(h) if !self.holds(&h, &Thing::Slot(i)) => {
                    remove_claim(&self.dir.join(&path))?;
                    return Ok(range(i));
                }
                Some(_) => {}
            }
        }
        Err(VeError::HostUnsupported(format!(
            "all {} id ranges are in use: raise idmap_ranges in kennel.toml",
            self.grid.slots
        )))
    }

    fn hint(&self) -> u32 {
        read_link(&self.dir.join(HINT))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    fn set_hint(&self, slot: u32) -> Result<()> {
        write_link(&self.dir.join(HINT), &slot.to_string())
    }

    /// Journals the rename of VE `from` to `to`; [`Claims::settle_rename`]
    /// ends it.
    pub fn begin_rename(&self, from: &VeId, to: &VeId) -> Result<()> {
        let path = self.dir.join(RENAMING);
        write_link(&path, &format!("{from} {to}"))?;
        sync_dir(&self.dir)
    }

    /// Ends a rename (finished, failed or cut short by a crash): the
    /// claims of the VE, wherever it is now, name it.
    pub fn settle_rename(&self) -> Result<()> {
        let journal = self.dir.join(RENAMING);
        let Some(text) = read_link(&journal) else {
            return Ok(());
        };
        let ids: Vec<VeId> = text
            .split(' ')
            .filter_map(|s| VeId::parse(s).ok())
            .collect();
        // The new id first: `config` completes a rename cut short there.
        let found = ids
            .iter()
            .rev()
            .find_map(|id| self.kennel.config(id).ok().map(|c| (id, c)));
        if let Some((now, cfg)) = found {
            for t in thing::things_of(&cfg, &self.grid) {
                let path = self.dir.join(t.path());
                let rewrite = match read_link(&path) {
                    None => true,
                    Some(h) => h != now.as_str() && ids.iter().any(|i| i.as_str() == h),
                };
                if rewrite {
                    write_link(&path, now.as_str())?;
                }
            }
            sync_dir(&self.dir)?;
        }
        remove_claim(&journal)
    }

    /// Builds the index from every VE's configuration, the marker last.
    fn build(&self) -> Result<()> {
        if self.dir.exists() {
            let old = self
                .dir
                .with_file_name(format!("claims.old-{}", std::process::id()));
            fs::rename(&self.dir, &old).map_err(io(format!("rename {}", self.dir.display())))?;
            // Symlinks are removed, never followed.
            fs::remove_dir_all(&old).map_err(io(format!("remove {}", old.display())))?;
        }
        fs::create_dir_all(&self.dir).map_err(io(format!("create {}", self.dir.display())))?;
        let mut taken = vec![false; self.grid.slots as usize];
        for id in self.kennel.ids()? {
            let cfg: VeConfig = match self.kennel.config(&id) {
                Ok(c) => c,
                Err(VeError::NoSuchVe(_)) => continue,
                Err(e) => {
                    return Err(VeError::BadInput(format!(
                        "cannot read the configuration of VE {id} ({e}); fix it first: its id range and addresses must not be given to another VE"
                    )))
                }
            };
            for t in thing::things_of(&cfg, &self.grid) {
                if let Thing::Slot(i) = t {
                    taken[i as usize] = true;
                }
                let path = self.dir.join(t.path());
                // Two VEs that share a thing (hand-edited): the first
                // holds the claim, and a change of either is refused.
                if read_link(&path).is_none() {
                    write_link(&path, id.as_str())?;
                }
            }
        }
        let lowest = taken.iter().position(|t| !t).unwrap_or(taken.len());
        self.set_hint(lowest as u32)?;
        for sub in ["range", "uuid", "addr", "mac", "port"] {
            let d = self.dir.join(sub);
            fs::create_dir_all(&d).map_err(io(format!("create {}", d.display())))?;
            sync_dir(&d)?;
        }
        write_link(&self.dir.join(COMPLETE), &self.marker_text())?;
        sync_dir(&self.dir)
    }
}

/// The target of the symlink at `path`, if it is one.
fn read_link(path: &Path) -> Option<String> {
    fs::read_link(path)
        .ok()
        .map(|t| t.to_string_lossy().into_owned())
}

/// Makes `path` a symlink to `target`, atomically (replacing what was
/// there).
fn write_link(path: &Path, target: &str) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".tmp-{}", std::process::id()));
    let make = || -> std::io::Result<()> {
        match std::os::unix::fs::symlink(OsStr::from_bytes(target.as_bytes()), &tmp) {
            Err(e) if e.kind() == IoKind::NotFound => {
                fs::create_dir_all(dir)?;
                std::os::unix::fs::symlink(target, &tmp)?;
            }
            Err(e) if e.kind() == IoKind::AlreadyExists => {
                fs::remove_file(&tmp)?;
                std::os::unix::fs::symlink(target, &tmp)?;
            }
            other => other?,
        }
        fs::rename(&tmp, path)
    };
    make().map_err(io(format!("write the claim {}", path.display())))
}

fn remove_claim(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != IoKind::NotFound => {
            Err(io(format!("remove the claim {}", path.display()))(e))
        }
        _ => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io(format!("sync {}", dir.display())))
}

#[cfg(test)]
mod tests;
