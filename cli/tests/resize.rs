// SPDX-License-Identifier: Apache-2.0
//! `ozbd resize` on real Ozone: a volume whose last chunk is short grows
//! (its data intact, the new space zeros, `info` and a reopen see the new
//! size, fsck is clean); a shrink is refused without --force, and with it
//! over data (naming the chunk); a forced shrink of unused space works.
//! The engine's own tests are in chunkstore/tests/resize.rs; under I/O with
//! an lvstore on top: spdk/tests/13-resize.sh.
//! Must never: start or stop the cluster; it works under
//! ofs://<om>/resizetest/cli/ and deletes what it made.

mod common;

use common::{om_address, ozbd, pattern};

fn info_size(uri: &str) -> u64 {
    let (ok, out) = ozbd(&["info", uri, "--json"]);
    assert!(ok, "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&out[out.find('{').expect("JSON")..]).expect("valid JSON");
    v["size"].as_u64().expect("size")
}

#[test]
fn resize_grows_and_shrinks_only_over_unused_space() {
    let Some(om) = om_address() else { return };
    let uri = format!(
        "ofs://{om}/resizetest/cli/d{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    );
    let dir = std::env::temp_dir().join(format!("ozbd-resize-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (img, back) = (dir.join("in.img"), dir.join("out.img"));
    // 4 MiB + 4 KiB: the last 1 MiB chunk is 4 KiB long.
    let old = (4 << 20) + 4096;
    let data = pattern(11, old);
    std::fs::write(&img, &data).unwrap();
    let (ok, out) = ozbd(&["create", &uri, "--size", "4100K", "--chunk-size", "1M"]);
    assert!(ok, "{out}");
    let (ok, out) = ozbd(&["import", img.to_str().unwrap(), &uri]);
    assert!(ok, "{out}");

    let (ok, out) = ozbd(&["resize", &uri, "--size", "8M"]);
    assert!(ok, "{out}");
    assert!(out.contains("to 8388608"), "{out}");
    assert_eq!(info_size(&uri), 8 << 20);
    let (ok, out) = ozbd(&["export", &uri, back.to_str().unwrap()]);
    assert!(ok, "{out}");
    let got = std::fs::read(&back).unwrap();
    assert_eq!(got.len(), 8 << 20);
    assert!(
        got[..old] == data[..],
        "the data before the old end is intact"
    );
    assert!(
        got[old..].iter().all(|&b| b == 0),
        "the new space reads as zeros"
    );
    let (code, out) = fsck(&uri);
    assert_eq!(code, Some(0), "{out}");

    // Shrinking: refused without --force; with it, over the data in chunk 4.
    let (ok, out) = ozbd(&["resize", &uri, "--size", "4M"]);
    assert!(!ok && out.contains("--force"), "{out}");
    let (ok, out) = ozbd(&["resize", &uri, "--size", "4M", "--force"]);
    assert!(!ok && out.contains("chunk 4"), "{out}");
    assert_eq!(info_size(&uri), 8 << 20, "refusals change nothing");
    // Back to the old end: nothing lies past it.
    let (ok, out) = ozbd(&["resize", &uri, "--size", "4100K", "--force"]);
    assert!(ok, "{out}");
    assert_eq!(info_size(&uri), old as u64);
    let (ok, out) = ozbd(&["export", &uri, back.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(std::fs::read(&back).unwrap() == data, "the data is intact");
    let (code, out) = fsck(&uri);
    assert_eq!(code, Some(0), "{out}");
    let (ok, out) = ozbd(&["resize", &uri, "--size", "5000"]);
    assert!(!ok && out.contains("multiple of the block size"), "{out}");

    let (ok, out) = ozbd(&["delete", &uri]);
    assert!(ok, "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `ozbd fsck URI`: (exit code, output).
fn fsck(uri: &str) -> (Option<i32>, String) {
    let out = std::process::Command::new(common::OZBD)
        .args(["fsck", uri])
        .output()
        .expect("run ozbd");
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
