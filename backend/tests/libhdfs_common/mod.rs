// SPDX-License-Identifier: Apache-2.0
//! Shared by the libhdfs integration tests (`libhdfs_local.rs`, `libhdfs_ozone.rs`):
//! the environment gate and the backend contract both run against.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ozbd_backend::{join, Backend, BackendError};

/// Whether `OZBD_REQUIRE_OZONE=1`: every skip is then a failure.
pub fn require_ozone() -> bool {
    std::env::var("OZBD_REQUIRE_OZONE").as_deref() == Ok("1")
}

/// A test cannot do its work (`why`): prints a loud SKIPPED line, or panics
/// when `OZBD_REQUIRE_OZONE=1`. The caller returns right after.
pub fn skip(test: &str, why: &str) {
    if require_ozone() {
        panic!("{test}: {why}, and OZBD_REQUIRE_OZONE=1 makes this test mandatory");
    }
    eprintln!("SKIPPED: {test}: {why}");
}

/// True when the JVM environment is there. Otherwise prints a loud SKIPPED line
/// and returns false, or panics when `OZBD_REQUIRE_OZONE=1`.
pub fn jvm_env(test: &str) -> bool {
    if std::env::var("CLASSPATH").is_ok_and(|c| !c.trim().is_empty()) {
        return true;
    }
    skip(
        test,
        "CLASSPATH is not set (run: eval \"$(scripts/ozone-local env)\")",
    );
    false
}

/// A name unique to this process and call.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}{}-{:x}-{}",
        std::process::id(),
        t & 0xffff_ffff,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn read_all(be: &dyn Backend, path: &str, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len + 17];
    let n = be.read_at(path, 0, &mut buf).expect("read_at");
    buf.truncate(n);
    buf
}

/// The file contract: put/read/overwrite/delete/list/stat/mkdirs under `base`
/// (which must not exist yet).
pub fn basic_contract(be: &dyn Backend, base: &str) {
    assert!(be.stat(base).unwrap().is_none(), "{base} exists already");
    be.mkdirs(base).unwrap();
    be.mkdirs(base).unwrap(); // idempotent
    let st = be.stat(base).unwrap().expect("dir after mkdirs");
    assert!(st.is_dir);
    assert_eq!(be.list(base).unwrap(), vec![], "fresh dir is empty");

    let dir = join(base, "d");
    let a = join(&dir, "a");
    // Missing things.
    assert!(matches!(
        be.read_at(&a, 0, &mut [0u8; 4]),
        Err(BackendError::NotFound { .. })
    ));
    assert!(be.stat(&a).unwrap().is_none());
    assert!(matches!(be.list(&dir), Err(BackendError::NotFound { .. })));
    assert!(!be.delete(&a, false).unwrap());

    // put creates the parent directory.
    let v1 = pattern(100_000, 1);
    be.put(&a, &v1).unwrap();
    assert_eq!(read_all(be, &a, v1.len()), v1);
    let st = be.stat(&a).unwrap().expect("stat after put");
    assert_eq!((st.name.as_str(), st.len, st.is_dir), ("a", 100_000, false));
    assert!(be.stat(&dir).unwrap().expect("parent").is_dir);

    // Offsets, short reads at the end, reads past the end.
    let mut buf = vec![0u8; 1000];
    assert_eq!(be.read_at(&a, 5000, &mut buf).unwrap(), 1000);
    assert_eq!(&buf[..], &v1[5000..6000]);
    assert_eq!(be.read_at(&a, 99_500, &mut buf).unwrap(), 500);
    assert_eq!(&buf[..500], &v1[99_500..]);
    assert_eq!(be.read_at(&a, 100_000, &mut buf).unwrap(), 0);
    assert_eq!(be.read_at(&a, 1 << 40, &mut buf).unwrap(), 0);
    assert_eq!(be.read_at(&a, 0, &mut []).unwrap(), 0);

    // Overwrite: shorter, then longer, then empty.
    let v2 = pattern(777, 2);
    be.put(&a, &v2).unwrap();
    assert_eq!(read_all(be, &a, 100_000), v2);
    let v3 = pattern(300_001, 3);
    be.put(&a, &v3).unwrap();
    assert_eq!(read_all(be, &a, v3.len()), v3);
    assert_eq!(be.stat(&a).unwrap().unwrap().len, 300_001);
    let e = join(&dir, "empty");
    be.put(&e, &[]).unwrap();
    assert_eq!(be.stat(&e).unwrap().unwrap().len, 0);
    assert_eq!(be.read_at(&e, 0, &mut buf).unwrap(), 0);

    // list: names are last components, sorted by us, temp files hidden.
    be.mkdirs(&join(&dir, "sub")).unwrap();
    let mut names: Vec<(String, u64, bool)> = be
        .list(&dir)
        .unwrap()
        .into_iter()
        .map(|f| (f.name, if f.is_dir { 0 } else { f.len }, f.is_dir))
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            ("a".to_string(), 300_001, false),
            ("empty".to_string(), 0, false),
            ("sub".to_string(), 0, true),
        ]
    );

    // delete: file, absent file, non-empty dir without and with recursion.
    assert!(be.delete(&e, false).unwrap());
    assert!(!be.delete(&e, false).unwrap());
    assert!(be.stat(&e).unwrap().is_none());
    be.put(&join(&dir, "sub/x"), b"x").unwrap();
    assert!(
        be.delete(&dir, false).is_err(),
        "non-recursive delete of a non-empty dir"
    );
    assert!(be.stat(&a).unwrap().is_some());
    assert!(be.delete(&dir, true).unwrap());
    assert!(be.stat(&dir).unwrap().is_none());
    rename_contract(be, &join(base, "rn"));
    assert!(be.delete(base, true).unwrap());
    assert!(be.stat(base).unwrap().is_none());
}

