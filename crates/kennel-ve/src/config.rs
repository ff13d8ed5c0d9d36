//! A VE's configuration: one human-readable TOML file (`ve.conf`),
//! written atomically.

use std::fs;
use std::io::Write;
use std::path::Path;

use kennel_runtime::features::Features;
use kennel_storage::layers::LayerMode;
use kennel_storage::InitKind;
use serde::{Deserialize, Serialize};

use crate::error::{Result, VeError};
use crate::id::VeId;

pub use crate::resources::{Resources, DEFAULT_NUMPTY, MIN_MEMORY, NUMPTY_RANGE};

/// The VE's host id range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdRange {
    pub uid_base: u32,
    pub gid_base: u32,
    pub size: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitConfig {
    pub kind: InitKind,
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    pub layer: LayerMode,
    /// Where the VE's files live; configurations older than pools say
    /// nothing and mean `dir`.
    #[serde(default, skip_serializing_if = "Backend::is_dir")]
    pub backend: Backend,
    /// The pool that holds the VE's disk (`<pool>/<uuid>`), as it was
    /// when the disk was made: a later `kennel.toml` never moves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<std::path::PathBuf>,
    /// The disk's size (the `image` backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<crate::units::Size>,
    /// The disk's inodes (fixed when its filesystem is made).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_inodes: Option<u64>,
}

/// Where a VE's own files live (docs/STORAGE.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Directories on the state root's filesystem: no quota, no
    /// snapshots (development, or hosts that want it).
    #[default]
    Dir,
    /// A disk image of its own in the pool.
    Image,
}

impl Backend {
    pub fn is_dir(&self) -> bool {
        *self == Backend::Dir
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "dir" => Ok(Backend::Dir),
            "image" => Ok(Backend::Image),
            _ => Err(VeError::BadInput(format!(
                "unknown storage backend '{}': use `image` (a disk of its own, the default) or `dir`",
                s.escape_debug()
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Dir => "dir",
            Backend::Image => "image",
        }
    }
}

/// Whether the host's boot starts the VE, and when (OpenVZ's `ONBOOT`
/// and `BOOTORDER`, Incus's `boot.autostart` and its priority). The host's
/// boot (`kennel boot`) starts the VEs marked `onboot` in groups by
/// `order`, highest first, those without an order last; its shutdown
/// (`kennel shutdown`) stops every running VE in the reverse order. A
/// configuration that says nothing (every one older than this section)
/// means: not started at boot, no order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootConfig {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub onboot: bool,
    /// Higher starts earlier and stops later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<u32>,
}

impl BootConfig {
    pub fn is_default(&self) -> bool {
        *self == BootConfig::default()
    }
}

/// The whole configuration of one VE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VeConfig {
    pub id: VeId,
    pub uuid: String,
    pub hostname: String,
    pub template: String,
    pub created: String,
    #[serde(default)]
    pub resources: Resources,
    pub idmap: IdRange,
    pub init: InitConfig,
    pub storage: StorageConfig,
    /// Opt-in features (`tun`, `fuse`, `nesting`, `keyring`).
    #[serde(default, skip_serializing_if = "Features::is_empty")]
    pub features: Features,
    /// Addresses, bridged interfaces, DNS, rates, NAT, port forwards.
    #[serde(default, skip_serializing_if = "kennel_net::VeNetwork::is_empty")]
    pub network: kennel_net::VeNetwork,
    /// Started at the host's boot, and in which order.
    #[serde(default, skip_serializing_if = "BootConfig::is_default")]
    pub boot: BootConfig,
}

impl IdRange {
    /// A VE's range must be a full 16-bit range (every distribution
    /// expects one) that never includes the host's own ids below 65536,
    /// root above all.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let fits = |base: u32| base >= 65536 && (base as u64 + self.size as u64) <= u32::MAX as u64;
        if self.size < 65536 || !fits(self.uid_base) || !fits(self.gid_base) {
            return Err(format!(
                "invalid [idmap] (uid_base {}, gid_base {}, size {}): bases must be at least 65536 and size at least 65536, below 2^32",
                self.uid_base, self.gid_base, self.size
            ));
        }
        Ok(())
    }
}

