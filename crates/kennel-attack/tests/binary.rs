//! Building this test builds the binary (`cargo test --workspace`), which
//! the security suite copies into VEs; and the binary answers.
#![allow(clippy::expect_used)]

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_kennel-attack");

#[test]
fn lists_its_probes_and_rejects_unknown_ones() {
    let help = Command::new(BIN).arg("help").output().expect("run");
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("open-by-handle"));
    let bad = Command::new(BIN)
        .arg("no-such-probe")
        .output()
        .expect("run");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stdout).starts_with("ERROR "));
}

#[test]
fn is_static() {
    // The VE has no host libraries: the binary must need none.
    let out = Command::new("ldd").arg(BIN).output().expect("ldd");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("not a dynamic executable") || text.contains("statically linked"),
        "{text}"
    );
}
