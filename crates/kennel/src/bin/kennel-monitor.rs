//! The per-VE monitor program (see the `kennel-monitor` crate). Started by
//! `kennel start`, never by hand.
//!
//! It runs without the C library and without `std`: a position-dependent
//! static executable (the link arguments are in `build.rs`) entering at
//! its own `_start`, which the crate's `program!` expands here, with the
//! panic handler and the memory functions. Why: docs/DENSITY.md ("Memory
//! per VE") and `kennel_monitor::rt`.
//! (Under `cargo clippy --all-targets` it is also checked as a test
//! harness, which brings `std`: nothing of it is built then.)
#![cfg_attr(not(test), no_std)]
#![cfg_attr(not(test), no_main)]

#[cfg(not(test))]
kennel_monitor::program!();
