//! `POST /v1/ves/{id}/exec`, the network fields of `PATCH /v1/ves/{id}`
//! and `/v1/storage`, through a real service: a command's output and
//! status, its bounds (output, time) against a VE that abuses them, who
//! may run one; network changes as the CLI sees them (in a network
//! namespace the test owns); the storage pool made, refused and removed.

use std::os::fd::AsFd;
use std::time::Instant;

use serde_json::{json, Value};

use crate::common::netlab::NetLab;
use crate::common::{loop_devices_under, secs, wait_for, TestRoot};
use crate::service::{Answer, Service};

fn exec(svc: &Service, token: &str, id: &str, body: Value) -> Answer {
    svc.post(&format!("/v1/ves/{id}/exec"), Some(token), Some(body))
}

/// kenneld's peak resident memory, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[test]
fn exec_answers_a_commands_output_and_bounds_what_the_ve_makes_of_it() {
    let root = TestRoot::new("api-exec");
    root.start_busybox("101", &["--storage", "dir"]);
    root.create_busybox("102", &["--storage", "dir"]);
    let svc = Service::start(&root);
    let admin = svc.admin(&root);

    let a = exec(
        &svc,
        &admin,
        "101",
        json!({"command": ["sh", "-c", "echo out; echo err >&2; exit 3"]}),
    );
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["exit_status"], 3, "{a:?}");
    assert_eq!(a.body["signal"], Value::Null);
    assert_eq!(a.body["timed_out"], false);
    assert_eq!(a.body["stdout"]["data"], "out\n");
    assert_eq!(a.body["stdout"]["encoding"], "utf8");
    assert_eq!(a.body["stderr"]["data"], "err\n");
    assert_eq!(a.body["stdout"]["truncated"], false);

    let cat = exec(
        &svc,
        &admin,
        "101",
        json!({"command": ["cat"], "stdin": "hello\nworld"}),
    );
    assert_eq!(cat.body["stdout"]["data"], "hello\nworld", "{cat:?}");
    assert_eq!(cat.body["exit_status"], 0);
    let env = exec(
        &svc,
        &admin,
        "101",
        json!({"command": ["sh", "-c", "echo $GREETING; pwd"], "env": ["GREETING=hi there"], "workdir": "/tmp"}),
    );
    assert_eq!(env.body["stdout"]["data"], "hi there\n/tmp\n", "{env:?}");
    let binary = exec(
        &svc,
        &admin,
        "101",
        json!({"command": ["printf", "\\377\\376"]}),
    );
    assert_eq!(
        (
            &binary.body["stdout"]["data"],
            &binary.body["stdout"]["encoding"]
        ),
        (&json!("//4="), &json!("base64")),
        "{binary:?}"
    );
    let missing = exec(&svc, &admin, "101", json!({"command": ["no-such-program"]}));
    assert_eq!(missing.body["exit_status"], 127, "{missing:?}");

    // 100 MiB of output: 1 MiB kept, the rest read and dropped.
    let before = peak_rss_kib(svc.pid());
    let flood = exec(
        &svc,
        &admin,
        "101",
        json!({"command": ["sh", "-c", "head -c 104857600 /dev/zero | tr '\\000' x; echo done >&2"]}),
    );
    assert_eq!(flood.status, 200, "{:?}", flood.status);
    assert_eq!(flood.body["exit_status"], 0);
    assert_eq!(flood.body["stdout"]["bytes"], 104_857_600u64);
    assert_eq!(flood.body["stdout"]["truncated"], true);
    assert_eq!(
        flood.body["stdout"]["data"].as_str().map(str::len),
        Some(1 << 20)
    );
    assert_eq!(
        flood.body["stderr"]["data"], "done\n",
        "the command ran to its end"
    );
    let after = peak_rss_kib(svc.pid());
    assert!(
        after < before + 48 * 1024,
        "kenneld's peak memory grew from {before} to {after} KiB"
    );

    // At its timeout the command is ended, also one that ignores SIGTERM.
    for (script, status) in [
        ("sleep 1000", 143),
        ("trap '' TERM; sleep 1000; echo survived", 137),
    ] {
        let began = Instant::now();
        let slow = exec(
            &svc,
            &admin,
            "101",
            json!({"command": ["sh", "-c", script], "timeout_secs": 1}),
        );
        assert_eq!(slow.status, 200, "{slow:?}");
        assert_eq!(slow.body["timed_out"], true, "{slow:?}");
        assert_eq!(slow.body["exit_status"], status, "{script}: {slow:?}");
        assert_eq!(slow.body["signal"], status - 128);
        assert_eq!(slow.body["stdout"]["data"], "");
        assert!(began.elapsed() < secs(15), "{:?}", began.elapsed());
        let ps = root.sh("101", "ps -o args");
        assert!(!ps.contains("sleep 1000"), "left in the VE:\n{ps}");
    }

    // A client that goes away leaves nothing behind: its command still
    // ends at its timeout.
    let gone = svc
        .request(reqwest::Method::POST, "/v1/ves/101/exec", Some(&admin))
        .json(&json!({"command": ["sleep", "999"], "timeout_secs": 2}))
        .timeout(std::time::Duration::from_millis(500))
        .send();
    assert!(gone.is_err(), "the client gave up first: {gone:?}");
    assert!(root.sh("101", "ps -o args").contains("sleep 999"));
    assert!(
        wait_for(secs(10), || !root
            .sh("101", "ps -o args")
            .contains("sleep 999")),
        "the command of a client that left is ended at its timeout"
    );

    // At most 4 commands at once in one VE.
    std::thread::scope(|scope| {
        let long: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    exec(
                        &svc,
                        &admin,
                        "101",
                        json!({"command": ["sleep", "3"], "timeout_secs": 30}),
                    )
                })
            })
            .collect();
        std::thread::sleep(secs(1));
        let fifth = exec(&svc, &admin, "101", json!({"command": ["true"]}));
        assert_eq!(
            (fifth.status.as_u16(), fifth.body["code"].as_str()),
            (429, Some("too_many_requests")),
            "{fifth:?}"
        );
        for t in long {
            let a = t.join().expect("an exec");
            assert_eq!(a.body["exit_status"], 0, "{a:?}");
        }
    });
    let free = exec(&svc, &admin, "101", json!({"command": ["true"]}));
    assert_eq!(free.body["exit_status"], 0, "given back: {free:?}");

    // Bad input, a stopped VE, and who may.
    for bad in [
        json!({"command": []}),
        json!({"command": ["true"], "timeout_secs": 3601}),
        json!({"command": ["true"], "timeout_secs": 0}),
        json!({"command": ["true"], "env": ["NOVALUE"]}),
        json!({"command": ["true"], "user": "root"}),
    ] {
        let r = exec(&svc, &admin, "101", bad.clone());
        assert_eq!(
            (r.status.as_u16(), &r.body["code"]),
            (400, &json!("bad_input")),
            "{bad}: {r:?}"
        );
    }
    let stopped = exec(&svc, &admin, "102", json!({"command": ["true"]}));
    assert_eq!(
        (stopped.status.as_u16(), stopped.body["code"].as_str()),
        (409, Some("not_running")),
        "{stopped:?}"
    );
    let tenant = svc.token(
        &root,
        &["--tenant", "acme", "--ves", "101", "--role", "operator"],
    );
    let own = exec(&svc, &tenant, "101", json!({"command": ["hostname"]}));
    assert_eq!(own.body["stdout"]["data"], "101\n", "{own:?}");
    let foreign = exec(&svc, &tenant, "102", json!({"command": ["true"]}));
    let nothing = exec(&svc, &tenant, "999", json!({"command": ["true"]}));
    assert_eq!(foreign.status, 404, "{foreign:?}");
    assert_eq!(
        (
            foreign.status,
            foreign.body["code"].clone(),
            foreign.body["message"]
                .as_str()
                .map(|m| m.replace("102", "999"))
        ),
        (
            nothing.status,
            nothing.body["code"].clone(),
            nothing.body["message"].as_str().map(String::from)
        ),
        "a VE not the tenant's answers as a missing one"
    );
    let viewer = svc.token(&root, &["--role", "viewer"]);
    let refused = exec(&svc, &viewer, "101", json!({"command": ["true"]}));
    assert_eq!(
        (refused.status.as_u16(), refused.body["code"].as_str()),
        (403, Some("forbidden"))
    );
    let audit = svc.audit();
    assert!(
        audit.iter().filter(|e| e["action"] == "ve.exec").count() >= 10,
        "each exec is in the audit log"
    );
    drop(svc);
    root.finish();
}

