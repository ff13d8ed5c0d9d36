//! Tables and JSON for `list`, `status` and `template list`, and the
//! macros every command prints its standard output with.

/// `println!` that returns an error instead of panicking when standard
/// output is closed (`kennel list | head -1`); `main` then exits quietly.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `print!`, the same way.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}

pub(crate) use {out, outln};

use comfy_table::{presets, CellAlignment, ContentArrangement, Table};
use kennel_storage::shown::terminal_safe;
use kennel_ve::lifecycle::stat::Accounting;
use kennel_ve::lifecycle::VeStatus;
use kennel_ve::units::human;
use serde_json::{json, Value};

/// Every column `kennel list -o` knows, with its header.
pub const FIELDS: &[(&str, &str)] = &[
    ("id", "ID"),
    ("state", "STATE"),
    ("hostname", "HOSTNAME"),
    ("ip", "IP_ADDR"),
    ("netif", "NETIF"),
    ("rate", "RATE"),
    ("template", "TEMPLATE"),
    ("procs", "PROCS"),
    ("memory", "MEMORY"),
    ("memlimit", "MEMLIMIT"),
    ("cpus", "CPUS"),
    ("numproc", "NUMPROC"),
    ("swap", "SWAP"),
    ("cpu", "CPU_TIME"),
    ("fails", "FAILS"),
    ("uptime", "UPTIME"),
    ("init", "INIT"),
    ("uid_base", "UID_BASE"),
    ("layer", "LAYER"),
    ("storage", "STORAGE"),
    ("disk", "DISK"),
    ("diskinodes", "DISK_INODES"),
    ("uuid", "UUID"),
    ("created", "CREATED"),
    ("onboot", "ONBOOT"),
    ("bootorder", "BOOTORDER"),
];

pub const DEFAULT_FIELDS: &str = "id,state,hostname,procs,memory";

