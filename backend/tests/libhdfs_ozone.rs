// SPDX-License-Identifier: Apache-2.0
//! The libhdfs backend against a running Ozone cluster (`ofs://`), when
//! OZONE_OM_ADDRESS (host:port) is set: `scripts/ozone-local start` then
//! `eval "$(scripts/ozone-local env)"`. Skips loudly otherwise, unless
//! OZBD_REQUIRE_OZONE=1: then every skip fails, also one inside a test (e.g.
//! when the Ozone shell cannot create the bucket a test needs). Each test works
//! in its own bucket under /ozbdtest. Throughput is measured by
//! `bench/engine-vs-libhdfs.sh`, not here.
#![cfg(feature = "libhdfs")]

mod libhdfs_common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use libhdfs_common::*;
use ozbd_backend::libhdfs::{LibhdfsBackend, LibhdfsOptions};
use ozbd_backend::{join, Backend, BackendError};

const VOLUME: &str = "/ozbdtest";

fn om_address(test: &str) -> Option<String> {
    match std::env::var("OZONE_OM_ADDRESS") {
        Ok(a) if !a.trim().is_empty() => {
            if jvm_env(test) {
                Some(a.trim().to_string())
            } else {
                None
            }
        }
        _ => {
            skip(
                test,
                "OZONE_OM_ADDRESS is not set (run: scripts/ozone-local start && \
                 eval \"$(scripts/ozone-local env)\")",
            );
            None
        }
    }
}

/// A connected backend and a fresh bucket path "/ozbdtest/<bucket>".
fn ozone(test: &str) -> Option<(LibhdfsBackend, String)> {
    let addr = om_address(test)?;
    let t = Instant::now();
    let be = LibhdfsBackend::connect(&format!("ofs://{addr}"), &LibhdfsOptions::default())
        .unwrap_or_else(|e| panic!("connect ofs://{addr}: {e}"));
    eprintln!(
        "{test}: connected to {} in {:?}",
        be.describe(),
        t.elapsed()
    );
    let bucket = join(VOLUME, &unique("b"));
    be.mkdirs(&bucket)
        .expect("mkdirs creates volume and bucket");
    Some((be, bucket))
}

fn ozone_local_script() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/ozone-local");
    p.exists().then_some(p)
}

