//! Templates, as the lifecycle sees them: a template in use by a VE cannot
//! be removed.

use kennel_storage::template::{Source, Store, Template};

use super::Kennel;
use crate::error::{Result, VeError};

impl Kennel {
    pub fn template_store(&self) -> Store {
        Store::new(self.paths.templates())
    }

    /// Builds template `name` from the source called `source` (`busybox`,
    /// `debian-12`).
    pub fn template_create(
        &self,
        name: &str,
        source: &str,
        mirror: Option<String>,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Template> {
        let src = Source::named(source, mirror, self.paths.cache().join("debootstrap"))?;
        Ok(self.template_store().create(name, &src, progress)?)
    }

    /// Imports a root filesystem tarball as template `name`.
    pub fn template_import(
        &self,
        name: &str,
        tarball: &std::path::Path,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Template> {
        if !tarball.is_file() {
            return Err(VeError::BadInput(format!(
                "{} is not a file",
                tarball.display()
            )));
        }
        Ok(self.template_store().create(
            name,
            &Source::Tarball(tarball.to_path_buf(), self.host.unpack_limits()),
            progress,
        )?)
    }

    /// Removes template `name` unless a VE uses it.
    pub fn template_remove(&self, name: &str) -> Result<()> {
        let store = self.template_store();
        store.get(name)?;
        let _host = self.lock_host()?;
        // A VE whose configuration cannot be read might use it: keep it.
        let mut users = Vec::new();
        for id in self.ids()? {
            let cfg = match self.config(&id) {
                Ok(c) => c,
                // Destroyed meanwhile (destroy does not take the host lock).
                Err(VeError::NoSuchVe(_)) => continue,
                Err(e) => {
                    return Err(VeError::BadInput(format!(
                        "cannot tell whether VE {id} uses template '{name}' ({e}): fix or destroy VE {id} first"
                    )))
                }
            };
            if cfg.template == name {
                users.push(id.to_string());
            }
        }
        if !users.is_empty() {
            return Err(VeError::TemplateInUse {
                name: name.to_string(),
                users,
            });
        }
        Ok(store.remove(name)?)
    }
}
