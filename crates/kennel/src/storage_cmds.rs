//! The storage commands: call the library, show progress on a terminal,
//! print the result.

use anyhow::Result;
use kennel_ve::units::{human, Size};
use kennel_ve::{Kennel, VeError, VeId};
use serde_json::json;

use crate::commands::say;
use crate::output::outln;
use crate::storage_args::{SnapshotCommand, StorageCommand};

/// An inode count: a whole number, or with K or M (thousands, millions).
pub fn inode_count(s: &str) -> Result<u64, VeError> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1_000),
        Some('m' | 'M') => (&t[..t.len() - 1], 1_000_000),
        _ => (t, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|&n| n > 0 && n <= u32::MAX as u64)
        .ok_or_else(|| {
            VeError::BadInput(format!(
                "invalid --disk-inodes '{s}': give a whole number, optionally with K or M (e.g. 2M)"
            ))
        })
}

pub fn storage(k: &Kennel, cmd: StorageCommand, quiet: bool) -> Result<i32> {
    match cmd {
        StorageCommand::Init { size, device } => {
            let size = size
                .as_deref()
                .map(|s| crate::resource_args::size_with_unit(s, "--size"))
                .transpose()?
                .map(Size::bytes);
            let (pool, made) = k.storage_init(size, device)?;
            let usage = pool.usage()?;
            say(
                quiet,
                format!(
                    "{} storage pool at {} ({}, {} free)",
                    if made { "Made the" } else { "The" },
                    pool.record.path.display(),
                    source_words(&pool.record.source),
                    human(usage.free)
                ),
            )?;
            Ok(0)
        }
        StorageCommand::Remove => {
            match k.storage_remove()? {
                Some(path) => say(
                    quiet,
                    format!("Removed the storage pool at {}", path.display()),
                )?,
                None => say(quiet, "There is no storage pool".into())?,
            }
            Ok(0)
        }
        StorageCommand::Info { json } => {
            let Some(pool) = k.existing_pool()? else {
                if json {
                    outln!("{}", json!({ "pool": null }))?;
                } else {
                    outln!("No storage pool yet: `kennel storage init` makes one (the first `kennel create` does too).")?;
                }
                return Ok(0);
            };
            let usage = pool.usage()?;
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "pool": pool.record,
                        "size": usage.size,
                        "used": usage.used,
                        "free": usage.free,
                    }))?
                )?;
            } else {
                outln!(
                    "pool {}: {}, size {}, used {}, free {}",
                    pool.record.path.display(),
                    source_words(&pool.record.source),
                    Size(usage.size),
                    Size(usage.used),
                    human(usage.free)
                )?;
            }
            Ok(0)
        }
    }
}

fn source_words(s: &kennel_storage::pool::PoolSource) -> String {
    use kennel_storage::pool::PoolSource;
    match s {
        PoolSource::Dir => "a directory on a filesystem with reflinks".into(),
        PoolSource::Loop { image, size } => {
            format!(
                "XFS in {} on a loop device, {}",
                image.display(),
                human(*size)
            )
        }
        PoolSource::Device { device } => format!("XFS on {}", device.display()),
    }
}

