//! Processes and cgroups: seeing and signalling host and neighbour
//! processes, reboot and poweroff (which end only the VE), and the cgroup
//! knobs with host-wide effect (v1 cpuset scheduler domains,
//! notify_on_release, the VE's own limits), leaving the VE's subtree, and
//! freezing the cgroup of the VE's init under `kennel exec`.

use std::time::Instant;

use super::common;
use super::lab::{case, Case, Lab, Layout, Verdict, ATT};

fn pid_max() -> String {
    std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "65536".into())
}

/// A shell line in the attacker that must fail (exit non-zero).
fn must_fail(l: &Lab, script: &str) -> Result<(), String> {
    let (ok, out) = l.sh(ATT, script, 10);
    if ok {
        Err(format!("`{script}` succeeded in the VE: {out}"))
    } else {
        Ok(())
    }
}

fn v1_dirs(l: &Lab, controller: &str) -> Vec<String> {
    let (_, out) = l.sh(ATT, "ls -d /sys/fs/cgroup/*/", 10);
    let _ = l;
    out.split_whitespace()
        .filter(|d| controller.is_empty() || d.contains(controller))
        .map(|d| d.trim_end_matches('/').to_string())
        .collect()
}

fn reboot_case(l: &mut Lab, how: &str) -> Result<(), String> {
    let before = l.root.init_pid(ATT);
    let v = l.attack(&["reboot", how]);
    if let Verdict::Escaped(s) = v {
        return Err(s);
    }
    let t = Instant::now();
    let done = super::lab::within(20, || {
        let st = l.root.run(&["status", ATT, "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap_or_default();
        match how {
            "restart" => {
                v["state"] == "running"
                    && v["init_pid"].as_i64().is_some_and(|p| p != before as i64)
            }
            _ => v["state"]
                .as_str()
                .is_some_and(|s| s.starts_with("stopped")),
        }
    });
    if !done {
        return Err(format!("the VE did not {how} within {:?}", t.elapsed()));
    }
    Ok(())
}

pub const CASES: &[Case] = &[
    case("see_host_processes", |l: &mut Lab| {
        let comm = l.host_canary_comm.clone();
        l.blocked(&["procs-see", &comm]).map(|_| ())
    }),
    case("signal_host_pids_by_number", |l| {
        let max = pid_max();
        l.blocked(&["kill-scan", &max]).map(|_| ())
    }),
    case("kill_minus_one", |l| l.blocked(&["kill-all"]).map(|_| ())),
    case("ptrace_everything_visible", |l| {
        l.blocked(&["ptrace-all"]).map(|_| ())
    }),
    case("reboot_ends_only_the_ve", |l| reboot_case(l, "restart")).restarts(),
    case("poweroff_stops_only_the_ve", |l| reboot_case(l, "poweroff")).restarts(),
    case("cgroup_leave_own_subtree", |l| {
        let (_, out) = l.sh(
            ATT,
            "for d in /sys/fs/cgroup /sys/fs/cgroup/*; do echo $$ > $d/../cgroup.procs; echo $$ > $d/../tasks; \
             mkdir -p /tmp/cg; mount -t cgroup2 none /tmp/cg && echo $$ > /tmp/cg/../cgroup.procs; done 2>/dev/null; \
             cat /proc/self/cgroup",
            10,
        );
        if out.lines().any(|l| l.contains("/..")) {
            Err(format!("a VE process left the VE's cgroups: {out}"))
        } else {
            Ok(())
        }
    }),
    case("cgroup_raise_own_limits", |l| {
        let files: Vec<String> = if common::cgroup2_mount().is_some() {
            ["memory.max", "memory.swap.max", "pids.max", "cpu.max"]
                .iter()
                .map(|f| format!("/sys/fs/cgroup/{f}"))
                .collect()
        } else {
            v1_dirs(l, "")
                .iter()
                .flat_map(|d| {
                    [
                        "memory.limit_in_bytes",
                        "memory.memsw.limit_in_bytes",
                        "pids.max",
                        "cpu.cfs_quota_us",
                    ]
                    .iter()
                    .map(move |f| format!("{d}/{f}"))
                })
                .collect()
        };
        let mut a = vec!["unmask", "w"];
        a.extend(files.iter().map(String::as_str));
        l.blocked(&a).map(|_| ())
    }),
    case("cpuset_sched_relax_domain_level", |l| {
        must_fail(l, "echo 5 > /sys/fs/cgroup/cpuset/cpuset.sched_relax_domain_level")?;
        must_fail(l, "mkdir -p /sys/fs/cgroup/cpuset/x && echo 5 > /sys/fs/cgroup/cpuset/x/cpuset.sched_relax_domain_level")
    })
    .only(Layout::VeV1),
    case("cpuset_sched_load_balance", |l| {
        must_fail(l, "echo 0 > /sys/fs/cgroup/cpuset/cpuset.sched_load_balance")
    })
    .only(Layout::VeV1),
    case("cpuset_sub_cgroups", |l| {
        must_fail(l, "mkdir /sys/fs/cgroup/cpuset/kattack")
    })
    .only(Layout::VeV1),
    // Where the host has a cgroup2, the VE gets only that: no v1
    // hierarchy is mounted in it. It may mount one itself (the kernel lets
    // a cgroup namespace mount existing hierarchies, at its own cgroup),
    // but its cgroups there are the host root's: it can neither make
    // children (memory cgroup ids, a subtree without bounds) nor change
    // a knob (notify_on_release, cpuset scheduling domains).
    // The VE's cpuset inherits `cgroup.clone_children` from Kennel's
    // parent (the kernel fills it at mkdir): harmless while the VE can
    // neither make a child nor write a knob there (hostile review of that
    // change), which the snapshot of its knobs below checks too.
    case("v1_hierarchies_out_of_reach", |l| {
        let (_, mounted) = l.sh(ATT, "grep -c ' - cgroup ' /proc/self/mountinfo; true", 10);
        if mounted.trim() != "0" {
            return Err(format!("v1 hierarchies mounted in the VE: {mounted}"));
        }
        let v2 = common::cgroup2_mount();
        let dirs: Vec<_> = common::cgroup_mounts()
            .into_iter()
            .filter(|m| Some(m) != v2.as_ref())
            .map(|m| m.join(l.root.cgroup_parent()).join(ATT))
            .collect();
        const KNOBS: &[&str] = &[
            "cgroup.clone_children",
            "cpuset.cpus",
            "cpuset.mems",
            "cpu.cfs_period_us",
            "cpu.cfs_quota_us",
        ];
        let knobs = || -> Vec<(std::path::PathBuf, String)> {
            dirs.iter()
                .flat_map(|d| KNOBS.iter().map(move |f| d.join(f)))
                .filter_map(|p| std::fs::read_to_string(&p).ok().map(|v| (p, v)))
                .collect()
        };
        let before = knobs();
        if !before.iter().any(|(p, _)| p.ends_with("cgroup.clone_children")) {
            return Err(format!("none of the VE's v1 knobs could be read in {dirs:?}"));
        }
        l.sh(
            ATT,
            "mkdir -p /tmp/v1; for c in cpuset cpu memory pids freezer none,name=systemd; do \
               mount -t cgroup -o $c none /tmp/v1 || continue; \
               mkdir /tmp/v1/kattack; echo 1 > /tmp/v1/notify_on_release; \
               echo 0 > /tmp/v1/cpuset.sched_load_balance; echo 5 > /tmp/v1/cpuset.sched_relax_domain_level; \
               echo $((1 - $(cat /tmp/v1/cgroup.clone_children))) > /tmp/v1/cgroup.clone_children; \
               echo 0 > /tmp/v1/cpuset.cpus; echo 0 > /tmp/v1/cpuset.mems; \
               echo 50000 > /tmp/v1/cpu.cfs_period_us; echo -1 > /tmp/v1/cpu.cfs_quota_us; \
               umount /tmp/v1; done 2>/dev/null; true",
            20,
        );
        let mut changed: Vec<String> = before
            .into_iter()
            .zip(knobs())
            .filter(|(a, b)| a != b)
            .map(|((p, a), (_, b))| format!("{}: {} -> {}", p.display(), a.trim(), b.trim()))
            .collect();
        for d in dirs {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    changed.push(format!("made {}", e.path().display()));
                }
            }
            for (file, want) in [
                ("notify_on_release", "0"),
                ("cpuset.sched_load_balance", "1"),
                ("cpuset.sched_relax_domain_level", "-1"),
            ] {
                if let Ok(v) = std::fs::read_to_string(d.join(file)) {
                    if v.trim() != want {
                        changed.push(format!("{}/{file} = {}", d.display(), v.trim()));
                    }
                }
            }
        }
        if changed.is_empty() {
            Ok(())
        } else {
            Err(format!("the VE changed its v1 cgroups: {changed:?}"))
        }
    })
    .only(Layout::Hybrid),
    // Found by a hostile-tenant review: v1 has no limit on a subtree's
    // cgroups, and memory cgroups take the host's 65,535 ids.
    case("v1_controller_sub_cgroups", |l| {
        for c in ["memory", "pids", "cpu,cpuacct", "blkio"] {
            must_fail(l, &format!("mkdir /sys/fs/cgroup/{c}/kattack"))?;
        }
        Ok(())
    })
    .only(Layout::VeV1),
    case("notify_on_release_of_top_cgroups", |l| {
        for d in v1_dirs(l, "") {
            must_fail(l, &format!("echo 1 > {d}/notify_on_release"))?;
        }
        Ok(())
    })
    .only(Layout::VeV1),
    case("cgroup_v2_depth_and_count_bounded", |l| {
        must_fail(l, "echo max > /sys/fs/cgroup/cgroup.max.depth")?;
        must_fail(l, "echo max > /sys/fs/cgroup/cgroup.max.descendants")?;
        let (_, out) = l.sh(
            ATT,
            "d=/sys/fs/cgroup/deep; i=0; while [ $i -lt 40 ] && mkdir $d 2>/dev/null; do d=$d/d; i=$((i+1)); done; echo $i; \
             rmdir_all() { for x in $(find /sys/fs/cgroup/deep -depth -type d); do rmdir $x; done; }; rmdir_all 2>/dev/null; true",
            20,
        );
        match out.trim().lines().next().and_then(|n| n.parse::<u32>().ok()) {
            Some(n) if n <= 32 => Ok(()),
            other => Err(format!("the VE nested {other:?} cgroups (limit 32)")),
        }
    })
    .only(Layout::VeV2),
    // Found by a hostile-tenant review (density): on cgroup v2 every
    // cgroup a VE makes may take one of the host's 65,535 memory cgroup
    // ids. One VE is bounded by its own cap, all of them by Kennel's
    // parent's, below the kernel's ids.
    case("cgroup_v2_count_bounded_per_ve_and_for_all", |l| {
        let (_, out) = l.sh(
            ATT,
            "i=0; while [ $i -lt 1100 ] && mkdir /sys/fs/cgroup/many$i 2>/dev/null; do i=$((i+1)); done; echo $i; \
             j=0; while [ $j -lt $i ]; do rmdir /sys/fs/cgroup/many$j; j=$((j+1)); done",
            120,
        );
        match out.trim().lines().next().and_then(|n| n.parse::<u32>().ok()) {
            Some(n) if n <= 1024 => {}
            other => return Err(format!("the VE made {other:?} cgroups (limit 1024)")),
        }
        // Where memory is cgroup v2 (not on a hybrid host), the parent of
        // all VEs caps their cgroups together.
        let parent = l
            .root
            .cgroup_dirs("")
            .into_iter()
            .find(|d| d.join("memory.max").exists());
        if let Some(d) = parent {
            let cap = std::fs::read_to_string(d.join("cgroup.max.descendants")).unwrap_or_default();
            if cap.trim() != (65_535 - 4096).to_string() {
                return Err(format!("all VEs' cgroups are capped at {cap:?}, not 61439"));
            }
        }
        Ok(())
    })
    .only(Layout::VeV2),
    case("freeze_init_under_kennel_exec", |l| {
        // The VE moves its init into a sub-cgroup it made and freezes it
        // (cgroup v2's freezer; a hybrid host's VE sees its cgroup2 too).
        let dir = "/sys/fs/cgroup";
        let (frozen, out) = l.sh(
            ATT,
            &format!("mkdir -p {dir}/frz && echo 1 > {dir}/frz/cgroup.procs && echo 1 > {dir}/frz/cgroup.freeze && echo FROZEN"),
            10,
        );
        if !frozen {
            return Ok(()); // cannot freeze: nothing to show
        }
        let _ = out;
        let t = Instant::now();
        // "About 10 s" is wall time, in the VM too: do not wait for 8x.
        let mut c = l.root.cmd();
        c.args(["exec", ATT, "--", "true"]);
        let (st, _, err) = common::output_within(&mut c, std::time::Duration::from_secs(20));
        let code = st.and_then(|s| s.code());
        let took = t.elapsed();
        if code.is_none() || took > std::time::Duration::from_secs(20) {
            return Err(format!("kennel exec hung on a frozen VE ({took:?})"));
        }
        if code == Some(0) {
            return Err("kennel exec succeeded in a VE whose init is frozen?".into());
        }
        let lines: Vec<&str> = err.lines().collect();
        if lines.len() != 1 || !lines[0].starts_with("kennel: ") {
            return Err(format!("not a one-line error: {err:?}"));
        }
        Ok(())
    })
    .restarts(),
];
