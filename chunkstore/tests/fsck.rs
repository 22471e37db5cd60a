// SPDX-License-Identifier: Apache-2.0
//! `fsck` on the in-memory backend: the damage and orphans the real-Ozone
//! test (cli/tests/fsck.rs) does not make: a data root left by a fenced
//! writer, a fence marker of another epoch, a stray file in the volume
//! directory, and a damaged superblock (the check refuses to run). Repair
//! removes the orphans and nothing else; a volume held by a live writer is
//! not repaired.

use std::sync::Arc;
use std::time::Duration;

use ozbd_backend::memory::MemoryBackend;
use ozbd_backend::{Backend, BackendRef};
use ozbd_chunkstore::fsck::{fsck, FsckOptions, EXIT_CLEAN, EXIT_PROBLEMS, EXIT_REPAIRED};
use ozbd_chunkstore::{CreateOptions, Error, JournalMode, OpenOptions, Volume, VolumeUri};

const CS: usize = 1 << 20;
const DIR: &str = "/vol/bucket/disk";

fn uri() -> VolumeUri {
    VolumeUri::parse("mem://fsck/vol/bucket/disk").unwrap()
}

fn opts() -> OpenOptions {
    OpenOptions {
        journal: JournalMode::None,
        retry: Duration::ZERO,
        ..OpenOptions::default()
    }
}

fn check(b: &BackendRef, repair: bool) -> ozbd_chunkstore::Result<ozbd_chunkstore::fsck::Report> {
    fsck(
        b,
        &uri(),
        &FsckOptions {
            repair,
            force: false,
            lease_ms: 15_000,
        },
        &|_| {},
    )
}

#[test]
fn stale_roots_and_strays_are_orphans_and_repair_removes_only_them() {
    let mem = Arc::new(MemoryBackend::new());
    let b: BackendRef = mem.clone();
    let mut c = CreateOptions::new(4 * CS as u64);
    c.chunk_size = CS as u64;
    let (v, _) = Volume::create(b.clone(), &uri(), &c, &opts()).unwrap();
    v.write(0, &vec![7u8; CS]).unwrap();
    v.write(CS as u64 + 4096, &[9u8; 4096]).unwrap();
    v.close();
    let r = check(&b, false).unwrap();
    assert_eq!(r.exit_code(), EXIT_CLEAN, "{r:?}");
    assert_eq!(r.chunks_checked, 2);
    let root = r.root.clone();
    assert_eq!(root, format!("{DIR}/e1"));

    // What fenced writers and strangers leave behind.
    mem.put(&format!("{DIR}/e0007/chunks/0000000000000000"), b"x")
        .unwrap(); // not a data root name: a stray
    mem.mkdirs(&format!("{DIR}/e0/chunks")).unwrap(); // an older epoch's root
    mem.put(&format!("{root}/fence-3"), b"3\n").unwrap();
    mem.put(&format!("{DIR}/notes.txt"), b"hello").unwrap();
    let r = check(&b, false).unwrap();
    assert_eq!(r.exit_code(), EXIT_PROBLEMS, "{r:?}");
    let paths: Vec<&str> = r.orphans.iter().map(|o| o.path.as_str()).collect();
    for p in [
        format!("{DIR}/e0"),
        format!("{DIR}/e0007"),
        format!("{root}/fence-3"),
        format!("{DIR}/notes.txt"),
    ] {
        assert!(paths.contains(&p.as_str()), "{p} in {paths:?}");
    }
    assert_eq!(r.orphans.len(), 4, "{paths:?}");
    assert!(r.damaged.is_empty(), "{:?}", r.damaged);
    assert!(
        mem.stat(&format!("{DIR}/notes.txt")).unwrap().is_some(),
        "a check changes nothing"
    );

    // Held by a live writer: repair is refused, nothing removed.
    let v = Volume::open(b.clone(), &uri(), &opts()).unwrap();
    let e = check(&b, true).unwrap_err();
    assert!(matches!(e, Error::Held(_)), "{e}");
    assert!(mem.stat(&format!("{DIR}/notes.txt")).unwrap().is_some());
    v.close();

    let r = check(&b, true).unwrap();
    assert_eq!(r.exit_code(), EXIT_REPAIRED, "{r:?}");
    assert!(r.orphans.iter().all(|o| o.removed), "{:?}", r.orphans);
    let r = check(&b, false).unwrap();
    assert_eq!(r.exit_code(), EXIT_CLEAN, "{r:?}");
    // The data is untouched.
    let v = Volume::open(b.clone(), &uri(), &opts()).unwrap();
    let mut buf = vec![0u8; CS];
    v.read(0, &mut buf).unwrap();
    assert!(buf.iter().all(|&x| x == 7));
    v.close();
}

#[test]
fn a_damaged_superblock_stops_the_check() {
    let mem = Arc::new(MemoryBackend::new());
    let b: BackendRef = mem.clone();
    let (v, _) = Volume::create(b.clone(), &uri(), &CreateOptions::new(4 << 20), &opts()).unwrap();
    v.close();
    let sbp = format!("{DIR}/superblock.json");
    let len = mem.stat(&sbp).unwrap().unwrap().len as usize;
    let mut sb = vec![0u8; len];
    mem.read_at(&sbp, 0, &mut sb).unwrap();
    let text = String::from_utf8(sb).unwrap().replace("4096", "512");
    mem.put(&sbp, text.as_bytes()).unwrap();
    let e = check(&b, false).unwrap_err();
    assert!(e.to_string().contains("checksum does not match"), "{e}");
    let e = check(&b, true).unwrap_err();
    assert!(matches!(e, Error::Corrupt(_)), "repair refuses it too: {e}");
}
