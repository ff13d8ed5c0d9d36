//! Moving ids between a VE's host range and the VE-relative form a backup
//! stores.
//!
//! A VE's files are owned on the host by `uid_base + n` (`n` in 0-65535);
//! a backup stores `n`, so it can be restored into a VE with another range.
//! Ids hide in two extended attributes as well: the root id of a version 3
//! file capability (whose root the capability is for) and the ids of the
//! named users and groups of a POSIX ACL. Those are converted here too,
//! with the same rule both ways: an id outside the range, or a value that
//! is not what its format says, is refused rather than guessed at — a
//! wrong id in a capability or an ACL would hand a right to a stranger.
//!
//! Pure functions on bytes, so every case is a unit test.

use std::fmt;

/// Ids a VE maps: relative ids are `0..=MAX_RELATIVE`.
pub const MAX_RELATIVE: u32 = 65535;

/// Why an id or an attribute value cannot be converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdError {
    /// The id is not one of the VE's.
    OutOfRange(u64),
    /// The value does not follow its format.
    Malformed(&'static str),
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdError::OutOfRange(id) => write!(f, "id {id} is outside the VE's ids"),
            IdError::Malformed(why) => write!(f, "malformed value: {why}"),
        }
    }
}

/// Where a VE's ids start on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IdShift {
    pub uid_base: u32,
    pub gid_base: u32,
}

/// Which way a conversion goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Host id to the id stored in a backup.
    ToRelative,
    /// Stored id to the host id of the VE being restored.
    ToHost,
}

/// `id` moved one way across a range starting at `base`.
pub fn shift_id(id: u64, base: u32, dir: Direction) -> Result<u32, IdError> {
    let out = match dir {
        Direction::ToRelative => id
            .checked_sub(u64::from(base))
            .filter(|r| *r <= u64::from(MAX_RELATIVE)),
        Direction::ToHost => (id <= u64::from(MAX_RELATIVE))
            .then(|| id + u64::from(base))
            .filter(|h| *h < u64::from(u32::MAX)),
    };
    out.and_then(|v| u32::try_from(v).ok())
        .ok_or(IdError::OutOfRange(id))
}

impl IdShift {
    pub fn uid(&self, id: u64, dir: Direction) -> Result<u32, IdError> {
        shift_id(id, self.uid_base, dir)
    }

    pub fn gid(&self, id: u64, dir: Direction) -> Result<u32, IdError> {
        shift_id(id, self.gid_base, dir)
    }
}

const VFS_CAP_REVISION_MASK: u32 = 0xff00_0000;
const VFS_CAP_REVISION_1: u32 = 0x0100_0000;
const VFS_CAP_REVISION_2: u32 = 0x0200_0000;
const VFS_CAP_REVISION_3: u32 = 0x0300_0000;

fn le32(b: &[u8], at: usize) -> Result<u32, IdError> {
    b.get(at..at + 4)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map(u32::from_le_bytes)
        .ok_or(IdError::Malformed("too short"))
}

/// A `security.capability` value converted: a version 3 capability's root
/// id is moved across the range; versions 1 and 2 hold no id and are kept.
pub fn convert_capability(
    value: &[u8],
    shift: IdShift,
    dir: Direction,
) -> Result<Vec<u8>, IdError> {
    let magic = le32(value, 0)?;
    let (want, has_root) = match magic & VFS_CAP_REVISION_MASK {
        VFS_CAP_REVISION_1 => (12, false),
        VFS_CAP_REVISION_2 => (20, false),
        VFS_CAP_REVISION_3 => (24, true),
        _ => return Err(IdError::Malformed("unknown capability revision")),
    };
    if value.len() != want {
        return Err(IdError::Malformed("capability of the wrong size"));
    }
    let mut out = value.to_vec();
    if has_root {
        let root = shift.uid(u64::from(le32(value, 20)?), dir)?;
        out[20..24].copy_from_slice(&root.to_le_bytes());
    }
    Ok(out)
}

const ACL_VERSION: u32 = 2;
const ACL_USER_OBJ: u16 = 0x01;
const ACL_USER: u16 = 0x02;
const ACL_GROUP_OBJ: u16 = 0x04;
const ACL_GROUP: u16 = 0x08;
const ACL_MASK: u16 = 0x10;
const ACL_OTHER: u16 = 0x20;

