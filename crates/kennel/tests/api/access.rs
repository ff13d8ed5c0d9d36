//! Access: a tenant's token reaches only its VEs, and a foreign VE
//! answers exactly as a missing one on every endpoint; a viewer changes
//! nothing; revoked and wrong tokens are refused; failed attempts are
//! rate-limited.

use serde_json::json;

use crate::common::TestRoot;
use crate::service::{Answer, Service};

/// Every request on one VE: (method, path after `/v1/ves/ID`, body).
fn ve_endpoints() -> Vec<(&'static str, &'static str, Option<serde_json::Value>)> {
    vec![
        ("GET", "", None),
        ("GET", "/config", None),
        ("GET", "/stat", None),
        ("POST", "/actions/start", None),
        ("POST", "/actions/stop", None),
        ("POST", "/actions/restart", None),
        ("POST", "/actions/kill", None),
        ("PATCH", "", Some(json!({"hostname": "x"}))),
        ("DELETE", "", None),
    ]
}

fn same(a: &Answer, b: &Answer) -> bool {
    let strip = |s: &str, id: &str| s.replace(id, "ID");
    a.status == b.status
        && a.body["code"] == b.body["code"]
        && strip(a.body["message"].as_str().unwrap_or(""), "102")
            == strip(b.body["message"].as_str().unwrap_or(""), "999")
}

#[test]
fn a_tenant_reaches_only_its_own_ves() {
    let root = TestRoot::new("api-tenants");
    root.start_busybox("101", &["--storage", "dir"]);
    root.start_busybox("102", &["--storage", "dir"]);
    let svc = Service::start(&root);
    let acme = svc.token(
        &root,
        &["--tenant", "acme", "--ves", "101", "--role", "operator"],
    );
    let viewer = svc.token(
        &root,
        &["--tenant", "acme", "--ves", "101", "--role", "viewer"],
    );
    let other = svc.token(
        &root,
        &["--tenant", "other", "--ves", "102", "--role", "operator"],
    );

    // Listing: its own VEs only.
    let l = svc.get("/v1/ves", Some(&acme));
    let ids: Vec<&str> = l
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["id"].as_str())
        .collect();
    assert_eq!(ids, ["101"]);
    let host = svc.get("/v1/host", Some(&acme));
    assert_eq!(host.body["ves"], 1, "{host:?}");

    // Every endpoint: a foreign VE answers as a missing one.
    for (method, tail, body) in ve_endpoints() {
        let foreign = svc.call(
            method,
            &format!("/v1/ves/102{tail}"),
            Some(&acme),
            body.clone(),
        );
        let missing = svc.call(
            method,
            &format!("/v1/ves/999{tail}"),
            Some(&acme),
            body.clone(),
        );
        assert_eq!(foreign.status, 404, "{method} {tail}: {foreign:?}");
        assert!(
            same(&foreign, &missing),
            "{method} {tail}: {foreign:?} vs {missing:?}"
        );
    }
    assert_eq!(
        root.status("102")["state"],
        "running",
        "nothing happened to 102"
    );

    // Its own VE: an operator acts, but does not change limits or destroy.
    let r = svc.post("/v1/ves/101/actions/restart?timeout=5", Some(&acme), None);
    assert_eq!(r.status, 200, "{r:?}");
    for (method, path, body) in [
        (
            "PATCH",
            "/v1/ves/101",
            Some(json!({"resources": {"memory": "64G"}})),
        ),
        ("DELETE", "/v1/ves/101", None),
        (
            "POST",
            "/v1/ves",
            Some(json!({"id": "103", "template": "busybox"})),
        ),
        ("GET", "/v1/tokens", None),
        ("POST", "/v1/tokens", Some(json!({"role": "admin"}))),
        ("POST", "/v1/templates", Some(json!({"name": "t"}))),
    ] {
        let a = svc.call(method, path, Some(&acme), body);
        assert_eq!(
            (a.status.as_u16(), a.body["code"].as_str()),
            (403, Some("forbidden")),
            "{method} {path}: {a:?}"
        );
    }
    // A viewer reads, and changes nothing.
    assert_eq!(svc.get("/v1/ves/101", Some(&viewer)).status, 200);
    for action in ["start", "stop", "restart", "kill"] {
        let a = svc.post(
            &format!("/v1/ves/101/actions/{action}"),
            Some(&viewer),
            None,
        );
        assert_eq!(a.status, 403, "{action}: {a:?}");
    }
    assert_eq!(root.status("101")["state"], "running");
    // The other tenant sees only 102.
    assert_eq!(svc.get("/v1/ves/101", Some(&other)).status, 404);
    assert_eq!(svc.get("/v1/ves/102", Some(&other)).status, 200);
    drop(svc);
    root.finish();
}

