//! The per-VE monitor program (see the `kennel-monitor` crate). Started by
//! `kennel start`, never by hand.
//!
//! It enters at the C library's `main`, without Rust's runtime set-up:
//! that set-up finds the main thread's stack guard by reading
//! `/proc/self/maps` (a heap buffer and stack frames that stay dirty in
//! every monitor) and maps an alternate signal stack, only to print a
//! message should the stack overflow. The monitor's few frames never come
//! near that; it ignores `SIGPIPE` already (inherited from `kennel`, and it
//! sends with `MSG_NOSIGNAL`), and the C library hands the arguments to
//! `std::env::args` as before.
#![no_main]

use std::ffi::{c_char, c_int};

#[no_mangle]
extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    kennel_monitor::main()
}
