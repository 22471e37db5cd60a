// SPDX-License-Identifier: Apache-2.0
//! The libhdfs backend on `file://` (a temp dir), through the whole libhdfs/JVM
//! path. Needs CLASSPATH (hadoop-common, hadoop-hdfs-client, commons-lang3):
//! `eval "$(scripts/ozone-local env)"`. Skips loudly without it, unless
//! OZBD_REQUIRE_OZONE=1.
#![cfg(feature = "libhdfs")]

mod libhdfs_common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use libhdfs_common::*;
use ozbd_backend::libhdfs::{LibhdfsBackend, LibhdfsOptions};
use ozbd_backend::{join, Backend, BackendError};

fn local() -> Option<(LibhdfsBackend, String)> {
    if !jvm_env("libhdfs_local") {
        return None;
    }
    let be =
        LibhdfsBackend::connect("file:///", &LibhdfsOptions::default()).expect("connect file:///");
    let base = std::env::temp_dir().join(unique("ozbd-libhdfs-"));
    Some((be, base.to_string_lossy().into_owned()))
}

#[test]
fn local_contract() {
    let Some((be, base)) = local() else { return };
    assert!(be.is_local());
    assert_eq!(be.describe(), "file:///");
    basic_contract(&be, &base);
}

/// file:// cannot promise what `put_in_dir` promises (its temporary file
/// would recreate the directory): it says so and does a plain put.
#[test]
fn local_put_in_dir_is_a_plain_put() {
    let Some((be, base)) = local() else { return };
    let f = join(&base, "d/f");
    assert!(!be.put_in_dir(&f, b"abc").expect("put_in_dir"));
    let mut buf = [0u8; 8];
    assert_eq!(be.read_at(&f, 0, &mut buf).expect("read"), 3);
    be.delete(&base, true).expect("clean up");
}

/// The engine starts its JVM without the perf-data sampler (no hsperfdata
/// file, no 50 ms wakeups), unless the user's LIBHDFS_OPTS asks for it.
#[test]
fn jvm_runs_without_perf_data() {
    let Some((_be, _base)) = local() else { return };
    if std::env::var("LIBHDFS_OPTS").is_ok_and(|o| o.contains("+UsePerfData")) {
        return skip(
            "jvm_runs_without_perf_data",
            "LIBHDFS_OPTS asks for perf data",
        );
    }
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let file = std::env::temp_dir()
        .join(format!("hsperfdata_{user}"))
        .join(std::process::id().to_string());
    assert!(
        !file.exists(),
        "{} exists: the JVM was started with perf data",
        file.display()
    );
}

#[test]
fn local_concurrency() {
    let Some((be, base)) = local() else { return };
    let be: Arc<dyn Backend> = Arc::new(be);
    let (puts, reads, transient) = concurrency_contract(be, &base, 20);
    eprintln!("local concurrency: {puts} puts, {reads} reads, {transient} transient errors");
    assert_eq!(transient, 0, "local reads never fail");
}

#[test]
fn local_put_is_via_temp_and_rename() {
    let Some((be, base)) = local() else { return };
    let f = join(&base, "chunk");
    be.put(&f, &pattern(1000, 1)).unwrap();
    let ino1 = std::fs::metadata(&f)
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap();
    be.put(&f, &pattern(2000, 2)).unwrap();
    let ino2 = std::fs::metadata(&f)
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap();
    assert_ne!(
        ino1, ino2,
        "overwrite must replace the file (rename), not truncate it"
    );
    assert_eq!(std::fs::read(&f).unwrap(), pattern(2000, 2));
    // No temp files or .crc files are left, and list hides crash leftovers.
    let names: Vec<String> = std::fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["chunk".to_string()]);
    std::fs::write(format!("{base}/.chunk.ozbd-tmp-1-1"), b"junk").unwrap();
    let listed: Vec<String> = be
        .list(&base)
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(listed, vec!["chunk".to_string()]);
    be.delete(&base, true).unwrap();
}

#[test]
fn local_errors() {
    let Some((be, base)) = local() else { return };
    be.mkdirs(&base).unwrap();
    // A file where a directory is needed.
    let f = join(&base, "file");
    be.put(&f, b"data").unwrap();
    let e = be.put(&join(&f, "child"), b"x").unwrap_err();
    assert!(matches!(e, BackendError::Io { .. }), "{e:?}");
    assert!(be.mkdirs(&join(&f, "sub")).is_err());
    // Reading a directory.
    assert!(be.read_at(&base, 0, &mut [0u8; 8]).is_err());
    // Relative paths are refused before libhdfs sees them.
    assert!(matches!(
        be.put("relative/x", b"x"),
        Err(BackendError::Io { errno: 22, .. })
    ));
    // The old content survives a failed put into the same place.
    assert_eq!(be.read_at(&f, 0, &mut [0u8; 8]).unwrap(), 4);
    be.delete(&base, true).unwrap();
}

