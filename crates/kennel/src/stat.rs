//! `kennel stat`: a VE's counters as a table (one row per resource, like
//! OpenVZ's `vzubc`) or JSON; without an id, the VEs that hit a limit.

use anyhow::Result;

use kennel_ve::lifecycle::stat::{hit_a_limit, Accounting, Counter};
use kennel_ve::units::human;
use kennel_ve::{Kennel, VeId};
use serde_json::{json, Value};

use crate::cli::StatArgs;
use crate::output::{self, outln};

pub fn run(k: &Kennel, a: StatArgs) -> Result<i32> {
    match &a.id {
        Some(id) => {
            let id = VeId::parse(id)?;
            let acc = k.stat(&id)?;
            if a.json {
                outln!("{}", serde_json::to_string_pretty(&stat_json(&id, &acc))?)?;
            } else {
                outln!("{}", stat_table(&acc))?;
            }
        }
        None => {
            let hit: Vec<(VeId, Accounting)> = k
                .stat_all()?
                .into_iter()
                .filter(|(_, a)| hit_a_limit(a))
                .collect();
            if a.json {
                let v: Vec<Value> = hit.iter().map(|(id, acc)| stat_json(id, acc)).collect();
                outln!("{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                let rows = hit
                    .iter()
                    .map(|(id, acc)| {
                        let n = |v: Option<u64>| v.unwrap_or(0).to_string();
                        vec![
                            id.to_string(),
                            n(acc.oom_kills),
                            n(acc.processes.fails),
                            n(acc.swap.fails),
                            n(acc.memory.fails),
                        ]
                    })
                    .collect();
                outln!(
                    "{}",
                    output::table(
                        &[
                            "ID",
                            "OOM_KILLS",
                            "NUMPROC_FAILS",
                            "SWAP_FAILS",
                            "MEMORY_AT_LIMIT"
                        ],
                        rows,
                        &[1, 2, 3, 4],
                        true,
                    )
                )?;
            }
        }
    }
    Ok(0)
}

fn counter_json(c: &Counter) -> Value {
    json!({"held": c.held, "peak": c.peak, "limit": c.limit, "fails": c.fails})
}

fn stat_json(id: &VeId, a: &Accounting) -> Value {
    json!({
        "id": id.as_str(),
        "memory": counter_json(&a.memory),
        "swap": counter_json(&a.swap),
        "kernel_memory": counter_json(&a.kernel_memory),
        "processes": counter_json(&a.processes),
        "cpu": {
            "usage_ns": a.cpu.usage_ns,
            "throttled_periods": a.cpu.throttled,
            "throttled_ns": a.cpu.throttled_ns,
        },
        "io": a.io.map(|io| json!({
            "read_bytes": io.read_bytes,
            "write_bytes": io.write_bytes,
            "reads": io.reads,
            "writes": io.writes,
        })),
        "open_files": counter_json(&a.open_files),
        "oom_kills": a.oom_kills,
    })
}

/// One row per counted resource: held, peak, limit, fails.
fn stat_table(a: &Accounting) -> String {
    let dash = || "-".to_string();
    let bytes = |v: Option<u64>| v.map_or_else(dash, human);
    let count = |v: Option<u64>| v.map_or_else(dash, |n| n.to_string());
    let limit = |v: Option<u64>, f: &dyn Fn(Option<u64>) -> String| {
        if v.is_none() {
            "unlimited".to_string()
        } else {
            f(v)
        }
    };
    let row = |name: &str, c: &Counter, f: &dyn Fn(Option<u64>) -> String| {
        vec![
            name.to_string(),
            f(c.held),
            f(c.peak),
            limit(c.limit, f),
            count(c.fails),
        ]
    };
    let mut rows = vec![
        row("memory", &a.memory, &bytes),
        row("swap", &a.swap, &bytes),
        row("kernel memory", &a.kernel_memory, &bytes),
        row("processes", &a.processes, &count),
    ];
    if a.open_files.held.is_some() {
        rows.push(vec![
            "open files".into(),
            count(a.open_files.held),
            dash(),
            a.open_files
                .limit
                .map_or_else(|| "unlimited".into(), |n| format!("{n}/process")),
            dash(),
        ]);
    }
    let secs = |ns: Option<u64>| ns.map_or_else(dash, |n| format!("{:.1}s", n as f64 / 1e9));
    rows.push(vec![
        "cpu time".into(),
        secs(a.cpu.usage_ns),
        dash(),
        dash(),
        count(a.cpu.throttled),
    ]);
    if let Some(io) = a.io {
        rows.push(vec![
            "disk read".into(),
            human(io.read_bytes),
            dash(),
            dash(),
            dash(),
        ]);
        rows.push(vec![
            "disk written".into(),
            human(io.write_bytes),
            dash(),
            dash(),
            dash(),
        ]);
    }
    rows.push(vec![
        "oom kills".into(),
        count(a.oom_kills),
        dash(),
        dash(),
        dash(),
    ]);
    output::table(
        &["RESOURCE", "HELD", "PEAK", "LIMIT", "FAILS"],
        rows,
        &[1, 2, 3, 4],
        true,
    )
}
