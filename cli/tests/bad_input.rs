// SPDX-License-Identifier: Apache-2.0
//! Bad input through the `ozbd` CLI against a real Ozone cluster: each case
//! must fail with a message that says what is wrong and what to do, within a
//! bounded time, and leave nothing behind.
//! Each case asserts the exit code and the distinctive part of its message
//! (what is wrong, naming the offending value), not just a word any error has.
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
    assert_eq!(
        out.status.code(),
        Some(EXIT_ERROR),
        "exit code for {args:?}"
    );
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

/// Exit code of `ozbd: error:` failures (the engine refused); clap's usage errors exit 2.
const EXIT_ERROR: i32 = 1;
const EXIT_USAGE: i32 = 2;

#[test]
fn malformed_input_fails_fast_without_a_cluster() {
    let uri_usage =
        "; expected ofs://<om-host>[:port]/<ozone-volume>/<bucket>[/<path>] or file:///<dir>";
    for (args, code, want) in [
        (
            vec!["info", "ofs://127.0.0.1:9862/onlyvolume"],
            EXIT_ERROR,
            "ozbd: error: invalid argument: malformed volume URI 'ofs://127.0.0.1:9862/onlyvolume': \
             it must name an Ozone volume and a bucket",
        ),
        (
            vec!["info", "s3://bucket/key"],
            EXIT_ERROR,
            "ozbd: error: invalid argument: malformed volume URI 's3://bucket/key': unsupported scheme 's3'",
        ),
        (
            vec!["info", "ofs://host:notaport/vol/bkt"],
            EXIT_ERROR,
            "ozbd: error: invalid argument: malformed volume URI 'ofs://host:notaport/vol/bkt': port is not a number",
        ),
        (
            vec!["info", "ofs://h/vol/b"],
            EXIT_ERROR,
            "ozbd: error: invalid argument: malformed volume URI 'ofs://h/vol/b': \
             bucket name 'b' must be 3 to 63 characters long",
        ),
        (
            vec!["create", "ofs://h/vol/bkt/d", "--size", "4097"],
            EXIT_ERROR,
            "ozbd: error: invalid argument: size 4097 is not a positive multiple of the block size 4096",
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
            EXIT_ERROR,
            "ozbd: error: invalid argument: chunk size 3145728 is not supported: \
             use a power of two from 64 KiB to 256 MiB",
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
            EXIT_ERROR,
            "ozbd: error: invalid argument: block size 1024 is not supported: use 512 or 4096",
        ),
        (
            vec!["create", "ofs://h/vol/bkt/d", "--size", "lots"],
            EXIT_USAGE,
            "error: invalid value 'lots' for '--size <SIZE>': 'lots' is not a size",
        ),
        // The open options: parsed and checked by the engine (its words), before connecting.
        (
            vec!["--journal", "bogus", "export", "ofs://h/vol/bkt/d", "/dev/null"],
            EXIT_ERROR,
            "ozbd: error: invalid argument: journal 'bogus' is not known: use \"ozone\" (the default: \
             small writes are journaled in the volume's Ozone directory) or \"none\"",
        ),
        (
            vec!["import", "/dev/null", "ofs://h/vol/bkt/d", "--journal", "NONE"],
            EXIT_ERROR,
            "ozbd: error: invalid argument: journal 'NONE' is not known",
        ),
        (
            vec!["info", "ofs://h/vol/bkt/d", "--journal-mb", "8"],
            EXIT_ERROR,
            "ozbd: error: invalid argument: journal_mb 8 is out of range: use 16 to",
        ),
        (
            vec!["info", "ofs://h/vol/bkt/d", "--cache-mb", "100000000"],
            EXIT_ERROR,
            "ozbd: error: invalid argument: cache_mb 100000000 is out of range: use 0 (no cache) to",
        ),
        (
            vec!["info", "ofs://h/vol/bkt/d", "--cache-mb", "-1"],
            EXIT_USAGE,
            "error: unexpected argument '-1' found",
        ),
    ] {
        let t = Instant::now();
        let out = Command::new(OZBD).args(&args).output().expect("run ozbd");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "exit code for {args:?}: {err}");
        assert!(
            err.lines().any(|l| l.starts_with(want)),
            "{args:?}: expected a line starting '{want}' in: {err}"
        );
        if want.contains("malformed volume URI") {
            assert!(
                err.contains(uri_usage),
                "{args:?}: the URI error must show the expected form: {err}"
            );
        }
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
        e.starts_with(&format!(
            "ozbd: error: Ozone volume 'nosuchvol{run}' does not exist on ofs://{om}: check the URI"
        )) && e.contains(&format!(
            "`ozbd create ofs://{om}/nosuchvol{run}/bkt/d --size SIZE`"
        )),
        "{e}"
    );
    let base = format!("ofs://{om}/ozbdbad/fso");
    // Named per run, so that a run that failed half-way (leaving it behind) cannot break the next.
    let exists = format!("{base}/exists-{run}");
    ok(&["create", &exists, "--size", "16M"]);
    let (e, _) = fails(&["info", &format!("ofs://{om}/ozbdbad/nosuchbucket/d")]);
    assert!(
        e.starts_with(
            "ozbd: error: bucket 'nosuchbucket' does not exist in Ozone volume 'ozbdbad': check the URI"
        ),
        "{e}"
    );
    let (e, _) = fails(&["info", &format!("{base}/nosuchdir{run}")]);
    assert!(
        e.starts_with(&format!(
            "ozbd: error: no volume at {base}/nosuchdir{run}: create it with `ozbd create {base}/nosuchdir{run} --size SIZE`"
        )),
        "{e}"
    );
    // Creating over an existing volume.
    let (e, _) = fails(&["create", &exists, "--size", "16M"]);
    assert!(
        e.starts_with(&format!(
            "ozbd: error: a volume already exists at {exists}: open it, or remove it first with `ozbd delete {exists}`"
        )),
        "{e}"
    );
    // A directory that is not a volume (the bucket root holds other things).
    let not_a_volume = format!(
        "ozbd: error: {base} is a directory without superblock.json: not a bdev_ozone volume \
         (an interrupted create leaves this; remove it with `ozbd delete --force {base}`)"
    );
    let (e, _) = fails(&["info", &base]);
    assert_eq!(e, not_a_volume);
    let (e, _) = fails(&["delete", &base]);
    assert_eq!(e, not_a_volume, "delete without --force must refuse");
    // Import of a file larger than the volume writes nothing.
    let big = std::env::temp_dir().join(format!("ozbd-big-{run}"));
    std::fs::write(&big, vec![1u8; 17 << 20]).unwrap();
    let (e, _) = fails(&["import", big.to_str().unwrap(), &exists]);
    assert_eq!(
        e,
        format!(
            "ozbd: error: invalid argument: {} is {} bytes but the volume holds only {}: \
             nothing was written; create a larger volume",
            big.display(),
            17 << 20,
            16 << 20
        )
    );
    assert!(ok(&["info", &exists]).contains("allocated chunks: 0 of 4"));
    let _ = std::fs::remove_file(&big);
    ok(&["delete", &exists]);
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
    let why =
        "Bucket: obsbucket has layout: OBJECT_STORE, which does not support file system semantics";
    assert!(
        e.starts_with("ozbd: error: /ozbdbad/obsbucket") && e.contains(why),
        "{e}"
    );
    let (e, _) = fails(&["info", &format!("ofs://{om}/ozbdbad/obsbucket/d")]);
    assert!(
        e.starts_with("ozbd: error: /ozbdbad/obsbucket") && e.contains(why),
        "{e}"
    );
}

#[test]
fn unreachable_om_gives_a_bounded_clear_error() {
    if om_address().is_none() {
        return; // needs the client environment (CLASSPATH) that comes with the cluster
    }
    // Port 1 on loopback: nothing listens there.
    let (e, secs) = fails(&["--timeout", "30", "info", "ofs://127.0.0.1:1/vol/bkt/d"]);
    assert!(secs < 45.0, "took {secs:.0} s");
    // Either the connection is refused at once, or the connect hangs until --timeout.
    let refused =
        "ozbd: error: ofs://127.0.0.1:1: backend unreachable: connect ofs://127.0.0.1:1: \
                   ConnectException: Connection refused";
    let timed_out = "ozbd: error: connecting to ofs://127.0.0.1:1: no answer within 30 s: \
                     is the Ozone Manager running and reachable?";
    assert!(e.starts_with(refused) || e.starts_with(timed_out), "{e}");
}
