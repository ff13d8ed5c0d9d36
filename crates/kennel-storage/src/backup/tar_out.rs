//! Writing tar members: an optional PAX header, a ustar header, data,
//! padding.
//!
//! Names and link targets are written as the raw bytes they are (the `tar`
//! crate's setters normalise paths, which would change a symlink target
//! such as `dir/`); what does not fit a ustar field goes into a PAX
//! record, as do nanosecond times, sizes of 8 GiB and more, and Kennel's
//! own records.

use std::io::{self, Write};

use tar::{EntryType, Header};

use super::format::{
    pax_time, push_pax_record, PAX_LINKPATH, PAX_MTIME, PAX_PATH, PAX_SIZE, USTAR_NAME_MAX,
};

/// Sizes from here on need a PAX record (the octal field holds 11 digits).
const USTAR_SIZE_LIMIT: u64 = 0o77777777777;

/// One member's header.
#[derive(Debug)]
pub(crate) struct Member<'a> {
    pub name: &'a [u8],
    pub kind: EntryType,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, u32),
    pub size: u64,
    pub link: Option<&'a [u8]>,
    /// PAX records of Kennel's own and extended attributes, encoded.
    pub records: Vec<u8>,
}

impl<'a> Member<'a> {
    /// A plain member: mode 0644, root's, time zero.
    pub fn plain(name: &'a [u8], kind: EntryType, size: u64) -> Self {
        Member {
            name,
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: (0, 0),
            size,
            link: None,
            records: Vec::new(),
        }
    }
}

/// Writes `m`'s headers (the PAX one if needed); the caller then writes
/// exactly `m.size` bytes and [`pad`]s.
pub(crate) fn write_header<W: Write>(w: &mut W, m: &Member<'_>) -> io::Result<()> {
    let mut pax = Vec::new();
    if m.name.len() > USTAR_NAME_MAX {
        push_pax_record(&mut pax, PAX_PATH, m.name);
    }
    if let Some(link) = m.link.filter(|l| l.len() > USTAR_NAME_MAX) {
        push_pax_record(&mut pax, PAX_LINKPATH, link);
    }
    if m.mtime != (0, 0) {
        push_pax_record(
            &mut pax,
            PAX_MTIME,
            pax_time(m.mtime.0, m.mtime.1).as_bytes(),
        );
    }
    if m.size > USTAR_SIZE_LIMIT {
        push_pax_record(&mut pax, PAX_SIZE, m.size.to_string().as_bytes());
    }
    pax.extend_from_slice(&m.records);
    if !pax.is_empty() {
        let mut h = Header::new_ustar();
        put(&mut h.as_old_mut().name, b"PaxHeader");
        h.set_size(pax.len() as u64);
        h.set_entry_type(EntryType::XHeader);
        h.set_mode(0o644);
        h.set_cksum();
        w.write_all(h.as_bytes())?;
        w.write_all(&pax)?;
        pad(w, pax.len() as u64)?;
    }
    let mut h = Header::new_ustar();
    put(&mut h.as_old_mut().name, m.name);
    if let Some(link) = m.link {
        put(&mut h.as_old_mut().linkname, link);
    }
    h.set_entry_type(m.kind);
    h.set_mode(m.mode);
    h.set_uid(u64::from(m.uid));
    h.set_gid(u64::from(m.gid));
    h.set_size(m.size);
    h.set_mtime(u64::try_from(m.mtime.0).unwrap_or(0));
    if m.kind == EntryType::Char || m.kind == EntryType::Block {
        h.set_device_major(0)?;
        h.set_device_minor(0)?;
    }
    h.set_cksum();
    w.write_all(h.as_bytes())
}

/// As much of `value` as fits `field` (the rest is in a PAX record).
fn put(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// Zeros up to the next 512-byte block after `size` bytes of data.
pub(crate) fn pad<W: Write>(w: &mut W, size: u64) -> io::Result<()> {
    const ZEROS: [u8; 512] = [0; 512];
    let rem = (size % 512) as usize;
    if rem != 0 {
        w.write_all(&ZEROS[rem..])?;
    }
    Ok(())
}

/// A whole member holding `data`.
pub(crate) fn write_data_member<W: Write>(w: &mut W, name: &[u8], data: &[u8]) -> io::Result<()> {
    write_header(
        w,
        &Member::plain(name, EntryType::Regular, data.len() as u64),
    )?;
    w.write_all(data)?;
    pad(w, data.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_tar_crate_reads_what_is_written() {
        let long: Vec<u8> = [b"layer/".as_slice(), &[b'd'; 150], b"/\xff\xfe-file"].concat();
        let target = b"../dir/";
        let mut out = Vec::new();
        let mut m = Member::plain(&long, EntryType::Regular, 3);
        m.mtime = (1_700_000_000, 5);
        m.uid = 65535;
        push_pax_record(&mut m.records, "KENNEL.x", b"1");
        write_header(&mut out, &m).expect("header");
        out.extend_from_slice(b"abc");
        pad(&mut out, 3).expect("pad");
        let mut l = Member::plain(b"layer/l", EntryType::Symlink, 0);
        l.link = Some(target);
        write_header(&mut out, &l).expect("header");
        write_data_member(&mut out, b"kennel-end.json", b"{}").expect("member");
        out.extend_from_slice(&[0; 1024]);

        let mut a = tar::Archive::new(out.as_slice());
        let mut it = a.entries().expect("entries");
        let mut e = it.next().expect("one").expect("ok");
        assert_eq!(e.path_bytes().as_ref(), long.as_slice());
        assert_eq!(e.header().uid().expect("uid"), 65535);
        let exts: Vec<(String, Vec<u8>)> = e
            .pax_extensions()
            .expect("pax")
            .expect("some")
            .map(|x| {
                let x = x.expect("record");
                (x.key().expect("key").to_string(), x.value_bytes().to_vec())
            })
            .collect();
        assert!(exts.contains(&("mtime".into(), b"1700000000.000000005".to_vec())));
        assert!(exts.contains(&("KENNEL.x".into(), b"1".to_vec())));
        let mut s = String::new();
        e.read_to_string(&mut s).expect("data");
        assert_eq!(s, "abc");
        let e = it.next().expect("two").expect("ok");
        assert_eq!(e.link_name_bytes().expect("link").as_ref(), target);
        let e = it.next().expect("three").expect("ok");
        assert_eq!(e.path_bytes().as_ref(), b"kennel-end.json");
        assert!(it.next().is_none());
    }
}
