//! A hostile tenant against the API (a review by someone who did not
//! write it): each test is one attack that worked, kept as the probe
//! that shows it no longer does.
//!
//! * a VE command that writes without end made `kennel exec` and kenneld
//!   copy its output at pipe speed, on the host's CPU, for the whole of
//!   its timeout (up to an hour, 8 such per tenant);
//! * job ids were one sequence over all callers, so a tenant's two jobs
//!   told how many jobs others (other tenants, the host) ran between;
//! * a tenant's operator could keep making backups of its VE until the
//!   backup directory's filesystem was nearly full, and then nobody's
//!   backup could be made (507 for every tenant).

use std::time::Instant;

use serde_json::{json, Value};

use crate::common::{secs, wait_for, TestRoot};
use crate::service::{Answer, Service};

/// Runs the job `a` answered with to its end (succeeded): its id.
fn job_id(svc: &Service, t: Option<&str>, a: &Answer) -> u64 {
    svc.job_ok(t, a)["id"].as_u64().expect("a job id")
}

#[test]
fn review_a_ve_writing_without_end_is_cut_off_not_copied_for_its_whole_timeout() {
    let root = TestRoot::new("api-review-flood");
    root.start_busybox("61", &["--storage", "dir"]);
    let svc = Service::start(&root);
    let op = svc.token(
        &root,
        &["--tenant", "acme", "--ves", "61", "--role", "operator"],
    );
    let began = Instant::now();
    let flood = svc.post(
        "/v1/ves/61/exec",
        Some(&op),
        Some(json!({"command": ["cat", "/dev/zero"], "timeout_secs": 60})),
    );
    let took = began.elapsed();
    assert_eq!(flood.status, 200, "{flood:?}");
    let bytes = flood.body["stdout"]["bytes"].as_u64().expect("bytes");
    assert_eq!(flood.body["stdout"]["truncated"], true, "{flood:?}");
    assert_eq!(
        flood.body["timed_out"], false,
        "ended by the bound on output, not its timeout ({bytes} bytes copied in {took:?})"
    );
    assert!(
        bytes <= 300 << 20,
        "at most the bound read: {bytes} bytes in {took:?}"
    );
    // Without a reader, `cat` ends by SIGPIPE (or EPIPE).
    assert!(took < secs(40), "{took:?}");
    assert!(
        wait_for(secs(10), || !root
            .sh("61", "ps -o args")
            .contains("cat /dev/zero")),
        "nothing left in the VE"
    );
    drop(svc);
    root.finish();
}

#[test]
fn review_job_ids_do_not_count_the_jobs_of_others() {
    let root = TestRoot::new("api-review-jobs");
    root.create_busybox("62", &["--disk", "1G"]);
    root.create_busybox("63", &["--disk", "1G"]);
    let svc = Service::start(&root);
    let admin = svc.admin(&root);
    let op = svc.token(
        &root,
        &["--tenant", "acme", "--ves", "62", "--role", "operator"],
    );
    let (a, t) = (Some(admin.as_str()), Some(op.as_str()));
    let first = job_id(&svc, t, &svc.post("/v1/ves/62/backups", t, Some(json!({}))));
    // Others' work in between: three jobs the tenant cannot see.
    for _ in 0..3 {
        job_id(&svc, a, &svc.post("/v1/ves/63/backups", a, Some(json!({}))));
    }
    let second = job_id(&svc, t, &svc.post("/v1/ves/62/backups", t, Some(json!({}))));
    assert_ne!(first, second);
    assert!(
        second.abs_diff(first) > 1_000_000,
        "job ids {first} and {second}: their distance tells how many jobs others ran"
    );
    // Each still reads only its own, and a guessed neighbour is missing.
    let mine = svc.get("/v1/jobs", t);
    let ids: Vec<u64> = mine
        .body
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|j| j["id"].as_u64())
        .collect();
    assert_eq!(ids, [first, second], "the tenant's own, oldest first");
    let all = svc.get("/v1/jobs", a);
    assert_eq!(all.body.as_array().map(Vec::len), Some(5), "{all:?}");
    assert_eq!(all.body[0]["id"].as_u64(), Some(first), "oldest first");
    assert_eq!(svc.get(&format!("/v1/jobs/{}", second + 1), t).status, 404);
    for j in all.body.as_array().into_iter().flatten() {
        let id = j["id"].as_u64().expect("id");
        assert!(id < 1 << 53, "an id a JSON client reads exactly: {id}");
    }
    drop(svc);
    root.finish();
}