/// Checks a `-o` list; unknown names are an error naming the valid ones.
pub fn parse_fields(spec: &str) -> Result<Vec<&'static str>, String> {
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|f| {
            FIELDS
                .iter()
                .find(|(n, _)| *n == f)
                .map(|(n, _)| *n)
                .ok_or_else(|| {
                    format!(
                        "unknown field '{f}' for -o: use {}",
                        FIELDS
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
        })
        .collect()
}

pub fn uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d{h}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// Columns read from a VE's counters (`kennel stat`), only when asked.
pub const COUNTER_FIELDS: &[&str] = &["swap", "cpu", "fails"];

/// Costly limits hit since the VE's start: OOM kills, refused forks and
/// swap-outs (what `kennel stat` without an id lists VEs for).
fn costly_fails(a: &Accounting) -> u64 {
    [a.oom_kills, a.processes.fails, a.swap.fails]
        .iter()
        .map(|n| n.unwrap_or(0))
        .sum()
}

/// One field as JSON (numbers stay numbers; missing is null). `acc` is the
/// VE's counters when a [`COUNTER_FIELDS`] column was asked for.
pub fn field_json(st: &VeStatus, acc: Option<&Accounting>, f: &str) -> Value {
    let c = &st.config;
    match f {
        "swap" => json!(acc.and_then(|a| a.swap.held)),
        "cpu" => json!(acc.and_then(|a| a.cpu.usage_ns)),
        "fails" => json!(acc.map(costly_fails)),
        "id" => json!(c.id.as_str()),
        "state" => json!(st.state.as_str()),
        "hostname" => json!(c.hostname),
        "ip" => json!(c
            .network
            .all_ips()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()),
        "netif" => json!(c
            .network
            .netifs
            .iter()
            .map(|n| format!("{}@{}", n.name, n.bridge))
            .collect::<Vec<_>>()),
        "rate" => serde_json::to_value(c.network.rate).unwrap_or(Value::Null),
        "template" => json!(c.template),
        "procs" => json!(st.usage.tasks),
        "memory" => json!(st.usage.memory),
        "memlimit" => limit_bytes(c.resources.memory),
        "cpus" => json!(c.resources.cpus),
        "numproc" => json!(c.resources.numproc),
        "uptime" => json!(st.uptime_secs),
        "init" => json!(c.init.kind.as_str()),
        "uid_base" => json!(c.idmap.uid_base),
        "layer" => json!(c.storage.layer.as_str()),
        "storage" => json!(c.storage.backend.as_str()),
        "disk" => json!(c.storage.disk.map(|d| d.bytes())),
        "diskinodes" => json!(c.storage.disk_inodes),
        "uuid" => json!(c.uuid),
        "created" => json!(c.created),
        "onboot" => json!(c.boot.onboot),
        "bootorder" => json!(c.boot.order),
        _ => Value::Null,
    }
}

/// One field as table text ("-" when not applicable).
pub fn field_text(st: &VeStatus, acc: Option<&Accounting>, f: &str) -> String {
    let c = &st.config;
    let dash = || "-".to_string();
    match f {
        "swap" => acc.and_then(|a| a.swap.held).map_or_else(dash, human),
        "cpu" => acc
            .and_then(|a| a.cpu.usage_ns)
            .map_or_else(dash, |n| format!("{:.1}s", n as f64 / 1e9)),
        "fails" => acc.map_or_else(dash, |a| costly_fails(a).to_string()),
        "procs" => st.usage.tasks.map_or_else(dash, |n| n.to_string()),
        "memory" => st.usage.memory.map_or_else(dash, human),
        "memlimit" => c.resources.memory.map_or_else(dash, |m| m.to_string()),
        "disk" => c.storage.disk.map_or_else(dash, |d| d.to_string()),
        "diskinodes" => c.storage.disk_inodes.map_or_else(dash, |n| n.to_string()),
        "storage" => c.storage.backend.as_str().to_string(),
        "onboot" => if c.boot.onboot { "yes" } else { "no" }.to_string(),
        "cpus" => c.resources.cpus.map_or_else(dash, |v| v.to_string()),
        "numproc" => c.resources.numproc.map_or_else(dash, |v| v.to_string()),
        "uptime" => st.uptime_secs.map_or_else(dash, uptime),
        "ip" => crate::net_args::ips_text(&c.network),
        "netif" => {
            let v: Vec<String> = c
                .network
                .netifs
                .iter()
                .map(|n| format!("{}@{}", n.name, n.bridge))
                .collect();
            if v.is_empty() {
                dash()
            } else {
                v.join(",")
            }
        }
        "rate" => {
            let r = c.network.rate;
            match (r.egress, r.ingress) {
                (None, None) => dash(),
                (e, i) if e == i => e.map_or_else(dash, |r| r.to_string()),
                (e, i) => format!(
                    "out:{},in:{}",
                    e.map_or_else(dash, |r| r.to_string()),
                    i.map_or_else(dash, |r| r.to_string())
                ),
            }
        }
        other => match field_json(st, acc, other) {
            Value::String(s) => s,
            Value::Null => dash(),
            v => v.to_string(),
        },
    }
}

/// A borderless, vzlist-like table. Cells are printed terminal-safe
/// (`kennel_storage::shown`): a template's OS name comes from its files.
pub fn table(headers: &[&str], rows: Vec<Vec<String>>, numeric: &[usize], header: bool) -> String {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled);
    if header {
        t.set_header(headers.to_vec());
    }
    for r in rows {
        t.add_row(r.iter().map(|c| terminal_safe(c).into_owned()));
    }
    for &i in numeric {
        if let Some(col) = t.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    t.lines()
        .map(|l| l.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A size limit in JSON: bytes, `"unlimited"`, or null when none is set.
pub fn limit_bytes(l: Option<kennel_ve::limit::Limit<kennel_ve::units::Size>>) -> Value {
    match l {
        None => Value::Null,
        Some(kennel_ve::limit::Limit::Unlimited) => json!(kennel_ve::limit::UNLIMITED),
        Some(kennel_ve::limit::Limit::Max(s)) => json!(s.bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        assert_eq!(parse_fields("id,state").ok(), Some(vec!["id", "state"]));
        let e = parse_fields("id,bogus").err().unwrap_or_default();
        assert!(
            e.contains("unknown field 'bogus'") && e.contains("hostname"),
            "{e}"
        );
    }

    #[test]
    fn table_cells_cannot_drive_the_terminal() {
        let t = table(
            &["NAME", "OS"],
            vec![vec!["t1".into(), "Evil\x1b]0;pwned\x07\nOS\u{9b}2J".into()]],
            &[],
            true,
        );
        assert!(!t.chars().any(|c| c.is_control() && c != '\n'), "{t:?}");
        assert_eq!(t.lines().count(), 2, "one line per row: {t:?}");
        assert!(t.contains("Evil\\x1b]0;pwned\\x07\\nOS\\u{009b}2J"), "{t}");
    }

    #[test]
    fn uptimes() {
        assert_eq!(uptime(5), "5s");
        assert_eq!(uptime(65), "1m05s");
        assert_eq!(uptime(3 * 3600 + 60), "3h01m");
        assert_eq!(uptime(2 * 86400 + 3600), "2d1h");
    }
}
