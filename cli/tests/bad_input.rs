//! Bad input through the `ozbd` CLI against a real Ozone cluster: each case
//! must fail with a message that says what is wrong and what to do, within a
//! bounded time, and leave nothing behind.
//! Needs `eval "$(scripts/ozone-local env)"`; skips loudly without it unless
//! OZBD_REQUIRE_OZONE=1.

mod common;
use common::{om_address, OZBD};

use std::process::Command;
use std::time::{Duration, Instant};

/// Run ozbd, expect failure, return (stderr, seconds).
fn fails(args: &[&str]) -> (String, f64) {
    let t = Instant::now();
    let out = Command::new(OZBD).args(args).output().expect("run ozbd");
    let secs = t.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "ozbd {args:?} should fail; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(out.status.code(), Some(1), "exit code for {args:?}");
    let line = err
        .lines()
        .find(|l| l.starts_with("ozbd: error:"))
        .unwrap_or("")
        .to_string();
    assert!(
        !line.is_empty(),
        "no 'ozbd: error:' line for {args:?}: {err}"
    );
    eprintln!("  {args:?} -> {line} ({secs:.1} s)");
    (line, secs)
}

fn ok(args: &[&str]) -> String {
    let out = Command::new(OZBD).args(args).output().expect("run ozbd");
    assert!(
        out.status.success(),
        "ozbd {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn malformed_input_fails_fast_without_a_cluster() {
    for (args, want) in [
        (
            vec!["info", "ofs://127.0.0.1:9862/onlyvolume"],
            "must name an Ozone volume and a bucket",
        ),
        (vec!["info", "s3://bucket/key"], "unsupported scheme"),
        (
            vec!["info", "ofs://host:notaport/vol/bkt"],
            "port is not a number",
        ),
        (vec!["info", "ofs://h/vol/b"], "must be 3 to 63 characters"),
        (
            vec!["create", "ofs://h/vol/bkt/d", "--size", "4097"],
            "multiple of the block size",
        ),
        (
            vec![
                "create",
                "ofs://h/vol/bkt/d",
                "--size",
                "1G",
                "--chunk-size",
                "3M",
            ],
            "power of two",
        ),
        (
            vec![
                "create",
                "ofs://h/vol/bkt/d",
                "--size",
                "1G",
                "--block-size",
                "1024",
            ],
            "use 512 or 4096",
        ),
        (
            vec!["create", "ofs://h/vol/bkt/d", "--size", "lots"],
            "is not a size",
        ),
    ] {
        let t = Instant::now();
        let out = Command::new(OZBD).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(err.contains(want), "{args:?}: expected '{want}' in: {err}");
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{args:?} must fail before connecting"
        );
    }
}

#[test]
fn missing_and_wrong_things_on_a_real_cluster() {
    let Some(om) = om_address() else { return };
    let run = std::process::id();
    // Missing Ozone volume, missing bucket, missing directory.
    let (e, _) = fails(&["info", &format!("ofs://{om}/nosuchvol{run}/bkt/d")]);
    assert!(
        e.contains("Ozone volume") && e.contains("does not exist"),
        "{e}"
    );
    let base = format!("ofs://{om}/ozbdbad/fso");
    ok(&["create", &format!("{base}/exists"), "--size", "16M"]);
    let (e, _) = fails(&["info", &format!("ofs://{om}/ozbdbad/nosuchbucket/d")]);
    assert!(e.contains("bucket 'nosuchbucket' does not exist"), "{e}");
    let (e, _) = fails(&["info", &format!("{base}/nosuchdir{run}")]);
    assert!(
        e.contains("no volume at") && e.contains("ozbd create"),
        "{e}"
    );
    // Creating over an existing volume.
    let (e, _) = fails(&["create", &format!("{base}/exists"), "--size", "16M"]);
    assert!(e.contains("already exists"), "{e}");
    // A directory that is not a volume (the bucket root holds other things).
    let (e, _) = fails(&["info", &base]);
    assert!(e.contains("not a bdev_ozone volume"), "{e}");
    let (e, _) = fails(&["delete", &base]);
    assert!(e.contains("not a bdev_ozone volume"), "{e}");
    // Import of a file larger than the volume writes nothing.
    let big = std::env::temp_dir().join(format!("ozbd-big-{run}"));
    std::fs::write(&big, vec![1u8; 17 << 20]).unwrap();
    let (e, _) = fails(&["import", big.to_str().unwrap(), &format!("{base}/exists")]);
    assert!(e.contains("nothing was written"), "{e}");
    assert!(ok(&["info", &format!("{base}/exists")]).contains("allocated chunks: 0 of 4"));
    let _ = std::fs::remove_file(&big);
    ok(&["delete", &format!("{base}/exists")]);
}

#[test]
fn object_store_bucket_is_refused() {
    let Some(om) = om_address() else { return };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/ozone-local");
    let sh = |args: &[&str]| {
        Command::new(script)
            .arg("sh")
            .args(args)
            .output()
            .expect("ozone sh")
    };
    sh(&["volume", "create", "/ozbdbad"]);
    let out = sh(&[
        "bucket",
        "create",
        "--layout",
        "OBJECT_STORE",
        "/ozbdbad/obsbucket",
    ]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || text.contains("BUCKET_ALREADY_EXISTS"),
        "ozone sh: {text}"
    );
    let (e, _) = fails(&[
        "create",
        &format!("ofs://{om}/ozbdbad/obsbucket/d"),
        "--size",
        "16M",
    ]);
    assert!(e.contains("OBJECT_STORE"), "{e}");
    let (e, _) = fails(&["info", &format!("ofs://{om}/ozbdbad/obsbucket/d")]);
    assert!(e.contains("OBJECT_STORE"), "{e}");
}

#[test]
fn unreachable_om_gives_a_bounded_clear_error() {
    if om_address().is_none() {
        return; // needs the client environment (CLASSPATH) that comes with the cluster
    }
    // Port 1 on loopback: nothing listens there.
    let (e, secs) = fails(&["--timeout", "30", "info", "ofs://127.0.0.1:1/vol/bkt/d"]);
    assert!(secs < 45.0, "took {secs:.0} s");
    let lower = e.to_lowercase();
    assert!(
        lower.contains("unreachable")
            || lower.contains("connection refused")
            || lower.contains("no answer within"),
        "{e}"
    );
}