#[test]
fn review_a_tenant_cannot_fill_the_backup_directory_with_backups_of_one_ve() {
    let root = TestRoot::new("api-review-backups");
    root.create_busybox("64", &["--disk", "1G"]);
    root.create_busybox("65", &["--disk", "1G"]);
    let svc = Service::start_with(&root, &["--backups-per-ve", "2"]);
    let admin = svc.admin(&root);
    let op = svc.token(
        &root,
        &["--tenant", "acme", "--ves", "64", "--role", "operator"],
    );
    let (a, t) = (Some(admin.as_str()), Some(op.as_str()));
    for _ in 0..2 {
        job_id(&svc, t, &svc.post("/v1/ves/64/backups", t, Some(json!({}))));
    }
    let third = svc.post("/v1/ves/64/backups", t, Some(json!({})));
    assert_eq!(
        (third.status.as_u16(), third.body["code"].as_str()),
        (409, Some("too_many_backups")),
        "{third:?}"
    );
    // The bound is the VE's, not the host's: another VE's backup runs.
    job_id(&svc, a, &svc.post("/v1/ves/65/backups", a, Some(json!({}))));
    // Deleting one makes room again.
    let list = svc.get("/v1/backups?ve=64", t);
    let oldest = list.body[0]["name"].as_str().expect("a name").to_string();
    let del = svc.call("DELETE", &format!("/v1/backups/{oldest}"), t, None);
    assert_eq!(del.status, 204, "{del:?}");
    job_id(&svc, t, &svc.post("/v1/ves/64/backups", t, Some(json!({}))));
    drop(svc);
    root.finish();
}

/// A snapshot is a reflink copy of the VE's image in the pool all disks
/// share: after each snapshot the VE can rewrite its disk and so hold
/// another disk's worth of the pool. Unbounded, one tenant could fill
/// the pool under every other VE's disk (writes failing with ENOSPC).
#[test]
fn review_a_tenant_cannot_take_snapshots_without_bound() {
    let root = TestRoot::new("api-review-snaps");
    root.create_busybox("66", &["--disk", "1G"]);
    let svc = Service::start_with(&root, &["--snapshots-per-ve", "2"]);
    let op = svc.token(
        &root,
        &["--tenant", "acme", "--ves", "66", "--role", "operator"],
    );
    let t = Some(op.as_str());
    for name in ["s1", "s2"] {
        let a = svc.post("/v1/ves/66/snapshots", t, Some(json!({ "name": name })));
        assert_eq!(a.status, 201, "{a:?}");
    }
    let third = svc.post("/v1/ves/66/snapshots", t, Some(json!({"name": "s3"})));
    assert_eq!(
        (third.status.as_u16(), third.body["code"].as_str()),
        (409, Some("too_many_snapshots")),
        "{third:?}"
    );
    let del = svc.call("DELETE", "/v1/ves/66/snapshots/s1", t, None);
    assert_eq!(del.status, 204, "{del:?}");
    let again = svc.post("/v1/ves/66/snapshots", t, Some(json!({"name": "s3"})));
    assert_eq!(again.status, 201, "room again: {again:?}");
    drop(svc);
    root.finish();
}