pub fn snapshot(k: &Kennel, cmd: SnapshotCommand, quiet: bool) -> Result<i32> {
    match cmd {
        SnapshotCommand::Create { id, name } => {
            let id = VeId::parse(&id)?;
            let (meta, taken) = k.snapshot_create(&id, &name)?;
            let frozen = match taken.frozen {
                Some(d) => format!("; the VE was frozen {:.1} ms", d.as_secs_f64() * 1000.0),
                None => String::new(),
            };
            say(
                quiet,
                format!(
                    "Took snapshot '{}' of VE {id} in {:.1} ms{frozen}",
                    meta.name,
                    taken.total.as_secs_f64() * 1000.0
                ),
            )?;
            Ok(0)
        }
        SnapshotCommand::List { id, json } => {
            let id = VeId::parse(&id)?;
            let snaps = k.snapshot_list(&id)?;
            if json {
                let v: Vec<_> = snaps
                    .iter()
                    .map(|s| {
                        json!({
                            "name": s.name,
                            "created": s.created,
                            "size": s.size,
                            "frozen_ms": s.frozen_ms,
                        })
                    })
                    .collect();
                outln!("{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                outln!(
                    "{:<24} {:<22} {:>8} {:>10}",
                    "NAME",
                    "CREATED",
                    "DISK",
                    "FROZEN"
                )?;
                for s in &snaps {
                    outln!(
                        "{:<24} {:<22} {:>8} {:>10}",
                        s.name,
                        s.created,
                        human(s.size),
                        s.frozen_ms.map_or("-".into(), |m| format!("{m:.1}ms"))
                    )?;
                }
            }
            Ok(0)
        }
        SnapshotCommand::Rollback { id, name, timeout } => {
            let id = VeId::parse(&id)?;
            let restarted =
                k.snapshot_rollback(&id, &name, std::time::Duration::from_secs(timeout))?;
            say(
                quiet,
                format!(
                    "Rolled VE {id} back to snapshot '{name}'{}",
                    if restarted {
                        " and started it again"
                    } else {
                        ""
                    }
                ),
            )?;
            Ok(0)
        }
        SnapshotCommand::Mount { id, name, dir } => {
            let id = VeId::parse(&id)?;
            k.snapshot_mount(&id, &name, &dir)?;
            say(
                quiet,
                format!(
                    "Mounted snapshot '{name}' of VE {id} read-only at {}; unmount with `kennel snapshot umount {id} {name}`",
                    dir.display()
                ),
            )?;
            Ok(0)
        }
        SnapshotCommand::Umount { id, name } => {
            let id = VeId::parse(&id)?;
            let at = k.snapshot_umount(&id, &name)?;
            say(
                quiet,
                format!(
                    "Unmounted snapshot '{name}' of VE {id} from {}",
                    at.display()
                ),
            )?;
            Ok(0)
        }
        SnapshotCommand::Delete { id, name } => {
            let id = VeId::parse(&id)?;
            k.snapshot_delete(&id, &name)?;
            say(quiet, format!("Deleted snapshot '{name}' of VE {id}"))?;
            Ok(0)
        }
    }
}

pub fn clone(k: &Kennel, a: crate::storage_args::CloneArgs, quiet: bool) -> Result<i32> {
    let id = VeId::parse(&a.id)?;
    let new_id = VeId::parse(&a.new_id)?;
    let started = std::time::Instant::now();
    let cfg = k.clone_ve(&id, &new_id, a.hostname)?;
    say(
        quiet,
        format!(
            "Cloned VE {id} to VE {} in {:.0} ms (hostname {}, host ids {}-{}; no addresses: add them with `kennel set {} --ip-add`)",
            cfg.id,
            started.elapsed().as_secs_f64() * 1000.0,
            cfg.hostname,
            cfg.idmap.uid_base,
            cfg.idmap.uid_base as u64 + cfg.idmap.size as u64 - 1,
            cfg.id
        ),
    )?;
    Ok(0)
}

