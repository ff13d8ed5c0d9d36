//! The status of an entry of the tree, in fixed widths.
//!
//! `struct stat`'s field types differ between architectures (`c_ulong`,
//! `c_long`, `c_uint`); they are converted to fixed widths here, once, so
//! the rest of the backup code compares and stores plain numbers.

use rustix::fs::{FileType, Stat};

/// What a backup needs to know of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub size: u64,
    /// 512-byte blocks allocated.
    pub blocks: u64,
    pub mtime: (i64, u32),
    pub ctime: (i64, u32),
}

impl Meta {
    // The casts are needed on some architectures and not on others.
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    pub fn from_stat(st: &Stat) -> Meta {
        let nsec = |n| u32::try_from(n).unwrap_or(0).min(999_999_999);
        Meta {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            nlink: st.st_nlink as u64,
            mode: st.st_mode as u32,
            uid: st.st_uid as u32,
            gid: st.st_gid as u32,
            rdev: st.st_rdev as u64,
            size: u64::try_from(st.st_size).unwrap_or(0),
            blocks: u64::try_from(st.st_blocks).unwrap_or(0),
            mtime: (st.st_mtime as i64, nsec(st.st_mtime_nsec as u64)),
            ctime: (st.st_ctime as i64, nsec(st.st_ctime_nsec as u64)),
        }
    }

    pub fn file_type(&self) -> FileType {
        FileType::from_raw_mode(self.mode)
    }

    /// Permission bits with set-id and sticky bits.
    pub fn perm(&self) -> u32 {
        self.mode & 0o7777
    }
}