/// What a tenant's command in its VE gets of the host: no variable of
/// kenneld's environment (cargo's, here), no descriptor beyond 0-2, no
/// working directory outside the VE through a magic link, and no option
/// of `kennel` through `env`, `workdir` or the command (all go as
/// `--opt=VALUE` or after `--`).
#[test]
fn review_exec_leaks_nothing_of_the_host_and_takes_no_option() {
    let root = TestRoot::new("api-review-exec");
    root.start_busybox("67", &["--storage", "dir"]);
    let svc = Service::start(&root);
    let op = svc.token(
        &root,
        &["--tenant", "acme", "--ves", "67", "--role", "operator"],
    );
    let exec = |body: Value| svc.post("/v1/ves/67/exec", Some(&op), Some(body));
    let seen = exec(json!({"command": ["sh", "-c", "env; ls /proc/self/fd"]}));
    assert_eq!(seen.body["exit_status"], 0, "{seen:?}");
    let out = seen.body["stdout"]["data"].as_str().unwrap_or_default();
    for host in ["CARGO", "KENNEL", "RUST", "INVOCATION_ID", "NOTIFY_SOCKET"] {
        assert!(!out.contains(host), "{host} reached the VE:\n{out}");
    }
    let fds: Vec<&str> = out
        .lines()
        .filter(|l| l.chars().all(|c| c.is_ascii_digit()))
        .collect();
    assert!(fds.len() <= 4, "descriptors in the VE: {fds:?}\n{out}");

    // The host's side of the VE's root, or kenneld's directory, through
    // /proc magic links: never the working directory.
    let marker = root.dir.join("host-only-marker");
    std::fs::write(&marker, b"x").expect("marker");
    for dir in [
        "/proc/self/fd/0",
        "/proc/self/cwd",
        "/proc/1/cwd",
        "/proc/self/root/../..",
        "../../../..",
    ] {
        let a = exec(json!({"command": ["ls", "-a"], "workdir": dir}));
        assert_eq!(a.status, 200, "{dir}: {a:?}");
        let listed = a.body["stdout"]["data"].as_str().unwrap_or_default();
        assert!(
            !listed.contains("host-only-marker") && !listed.contains("lib"),
            "{dir}: {listed}"
        );
    }
    // A command that leaves a process of its own session holding its
    // output (writing on) is answered when it ends, not at its timeout.
    let began = Instant::now();
    let left = exec(json!({
        "command": ["sh", "-c", "setsid sh -c 'echo $$ > /tmp/loop.pid; trap \"\" TERM HUP; while :; do echo x; done' & echo started"],
        "timeout_secs": 120,
    }));
    assert_eq!(left.body["timed_out"], false, "{left:?}");
    assert!(began.elapsed() < secs(30), "{:?}", began.elapsed());
    // Writing on after the command ended, it gets EPIPE (SIGPIPE) once
    // `kennel exec` has closed the pipes: nothing is left writing.
    let gone = wait_for(secs(10), || {
        root.sh(
            "67",
            "kill -0 \"$(cat /tmp/loop.pid)\" 2>/dev/null && echo alive || echo gone",
        )
        .contains("gone")
    });
    if !gone {
        root.sh("67", "kill -KILL \"$(cat /tmp/loop.pid)\"");
    }
    assert!(gone, "the leftover writer ended with its pipe");
    // Values that look like options stay values.
    let opt = exec(json!({
        "command": ["sh", "-c", "echo \"$X\"; pwd"],
        "env": ["X=--root=/ --help"],
    }));
    assert_eq!(
        opt.body["stdout"]["data"], "--root=/ --help\n/\n",
        "{opt:?}"
    );
    let help = exec(json!({"command": ["--help"]}));
    assert_eq!(help.body["exit_status"], 127, "{help:?}");
    let wd = exec(json!({"command": ["true"], "workdir": "--help"}));
    assert_ne!(wd.body["exit_status"], 0, "{wd:?}");
    assert!(
        !wd.body["stdout"]["data"]
            .as_str()
            .unwrap_or_default()
            .contains("Usage"),
        "{wd:?}"
    );
    for bad in [
        json!({"command": ["true"], "workdir": "/tmp\n--root=/"}),
        json!({"command": ["true"], "env": ["A=1\n--root=/"]}),
    ] {
        assert_eq!(exec(bad.clone()).status, 400, "{bad}");
    }
    drop(svc);
    root.finish();
}

