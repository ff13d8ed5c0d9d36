//! Reading the extended attributes a backup keeps from an open file.
//!
//! The names and values are the tenant's, so every read is bounded: the
//! name list at [`MAX_LIST`] bytes, each value at [`MAX_XATTR_VALUE`], and
//! at most [`MAX_XATTRS`] attributes, [`MAX_XATTR_TOTAL`] bytes in all,
//! are kept per file. What is dropped
//! (not on the list of [`super::xattr_policy`], too long, too many, ids
//! outside the VE's range, a malformed capability or ACL) is counted.

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
        if kept(name).is_none() || out.len() == MAX_XATTRS {
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
        match convert(name, &value[..len], shift, Direction::ToRelative) {
            Ok(v) if total + name.len() + v.len() <= MAX_XATTR_TOTAL => {
                total += name.len() + v.len();
                out.push((name.to_string(), v));
            }
            _ => dropped += 1,
        }
    }
    out.sort();
    (out, dropped)
}
