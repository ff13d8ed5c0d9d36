//! Every VE endpoint through a real HTTPS client, checked against what
//! the CLI (the same library) sees; errors as JSON; the Unix socket; a
//! crash of the service loses no VE.

use serde_json::json;

use crate::common::{secs, wait_for, TestRoot};
use crate::service::Service;

#[test]
fn the_api_drives_a_ves_whole_life_and_agrees_with_the_cli() {
    let root = TestRoot::new("api-ves");
    root.busybox();
    let svc = Service::start(&root);
    let admin = svc.admin(&root);
    let t = Some(admin.as_str());

    let a = svc.post(
        "/v1/ves",
        t,
        Some(json!({"id": "101", "template": "busybox", "storage": "dir",
                    "hostname": "web", "resources": {"memory": "128M", "numproc": "64"}})),
    );
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(a.body["state"], "stopped");
    assert_eq!(root.config("101")["hostname"], "web");

    let list = svc.get("/v1/ves", t);
    assert_eq!(list.status, 200);
    assert_eq!(list.body.as_array().map(Vec::len), Some(1), "{list:?}");

    let started = svc.post("/v1/ves/101/actions/start", t, None);
    assert_eq!(started.status, 200, "{started:?}");
    assert_eq!(started.body["result"], "started");
    let pid = started.body["init_pid"].as_i64().expect("pid");
    assert_eq!(
        root.init_pid("101") as i64,
        pid,
        "the CLI sees the init the API started"
    );

    let got = svc.get("/v1/ves/101", t);
    assert_eq!(got.body["running"], true, "{got:?}");
    assert_eq!(got.body["init_pid"].as_i64(), Some(pid));
    let running = svc.get("/v1/ves?state=running", t);
    assert_eq!(running.body.as_array().map(Vec::len), Some(1));
    let stat = svc.get("/v1/ves/101/stat", t);
    assert_eq!(stat.status, 200, "{stat:?}");
    assert!(
        stat.body["memory"]["held"].as_u64().unwrap_or(0) > 0,
        "{stat:?}"
    );
    assert_eq!(stat.body["processes"]["limit"].as_u64(), Some(64));
    let cfg = svc.get("/v1/ves/101/config", t);
    assert_eq!(cfg.body["hostname"], "web", "{cfg:?}");

    let set = svc.call("PATCH", "/v1/ves/101", t, Some(json!({"hostname": "shop"})));
    assert_eq!(set.status, 200, "{set:?}");
    assert_eq!(root.config("101")["hostname"], "shop");
    assert_eq!(
        root.sh("101", "hostname").trim(),
        "shop",
        "applied to the running VE"
    );
    let boot = svc.call(
        "PATCH",
        "/v1/ves/101",
        t,
        Some(json!({"onboot": true, "boot_order": "10"})),
    );
    assert_eq!(
        (
            boot.body["onboot"].as_bool(),
            boot.body["boot_order"].as_i64()
        ),
        (Some(true), Some(10)),
        "{boot:?}"
    );
    assert_eq!(root.config("101")["boot"]["onboot"], true);

    let again = svc.post("/v1/ves/101/actions/start", t, None);
    assert_eq!(
        (again.status.as_u16(), again.body["code"].as_str()),
        (409, Some("running"))
    );

    let restarted = svc.post("/v1/ves/101/actions/restart?timeout=10", t, None);
    assert_eq!(restarted.body["result"], "restarted", "{restarted:?}");
    let new_pid = restarted.body["init_pid"].as_i64().expect("pid");
    assert_ne!(new_pid, pid);

    let stopped = svc.post("/v1/ves/101/actions/stop?timeout=20", t, None);
    assert_eq!(stopped.body["result"], "stopped", "{stopped:?}");
    assert_eq!(root.status("101")["state"], "stopped");
    let stat = svc.get("/v1/ves/101/stat", t);
    assert_eq!(
        (stat.status.as_u16(), stat.body["code"].as_str()),
        (409, Some("not_running"))
    );

    assert_eq!(svc.post("/v1/ves/101/actions/start", t, None).status, 200);
    let killed = svc.post("/v1/ves/101/actions/kill", t, None);
    assert_eq!(killed.body["result"], "killed", "{killed:?}");

    let gone = svc.call("DELETE", "/v1/ves/101", t, None);
    assert_eq!(gone.status, 204, "{gone:?}");
    root.fails(&["config", "101"], 4);
    let missing = svc.get("/v1/ves/101", t);
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["code"], "no_such_ve");

    let audit = svc.audit();
    let actions: Vec<&str> = audit.iter().filter_map(|e| e["action"].as_str()).collect();
    for want in [
        "ve.create",
        "ve.start",
        "ve.set",
        "ve.restart",
        "ve.stop",
        "ve.kill",
        "ve.destroy",
    ] {
        assert!(
            actions.contains(&want),
            "{want} in the audit log: {actions:?}"
        );
    }
    let refused = audit
        .iter()
        .find(|e| e["action"] == "ve.start" && e["result"] == "error")
        .expect("the refused start is logged too");
    assert_eq!(refused["code"], "running");
    assert!(
        refused["who"].as_str().unwrap_or("").starts_with("token "),
        "{refused}"
    );
    drop(svc);
    root.finish();
}

