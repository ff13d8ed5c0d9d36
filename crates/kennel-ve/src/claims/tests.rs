//! The index's crash and repair cases, on a real state root in a
//! temporary directory (VEs as configuration files only). `Kennel::open`
//! wants root, as the tests of this workspace run.

use super::*;
use crate::lifecycle::Executables;

struct Root {
    _dir: tempfile::TempDir,
    kennel: Kennel,
}

fn root() -> Root {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = Executables {
        kennel: "/bin/false".into(),
        monitor: "/bin/false".into(),
    };
    let kennel = Kennel::open(Some(dir.path()), exe).expect("open the state root");
    Root { _dir: dir, kennel }
}

impl Root {
    fn grid(&self) -> Grid {
        Grid {
            base: crate::host_config::DEFAULT_IDMAP_BASE,
            slots: 8,
        }
    }

    fn claims(&self) -> Claims<'_> {
        let dir = self.kennel.paths().lib.join("claims");
        Claims::open(&self.kennel, dir, self.grid())
            .expect("open the index")
            .0
    }

    /// VE `id` on slot `slot` with address `ip`, as a finished create
    /// leaves it.
    fn ve(&self, id: &str, slot: u32, ip: &str) -> VeConfig {
        let mut cfg = crate::config::tests::sample();
        cfg.id = VeId::parse(id).expect("id");
        cfg.uuid = format!("00000000-0000-4000-8000-{slot:012}");
        let base = self.grid().slot_base(slot);
        cfg.idmap = IdRange {
            uid_base: base,
            gid_base: base,
            size: IDS_PER_VE,
        };
        cfg.network.ips = vec![format!("{ip}/32").parse().expect("ip")];
        let path = self.kennel.paths().ve_config(&cfg.id);
        fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        cfg.save(&path).expect("save");
        cfg
    }
}

fn addr(ip: &str) -> Thing {
    Thing::Addr(ip.parse().expect("ip"))
}

#[test]
fn a_root_without_an_index_gets_one_from_its_configurations() {
    let r = root();
    r.ve("101", 0, "192.0.2.1");
    r.ve("102", 2, "192.0.2.2");
    let c = r.claims();
    assert!(c.is_complete());
    let me = VeId::parse("103").expect("id");
    let err = c.check(&me, &[addr("192.0.2.2")]).expect_err("taken");
    assert!(err.to_string().contains("VE 102"), "{err}");
    assert_eq!(c.allocate().expect("alloc").uid_base, r.grid().slot_base(1));
}

#[test]
fn an_unreadable_configuration_stops_the_build() {
    let r = root();
    r.ve("101", 0, "192.0.2.1");
    fs::write(
        r.kennel.paths().ve_config(&VeId::parse("101").expect("id")),
        "junk",
    )
    .expect("write");
    let dir = r.kennel.paths().lib.join("claims");
    assert!(Claims::open(&r.kennel, dir.clone(), r.grid()).is_err());
    assert!(!dir.join(COMPLETE).exists(), "no marker on a failed build");
}

#[test]
fn a_crashed_create_leaves_a_stale_claim_that_is_swept() {
    let r = root();
    let c = r.claims();
    // A create that claimed and died before its VE existed.
    let ghost = VeId::parse("105").expect("id");
    c.take(&ghost, &[addr("192.0.2.5"), Thing::Slot(0)])
        .expect("take");
    let me = VeId::parse("106").expect("id");
    c.take(&me, &[addr("192.0.2.5")])
        .expect("a stale claim is no clash");
    assert_eq!(
        c.holder_at(&addr("192.0.2.5").path()).as_deref(),
        Some("106")
    );
    // The stale slot is found by the full pass once the rest is taken.
    for i in 1..8 {
        c.take(&me, &[Thing::Slot(i)]).expect("take");
    }
    assert_eq!(c.allocate().expect("alloc").uid_base, r.grid().slot_base(0));
}

#[test]
fn a_claim_whose_holder_has_it_is_never_swept() {
    let r = root();
    r.ve("101", 0, "192.0.2.1");
    let c = r.claims();
    let me = VeId::parse("102").expect("id");
    assert!(c.take(&me, &[addr("192.0.2.1")]).is_err());
    assert!(c.take(&me, &[Thing::Slot(0)]).is_err());
    // Unreadable: kept, as its things might be in it.
    fs::write(
        r.kennel.paths().ve_config(&VeId::parse("101").expect("id")),
        "junk",
    )
    .expect("write");
    assert!(c.take(&me, &[addr("192.0.2.1")]).is_err());
}

#[test]
fn the_hint_never_skips_a_free_slot() {
    let r = root();
    let c = r.claims();
    let me = VeId::parse("101").expect("id");
    for want in 0..3 {
        let got = c.allocate().expect("alloc");
        assert_eq!(got.uid_base, r.grid().slot_base(want));
        c.take(&me, &[Thing::Slot(want)]).expect("take");
    }
    c.release(&me, &[Thing::Slot(1)]).expect("release");
    assert_eq!(c.allocate().expect("alloc").uid_base, r.grid().slot_base(1));
    // A hint below the lowest free slot (a crash between lowering it
    // and releasing) costs a few stats, never a slot.
    c.set_hint(0).expect("hint");
    assert_eq!(c.allocate().expect("alloc").uid_base, r.grid().slot_base(1));
}

#[test]
fn a_rename_cut_short_is_settled_by_the_next_command() {
    let r = root();
    let cfg = r.ve("101", 0, "192.0.2.1");
    let c = r.claims();
    let (from, to) = (
        VeId::parse("101").expect("id"),
        VeId::parse("201").expect("id"),
    );
    c.begin_rename(&from, &to).expect("journal");
    // The VE moved, and the command died before its claims followed.
    let mut moved = cfg.clone();
    moved.id = to.clone();
    let paths = r.kennel.paths();
    fs::rename(paths.ve_dir(&from), paths.ve_dir(&to)).expect("move");
    moved.save(&paths.ve_config(&to)).expect("save");
    drop(c);
    let c = r.claims();
    assert_eq!(
        c.holder_at(&addr("192.0.2.1").path()).as_deref(),
        Some("201")
    );
    assert_eq!(c.holder_at(&Thing::Slot(0).path()).as_deref(), Some("201"));
    assert!(read_link(&c.dir.join(RENAMING)).is_none());
    let other = VeId::parse("102").expect("id");
    assert!(c.check(&other, &[addr("192.0.2.1")]).is_err());
}

#[test]
fn a_changed_grid_builds_the_index_again() {
    let r = root();
    r.ve("101", 3, "192.0.2.1");
    let _ = r.claims();
    let dir = r.kennel.paths().lib.join("claims");
    let wider = Grid {
        slots: 16,
        ..r.grid()
    };
    let (c, built) = Claims::open(&r.kennel, dir, wider).expect("open");
    assert!(built);
    assert_eq!(c.holder_at(&Thing::Slot(3).path()).as_deref(), Some("101"));
}
