//! A VE's data through the API: snapshots (taken, listed, rolled back,
//! deleted), backups as jobs (made, listed, downloaded byte for byte,
//! verified by the CLI, restored into a VE that starts), clones and
//! renames; and who may do which: a tenant's token on a foreign VE or
//! backup gets 404 everywhere, a viewer 403 for every change, and a bad
//! name touches nothing.

use serde_json::{json, Value};

use crate::common::TestRoot;
use crate::service::{Answer, Service};

fn names(a: &Answer) -> Vec<String> {
    a.body
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn snapshots_are_taken_listed_rolled_back_and_deleted() {
    let root = TestRoot::new("api-snap");
    root.start_busybox("11", &["--disk", "1G"]);
    root.sh("11", "mkdir -p /root && echo before > /root/f");
    let svc = Service::start(&root);
    let op = svc.token(
        &root,
        &["--tenant", "acme", "--ves", "11", "--role", "operator"],
    );
    let viewer = svc.token(
        &root,
        &["--tenant", "acme", "--ves", "11", "--role", "viewer"],
    );
    let (t, v) = (Some(op.as_str()), Some(viewer.as_str()));

    let made = svc.post("/v1/ves/11/snapshots", t, Some(json!({"name": "s1"})));
    assert_eq!(made.status, 201, "{made:?}");
    assert_eq!(made.body["name"], "s1");
    assert!(made.body["frozen_ms"].as_f64().is_some(), "{made:?}");
    root.sh("11", "echo after > /root/f");

    let list = svc.get("/v1/ves/11/snapshots", v);
    assert_eq!(list.status, 200, "{list:?}");
    assert_eq!(names(&list), ["s1"]);
    assert!(root.ok(&["snapshot", "list", "11"]).contains("s1"));

    // A viewer reads, and changes nothing.
    for a in [
        svc.post("/v1/ves/11/snapshots", v, Some(json!({"name": "v"}))),
        svc.post("/v1/ves/11/snapshots/s1/rollback", v, Some(json!({}))),
        svc.call("DELETE", "/v1/ves/11/snapshots/s1", v, None),
    ] {
        assert_eq!(
            (a.status.as_u16(), a.body["code"].as_str()),
            (403, Some("forbidden")),
            "{a:?}"
        );
    }
    // Bad and unknown names.
    for (a, status) in [
        (
            svc.post("/v1/ves/11/snapshots", t, Some(json!({"name": "../x"}))),
            400,
        ),
        (
            svc.post("/v1/ves/11/snapshots", t, Some(json!({"name": "a/b"}))),
            400,
        ),
        (
            svc.post("/v1/ves/11/snapshots/..%2Fx/rollback", t, Some(json!({}))),
            400,
        ),
        (
            svc.call("DELETE", "/v1/ves/11/snapshots/a%2Fb", t, None),
            400,
        ),
        (
            svc.post("/v1/ves/11/snapshots/nope/rollback", t, Some(json!({}))),
            404,
        ),
        (
            svc.call("DELETE", "/v1/ves/11/snapshots/nope", t, None),
            404,
        ),
        (
            svc.post("/v1/ves/11/snapshots", t, Some(json!({"name": "s1"}))),
            409,
        ),
        (
            svc.post("/v1/ves/11/snapshots", t, Some(json!({"nam": "x"}))),
            400,
        ),
    ] {
        assert_eq!(a.status.as_u16(), status, "{a:?}");
    }
    assert_eq!(names(&svc.get("/v1/ves/11/snapshots", v)), ["s1"]);

    let pid = root.init_pid("11");
    let back = svc.post(
        "/v1/ves/11/snapshots/s1/rollback",
        t,
        Some(json!({"timeout": 10})),
    );
    svc.job_ok(t, &back);
    assert_eq!(root.status("11")["state"], "running", "started again");
    assert_ne!(root.init_pid("11"), pid);
    assert_eq!(root.sh("11", "cat /root/f").trim(), "before");

    let unnamed = svc.post("/v1/ves/11/snapshots", t, Some(json!({})));
    assert_eq!(unnamed.status, 201, "{unnamed:?}");
    let auto = unnamed.body["name"].as_str().expect("a name").to_string();
    assert!(auto.ends_with('Z'), "{auto}");

    assert_eq!(
        svc.call("DELETE", "/v1/ves/11/snapshots/s1", t, None)
            .status,
        204
    );
    assert_eq!(names(&svc.get("/v1/ves/11/snapshots", t)), [auto.as_str()]);
    let audit = svc.audit();
    for want in [
        "ve.snapshot.create",
        "ve.snapshot.rollback",
        "ve.snapshot.delete",
    ] {
        assert!(
            audit
                .iter()
                .any(|e| e["action"] == want && e["result"] == "ok"),
            "{want} in the audit log"
        );
    }
    drop(svc);
    root.finish();
}

#[test]
fn backups_run_as_jobs_download_byte_for_byte_and_restore_into_a_ve_that_starts() {
    let root = TestRoot::new("api-backup");
    root.start_busybox("21", &["--disk", "1G"]);
    root.sh("21", "mkdir -p /root && echo hello > /root/data");
    let svc = Service::start(&root);
    let admin = svc.admin(&root);
    let op = svc.token(
        &root,
        &["--tenant", "acme", "--ves", "21", "--role", "operator"],
    );
    let (a, t) = (Some(admin.as_str()), Some(op.as_str()));

    let made = svc.post("/v1/ves/21/backups", t, Some(json!({})));
    svc.job_ok(t, &made);
    let full = made.body["backup"].as_str().expect("its name").to_string();
    assert!(full.starts_with("21-") && full.ends_with(".kbk"), "{full}");
    let dir = root.dir.join("lib/api/backups");
    let mode = std::fs::metadata(&dir).map(|m| {
        use std::os::unix::fs::PermissionsExt;
        m.permissions().mode() & 0o777
    });
    assert_eq!(mode.ok(), Some(0o700), "the service's own directory");

    let list = svc.get("/v1/backups", t);
    assert_eq!(list.status, 200, "{list:?}");
    assert_eq!(names(&list), [full.as_str()]);
    assert_eq!(list.body[0]["ve"], "21");
    let on_disk = std::fs::read(dir.join(&full)).expect("the backup file");
    assert_eq!(list.body[0]["size"].as_u64(), Some(on_disk.len() as u64));

    let resp = svc
        .request(reqwest::Method::GET, &format!("/v1/backups/{full}"), t)
        .send()
        .expect("download");
    assert_eq!(resp.status(), 200);
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(header("content-type"), "application/octet-stream");
    assert_eq!(header("content-length"), on_disk.len().to_string());
    let got = resp.bytes().expect("the body");
    assert!(got.as_ref() == on_disk.as_slice(), "the bytes of the file");
    let copy = root.dir.join("download");
    std::fs::create_dir_all(&copy).expect("dir");
    let copy = copy.join(&full);
    std::fs::write(&copy, &got).expect("write the copy");
    root.ok(&["backup", "verify", &copy.to_string_lossy()]);

    // An incremental on it; the base cannot go while it is there.
    root.sh("21", "echo more > /root/more");
    let inc = svc.post(
        "/v1/ves/21/backups",
        t,
        Some(json!({"incremental_since": full})),
    );
    svc.job_ok(t, &inc);
    let inc = inc.body["backup"].as_str().expect("its name").to_string();
    let list = svc.get("/v1/backups?ve=21", t);
    assert_eq!(names(&list), [full.clone(), inc.clone()]);
    assert_eq!(list.body[1]["incremental_since"], full.as_str());
    let busy = svc.call("DELETE", &format!("/v1/backups/{full}"), t, None);
    assert_eq!(
        (busy.status.as_u16(), busy.body["code"].as_str()),
        (409, Some("in_use")),
        "{busy:?}"
    );

    // A restore makes a VE: host admins only.
    let path = format!("/v1/backups/{inc}/restore");
    assert_eq!(svc.post(&path, t, Some(json!({"id": "23"}))).status, 403);
    let restored = svc.post(&path, a, Some(json!({"id": "23", "hostname": "back"})));
    svc.job_ok(a, &restored);
    root.ok(&["start", "23"]);
    assert_eq!(root.sh("23", "cat /root/data").trim(), "hello");
    assert_eq!(root.sh("23", "cat /root/more").trim(), "more");
    assert_eq!(root.sh("23", "hostname").trim(), "back");

    // Names are one file name of the directory, nothing else.
    for (path, status) in [
        ("/v1/backups/..%2Fx", 400),
        ("/v1/backups/a%2Fb.kbk", 400),
        ("/v1/backups/..%2F..%2Fapi%2Ftokens.json", 400),
        ("/v1/backups/nope.kbk", 404),
        ("/v1/backups/../api/tokens.json", 404),
    ] {
        let got = svc.get(path, a);
        assert_eq!(got.status.as_u16(), status, "{path}: {got:?}");
        let del = svc.call("DELETE", path, a, None);
        assert!(
            [400, 404, 405].contains(&del.status.as_u16()),
            "{path}: {del:?}"
        );
    }
    assert_eq!(
        svc.post(
            "/v1/ves/21/backups",
            t,
            Some(json!({"incremental_since": "../x.kbk"}))
        )
        .status,
        400
    );
    assert!(root.dir.join("lib/api/tokens.json").exists());

    // The downloaded backup, uploaded (as to another host): verified,
    // then listed for the host only, and restored into a VE that starts.
    let put = |name: &str, token: Option<&str>, body: Vec<u8>| {
        svc.send(
            svc.request(reqwest::Method::PUT, &format!("/v1/backups/{name}"), token)
                .header("content-type", "application/octet-stream")
                .body(body),
        )
    };
    let bytes = std::fs::read(&copy).expect("the downloaded copy");
    // Refusals come before the body is read: a small one, so that the
    // client is not cut off while still sending it.
    let small = bytes[..bytes.len().min(512)].to_vec();
    assert_eq!(put("moved.kbk", t, small.clone()).status, 403, "a tenant's");
    svc.job_ok(a, &put("moved.kbk", a, bytes));
    assert_eq!(put("moved.kbk", a, small).status, 409, "a name taken");
    let all = svc.get("/v1/backups", a);
    assert!(names(&all).contains(&"moved.kbk".to_string()), "{all:?}");
    assert!(!names(&svc.get("/v1/backups", t)).contains(&"moved.kbk".to_string()));
    assert_eq!(svc.get("/v1/backups/moved.kbk", t).status, 404);
    svc.job_ok(
        a,
        &svc.post(
            "/v1/backups/moved.kbk/restore",
            a,
            Some(json!({"id": "24"})),
        ),
    );
    root.ok(&["start", "24"]);
    assert_eq!(root.sh("24", "cat /root/data").trim(), "hello");
    // Not a backup: the job fails, and nothing of it is kept.
    let junk = put("junk.kbk", a, b"not a backup".to_vec());
    assert_eq!(junk.status, 202, "{junk:?}");
    let id = junk.body["id"].as_u64().expect("a job");
    assert_eq!(svc.job_end(a, id)["state"], "failed");
    assert!(!names(&svc.get("/v1/backups", a)).contains(&"junk.kbk".to_string()));

    for (b, who) in [(inc.as_str(), t), (full.as_str(), t), ("moved.kbk", a)] {
        let del = svc.call("DELETE", &format!("/v1/backups/{b}"), who, None);
        assert_eq!(del.status, 204, "{del:?}");
    }
    assert!(names(&svc.get("/v1/backups", a)).is_empty());
    let left: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .flatten()
        .map(|d| d.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let audit = svc.audit();
    for want in [
        "ve.backup",
        "backup.upload",
        "backup.download",
        "backup.restore",
        "backup.delete",
    ] {
        assert!(
            audit
                .iter()
                .any(|e| e["action"] == want && e["result"] == "ok"),
            "{want} in the audit log"
        );
    }
    drop(svc);
    root.finish();
}

#[test]
fn clones_start_and_only_a_stopped_ve_is_renamed() {
    let root = TestRoot::new("api-copies");
    root.start_busybox("31", &["--disk", "1G"]);
    root.sh("31", "mkdir -p /root && echo mine > /root/f");
    let svc = Service::start(&root);
    let admin = svc.admin(&root);
    let op = svc.token(
        &root,
        &["--tenant", "acme", "--ves", "31", "--role", "operator"],
    );
    let (a, t) = (Some(admin.as_str()), Some(op.as_str()));

    // Making a VE id is a host admin's.
    assert_eq!(
        svc.post("/v1/ves/31/clone", t, Some(json!({"new_id": "32"})))
            .status,
        403
    );
    assert_eq!(
        svc.post("/v1/ves/31/rename", t, Some(json!({"new_id": "33"})))
            .status,
        403
    );

    let cloned = svc.post(
        "/v1/ves/31/clone",
        a,
        Some(json!({"new_id": "32", "hostname": "copy"})),
    );
    svc.job_ok(a, &cloned);
    root.ok(&["start", "32"]);
    assert_eq!(root.sh("32", "cat /root/f").trim(), "mine");
    assert_eq!(root.sh("32", "hostname").trim(), "copy");
    assert_ne!(root.config("32")["uuid"], root.config("31")["uuid"]);

    let running = svc.post("/v1/ves/31/rename", a, Some(json!({"new_id": "33"})));
    assert_eq!(
        (running.status.as_u16(), running.body["code"].as_str()),
        (409, Some("running")),
        "{running:?}"
    );
    assert_eq!(root.status("31")["state"], "running");
    root.ok(&["stop", "31"]);
    let taken = svc.post("/v1/ves/31/rename", a, Some(json!({"new_id": "32"})));
    assert_eq!(taken.status, 409, "{taken:?}");
    let bad = svc.post("/v1/ves/31/rename", a, Some(json!({"new_id": "../x"})));
    assert_eq!(bad.status, 400, "{bad:?}");
    let renamed = svc.post("/v1/ves/31/rename", a, Some(json!({"new_id": "33"})));
    assert_eq!(renamed.status, 200, "{renamed:?}");
    assert_eq!(renamed.body["id"], "33");
    root.fails(&["config", "31"], 4);
    root.ok(&["start", "33"]);
    assert_eq!(root.sh("33", "cat /root/f").trim(), "mine");
    // The tenant's grant named VE 31: no id of it now.
    assert_eq!(svc.get("/v1/ves/33", t).status, 404);
    let audit = svc.audit();
    for want in ["ve.clone", "ve.rename"] {
        assert!(
            audit
                .iter()
                .any(|e| e["action"] == want && e["result"] == "ok"),
            "{want} in the audit log"
        );
    }
    drop(svc);
    root.finish();
}

#[test]
fn a_tenant_gets_404_on_foreign_ves_and_backups_and_a_viewer_changes_nothing() {
    let root = TestRoot::new("api-data-access");
    root.create_busybox("41", &["--disk", "1G"]);
    root.create_busybox("42", &["--disk", "1G"]);
    let svc = Service::start(&root);
    let admin = svc.admin(&root);
    let a = Some(admin.as_str());
    let mine = svc.token(
        &root,
        &["--tenant", "acme", "--ves", "41", "--role", "operator"],
    );
    let viewer = svc.token(
        &root,
        &["--tenant", "acme", "--ves", "41", "--role", "viewer"],
    );
    let (t, v) = (Some(mine.as_str()), Some(viewer.as_str()));
    assert_eq!(
        svc.post("/v1/ves/42/snapshots", a, Some(json!({"name": "theirs"})))
            .status,
        201
    );
    let b42 = svc.post("/v1/ves/42/backups", a, Some(json!({})));
    svc.job_ok(a, &b42);
    let b42 = b42.body["backup"].as_str().expect("name").to_string();
    let b41 = svc.post("/v1/ves/41/backups", t, Some(json!({})));
    svc.job_ok(t, &b41);
    let b41 = b41.body["backup"].as_str().expect("name").to_string();

    let foreign = [
        svc.get("/v1/ves/42/snapshots", t),
        svc.post("/v1/ves/42/snapshots", t, Some(json!({"name": "x"}))),
        svc.post("/v1/ves/42/snapshots/theirs/rollback", t, Some(json!({}))),
        svc.call("DELETE", "/v1/ves/42/snapshots/theirs", t, None),
        svc.post("/v1/ves/42/backups", t, Some(json!({}))),
        svc.post("/v1/ves/42/clone", t, Some(json!({"new_id": "43"}))),
        svc.post("/v1/ves/42/rename", t, Some(json!({"new_id": "43"}))),
        svc.get(&format!("/v1/backups/{b42}"), t),
        svc.call("DELETE", &format!("/v1/backups/{b42}"), t, None),
        svc.post(
            &format!("/v1/backups/{b42}/restore"),
            t,
            Some(json!({"id": "43"})),
        ),
        svc.post(
            "/v1/ves/41/backups",
            t,
            Some(json!({"incremental_since": b42})),
        ),
    ];
    let missing = [
        svc.post("/v1/ves/99/snapshots", t, Some(json!({"name": "x"}))),
        svc.get("/v1/backups/99-00000000-20260101T000000.000Z.kbk", t),
    ];
    for f in &foreign {
        assert_eq!(f.status, 404, "{f:?}");
    }
    // Word for word as a missing VE's, a missing backup's.
    assert_eq!(
        foreign[0].body["message"]
            .as_str()
            .map(|m| m.replace("42", "99")),
        missing[0].body["message"].as_str().map(str::to_string)
    );
    assert_eq!(
        foreign[7].body["code"], missing[1].body["code"],
        "{:?}",
        foreign[7]
    );
    assert_eq!(names(&svc.get("/v1/backups", t)), [b41.as_str()]);
    assert_eq!(names(&svc.get("/v1/backups", v)), [b41.as_str()]);
    let all = names(&svc.get("/v1/backups", a));
    assert!(all.contains(&b41) && all.contains(&b42), "{all:?}");

    // A viewer of VE 41 reads, and changes nothing.
    for r in [
        svc.post("/v1/ves/41/snapshots", v, Some(json!({"name": "x"}))),
        svc.post("/v1/ves/41/backups", v, Some(json!({}))),
        svc.post("/v1/ves/41/clone", v, Some(json!({"new_id": "43"}))),
        svc.post("/v1/ves/41/rename", v, Some(json!({"new_id": "43"}))),
        svc.get(&format!("/v1/backups/{b41}"), v),
        svc.call("DELETE", &format!("/v1/backups/{b41}"), v, None),
        svc.post(
            &format!("/v1/backups/{b41}/restore"),
            v,
            Some(json!({"id": "43"})),
        ),
    ] {
        assert_eq!(r.status, 403, "{r:?}");
    }
    assert_eq!(svc.get("/v1/ves/41/snapshots", v).status, 200);

    // Nothing was touched.
    let snaps = |id: &str| -> Vec<Value> {
        serde_json::from_str(&root.ok(&["snapshot", "list", id, "--json"])).expect("json")
    };
    assert_eq!(snaps("42").len(), 1);
    assert!(snaps("41").is_empty());
    let dir = root.dir.join("lib/api/backups");
    assert!(dir.join(&b41).exists() && dir.join(&b42).exists());
    root.fails(&["config", "43"], 4);
    drop(svc);
    root.finish();
}

/// A tmpfs mounted for a test, unmounted when dropped (a failed test too).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &std::path::Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).expect("dir");
        let ok = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "kennel-test",
            ])
            .arg(at)
            .status()
            .expect("mount");
        assert!(ok.success());
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_backup_is_refused_when_the_backup_directorys_filesystem_is_nearly_full() {
    let root = TestRoot::new("api-backup-full");
    root.create_busybox("51", &["--disk", "1G"]);
    // 64 MiB: under the 1 GiB kept free.
    let small = Tmpfs::mount(&root.dir.join("small"), "64m");
    let dir = small.0.join("backups");
    let svc = Service::start_with(&root, &["--backup-dir", &dir.to_string_lossy()]);
    let admin = svc.admin(&root);
    let full = svc.post("/v1/ves/51/backups", Some(&admin), Some(json!({})));
    assert_eq!(
        (full.status.as_u16(), full.body["code"].as_str()),
        (507, Some("insufficient_storage")),
        "{full:?}"
    );
    let left = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "nothing written");
    drop(svc);
    drop(small);
    root.finish();
}