#[test]
fn errors_are_json_with_a_stable_code() {
    let root = TestRoot::new("api-errors");
    let svc = Service::start(&root);
    let admin = svc.admin(&root);
    let t = Some(admin.as_str());
    let cases = [
        svc.post("/v1/ves/999/actions/start", t, None),
        svc.post("/v1/ves/BAD!/actions/start", t, None),
        svc.post("/v1/ves/999/actions/dance", t, None),
        svc.post("/v1/ves", t, Some(json!({"id": "1"}))),
        svc.post(
            "/v1/ves",
            t,
            Some(json!({"id": "1", "template": "none", "resources": {"memory": "lots"}})),
        ),
        svc.post(
            "/v1/ves",
            t,
            Some(json!({"id": "1", "template": "busybox", "hostname": "a\u{0}b"})),
        ),
        svc.send(
            svc.request(reqwest::Method::POST, "/v1/ves", t)
                .header("content-type", "application/json")
                .body("{"),
        ),
        svc.get("/v1/nothing", t),
        svc.call("PUT", "/v1/ves", t, None),
        svc.get("/v1/ves", None),
    ];
    let want = [
        (404, "no_such_ve"),
        (400, "bad_input"),
        (400, "bad_input"),
        (400, "bad_input"),
        (400, "bad_input"),
        (400, "bad_input"),
        (400, "bad_input"),
        (404, "not_found"),
        (405, "method_not_allowed"),
        (401, "unauthorized"),
    ];
    for (a, (status, code)) in cases.iter().zip(want) {
        assert_eq!(a.status.as_u16(), status, "{a:?}");
        assert_eq!(a.body["code"], code, "{a:?}");
        assert!(a.content_type.starts_with("application/json"), "{a:?}");
        assert!(
            !a.body["message"].as_str().unwrap_or("").is_empty(),
            "{a:?}"
        );
    }
    // A body over the limit is refused before it is read: the answer may
    // beat the rest of the body, and the client then sees the connection
    // close under its write instead.
    let huge = svc
        .request(reqwest::Method::POST, "/v1/ves", t)
        .header("content-type", "application/json")
        .body(vec![b' '; 2 << 20])
        .send();
    if let Ok(r) = huge {
        assert_eq!(r.status(), 413);
        let body: serde_json::Value = r.json().expect("json");
        assert_eq!(body["code"], "payload_too_large");
    }
    assert!(
        svc.audit().iter().all(|e| e["result"] == "error"),
        "nothing was changed"
    );
    root.ok(&["list", "--all"]);
    assert!(!root.dir.join("lib/ve/1").exists(), "no half-made VE");
    drop(svc);
    root.finish();
}

#[test]
fn the_unix_socket_is_roots_and_a_killed_service_loses_no_ve() {
    let root = TestRoot::new("api-unix");
    root.start_busybox("7", &["--storage", "dir"]);
    let mut svc = Service::start(&root);
    let mode = std::fs::metadata(&svc.socket).map(|m| {
        use std::os::unix::fs::PermissionsExt;
        m.permissions().mode() & 0o777
    });
    assert_eq!(mode.ok(), Some(0o600));
    let (code, body) = svc.unix("GET", "/v1/ves");
    assert_eq!(code, 200, "{body}");
    assert_eq!(body[0]["id"], "7");
    let (code, body) = svc.unix("POST", "/v1/ves/7/actions/restart?timeout=5");
    assert_eq!(code, 200, "{body}");
    let pid = root.init_pid("7");
    assert_eq!(body["init_pid"].as_i64(), Some(pid as i64));

    svc.crash();
    assert_eq!(
        root.status("7")["state"],
        "running",
        "the VE outlives the service"
    );
    assert_eq!(root.init_pid("7"), pid);
    let svc = Service::start(&root);
    let admin = svc.admin(&root);
    let got = svc.get("/v1/ves/7", Some(&admin));
    assert_eq!(got.body["init_pid"].as_i64(), Some(pid as i64), "{got:?}");
    // The service's own stop leaves the VE running too.
    drop(svc);
    assert!(wait_for(secs(1), || root.status("7")["state"] == "running"));
    root.finish();
}