/// A backup outlives its VE; the id does not carry it. Destroyed, made
/// again and granted to another tenant, the id shows that tenant none
/// of the first one's backups, and none can be its incremental base.
#[test]
fn review_a_reused_id_does_not_inherit_the_backups_of_the_ve_before() {
    let root = TestRoot::new("api-review-reuse");
    root.create_busybox("68", &["--disk", "1G"]);
    let svc = Service::start(&root);
    let first = svc.token(
        &root,
        &["--tenant", "acme", "--ves", "68", "--role", "operator"],
    );
    let t1 = Some(first.as_str());
    let made = svc.post("/v1/ves/68/backups", t1, Some(json!({})));
    job_id(&svc, t1, &made);
    let name = made.body["backup"].as_str().expect("name").to_string();
    root.ok(&["destroy", "68"]);
    root.create_busybox("68", &["--disk", "1G"]);
    let second = svc.token(
        &root,
        &["--tenant", "other", "--ves", "68", "--role", "operator"],
    );
    let t2 = Some(second.as_str());
    let listed = svc.get("/v1/backups", t2);
    assert_eq!(listed.body, json!([]), "{listed:?}");
    assert_eq!(svc.get("/v1/backups?ve=68", t2).body, json!([]));
    assert_eq!(svc.get(&format!("/v1/backups/{name}"), t2).status, 404);
    let del = svc.call("DELETE", &format!("/v1/backups/{name}"), t2, None);
    assert_eq!(del.status, 404, "{del:?}");
    let on = svc.post(
        "/v1/ves/68/backups",
        t2,
        Some(json!({ "incremental_since": name })),
    );
    assert_eq!(on.status, 404, "{on:?}");
    // The first tenant's token reaches its own backup still (its data),
    // not the new VE.
    assert_eq!(svc.get("/v1/ves/68", t1).status, 404);
    assert_eq!(svc.get(&format!("/v1/backups/{name}"), t1).status, 200);
    drop(svc);
    root.finish();
}

/// `kennel` processes now running a password change.
fn password_changes() -> usize {
    crate::common::processes()
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("--userpasswd="))
        })
        .count()
}

/// A change whose client hangs up at once still runs to its end holding
/// the VE's claim, and is audited: asking and hanging up fifty times
/// starts one `kennel`, not fifty (each was a process waiting 20 s on the
/// VE's lock, without bound, and none of them was audited).
#[test]
fn changes_outlive_their_clients_and_keep_their_claim() {
    use std::io::Write;
    let root = TestRoot::new("api-hangup");
    root.start_busybox("5", &["--storage", "dir"]);
    root.sh(
        "5",
        "mkdir -p /usr/sbin && printf '#!/bin/sh\\nsleep 4\\ncat > /root/got\\n' > /usr/sbin/chpasswd && chmod 755 /usr/sbin/chpasswd",
    );
    let svc = Service::start(&root);
    let acme = svc.token(
        &root,
        &["--tenant", "acme", "--ves", "5", "--role", "operator"],
    );
    // The token once checked: the requests below reach their change.
    assert_eq!(svc.get("/v1/ves/5", Some(&acme)).status, 200);
    let body = r#"{"user":"root","password":"x"}"#;
    let mut most = 0;
    for _ in 0..20 {
        let mut s = std::os::unix::net::UnixStream::connect(&svc.socket).expect("connect");
        write!(
            s,
            "POST /v1/ves/5/password HTTP/1.1\r\nHost: kenneld\r\nAuthorization: Bearer {acme}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("ask");
        std::thread::sleep(std::time::Duration::from_millis(100));
        most = most.max(password_changes());
        drop(s);
    }
    let t = Instant::now();
    while t.elapsed() < secs(1) {
        most = most.max(password_changes());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(most, 1, "kennel processes for one VE's change at a time");
    // The claim outlived its client: the VE is busy until it ends.
    let busy = svc.post(
        "/v1/ves/5/password",
        Some(&acme),
        Some(json!({"user": "root", "password": "y"})),
    );
    assert_eq!(busy.status, 409, "{busy:?}");
    assert!(wait_for(secs(30), || password_changes() == 0));
    assert_eq!(root.sh("5", "cat /root/got").trim(), "root:x");
    let ok = svc
        .audit()
        .iter()
        .filter(|l| l["action"] == "ve.password" && l["result"] == "ok")
        .count();
    assert_eq!(ok, 1, "the one change made is audited");
    drop(svc);
    root.finish();
}
