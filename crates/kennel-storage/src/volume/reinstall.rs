//! A fresh disk for a VE (`kennel reinstall`), built beside the old one
//! and renamed over it: a crash leaves the old disk or the new, never a
//! mix (a leftover `.disk.img.new-PID` goes with [`Volume::sweep`]).

use std::fs;
use std::path::{Path, PathBuf};

use super::{DiskSize, Volume};
use crate::error::{io_err, Result};

impl Volume {
    fn new_image(&self) -> PathBuf {
        self.dir
            .join(format!(".disk.img.new-{}", std::process::id()))
    }

    /// Replaces the disk with an empty one of `size` (prepared as
    /// [`Volume::create`] prepares a new disk).
    pub fn replace_with_empty(
        &self,
        size: DiskSize,
        owner: (u32, u32),
        scratch: &Path,
        prepare: &mut dyn FnMut(&Path) -> Result<()>,
    ) -> Result<()> {
        let new = self.new_image();
        let built = self
            .make_image(&new, size, owner)
            .and_then(|()| self.with_mounted(&new, scratch, &mut |root| prepare(root)));
        self.commit(&new, built)
    }

    /// Replaces the disk with a copy of itself that keeps only the
    /// layer's `keep` paths.
    pub fn replace_keeping(&self, keep: &[Vec<String>], scratch: &Path) -> Result<()> {
        let new = self.new_image();
        let built = self.clone_image_to(&new, None).and_then(|_| {
            self.with_mounted(&new, scratch, &mut |root| {
                crate::prune::keep_only(&root.join("upper"), keep)?;
                // What overlayfs left in its work directory is of the old
                // layer.
                crate::remove::remove_tree(&root.join("work")).map(drop)?;
                crate::util::mkdir_mode(&root.join("work"), 0o700)
            })
        });
        self.commit(&new, built)
    }

    fn commit(&self, new: &Path, built: Result<()>) -> Result<()> {
        let done =
            built.and_then(|()| fs::rename(new, self.image()).map_err(io_err("rename", new)));
        if done.is_err() {
            let _ = fs::remove_file(new);
        }
        let _ = fs::remove_file(self.grow_pending());
        done
    }

    /// Removes new disks and rollbacks of commands that died.
    pub fn sweep(&self) {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_prefix(".disk.img.")
                .and_then(|r| r.rsplit_once('-'))
                .and_then(|(_, p)| p.parse::<u32>().ok());
            if let Some(pid) = pid {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }
}
