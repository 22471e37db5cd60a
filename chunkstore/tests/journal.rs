// SPDX-License-Identifier: Apache-2.0
//! The journal on the in-memory backend: durability at any instant (a
//! snapshot of the backend is what a process killed then leaves), torn tails
//! and corruption at replay, backpressure and its memory bound, the fallback
//! when the bucket cannot hsync, the format upgrade, and replay whatever mode
//! the opener asks for. The same paths on real Ozone: ozone_model.rs and the
//! SIGKILL crash test (`scripts/test-all`).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ozbd_backend::memory::MemoryBackend;
use ozbd_backend::{AppendFile, Backend, BackendRef, FileInfo};
use ozbd_chunkstore::{CreateOptions, JournalMode, OpenOptions, Volume, VolumeUri};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const BS: u64 = 4096;
const CS: u64 = 256 << 10;

fn uri() -> VolumeUri {
    VolumeUri::parse("mem://journal/vol/bucket/disk").unwrap()
}

fn opts(journal_mb: u64) -> OpenOptions {
    OpenOptions {
        journal: JournalMode::Ozone,
        journal_mb,
        retry: Duration::ZERO,
        ..OpenOptions::default()
    }
}

fn create(backend: BackendRef, size: u64, o: &OpenOptions) -> Volume {
    let mut c = CreateOptions::new(size);
    c.block_size = BS as u32;
    c.chunk_size = CS;
    Volume::create(backend, &uri(), &c, o).unwrap().0
}

/// Make a snapshot look like what a killed process leaves: its lease names
/// a process that is gone (a start time this pid never had), so the next
/// open takes it over without force, as after a real SIGKILL on this host.
fn holder_died(mem: &MemoryBackend) {
    for (path, data) in mem.files_under("/vol") {
        if path
            .rsplit('/')
            .next()
            .is_some_and(|n| n.starts_with("lease."))
        {
            let mut v: serde_json::Value = serde_json::from_slice(&data).unwrap();
            v["holder"]["start_ticks"] = 1.into();
            mem.poke(&path, serde_json::to_vec(&v).unwrap());
        }
    }
}

/// A block's content for write number `n` (every block of every write differs).
fn block(n: u64) -> Vec<u8> {
    let mut v = vec![0u8; BS as usize];
    for (i, b) in v.iter_mut().enumerate() {
        *b = (n.wrapping_mul(31).wrapping_add(i as u64 / 8) % 251) as u8 + 1;
    }
    v[..8].copy_from_slice(&n.to_le_bytes());
    v
}

#[test]
fn small_writes_are_journaled_and_read_back_before_and_after_destage() {
    let mem = Arc::new(MemoryBackend::new());
    let vol = create(mem.clone(), 8 * CS, &opts(16));
    for i in 0..64u64 {
        vol.write(i * BS * 3 % (8 * CS), &block(i)).unwrap();
    }
    let s = vol.stats();
    assert_eq!(s.journal.mode, "ozone");
    assert_eq!(s.journal.records, 64, "{s:?}");
    assert!(s.journal.dirty_bytes > 0, "{s:?}");
    // Journaled chunks count as holding data (NBD block status and `ozbd
    // export` skip chunks that do not), before any chunk file exists.
    assert!(vol.chunk_may_hold_data(0) && vol.allocated_chunks().contains(&0));
    assert!(!vol.chunk_may_hold_data(7) || vol.allocated_chunks().contains(&7));
    for i in 0..64u64 {
        let mut b = vec![0u8; BS as usize];
        vol.read(i * BS * 3 % (8 * CS), &mut b).unwrap();
        assert!(b == block(i), "block {i} from the journal");
    }
    drop(vol);
    // A clean close destages everything: the journal keeps one small
    // segment per stream (its header and a checkpoint).
    let segs = segments(&mem);
    assert!(!segs.is_empty(), "the journal is where the test looks");
    let streams = opts(16).journal_streams;
    assert!(
        segs.len() <= streams && segs.iter().all(|s| s.1.len() < 256),
        "{:?}",
        segs.iter().map(|s| (&s.0, s.1.len())).collect::<Vec<_>>()
    );
    let vol = Volume::open(mem.clone(), &uri(), &opts(16)).unwrap();
    assert_eq!(vol.stats().journal.replayed_records, 0);
    for i in 0..64u64 {
        let mut b = vec![0u8; BS as usize];
        vol.read(i * BS * 3 % (8 * CS), &mut b).unwrap();
        assert!(b == block(i), "block {i} from the chunks");
    }
}

