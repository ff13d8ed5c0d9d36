//! Backups of a VE's own layer: one self-checking stream per backup, full
//! or incremental, restored through the same safe unpacker as templates.
//!
//! # What is backed up
//!
//! A VE's overlayfs upper directory: a tree on the host whose files are
//! owned by the VE's host ids (`uid_base..uid_base+65535`, gids likewise),
//! written by a tenant who may be hostile. [`write_backup`] walks it without
//! ever following a symlink or opening anything but directories and
//! regular files ([`walk`]), with every read bounded; FIFOs, sockets and
//! overlayfs whiteouts (char 0/0) are recorded from their status alone,
//! other device nodes are skipped and counted. Entries owned outside the
//! VE's ids are skipped and counted too, except whiteouts: overlayfs
//! makes them as host root, and a backup without them would bring every
//! deleted template file back ([`writer`]).
//!
//! # The stream
//!
//! A zstd stream (level 3 by default, multithreaded, content checksums
//! on) of a PAX tar stream, in three data frames and a footer:
//!
//! ```text
//! frame 1   kennel-backup.json      the manifest (BackupManifest)
//! frame 2   [template/              with --with-template only: the
//!           template/<path>...]     template's tree, as the layer below
//!           layer/                  the tree's top, then every entry as
//!           layer/<path>...         layer/<path>, directories before
//!                                   their contents, names sorted bytewise
//! frame 3   kennel-index.jsonl      every path: inode, size, mtime, ctime,
//!                                   kind, links (for the next incremental)
//!           kennel-end.json         members before it, layer bytes, and the
//!                                   SHA-256 of every tar byte before it
//!           two zero blocks         the tar end
//! skippable frame (72 bytes)        footer: where frame 3 starts, and the
//!                                   SHA-256 of every byte of the file
//!                                   before that hash
//! ```
//!
//! Layer members carry owners **VE-relative** (host id minus the base), so a
//! backup restores into any range; modes; times to the nanosecond (PAX
//! `mtime`); symlink targets byte for byte; hard links as link members to
//! the first name of the inode; the kept extended attributes as
//! `SCHILY.xattr.*` ([`xattr_policy`]: overlayfs's opaque, redirect and
//! metacopy markers, `security.capability` with a v3 root id made relative,
//! POSIX ACLs with their named ids made relative, `user.*`; never
//! `trusted.overlay.origin`, a host file handle). The overlayfs markers are
//! written as the layer has them, but a restore takes back only an opaque
//! marker `y`: a redirect is dropped, and a member marked as a
//! metadata-only copy is skipped (the stream is the tenant's, and these
//! are read by the kernel, against the template). A sparse file stores only
//! its data segments, found with `SEEK_DATA`/`SEEK_HOLE`, with
//! `KENNEL.sparse=off,len,…` and `KENNEL.realsize` ([`sparse_map`]); a file
//! of 16 TiB with two bytes of data costs two segments. Sockets are FIFO
//! members marked `KENNEL.kind=socket`.
//!
//! A backup made with its template (`--with-template`,
//! [`BackupRequest::template_tree`], [`BackupManifest::template_included`])
//! holds the template's tree first, as `template/...` members written by
//! the same walker under a template's rules (owners as they are, no
//! device nodes, only `security.capability` and `user.*`: [`writer`]), so
//! a host that lacks the template can make it ([`extract_template`])
//! through the template import's unpacker ([`extract`]). They come before
//! the layer so that the template can be made, and checked, before the
//! layer that lies on it is restored, in one pass for a backup read from a
//! pipe. The index lists only the layer; the end record counts and hashes
//! every member.
//!
//! The end record makes the stream self-checking: a stream that stops
//! before it is *truncated*; one whose content differs from what was
//! written fails a zstd checksum or the end record's hash, and one whose
//! compressed bytes differ at all (zstd tolerates a few changes that leave
//! the content alone) fails the footer's hash: both are *corrupt*
//! ([`BackupError`]). Streaming readers check all three as they go. The manifest comes first, alone in its frame, so
//! [`read_manifest`] reads a few kilobytes.
//!
//! # Incrementals
//!
//! [`read_index`] reads the base backup's index through the footer,
//! decompressing only frame 3 (a 1 GiB backup's index is read in
//! milliseconds), and falls back to reading the whole stream if the footer
//! is missing. A regular file whose inode, size, mtime and ctime are those
//! of the same path in the base is written as a metadata-only member marked
//! `KENNEL.unchanged=1`; everything else is written whole. Every backup
//! lists every path, so a path an incremental does not list was deleted.
//!
//! # Reading
//!
//! [`verify`] checks a stream end to end, the template's members included;
//! [`extract_template`] makes the template a backup holds;
//! [`restore_chain`] reads past the template's members and restores a full
//! backup and its incrementals into an empty directory through
//! [`crate::unpack`]'s layer flavor, shifting ids into the new VE's range,
//! removing what each incremental no longer lists, and checking each
//! backup's end record. What a restore refuses or skips (a path leaving
//! the layer, a device node, a foreign owner, a metadata-only copy, an
//! attribute) is counted by reason and summed up in one line
//! ([`RestoreReport::refused_summary`]) for the caller to show. Long
//! functions take a progress callback; nothing here prints.
//!
//! [`walk`] is also the walk of the id shift of a clone
//! ([`crate::volume::shift`]): one walker, one set of rules, for every
//! tree a tenant wrote.

mod base;
mod content;
mod error;
mod extract;
pub(crate) mod footer;
pub(crate) mod format;
mod frames;
pub mod ids;
mod index;
mod manifest;
mod meta;
mod prune;
mod reader;
mod restore;
pub(crate) mod sparse_map;
mod stream;
mod tar_out;
pub(crate) mod walk;
mod writer;
pub(crate) mod xattr_policy;
mod xattr_read;

#[cfg(test)]
mod tests;

pub use base::read_index;
pub use error::BackupError;
pub use extract::{extract_template, extract_template_report, TemplateExtract};
pub use format::FORMAT_VERSION;
pub use frames::Compression;
pub use ids::IdShift;
pub use index::{BaseIndex, EntryKind, Stamp};
pub use manifest::{BackupKind, BackupManifest, BaseRef, EndRecord, TemplateRef};
pub use reader::{manifest_of_stream, read_manifest, verify, VerifyReport};
pub use restore::{restore_chain, RestoreOptions, RestoreReport};
pub use writer::{write_backup, BackupReport, BackupRequest, Skipped, TemplateWritten};
