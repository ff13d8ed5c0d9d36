//! In which order the host's boot starts VEs and its shutdown stops them
//! (OpenVZ's `BOOTORDER`, Incus's `boot.autostart.priority` and
//! `boot.stop.priority` in one number): pure logic, no I/O.
//!
//! VEs of the same order form a group, which starts (or stops) at once,
//! through the batch's workers; the next group waits for the whole group
//! before it: a database at order 100 runs before the web servers at order
//! 50 start, and still runs until they have stopped. VEs without an order
//! start after every ordered one and stop before them: they depend on
//! nothing, as far as Kennel knows, and nothing is known to depend on them.

use std::collections::BTreeMap;

use crate::id::VeId;

/// VEs started or stopped together: one boot order, or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The boot order the group's VEs share; `None`: VEs without one.
    pub order: Option<u32>,
    /// In the order they were given (by id, from [`crate::Kennel::ids`]).
    pub ids: Vec<VeId>,
}

/// The groups of a boot: highest order first, VEs without one last.
pub fn boot_groups(ves: impl IntoIterator<Item = (VeId, Option<u32>)>) -> Vec<Group> {
    let mut groups = shutdown_groups(ves);
    groups.reverse();
    groups
}

/// The groups of a shutdown: the reverse of a boot's, VEs without an
/// order first, then lowest order first.
pub fn shutdown_groups(ves: impl IntoIterator<Item = (VeId, Option<u32>)>) -> Vec<Group> {
    // `None` sorts below every `Some(_)`.
    let mut by_order: BTreeMap<Option<u32>, Vec<VeId>> = BTreeMap::new();
    for (id, order) in ves {
        by_order.entry(order).or_default().push(id);
    }
    by_order
        .into_iter()
        .map(|(order, ids)| Group { order, ids })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ves(list: &[(&str, Option<u32>)]) -> Vec<(VeId, Option<u32>)> {
        list.iter()
            .map(|(id, o)| (VeId::parse(id).expect("id"), *o))
            .collect()
    }

    fn shown(groups: &[Group]) -> Vec<(Option<u32>, Vec<&str>)> {
        groups
            .iter()
            .map(|g| (g.order, g.ids.iter().map(VeId::as_str).collect()))
            .collect()
    }

    const HOST: &[(&str, Option<u32>)] = &[
        ("101", Some(50)),
        ("102", None),
        ("103", Some(100)),
        ("104", Some(50)),
        ("105", Some(0)),
        ("106", None),
    ];

    #[test]
    fn boot_starts_the_highest_order_first_and_the_unordered_last() {
        assert_eq!(
            shown(&boot_groups(ves(HOST))),
            [
                (Some(100), vec!["103"]),
                (Some(50), vec!["101", "104"]),
                (Some(0), vec!["105"]),
                (None, vec!["102", "106"]),
            ]
        );
    }

    #[test]
    fn shutdown_is_the_reverse() {
        let down = shutdown_groups(ves(HOST));
        assert_eq!(
            shown(&down),
            [
                (None, vec!["102", "106"]),
                (Some(0), vec!["105"]),
                (Some(50), vec!["101", "104"]),
                (Some(100), vec!["103"]),
            ]
        );
        let mut up = boot_groups(ves(HOST));
        up.reverse();
        assert_eq!(up, down, "the same groups, the other way round");
    }

    #[test]
    fn one_group_or_none() {
        assert!(boot_groups(Vec::new()).is_empty());
        assert!(shutdown_groups(Vec::new()).is_empty());
        let same = ves(&[("1", None), ("2", None), ("3", None)]);
        assert_eq!(
            shown(&boot_groups(same.clone())),
            [(None, vec!["1", "2", "3"])]
        );
        assert_eq!(shown(&shutdown_groups(same)), [(None, vec!["1", "2", "3"])]);
        // The extremes are orders like any other.
        let ends = ves(&[("lo", Some(0)), ("hi", Some(u32::MAX)), ("no", None)]);
        assert_eq!(
            shown(&boot_groups(ends.clone())),
            [
                (Some(u32::MAX), vec!["hi"]),
                (Some(0), vec!["lo"]),
                (None, vec!["no"])
            ]
        );
        assert_eq!(
            shown(&shutdown_groups(ends)),
            [
                (None, vec!["no"]),
                (Some(0), vec!["lo"]),
                (Some(u32::MAX), vec!["hi"])
            ]
        );
    }
}