/// A `system.posix_acl_access` or `system.posix_acl_default` value
/// converted: the ids of its named-user and named-group entries are moved
/// across the range; the other entries hold no id and are kept.
pub fn convert_acl(value: &[u8], shift: IdShift, dir: Direction) -> Result<Vec<u8>, IdError> {
    if le32(value, 0)? != ACL_VERSION {
        return Err(IdError::Malformed("unknown ACL version"));
    }
    let body = &value[4..];
    if !body.len().is_multiple_of(8) {
        return Err(IdError::Malformed("ACL entries of the wrong size"));
    }
    let mut out = value.to_vec();
    for (i, e) in body.chunks_exact(8).enumerate() {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let id = u64::from(u32::from_le_bytes([e[4], e[5], e[6], e[7]]));
        let new = match tag {
            ACL_USER => shift.uid(id, dir)?,
            ACL_GROUP => shift.gid(id, dir)?,
            ACL_USER_OBJ | ACL_GROUP_OBJ | ACL_MASK | ACL_OTHER => continue,
            _ => return Err(IdError::Malformed("unknown ACL entry tag")),
        };
        let at = 4 + i * 8 + 4;
        out[at..at + 4].copy_from_slice(&new.to_le_bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::{ToHost, ToRelative};

    const SHIFT: IdShift = IdShift {
        uid_base: 100_000,
        gid_base: 300_000,
    };

    #[test]
    fn ids_move_both_ways_within_the_range() {
        assert_eq!(SHIFT.uid(100_000, ToRelative), Ok(0));
        assert_eq!(SHIFT.uid(165_535, ToRelative), Ok(65535));
        assert_eq!(SHIFT.uid(0, ToHost), Ok(100_000));
        assert_eq!(SHIFT.gid(65535, ToHost), Ok(365_535));
        assert_eq!(
            SHIFT.uid(99_999, ToRelative),
            Err(IdError::OutOfRange(99_999))
        );
        assert_eq!(
            SHIFT.uid(165_536, ToRelative),
            Err(IdError::OutOfRange(165_536))
        );
        assert_eq!(SHIFT.uid(65536, ToHost), Err(IdError::OutOfRange(65536)));
        assert_eq!(
            SHIFT.uid(u64::MAX, ToHost),
            Err(IdError::OutOfRange(u64::MAX))
        );
        // A base so high that the host id would not fit.
        assert!(shift_id(10, u32::MAX - 5, ToHost).is_err());
    }

    fn cap_v3(rootid: u32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(VFS_CAP_REVISION_3 | 1).to_le_bytes());
        v.extend_from_slice(&[0x00, 0x20, 0, 0, 0, 0, 0, 0]); // cap_net_raw
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&rootid.to_le_bytes());
        v
    }

    #[test]
    fn capability_v3_root_id_is_shifted() {
        let host = cap_v3(100_000);
        let rel = convert_capability(&host, SHIFT, ToRelative).expect("to relative");
        assert_eq!(rel, cap_v3(0));
        let back = IdShift {
            uid_base: 200_000,
            gid_base: 0,
        };
        assert_eq!(convert_capability(&rel, back, ToHost), Ok(cap_v3(200_000)));
        assert_eq!(
            convert_capability(&cap_v3(5), SHIFT, ToRelative),
            Err(IdError::OutOfRange(5))
        );
    }

    #[test]
    fn capability_v2_is_kept_and_garbage_refused() {
        let mut v2 = (VFS_CAP_REVISION_2 | 1).to_le_bytes().to_vec();
        v2.extend_from_slice(&[0x11; 16]);
        assert_eq!(convert_capability(&v2, SHIFT, ToRelative), Ok(v2.clone()));
        assert_eq!(convert_capability(&v2, SHIFT, ToHost), Ok(v2.clone()));
        let short = &cap_v3(100_000)[..22];
        assert!(matches!(
            convert_capability(short, SHIFT, ToRelative),
            Err(IdError::Malformed(_))
        ));
        assert!(convert_capability(&[1, 2], SHIFT, ToRelative).is_err());
        let mut bad = v2.clone();
        bad[3] = 0x09;
        assert!(convert_capability(&bad, SHIFT, ToRelative).is_err());
        // A v2 header on a v3-sized value.
        let mut mixed = cap_v3(100_000);
        mixed[3] = 0x02;
        assert!(convert_capability(&mixed, SHIFT, ToRelative).is_err());
    }

    fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut v = ACL_VERSION.to_le_bytes().to_vec();
        for (tag, perm, id) in entries {
            v.extend_from_slice(&tag.to_le_bytes());
            v.extend_from_slice(&perm.to_le_bytes());
            v.extend_from_slice(&id.to_le_bytes());
        }
        v
    }

    #[test]
    fn acl_named_entries_are_shifted() {
        let u = u32::MAX;
        let host = acl(&[
            (ACL_USER_OBJ, 6, u),
            (ACL_USER, 4, 101_000),
            (ACL_GROUP_OBJ, 4, u),
            (ACL_GROUP, 4, 300_007),
            (ACL_MASK, 6, u),
            (ACL_OTHER, 0, u),
        ]);
        let rel = convert_acl(&host, SHIFT, ToRelative).expect("to relative");
        let want = acl(&[
            (ACL_USER_OBJ, 6, u),
            (ACL_USER, 4, 1000),
            (ACL_GROUP_OBJ, 4, u),
            (ACL_GROUP, 4, 7),
            (ACL_MASK, 6, u),
            (ACL_OTHER, 0, u),
        ]);
        assert_eq!(rel, want);
        assert_eq!(convert_acl(&rel, SHIFT, ToHost), Ok(host));
    }

    #[test]
    fn bad_acls_are_refused() {
        let out_of_range = acl(&[(ACL_USER, 4, 5)]);
        assert_eq!(
            convert_acl(&out_of_range, SHIFT, ToRelative),
            Err(IdError::OutOfRange(5))
        );
        assert!(convert_acl(&acl(&[(ACL_GROUP, 4, 70_000)]), SHIFT, ToHost).is_err());
        let mut ragged = acl(&[(ACL_USER_OBJ, 6, 0)]);
        ragged.push(0);
        assert!(convert_acl(&ragged, SHIFT, ToRelative).is_err());
        let mut version = acl(&[]);
        version[0] = 3;
        assert!(convert_acl(&version, SHIFT, ToRelative).is_err());
        assert!(convert_acl(&acl(&[(0x40, 0, 0)]), SHIFT, ToRelative).is_err());
        assert!(convert_acl(&[], SHIFT, ToRelative).is_err());
        // Only the header: an empty ACL is well formed.
        assert_eq!(convert_acl(&acl(&[]), SHIFT, ToHost), Ok(acl(&[])));
    }
}
