//! Throughput against `tar | zstd`, and an incremental's cost, on a tree
//! of 1 GiB in 10,000 files. Ignored by default (it writes 1 GiB); run
//! with `cargo test --release -p kennel-storage perf -- --ignored
//! --nocapture`.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::*;
use crate::backup::read_index;

const FILES: usize = 10_000;
const FILE_SIZE: usize = 107_374; // 10,000 of them: 1 GiB

/// Text-like bytes (zstd -3 makes them about a third).
fn fill(seed: u64, out: &mut [u8]) {
    const WORDS: [&[u8]; 16] = [
        b"kennel ",
        b"backup ",
        b"layer ",
        b"zstd ",
        b"the ",
        b"of ",
        b"tenant ",
        b"file\n",
        b"0x1f2e ",
        b"root ",
        b"overlay ",
        b"upper ",
        b"inode ",
        b"sparse ",
        b"42 ",
        b"hole ",
    ];
    let mut x = seed | 1;
    let mut i = 0;
    while i < out.len() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let w = if x.is_multiple_of(3) {
            // Some incompressible noise.
            let n = (x >> 8).to_le_bytes();
            let k = n.len().min(out.len() - i);
            out[i..i + k].copy_from_slice(&n[..k]);
            i += k;
            continue;
        } else {
            WORDS[(x >> 60) as usize]
        };
        let k = w.len().min(out.len() - i);
        out[i..i + k].copy_from_slice(&w[..k]);
        i += k;
    }
}

fn build(t: &Path) {
    let mut buf = vec![0u8; FILE_SIZE];
    for d in 0..100 {
        let dir = t.join(format!("d{d:02}"));
        fs::create_dir_all(&dir).expect("mkdir");
        own(&dir, FROM.uid_base, FROM.gid_base);
        for f in 0..FILES / 100 {
            fill((d * 1000 + f) as u64, &mut buf);
            let p = dir.join(format!("f{f:03}"));
            fs::write(&p, &buf).expect("write");
            own(&p, FROM.uid_base, FROM.gid_base);
        }
    }
    own(t, FROM.uid_base, FROM.gid_base);
}

fn best(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    (0..runs).map(|_| f()).min().unwrap_or_default()
}

#[test]
#[ignore]
fn perf_one_gib_of_ten_thousand_files() {
    let top = Path::new("/var/tmp/kennel-backup-perf");
    let t = top.join("tree");
    if !t.join("d99/f099").exists() {
        let _ = fs::remove_dir_all(top);
        fs::create_dir_all(&t).expect("mkdir");
        build(&t);
    }
    let cmd = format!(
        "tar -C {} -cf - . | zstd -q -3 -T0 > /dev/null",
        t.display()
    );
    let tar = best(3, || {
        let s = Instant::now();
        let ok = Command::new("sh").arg("-c").arg(&cmd).status().expect("sh");
        assert!(ok.success());
        s.elapsed()
    });
    let full = top.join("full.kbk");
    let mut size = 0;
    let ours = best(3, || {
        let s = Instant::now();
        size = backup_file(&t, None, &full).compressed_bytes;
        s.elapsed()
    });
    let to_null = best(3, || {
        let s = Instant::now();
        let req = BackupRequest {
            tree: &t,
            ids: FROM,
            ve_conf: String::new(),
            template: TemplateRef::default(),
            base: None,
            compression: Compression::default(),
            template_tree: None,
        };
        let null = fs::File::create("/dev/null").expect("null");
        write_backup(null, &req, &|_| {}).expect("backup");
        s.elapsed()
    });
    println!(
        "full backup of 1 GiB / {FILES} files: ours {:.2?} (to /dev/null {:.2?}, {} MiB), tar|zstd -3 -T0 {:.2?}: {:.2}x",
        ours,
        to_null,
        size >> 20,
        tar,
        tar.as_secs_f64() / to_null.as_secs_f64()
    );
    // 10 MiB changed: 100 files rewritten.
    let mut buf = vec![0u8; FILE_SIZE];
    for i in 0..100 {
        let p = t.join(format!("d{i:02}/f000"));
        fill(777 + i as u64, &mut buf);
        fs::write(&p, &buf).expect("write");
    }
    let s = Instant::now();
    let base = read_index(&full).expect("index");
    let index_time = s.elapsed();
    let inc = top.join("inc.kbk");
    let r = backup_file(&t, Some(&base), &inc);
    let total = s.elapsed();
    println!(
        "incremental with 10 MiB changed: {total:.2?} in all, of which reading the base's index {index_time:.2?}; {} files unchanged, {} MiB stored",
        r.unchanged,
        r.layer_bytes >> 20
    );
    let s = Instant::now();
    crate::backup::verify(fs::File::open(&full).expect("open"), &|_| {}).expect("verify");
    println!("verify of the full backup: {:.2?}", s.elapsed());
    let dest = top.join("dest");
    let _ = fs::remove_dir_all(&dest);
    fs::create_dir(&dest).expect("mkdir");
    let s = Instant::now();
    let opts = crate::backup::RestoreOptions {
        over_prepared: false,
        ids: TO,
        limits: Default::default(),
    };
    crate::backup::restore_chain(
        [
            fs::File::open(&full).expect("open"),
            fs::File::open(&inc).expect("open"),
        ],
        &dest,
        &opts,
        &|_| {},
    )
    .expect("restore");
    println!("restore of the chain: {:.2?}", s.elapsed());
    let _ = fs::remove_dir_all(&dest);
}
