//! Template tarballs (`kennel template import`): sniffing the compression,
//! decompressing, and the safe unpack, run for real into a tmpfs
//! directory.
//!
//! The unpack's safety lies in the system calls it makes (`openat2`
//! resolving in the destination, `O_NOFOLLOW`, `linkat` of checked
//! targets), not in a validation layer that could be fuzzed apart, so the
//! target unpacks for real and then looks at what is on disk. It needs
//! root, as imports do (members are chowned).

mod input;

use std::io::Cursor;
use std::path::Path;

use kennel_storage::template::decompressed;
use kennel_storage::unpack::unpack;

use crate::scratch::{Rules, Scratch};
use input::Input;

pub(crate) use input::mend;

/// Highest uid and gid a VE maps.
const MAX_OWNER: u32 = 65535;

/// See [`input`] for what the bytes mean.
pub fn run(data: &[u8]) {
    let scratch = Scratch::new();
    let Some(input) = Input::decode(data, &scratch.outside()) else {
        scratch.remove();
        return;
    };
    let name = Path::new("template.tar");
    let accepted = decompressed(Cursor::new(input.file), name)
        .and_then(|r| unpack(r, &scratch.dest(), &input.limits))
        .is_ok();
    let rules = Rules {
        max_names: input.limits.max_entries,
        uids: 0..=MAX_OWNER,
        gids: 0..=MAX_OWNER,
        layer: false,
        accepted,
    };
    let tree = scratch.check(&rules);
    assert!(
        tree.bytes <= input.limits.max_bytes,
        "{} bytes of files unpacked, past the limit of {} (accepted: {accepted})",
        tree.bytes,
        input.limits.max_bytes
    );
    scratch.remove();
}
