// SPDX-License-Identifier: Apache-2.0
//! Resizing an open volume on the in-memory backend: growing while writers
//! run keeps every write and reads the new space as zeros, and a reopen sees
//! the new size; shrinking is refused without force, and with force while
//! anything lies past the new end (a stored chunk, journaled writes, data in
//! the chunk the new end cuts, journal records), and otherwise works; the
//! chunk at the old or new end, stored at another length than it has after
//! the resize, still reads and verifies its checksums (and fsck agrees); a
//! fenced holder and a read-only open cannot resize. Through Ozone and the
//! CLI: cli/tests/resize.rs; through SPDK with an lvstore on top:
//! spdk/tests/13-resize.sh.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ozbd_backend::fault::{FaultBackend, OpKind};
use ozbd_backend::memory::MemoryBackend;
use ozbd_backend::{Backend, BackendRef};
use ozbd_chunkstore::fsck::{fsck, FsckOptions, EXIT_CLEAN};
use ozbd_chunkstore::{CreateOptions, Error, JournalMode, OpenOptions, Volume, VolumeUri};

const CS: u64 = 1 << 20;
const BS: usize = 4096;
const DIR: &str = "/vol/bucket/disk";

fn uri() -> VolumeUri {
    VolumeUri::parse("mem://resize/vol/bucket/disk").unwrap()
}

fn opts(journal: JournalMode, cache_mb: u64) -> OpenOptions {
    OpenOptions {
        journal,
        journal_mb: 16,
        cache_mb,
        retry: Duration::ZERO,
        frontend: "test".into(),
        name: "disk".into(),
        ..OpenOptions::default()
    }
}

fn create(backend: BackendRef, size: u64, block_size: u32, o: &OpenOptions) -> Volume {
    let mut c = CreateOptions::new(size);
    c.chunk_size = CS;
    c.block_size = block_size;
    Volume::create(backend, &uri(), &c, o).unwrap().0
}

fn read(v: &Volume, at: u64, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    v.read(at, &mut b)
        .unwrap_or_else(|e| panic!("read {at}+{len}: {e}"));
    b
}

/// The file of chunk `c` in the volume's current data root.
fn chunk_file(mem: &MemoryBackend, c: u64) -> String {
    let root = mem
        .list(DIR)
        .unwrap()
        .into_iter()
        .find(|e| e.is_dir && e.name.starts_with('e'))
        .expect("a data root e<N>");
    format!("{DIR}/{}/chunks/{c:016x}", root.name)
}

fn file_len(mem: &MemoryBackend, path: &str) -> u64 {
    mem.stat(path).unwrap().unwrap().len
}

fn on_disk_size(b: &BackendRef) -> u64 {
    Volume::inspect(b, &uri()).unwrap().size
}

fn fsck_clean(b: &BackendRef) {
    let r = fsck(
        b,
        &uri(),
        &FsckOptions {
            repair: false,
            force: false,
            lease_ms: 15_000,
        },
        &|_| {},
    )
    .unwrap();
    assert_eq!(r.exit_code(), EXIT_CLEAN, "{r:?}");
}

/// The block number's own bytes, so a block in the wrong place shows.
fn block(n: u64, round: u64) -> Vec<u8> {
    common::pattern(n.wrapping_mul(1000).wrapping_add(round + 1), BS)
}