/// The test binary itself must not need libjvm at load time.
#[test]
fn binary_does_not_link_libjvm() {
    let exe = std::env::current_exe().unwrap();
    let out = match std::process::Command::new("readelf")
        .arg("-d")
        .arg(&exe)
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            skip("binary_does_not_link_libjvm", &format!("readelf: {e}"));
            return;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("NEEDED"), "readelf output: {text}");
    assert!(
        !text.contains("libjvm"),
        "test binary depends on libjvm:\n{text}"
    );
}

/// Connecting to a closed port fails as Unavailable, within bounded time when
/// the client's retries are turned down. Needs the Ozone client jars.
#[test]
fn unreachable_om_is_unavailable() {
    if !jvm_env("unreachable_om_is_unavailable") {
        return;
    }
    let opts = LibhdfsOptions {
        conf: vec![
            ("ozone.client.failover.max.attempts".into(), "1".into()),
            (
                "ozone.client.wait.between.retries.millis".into(),
                "100".into(),
            ),
            ("ipc.client.connect.max.retries".into(), "0".into()),
            (
                "ipc.client.connect.max.retries.on.timeouts".into(),
                "0".into(),
            ),
            ("ipc.client.connect.timeout".into(), "2000".into()),
        ],
        ..LibhdfsOptions::default()
    };
    let t = Instant::now();
    match LibhdfsBackend::connect("ofs://127.0.0.1:1", &opts) {
        Err(BackendError::Unavailable { what, msg }) => {
            eprintln!("unreachable OM after {:?}: {what}: {msg}", t.elapsed());
        }
        Err(e) if e.to_string().contains("No FileSystem for scheme") => {
            skip(
                "unreachable_om_is_unavailable",
                &format!("no ofs on CLASSPATH: {e}"),
            );
        }
        Err(e) => panic!("expected Unavailable, got {e:?}"),
        Ok(be) => {
            // ofs may connect lazily; then the first call must fail instead.
            let e = be.stat("/").unwrap_err();
            assert!(matches!(e, BackendError::Unavailable { .. }), "{e:?}");
        }
    }
    assert!(t.elapsed() < Duration::from_secs(120));
}

/// Engine defaults on `file://`: applied where no configuration file sets the
/// key (here: a key of our own, and one only a `*-default.xml` sets), left
/// alone where one does (`dfs.replication` in the client's core-site.xml and
/// ozone-site.xml), and overridden by `conf`.
#[test]
fn local_client_defaults() {
    if !jvm_env("local_client_defaults") {
        return;
    }
    let opts = LibhdfsOptions {
        defaults: vec![
            ("ozbd.test.local.default".into(), "42".into()),
            ("io.file.buffer.size".into(), "8192".into()),
            ("dfs.replication".into(), "7".into()),
            ("ozbd.test.local.forced".into(), "default".into()),
        ],
        conf: vec![("ozbd.test.local.forced".into(), "forced".into())],
        ..LibhdfsOptions::default()
    };
    let be = LibhdfsBackend::connect("file:///", &opts).expect("connect file:///");
    let got = be.client_settings();
    eprintln!("local client_settings: {got:#?}");
    let by_key = |k: &str| got.iter().find(|s| s.key == k).cloned().expect(k);
    let engine = |k: &str, v: &str| {
        let s = by_key(k);
        assert_eq!(
            (s.value.as_deref(), s.source.as_str()),
            (Some(v), "engine default"),
            "{s:?}"
        );
        assert_eq!(be.debug_live_conf(k).unwrap().as_deref(), Some(v), "{k}");
    };
    engine("ozbd.test.local.default", "42");
    engine("io.file.buffer.size", "8192"); // only core-default.xml sets it
    let repl = by_key("dfs.replication");
    assert_ne!(repl.value.as_deref(), Some("7"), "{repl:?}");
    assert!(
        repl.source == "core-site.xml" || repl.source == "ozone-site.xml",
        "the client's file sets dfs.replication: {repl:?}"
    );
    assert_eq!(be.debug_live_conf("dfs.replication").unwrap(), repl.value);
    let forced = by_key("ozbd.test.local.forced");
    assert_eq!(
        (forced.value.as_deref(), forced.source.as_str()),
        (Some("forced"), "engine conf")
    );
    assert_eq!(got.len(), 4);
}

#[test]
fn local_timing() {
    let Some((be, base)) = local() else { return };
    let (put, read) = timing(&be, &base, 4 << 20, 10);
    eprintln!("file:// 4 MiB: put {put:?}, read {read:?} (mean of 10)");
}
