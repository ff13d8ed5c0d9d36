//! Import of a root filesystem tarball (.tar, .tar.gz, .tar.zst).

use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::error::{io_err, Result, StorageError};
use crate::shown::shown;
use crate::unpack::{unpack, UnpackLimits};

fn open_decompressed(path: &Path) -> Result<Box<dyn Read>> {
    let f = File::open(path).map_err(io_err("open", path))?;
    decompressed(f, path)
}

/// The tar stream in `file`, decompressed as its first bytes say; `path`
/// names it in errors. Public for the fuzz targets, which pass the bytes
/// in memory.
pub fn decompressed<F: Read + Seek + 'static>(mut f: F, path: &Path) -> Result<Box<dyn Read>> {
    let mut magic = [0u8; 6];
    let n = f.read(&mut magic).map_err(io_err("read", path))?;
    f.rewind().map_err(io_err("read", path))?;
    let r = BufReader::with_capacity(1 << 20, f);
    let m = &magic[..n];
    if m.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(r)))
    } else if m.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let d = zstd::stream::read::Decoder::with_buffer(r).map_err(io_err("read", path))?;
        Ok(Box::new(d))
    } else if m.starts_with(&[0xfd, b'7', b'z', b'X', b'Z']) || m.starts_with(b"BZh") {
        Err(StorageError::Archive {
            path: path.to_path_buf(),
            reason: "xz and bzip2 are not supported: recompress as .tar, .tar.gz or .tar.zst"
                .into(),
        })
    } else {
        Ok(Box::new(r))
    }
}

pub(crate) fn build(
    rootfs: &Path,
    tarball: &Path,
    limits: &UnpackLimits,
    progress: &mut dyn FnMut(&str),
) -> Result<String> {
    let shown_path = shown(tarball.as_os_str().as_bytes());
    progress(&format!("unpacking {shown_path}"));
    let reader = open_decompressed(tarball)?;
    let report = unpack(reader, rootfs, limits).map_err(|e| match e {
        StorageError::Archive { reason, .. } => StorageError::Archive {
            path: tarball.to_path_buf(),
            reason,
        },
        other => other,
    })?;
    if report.entries == 0 {
        return Err(StorageError::Archive {
            path: tarball.to_path_buf(),
            reason: "no files in the archive (is it a tar archive?)".into(),
        });
    }
    if let Some(first) = report.refused.first() {
        progress(&format!(
            "refused {} unsafe entries (first: {first})",
            report.refused_count
        ));
    }
    if report.devices > 0 {
        progress(&format!(
            "skipped {} device nodes (VEs get their own /dev)",
            report.devices
        ));
    }
    Ok(format!("import of {shown_path}"))
}
