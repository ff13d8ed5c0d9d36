//! The counters of the VEs' links, from the host ends of their veth
//! pairs, all at once from `/proc/net/dev`.
//!
//! Why not `/sys/class/net/LINK/statistics/*`: that is four files per
//! link (4,000 opens for 1,000 VEs, against one read here), and sysfs
//! shows the network namespace of whoever mounted it, not the reader's,
//! whereas `/proc/net/dev` is always that of the reading process: the
//! namespace kenneld runs in, which is the one Kennel makes the VEs'
//! host ends in (the host's, unless both run in another).

use std::collections::HashMap;

/// One link's counters, as the host end of the pair counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkCounters {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
}

impl LinkCounters {
    /// The same counters as the VE's end sees them: what the host end
    /// received, the VE sent.
    pub fn as_seen_inside(self) -> LinkCounters {
        LinkCounters {
            rx_bytes: self.tx_bytes,
            rx_packets: self.tx_packets,
            tx_bytes: self.rx_bytes,
            tx_packets: self.rx_packets,
        }
    }
}

/// Every link's counters in kenneld's network namespace (empty if
/// `/proc/net/dev` cannot be read).
pub fn read() -> HashMap<String, LinkCounters> {
    match std::fs::read_to_string("/proc/net/dev") {
        Ok(text) => parse(&text),
        Err(e) => {
            tracing::warn!("metrics: read /proc/net/dev: {e}");
            HashMap::new()
        }
    }
}

/// `/proc/net/dev`: two header lines, then `NAME: ` and 16 numbers per
/// link: received bytes, packets, errs, drop, fifo, frame, compressed,
/// multicast, then transmitted bytes, packets, and six more. A line of
/// another shape is skipped.
fn parse(text: &str) -> HashMap<String, LinkCounters> {
    text.lines()
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let n: Vec<u64> = rest
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            (n.len() >= 10).then(|| {
                (
                    name.trim().to_string(),
                    LinkCounters {
                        rx_bytes: n[0],
                        rx_packets: n[1],
                        tx_bytes: n[8],
                        tx_packets: n[9],
                    },
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    1234      10    0    0    0     0          0         0     1234      10    0    0    0     0       0          0
kv101_eth0: 5000 40 0 0 0 0 0 0 7000 50 0 0 0 0 0 0
kv1a2b3c4d.x:  1 2 0 0 0 0 0 0 3 4 0 0 0 0 0 0
broken: 1 2 x
";

    #[test]
    fn links_and_their_counters() {
        let m = parse(SAMPLE);
        assert_eq!(m.len(), 3, "{m:?}");
        assert_eq!(
            m["kv101_eth0"],
            LinkCounters {
                rx_bytes: 5000,
                rx_packets: 40,
                tx_bytes: 7000,
                tx_packets: 50
            }
        );
        assert_eq!(
            m["kv1a2b3c4d.x"].tx_packets, 4,
            "hashed names keep their dot"
        );
        assert!(!m.contains_key("broken"));
        assert!(!m.keys().any(|k| k.contains('|')), "headers are no links");
    }

    #[test]
    fn the_ve_sees_the_host_ends_counters_mirrored() {
        let host = LinkCounters {
            rx_bytes: 1,
            rx_packets: 2,
            tx_bytes: 3,
            tx_packets: 4,
        };
        let inside = host.as_seen_inside();
        assert_eq!((inside.rx_bytes, inside.rx_packets), (3, 4));
        assert_eq!((inside.tx_bytes, inside.tx_packets), (1, 2));
    }
}
