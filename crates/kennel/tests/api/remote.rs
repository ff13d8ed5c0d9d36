//! `kennel --remote URL ...`: the CLI's commands against a service, with
//! a tenant's token, the CLI's exit statuses for the API's errors.

use std::process::Command;

use crate::common::{TestRoot, KENNEL};
use crate::service::Service;

fn remote(
    svc: &Service,
    root: &TestRoot,
    token: Option<&str>,
    args: &[&str],
) -> (i32, String, String) {
    let mut c = Command::new(KENNEL);
    c.arg("--remote")
        .arg(&svc.url)
        .arg("--ca")
        .arg(root.dir.join("lib/api/tls/cert.pem"))
        .args(args)
        .env_remove("KENNEL_TOKEN");
    if let Some(t) = token {
        c.env("KENNEL_TOKEN", t);
    }
    let out = c.output().expect("run kennel --remote");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_cli_drives_a_remote_service() {
    let root = TestRoot::new("api-remote");
    root.create_busybox("21", &["--storage", "dir"]);
    root.create_busybox("22", &["--storage", "dir"]);
    let svc = Service::start(&root);
    let acme = svc.token(
        &root,
        &["--tenant", "acme", "--ves", "21", "--role", "operator"],
    );
    let t = Some(acme.as_str());

    let (code, out, err) = remote(&svc, &root, t, &["list", "--all"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("21") && !out.contains("22"), "{out}");
    let (code, out, err) = remote(&svc, &root, t, &["start", "21"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("Started VE 21 (init PID "), "{out}");
    assert_eq!(root.status("21")["state"], "running");
    let (code, out, _) = remote(&svc, &root, t, &["status", "21", "--json"]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("\"init_pid\": {}", root.init_pid("21"))),
        "{out}"
    );
    // The CLI's exit statuses, one line of error each.
    for (args, want) in [
        (vec!["start", "21"], 6),
        (vec!["start", "22"], 4),
        (vec!["destroy", "21"], 3),
        (vec!["status", "../x"], 2),
    ] {
        let (code, _, err) = remote(&svc, &root, t, &args);
        assert_eq!(code, want, "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("kennel: "), "{err}");
    }
    let (code, _, err) = remote(&svc, &root, None, &["list"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("KENNEL_TOKEN"), "{err}");
    let (code, _, err) = remote(&svc, &root, t, &["kill", "21"]);
    assert_eq!(code, 0, "{err}");
    let plain = svc.url.replace("https://", "http://");
    let out = Command::new(KENNEL)
        .args(["--remote", &plain, "list"])
        .env("KENNEL_TOKEN", &acme)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    drop(svc);
    root.finish();
}