#[test]
fn templates_build_as_jobs() {
    let root = TestRoot::new("api-templates");
    let svc = Service::start_with(&root, &["--max-upload", "2000000"]);
    let admin = svc.admin(&root);
    let t = Some(admin.as_str());
    let job = svc.post(
        "/v1/templates",
        t,
        Some(json!({"name": "bb", "from": "busybox"})),
    );
    assert_eq!(job.status, 202, "{job:?}");
    let id = job.body["id"].as_u64().expect("job id");
    let mut state = String::new();
    assert!(wait_for(secs(120), || {
        state = svc.get(&format!("/v1/jobs/{id}"), t).body["state"]
            .as_str()
            .unwrap_or("")
            .to_string();
        state != "running"
    }));
    assert_eq!(state, "succeeded");
    let list = svc.get("/v1/templates", t);
    assert_eq!(list.body[0]["name"], "bb", "{list:?}");
    let bad = svc.post(
        "/v1/templates",
        t,
        Some(json!({"name": "x", "from": "windows"})),
    );
    let bad_id = bad.body["id"].as_u64().expect("job id");
    assert!(wait_for(secs(30), || svc
        .get(&format!("/v1/jobs/{bad_id}"), t)
        .body["state"]
        == "failed"));
    let failed = svc.get(&format!("/v1/jobs/{bad_id}"), t);
    assert!(
        failed.body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("windows"),
        "{failed:?}"
    );
    upload_a_template(&root, &svc, t);
    assert_eq!(svc.call("DELETE", "/v1/templates/bb", t, None).status, 204);
    assert_eq!(
        svc.get("/v1/templates", t).body.as_array().map(Vec::len),
        Some(0)
    );
    drop(svc);
    root.finish();
}