/// Rename never replaces (the writer lease relies on it), moves whole
/// directories, and says which of "no source" and "target exists" it hit;
/// files carry a modification time.
fn rename_contract(be: &dyn Backend, dir: &str) {
    let (a, b) = (join(dir, "a"), join(dir, "b"));
    be.put(&a, b"first").unwrap();
    let mtime = be.stat(&a).unwrap().unwrap().mtime_ms;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        mtime > 0 && mtime.abs_diff(now) < 600_000,
        "mtime {mtime}, now {now}"
    );
    be.rename(&a, &b).unwrap();
    assert!(be.stat(&a).unwrap().is_none());
    assert_eq!(read_all(be, &b, 5), b"first");
    be.put(&a, b"second").unwrap();
    match be.rename(&a, &b) {
        Err(BackendError::Io { errno: 17, .. }) => {}
        r => panic!("rename onto an existing file must fail with EEXIST: {r:?}"),
    }
    assert_eq!(read_all(be, &b, 5), b"first", "the target is untouched");
    assert_eq!(read_all(be, &a, 6), b"second", "the source is untouched");
    assert!(matches!(
        be.rename(&join(dir, "nope"), &join(dir, "c")),
        Err(BackendError::NotFound { .. })
    ));
    let moved = format!("{dir}-moved");
    be.rename(dir, &moved).unwrap();
    assert!(be.stat(dir).unwrap().is_none());
    assert_eq!(read_all(be, &join(&moved, "b"), 5), b"first");
    assert!(be.delete(&moved, true).unwrap());
}

/// 8 threads: each puts and reads back its own files, and all of them put and
/// read one shared file. Every version of the shared file is one byte value
/// repeated with a fixed length, so a reader can spot a mix of two versions.
/// Returns (put count, read count, transient read errors on the shared file).
pub fn concurrency_contract(be: Arc<dyn Backend>, base: &str, rounds: usize) -> (u64, u64, u64) {
    const LEN: usize = 256 * 1024;
    be.mkdirs(base).unwrap();
    let shared = join(base, "shared");
    be.put(&shared, &vec![0u8; LEN]).unwrap();
    let puts = Arc::new(AtomicU64::new(0));
    let reads = Arc::new(AtomicU64::new(0));
    let transient = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..8u8)
        .map(|t| {
            let (be, base, shared) = (be.clone(), base.to_string(), shared.clone());
            let (puts, reads, transient, failed) = (
                puts.clone(),
                reads.clone(),
                transient.clone(),
                failed.clone(),
            );
            std::thread::spawn(move || {
                let run = || {
                    let own = join(&base, &format!("own-{t}"));
                    for r in 0..rounds {
                        let data = pattern(64 * 1024 + r * 100 + t as usize, t ^ r as u8);
                        be.put(&own, &data).unwrap();
                        puts.fetch_add(1, Ordering::Relaxed);
                        assert_eq!(read_all(&*be, &own, data.len()), data, "own file {own}");
                        if t % 2 == 0 {
                            let v = 1 + t.wrapping_mul(16).wrapping_add(r as u8);
                            be.put(&shared, &vec![v; LEN]).unwrap();
                            puts.fetch_add(1, Ordering::Relaxed);
                        }
                        let mut buf = vec![0u8; LEN + 1];
                        let mut tries = 0;
                        loop {
                            match be.read_at(&shared, 0, &mut buf) {
                                Ok(n) => {
                                    assert_eq!(n, LEN, "shared file length");
                                    let v = buf[0];
                                    let mixed = buf[..n].iter().position(|b| *b != v);
                                    assert!(mixed.is_none(), "mixed versions at byte {mixed:?}");
                                    reads.fetch_add(1, Ordering::Relaxed);
                                    break;
                                }
                                // Ozone: a reader whose block list was swapped away
                                // underneath may fail; it must reopen, never mix.
                                Err(e) if tries < 3 => {
                                    eprintln!("transient read error on shared file: {e}");
                                    transient.fetch_add(1, Ordering::Relaxed);
                                    tries += 1;
                                }
                                Err(e) => panic!("reading the shared file: {e}"),
                            }
                        }
                    }
                };
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(!failed.load(Ordering::Relaxed), "a worker thread failed");
    assert!(be.delete(base, true).unwrap());
    (
        puts.load(Ordering::Relaxed),
        reads.load(Ordering::Relaxed),
        transient.load(Ordering::Relaxed),
    )
}

/// Time `n` puts and `n` full reads of `len`-byte files; returns per-op means.
pub fn timing(be: &dyn Backend, base: &str, len: usize, n: usize) -> (Duration, Duration) {
    be.mkdirs(base).unwrap();
    let data = pattern(len, 9);
    let t0 = Instant::now();
    for i in 0..n {
        be.put(&join(base, &format!("t{i}")), &data).unwrap();
    }
    let put = t0.elapsed() / n as u32;
    let mut buf = vec![0u8; len];
    let t1 = Instant::now();
    for i in 0..n {
        assert_eq!(
            be.read_at(&join(base, &format!("t{i}")), 0, &mut buf)
                .unwrap(),
            len
        );
    }
    let read = t1.elapsed() / n as u32;
    assert_eq!(buf, data);
    be.delete(base, true).unwrap();
    (put, read)
}
