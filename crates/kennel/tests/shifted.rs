//! Where the template's filesystem cannot be idmapped (tmpfs before Linux
//! 6.3, 9p, ...), a VE gets a *shifted* layer instead: a metadata-only copy
//! of the template with the VE's ownership (docs/ARCHITECTURE.md,
//! "Storage"). Same behaviour for the VE either way.
//!
//! The state root here lives on tmpfs: on the cgroup v2 VM's 6.1 kernel
//! tmpfs has no idmapped mounts, so this exercises the fallback there; on a
//! newer host kernel it exercises the idmapped path on tmpfs.
#![allow(clippy::expect_used)] // test code: a failed expectation is a failed test

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;

use common::TestRoot;

#[test]
fn ves_work_the_same_on_a_filesystem_without_idmapped_mounts() {
    std::env::set_var("KENNEL_TEST_DIR", "/dev/shm/kennel-tests");
    let root = TestRoot::new("shifted");
    root.busybox();
    let tpl = root.dir.join("lib/templates/busybox/rootfs");
    // A set-user-ID file in the template must stay set-user-ID in the VE.
    fs::copy(tpl.join("bin/busybox"), tpl.join("bin/suid-busybox")).expect("copy");
    let st = std::process::Command::new("chmod")
        .arg("4755")
        .arg(tpl.join("bin/suid-busybox"))
        .status()
        .expect("chmod");
    assert!(st.success());
    root.ok(&["create", "101", "--template", "busybox"]);
    let layer = root.config("101")["storage"]["layer"]
        .as_str()
        .expect("layer")
        .to_string();
    if std::env::var_os("KP_GUEST").is_some() {
        assert_eq!(
            layer, "shifted",
            "the VM's tmpfs cannot be idmapped: the fallback must be used"
        );
    }
    root.ok(&["start", "101"]);
    assert_eq!(
        root.sh("101", "stat -c %u:%g /etc/passwd /bin/busybox")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["0:0", "0:0"]
    );
    assert_eq!(
        root.sh("101", "stat -c %a /bin/suid-busybox").trim(),
        "4755"
    );
    root.sh("101", "echo hi > /root/new; chown 1000:1000 /root/new");
    let base = root.config("101")["idmap"]["uid_base"]
        .as_u64()
        .expect("base") as u32;
    let md = root.with_upper("101", |u| {
        fs::metadata(u.join("root/new")).expect("new file")
    });
    assert_eq!((md.uid(), md.gid()), (base + 1000, base + 1000));
    // The template itself is never changed.
    let t = fs::metadata(tpl.join("etc/passwd")).expect("template passwd");
    assert_eq!((t.uid(), t.gid()), (0, 0));
    if layer == "shifted" {
        // Data is still the template's: only metadata was copied (on a
        // VE's ext4 disk the overlay's attributes may take one block).
        let up = root.with_upper("101", |u| {
            fs::metadata(u.join("bin/busybox")).expect("upper busybox")
        });
        assert!(
            up.blocks() <= 8 && up.len() > 100 << 10,
            "a shifted layer holds metadata only ({} blocks of a {}-byte file)",
            up.blocks(),
            up.len()
        );
    }
    root.finish();
}