#[test]
fn growing_under_concurrent_writes_keeps_every_write_and_reads_the_new_space_as_zeros() {
    for journal in [JournalMode::Ozone, JournalMode::None] {
        let mem: BackendRef = Arc::new(MemoryBackend::new());
        let old = 4 * CS;
        let new = 10 * CS + 8 * BS as u64;
        let v = Arc::new(create(mem.clone(), old, 4096, &opts(journal, 8)));
        let blocks = old / BS as u64;
        // What each block must hold: the last write acknowledged to it.
        let model: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(vec![0; blocks as usize]));
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..4u64)
            .map(|t| {
                let (v, model, stop) = (v.clone(), model.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut round = 0;
                    // Each thread owns the blocks n with n % 4 == t.
                    while !stop.load(Ordering::Relaxed) || round < 20 {
                        round += 1;
                        for n in (t..blocks).step_by(4 * 7) {
                            v.write(n * BS as u64, &block(n, round)).unwrap();
                            model.lock().unwrap()[n as usize] = round;
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        v.resize(new, false).unwrap();
        assert_eq!(v.superblock().size, new);
        assert_eq!(on_disk_size(&mem), new);
        // The new space reads as zeros at once, and takes writes.
        assert_eq!(read(&v, old, BS), vec![0u8; BS]);
        assert_eq!(read(&v, new - BS as u64, BS), vec![0u8; BS]);
        v.write(new - BS as u64, &block(u64::MAX, 0)).unwrap();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().unwrap();
        }
        let check = |v: &Volume| {
            let model = model.lock().unwrap();
            for n in 0..blocks {
                let want = match model[n as usize] {
                    0 => vec![0u8; BS],
                    r => block(n, r),
                };
                assert!(
                    read(v, n * BS as u64, BS) == want,
                    "block {n} ({journal:?})"
                );
            }
            let zeros = read(v, old, (new - old) as usize - BS);
            assert!(zeros.iter().all(|&b| b == 0), "new space ({journal:?})");
            assert_eq!(read(v, new - BS as u64, BS), block(u64::MAX, 0));
        };
        check(&v);
        assert_eq!(v.stats().size, new, "the statistics show the new size");
        assert!(v.stats().to_json().contains(&format!("\"size\":{new}")));
        let e = v.write(new, &[1u8; BS]).unwrap_err();
        assert_eq!(e.errno(), 22, "past the new end: {e}");
        Arc::try_unwrap(v).ok().unwrap().close();
        let v = Volume::open(mem.clone(), &uri(), &opts(journal, 8)).unwrap();
        assert_eq!(v.superblock().size, new, "a reopen sees the new size");
        check(&v);
        v.close();
        fsck_clean(&mem);
    }
}

#[test]
fn a_shrink_is_refused_without_force_and_bad_sizes_are_refused() {
    let mem: BackendRef = Arc::new(MemoryBackend::new());
    let v = create(mem.clone(), 4 * CS, 4096, &opts(JournalMode::Ozone, 0));
    let e = v.resize(2 * CS, false).unwrap_err();
    assert_eq!(e.errno(), 22, "{e}");
    assert!(e.to_string().contains("force"), "{e}");
    for bad in [0, 4 * CS + 512, 3] {
        let e = v.resize(bad, true).unwrap_err();
        assert_eq!(e.errno(), 22, "{bad}: {e}");
        assert!(e.to_string().contains("multiple of the block size"), "{e}");
    }
    let e = v.resize(u64::MAX / 4096 * 4096, false).unwrap_err();
    assert!(
        e.to_string()
            .contains("more than the 268435456 a volume may have"),
        "{e}"
    );
    assert_eq!(v.superblock().size, 4 * CS);
    assert_eq!(on_disk_size(&mem), 4 * CS, "nothing written");
    v.resize(4 * CS, false).unwrap();
    v.close();

    // A read-only open cannot resize.
    let mut ro = opts(JournalMode::Ozone, 0);
    ro.readonly = true;
    let r = Volume::open(mem.clone(), &uri(), &ro).unwrap();
    let e = r.resize(8 * CS, false).unwrap_err();
    assert_eq!(e.errno(), 30, "EROFS: {e}");
    assert!(e.to_string().contains("read-only"), "{e}");
    assert_eq!(on_disk_size(&mem), 4 * CS);
}

#[test]
fn a_forced_shrink_is_refused_while_anything_lies_past_the_new_end() {
    for journal in [JournalMode::None, JournalMode::Ozone] {
        let mem: BackendRef = Arc::new(MemoryBackend::new());
        let v = create(mem.clone(), 8 * CS, 4096, &opts(journal, 0));
        // A whole chunk stored past the new end (chunk 5).
        v.write(5 * CS, &vec![5u8; CS as usize]).unwrap();
        let e = v.resize(4 * CS, true).unwrap_err();
        assert_eq!(e.errno(), 16, "EBUSY: {e}");
        assert!(e.to_string().contains("chunk 5"), "{e}");
        assert!(e.to_string().contains(&format!("{}", 6 * CS)), "{e}");
        assert_eq!(on_disk_size(&mem), 8 * CS);
        assert_eq!(read(&v, 5 * CS, BS), vec![5u8; BS]);

        // Data in the chunk the new end cuts, past that end.
        v.unmap(5 * CS, CS).unwrap();
        v.write(3 * CS + 8 * BS as u64, &[7u8; BS]).unwrap();
        let e = v.resize(3 * CS + 4 * BS as u64, true).unwrap_err();
        assert_eq!(e.errno(), 16, "EBUSY: {e}");
        assert!(
            e.to_string().contains("chunk 3") || e.to_string().contains("journaled writes"),
            "{e}"
        );
        assert_eq!(on_disk_size(&mem), 8 * CS);
        // A new end right at the data still cuts it off: named by its byte.
        if journal == JournalMode::None {
            let e = v.resize(3 * CS + 8 * BS as u64, true).unwrap_err();
            assert!(e.to_string().contains("volume byte 3178496"), "{e}");
        }
        assert_eq!(read(&v, 3 * CS + 8 * BS as u64, BS), vec![7u8; BS]);
        v.close();
    }
}

/// Records of writes past the new end stay in a journal segment after they
/// are applied, until the segment is retired; replay would call them
/// corrupt at the next open, so a forced shrink is refused while they are
/// there (here: the segment deletes fail, so they stay).
#[test]
fn journal_records_past_the_new_end_refuse_a_forced_shrink_until_they_are_retired() {
    let mem = Arc::new(MemoryBackend::new());
    let faults = Arc::new(FaultBackend::new(mem.clone(), 7));
    let be: BackendRef = faults.clone();
    let o = opts(JournalMode::Ozone, 0);
    let v = create(be.clone(), 8 * CS, 4096, &o);
    faults.only_paths_containing(Some("/journal/"));
    faults.set_failure_rate(&[OpKind::Delete], 1.0);
    // A small write past the new end (journaled), then discarded again.
    v.write(6 * CS, &[6u8; BS]).unwrap();
    v.unmap(6 * CS, BS as u64).unwrap();
    // Journaled until the destager applies both; then only the records stay.
    let t = Instant::now();
    let outcome = loop {
        match v.resize(4 * CS, true) {
            Err(e)
                if e.to_string().contains("chunk 6") && t.elapsed() < Duration::from_secs(30) =>
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            other => break other,
        }
    };
    // Healed before anything can panic: a close whose segment deletes keep
    // failing never ends.
    faults.heal();
    let e = outcome.expect_err("shrunk over journal records past the new end");
    assert_eq!(e.errno(), 16, "EBUSY: {e}");
    assert!(
        e.to_string().contains("the journal still holds records"),
        "{e}"
    );
    assert!(e.to_string().contains("close the volume"), "{e}");
    assert_eq!(on_disk_size(&be), 8 * CS);
    v.close();
    // A clean close retires the segments: then the shrink works, and the
    // journal replays at the new size.
    let v = Volume::open(be.clone(), &uri(), &o).unwrap();
    v.resize(4 * CS, true).unwrap();
    v.write(4 * CS - BS as u64, &[4u8; BS]).unwrap();
    drop(v);
    let v = Volume::open(be.clone(), &uri(), &o).unwrap();
    assert_eq!(v.superblock().size, 4 * CS);
    assert_eq!(read(&v, 4 * CS - BS as u64, BS), vec![4u8; BS]);
    v.close();
}

#[test]
fn a_forced_shrink_of_unused_space_works_and_growing_again_reads_zeros() {
    for (journal, cache) in [(JournalMode::None, 0), (JournalMode::Ozone, 8)] {
        let mem: BackendRef = Arc::new(MemoryBackend::new());
        let o = opts(journal, cache);
        let v = create(mem.clone(), 8 * CS, 4096, &o);
        let head = common::pattern(1, (2 * CS) as usize);
        v.write(0, &head).unwrap();
        // Chunk 2 holds data below the new end only; the shrink cuts it.
        v.write(2 * CS, &[2u8; 2 * BS]).unwrap();
        let new = 2 * CS + 4 * BS as u64;
        v.resize(new, true).unwrap();
        assert_eq!(v.superblock().size, new);
        assert_eq!(on_disk_size(&mem), new);
        assert_eq!(read(&v, 0, (2 * CS) as usize), head);
        assert_eq!(read(&v, 2 * CS, 2 * BS), vec![2u8; 2 * BS]);
        assert_eq!(v.write(new, &[1u8; BS]).unwrap_err().errno(), 22);
        // A write to the cut chunk after the shrink (its file gets shorter).
        v.write(2 * CS + 2 * BS as u64, &[3u8; BS]).unwrap();
        v.close();
        fsck_clean(&mem);

        let v = Volume::open(mem.clone(), &uri(), &o).unwrap();
        assert_eq!(v.superblock().size, new);
        assert_eq!(read(&v, 2 * CS, 3 * BS)[2 * BS..], [3u8; BS]);
        v.resize(8 * CS, false).unwrap();
        let tail = read(&v, new, (8 * CS - new) as usize);
        assert!(tail.iter().all(|&b| b == 0), "the cut space reads as zeros");
        assert_eq!(read(&v, 0, (2 * CS) as usize), head);
        v.close();
        fsck_clean(&mem);
    }
}

/// The old last chunk, sealed at its old (short) length with a partial last
/// unit, reads and verifies after a grow, before and after its next
/// rewrite, with the cache on and off, through a reopen; and damage to it
/// is still caught.
#[test]
fn a_short_last_chunk_reads_and_verifies_after_the_volume_grows() {
    for cache in [0, 8] {
        let mem = Arc::new(MemoryBackend::new());
        let b: BackendRef = mem.clone();
        let o = opts(JournalMode::None, cache);
        // Chunk 1 is 4608 bytes: one whole 4 KiB unit and a 512-byte one.
        let old = CS + 4608;
        let v = create(b.clone(), old, 512, &o);
        let last = common::pattern(9, 4608);
        v.write(CS, &last).unwrap();
        v.write(0, &[1u8; 512]).unwrap();
        // Read it once at the old size, so the cache and trailer cache hold it.
        assert_eq!(read(&v, CS, 4608), last);
        v.resize(3 * CS, false).unwrap();
        let mut want = last.clone();
        want.resize(CS as usize, 0);
        assert!(read(&v, CS, CS as usize) == want, "cache {cache}");
        assert_eq!(read(&v, CS + 4096, 1024)[..512], last[4096..]);
        v.close();
        // The file still has the old length and trailer.
        let len = file_len(&mem, &chunk_file(&mem, 1));
        assert_eq!(len, 4608 + 8 + 32, "still sealed at 4608 bytes");
        fsck_clean(&b);

        // Reopened: read before any rewrite, then a partial write (a
        // read-modify-write that now puts the chunk at its full length).
        let v = Volume::open(b.clone(), &uri(), &o).unwrap();
        assert!(read(&v, CS, CS as usize) == want);
        assert_eq!(read(&v, CS + 4096, 512), last[4096..]);
        v.write(CS + 8192, &[8u8; 512]).unwrap();
        want[8192..8704].fill(8);
        assert!(read(&v, CS, CS as usize) == want);
        v.close();
        assert!(file_len(&mem, &chunk_file(&mem, 1)) > CS, "full length now");
        fsck_clean(&b);
    }
}

#[test]
fn a_chunk_cut_by_a_shrink_reads_after_growing_and_a_truncated_short_chunk_is_damage() {
    let mem = Arc::new(MemoryBackend::new());
    let b: BackendRef = mem.clone();
    let o = opts(JournalMode::None, 0);
    let v = create(b.clone(), 4 * CS, 512, &o);
    let data = common::pattern(3, 8192 + 512);
    v.write(CS, &data).unwrap();
    // Cut chunk 1 after 12 KiB + 512: its file keeps its full length (the
    // bytes past the cut are zeros).
    let new = CS + 12800;
    v.resize(new, true).unwrap();
    assert_eq!(read(&v, CS, 8192 + 512), data);
    v.close();
    fsck_clean(&b);
    let v = Volume::open(b.clone(), &uri(), &o).unwrap();
    assert_eq!(read(&v, CS, 12800)[..8704], data[..]);
    v.resize(2 * CS, false).unwrap();
    let back = read(&v, CS, CS as usize);
    assert_eq!(back[..8704], data[..]);
    assert!(back[8704..].iter().all(|&x| x == 0));
    // A shorter file at chunk 1 that is not a sealed chunk: damage.
    v.close();
    let path = chunk_file(&mem, 1);
    let mut f = vec![0u8; file_len(&mem, &path) as usize];
    mem.read_at(&path, 0, &mut f).unwrap();
    mem.put(&path, &f[..f.len() - 100]).unwrap();
    let v = Volume::open(b.clone(), &uri(), &o).unwrap();
    let mut buf = vec![0u8; 4096];
    let e = v.read(CS, &mut buf).unwrap_err();
    assert!(matches!(e, Error::Corrupt(_)), "{e}");
    v.close();
}

/// A holder whose lease expired while it still has the volume, taken over
/// with force: its resize fails with ESTALE and changes nothing.
#[test]
fn a_fenced_holder_cannot_resize() {
    let mem = Arc::new(MemoryBackend::new());
    let faults = Arc::new(FaultBackend::new(mem.clone(), 1));
    let mut o = opts(JournalMode::Ozone, 0);
    o.lease_ms = 1_000;
    let a = create(faults.clone(), 4 * CS, 4096, &o);
    a.write(0, &[1u8; BS]).unwrap();
    faults.only_paths_containing(Some("/lease."));
    faults.set_failure_rate(&[OpKind::Put], 1.0);
    let be: BackendRef = mem.clone();
    let t = Instant::now();
    while !Volume::lease_info(&be, &uri()).unwrap().unwrap().expired() {
        assert!(t.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut force = opts(JournalMode::Ozone, 0);
    force.force = true;
    let b = Volume::open(be.clone(), &uri(), &force).unwrap();
    for (size, forced) in [(8 * CS, false), (2 * CS, true)] {
        let e = a.resize(size, forced).unwrap_err();
        assert_eq!(e.errno(), 116, "ESTALE: {e}");
        assert_eq!(on_disk_size(&be), 4 * CS, "nothing written");
    }
    assert_eq!(a.superblock().size, 4 * CS);
    drop(a);
    // The new holder resizes as usual.
    b.resize(8 * CS, false).unwrap();
    assert_eq!(on_disk_size(&be), 8 * CS);
    b.close();
}

/// The same with nothing but the superblock to touch (no journal, a shrink
/// to a chunk boundary over absent chunks): the marker check before the
/// put is what stops the fenced holder.
#[test]
fn a_fenced_holder_cannot_shrink_even_when_it_reads_nothing_first() {
    let mem = Arc::new(MemoryBackend::new());
    let faults = Arc::new(FaultBackend::new(mem.clone(), 1));
    let mut o = opts(JournalMode::None, 0);
    o.lease_ms = 1_000;
    let a = create(faults.clone(), 4 * CS, 4096, &o);
    faults.only_paths_containing(Some("/lease."));
    faults.set_failure_rate(&[OpKind::Put], 1.0);
    let be: BackendRef = mem.clone();
    let t = Instant::now();
    while !Volume::lease_info(&be, &uri()).unwrap().unwrap().expired() {
        assert!(t.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut force = opts(JournalMode::None, 0);
    force.force = true;
    let b = Volume::open(be.clone(), &uri(), &force).unwrap();
    let e = a.resize(2 * CS, true).unwrap_err();
    assert_eq!(e.errno(), 116, "ESTALE: {e}");
    assert_eq!(on_disk_size(&be), 4 * CS, "the fenced holder wrote nothing");
    drop(a);
    b.close();
}

#[test]
fn an_upgraded_volume_without_trailers_grows_over_a_short_last_chunk() {
    let mem = Arc::new(MemoryBackend::new());
    let b: BackendRef = mem.clone();
    let o = opts(JournalMode::None, 0);
    let old = CS + 8192;
    let v = create(b.clone(), old, 4096, &o);
    let data = common::pattern(4, (CS + 8192) as usize);
    v.write(0, &data).unwrap();
    v.close();
    // Make it a format 3 volume: no superblock checksum, no trailers.
    let sbp = format!("{DIR}/superblock.json");
    let mut raw = vec![0u8; file_len(&mem, &sbp) as usize];
    mem.read_at(&sbp, 0, &mut raw).unwrap();
    let mut sb: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    sb["format_version"] = 3.into();
    sb.as_object_mut().unwrap().remove("checksums");
    sb.as_object_mut().unwrap().remove("crc");
    mem.put(&sbp, &serde_json::to_vec(&sb).unwrap()).unwrap();
    for (c, len) in [(0u64, CS as usize), (1, 8192)] {
        let p = chunk_file(&mem, c);
        let mut f = vec![0u8; file_len(&mem, &p) as usize];
        mem.read_at(&p, 0, &mut f).unwrap();
        mem.put(&p, &f[..len]).unwrap();
    }
    let v = Volume::open(b.clone(), &uri(), &o).unwrap();
    assert!(!v.superblock().checksums);
    v.resize(3 * CS, false).unwrap();
    let mut want = data.clone();
    want.resize(3 * CS as usize, 0);
    assert!(read(&v, 0, 3 * CS as usize) == want);
    v.close();
    let v = Volume::open(b.clone(), &uri(), &o).unwrap();
    assert!(read(&v, 0, 3 * CS as usize) == want, "after a reopen");
    v.close();
}
