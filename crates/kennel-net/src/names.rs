//! The host-side names of a VE's network objects. They are derived from
//! the VE id, so that a teardown whose record is damaged still finds
//! them, and readable (`kv101_eth0`), so that `ip link` tells an operator whose
//! interface it is. The separator `_` cannot occur in a VE id, so the
//! names of two VEs never collide and `kv101_` is VE 101's prefix alone.

/// Every host-side link of a VE starts with this.
pub const LINK_PREFIX: &str = "kv";

/// Between the VE id and the interface name.
pub const SEPARATOR: char = '_';

/// The prefix of every nftables table Kennel makes.
pub const TABLE_PREFIX: &str = "kennel-";

/// The host end of the VE's interface `ifname` (`kv101_eth0`). When that
/// does not fit the kernel's 15 bytes, `kv` and a hash of both.
pub fn host_link(ve: &str, ifname: &str) -> String {
    let plain = format!("{LINK_PREFIX}{ve}{SEPARATOR}{ifname}");
    if plain.len() <= 15 {
        return plain;
    }
    format!("{LINK_PREFIX}{:08x}.x", fnv32(&format!("{ve}/{ifname}")))
}

/// The VE's nftables table (in the `netdev` family, and in `inet` when it
/// has NAT or port forwards).
pub fn table(ve: &str) -> String {
    format!("{TABLE_PREFIX}{ve}")
}

fn fnv32(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_kernel() {
        assert_eq!(host_link("101", "eth0"), "kv101_eth0");
        // Ids may hold '-', never '_': these two VEs cannot collide.
        assert_ne!(host_link("10", "1-eth0"), host_link("10-1", "eth0"));
        let long = host_link("a-very-long-ve-name", "eth12");
        assert!(long.len() <= 15, "{long}");
        assert!(long.starts_with(LINK_PREFIX));
        assert_ne!(long, host_link("a-very-long-ve-name", "eth13"));
        assert_eq!(table("101"), "kennel-101");
    }
}
