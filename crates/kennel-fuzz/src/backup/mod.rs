//! Backups given to `kennel restore`: the stream reader, `verify`, and
//! `restore_chain` run for real into a tmpfs directory.
//!
//! As with template tarballs, the restore is safe because of the system
//! calls the shared unpacker makes, so the target restores and then looks
//! at what is on disk: nothing made or changed outside the destination
//! (canaries next to it and above it, links aimed at them), no device
//! node but whiteouts (char 0/0), every owner in the restored VE's range,
//! no more names than the member limit and no more file bytes written
//! than the byte limit (each per backup of the chain). And `verify` must
//! accept every backup of a chain that `restore_chain` accepted without
//! refusing or skipping a member: what a restore takes whole, a check of
//! the file may not refuse. (A restore that refused members, a `..` name
//! say, still succeeds by design, the rest of the backup being the
//! tenant's, while `verify` calls such a stream corrupt: that difference
//! is not asserted.) It needs root, as restores do (members are chowned).
//!
//! `cargo test -p kennel-fuzz --test backup_seeds -- --ignored` writes the
//! seeds of `fuzz/corpus/backup/` (see `tests/backup_seeds.rs`).

mod input;

use std::io::Cursor;

use kennel_storage::backup::{restore_chain, verify, IdShift, RestoreOptions};

use crate::scratch::{Rules, Scratch};
use input::Input;

/// Where the restored VE's ids start: uids and gids apart, so that one
/// taken for the other shows.
pub const IDS: IdShift = IdShift {
    uid_base: 200_000,
    gid_base: 300_000,
};

/// Highest id a VE maps, relative to its base.
const MAX_RELATIVE: u32 = 65535;

/// See [`input`] for what the bytes mean.
pub fn run(data: &[u8]) {
    let scratch = Scratch::new();
    let Some(input) = Input::decode(data, &scratch.outside()) else {
        scratch.remove();
        return;
    };
    let opts = RestoreOptions {
        over_prepared: false,
        ids: IDS,
        limits: input.limits,
    };
    let restored = restore_chain(
        input.files.iter().map(|f| Cursor::new(f.as_slice())),
        &scratch.dest(),
        &opts,
        &|_| {},
    );
    let accepted = restored.is_ok();
    // Restored, and nothing refused or skipped.
    let whole = restored.as_ref().is_ok_and(|r| {
        r.unpacked
            .iter()
            .all(|u| u.refused_count == 0 && u.devices == 0)
    });
    let chain = input.files.len() as u64;
    let rules = Rules {
        max_names: input.limits.max_entries.saturating_mul(chain),
        uids: IDS.uid_base..=IDS.uid_base + MAX_RELATIVE,
        gids: IDS.gid_base..=IDS.gid_base + MAX_RELATIVE,
        layer: true,
        accepted,
    };
    let tree = scratch.check(&rules);
    let max_bytes = input.limits.max_bytes.saturating_mul(chain);
    assert!(
        tree.written <= max_bytes,
        "at least {} bytes of files written, past the limit of {} for {chain} backup(s) \
         (accepted: {accepted})",
        tree.written,
        max_bytes
    );
    for (n, file) in input.files.iter().enumerate() {
        let checked = verify(Cursor::new(file.as_slice()), &|_| {});
        if let (true, Err(e)) = (whole, &checked) {
            panic!(
                "backup {} of {chain} was restored whole, yet verify refuses it: {e}",
                n + 1
            );
        }
    }
    scratch.remove();
}