/// The network of a VE through `PATCH`, in a laboratory namespace where
/// kenneld and Kennel play the host (no address or rule in the machine's
/// own namespace; nothing leaves the laboratory).
#[test]
fn network_changes_through_the_api_are_the_clis() {
    let lab = NetLab::new("apinet");
    lab.add_bridge();
    let host = lab.host.clone();
    let lab_ref = &lab;
    let result = std::thread::scope(|scope| {
        scope.spawn(move || {
        let lab = lab_ref;
        let ns = std::fs::File::open(format!("/run/netns/{host}")).expect("the lab's namespace");
        rustix::thread::move_into_link_name_space(
            ns.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .expect("setns");
        let root = TestRoot::in_netns("api-net", &host);
        root.busybox();
        let svc = Service::start(&root);
        let admin = svc.admin(&root);
        let t = Some(admin.as_str());
        let made = svc.post(
            "/v1/ves",
            t,
            Some(json!({"id": "101", "template": "busybox", "storage": "dir",
                        "ip": ["192.0.2.11"], "nat_via": "up0",
                        "forward": [{"proto": "tcp", "host_port": 8080, "ve_port": 80}],
                        "searchdomain": ["lab.test"]})),
        );
        assert_eq!(made.status, 201, "{made:?}");
        let net = root.config("101")["network"].clone();
        assert_eq!(net["nat_via"], "up0", "{net}");
        assert_eq!(net["forwards"], json!(["tcp:8080:80"]), "{net}");
        assert_eq!(svc.post("/v1/ves/101/actions/start", t, None).status, 200);

        let set = svc.call(
            "PATCH",
            "/v1/ves/101",
            t,
            Some(json!({
                "netif_add": [{"name": "eth1", "bridge": "br0", "mac": "02:00:00:00:0a:01",
                               "ip": ["198.51.100.7/24"]}],
                "forward_add": [{"proto": "udp", "host_addr": "192.0.2.1", "host_port": 5353, "ve_port": 53}],
                "forward_del": [{"proto": "tcp", "host_port": 8080, "ve_port": 80}],
                "nat_via": "none",
                "rate": "10mbit",
                "searchdomain": ["none"],
            })),
        );
        assert_eq!(set.status, 200, "{set:?}");
        let api = svc.get("/v1/ves/101/config", t);
        assert_eq!(api.status, 200, "{api:?}");
        let cli = root.config("101");
        assert_eq!(
            api.body["network"], cli["network"],
            "the API and the CLI agree"
        );
        let net = &cli["network"];
        assert_eq!(net["forwards"], json!(["udp:192.0.2.1:5353:53"]), "{net}");
        assert_eq!(net["nat_via"], Value::Null, "{net}");
        assert_eq!(net["searchdomains"], Value::Null, "{net}");
        assert_eq!(net["netifs"][0]["bridge"], "br0", "{net}");
        assert_eq!(net["netifs"][0]["mac"], "02:00:00:00:0a:01", "{net}");
        assert!(!net["rate"].is_null(), "{net}");
        // Applied to the running VE: its new interface and address.
        let link = root.sh("101", "ip addr show eth1");
        assert!(link.contains("198.51.100.7/24"), "{link}");
        let rules = lab.host_ruleset();
        assert!(
            rules.contains("5353"),
            "the forward is in the host's rules:\n{rules}"
        );
        assert!(!rules.contains("8080"), "the old forward is gone:\n{rules}");

        // Removed again; bad specs refused before anything runs.
        let del = svc.call(
            "PATCH",
            "/v1/ves/101",
            t,
            Some(json!({"netif_del": ["eth1"], "rate": "none"})),
        );
        assert_eq!(del.status, 200, "{del:?}");
        assert_eq!(root.config("101")["network"]["netifs"], Value::Null);
        for bad in [
            json!({"netif_add": [{"name": "eth1", "bridge": "br0,dhcp=yes"}]}),
            json!({"forward_add": [{"proto": "sctp", "host_port": 1, "ve_port": 1}]}),
            json!({"forward_add": [{"proto": "tcp", "host_port": 0, "ve_port": 1}]}),
            json!({"forward_add": [{"proto": "tcp", "host_addr": "::1", "host_port": 1, "ve_port": 1}]}),
            json!({"netif_add": [{"name": "eth1", "bridge": "br0", "colour": "red"}]}),
        ] {
            let r = svc.call("PATCH", "/v1/ves/101", t, Some(bad.clone()));
            assert_eq!(r.status, 400, "{bad}: {r:?}");
        }
        // A tenant may not change its network; a foreign VE is missing.
        let tenant = svc.token(
            &root,
            &["--tenant", "acme", "--ves", "101", "--role", "operator"],
        );
        let r = svc.call(
            "PATCH",
            "/v1/ves/101",
            Some(&tenant),
            Some(json!({"nat_via": "up0"})),
        );
        assert_eq!(r.status, 403, "{r:?}");
        drop(svc);
        root.finish();
    }).join()
    });
    let leaks = lab.leaks();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    assert!(leaks.is_empty(), "left on the host:\n{}", leaks.join("\n"));
}

/// Waits for job `id` to end; returns it.
fn job(svc: &Service, token: &str, id: &Value) -> Value {
    let mut last = Value::Null;
    assert!(
        wait_for(secs(120), || {
            last = svc.get(&format!("/v1/jobs/{id}"), Some(token)).body;
            last["state"] != "running"
        }),
        "job {id} did not end: {last}"
    );
    last
}

#[test]
fn the_storage_pool_is_made_refused_while_used_and_removed() {
    let root = TestRoot::new("api-storage");
    root.busybox();
    let svc = Service::start(&root);
    let admin = svc.admin(&root);
    let t = Some(admin.as_str());
    let image = root.dir.join("lib/pool.img");
    let dir = root.dir.to_string_lossy().to_string();

    let none = svc.get("/v1/storage", t);
    assert_eq!(none.status, 200, "{none:?}");
    assert_eq!(none.body["exists"], false);

    let made = svc.post("/v1/storage", t, Some(json!({"size": "5G"})));
    assert_eq!(made.status, 202, "{made:?}");
    let done = job(&svc, &admin, &made.body["id"]);
    assert_eq!(done["state"], "succeeded", "{done}");
    let info = svc.get("/v1/storage", t).body;
    let cli: Value = serde_json::from_str(&root.ok(&["storage", "info", "--json"])).expect("json");
    assert_eq!(info["exists"], true, "{info}");
    assert_eq!(info["path"], cli["pool"]["path"], "{info} {cli}");
    assert_eq!(info["kind"], cli["pool"]["kind"], "{info} {cli}");
    assert_eq!(info["mounted"], true, "{info}");
    assert_eq!(info["size_bytes"], cli["size"], "{info} {cli}");
    if info["kind"] == "loop" {
        assert_eq!(info["image"].as_str(), image.to_str());
        assert_eq!(loop_devices_under(&dir).len(), 1);
    }
    // Making it again changes nothing.
    let again = svc.post("/v1/storage", t, Some(json!({})));
    assert_eq!(job(&svc, &admin, &again.body["id"])["state"], "succeeded");

    // A VE with a disk in it: refused, as the CLI does.
    root.create_busybox("101", &["--disk", "1G"]);
    let info = svc.get("/v1/storage", t).body;
    assert_eq!(info["disks"], json!(["101"]), "{info}");
    let used = svc.call("DELETE", "/v1/storage", t, None);
    assert_eq!(
        (used.status.as_u16(), used.body["code"].as_str()),
        (409, Some("in_use")),
        "{used:?}"
    );
    root.fails(&["storage", "remove"], 2);

    // Host viewers read; tenants and viewers change nothing.
    let viewer = svc.token(&root, &["--role", "viewer"]);
    assert_eq!(svc.get("/v1/storage", Some(&viewer)).status, 200);
    let tenant = svc.token(
        &root,
        &["--tenant", "acme", "--ves", "101", "--role", "operator"],
    );
    assert_eq!(svc.get("/v1/storage", Some(&tenant)).status, 403);
    for who in [&viewer, &tenant] {
        assert_eq!(
            svc.call("DELETE", "/v1/storage", Some(who), None).status,
            403
        );
        assert_eq!(
            svc.post("/v1/storage", Some(who), Some(json!({}))).status,
            403
        );
    }
    let bad = svc.post("/v1/storage", t, Some(json!({"device": "vdb"})));
    assert_eq!(bad.status, 400, "{bad:?}");
    let bad = svc.post("/v1/storage", t, Some(json!({"size": "5G", "fs": "ext4"})));
    assert_eq!(bad.status, 400, "{bad:?}");

    assert_eq!(svc.call("DELETE", "/v1/ves/101", t, None).status, 204);
    let gone = svc.call("DELETE", "/v1/storage", t, None);
    assert_eq!(gone.status, 200, "{gone:?}");
    assert_eq!(gone.body["removed"], info["path"]);
    assert_eq!(svc.get("/v1/storage", t).body["exists"], false);
    assert!(!image.exists(), "the image is removed");
    assert!(
        wait_for(secs(5), || loop_devices_under(&dir).is_empty()),
        "no loop device left: {:?}",
        loop_devices_under(&dir)
    );
    let twice = svc.call("DELETE", "/v1/storage", t, None);
    assert_eq!(
        (twice.status.as_u16(), &twice.body["removed"]),
        (200, &Value::Null)
    );
    let audit = svc.audit();
    for want in ["storage.init", "storage.remove"] {
        assert!(audit.iter().any(|e| e["action"] == want), "{want} audited");
    }
    drop(svc);
    root.finish();
}
