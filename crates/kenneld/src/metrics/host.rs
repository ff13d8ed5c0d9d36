//! The host's series (memory available, load) and kenneld's own (start
//! time, CPU time, resident memory), from procfs. What cannot be read is
//! left out of the answer, never guessed.

use super::{HostFacts, ProcessFacts};

pub fn host_facts() -> HostFacts {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    HostFacts {
        memory_available: meminfo_bytes(&meminfo, "MemAvailable"),
        memory_total: meminfo_bytes(&meminfo, "MemTotal"),
        load: std::fs::read_to_string("/proc/loadavg")
            .ok()
            .as_deref()
            .and_then(parse_loadavg),
    }
}

pub fn process_facts() -> ProcessFacts {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .as_deref()
        .and_then(parse_btime);
    parse_self_stat(
        &stat,
        kennel_runtime::procfs::ticks_per_sec(),
        rustix::param::page_size() as u64,
        boot,
    )
}

/// `KEY:  N kB` of `/proc/meminfo`, in bytes.
fn meminfo_bytes(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        let kb: u64 = rest.split_whitespace().next()?.parse().ok()?;
        kb.checked_mul(1024)
    })
}

/// The 1, 5 and 15 minute load averages.
fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut f = text.split_whitespace().map(str::parse::<f64>);
    Some([f.next()?.ok()?, f.next()?.ok()?, f.next()?.ok()?])
}

/// `btime` of `/proc/stat`: the boot time, in seconds since the epoch.
fn parse_btime(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
}

/// `/proc/self/stat`: after the command (in parentheses, which may hold
/// anything), field 14 and 15 are user and system time in ticks, 22 the
/// start time in ticks after boot, 24 the resident set in pages.
fn parse_self_stat(text: &str, ticks: u64, page: u64, boot: Option<u64>) -> ProcessFacts {
    let Some((_, rest)) = text.rsplit_once(')') else {
        return ProcessFacts::default();
    };
    // `rest` starts at field 3 (the state).
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| f.get(n - 3).and_then(|s| s.parse::<u64>().ok());
    let ticks = ticks.max(1) as f64;
    ProcessFacts {
        start_time_secs: boot
            .zip(field(22))
            .map(|(b, t)| b as f64 + t as f64 / ticks),
        cpu_secs: field(14)
            .zip(field(15))
            .map(|(u, s)| (u + s) as f64 / ticks),
        resident_bytes: field(24).map(|p| p * page),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_in_bytes() {
        let text = "MemTotal:       24683520 kB\nMemFree:        14000000 kB\nMemAvailable:   22884000 kB\n";
        assert_eq!(meminfo_bytes(text, "MemAvailable"), Some(22_884_000 * 1024));
        assert_eq!(meminfo_bytes(text, "MemTotal"), Some(24_683_520 * 1024));
        assert_eq!(meminfo_bytes(text, "Mem"), None, "a key, not a prefix");
        assert_eq!(meminfo_bytes("", "MemTotal"), None);
    }

    #[test]
    fn load_and_boot_time() {
        assert_eq!(
            parse_loadavg("0.52 0.61 0.70 2/345 6789\n"),
            Some([0.52, 0.61, 0.70])
        );
        assert_eq!(parse_loadavg("0.52"), None);
        assert_eq!(
            parse_btime("cpu  1 2 3\nbtime 1700000000\nprocesses 9\n"),
            Some(1_700_000_000)
        );
    }

    #[test]
    fn own_stat_with_a_hostile_command_name() {
        // The command may hold spaces and parentheses: fields count from
        // the last ')'.
        let stat = "4242 (ken) (d 1) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 1000 123456789 300 18446744073709551615";
        let p = parse_self_stat(stat, 100, 4096, Some(1_700_000_000));
        assert_eq!(p.cpu_secs, Some(3.0));
        assert_eq!(p.start_time_secs, Some(1_700_000_010.0));
        assert_eq!(p.resident_bytes, Some(300 * 4096));
        assert_eq!(
            parse_self_stat("garbage", 100, 4096, None),
            ProcessFacts::default()
        );
    }
}
