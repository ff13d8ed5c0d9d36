//! Which extended attributes a backup keeps, and how each is converted.
//!
//! A VE's upper layer carries attributes of three kinds: overlayfs's own
//! (`trusted.overlay.*`), which make the layer mean what it means (an
//! opaque directory, a renamed one, a metadata-only copy); the VE's
//! (file capabilities, POSIX ACLs, `user.*`); and the host's (security
//! labels, `trusted.overlay.origin`, a file handle of the host's lower
//! filesystem that means nothing anywhere else). A backup keeps the first
//! two, converting the ids hidden in capabilities and ACLs
//! ([`super::ids`]), and drops the rest, counting them. One list serves
//! both directions, so a restore accepts exactly what a backup can write:
//! anything else found in a stream is dropped too.

use super::ids::{convert_acl, convert_capability, Direction, IdError, IdShift};

/// At most this many bytes of one attribute value are read or restored.
pub const MAX_XATTR_VALUE: usize = 64 << 10;

/// At most this many attributes of one file are kept.
pub const MAX_XATTRS: usize = 64;

/// At most this many bytes of names and values are kept per file, so that
/// a member's PAX header stays well within the reader's per-member
/// metadata allowance (`crate::unpack::METADATA_ALLOWANCE`).
pub const MAX_XATTR_TOTAL: usize = 256 << 10;

/// How a kept attribute's value is converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kept {
    /// Holds no id: kept byte for byte.
    Verbatim,
    /// `security.capability`: a version 3 root id is shifted.
    Capability,
    /// A POSIX ACL: named users' and groups' ids are shifted.
    Acl,
}

/// How attribute `name` is kept, or `None` if a backup drops it.
pub(crate) fn kept(name: &str) -> Option<Kept> {
    match name {
        "trusted.overlay.opaque" | "trusted.overlay.redirect" | "trusted.overlay.metacopy" => {
            Some(Kept::Verbatim)
        }
        "security.capability" => Some(Kept::Capability),
        "system.posix_acl_access" | "system.posix_acl_default" => Some(Kept::Acl),
        n if n.starts_with("user.") && n.len() > "user.".len() => Some(Kept::Verbatim),
        _ => None,
    }
}

/// Why an attribute is not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Dropped {
    /// Not on the list.
    NotKept,
    /// Longer than [`MAX_XATTR_VALUE`].
    TooLong,
    /// Its ids or its format cannot be converted.
    Bad(IdError),
}

/// Attribute `name`'s `value` converted one way, or why it is dropped.
pub(crate) fn convert(
    name: &str,
    value: &[u8],
    shift: IdShift,
    dir: Direction,
) -> Result<Vec<u8>, Dropped> {
    let how = kept(name).ok_or(Dropped::NotKept)?;
    if value.len() > MAX_XATTR_VALUE {
        return Err(Dropped::TooLong);
    }
    match how {
        Kept::Verbatim => Ok(value.to_vec()),
        Kept::Capability => convert_capability(value, shift, dir).map_err(Dropped::Bad),
        Kept::Acl => convert_acl(value, shift, dir).map_err(Dropped::Bad),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list() {
        assert_eq!(kept("trusted.overlay.opaque"), Some(Kept::Verbatim));
        assert_eq!(kept("trusted.overlay.redirect"), Some(Kept::Verbatim));
        assert_eq!(kept("trusted.overlay.metacopy"), Some(Kept::Verbatim));
        assert_eq!(kept("trusted.overlay.origin"), None);
        assert_eq!(kept("trusted.overlay.impure"), None);
        assert_eq!(kept("security.capability"), Some(Kept::Capability));
        assert_eq!(kept("security.selinux"), None);
        assert_eq!(kept("system.posix_acl_access"), Some(Kept::Acl));
        assert_eq!(kept("system.posix_acl_default"), Some(Kept::Acl));
        assert_eq!(kept("user.mime"), Some(Kept::Verbatim));
        assert_eq!(kept("user."), None);
        assert_eq!(kept("trusted.x"), None);
    }

    #[test]
    fn values_are_bounded_and_converted() {
        let shift = IdShift::default();
        let big = vec![0u8; MAX_XATTR_VALUE + 1];
        assert_eq!(
            convert("user.x", &big, shift, Direction::ToHost),
            Err(Dropped::TooLong)
        );
        assert_eq!(
            convert("user.x", b"v", shift, Direction::ToHost),
            Ok(b"v".to_vec())
        );
        assert_eq!(
            convert("security.selinux", b"v", shift, Direction::ToHost),
            Err(Dropped::NotKept)
        );
        assert!(matches!(
            convert("security.capability", b"junk", shift, Direction::ToHost),
            Err(Dropped::Bad(_))
        ));
    }
}
