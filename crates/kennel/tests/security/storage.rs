//! The VE's own disk (issue 9's hostile reviews): the quota holds against
//! root in the VE, no block device of its disk is reachable, a snapshot's
//! freeze never outlasts it, a stopped disk the host still holds is never
//! worked on offline, and a backup of the tenant's files restores the
//! files, not rights. Forged backup streams are the `kennel-storage`
//! tests' (`backup/tests/hostile.rs`): they need a hand-made stream.

use super::lab::{case, Case, Lab, ATT};

fn free_bytes(l: &Lab) -> u64 {
    rustix::fs::statvfs(&l.root.dir)
        .map(|s| s.f_bavail * s.f_frsize)
        .unwrap_or(0)
}

pub const CASES: &[Case] = &[
    case("disk_quota_holds_against_root", |l: &mut Lab| {
        let before = free_bytes(l);
        let (_, out) = l.sh(
            ATT,
            "dd if=/dev/zero of=/root/fill bs=1M count=200 2>&1; rm -f /root/fill; \
             mkdir /root/n; i=0; while [ $i -lt 5000 ] && touch /root/n/$i 2>/dev/null; \
             do i=$((i+1)); done; echo files=$i; rm -rf /root/n",
            60,
        );
        if !out.contains("No space left") {
            return Err(format!("the VE wrote past its 64M disk: {out}"));
        }
        let files: u64 = out
            .lines()
            .find_map(|l| l.strip_prefix("files="))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(u64::MAX);
        if files >= 4000 {
            return Err(format!(
                "the VE made {files} files past --disk-inodes 4000: {out}"
            ));
        }
        let used = before.saturating_sub(free_bytes(l));
        if used > 100 << 20 {
            return Err(format!("the host's filesystem lost {used} bytes to the VE"));
        }
        Ok(())
    }),
    case("no_block_device_of_its_disk", |l| {
        let (_, out) = l.sh(
            ATT,
            "ls /dev | grep -E '^(loop|vd|sd|xvd|nvme)' ; \
             mknod /dev/kl b 7 0 2>&1 && echo MADE; rm -f /dev/kl",
            10,
        );
        if out.lines().any(|w| w.starts_with("loop") || w == "MADE") {
            return Err(format!("the VE reaches a block device: {out}"));
        }
        Ok(())
    }),
    case("a_snapshot_freeze_never_outlasts_it", |l| {
        l.sh(
            ATT,
            "(while true; do dd if=/dev/zero of=/root/w bs=64k count=16 2>/dev/null; done) \
             >/dev/null 2>&1 & echo $! > /run/writer",
            10,
        );
        let (code, _, err) = l.kennel(&["snapshot", "create", ATT, "sec"], 60);
        let (answers, out) = l.sh(
            ATT,
            "kill $(cat /run/writer); rm -f /root/w; echo alive",
            10,
        );
        let _ = l.kennel(&["snapshot", "delete", ATT, "sec"], 30);
        if code != Some(0) {
            return Err(format!("snapshot of a busy VE failed: {err}"));
        }
        if !answers || !out.contains("alive") {
            return Err(format!("the VE stayed frozen after its snapshot: {out}"));
        }
        Ok(())
    }),
    // Found by a hostile-tenant review (detached disks): something on the
    // host that holds a stopped VE's files (here a process whose directory
    // is in /proc/PID/root) keeps its ext4 alive; an offline fsck, resize
    // or copy of the image then corrupted the tenant's disk. They must be
    // refused as busy while it is held.
    case("a_held_stopped_disk_is_never_worked_on_offline", |l| {
        l.sh(ATT, "echo mine > /root/held", 10);
        let init = l.root.init_pid(ATT);
        let mut holder = std::process::Command::new("sleep")
            .arg("600")
            .current_dir(format!("/proc/{init}/root/root"))
            .spawn()
            .map_err(|e| format!("spawn the holder: {e}"))?;
        let outcome = (|| {
            let (code, _, err) = l.kennel(&["stop", ATT], 60);
            if code != Some(0) {
                return Err(format!("stop failed: {err}"));
            }
            for args in [
                &["set", ATT, "--disk", "48M"][..],
                &["snapshot", "create", ATT, "held"],
            ] {
                let (code, _, err) = l.kennel(args, 60);
                if code != Some(11) || !err.contains("still in use by the kernel") {
                    return Err(format!("{args:?} on a held disk: {code:?} {err}"));
                }
            }
            Ok(())
        })();
        let _ = holder.kill();
        let _ = holder.wait();
        outcome
    })
    .restarts(),
    case("a_restore_takes_files_not_rights", |l| {
        use std::os::unix::fs::PermissionsExt;
        let (wrote, out) = l.sh(ATT, "echo mine > /root/f && rm -f /bin/true", 10);
        if !wrote {
            return Err(format!("the VE could not write its files: {out}"));
        }
        let file = l.root.dir.join("sec-backup.kbk");
        let f = file.to_string_lossy().into_owned();
        let (code, _, err) = l.kennel(&["backup", ATT, &f], 120);
        if code != Some(0) {
            return Err(format!("backup failed: {err}"));
        }
        let mode = std::fs::metadata(&file)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        let (code, _, err) = l.kennel(&["restore", &f, "rst"], 120);
        let _ = std::fs::remove_file(&file);
        if code != Some(0) {
            return Err(format!("restore failed: {err}"));
        }
        let cfg = l.root.config("rst");
        let started = l.kennel(&["start", "rst"], 60).0 == Some(0);
        let (_, inside) = l.sh("rst", "cat /root/f; test -e /bin/true && echo BACK", 10);
        let _ = l.kennel(&["destroy", "--force", "rst"], 60);
        if mode != 0o600 {
            return Err(format!("the backup is mode {mode:o}, not 0600"));
        }
        if cfg["features"].as_array().is_some_and(|a| !a.is_empty()) {
            return Err(format!("the restore took the VE's features: {cfg}"));
        }
        if !started || !inside.contains("mine") || inside.contains("BACK") {
            return Err(format!("the restored files are not the VE's: {inside}"));
        }
        Ok(())
    })
    .restarts(),
];

/// The attacker VE: a small disk, and a feature a restore must not take.
pub fn options() -> super::lab::LabOptions {
    super::lab::LabOptions {
        attacker: [
            "--disk",
            "64M",
            "--disk-inodes",
            "4000",
            "--features",
            "tun",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        ..Default::default()
    }
}