/// A tarball of template bb's tree, uploaded as template `up`: a VE
/// made from it starts. Too large, a taken name, no body or a tenant's
/// token: refused, and nothing is left of any upload.
fn upload_a_template(root: &TestRoot, svc: &Service, t: Option<&str>) {
    use reqwest::Method;
    let tarball = std::process::Command::new("tar")
        .arg("-C")
        .arg(root.dir.join("lib/templates/bb/rootfs"))
        .args(["-czf", "-", "."])
        .output()
        .expect("tar");
    assert!(tarball.status.success(), "{tarball:?}");
    let put = |name: &str, token: Option<&str>, body: Vec<u8>| {
        svc.send(
            svc.request(Method::PUT, &format!("/v1/templates/{name}"), token)
                .header("content-type", "application/octet-stream")
                .body(body),
        )
    };
    let job = put("up", t, tarball.stdout.clone());
    assert_eq!(job.status, 202, "{job:?}");
    let id = job.body["id"].as_u64().expect("job id");
    assert!(wait_for(secs(120), || svc
        .get(&format!("/v1/jobs/{id}"), t)
        .body["state"]
        != "running"));
    let done = svc.get(&format!("/v1/jobs/{id}"), t);
    assert_eq!(done.body["state"], "succeeded", "{done:?}");
    let made = svc.post(
        "/v1/ves",
        t,
        Some(json!({"id": "31", "template": "up", "storage": "dir"})),
    );
    assert!(made.status.is_success(), "{made:?}");
    let started = svc.post("/v1/ves/31/actions/start", t, None);
    assert!(started.status.is_success(), "{started:?}");
    assert_eq!(
        svc.get("/v1/ves/31", t).body["state"],
        "running",
        "a VE of the uploaded template runs"
    );
    svc.post("/v1/ves/31/actions/kill", t, None);
    assert_eq!(svc.call("DELETE", "/v1/ves/31", t, None).status, 204);

    // Refusals come before the body is read: a small one, so that the
    // client is not cut off while still sending it.
    let small = tarball.stdout[..512].to_vec();
    assert_eq!(put("up", t, small.clone()).status, 409);
    // Larger than --max-upload: refused by its Content-Length, before a
    // byte of it is read (curl waits for `100 Continue`, as clients of
    // large uploads do, so it is not even sent).
    let big = root.dir.join("big.tar");
    std::fs::write(&big, vec![0u8; 2_100_000]).expect("write");
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--unix-socket",
        ])
        .arg(&svc.socket)
        .arg("-T")
        .arg(&big)
        .arg("http://kenneld/v1/templates/big")
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "413", "{out:?}");
    std::fs::remove_file(&big).expect("remove");
    assert_eq!(put("empty", t, Vec::new()).status, 400);
    let acme = svc.token(root, &["--role", "operator"]);
    assert_eq!(put("mine", Some(&acme), small).status, 403);
    let uploads = std::fs::read_dir(root.dir.join("lib/api/uploads"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(uploads, 0, "an upload left behind");
    assert_eq!(svc.call("DELETE", "/v1/templates/up", t, None).status, 204);
}

#[test]
fn a_tenant_reinstalls_its_own_ve_keeping_what_it_asks() {
    let root = TestRoot::new("api-reinstall");
    // Reinstall works on a VE with a disk of its own (the default).
    root.start_busybox("8", &["--disk", "1G"]);
    root.create_busybox("9", &["--storage", "dir"]);
    root.sh(
        "8",
        "mkdir -p /root && echo mine > /root/keep && echo junk > /etc/junk",
    );
    let svc = Service::start(&root);
    let acme = svc.token(
        &root,
        &["--tenant", "acme", "--ves", "8", "--role", "operator"],
    );
    let t = Some(acme.as_str());
    assert_eq!(
        svc.post("/v1/ves/9/reinstall", t, Some(json!({}))).status,
        404
    );
    let job = svc.post(
        "/v1/ves/8/reinstall",
        t,
        Some(json!({"keep": ["/root"], "timeout": 10})),
    );
    assert_eq!(job.status, 202, "{job:?}");
    let id = job.body["id"].as_u64().expect("job id");
    let mut state = String::new();
    assert!(wait_for(secs(120), || {
        state = svc.get(&format!("/v1/jobs/{id}"), t).body["state"]
            .as_str()
            .unwrap_or("")
            .to_string();
        state != "running"
    }));
    assert_eq!(
        state,
        "succeeded",
        "{:?}",
        svc.get(&format!("/v1/jobs/{id}"), t)
    );
    assert_eq!(
        root.status("8")["state"],
        "running",
        "a running VE runs again"
    );
    assert_eq!(root.sh("8", "cat /root/keep").trim(), "mine");
    assert_eq!(
        root.sh("8", "test -e /etc/junk && echo there || echo gone")
            .trim(),
        "gone"
    );
    assert!(svc
        .audit()
        .iter()
        .any(|e| e["action"] == "ve.reinstall" && e["result"] == "ok"));
    drop(svc);
    root.finish();
}

/// A password set through the API reaches the VE's own `chpasswd` on its
/// standard input, as `USER:PASSWORD`, and is nowhere else: not in the
/// audit log, not in the service's log. (The real `chpasswd` is the
/// CLI's test, `features::userpasswd_sets_a_password_with_the_ves_own_chpasswd`;
/// busybox has none, so one that keeps what it reads stands in.)
#[test]
fn a_tenant_sets_a_password_in_its_own_ve_by_the_ves_chpasswd() {
    let root = TestRoot::new("api-password");
    root.start_busybox("8", &["--storage", "dir"]);
    root.start_busybox("9", &["--storage", "dir"]);
    root.sh(
        "8",
        "mkdir -p /usr/sbin && printf '#!/bin/sh\\ncat > /root/chpasswd.in\\n' > /usr/sbin/chpasswd && chmod 755 /usr/sbin/chpasswd",
    );
    let svc = Service::start(&root);
    let acme = svc.token(
        &root,
        &["--tenant", "acme", "--ves", "8", "--role", "operator"],
    );
    let secret = format!("Pw-{}-unique x", std::process::id());
    let set = |ve: &str, body: serde_json::Value| {
        svc.post(&format!("/v1/ves/{ve}/password"), Some(&acme), Some(body))
    };
    let a = set("8", json!({"user": "root", "password": secret}));
    assert_eq!(a.status, 204, "{a:?}");
    assert_eq!(
        root.sh("8", "cat /root/chpasswd.in"),
        format!("root:{secret}\n")
    );
    // Another tenant's VE is missing; a password of two lines, or an
    // option for a user, is refused before anything runs.
    assert_eq!(
        set("9", json!({"user": "root", "password": "x"})).status,
        404
    );
    for bad in [
        json!({"user": "root", "password": "a\nroot:b"}),
        json!({"user": "--root", "password": "x"}),
        json!({"user": "root:x", "password": "x"}),
    ] {
        let a = set("8", bad.clone());
        assert_eq!(a.status, 400, "{bad}: {a:?}");
    }
    // A VE without chpasswd says so.
    let admin = svc.admin(&root);
    let a = svc.post(
        "/v1/ves/9/password",
        Some(&admin),
        Some(json!({"user": "root", "password": "x"})),
    );
    assert_eq!(a.status, 400, "{a:?}");
    assert!(
        a.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("chpasswd"),
        "{a:?}"
    );
    let audit = svc.audit();
    assert!(
        audit.iter().any(|l| l["action"] == "ve.password"),
        "{audit:?}"
    );
    let everything = format!("{audit:?}");
    assert!(
        !everything.contains(&secret),
        "the audit log holds the password"
    );
    root.sh("8", "rm /root/chpasswd.in");
    drop(svc);
    let grep = std::process::Command::new("grep")
        .args(["-rl", &secret])
        .arg(root.dir.join("lib"))
        .arg(root.dir.join("run"))
        .output()
        .expect("grep");
    assert!(grep.stdout.is_empty(), "{grep:?}");
    root.finish();
}
