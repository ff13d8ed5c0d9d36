//! The bodies of Kennel's fuzz targets: one function per parser family of
//! untrusted input, each taking the fuzzer's bytes and panicking when an
//! accepted input breaks a property the parser promises.
//!
//! They live here, in an ordinary workspace crate, and not in `fuzz/`
//! (cargo-fuzz's own workspace, built with coverage instrumentation) so
//! that one body serves both: `fuzz/fuzz_targets/*.rs` hand libFuzzer's
//! inputs to these functions, and `cargo test` (tests/corpus.rs) replays
//! every file of `fuzz/corpus/<target>/` through them. A regression of
//! anything the fuzzer ever found is caught by the plain test run, with no
//! fuzzer installed.
//!
//! "No panic" is the least each target checks; where a property exists it
//! is asserted too:
//! * values that print (sizes, rates, MACs, forwards) re-parse to the same
//!   value, and an exact integer is taken exactly;
//! * an accepted `ve.conf` serialises and re-parses to the same value, and
//!   holds nothing `kennel create`/`kennel set` would refuse;
//! * an accepted `kennel.toml` holds only usable values;
//! * an accepted tarball, unpacked into a tmpfs directory, created nothing
//!   outside it, no device node, no file owned outside 0-65535, and stayed
//!   within the limits;
//! * a backup (or a full backup and an incremental), restored into a tmpfs
//!   directory, likewise kept to it, to whiteouts for device nodes, to the
//!   restored VE's ids and to the limits; and `verify` accepts every backup
//!   a restore accepted.

pub mod backup;
pub mod host_conf;
pub mod net;
mod scratch;
pub mod tarball;
pub mod units;
pub mod ve_conf;

/// A fuzz target: its name (the directory of its corpus and the file in
/// `fuzz/fuzz_targets/`) and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, in the order `tests/fuzz.sh` runs them.
pub const TARGETS: &[Target] = &[
    ("tarball", tarball::run),
    ("backup", backup::run),
    ("ve_conf", ve_conf::run),
    ("host_conf", host_conf::run),
    ("units", units::run),
    ("address", net::address),
    ("rate", net::rate),
    ("forward", net::forward),
    ("netif", net::netif),
];

/// The input as text: every parser here takes UTF-8 only (command-line
/// values and TOML files), so other bytes never reach it.
pub(crate) fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}
