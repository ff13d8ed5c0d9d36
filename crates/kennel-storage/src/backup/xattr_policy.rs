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
//! both directions, so a restore accepts at most what a backup can write:
//! anything else found in a stream is dropped too.
//!
//! # overlayfs's attributes on restore
//!
//! A backup writes overlayfs's markers as the layer has them, so the
//! stream describes the layer faithfully. A restore is stricter, because
//! the stream is the tenant's (nothing authenticates it) and these
//! attributes are interpreted by the kernel, not by the VE: a redirect
//! names a path in the *template* to merge in (followed on shifted VEs and
//! snapshot views), a metacopy marker says "my data is the lower file's".
//! Neither can be checked against the template the restored VE will get,
//! so on restore ([`Direction::ToHost`]):
//!
//! * `trusted.overlay.opaque` is kept only with the value `y` (a directory
//!   that hides the template's directory of the same name: what a tenant
//!   gets with `rm -r dir; mkdir dir`); any other value is dropped;
//! * `trusted.overlay.redirect` is always dropped. Cost: a template
//!   directory the tenant renamed (shifted VEs mount with
//!   `redirect_dir=on`) comes back with only its copied-up entries;
//! * `trusted.overlay.metacopy` is dropped, and the member carrying it is
//!   not restored at all ([`is_metacopy`], decided by the unpacker): the
//!   file has no data of its own, and without the marker it would become
//!   a file of zeros hiding the template's. The template's file shows
//!   through instead; a shifted VE gets fresh metadata copies from its own
//!   setup.
//!
//! Each drop is counted with the other dropped attributes.

use super::ids::{convert_acl, convert_capability, Direction, IdError, IdShift};

/// At most this many bytes of one attribute value are read or restored.
pub const MAX_XATTR_VALUE: usize = 64 << 10;

/// At most this many attributes of one file are kept.
pub const MAX_XATTRS: usize = 64;

/// At most this many bytes of names and values are kept per file, so that
/// a member's PAX header stays well within the reader's per-member
/// metadata allowance (`crate::unpack::METADATA_ALLOWANCE`).
pub const MAX_XATTR_TOTAL: usize = 256 << 10;

pub(crate) const OVERLAY_OPAQUE: &str = "trusted.overlay.opaque";
pub(crate) const OVERLAY_REDIRECT: &str = "trusted.overlay.redirect";
pub(crate) const OVERLAY_METACOPY: &str = "trusted.overlay.metacopy";

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
        OVERLAY_OPAQUE | OVERLAY_REDIRECT | OVERLAY_METACOPY => Some(Kept::Verbatim),
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
    /// An overlayfs attribute a restore does not take from a stream.
    Untrusted,
}

/// Whether a member's stored attributes mark it as an overlayfs metadata
/// copy (restores skip such members).
pub(crate) fn is_metacopy(stored: &[(String, Vec<u8>)]) -> bool {
    stored.iter().any(|(k, _)| k == OVERLAY_METACOPY)
}

/// Whether a restore may set overlayfs attribute `name` to `value`.
fn restorable(name: &str, value: &[u8]) -> bool {
    match name {
        OVERLAY_OPAQUE => value == b"y",
        OVERLAY_REDIRECT | OVERLAY_METACOPY => false,
        _ => true,
    }
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
    if dir == Direction::ToHost && !restorable(name, value) {
        return Err(Dropped::Untrusted);
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

    /// Review finding 4: a restore never writes a redirect or a metacopy
    /// marker from a stream, and an opaque marker only as overlayfs writes
    /// it; a backup still records all three as they are.
    #[test]
    fn overlay_attributes_are_narrowed_on_restore() {
        let shift = IdShift::default();
        let back = |n, v: &[u8]| convert(n, v, shift, Direction::ToRelative);
        let rest = |n, v: &[u8]| convert(n, v, shift, Direction::ToHost);
        assert_eq!(back(OVERLAY_OPAQUE, b"y"), Ok(b"y".to_vec()));
        assert_eq!(back(OVERLAY_OPAQUE, b"x"), Ok(b"x".to_vec()));
        assert_eq!(back(OVERLAY_REDIRECT, b"/etc"), Ok(b"/etc".to_vec()));
        assert_eq!(back(OVERLAY_METACOPY, b""), Ok(Vec::new()));
        assert_eq!(rest(OVERLAY_OPAQUE, b"y"), Ok(b"y".to_vec()));
        for v in [&b"x"[..], b"", b"yes", b"y\0", b"Y"] {
            assert_eq!(rest(OVERLAY_OPAQUE, v), Err(Dropped::Untrusted), "{v:?}");
        }
        assert_eq!(
            rest(OVERLAY_REDIRECT, b"/../../etc"),
            Err(Dropped::Untrusted)
        );
        assert_eq!(rest(OVERLAY_REDIRECT, b"old"), Err(Dropped::Untrusted));
        assert_eq!(rest(OVERLAY_METACOPY, b""), Err(Dropped::Untrusted));
        assert!(is_metacopy(&[
            ("user.a".into(), vec![]),
            (OVERLAY_METACOPY.into(), vec![])
        ]));
        assert!(!is_metacopy(&[(OVERLAY_OPAQUE.into(), b"y".to_vec())]));
    }
}
