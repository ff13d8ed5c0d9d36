//! A Debian VE boots systemd as its init, reaches `running`, and shuts down
//! cleanly — on this host's cgroup layout and (in the VM run) on pure
//! cgroup v2. Uses the Debian template fixture (debootstrap, once per
//! machine; see tests/common).
#![allow(clippy::expect_used)] // test code: a failed expectation is a failed test

mod common;

use std::time::Instant;

use common::TestRoot;

#[test]
fn debian_boots_systemd_to_running_and_powers_off() {
    let tarball = common::debian_tarball();
    let root = TestRoot::new("systemd");
    root.ok(&[
        "template",
        "import",
        "debian-12",
        tarball.to_str().expect("path"),
    ]);
    let tpl = root.ok(&["template", "list", "--json"]);
    assert!(tpl.contains("\"init\": \"systemd\""), "{tpl}");
    root.ok(&[
        "create",
        "200",
        "--template",
        "debian-12",
        "--hostname",
        "web1",
        "--memory",
        "512M",
    ]);
    root.ok(&["start", "200"]);
    let (state, failed) = root.systemd_state("200");
    assert_eq!(
        state, "running",
        "systemd did not reach running; failed units:\n{failed}"
    );
    assert!(failed.trim().is_empty(), "{failed}");
    // systemd knows it is in a container, and took Kennel's identity.
    assert_eq!(
        root.sh("200", "systemd-detect-virt --container || true")
            .trim(),
        "container-other"
    );
    assert_eq!(root.sh("200", "hostname").trim(), "web1");
    assert_eq!(root.sh("200", "cat /etc/hostname").trim(), "web1");
    let uuid = root.config("200")["uuid"]
        .as_str()
        .expect("uuid")
        .replace('-', "");
    assert_eq!(
        root.sh("200", "cat /etc/machine-id").trim(),
        uuid,
        "machine-id comes from container_uuid"
    );
    // journald runs and logs this boot.
    assert!(!root
        .sh("200", "journalctl -b --no-pager -q | head -5")
        .trim()
        .is_empty());
    // systemd manages its own cgroups below the VE's.
    assert!(
        root.sh("200", "cat /proc/1/cgroup").contains("init.scope"),
        "systemd moved itself to init.scope"
    );
    // apt runs (its sandbox user drops privileges inside the user
    // namespace), and its exit status comes through: `update` only warns
    // that a VE without addresses cannot reach the mirror; `install` of an
    // unknown package fails with apt's status 100.
    let apt = root.run(&[
        "exec",
        "200",
        "--",
        "apt-get",
        "-o",
        "Acquire::Retries=0",
        "update",
    ]);
    assert!(
        String::from_utf8_lossy(&apt.stdout).contains("Reading package lists"),
        "{apt:?}"
    );
    let apt = root.run(&[
        "exec",
        "200",
        "--",
        "apt-get",
        "install",
        "-y",
        "no-such-package-kennel",
    ]);
    assert_eq!(
        apt.status.code(),
        Some(100),
        "{}",
        String::from_utf8_lossy(&apt.stderr)
    );
    let t0 = Instant::now();
    let out = root.ok(&["stop", "200", "--timeout", "120"]);
    assert!(
        out.contains("Stopped VE 200"),
        "systemd shut down by itself, without a kill: {out}"
    );
    assert!(t0.elapsed() < common::secs(120));
    assert_eq!(root.status("200")["last_exit"]["how"], "powered off");
    root.finish();
}
