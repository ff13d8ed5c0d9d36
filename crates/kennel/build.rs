//! Links the `kennel-monitor` program as a position-dependent static
//! executable without the C library's start files or libraries: it brings
//! its own entry point (`kennel_monitor::program!`). Position-dependent,
//! so that no relocation dirties a page in any of the thousands of
//! monitors; `kennel` itself stays a static PIE (`.cargo/config.toml`).
fn main() {
    for arg in [
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-Wl,--no-pie",
        "-Wl,--no-dynamic-linker",
    ] {
        println!("cargo:rustc-link-arg-bin=kennel-monitor={arg}");
    }
}
