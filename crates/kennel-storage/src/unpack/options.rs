//! What kind of tree an unpack makes: a template, or a VE's own layer.
//!
//! One unpacker serves both, so a backup restore goes through every check
//! a template import does; the [`Flavor`] only widens what a member may
//! be, each widening one a VE's upper layer needs and a template must not
//! have.

use crate::backup::ids::IdShift;

use super::UnpackLimits;

/// The kind of tree being unpacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flavor {
    /// An OS template from an untrusted tarball: owners kept as they are
    /// (0-65535), every device node skipped, only `security.capability`
    /// and `user.*` attributes, times in whole seconds, names UTF-8,
    /// symlinks in a member's path followed inside the tree.
    #[default]
    Template,
    /// A VE's upper layer from a backup (`crate::backup`): owners,
    /// capability root ids and ACL ids shifted by [`UnpackOptions::ids`];
    /// overlayfs whiteouts (char 0/0) made, every other device skipped;
    /// the backup's attribute list (`crate::backup::xattr_policy`),
    /// narrowed for overlayfs's markers (members marked as metadata-only
    /// copies are skipped);
    /// nanosecond times; sparse members; members marked unchanged (their
    /// content is the one already in the tree); sockets; names of any
    /// bytes but NUL; an existing entry in the way replaced whole, a
    /// directory tree included; and no symlink followed anywhere in a
    /// member's path (a backup never needs one).
    Layer,
}

/// How to unpack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UnpackOptions {
    pub limits: UnpackLimits,
    pub flavor: Flavor,
    /// Added to every owner (layers only; templates keep their owners).
    pub ids: IdShift,
}