#[test]
fn a_ve_made_again_under_a_granted_id_is_not_the_tenants() {
    let root = TestRoot::new("api-regrant");
    root.create_busybox("5", &["--storage", "dir"]);
    let svc = Service::start(&root);
    let acme = svc.token(
        &root,
        &["--tenant", "acme", "--ves", "5", "--role", "operator"],
    );
    assert_eq!(svc.get("/v1/ves/5", Some(&acme)).status, 200);
    root.ok(&["destroy", "5"]);
    root.create_busybox("5", &["--storage", "dir"]);
    for (method, tail, body) in ve_endpoints() {
        let a = svc.call(method, &format!("/v1/ves/5{tail}"), Some(&acme), body);
        assert_eq!(a.status, 404, "{method} {tail}: {a:?}");
    }
    assert_eq!(svc.get("/v1/ves", Some(&acme)).body, json!([]));
    assert_eq!(root.status("5")["state"], "stopped");
    drop(svc);
    root.finish();
}

#[test]
fn tokens_are_checked_revoked_and_guessing_is_slowed() {
    let root = TestRoot::new("api-tokens");
    let svc = Service::start(&root);
    let admin = svc.admin(&root);
    // A token made through the API works; its secret is not stored.
    let made = svc.post(
        "/v1/tokens",
        Some(&admin),
        Some(json!({"role": "viewer", "comment": "grafana"})),
    );
    assert_eq!(made.status, 201, "{made:?}");
    let viewer = made.body["token"].as_str().unwrap().to_string();
    let stored = std::fs::read_to_string(root.dir.join("lib/api/tokens.json")).unwrap();
    assert!(!stored.contains(&viewer[20..]), "only a hash is kept");
    assert_eq!(svc.get("/v1/ves", Some(&viewer)).status, 200);
    let list = svc.get("/v1/tokens", Some(&admin));
    assert_eq!(list.body.as_array().map(Vec::len), Some(2));
    assert!(list.text.find(&viewer[20..]).is_none());

    // Revoked: refused from the next request.
    let id = made.body["id"].as_str().unwrap();
    assert_eq!(
        svc.call("DELETE", &format!("/v1/tokens/{id}"), Some(&admin), None)
            .status,
        204
    );
    let a = svc.get("/v1/ves", Some(&viewer));
    assert_eq!(
        (a.status.as_u16(), a.body["code"].as_str()),
        (401, Some("unauthorized"))
    );
    // Revoked by the CLI too.
    let cli_made = svc.token(&root, &["--role", "viewer"]);
    assert_eq!(svc.get("/v1/ves", Some(&cli_made)).status, 200);
    let cli_id = &cli_made[3..19];
    root.ok(&["api", "token", "revoke", cli_id]);
    assert_eq!(svc.get("/v1/ves", Some(&cli_made)).status, 401);

    // Guessing: after ten failures from one address, even a good token
    // is turned away for a while.
    let wrong = format!("{}{}", &admin[..admin.len() - 4], "0000");
    // (The two revoked tokens above were failures already.)
    for _ in 0..8 {
        assert_eq!(svc.get("/v1/ves", Some(&wrong)).status, 401);
    }
    let a = svc.get("/v1/ves", Some(&admin));
    assert_eq!(
        (a.status.as_u16(), a.body["code"].as_str()),
        (429, Some("too_many_requests")),
        "{a:?}"
    );
    // The Unix socket is not limited.
    assert_eq!(svc.unix("GET", "/v1/ves").0, 200);
    let audit = svc.audit();
    assert!(audit
        .iter()
        .any(|e| e["action"] == "token.create" && e["result"] == "ok"));
    assert!(audit.iter().any(|e| e["action"] == "token.revoke"));
    drop(svc);
    root.finish();
}

#[test]
fn token_scopes_are_checked_by_the_cli() {
    let root = TestRoot::new("api-token-cli");
    root.create_busybox("9", &["--storage", "dir"]);
    root.fails(
        &[
            "api", "token", "create", "--tenant", "acme", "--ves", "9", "--role", "admin",
        ],
        2,
    );
    root.fails(&["api", "token", "create", "--tenant", "acme"], 2);
    root.fails(&["api", "token", "create", "--ves", "9"], 2);
    root.fails(
        &["api", "token", "create", "--tenant", "acme", "--ves", "404"],
        4,
    );
    root.fails(&["api", "token", "create", "--role", "root"], 2);
    root.fails(&["api", "token", "revoke", "nope"], 2);
    assert!(
        !root.dir.join("lib/api/tokens.json").exists(),
        "nothing was made"
    );
    let token = root.ok(&[
        "-q", "api", "token", "create", "--tenant", "acme", "--ves", "9", "--role", "operator",
    ]);
    assert!(token.trim().starts_with("kt_"), "{token}");
    let list = root.ok(&["api", "token", "list"]);
    assert!(
        list.contains("acme") && list.contains("operator") && !list.contains(&token.trim()[20..]),
        "{list}"
    );
    root.finish();
}