/// Hostnames: RFC 1123 labels joined by dots, at most 64 characters.
pub fn validate_hostname(h: &str) -> Result<()> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if h.is_empty() || h.len() > 64 || !h.split('.').all(label_ok) {
        return Err(VeError::BadInput(format!(
            "invalid hostname '{h}': use letters, digits and '-', in dot-separated labels, at most 64 characters"
        )));
    }
    Ok(())
}

const HEADER: &str = "# Kennel VE configuration. Edit only while the VE is stopped;\n# `kennel config ID` shows it, `kennel start ID` applies it.\n\n";

impl VeConfig {
    /// Reads and checks the configuration of VE `id` from `path`.
    pub fn load(path: &Path, id: &VeId) -> Result<Self> {
        let text = fs::read_to_string(path)
            .map_err(crate::error::io(format!("read {}", path.display())))?;
        Self::parse(&text, id, path)
    }

    /// Checks `text` as the configuration of VE `id`; `path` names it in
    /// errors. [`VeConfig::load`] without the file (the fuzz targets).
    pub fn parse(text: &str, id: &VeId, path: &Path) -> Result<Self> {
        let bad = |what: String| VeError::BadInput(format!("{}: {what}", path.display()));
        let cfg: VeConfig =
            toml::from_str(text).map_err(|e| bad(e.to_string().trim().to_string()))?;
        if &cfg.id != id {
            return Err(bad(format!(
                "it says id = \"{}\" but belongs to VE {id} (a copied VE directory needs its own id and id range)",
                cfg.id
            )));
        }
        cfg.idmap.validate().map_err(bad)?;
        cfg.resources.validate()?;
        validate_hostname(&cfg.hostname)?;
        // What `create` and `set` check, a hand-edited file must pass too.
        cfg.network.validate().map_err(|e| bad(e.to_string()))?;
        Ok(cfg)
    }

    pub fn to_toml(&self) -> Result<String> {
        let body = toml::to_string_pretty(self).map_err(|e| VeError::BadInput(e.to_string()))?;
        Ok(format!("{HEADER}{body}"))
    }

    /// Writes the file atomically: a temporary file, fsync, rename, fsync
    /// of the directory. A crash leaves the old or the new file, never a
    /// mix.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = self.to_toml()?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let tmp = dir.join(format!(".ve.conf.tmp-{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, path)?;
            fs::File::open(dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            crate::error::io(format!("write {}", path.display()))(e)
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::limit::Limit;
    use crate::units::Size;

    pub(crate) fn sample() -> VeConfig {
        VeConfig {
            id: VeId::parse("101").expect("id"),
            uuid: "0f0e0d0c-0b0a-4908-8706-050403020100".into(),
            hostname: "web1".into(),
            template: "debian-12".into(),
            created: "2026-01-01T00:00:00Z".into(),
            resources: Resources {
                memory: Some(Limit::Max(Size(512 << 20))),
                cpus: Some(1.5),
                numproc: Some(Limit::Max(512)),
                numpty: Some(32),
                ..Resources::default()
            },
            idmap: IdRange {
                uid_base: 100_000_000,
                gid_base: 100_000_000,
                size: 65536,
            },
            init: InitConfig {
                kind: InitKind::Systemd,
                path: "/sbin/init".into(),
            },
            storage: StorageConfig {
                layer: LayerMode::Idmapped,
                backend: Backend::Image,
                pool: Some("/var/lib/kennel/pool".into()),
                disk: Some(crate::units::Size(10 << 30)),
                disk_inodes: Some(655_360),
            },
            features: Features::parse_list("tun,keyring").expect("features"),
            network: kennel_net::VeNetwork {
                ips: vec![kennel_net::model::parse_ve_address("192.0.2.11").expect("ip")],
                nameservers: vec!["192.0.2.1".parse().expect("ns")],
                rate: kennel_net::model::RateLimit::parse("100mbit").expect("rate"),
                ..Default::default()
            },
            boot: BootConfig {
                onboot: true,
                order: Some(10),
            },
        }
    }

    #[test]
    fn round_trips_and_is_readable() {
        let c = sample();
        let text = c.to_toml().expect("toml");
        assert!(text.contains("memory = \"512M\""), "{text}");
        assert!(text.contains("hostname = \"web1\""));
        assert!(
            text.contains("features = [\n    \"tun\",\n    \"keyring\",\n]"),
            "{text}"
        );
        let back: VeConfig = toml::from_str(&text).expect("parse");
        assert_eq!(back, c);
    }

    #[test]
    fn saves_atomically() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("ve.conf");
        sample().save(&p).expect("save");
        let id = VeId::parse("101").expect("id");
        assert_eq!(VeConfig::load(&p, &id).expect("load"), sample());
        assert!(
            VeConfig::load(&p, &VeId::parse("102").expect("id")).is_err(),
            "a config under another id is refused"
        );
        assert_eq!(
            fs::read_dir(d.path()).expect("ls").count(),
            1,
            "no temporary file left"
        );
    }

