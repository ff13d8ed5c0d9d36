//! Emptying a VE's layer of everything but some paths (`kennel reinstall
//! --keep /root,/home`): the VE gets its template's files again, and its
//! own only where the operator said.
//!
//! The layer is the tenant's making. Every step is relative to a
//! directory descriptor; a directory on the way to a kept path is opened
//! with no symlink followed (a kept path that runs through a symlink keeps
//! the symlink, and nothing below it is looked at); everything else goes
//! through [`crate::remove`], which never leaves the tree.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{openat2, statat, AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags};

use crate::error::{io_err, Result, StorageError};

/// Checks kept paths (absolute, no `..`) and splits them into names.
pub fn parse_keep(paths: &[String]) -> Result<Vec<Vec<String>>> {
    let mut out = Vec::new();
    for p in paths {
        let parts: Vec<String> = p
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .map(str::to_string)
            .collect();
        if !p.starts_with('/') || parts.is_empty() || parts.iter().any(|c| c == "..") {
            return Err(StorageError::Refused(format!(
                "invalid path '{}' to keep: give absolute paths inside the VE, without '..', other than / (e.g. /root,/home)",
                crate::shown::shown(p.as_bytes())
            )));
        }
        out.push(parts);
    }
    Ok(out)
}

/// Removes everything below the directory `root` but the `keep` paths.
pub fn keep_only(root: &Path, keep: &[Vec<String>]) -> Result<()> {
    let fd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err("open", root)(e.into()))?;
    let keep: Vec<&[String]> = keep.iter().map(Vec::as_slice).collect();
    prune(fd.as_fd(), &keep, root, 0)
}

fn prune(dir: BorrowedFd<'_>, keep: &[&[String]], root: &Path, depth: usize) -> Result<()> {
    let fail = |what: &str, e: rustix::io::Errno| {
        StorageError::Layer(format!(
            "empty {} for the reinstall: {what}: {}",
            root.display(),
            std::io::Error::from(e)
        ))
    };
    let names: Vec<CString> = {
        let mut d = Dir::read_from(dir).map_err(|e| fail("read a directory", e))?;
        let mut v = Vec::new();
        while let Some(ent) = d.read() {
            let n = ent
                .map_err(|e| fail("read a directory", e))?
                .file_name()
                .to_owned();
            if n.to_bytes() != b"." && n.to_bytes() != b".." {
                v.push(n);
            }
        }
        v
    };
    for name in names {
        let text = String::from_utf8_lossy(name.to_bytes());
        let tails: Vec<&[String]> = keep
            .iter()
            .filter(|k| k.first().is_some_and(|f| *f == text))
            .map(|k| &k[1..])
            .collect();
        if tails.iter().any(|t| t.is_empty()) {
            continue; // kept whole
        }
        if tails.is_empty() {
            crate::remove::remove_in(dir, &name, &root.join(&*text))?;
            continue;
        }
        // On the way to a kept path: a real directory is entered, anything
        // else (a symlink) stays as it is.
        let st =
            statat(dir, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW).map_err(|e| fail("stat", e))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory || depth > 64 {
            continue;
        }
        let sub: OwnedFd = openat2(
            dir,
            name.as_c_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_XDEV | ResolveFlags::BENEATH,
        )
        .map_err(|e| fail("open a directory", e))?;
        prune(sub.as_fd(), &tails, root, depth + 1)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_paths_are_checked() {
        assert_eq!(
            parse_keep(&["/root".into(), "/home//alice/".into()]).unwrap_or_default(),
            vec![
                vec!["root".to_string()],
                vec!["home".into(), "alice".into()]
            ]
        );
        for bad in ["root", "/", "/home/../etc", ""] {
            assert!(parse_keep(&[bad.to_string()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn everything_but_the_kept_paths_goes() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let r = t.path();
        for d in ["root/.ssh", "home/alice/x", "home/bob", "etc"] {
            std::fs::create_dir_all(r.join(d)).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(r.join("etc/passwd"), "x").unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink("/etc", r.join("home/carol")).unwrap_or_else(|e| panic!("{e}"));
        let keep = parse_keep(&["/root".into(), "/home/alice".into()]).unwrap_or_default();
        keep_only(r, &keep).unwrap_or_else(|e| panic!("{e}"));
        assert!(r.join("root/.ssh").is_dir());
        assert!(r.join("home/alice/x").is_dir());
        assert!(!r.join("home/bob").exists() && !r.join("etc").exists());
        assert!(std::fs::symlink_metadata(r.join("home/carol")).is_err());
    }
}