pub fn reinstall(k: &Kennel, a: crate::storage_args::ReinstallArgs, quiet: bool) -> Result<i32> {
    let id = VeId::parse(&a.id)?;
    let keep: Vec<String> = a
        .keep
        .as_deref()
        .map(|s| {
            s.split(',')
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let restarted = k.reinstall(&id, &keep, std::time::Duration::from_secs(a.timeout))?;
    say(
        quiet,
        format!(
            "Reinstalled VE {id} from its template{}{}",
            if keep.is_empty() {
                String::new()
            } else {
                format!(", keeping {}", keep.join(","))
            },
            if restarted { "; started it again" } else { "" }
        ),
    )?;
    Ok(0)
}

pub fn rename(k: &Kennel, a: crate::storage_args::RenameArgs, quiet: bool) -> Result<i32> {
    let id = VeId::parse(&a.id)?;
    let new_id = VeId::parse(&a.new_id)?;
    k.rename(&id, &new_id)?;
    say(quiet, format!("Renamed VE {id} to {new_id}"))?;
    Ok(0)
}

pub fn backup(k: &Kennel, a: crate::storage_args::BackupArgs, quiet: bool) -> Result<i32> {
    use kennel_ve::lifecycle::{BackupRequest, BackupTarget};
    if let Some(crate::storage_args::BackupCommand::Verify { file }) = a.verify {
        let bar = crate::progress::Bar::new("verify", quiet);
        let checked = k.backup_verify(&file, &bar);
        bar.finish();
        for (path, r) in checked? {
            say(
                quiet,
                format!(
                    "{}: a good {} backup of VE {} ({} paths, {} of data{}), made {}",
                    path.display(),
                    match r.manifest.kind {
                        kennel_storage::backup::BackupKind::Full => "full",
                        kennel_storage::backup::BackupKind::Incremental => "incremental",
                    },
                    ve_id_of(&r.manifest.ve_conf),
                    r.entries,
                    human(r.layer_bytes),
                    if r.unchanged > 0 {
                        format!(", {} files unchanged since its base", r.unchanged)
                    } else {
                        String::new()
                    },
                    r.manifest.created
                ),
            )?;
        }
        return Ok(0);
    }
    let (Some(id), Some(file)) = (a.id, a.file) else {
        return Err(VeError::BadInput(
            "give a VE and a file: `kennel backup ID FILE` (or `-` for standard output), or `kennel backup verify FILE`".into(),
        )
        .into());
    };
    let id = VeId::parse(&id)?;
    let target = if file == "-" {
        BackupTarget::Stdout
    } else {
        BackupTarget::File(file.clone().into())
    };
    let bar = crate::progress::Bar::new(&format!("backup of VE {id}"), quiet);
    let started = std::time::Instant::now();
    let report = k.backup(
        &BackupRequest {
            id: id.clone(),
            target: target.clone(),
            since: a.since.clone(),
            with_template: a.with_template,
        },
        &bar,
    );
    bar.finish();
    let report = report?;
    // With `-` the backup is on standard output: the report goes to
    // standard error.
    let line = format!(
        "Backed up VE {id} to {} ({}, {} paths, {} of data, {} written, in {:.1}s){}",
        file,
        if a.since.is_some() {
            "incremental"
        } else {
            "full"
        },
        report.entries,
        human(report.layer_bytes),
        human(report.compressed_bytes),
        started.elapsed().as_secs_f64(),
        skipped_words(&report.skipped)
    );
    if matches!(target, BackupTarget::Stdout) {
        if !quiet {
            eprintln!("{line}");
        }
    } else {
        say(quiet, line)?;
    }
    Ok(0)
}

fn skipped_words(s: &kennel_storage::backup::Skipped) -> String {
    let n = s.devices + s.foreign_owner + s.too_long + s.mounts + s.changed;
    if n == 0 {
        String::new()
    } else {
        format!("; {n} entries left out (device nodes, foreign owners, over-long paths)")
    }
}

/// The VE id a backup's configuration names, for messages.
fn ve_id_of(conf: &str) -> String {
    conf.lines()
        .find_map(|l| l.strip_prefix("id = "))
        .map(|v| v.trim_matches('"').chars().take(32).collect())
        .unwrap_or_else(|| "?".into())
}

pub fn restore(k: &Kennel, a: crate::storage_args::RestoreArgs, quiet: bool) -> Result<i32> {
    use kennel_ve::lifecycle::{RestoreRequest, RestoreSource};
    let id = VeId::parse(&a.id)?;
    let source = if a.file == "-" {
        RestoreSource::Stdin
    } else {
        RestoreSource::File(a.file.clone().into())
    };
    let bar = crate::progress::Bar::new(&format!("restore of VE {id}"), quiet);
    let r = k.restore(
        &RestoreRequest {
            source,
            id,
            hostname: a.hostname,
            disk: a
                .disk
                .as_deref()
                .map(|s| crate::resource_args::size_with_unit(s, "--disk"))
                .transpose()?,
            trust_config: a.trust_config,
        },
        &bar,
    );
    bar.finish();
    let r = r?;
    if let (Some(line), false) = (&r.refused, quiet) {
        eprintln!(
            "kennel: warning: {}",
            kennel_storage::shown::terminal_safe(line)
        );
    }
    if r.made_template {
        say(
            quiet,
            format!("Made template {} from the backup", r.config.template),
        )?;
    }
    if r.template_differs && !quiet {
        eprintln!(
            "kennel: warning: this host's template '{}' is not the one the VE was backed up on: its own files are restored over this one",
            r.config.template
        );
    }
    say(
        quiet,
        format!(
            "Restored VE {} from {} backup{} (hostname {}, disk {}, host ids {}-{}{})",
            r.config.id,
            r.backups,
            if r.backups == 1 { "" } else { "s" },
            r.config.hostname,
            r.config.storage.disk.map_or("-".into(), |d| d.to_string()),
            r.config.idmap.uid_base,
            r.config.idmap.uid_base as u64 + r.config.idmap.size as u64 - 1,
            if r.addresses_dropped {
                "; its addresses were left out (taken only with --trust-config, and only when no VE here has them): add them with `kennel set --ip-add`"
            } else {
                ""
            }
        ),
    )?;
    Ok(0)
}
