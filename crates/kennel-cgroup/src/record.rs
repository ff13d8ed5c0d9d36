//! Where a VE's cgroup is, as recorded in its run directory.
//!
//! A start writes the record *before* it makes the cgroup, and the
//! teardown removes the record only once the cgroup is gone. Everything in
//! between (status, exec, stop, the repair of a VE that died without its
//! monitor) finds the cgroup through the record, never by computing the
//! path again from today's `kennel.toml`: the host's `cgroup_parent` may
//! have changed since the VE started, and a path computed now would miss
//! the VE's cgroup, leave it behind for good (and with it one of the
//! host's 65,535 memory cgroup ids) and read another's usage. The network
//! keeps its own record (`net.json`) for the same reason.
//!
//! The record is one line: the cgroup's path below each hierarchy's root
//! (`kennel/101`). It lives in a directory only the host's root may write,
//! but is still read as untrusted text: bounded, and a path with `..`, an
//! empty component or an absolute start is refused rather than followed.

use std::fs;
use std::io::{self, Read};
use std::path::Path;

use crate::error::{io_err, CgroupError, Result};
use crate::host::Host;
use crate::tree::Cgroup;

/// The record's file name in a VE's run directory.
pub const RECORD_FILE: &str = "cgroup";

/// The longest path a record holds (the kernel's `PATH_MAX`).
const MAX_LEN: usize = 4096;

/// A VE's cgroup path below each hierarchy's root, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupRecord(String);

impl CgroupRecord {
    /// Checks `rel` (`kennel/101`): relative, no empty, `.` or `..`
    /// component, no control characters.
    pub fn new(rel: &str) -> Result<Self> {
        let bad = |why: &str| CgroupError::BadRecord(format!("{rel:?}: {why}"));
        if rel.is_empty() || rel.len() > MAX_LEN {
            return Err(bad("empty or too long"));
        }
        if rel.starts_with('/') {
            return Err(bad("absolute"));
        }
        if rel.chars().any(char::is_control) {
            return Err(bad("control characters"));
        }
        if rel
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(bad("empty, '.' or '..' component"));
        }
        Ok(CgroupRecord(rel.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The recorded cgroup in every hierarchy of `host`.
    pub fn cgroup<'h>(&self, host: &'h Host) -> Cgroup<'h> {
        host.cgroup(&self.0)
    }

    /// Writes the record into `run_dir` (whole, by rename).
    pub fn save(&self, run_dir: &Path) -> Result<()> {
        let tmp = run_dir.join(".cgroup.new");
        let dest = run_dir.join(RECORD_FILE);
        fs::write(&tmp, format!("{}\n", self.0)).map_err(io_err("write", &tmp))?;
        fs::rename(&tmp, &dest).map_err(io_err("rename to", &dest))
    }

    /// The record in `run_dir`, if there is one.
    pub fn load(run_dir: &Path) -> Result<Option<Self>> {
        let path = run_dir.join(RECORD_FILE);
        let file = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("open", &path)(e)),
        };
        let mut text = String::new();
        file.take(MAX_LEN as u64 + 2)
            .read_to_string(&mut text)
            .map_err(io_err("read", &path))?;
        Self::new(text.strip_suffix('\n').unwrap_or(&text)).map(Some)
    }

    /// Removes the record from `run_dir`: call once the cgroup is gone.
    pub fn remove(run_dir: &Path) -> Result<()> {
        let path = run_dir.join(RECORD_FILE);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", &path)(e)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_leave_the_hierarchy_are_refused() {
        for good in ["kennel/101", "kennel-1a2b3c4d/web.example", "a"] {
            assert_eq!(CgroupRecord::new(good).expect(good).as_str(), good);
        }
        let long = "a/".repeat(MAX_LEN);
        for bad in [
            "",
            "/kennel/101",
            "kennel/../../etc",
            "kennel//101",
            "kennel/101/",
            "./kennel",
            "kennel/10\n1",
            long.as_str(),
        ] {
            assert!(CgroupRecord::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_record_round_trips_and_goes() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(CgroupRecord::load(dir.path()).expect("load"), None);
        let rec = CgroupRecord::new("kennel-00ff00ff/101").expect("record");
        rec.save(dir.path()).expect("save");
        assert_eq!(CgroupRecord::load(dir.path()).expect("load"), Some(rec));
        CgroupRecord::remove(dir.path()).expect("remove");
        CgroupRecord::remove(dir.path()).expect("remove again");
        assert_eq!(CgroupRecord::load(dir.path()).expect("load"), None);
    }

    #[test]
    fn a_damaged_record_is_an_error_not_a_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(RECORD_FILE), "../../../sys\n").expect("write");
        assert!(CgroupRecord::load(dir.path()).is_err());
        fs::write(dir.path().join(RECORD_FILE), "a/".repeat(5000)).expect("write");
        assert!(CgroupRecord::load(dir.path()).is_err());
    }
}