/// `scripts/ozone-local sh ARGS`; None when the script is missing or fails.
fn ozone_sh(args: &[&str]) -> Option<String> {
    let script = ozone_local_script()?;
    let out = Command::new(script).arg("sh").args(args).output().ok()?;
    if !out.status.success() {
        eprintln!(
            "ozone sh {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn ozone_contract() {
    let Some((be, bucket)) = ozone("ozone_contract") else {
        return;
    };
    basic_contract(&be, &join(&bucket, "contract"));
    assert!(be.describe().starts_with("ofs://"));
    be.delete(&bucket, true).unwrap();
}

#[test]
fn ozone_concurrency() {
    let Some((be, bucket)) = ozone("ozone_concurrency") else {
        return;
    };
    let be: Arc<dyn Backend> = Arc::new(be);
    let t = Instant::now();
    let (puts, reads, transient) = concurrency_contract(be.clone(), &join(&bucket, "conc"), 6);
    eprintln!(
        "ozone concurrency: {puts} puts, {reads} reads, {transient} transient read errors in {:?}",
        t.elapsed()
    );
    be.delete(&bucket, true).unwrap();
}

#[test]
fn ozone_replication_is_three() {
    let Some((be, bucket)) = ozone("ozone_replication_is_three") else {
        return;
    };
    let f = join(&bucket, "r");
    be.put(&f, b"replicated").unwrap();
    let st = be.file_status(&f).unwrap().expect("status");
    assert_eq!(st.replication, 3, "{st:?}");
    be.delete(&bucket, true).unwrap();
}

/// The old version stays readable while the new one is written; the new one
/// appears at close; an abandoned write (what `put` does after a write error)
/// never becomes visible.
#[test]
fn ozone_overwrite_is_atomic_at_close() {
    let Some((be, bucket)) = ozone("ozone_overwrite_is_atomic_at_close") else {
        return;
    };
    let f = join(&bucket, "chunk");
    let v1 = pattern(3 << 20, 1);
    let v2 = pattern(5 << 20, 2);
    be.put(&f, &v1).unwrap();

    let pending = be.debug_begin_put(&f, &v2).unwrap();
    let mut buf = vec![0u8; 6 << 20];
    let n = be.read_at(&f, 0, &mut buf).unwrap();
    assert_eq!(
        &buf[..n],
        &v1[..],
        "old content while the new one is written"
    );
    assert_eq!(be.stat(&f).unwrap().unwrap().len, v1.len() as u64);
    pending.commit().unwrap();
    let n = be.read_at(&f, 0, &mut buf).unwrap();
    assert_eq!(&buf[..n], &v2[..], "new content after close");

    // Abandoned: written (even several MiB, so blocks reached the datanodes)
    // but never closed.
    let v3 = pattern(7 << 20, 3);
    drop(be.debug_begin_put(&f, &v3).unwrap());
    let n = be.read_at(&f, 0, &mut buf).unwrap();
    assert_eq!(&buf[..n], &v2[..], "abandoned write must not commit");
    // Abandoning a brand-new file leaves nothing.
    let g = join(&bucket, "never");
    drop(be.debug_begin_put(&g, b"partial").unwrap());
    assert!(be.stat(&g).unwrap().is_none());
    be.delete(&bucket, true).unwrap();
}

/// ofs refuses OBJECT_STORE buckets: the error must say so clearly.
#[test]
fn ozone_object_store_bucket_is_unsupported() {
    let Some((be, bucket)) = ozone("ozone_object_store_bucket_is_unsupported") else {
        return;
    };
    let obs = unique("obs");
    let obs_path = format!("{VOLUME}/{obs}");
    if ozone_sh(&["bucket", "create", "--layout", "OBJECT_STORE", &obs_path]).is_none() {
        be.delete(&bucket, true).unwrap();
        skip(
            "ozone_object_store_bucket_is_unsupported",
            "cannot create an OBJECT_STORE bucket",
        );
        return;
    }
    let e = be.put(&join(&obs_path, "k"), b"x").unwrap_err();
    eprintln!("put on an OBJECT_STORE bucket: {e}");
    assert!(matches!(e, BackendError::Unsupported { .. }), "{e:?}");
    assert!(e.to_string().contains("OBJECT_STORE"), "{e}");
    let e = be.mkdirs(&join(&obs_path, "d")).unwrap_err();
    eprintln!("mkdirs on an OBJECT_STORE bucket: {e}");
    assert!(matches!(e, BackendError::Unsupported { .. }), "{e:?}");
    let _ = ozone_sh(&["bucket", "delete", &obs_path]);
    be.delete(&bucket, true).unwrap();
}

/// LEGACY and FILE_SYSTEM_OPTIMIZED buckets look the same through the
/// FileSystem API (which is why `bucket_layout` asks the OM): a put creates
/// the parent directories, statuses match field by field, and the parents
/// outlive their only file in both. Only `bucket_layout` tells them apart.
#[test]
fn ozone_fso_and_legacy_look_alike() {
    const T: &str = "ozone_fso_and_legacy_look_alike";
    let Some((be, bucket)) = ozone(T) else {
        return;
    };
    let legacy = format!("{VOLUME}/{}", unique("leg"));
    if ozone_sh(&["bucket", "create", "--layout", "LEGACY", &legacy]).is_none() {
        be.delete(&bucket, true).unwrap();
        skip(T, "cannot create a LEGACY bucket");
        return;
    }
    // (name, is_dir, len, replication) of the bucket, dir, dir/sub and the
    // file, and whether dir/sub is still there after deleting the file.
    let shape = |b: &str| {
        let f = join(b, "dir/sub/file");
        be.put(&f, b"x").unwrap();
        let statuses: Vec<_> = [join(b, "dir"), join(b, "dir/sub"), f.clone()]
            .iter()
            .map(|p| {
                let st = be.file_status(p).unwrap().unwrap_or_else(|| panic!("{p}"));
                eprintln!("{T}: {p}: {st:?}");
                (st.info.name, st.info.is_dir, st.info.len, st.replication)
            })
            .collect();
        assert!(be.file_status(b).unwrap().expect("bucket").info.is_dir);
        be.delete(&f, false).unwrap();
        let parent_kept = be.stat(&join(b, "dir/sub")).unwrap().is_some();
        (statuses, parent_kept)
    };
    let fso = shape(&bucket);
    assert_eq!(
        fso,
        (
            vec![
                ("dir".to_string(), true, 0, 3),
                ("sub".to_string(), true, 0, 3),
                ("file".to_string(), false, 1, 3),
            ],
            true
        )
    );
    assert_eq!(shape(&legacy), fso, "LEGACY looks like FSO through ofs");
    let layout = |p: &str| {
        let (v, b) = p.trim_start_matches('/').split_once('/').unwrap();
        be.bucket_layout(v, b).unwrap()
    };
    assert_eq!(layout(&bucket).as_deref(), Some("FILE_SYSTEM_OPTIMIZED"));
    assert_eq!(layout(&legacy).as_deref(), Some("LEGACY"));
    be.delete(&legacy, true).unwrap();
    be.delete(&bucket, true).unwrap();
}

/// `scripts/ozone-local sh ARGS` that may find its object already there.
fn ozone_sh_idempotent(args: &[&str]) -> bool {
    let Some(script) = ozone_local_script() else {
        return false;
    };
    let Ok(out) = Command::new(script).arg("sh").args(args).output() else {
        return false;
    };
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || err.contains("ALREADY_EXISTS") || err.contains("already exists") {
        return true;
    }
    eprintln!("ozone sh {args:?} failed: {err}");
    false
}

/// `bucket_layout` reads the layout through the ofs client: LEGACY and FSO
/// (which look the same through the FileSystem API), links, missing buckets.
#[test]
fn ozone_bucket_layout() {
    let Some((be, bucket)) = ozone("ozone_bucket_layout") else {
        return;
    };
    let ok = ozone_sh_idempotent(&["volume", "create", "/ozbdlayout"])
        && ozone_sh_idempotent(&[
            "bucket",
            "create",
            "--layout",
            "LEGACY",
            "/ozbdlayout/legacybkt",
        ])
        && ozone_sh_idempotent(&[
            "bucket",
            "create",
            "--layout",
            "FILE_SYSTEM_OPTIMIZED",
            "/ozbdlayout/fsobkt",
        ]);
    if !ok {
        be.delete(&bucket, true).unwrap();
        skip("ozone_bucket_layout", "cannot create the test buckets");
        return;
    }
    let layout = |v: &str, b: &str| be.bucket_layout(v, b);

    let t = Instant::now();
    assert_eq!(
        layout("ozbdlayout", "legacybkt").unwrap().as_deref(),
        Some("LEGACY")
    );
    let first = t.elapsed();
    assert_eq!(
        layout("ozbdlayout", "fsobkt").unwrap().as_deref(),
        Some("FILE_SYSTEM_OPTIMIZED")
    );
    // A bucket made by ofs mkdirs (what `ozbd create` does) is FSO.
    let (vol, bkt) = bucket.trim_start_matches('/').split_once('/').unwrap();
    assert_eq!(
        layout(vol, bkt).unwrap().as_deref(),
        Some("FILE_SYSTEM_OPTIMIZED")
    );
    for (v, b) in [("ozbdlayout", "nosuchbucket"), ("nosuchvolume-ozbd", "b")] {
        match layout(v, b) {
            Err(BackendError::NotFound { path }) => assert_eq!(path, format!("/{v}/{b}")),
            r => panic!("/{v}/{b}: expected NotFound, got {r:?}"),
        }
    }
    assert!(layout("", "b").is_err());
    assert!(layout("ozbdlayout", "a/b").is_err());
    // No Java exception is left pending: ordinary calls still work.
    assert!(be.stat("/ozbdlayout/fsobkt").unwrap().is_some());

    // A link reports the layout of its source bucket.
    for (src, link, want) in [
        ("legacybkt", "linktolegacy", "LEGACY"),
        ("fsobkt", "linktofso", "FILE_SYSTEM_OPTIMIZED"),
    ] {
        let (src, link) = (format!("/ozbdlayout/{src}"), format!("/ozbdlayout/{link}"));
        if ozone_sh_idempotent(&["bucket", "link", &src, &link]) {
            let name = link.rsplit('/').next().unwrap();
            assert_eq!(
                layout("ozbdlayout", name).unwrap().as_deref(),
                Some(want),
                "{link}"
            );
        } else {
            skip(
                "ozone_bucket_layout",
                &format!("cannot create the link {link}"),
            );
        }
    }

    let n = 50;
    let t = Instant::now();
    for _ in 0..n {
        layout("ozbdlayout", "fsobkt").unwrap();
    }
    eprintln!(
        "bucket_layout: first call {first:?}, then {:?} per call (mean of {n})",
        t.elapsed() / n
    );

    // From fresh threads (libhdfs attaches each one).
    let be = Arc::new(be);
    let hs: Vec<_> = (0..4)
        .map(|_| {
            let be = be.clone();
            std::thread::spawn(move || {
                for _ in 0..10 {
                    assert_eq!(
                        be.bucket_layout("ozbdlayout", "legacybkt")
                            .unwrap()
                            .as_deref(),
                        Some("LEGACY")
                    );
                    assert!(be.bucket_layout("ozbdlayout", "nosuchbucket").is_err());
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }

    // file:// has no buckets.
    let local = LibhdfsBackend::connect("file:///", &LibhdfsOptions::default()).unwrap();
    assert_eq!(local.bucket_layout("ozbdlayout", "fsobkt").unwrap(), None);

    be.delete(&bucket, true).unwrap();
}

/// A put over a space quota fails at once with EDQUOT (never EIO, which the
/// engine would retry), says that the quota is full and how to raise it, and
/// leaves nothing behind. Ozone checks a bucket's space quota when the file
/// is created, against one block per replica (3 x 256 MiB), so a 1 MB quota
/// refuses any file. A volume with a space quota makes Ozone refuse buckets
/// without one (ofs creates buckets without a quota): EDQUOT too.
#[test]
fn ozone_quota_is_edquot() {
    const T: &str = "ozone_quota_is_edquot";
    let Some((be, bucket)) = ozone(T) else {
        return;
    };
    let quota_bucket = format!("{VOLUME}/{}", unique("quota"));
    if ozone_sh(&["bucket", "create", "--space-quota", "1MB", &quota_bucket]).is_none() {
        skip(T, "cannot create a bucket with a space quota");
        return;
    }
    let check = |path: &str, hint: &str| {
        let t = Instant::now();
        let e = be.put(path, &pattern(4 << 20, 1)).unwrap_err();
        eprintln!("{T}: put {path} after {:?}: {e}", t.elapsed());
        match &e {
            BackendError::Io { errno, msg, .. } => {
                assert_eq!(*errno, 122, "EDQUOT expected: {e}");
                assert!(msg.contains("quota"), "{msg}");
                assert!(msg.contains(hint), "the error must say what to do: {msg}");
            }
            _ => panic!("expected Io EDQUOT, got {e:?}"),
        }
        assert_eq!(e.errno(), 122);
        assert!(be.stat(path).unwrap().is_none(), "a failed put left {path}");
    };
    check(
        &join(&quota_bucket, "chunks/0000000000000000"),
        &format!("ozone sh bucket setquota --space-quota <size> {quota_bucket}"),
    );

    let quota_volume = format!("/{}", unique("ozbdvq"));
    if ozone_sh(&["volume", "create", "--space-quota", "10MB", &quota_volume]).is_none() {
        skip(T, "cannot create a volume with a space quota");
        return;
    }
    let in_volume = format!("{quota_volume}/disks");
    check(
        &join(&in_volume, "chunk"),
        &format!("ozone sh bucket create --space-quota <size> {in_volume}"),
    );
    // A bucket with its own quota inside that volume: its quota is the limit.
    if ozone_sh(&["bucket", "create", "--space-quota", "5MB", &in_volume]).is_none() {
        skip(
            T,
            "cannot create a bucket with a space quota in a volume with one",
        );
        return;
    }
    check(
        &join(&in_volume, "chunk"),
        &format!("ozone sh bucket setquota --space-quota <size> {in_volume}"),
    );

    for p in [&quota_bucket, &in_volume, &bucket] {
        be.delete(p, true).unwrap();
    }
    // ofs deletes a volume only when it is empty and not recursively.
    be.delete(&quota_volume, false).unwrap();
}

/// A backend with the journal's client keys (the engine passes them as
/// defaults; see chunkstore/src/defaults.rs), or with `hsync` left off.
fn ozone_hsync(test: &str, enabled: bool) -> Option<(LibhdfsBackend, String)> {
    let addr = om_address(test)?;
    let v = if enabled { "true" } else { "false" };
    let opts = LibhdfsOptions {
        conf: vec![
            ("ozone.client.hbase.enhancements.allowed".into(), v.into()),
            ("ozone.fs.hsync.enabled".into(), v.into()),
        ],
        ..LibhdfsOptions::default()
    };
    let be = LibhdfsBackend::connect(&format!("ofs://{addr}"), &opts)
        .unwrap_or_else(|e| panic!("connect ofs://{addr}: {e}"));
    let bucket = join(VOLUME, &unique("h"));
    be.mkdirs(&bucket)
        .expect("mkdirs creates volume and bucket");
    Some((be, bucket))
}

/// What the journal relies on: after `hsync`, a reader that opens the file
/// sees the synced bytes (stat length and content) while the writer keeps it
/// open; an abandoned (never closed) file keeps its hsynced bytes, drops the
/// unsynced tail, and can be deleted; without the client keys, hsync does not
/// publish the length (the journal detects this and falls back).
#[test]
fn ozone_hsync_publishes_length_and_survives_abandon() {
    let Some((be, bucket)) = ozone_hsync("ozone_hsync_publishes_length_and_survives_abandon", true)
    else {
        return;
    };
    let f = join(&bucket, "seg");
    let a = pattern(10_000, 7);
    let b = pattern(5_000, 8);
    {
        let mut w = be.create_append(&f).unwrap();
        w.append(&a).unwrap();
        w.hsync().unwrap();
        assert_eq!(
            be.stat(&f).unwrap().unwrap().len,
            a.len() as u64,
            "length after hsync"
        );
        let mut buf = vec![0u8; 20_000];
        let n = be.read_at(&f, 0, &mut buf).unwrap();
        assert_eq!(&buf[..n], &a[..], "a new reader sees the hsynced bytes");
        w.append(&b).unwrap();
        w.hsync().unwrap();
        let n = be.read_at(&f, 0, &mut buf).unwrap();
        assert_eq!(
            n,
            a.len() + b.len(),
            "second hsync extends what readers see"
        );
        w.append(&pattern(3_000, 9)).unwrap();
        // Dropped without close: abandoned, like a writer that died.
    }
    let mut buf = vec![0u8; 20_000];
    let n = be.read_at(&f, 0, &mut buf).unwrap();
    assert_eq!(
        n,
        a.len() + b.len(),
        "abandoned: the hsynced bytes stay, the tail does not"
    );
    assert_eq!(&buf[..a.len()], &a[..]);
    assert!(
        be.delete(&f, false).unwrap(),
        "an abandoned open file can be deleted"
    );
    assert!(be.stat(&f).unwrap().is_none());

    let Some((off, ob)) = ozone_hsync("ozone_hsync_publishes_length_and_survives_abandon", false)
    else {
        return;
    };
    let g = join(&ob, "seg");
    let mut w = off.create_append(&g).unwrap();
    w.append(&a).unwrap();
    let synced = w.hsync();
    let len = off.stat(&g).unwrap().map(|i| i.len).unwrap_or(0);
    eprintln!("hsync without the client keys: {synced:?}, visible length {len}");
    assert!(
        synced.is_err() || len == 0,
        "without the keys hsync must not look durable (it degrades to flush)"
    );
    drop(w);
    be.delete(&bucket, true).unwrap();
    off.delete(&ob, true).unwrap();
}

#[test]
fn ozone_open_handle_reads_many_times_and_never_the_next_version() {
    let Some((be, bucket)) = ozone("ozone_open_handle_reads_many_times_and_never_the_next_version")
    else {
        return;
    };
    let f = join(&bucket, "chunk");
    let v1 = pattern(1 << 20, 1);
    let v2 = pattern(1 << 20, 2);
    be.put(&f, &v1).unwrap();
    let mut h = be.open_read(&f).unwrap().expect("libhdfs has open handles");
    let mut buf = vec![0u8; 4096];
    for off in [0usize, 512 << 10, (1 << 20) - 4096, 8192] {
        assert_eq!(h.read_at(off as u64, &mut buf).unwrap(), 4096);
        assert_eq!(&buf[..], &v1[off..off + 4096], "read at {off}");
    }
    assert_eq!(h.read_at(1 << 20, &mut buf).unwrap(), 0, "end of file");
    // Odd offsets and lengths, and a read across the end: short, not an error.
    for (off, len) in [
        (1usize, 1usize),
        (4095, 4097),
        (333_333, 70_001),
        ((1 << 20) - 100, 4096),
    ] {
        let mut b = vec![0u8; len];
        let want = len.min((1 << 20) - off);
        assert_eq!(
            h.read_at(off as u64, &mut b).unwrap(),
            want,
            "read {len} at {off}"
        );
        assert_eq!(&b[..want], &v1[off..off + want], "read {len} at {off}");
    }
    let (direct, by_array) = be.read_counts();
    assert!(
        direct >= 8 && by_array == 0,
        "Ozone's stream reads straight into our buffer (read(long, ByteBuffer)): \
         {direct} direct reads, {by_array} through a Java array (a copy each)"
    );
    be.put(&f, &v2).unwrap();
    // The open stream holds the old key version's blocks: it reads the old
    // data (or fails once they are gone), never the new version. This is why
    // the engine reopens a chunk's handle after it rewrites the chunk.
    match h.read_at(0, &mut buf) {
        Ok(n) => {
            assert_eq!(n, 4096);
            assert_eq!(
                &buf[..],
                &v1[..4096],
                "an open handle reads the version it opened"
            );
            eprintln!("old handle after overwrite: reads the old version");
        }
        Err(e) => eprintln!("old handle after overwrite: fails ({e})"),
    }
    drop(h);
    let mut h = be.open_read(&f).unwrap().unwrap();
    assert_eq!(h.read_at(0, &mut buf).unwrap(), 4096);
    assert_eq!(&buf[..], &v2[..4096], "a new handle reads the new version");
    assert!(matches!(
        be.open_read(&join(&bucket, "absent")),
        Err(BackendError::NotFound { .. })
    ));
    be.delete(&bucket, true).unwrap();
}

/// A rename keeps the key's modification time (the OM does not stamp it),
/// so the writer lease cannot renew itself by a rename, one OM call: its
/// age is read from that time (docs/performance.md "Idle, profiled").
#[test]
fn ozone_rename_keeps_the_mtime() {
    let Some((be, b)) = ozone("ozone_rename_keeps_the_mtime") else {
        return;
    };
    let a = join(&b, "a");
    be.put(&a, b"x").expect("put");
    let before = be.stat(&a).expect("stat").expect("exists").mtime_ms;
    std::thread::sleep(std::time::Duration::from_millis(2_500));
    let c = join(&b, "c");
    be.rename(&a, &c).expect("rename");
    let after = be.stat(&c).expect("stat").expect("exists").mtime_ms;
    assert_eq!(
        before, after,
        "the OM now stamps a renamed key: the lease could renew by rename"
    );
}

/// `put_in_dir` creates no directory, and a put whose directory (or one
/// above it) is renamed between its create and its commit fails and leaves
/// no file anywhere: the engine's fencing of chunk puts rests on this
/// (chunkstore `lease/fence.rs`).
#[test]
fn ozone_put_in_dir_never_outlives_its_directory() {
    let Some((be, b)) = ozone("ozone_put_in_dir_never_outlives_its_directory") else {
        return;
    };
    let root = join(&b, "e1");
    let dir = join(&root, "chunks");
    be.mkdirs(&dir).expect("mkdirs");
    let f = join(&dir, "c0");
    let v1 = pattern(5 << 20, 1);
    let v2 = pattern(4 << 20, 2);
    assert!(
        be.put_in_dir(&f, &v1)
            .expect("put into an existing directory"),
        "ofs keeps the put_in_dir promise"
    );
    assert!(be.put_in_dir(&f, &v2).expect("overwrite"));
    let mut buf = vec![0u8; 6 << 20];
    let n = be.read_at(&f, 0, &mut buf).expect("read");
    assert_eq!(&buf[..n], &v2[..], "the overwrite's content");

    // A missing directory: NotFound, and it stays missing.
    let missing = join(&b, "gone/chunks");
    match be.put_in_dir(&join(&missing, "c0"), b"x") {
        Err(BackendError::NotFound { .. }) => {}
        r => panic!("put_in_dir into a missing directory: {r:?}"),
    }
    assert!(be.stat(&join(&b, "gone")).expect("stat").is_none());

    // The fencing move: the root above the file's directory is renamed after
    // the create and before the commit.
    for (moved, to) in [(&root, join(&b, "e2")), (&dir, join(&root, "moved"))] {
        let g = join(&dir, "c1");
        let mut renamed = false;
        let r = be.put_in_dir_with(&g, &v1, &mut || {
            be.rename(moved, &to)
                .expect("rename between create and commit");
            renamed = true;
        });
        assert!(renamed);
        assert!(r.is_err(), "a put committed after {moved} moved: {r:?}");
        eprintln!("put after {moved} moved: {r:?}");
        assert!(
            be.stat(&g).expect("stat").is_none(),
            "nothing at the old path"
        );
        let moved_file = join(&to, &g[moved.len() + 1..]);
        assert!(
            be.stat(&moved_file).expect("stat").is_none(),
            "nothing under the new name {moved_file}"
        );
        assert!(
            be.stat(moved).expect("stat").is_none(),
            "{moved} was not recreated"
        );
        be.rename(&to, moved).expect("move back");
    }
    be.delete(&b, true).unwrap();
}
