//! Building this test builds the `kenneld` binary (`cargo test
//! --workspace`), which the API tests in crates/kennel/tests/api start;
//! and the binary prints its OpenAPI document without any state.
#![allow(clippy::expect_used)]

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_kenneld");

#[test]
fn prints_its_openapi_document() {
    let out = Command::new(BIN).arg("openapi").output().expect("run");
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(doc["info"]["title"], "Kennel API");
    assert!(doc["paths"]["/v1/ves"].is_object());
}
