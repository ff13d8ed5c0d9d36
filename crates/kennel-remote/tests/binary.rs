//! Building this test builds the `kennel-remote` binary (`cargo test
//! --workspace`), which `kennel --remote` runs (crates/kennel/tests/api:
//! against a real service); and its refusals need no service.
#![allow(clippy::expect_used)]

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_kennel-remote");

#[test]
fn refuses_plain_http_and_a_missing_token_in_one_line() {
    let plain = Command::new(BIN)
        .args(["--remote", "http://127.0.0.1:1", "list"])
        .env("KENNEL_TOKEN", "kt_x")
        .output()
        .expect("run");
    assert_eq!(plain.status.code(), Some(2));
    let err = String::from_utf8_lossy(&plain.stderr);
    assert!(
        err.starts_with("kennel: ") && err.contains("https://"),
        "{err}"
    );
    let no_token = Command::new(BIN)
        .args(["--remote", "https://127.0.0.1:1", "list"])
        .env_remove("KENNEL_TOKEN")
        .output()
        .expect("run");
    assert_eq!(no_token.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&no_token.stderr).contains("KENNEL_TOKEN"));
}
