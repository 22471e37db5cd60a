// SPDX-License-Identifier: Apache-2.0
//! `ozbd fsck` and the end-to-end checksums on a real Ozone cluster, with
//! the damage done from outside bdev_ozone through `ozone sh` (the Ozone
//! shell of `scripts/ozone-local sh`): a chunk with one flipped byte, one
//! truncated, one overwritten by another chunk's file, plus orphans (a stray
//! file, a chunk past the volume's end, an interrupted lease file). Reads of
//! the damaged chunks fail with an error naming them, never returning wrong
//! data; fsck reports each (exit 4) and `--repair` removes only the orphans;
//! rewriting the data clears the damage (exit 0).
//! Needs `eval "$(scripts/ozone-local env)"`; skips loudly without it unless
//! OZBD_REQUIRE_OZONE=1.

mod common;
use common::{om_address, ozbd, pattern, OZBD};

use std::process::Command;

const CS: usize = 1 << 20;

fn ozone_sh(args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/ozone-local");
    let out = Command::new(script)
        .arg("sh")
        .args(args)
        .output()
        .expect("run scripts/ozone-local sh");
    assert!(
        out.status.success(),
        "ozone sh {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ozbd fsck` with `extra` flags: (exit code, stdout, stderr).
fn fsck(uri: &str, extra: &[&str]) -> (i32, String, String) {
    let out = Command::new(OZBD)
        .arg("fsck")
        .arg(uri)
        .args(extra)
        .output()
        .expect("run ozbd fsck");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn report(uri: &str, extra: &[&str]) -> (i32, serde_json::Value) {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let (code, out, err) = fsck(uri, &args);
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("fsck --json: {e}: {out}{err}"));
    (code, v)
}

#[test]
fn fsck_finds_outside_damage_and_repair_removes_only_orphans() {
    let Some(om) = om_address() else { return };
    let run = std::process::id();
    let dir = std::env::temp_dir().join(format!("ozbd-fsck-{run}"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = format!("ozbdfsck/b{run}/disk");
    let uri = format!("ofs://{om}/{path}");
    let (ok, out) = ozbd(&["create", &uri, "--size", "6M", "--chunk-size", "1M"]);
    assert!(ok, "{out}");
    let data = pattern(1, 5 * CS);
    let img = dir.join("data.img");
    std::fs::write(&img, &data).unwrap();
    let (ok, out) = ozbd(&["import", img.to_str().unwrap(), &uri]);
    assert!(ok, "{out}");

    // Clean: every chunk read and verified, progress shown, exit 0.
    let (code, out, err) = fsck(&uri, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("chunks checked:   5 (5.0 MiB)") && out.contains("result:           clean"),
        "{out}"
    );
    assert!(
        err.contains("fsck: 5 of 5 chunks (100%)"),
        "progress is shown: {err}"
    );
    let (_, v) = report(&uri, &[]);
    let root = v["root"].as_str().unwrap().to_string(); // /ozbdfsck/b<run>/disk/e<N>
    let key = |c: usize| format!("{root}/chunks/{c:016x}");

    // Damage from outside, through the Ozone shell.
    let get = |c: usize| {
        let f = dir.join(format!("chunk{c}"));
        let _ = std::fs::remove_file(&f);
        ozone_sh(&[
            "key",
            "get",
            key(c).trim_start_matches('/'),
            f.to_str().unwrap(),
        ]);
        std::fs::read(&f).unwrap()
    };
    let put = |name: &str, bytes: &[u8]| {
        let f = dir.join("put.tmp");
        std::fs::write(&f, bytes).unwrap();
        ozone_sh(&[
            "key",
            "put",
            name.trim_start_matches('/'),
            f.to_str().unwrap(),
        ]);
    };
    let mut c0 = get(0);
    c0[3 * 4096 + 7] ^= 0x01;
    put(&key(0), &c0);
    let c1 = get(1);
    put(&key(1), &c1[..CS / 2]);
    put(&key(3), &get(2));
    put(&format!("{root}/chunks/notachunk"), b"stray");
    put(&key(9), &get(2)); // past the end of a 6-chunk volume
    put(&format!("/{path}/.lease-1-deadbeef"), b"{}");

    // Reads of damaged chunks fail, naming the chunk; undamaged ones read.
    let (ok, out) = ozbd(&["export", &uri, dir.join("out.img").to_str().unwrap()]);
    assert!(!ok, "export of a damaged volume must fail: {out}");
    assert!(
        out.contains("do not match their checksum")
            || out.contains("truncated")
            || out.contains("chunk"),
        "{out}"
    );

    let (code, v) = report(&uri, &[]);
    assert_eq!(code, 4, "damage found: {v}");
    let damaged: Vec<String> = v["damaged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| format!("{} {}", d["path"], d["what"]))
        .collect();
    assert_eq!(damaged.len(), 3, "{damaged:#?}");
    assert!(
        damaged[0].contains(&key(0)) && damaged[0].contains("bytes 12288..16384"),
        "{damaged:#?}"
    );
    assert!(
        damaged[1].contains(&key(1)) && damaged[1].contains("truncated"),
        "{damaged:#?}"
    );
    assert!(
        damaged[2].contains(&key(3)) && damaged[2].contains("chunk 2's data"),
        "{damaged:#?}"
    );
    let orphans: Vec<String> = v["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(orphans.len(), 3, "{orphans:#?}");
    for o in [
        format!("/{path}/.lease-1-deadbeef"),
        format!("{root}/chunks/notachunk"),
        key(9),
    ] {
        assert!(orphans.contains(&o), "{o} in {orphans:#?}");
    }
    // The check changed nothing.
    let (code2, v2) = report(&uri, &[]);
    assert_eq!(
        (code2, &v2["orphans"], &v2["damaged"]),
        (4, &v["orphans"], &v["damaged"])
    );

    // --repair removes the orphans, never the damaged chunks.
    let (code, out, err) = fsck(&uri, &["--repair"]);
    assert_eq!(code, 4, "damage is left: {out}{err}");
    assert_eq!(out.matches("(removed)").count(), 3, "{out}");
    let (code, v) = report(&uri, &[]);
    assert_eq!(code, 4);
    assert_eq!(v["orphans"].as_array().unwrap().len(), 0, "{v}");
    assert_eq!(v["damaged"].as_array().unwrap().len(), 3, "{v}");

    // Rewriting the data (whole chunks) clears the damage.
    let (ok, out) = ozbd(&["import", img.to_str().unwrap(), &uri]);
    assert!(ok, "{out}");
    let (code, out, err) = fsck(&uri, &[]);
    assert_eq!(code, 0, "{out}{err}");
    let (ok, out) = ozbd(&["export", &uri, dir.join("out.img").to_str().unwrap()]);
    assert!(ok, "{out}");
    let back = std::fs::read(dir.join("out.img")).unwrap();
    assert_eq!(
        &back[..5 * CS],
        &data[..],
        "the rewritten volume reads back"
    );

    let (ok, out) = ozbd(&["delete", &uri]);
    assert!(ok, "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
