//! The per-VE monitor program (see the `kennel-monitor` crate). Started by
//! `kennel start`, never by hand.

fn main() {
    kennel_monitor::main()
}