/// Writers on several threads; at random instants the backend is copied (a
/// process killed at that instant). Opening the copy must show every write
/// acknowledged before the copy, or a later one to the same block, never a
/// torn block, never older data.
#[test]
fn every_acknowledged_write_survives_a_kill_at_any_instant() {
    let cycles: u64 = std::env::var("OZBD_JOURNAL_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let blocks = 16 * CS / BS;
    let mem = Arc::new(MemoryBackend::new());
    let vol = Arc::new(create(mem.clone(), 16 * CS, &opts(16)));
    // Per write: (block, write number); `acked` counts completed writes in
    // completion order.
    let log: Arc<Mutex<Vec<(u64, u64)>>> = Arc::new(Mutex::new(Vec::new()));
    let started: Arc<Mutex<Vec<(u64, u64)>>> = Arc::new(Mutex::new(Vec::new()));
    let next = Arc::new(AtomicU64::new(1));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for t in 0..4u64 {
        let (vol, log, started, next, stop) = (
            vol.clone(),
            log.clone(),
            started.clone(),
            next.clone(),
            stop.clone(),
        );
        writers.push(std::thread::spawn(move || {
            let mut rng = SmallRng::seed_from_u64(t);
            while !stop.load(Ordering::Relaxed) {
                let n = next.fetch_add(1, Ordering::Relaxed);
                // Each writer owns a quarter of the blocks, so writes to one
                // block are sequential and "the last acknowledged" is defined.
                let b = rng.gen_range(0..blocks / 4) * 4 + t;
                started.lock().unwrap().push((b, n));
                vol.write(b * BS, &block(n)).unwrap();
                log.lock().unwrap().push((b, n));
            }
        }));
    }
    let mut rng = SmallRng::seed_from_u64(99);
    for cycle in 0..cycles {
        std::thread::sleep(Duration::from_millis(rng.gen_range(1..40)));
        let acked: Vec<(u64, u64)> = log.lock().unwrap().clone();
        let copy = Arc::new(mem.snapshot());
        holder_died(&copy);
        let begun: Vec<(u64, u64)> = started.lock().unwrap().clone();
        // What each block may hold: its last write acknowledged before the
        // copy (or zeros), or any write to it not acknowledged by then.
        let mut last = vec![0u64; blocks as usize];
        let mut acked_set = std::collections::HashSet::new();
        for &(b, n) in &acked {
            last[b as usize] = last[b as usize].max(n);
            acked_set.insert(n);
        }
        let v = Volume::open(copy.clone(), &uri(), &opts(16)).unwrap();
        let mut buf = vec![0u8; (16 * CS) as usize];
        v.read(0, &mut buf).unwrap();
        for b in 0..blocks {
            let got = &buf[(b * BS) as usize..((b + 1) * BS) as usize];
            let want = last[b as usize];
            if (want == 0 && got.iter().all(|&x| x == 0)) || (want != 0 && got == block(want)) {
                continue;
            }
            let mut n8 = [0u8; 8];
            n8.copy_from_slice(&got[..8]);
            let n = u64::from_le_bytes(n8);
            let later = begun
                .iter()
                .any(|&(bb, nn)| bb == b && nn == n && nn > want);
            assert!(
                later && got == block(n),
                "cycle {cycle}: block {b} holds write {n} (torn or stale); the last acknowledged write there was {want}"
            );
        }
        drop(v);
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let s = vol.stats();
    assert!(s.journal.records > 100, "{s:?}");
    assert!(
        s.journal.records_per_hsync > 1.0,
        "4 writers share hsyncs: {s:?}"
    );
}

/// Writers that send their next write as soon as the last one completes (a
/// queue of 8, as bdevperf keeps one) put all 8 into each hsync: the
/// committer waits briefly for the writers it just completed instead of
/// starting the next hsync with only those that were waiting, which would
/// split the queue into two half batches taking turns (4 per hsync).
#[test]
fn a_full_queue_of_returning_writers_fills_each_hsync() {
    const Q: u64 = 8;
    const ROUNDS: u64 = 12;
    let be = Arc::new(Hooked {
        hsync_delay: Duration::from_millis(40),
        ..Hooked::default()
    });
    let vol = Arc::new(create(be.clone(), 16 * CS, &opts(16)));
    let writers: Vec<_> = (0..Q)
        .map(|w| {
            let vol = vol.clone();
            std::thread::spawn(move || {
                for r in 0..ROUNDS {
                    let n = w * ROUNDS + r;
                    submit_write(&vol, n * BS, block(n))
                        .recv()
                        .unwrap()
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let s = vol.stats();
    assert_eq!(s.journal.records, Q * ROUNDS, "{s:?}");
    assert!(
        s.journal.records_per_hsync >= 6.0,
        "a queue of {Q} should fill each hsync (the first one aside): {s:?}"
    );
    for n in 0..Q * ROUNDS {
        let mut b = vec![0u8; BS as usize];
        vol.read(n * BS, &mut b).unwrap();
        assert!(b == block(n), "block {n}");
    }
}

/// The files of the journal directory, oldest first.
fn segments(mem: &MemoryBackend) -> Vec<(String, Vec<u8>)> {
    // The journal is in the newest writer epoch's root, e<N>/journal/.
    let mut s: Vec<_> = mem
        .files_under("/vol/bucket/disk")
        .into_iter()
        .filter(|(p, _)| p.contains("/journal/") && !p.ends_with("seal.json"))
        .collect();
    s.sort();
    s
}

/// Leave a volume with journaled, not destaged data: a copy of the backend
/// taken while the volume is open (the process was killed).
fn killed_with_journal(n: u64) -> Arc<MemoryBackend> {
    let mem = Arc::new(MemoryBackend::new());
    // One stream, so the last segment holds the last records.
    let one = OpenOptions {
        journal_streams: 1,
        ..opts(64)
    };
    let vol = create(mem.clone(), 8 * CS, &one);
    for i in 0..n {
        vol.write(i * BS, &block(i + 1)).unwrap();
    }
    let copy = Arc::new(mem.snapshot());
    holder_died(&copy);
    drop(vol);
    copy
}

#[test]
fn a_torn_tail_is_cut_at_the_last_valid_record() {
    let mem = killed_with_journal(10);
    let segs = segments(&mem);
    let (name, mut data) = segs.last().cloned().unwrap();
    // Half a record appended: a writer that died mid-append.
    let mut junk = data[data.len() - 2000..].to_vec();
    junk.truncate(1500);
    data.extend_from_slice(&junk);
    mem.poke(&name, data);
    let vol = Volume::open(mem.clone(), &uri(), &opts(64)).unwrap();
    assert_eq!(vol.stats().journal.replayed_records, 10);
    for i in 0..10u64 {
        let mut b = vec![0u8; BS as usize];
        vol.read(i * BS, &mut b).unwrap();
        assert!(b == block(i + 1), "block {i}");
    }
    // Cutting the last record short loses only that record (never acked here).
    drop(vol);
    let mem = killed_with_journal(10);
    let (name, data) = segments(&mem).last().cloned().unwrap();
    mem.poke(&name, data[..data.len() - 100].to_vec());
    let vol = Volume::open(mem.clone(), &uri(), &opts(64)).unwrap();
    let mut b = vec![0u8; BS as usize];
    vol.read(8 * BS, &mut b).unwrap();
    assert!(b == block(9));
    vol.read(9 * BS, &mut b).unwrap();
    assert!(b.iter().all(|&x| x == 0), "the torn record is not applied");
}

#[test]
fn a_corrupt_record_in_the_middle_fails_the_open_naming_the_segment() {
    let mem = killed_with_journal(10);
    let (name, mut data) = segments(&mem).last().cloned().unwrap();
    let at = data.len() / 2;
    data[at] ^= 0x5a;
    mem.poke(&name, data);
    let e = Volume::open(mem.clone(), &uri(), &opts(64)).unwrap_err();
    let m = e.to_string();
    let seg = name.rsplit('/').next().unwrap();
    assert!(m.contains(seg) && m.contains("corrupt"), "{m}");
    assert_eq!(e.errno(), 117, "{m}");
    // Nothing was applied: the chunks are as they were (no chunk files).
    assert!(mem
        .files_under("/vol/bucket/disk")
        .iter()
        .all(|(p, _)| !p.contains("/chunks/")));
    // journal=none refuses too: it would have to apply the journal first.
    let none = OpenOptions {
        journal: JournalMode::None,
        ..opts(64)
    };
    assert!(Volume::open(mem.clone(), &uri(), &none).is_err());
}

#[test]
fn every_open_replays_whatever_the_mode() {
    let mem = killed_with_journal(20);
    let none = OpenOptions {
        journal: JournalMode::None,
        ..opts(64)
    };
    let vol = Volume::open(mem.clone(), &uri(), &none).unwrap();
    assert_eq!(vol.settings().journal, JournalMode::None);
    for i in 0..20u64 {
        let mut b = vec![0u8; BS as usize];
        vol.read(i * BS, &mut b).unwrap();
        assert!(b == block(i + 1), "block {i}");
    }
    assert!(
        segments(&mem).is_empty(),
        "journal=none applies and removes it"
    );
    drop(vol);
    let info = Volume::journal_info(&(mem.clone() as BackendRef), &uri()).unwrap();
    assert_eq!(info.segments, 0);
}

#[test]
fn journal_info_says_what_a_replay_would_do() {
    let mem = killed_with_journal(12);
    let info = Volume::journal_info(&(mem.clone() as BackendRef), &uri()).unwrap();
    assert_eq!(info.to_apply, 12, "{info:?}");
    assert_eq!(info.dirty_bytes, 12 * BS, "{info:?}");
    assert_eq!(info.chunks, 1, "{info:?}");
}

/// A memory backend with the hooks these tests need: slow puts (the destager
/// falls behind the writers), appends that never reach the store (a bucket
/// without a real hsync), and hsyncs that wait while a gate is closed.
#[derive(Debug, Default)]
struct Hooked {
    mem: MemoryBackend,
    put_delay: Duration,
    hsync_delay: Duration,
    fake_hsync: bool,
    gate: Option<Gate>,
}

type Gate = Arc<(Mutex<bool>, std::sync::Condvar)>;

impl Backend for Hooked {
    fn read_at(&self, p: &str, o: u64, b: &mut [u8]) -> ozbd_backend::Result<usize> {
        self.mem.read_at(p, o, b)
    }
    fn put(&self, p: &str, d: &[u8]) -> ozbd_backend::Result<()> {
        std::thread::sleep(self.put_delay);
        self.mem.put(p, d)
    }
    fn delete(&self, p: &str, r: bool) -> ozbd_backend::Result<bool> {
        self.mem.delete(p, r)
    }
    fn mkdirs(&self, p: &str) -> ozbd_backend::Result<()> {
        self.mem.mkdirs(p)
    }
    fn rename(&self, s: &str, d: &str) -> ozbd_backend::Result<()> {
        self.mem.rename(s, d)
    }
    fn stat(&self, p: &str) -> ozbd_backend::Result<Option<FileInfo>> {
        self.mem.stat(p)
    }
    fn list(&self, p: &str) -> ozbd_backend::Result<Vec<FileInfo>> {
        self.mem.list(p)
    }
    fn describe(&self) -> String {
        "hooked".into()
    }
    fn create_append(&self, p: &str) -> ozbd_backend::Result<Box<dyn AppendFile + '_>> {
        if self.fake_hsync {
            self.mem.put(p, &[])?;
            return Ok(Box::new(Unsynced));
        }
        let inner = self.mem.create_append(p)?;
        if self.gate.is_none() && self.hsync_delay.is_zero() {
            return Ok(inner);
        }
        Ok(Box::new(GatedFile {
            inner,
            closed: self.gate.clone(),
            delay: self.hsync_delay,
        }))
    }
}

/// A writer faster than the destager is slowed, not failed, and the journal's
/// memory stays within journal_mb.
#[test]
fn backpressure_slows_writers_and_bounds_memory() {
    let be = Arc::new(Hooked {
        put_delay: Duration::from_millis(20),
        ..Hooked::default()
    });
    let size = 256 * CS; // 64 MiB
    let vol = Arc::new(create(be.clone(), size, &opts(16)));
    let peak = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (vol, peak, done) = (vol.clone(), peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let s = vol.stats().journal;
                peak.fetch_max(s.dirty_bytes.max(s.journal_bytes), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let written = Arc::new(AtomicUsize::new(0));
    let mut ws = Vec::new();
    for t in 0..4u64 {
        let (vol, written) = (vol.clone(), written.clone());
        ws.push(std::thread::spawn(move || {
            let mut rng = SmallRng::seed_from_u64(t);
            // 4 x 2048 x 4 KiB = 32 MiB through a 16 MiB journal.
            for i in 0..2048u64 {
                let b = rng.gen_range(0..size / BS);
                vol.write(b * BS, &block(i)).unwrap();
                written.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for w in ws {
        w.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let s = vol.stats();
    assert_eq!(written.load(Ordering::Relaxed), 4 * 2048);
    assert_eq!(s.errors, 0, "{s:?}");
    assert!(s.journal.full_waits > 0, "writers waited: {s:?}");
    // The stated constant: record headers that are not counted against
    // journal_mb (segment headers, checkpoints, and the 48-byte superseded
    // records of writes that found the journal full) stay under 1 MiB.
    let peak = peak.load(Ordering::Relaxed);
    let bound = (16 << 20) + (1 << 20);
    assert!(
        peak <= bound,
        "journal/dirty bytes peaked at {peak} > {bound}"
    );
}

/// An append file whose data never reaches the store: what a bucket without a
/// real hsync gives (the journal must notice and fall back, saying so).
struct Unsynced;

impl AppendFile for Unsynced {
    fn append(&mut self, _: &[u8]) -> ozbd_backend::Result<()> {
        Ok(())
    }
    fn hsync(&mut self) -> ozbd_backend::Result<()> {
        Ok(())
    }
    fn close(self: Box<Self>) -> ozbd_backend::Result<()> {
        Ok(())
    }
}

#[test]
fn no_real_hsync_falls_back_to_no_journal_with_a_note() {
    {
        let be = Arc::new(Hooked {
            fake_hsync: true,
            ..Hooked::default()
        }) as BackendRef;
        let vol = create(be.clone(), 4 * CS, &opts(16));
        let s = vol.settings();
        assert_eq!(s.journal, JournalMode::None, "{s:?}");
        let note = s.journal_note.clone().unwrap_or_default();
        assert!(
            note.contains("cannot hsync") && note.contains("ozone.fs.hsync.enabled"),
            "{note}"
        );
        vol.write(0, &block(1)).unwrap();
        drop(vol);
        let vol = Volume::open(be.clone(), &uri(), &opts(16)).unwrap();
        let mut b = vec![0u8; BS as usize];
        vol.read(0, &mut b).unwrap();
        assert!(b == block(1), "the write went to its chunk");
    }
}

#[test]
fn a_format_1_volume_is_upgraded_when_opened_with_the_journal() {
    let mem = Arc::new(MemoryBackend::new());
    let none = OpenOptions {
        journal: JournalMode::None,
        ..opts(16)
    };
    drop(create(mem.clone(), 4 * CS, &none));
    // Rewrite the superblock as format 1 wrote it.
    let path = "/vol/bucket/disk/superblock.json";
    let mut buf = vec![0u8; 4096];
    let n = mem.read_at(path, 0, &mut buf).unwrap();
    let mut sb: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap();
    sb["format_version"] = 1.into();
    sb.as_object_mut().unwrap().remove("journal");
    sb.as_object_mut().unwrap().remove("epoch");
    sb.as_object_mut().unwrap().remove("checksums");
    sb.as_object_mut().unwrap().remove("crc");
    mem.put(path, &serde_json::to_vec(&sb).unwrap()).unwrap();

    // Every writable open takes a lease, so it upgrades to format 4 (leases,
    // data under e<epoch>/, chunk checksums from now on), with the journal
    // flag as the mode says.
    let v = Volume::open(mem.clone(), &uri(), &none).unwrap();
    assert_eq!(
        (v.superblock().format_version, v.superblock().journal),
        (4, false),
        "journal=none leaves the journal flag off"
    );
    assert!(
        !v.superblock().checksums,
        "chunks written before the upgrade have no trailer"
    );
    drop(v);
    let v = Volume::open(mem.clone(), &uri(), &opts(16)).unwrap();
    drop(v);
    let sb = Volume::inspect(&(mem.clone() as BackendRef), &uri()).unwrap();
    assert_eq!((sb.format_version, sb.journal), (4, true));
    // A format 1 reader refuses it: it checks format_version > 1, as this
    // one checks > 4.
    let mut future: serde_json::Value = serde_json::from_slice(&{
        let n = mem.read_at(path, 0, &mut buf).unwrap();
        buf[..n].to_vec()
    })
    .unwrap();
    future["format_version"] = 5.into();
    mem.put(path, &serde_json::to_vec(&future).unwrap())
        .unwrap();
    let e = Volume::open(mem.clone(), &uri(), &opts(16)).unwrap_err();
    assert!(e.to_string().contains("newer bdev_ozone"), "{e}");
}

/// An append file whose hsyncs wait while the gate is closed, and take
/// `delay` (a slow hsync, as on Ozone).
struct GatedFile<'a> {
    inner: Box<dyn AppendFile + 'a>,
    closed: Option<Gate>,
    delay: Duration,
}

impl AppendFile for GatedFile<'_> {
    fn append(&mut self, d: &[u8]) -> ozbd_backend::Result<()> {
        self.inner.append(d)
    }
    fn hsync(&mut self) -> ozbd_backend::Result<()> {
        if let Some(g) = &self.closed {
            let (m, cv) = &**g;
            let _open = cv.wait_while(m.lock().unwrap(), |closed| *closed).unwrap();
        }
        std::thread::sleep(self.delay);
        self.inner.hsync()
    }
    fn close(self: Box<Self>) -> ozbd_backend::Result<()> {
        self.inner.close()
    }
}

/// The volume's in-flight bounds hold for journaled writes: with room for one
/// request, a second write while the first waits for its hsync is refused
/// with Busy (EAGAIN), and goes in once the first completes.
#[test]
fn journaled_writes_count_against_the_in_flight_bound() {
    let (be, gate) = gated();
    let o = OpenOptions {
        max_inflight_requests: 1,
        ..opts(16)
    };
    let vol = create(be, 64 * CS, &o);
    assert_eq!(vol.settings().journal, JournalMode::Ozone);
    let gate = GateGuard::close(gate);
    let (ra, done_a) = try_write(&vol, 0, block(1));
    assert!(ra.is_ok(), "the first write is admitted");
    let (rb, _) = try_write(&vol, BS, block(2));
    assert!(
        matches!(rb, Err(ozbd_chunkstore::Error::Busy(_))),
        "a second write while the first is in flight: {rb:?}"
    );
    assert!(vol.stats().busy >= 1);
    drop(gate);
    done_a.recv().unwrap().unwrap();
    vol.write(BS, &block(2)).unwrap();
    let mut got = vec![0u8; 2 * BS as usize];
    vol.read(0, &mut got).unwrap();
    assert!(got[..BS as usize] == block(1));
    assert!(got[BS as usize..] == block(2));
    vol.close();
}

/// A write that goes straight to a chunk the journal holds older data for
/// (here: too large for a record) drops that older data with a Superseded
/// record. A small write journaled while the large one is in flight is newer
/// than it: replay must keep it, whenever the Superseded record lands.
#[test]
fn a_write_journaled_during_a_direct_write_survives_its_superseded_record() {
    let be = Arc::new(Hooked {
        put_delay: Duration::from_millis(400),
        ..Hooked::default()
    });
    // journal_mb 16: records hold at most 2 MiB, so a 9-chunk write goes
    // straight to its chunks even where the journal touched them.
    let vol = Arc::new(create(be.clone(), 16 * CS, &opts(16)));
    vol.write(0, &block(1)).unwrap();
    let big: Vec<u8> = (0..9 * CS / BS).flat_map(|i| block(100 + i)).collect();
    let w2 = {
        let (vol, big) = (vol.clone(), big.clone());
        std::thread::spawn(move || vol.write(0, &big).unwrap())
    };
    std::thread::sleep(Duration::from_millis(100));
    vol.write(2 * BS, &block(3)).unwrap();
    w2.join().unwrap();
    // A process killed now (before the destager applied the small write).
    let copy = Arc::new(be.mem.snapshot());
    holder_died(&copy);
    let v = Volume::open(copy, &uri(), &opts(16)).unwrap();
    let mut got = vec![0u8; (4 * BS) as usize];
    v.read(0, &mut got).unwrap();
    let blk = |i: usize| &got[i * BS as usize..(i + 1) * BS as usize];
    assert!(blk(0) == block(100), "block 0 holds the large write");
    assert!(blk(1) == block(101), "block 1 holds the large write");
    assert!(
        blk(2) == block(3),
        "block 2 holds the small write acknowledged after the large one began (not {})",
        u64::from_le_bytes(blk(2)[..8].try_into().unwrap())
    );
    drop(v);
    vol.close();
}

/// A clean close whose segment deletes keep failing gives up (the journal is kept and
/// replayed at the next open) instead of retrying forever: close once spun on the
/// failing delete and never returned.
#[test]
fn a_close_whose_segment_deletes_fail_returns_and_the_journal_replays() {
    use ozbd_backend::fault::{FaultBackend, OpKind};
    let mem = Arc::new(MemoryBackend::new());
    let faults = Arc::new(FaultBackend::new(mem.clone(), 7));
    let vol = create(faults.clone(), 8 * CS, &opts(16));
    for i in 0..200u64 {
        vol.write(i * BS % (8 * CS), &block(i)).unwrap();
    }
    faults.only_paths_containing(Some("/journal/"));
    faults.set_failure_rate(&[OpKind::Delete], 1.0);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(vol);
        let _ = tx.send(());
    });
    assert!(
        rx.recv_timeout(Duration::from_secs(60)).is_ok(),
        "close did not return within 60 s while journal deletes failed"
    );
    assert!(
        faults.injected() > 0,
        "a segment delete was tried and failed"
    );
    faults.heal();
    let vol = Volume::open(mem.clone(), &uri(), &opts(16)).unwrap();
    for i in 0..200u64 {
        let mut b = vec![0u8; BS as usize];
        vol.read(i * BS % (8 * CS), &mut b).unwrap();
        assert!(b == block(i), "block {i} after the reopen");
    }
}

/// Submit a write of `data` (leaked: it must outlive the request) without
/// waiting: whether it was admitted, and the receiver of its completion.
fn try_write(
    vol: &Volume,
    off: u64,
    data: Vec<u8>,
) -> (
    ozbd_chunkstore::Result<()>,
    std::sync::mpsc::Receiver<ozbd_chunkstore::Result<()>>,
) {
    let data: &'static [u8] = Box::leak(data.into_boxed_slice());
    let (tx, rx) = std::sync::mpsc::channel();
    // SAFETY: `data` is 'static.
    let sg = unsafe { ozbd_chunkstore::SgList::from_const_slice(data) };
    let r = unsafe {
        vol.try_submit(
            ozbd_chunkstore::Op::Write,
            off,
            data.len() as u64,
            sg,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        )
    };
    (r.map_err(|rej| rej.error), rx)
}

/// `try_write`, which must be admitted.
fn submit_write(
    vol: &Volume,
    off: u64,
    data: Vec<u8>,
) -> std::sync::mpsc::Receiver<ozbd_chunkstore::Result<()>> {
    let (r, rx) = try_write(vol, off, data);
    assert!(r.is_ok(), "write at {off} admitted: {r:?}");
    rx
}

/// Journal options that gather in these small chunks (by default only
/// chunks of 4 MiB and more are gathered).
fn gopts() -> OpenOptions {
    OpenOptions {
        gather_min_chunk: 0,
        ..opts(16)
    }
}

/// A volume (256 KiB chunks, gathering on) whose journal hsyncs wait at a
/// closed gate, with writes 0..`writes` of a quarter chunk each submitted
/// in order (chunk 0's four are journaled and wait; write 4 starts a gather
/// of chunk 1). Fields drop in order: the gate opens before the volume
/// closes.
struct Stream {
    gate: GateGuard,
    vol: Volume,
    be: Arc<Hooked>,
    rxs: Vec<std::sync::mpsc::Receiver<ozbd_chunkstore::Result<()>>>,
}

const PIECE: u64 = CS / 4;

fn stream(writes: u64, o: &OpenOptions) -> Stream {
    let (be, gate) = gated();
    let vol = create(be.clone(), 8 * CS, o);
    let gate = GateGuard::close(gate);
    let rxs = (0..writes)
        .map(|w| submit_write(&vol, w * PIECE, blocks(w, PIECE / BS)))
        .collect();
    Stream { gate, vol, be, rxs }
}

impl Stream {
    /// Open the gate and wait for every write.
    fn finish(self) -> (Volume, Arc<Hooked>) {
        drop(self.gate);
        for rx in &self.rxs {
            rx.recv_timeout(Duration::from_secs(20)).unwrap().unwrap();
        }
        (self.vol, self.be)
    }
}

/// What a process killed now would leave: `len` bytes at `off` read from
/// the volume reopened from a snapshot of its backend.
fn read_after_kill(mem: &MemoryBackend, off: u64, len: usize) -> Vec<u8> {
    let copy = Arc::new(mem.snapshot());
    holder_died(&copy);
    let v = Volume::open(copy, &uri(), &opts(16)).unwrap();
    let mut got = vec![0u8; len];
    v.read(off, &mut got).unwrap();
    got
}

/// `n` blocks of write number `w` (every block differs).
fn blocks(w: u64, n: u64) -> Vec<u8> {
    (0..n).flat_map(|i| block(w * 1000 + i)).collect()
}

/// A journal whose hsyncs wait at a closed gate, and a guard that opens it
/// when dropped (a failed assertion must not leave close waiting).
struct GateGuard(Gate);
impl GateGuard {
    /// Close the gate. Bind the guard after the volume, so that it drops
    /// (opening the gate) before the volume's close waits for an hsync.
    fn close(gate: Gate) -> GateGuard {
        *gate.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
        GateGuard(gate)
    }
}
impl Drop for GateGuard {
    fn drop(&mut self) {
        *self.0 .0.lock().unwrap_or_else(|e| e.into_inner()) = false;
        self.0 .1.notify_all();
    }
}

fn gated() -> (Arc<Hooked>, Gate) {
    let gate: Gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let be = Arc::new(Hooked {
        gate: Some(gate.clone()),
        ..Hooked::default()
    });
    (be, gate)
}

/// A sequential stream of partial-chunk writes with enough in flight (here
/// 64 KiB writes, 16 at once, into 256 KiB chunks) fills chunks: each full
/// chunk goes to Ozone as one put and its writes complete without a journal
/// hsync (the gate holds every hsync). Everything reads back, also after a
/// kill.
#[test]
fn a_sequential_stream_fills_whole_chunks_without_the_journal() {
    let mut st = stream(16, &gopts());
    // Chunk 0 started the stream (too little in flight to fill a chunk yet):
    // journaled, waiting at the gate. Chunks 1-3 were gathered and put.
    for (w, rx) in st.rxs.iter().enumerate().skip(4) {
        let r = rx.recv_timeout(Duration::from_secs(20));
        assert!(
            matches!(r, Ok(Ok(()))),
            "write {w} completes without an hsync: {r:?}"
        );
    }
    let s = st.vol.stats().journal;
    assert_eq!((s.gathered_chunks, s.gather_misses), (3, 0), "{s:?}");
    assert!(
        st.rxs[0].try_recv().is_err(),
        "chunk 0's writes wait for their hsync"
    );
    st.rxs.truncate(4); // the others completed above
    let (vol, be) = st.finish();
    let want: Vec<u8> = (0..16u64).flat_map(|w| blocks(w, PIECE / BS)).collect();
    let mut got = vec![0u8; want.len()];
    vol.read(0, &mut got).unwrap();
    assert!(got == want, "the stream reads back");
    assert!(
        read_after_kill(&be.mem, 0, want.len()) == want,
        "the stream reads back after a kill"
    );
    vol.close();
}

/// A gather its stream does not fill in time is journaled: its write
/// completes after the journal's hsync, not never.
#[test]
fn a_gather_that_does_not_fill_its_chunk_is_journaled() {
    let st = stream(5, &gopts());
    // Write 4 starts a gather of chunk 1 that nothing else joins. It is
    // journaled once its wait is over and the committer is free (here: when
    // the gate lets chunk 0's hsync return; its own hsync could not have
    // started before that anyway).
    std::thread::sleep(Duration::from_millis(50));
    let s = st.vol.stats().journal;
    assert_eq!(s.gathered_chunks, 0, "{s:?}");
    assert_eq!(
        s.dirty_bytes,
        4 * PIECE,
        "write 4 is held, not journaled: {s:?}"
    );
    let (vol, _) = st.finish();
    let s = vol.stats().journal;
    assert_eq!((s.gather_misses, s.records), (1, 5), "{s:?}");
    let want: Vec<u8> = (0..5u64).flat_map(|w| blocks(w, PIECE / BS)).collect();
    let mut got = vec![0u8; want.len()];
    vol.read(0, &mut got).unwrap();
    assert!(got == want);
    vol.close();
}

/// A request that meets a gather of its chunk (here a write over a held
/// one) journals the held writes first: the later write wins, in the volume
/// and after a replay.
#[test]
fn a_write_over_a_held_one_is_ordered_after_it() {
    let mut st = stream(5, &gopts());
    // Write 4 (chunk 1's first quarter) is held; write 5 lands on it.
    st.rxs
        .push(submit_write(&st.vol, 4 * PIECE, blocks(5, PIECE / BS)));
    let s = st.vol.stats().journal;
    assert_eq!(s.gather_misses, 1, "the gather was flushed: {s:?}");
    let (vol, be) = st.finish();
    let mut got = vec![0u8; PIECE as usize];
    vol.read(4 * PIECE, &mut got).unwrap();
    assert!(got == blocks(5, PIECE / BS), "the later write wins");
    assert!(
        read_after_kill(&be.mem, 4 * PIECE, PIECE as usize) == blocks(5, PIECE / BS),
        "the later write wins after a replay"
    );
    vol.close();
}

/// A read of a held write, submitted after it, sees it (the read journals
/// the gather first; it never waits for it).
#[test]
fn a_read_sees_a_held_write_submitted_before_it() {
    let st = stream(5, &gopts());
    let mut got = vec![0u8; 2 * PIECE as usize];
    st.vol.read(4 * PIECE, &mut got).unwrap();
    assert!(
        got[..PIECE as usize] == blocks(4, PIECE / BS),
        "the held write"
    );
    assert!(
        got[PIECE as usize..].iter().all(|&b| b == 0),
        "and nothing else"
    );
    assert_eq!(st.vol.stats().journal.gather_misses, 1);
    st.finish().0.close();
}

/// By default, small chunks (here 256 KiB) are never gathered: their puts
/// cost more than a shared hsync (docs/performance.md).
#[test]
fn small_chunks_are_not_gathered_by_default() {
    let st = stream(8, &opts(16));
    std::thread::sleep(Duration::from_millis(50));
    let s = st.vol.stats().journal;
    assert_eq!((s.gathered_chunks, s.gather_misses), (0, 0), "{s:?}");
    assert_eq!(s.dirty_bytes, 8 * PIECE, "all journaled: {s:?}");
    st.finish().0.close();
}