    /// A hand-edited file passes the checks of `create` and `set` (found
    /// by fuzzing: the network and CPU counts were not checked on load).
    #[test]
    fn hand_edits_are_checked_like_the_cli() {
        let id = VeId::parse("101").expect("id");
        let text = sample().to_toml().expect("toml");
        let origin = Path::new("ve.conf");
        assert_eq!(
            VeConfig::parse(&text, &id, origin).expect("parse"),
            sample()
        );
        for (from, to) in [
            ("192.0.2.11/32", "127.0.0.1/32"),
            ("nameservers = [\"192.0.2.1\"]", "searchdomains = [\"\"]"),
            ("cpus = 1.5", "cpus = 1e300"),
        ] {
            let bad = text.replace(from, to);
            assert_ne!(bad, text, "{from}");
            assert!(VeConfig::parse(&bad, &id, origin).is_err(), "{to}");
        }
    }

    /// Configurations written before `[boot]` existed still load: not
    /// started at boot, no order; and a VE that is neither writes no
    /// section.
    #[test]
    fn boot_settings_default_to_off() {
        let id = VeId::parse("101").expect("id");
        let mut c = sample();
        let text = c.to_toml().expect("toml");
        assert!(
            text.contains("[boot]\nonboot = true\norder = 10\n"),
            "{text}"
        );
        let start = text.find("[boot]").expect("[boot]");
        let old = format!(
            "{}{}",
            &text[..start],
            &text[start + "[boot]\nonboot = true\norder = 10\n".len()..]
        );
        let back = VeConfig::parse(&old, &id, Path::new("ve.conf")).expect("old file");
        assert_eq!(back.boot, BootConfig::default());
        assert!(!back.boot.onboot && back.boot.order.is_none());
        c.boot = BootConfig::default();
        assert!(!c.to_toml().expect("toml").contains("[boot]"));
        c.boot.order = Some(0);
        let text = c.to_toml().expect("toml");
        assert!(text.contains("[boot]\norder = 0\n"), "{text}");
        assert_eq!(
            VeConfig::parse(&text, &id, Path::new("ve.conf")).expect("parse"),
            c
        );
        for bad in [
            "onboot = \"yes\"",
            "order = -1",
            "order = 4294967296",
            "autostart = true",
        ] {
            let t = text.replace("order = 0", bad);
            assert!(
                VeConfig::parse(&t, &id, Path::new("ve.conf")).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn rejects_unknown_keys() {
        let text = sample()
            .to_toml()
            .expect("toml")
            .replace("hostname", "hostnme");
        assert!(toml::from_str::<VeConfig>(&text).is_err());
    }

    #[test]
    fn id_ranges_never_reach_host_ids() {
        let ok = IdRange {
            uid_base: 100_000_000,
            gid_base: 100_000_000,
            size: 65536,
        };
        assert!(ok.validate().is_ok());
        for bad in [
            IdRange { uid_base: 0, ..ok },
            IdRange {
                gid_base: 1000,
                ..ok
            },
            IdRange { size: 100, ..ok },
            IdRange {
                uid_base: u32::MAX - 10,
                ..ok
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hostnames() {
        for ok in ["web1", "a.example.net", "x-y"] {
            assert!(validate_hostname(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a_b", "a..b", "a b", &"x".repeat(65)] {
            assert!(validate_hostname(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_default_swap_to_zero() {
        let l = sample().resources.limits();
        assert_eq!(l.memory, Some(512 << 20));
        assert_eq!(l.swap, Some(0));
        assert_eq!(l.pids, Some(512));
    }
}
