//! Reading the extended attributes a backup keeps from an open file.
//!
//! The names and values are the tenant's, so every read is bounded: the
//! name list at [`MAX_LIST`] bytes, each value at [`MAX_XATTR_VALUE`], and
//! at most [`MAX_XATTRS`] attributes, [`MAX_XATTR_TOTAL`] bytes in all,
//! are kept per file. What is dropped
//! (not on the list of [`super::xattr_policy`], too long, too many, ids
//! outside the VE's range, a malformed capability or ACL) is counted.
//!
//! A template's files ([`read_template_xattrs`]) keep only what a template
//! import keeps (`crate::unpack::Flavor::Template`): `security.capability`
//! and `user.*`, byte for byte, within the same bounds.

use std::os::fd::BorrowedFd;

use rustix::fs::{fgetxattr, flistxattr};
use rustix::io::Errno;

use super::ids::{Direction, IdShift};
use super::xattr_policy::{convert, kept, MAX_XATTRS, MAX_XATTR_TOTAL, MAX_XATTR_VALUE};

/// Longest list of attribute names read.
pub const MAX_LIST: usize = 64 << 10;

/// The kept attributes of `fd`, converted to VE-relative ids, sorted by
/// name; and how many were dropped.
pub(crate) fn read_xattrs(fd: BorrowedFd<'_>, shift: IdShift) -> (Vec<(String, Vec<u8>)>, u64) {
    read_with(
        fd,
        |name| kept(name).is_some(),
        |name, value| convert(name, value, shift, Direction::ToRelative).ok(),
    )
}

/// Whether a template keeps attribute `name` (what a template import
/// keeps).
pub(crate) fn template_keeps(name: &str) -> bool {
    name == "security.capability" || (name.starts_with("user.") && name.len() > "user.".len())
}

/// The attributes of a template's file that a template keeps, as they
/// are, sorted by name; and how many were dropped.
pub(crate) fn read_template_xattrs(fd: BorrowedFd<'_>) -> (Vec<(String, Vec<u8>)>, u64) {
    read_with(fd, template_keeps, |_, value| Some(value.to_vec()))
}

/// The attributes of `fd` whose names `wanted` takes, each value as
/// `store` makes it (`None`: dropped), within the bounds.
fn read_with(
    fd: BorrowedFd<'_>,
    wanted: impl Fn(&str) -> bool,
    store: impl Fn(&str, &[u8]) -> Option<Vec<u8>>,
) -> (Vec<(String, Vec<u8>)>, u64) {
    let mut list = vec![0u8; MAX_LIST];
    let n = match flistxattr(fd, &mut list[..]) {
        Ok(n) => n,
        Err(Errno::NOTSUP) => return (Vec::new(), 0),
        // Longer than MAX_LIST, or unreadable: nothing is kept.
        Err(_) => return (Vec::new(), 1),
    };
    let mut out = Vec::new();
    let mut dropped = 0;
    let mut value = vec![0u8; MAX_XATTR_VALUE];
    let mut total = 0;
    for raw in list[..n].split(|&b| b == 0).filter(|s| !s.is_empty()) {
        let Ok(name) = std::str::from_utf8(raw) else {
            dropped += 1;
            continue;
        };
        if !wanted(name) || out.len() == MAX_XATTRS {
            dropped += 1;
            continue;
        }
        let len = match fgetxattr(fd, name, &mut value[..]) {
            Ok(len) => len,
            // Removed since the list was read.
            Err(Errno::NODATA) => continue,
            Err(_) => {
                dropped += 1;
                continue;
            }
        };
        match store(name, &value[..len]) {
            Some(v) if total + name.len() + v.len() <= MAX_XATTR_TOTAL => {
                total += name.len() + v.len();
                out.push((name.to_string(), v));
            }
            _ => dropped += 1,
        }
    }
    out.sort();
    (out, dropped)
}
