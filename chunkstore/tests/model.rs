// SPDX-License-Identifier: Apache-2.0
//! Model-based tests of the chunk store on the in-memory and fault-injecting
//! backends: every read is compared with a reference model (a flat byte array).

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ozbd_backend::fault::{FaultBackend, OpKind};
use ozbd_backend::memory::MemoryBackend;
use ozbd_backend::BackendRef;
use ozbd_chunkstore::{
    CreateOptions, Error, JournalMode, Op, OpenOptions, SgList, Volume, VolumeUri,
};
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const BS: u64 = 512;
const CS: u64 = 64 << 10;

fn uri() -> VolumeUri {
    VolumeUri::parse("mem://model/vol/bucket/disk").unwrap()
}

/// A new volume whose I/O fails at the first backend error (no retry), so that
/// the fault-injection tests see every injected fault. Without the journal:
/// these tests check the chunk path itself (the journaled path has its own
/// tests in journal.rs, and the model tests below run both).
fn create(backend: BackendRef, size: u64) -> Volume {
    create_retrying(backend, size, Duration::ZERO)
}

fn create_retrying(backend: BackendRef, size: u64, retry: Duration) -> Volume {
    create_with(backend, size, retry, JournalMode::None)
}

/// With the journal on or off.
fn create_j(backend: BackendRef, size: u64, journal: bool) -> Volume {
    let mode = if journal {
        JournalMode::Ozone
    } else {
        JournalMode::None
    };
    create_with(backend, size, Duration::ZERO, mode)
}

fn create_with(backend: BackendRef, size: u64, retry: Duration, journal: JournalMode) -> Volume {
    let mut o = CreateOptions::new(size);
    o.block_size = BS as u32;
    o.chunk_size = CS;
    let open = OpenOptions {
        retry,
        journal,
        journal_mb: 16,
        // Gather in these small chunks too (by default only chunks of
        // 4 MiB and more are), so the model covers that path.
        gather_min_chunk: 0,
        ..OpenOptions::default()
    };
    Volume::create(backend, &uri(), &o, &open).unwrap().0
}

#[derive(Debug, Clone)]
enum MOp {
    Read(u64, u64),
    Write(u64, u64, u8),
    Zero(u64, u64),
    Unmap(u64, u64),
    Flush,
}

fn op_strategy(blocks: u64) -> impl Strategy<Value = MOp> {
    let range =
        (0..blocks).prop_flat_map(move |start| (Just(start), 1..=(blocks - start).min(300)));
    prop_oneof![
        range.clone().prop_map(|(s, n)| MOp::Read(s * BS, n * BS)),
        (range.clone(), any::<u8>()).prop_map(|((s, n), seed)| MOp::Write(s * BS, n * BS, seed)),
        range.clone().prop_map(|(s, n)| MOp::Zero(s * BS, n * BS)),
        range.prop_map(|(s, n)| MOp::Unmap(s * BS, n * BS)),
        Just(MOp::Flush),
    ]
}

/// Deterministic, position-dependent data so misplaced bytes show up.
fn pattern(off: u64, len: u64, seed: u8) -> Vec<u8> {
    (off..off + len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed ^ ((i >> 9) as u8))
        .collect()
}

fn apply(model: &mut [u8], op: &MOp) {
    match *op {
        MOp::Write(o, n, seed) => {
            model[o as usize..(o + n) as usize].copy_from_slice(&pattern(o, n, seed))
        }
        MOp::Zero(o, n) | MOp::Unmap(o, n) => model[o as usize..(o + n) as usize].fill(0),
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Sequential ops, every read checked, then reopen and check everything.
    #[test]
    fn sequential_matches_model(ops in prop::collection::vec(op_strategy(5 * CS / BS + 3), 1..60), journal in any::<bool>()) {
        let size = 5 * CS + 3 * BS; // a short last chunk
        let mem: BackendRef = Arc::new(MemoryBackend::new());
        let vol = create_j(mem.clone(), size, journal);
        let mut model = vec![0u8; size as usize];
        for op in &ops {
            match *op {
                MOp::Read(o, n) => {
                    let mut buf = vec![0xAA; n as usize];
                    vol.read(o, &mut buf).unwrap();
                    prop_assert_eq!(&buf[..], &model[o as usize..(o + n) as usize]);
                }
                MOp::Write(o, n, seed) => vol.write(o, &pattern(o, n, seed)).unwrap(),
                MOp::Zero(o, n) => vol.write_zeroes(o, n).unwrap(),
                MOp::Unmap(o, n) => vol.unmap(o, n).unwrap(),
                MOp::Flush => vol.flush().unwrap(),
            }
            apply(&mut model, op);
        }
        drop(vol);
        let vol = Volume::open(mem.clone(), &uri(), &OpenOptions::default()).unwrap();
        let mut all = vec![0u8; size as usize];
        vol.read(0, &mut all).unwrap();
        prop_assert!(all == model, "volume differs from model after reopen");
        // Thin: a chunk is stored only if it holds a non-zero byte.
        for c in 0..size.div_ceil(CS) {
            let s = (c * CS) as usize;
            let e = ((c + 1) * CS).min(size) as usize;
            let nonzero = model[s..e].iter().any(|&b| b != 0);
            prop_assert_eq!(vol.allocated_chunks().contains(&c), nonzero, "chunk {}", c);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Byte-granular ranges (what NBD clients may send): partial blocks are part of
    /// the chunk's read-modify-write and match the model byte for byte.
    #[test]
    fn unaligned_ranges_match_model(ops in prop::collection::vec(
        (0..3u8, 0..(3 * CS), 1..(CS + 700), any::<u8>()), 1..40), journal in any::<bool>()) {
        let size = 3 * CS;
        let mem: BackendRef = Arc::new(MemoryBackend::new());
        let vol = create_j(mem.clone(), size, journal);
        let mut model = vec![0u8; size as usize];
        for (kind, off, len, seed) in ops {
            let len = len.min(size - off);
            let r = off as usize..(off + len) as usize;
            match kind {
                0 => {
                    let mut buf = vec![0xAA; len as usize];
                    vol.read(off, &mut buf).unwrap();
                    prop_assert_eq!(&buf[..], &model[r]);
                }
                1 => {
                    let d = pattern(off, len, seed);
                    vol.write(off, &d).unwrap();
                    model[r].copy_from_slice(&d);
                }
                _ => {
                    vol.write_zeroes(off, len).unwrap();
                    model[r].fill(0);
                }
            }
        }
        drop(vol);
        let vol = Volume::open(mem, &uri(), &OpenOptions::default()).unwrap();
        let mut all = vec![0u8; size as usize];
        vol.read(0, &mut all).unwrap();
        prop_assert!(all == model);
    }
}

/// Many requests in flight at once: each read must see exactly the writes
/// submitted before it (per-chunk submission order), and the end state must
/// match the model.
#[test]
fn concurrent_submissions_apply_in_order() {
    let mut gathered = 0;
    for seed in 0..16u64 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let size = 16 * CS;
        let mem: BackendRef = Arc::new(MemoryBackend::new());
        let vol = create_j(mem, size, seed % 2 == 1);
        let mut model = vec![0u8; size as usize];
        let (tx, rx) = mpsc::channel::<(usize, ozbd_chunkstore::Result<()>)>();
        let n_ops = 400;
        // Buffers must outlive completion: allocate up front, never move them.
        let mut bufs: Vec<Box<[u8]>> = Vec::with_capacity(n_ops);
        let mut expect: Vec<Option<(u64, Vec<u8>)>> = Vec::with_capacity(n_ops);
        // Bursts of a sequential stream: quarter-chunk writes over two
        // chunks in order, which the journal gathers into whole-chunk puts.
        let mut burst = std::collections::VecDeque::new();
        for i in 0..n_ops {
            let blocks = rng.gen_range(1..=(3 * CS / BS));
            let start = rng.gen_range(0..=(size / BS - blocks));
            let (o, n) = (start * BS, blocks * BS);
            if burst.is_empty() && rng.gen_range(0..8) == 0 {
                let c = rng.gen_range(0..size / CS - 1);
                burst.extend((0..8).map(|q| c * CS + q * CS / 4));
            }
            let op = match (burst.pop_front(), rng.gen_range(0..10)) {
                (Some(o), _) => MOp::Write(o, CS / 4, rng.gen()),
                (None, 0..=3) => MOp::Read(o, n),
                (None, 4..=7) => MOp::Write(o, n, rng.gen()),
                (None, 8) => MOp::Zero(o, n),
                (None, _) => MOp::Unmap(o, n),
            };
            let (o, n) = match op {
                MOp::Read(o, n) | MOp::Write(o, n, _) | MOp::Zero(o, n) | MOp::Unmap(o, n) => {
                    (o, n)
                }
                MOp::Flush => unreachable!(),
            };
            let (kind, buf, exp) = match op {
                MOp::Read(o, n) => (
                    Op::Read,
                    vec![0xEEu8; n as usize].into_boxed_slice(),
                    Some((o, model[o as usize..(o + n) as usize].to_vec())),
                ),
                MOp::Write(o, n, s) => (Op::Write, pattern(o, n, s).into_boxed_slice(), None),
                MOp::Zero(..) => (Op::WriteZeroes, Vec::new().into_boxed_slice(), None),
                MOp::Unmap(..) => (Op::Unmap, Vec::new().into_boxed_slice(), None),
                MOp::Flush => unreachable!(),
            };
            apply(&mut model, &op);
            bufs.push(buf);
            expect.push(exp);
            let b = bufs.last_mut().unwrap();
            let sg = if b.is_empty() {
                SgList::empty()
            } else {
                unsafe { SgList::from_slice(b) }
            };
            let txc = tx.clone();
            unsafe {
                vol.submit(
                    kind,
                    o,
                    n,
                    sg,
                    Box::new(move |r| {
                        let _ = txc.send((i, r));
                    }),
                )
            };
            if i % 97 == 0 {
                let txc = tx.clone();
                unsafe {
                    vol.submit(
                        Op::Flush,
                        0,
                        0,
                        SgList::empty(),
                        Box::new(move |r| {
                            let _ = txc.send((usize::MAX, r));
                        }),
                    )
                };
            }
        }
        drop(tx);
        let mut done = 0;
        for (_, r) in rx.iter() {
            r.unwrap();
            done += 1;
        }
        assert_eq!(done, n_ops + n_ops.div_ceil(97));
        for (i, e) in expect.iter().enumerate() {
            if let Some((o, want)) = e {
                assert!(
                    bufs[i][..] == want[..],
                    "seed {seed}: read #{i} at {o} saw wrong data"
                );
            }
        }
        let mut all = vec![0u8; size as usize];
        vol.read(0, &mut all).unwrap();
        assert!(all == model, "seed {seed}: final state differs");
        gathered += vol.stats().journal.gathered_chunks;
    }
    assert!(
        gathered > 0,
        "no burst was gathered: the test misses that path"
    );
}

/// An I/O that fails reports the error and changes nothing else.
#[test]
fn injected_failures_change_nothing() {
    let mem: Arc<MemoryBackend> = Arc::new(MemoryBackend::new());
    let fault = Arc::new(FaultBackend::new(mem.clone(), 42));
    let size = 8 * CS;
    let vol = create(fault.clone(), size);
    let mut model = vec![0u8; size as usize];
    let mut rng = SmallRng::seed_from_u64(1);
    fault.set_failure_rate(&[OpKind::Put, OpKind::Read, OpKind::Delete], 0.3);
    let mut failures = 0;
    for _ in 0..2000 {
        // Single-chunk ops: all-or-nothing per request.
        let c = rng.gen_range(0..8);
        let blocks = rng.gen_range(1..=CS / BS);
        let sb = rng.gen_range(0..=(CS / BS - blocks));
        let (o, n) = (c * CS + sb * BS, blocks * BS);
        let op = match rng.gen_range(0..4) {
            0 => MOp::Read(o, n),
            1 => MOp::Write(o, n, rng.gen()),
            2 => MOp::Zero(o, n),
            _ => MOp::Unmap(o, n),
        };
        let r = match op {
            MOp::Read(o, n) => {
                let mut buf = vec![0u8; n as usize];
                let r = vol.read(o, &mut buf);
                if r.is_ok() {
                    assert_eq!(&buf[..], &model[o as usize..(o + n) as usize]);
                }
                r
            }
            MOp::Write(o, n, s) => vol.write(o, &pattern(o, n, s)),
            MOp::Zero(o, n) => vol.write_zeroes(o, n),
            MOp::Unmap(o, n) => vol.unmap(o, n),
            MOp::Flush => unreachable!(),
        };
        match r {
            Ok(()) => apply(&mut model, &op),
            Err(e) => {
                failures += 1;
                assert_eq!(e.errno(), 5, "{e}");
                assert!(e.to_string().contains("injected fault"), "{e}");
            }
        }
    }
    assert!(failures > 100, "only {failures} failures injected");
    fault.heal();
    let mut all = vec![0u8; size as usize];
    vol.read(0, &mut all).unwrap();
    assert!(all == model);
    // The backend itself agrees after reopen.
    drop(vol);
    let vol = Volume::open(mem, &uri(), &OpenOptions::default()).unwrap();
    vol.read(0, &mut all).unwrap();
    assert!(all == model);
    assert_eq!(vol.stats().errors, 0);
}

/// Transient backend failures (a datanode or the OM restarting) are retried:
/// the I/O succeeds, and the retries are counted.
#[test]
fn transient_failures_are_retried() {
    let mem: Arc<MemoryBackend> = Arc::new(MemoryBackend::new());
    let fault = Arc::new(FaultBackend::new(mem.clone(), 5));
    let vol = create_retrying(fault.clone(), 4 * CS, Duration::from_secs(30));
    let data = pattern(BS, 2 * CS, 9);
    fault.fail_calls(&[OpKind::Put], &[1, 2, 3]);
    vol.write(BS, &data).unwrap();
    fault.fail_calls(&[OpKind::Read], &[1, 2]);
    let mut back = vec![0u8; data.len()];
    vol.read(BS, &mut back).unwrap();
    assert!(back == data);
    fault.fail_calls(&[OpKind::Delete], &[1]);
    vol.unmap(0, CS).unwrap();
    let s = vol.stats();
    assert_eq!(s.retries, 6, "{s:?}");
    assert_eq!(s.errors, 0, "{s:?}");
    drop(vol);
    let vol = Volume::open(mem, &uri(), &OpenOptions::default()).unwrap();
    let mut all = vec![0u8; (4 * CS) as usize];
    vol.read(0, &mut all).unwrap();
    let mut model = vec![0u8; (4 * CS) as usize];
    model[BS as usize..(BS + 2 * CS) as usize].copy_from_slice(&data);
    model[..CS as usize].fill(0);
    assert!(all == model);
}

/// A backend that keeps failing makes the I/O fail once the retry time is up,
/// (never later), after several attempts, and the failed write changes nothing.
#[test]
fn retry_gives_up_at_its_deadline() {
    let mem: Arc<MemoryBackend> = Arc::new(MemoryBackend::new());
    let fault = Arc::new(FaultBackend::new(mem.clone(), 6));
    let retry = Duration::from_millis(1500);
    let vol = create_retrying(fault.clone(), 2 * CS, retry);
    let old = pattern(0, 2 * CS, 1);
    vol.write(0, &old).unwrap();
    fault.set_failure_rate(&[OpKind::Put], 1.0);
    let t = Instant::now();
    let err = vol.write(BS, &pattern(BS, BS, 2)).unwrap_err();
    let took = t.elapsed();
    assert_eq!(err.errno(), 5, "{err}");
    assert!(took >= Duration::from_millis(600), "gave up after {took:?}");
    assert!(
        took < retry + Duration::from_secs(2),
        "gave up after {took:?}"
    );
    assert!(vol.stats().retries >= 3, "{:?}", vol.stats());
    fault.heal();
    let mut all = vec![0u8; (2 * CS) as usize];
    vol.read(0, &mut all).unwrap();
    assert!(all == old);
}

/// A multi-chunk write that fails part-way leaves each chunk all-old or all-new.
#[test]
fn failed_multichunk_write_is_per_chunk_atomic() {
    let mem: Arc<MemoryBackend> = Arc::new(MemoryBackend::new());
    let fault = Arc::new(FaultBackend::new(mem.clone(), 3));
    let vol = create(fault.clone(), 4 * CS);
    let old = pattern(0, 4 * CS, 1);
    vol.write(0, &old).unwrap();
    fault.fail_calls(&[OpKind::Put], &[2]);
    let new = pattern(BS, 3 * CS, 2);
    let err = vol.write(BS, &new).unwrap_err();
    assert!(err.to_string().contains("injected"));
    fault.heal();
    let mut all = vec![0u8; (4 * CS) as usize];
    vol.read(0, &mut all).unwrap();
    let mut now_new = 0;
    for c in 0..4u64 {
        let s = (c * CS) as usize;
        let e = s + CS as usize;
        let mut expect_new = old.clone();
        expect_new[BS as usize..(BS + 3 * CS) as usize].copy_from_slice(&new);
        if all[s..e] == expect_new[s..e] && all[s..e] != old[s..e] {
            now_new += 1;
        } else {
            assert_eq!(&all[s..e], &old[s..e], "chunk {c} is a mix");
        }
    }
    assert_eq!(
        now_new, 3,
        "three of the four touched chunks were committed"
    );
}

#[test]
fn thin_provisioning_and_whole_chunk_paths() {
    let mem: Arc<MemoryBackend> = Arc::new(MemoryBackend::new());
    let vol = create(mem.clone(), 32 * CS);
    let mut buf = vec![1u8; (32 * CS) as usize];
    vol.read(0, &mut buf).unwrap();
    assert!(buf.iter().all(|&b| b == 0));
    assert_eq!(vol.stats().chunk_reads, 0, "absent chunks are never read");
    vol.write(0, &pattern(0, 4 * CS, 9)).unwrap();
    let st = vol.stats();
    assert_eq!(
        (st.chunk_puts, st.rmw, st.chunk_reads),
        (4, 0, 0),
        "whole chunks are written blind"
    );
    vol.write(CS + BS, &pattern(CS + BS, BS, 1)).unwrap();
    assert_eq!(vol.stats().rmw, 1);
    vol.unmap(0, 2 * CS).unwrap();
    assert_eq!(vol.allocated_chunks(), vec![2, 3]);
    vol.write_zeroes(2 * CS + BS, CS - BS).unwrap(); // partial, leaves block 0 of chunk 2
    assert_eq!(vol.allocated_chunks(), vec![2, 3]);
    vol.write_zeroes(2 * CS, BS).unwrap(); // now chunk 2 is all zero: deleted
    assert_eq!(vol.allocated_chunks(), vec![3]);
    vol.write(3 * CS, &vec![0u8; CS as usize]).unwrap(); // writing zeros frees too
    assert!(vol.allocated_chunks().is_empty());
    drop(vol);
    assert_eq!(
        mem.file_count(),
        2,
        "only the superblock and the writer epoch's fence marker remain"
    );
}

#[test]
fn bad_input_is_refused_with_clear_errors() {
    let mem: BackendRef = Arc::new(MemoryBackend::new());
    let u = uri();
    let mut o = CreateOptions::new(4097);
    let e = Volume::create(mem.clone(), &u, &o, &OpenOptions::default()).unwrap_err();
    assert!(e.to_string().contains("multiple of the block size"), "{e}");
    o.size = 1 << 20;
    o.chunk_size = 3 << 20;
    assert!(Volume::create(mem.clone(), &u, &o, &OpenOptions::default())
        .unwrap_err()
        .to_string()
        .contains("power of two"));
    let e = Volume::open(mem.clone(), &u, &OpenOptions::default()).unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e}");
    assert!(e.to_string().contains("ozbd create"), "{e}");

    let vol = create(mem.clone(), 8 * CS);
    let e = Volume::create(
        mem.clone(),
        &u,
        &CreateOptions::new(1 << 20),
        &OpenOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::AlreadyExists(_)), "{e}");
    // A buffer that does not match the length (only possible through submit).
    let (tx, rx) = mpsc::channel();
    let mut small = vec![0u8; 99];
    let sg = unsafe { SgList::from_slice(&mut small) };
    let done = Box::new(move |r| tx.send(r).unwrap());
    unsafe { vol.submit(Op::Read, 0, 100, sg, done) };
    let e = rx.recv().unwrap().unwrap_err();
    assert!(e.to_string().contains("buffer holds 99 bytes"), "{e}");
    let mut buf = vec![0u8; BS as usize];
    assert!(vol
        .read(8 * CS, &mut buf)
        .unwrap_err()
        .to_string()
        .contains("beyond the end"));
    assert!(vol.write_zeroes(u64::MAX - 511, 512).is_err());
    drop(vol);

    let opts = OpenOptions {
        expect_chunk_size: Some(CS * 2),
        ..Default::default()
    };
    let e = Volume::open(mem.clone(), &u, &opts).unwrap_err();
    assert!(
        e.to_string()
            .contains("chunk size 65536, but 131072 was requested"),
        "{e}"
    );

    // A directory that is not a volume.
    mem.mkdirs("/vol/bucket/notavolume").unwrap();
    let nv = VolumeUri::parse("mem://model/vol/bucket/notavolume").unwrap();
    let e = Volume::open(mem.clone(), &nv, &OpenOptions::default()).unwrap_err();
    assert!(matches!(e, Error::NotAVolume(_)), "{e}");
    mem.put("/vol/bucket/garbage/superblock.json", b"{\"hello\": 1}")
        .unwrap();
    let gv = VolumeUri::parse("mem://model/vol/bucket/garbage").unwrap();
    let e = Volume::open(mem.clone(), &gv, &OpenOptions::default()).unwrap_err();
    assert!(e.to_string().contains("not a bdev_ozone superblock"), "{e}");
    assert!(
        Volume::destroy(&mem, &gv, false).is_err(),
        "destroy refuses a non-volume"
    );
    Volume::destroy(&mem, &gv, true).unwrap();
    Volume::destroy(&mem, &u, false).unwrap();
    assert!(Volume::open(mem, &u, &OpenOptions::default()).is_err());
}

#[test]
fn closed_volume_refuses_io() {
    let mem: BackendRef = Arc::new(MemoryBackend::new());
    let vol = create(mem, 4 * CS);
    vol.close();
    let mut buf = vec![0u8; BS as usize];
    assert!(matches!(vol.read(0, &mut buf), Err(Error::Closed)));
    vol.close();
}

/// A backend whose puts wait until the test opens a gate, so requests pile up.
#[derive(Debug)]
struct Gate {
    inner: MemoryBackend,
    open: std::sync::Mutex<bool>,
    cv: std::sync::Condvar,
    /// Puts waiting at the gate.
    waiting: std::sync::atomic::AtomicUsize,
}

impl ozbd_backend::Backend for Gate {
    fn read_at(&self, p: &str, o: u64, b: &mut [u8]) -> ozbd_backend::Result<usize> {
        self.inner.read_at(p, o, b)
    }
    fn put(&self, p: &str, d: &[u8]) -> ozbd_backend::Result<()> {
        if !p.contains("/chunks/") {
            // The lease and the fence marker are not what this gate holds back.
            return self.inner.put(p, d);
        }
        let mut g = self.open.lock().unwrap();
        self.waiting
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        while !*g {
            g = self.cv.wait(g).unwrap();
        }
        self.waiting
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        drop(g);
        self.inner.put(p, d)
    }
    fn delete(&self, p: &str, r: bool) -> ozbd_backend::Result<bool> {
        self.inner.delete(p, r)
    }
    fn mkdirs(&self, p: &str) -> ozbd_backend::Result<()> {
        self.inner.mkdirs(p)
    }
    fn rename(&self, s: &str, d: &str) -> ozbd_backend::Result<()> {
        self.inner.rename(s, d)
    }
    fn stat(&self, p: &str) -> ozbd_backend::Result<Option<ozbd_backend::FileInfo>> {
        self.inner.stat(p)
    }
    fn list(&self, p: &str) -> ozbd_backend::Result<Vec<ozbd_backend::FileInfo>> {
        self.inner.list(p)
    }
    fn describe(&self) -> String {
        "gate".into()
    }
}

/// Small writes queued behind a slow chunk update are folded into one update,
/// and a flush waits for all of them.
#[test]
fn queued_small_writes_are_batched_into_one_update() {
    let gate = Arc::new(Gate {
        inner: MemoryBackend::new(),
        open: std::sync::Mutex::new(true),
        cv: std::sync::Condvar::new(),
        waiting: std::sync::atomic::AtomicUsize::new(0),
    });
    let vol = create(gate.clone(), 4 * CS);
    *gate.open.lock().unwrap() = false;
    let (tx, rx) = mpsc::channel();
    let bufs: Vec<Vec<u8>> = (0..20).map(|i| pattern(i * BS, BS, i as u8)).collect();
    for (i, b) in bufs.iter().enumerate() {
        let txc = tx.clone();
        let sg = unsafe { SgList::from_const_slice(b) };
        let done = Box::new(move |r| txc.send(r).unwrap());
        unsafe { vol.submit(Op::Write, i as u64 * BS, BS, sg, done) };
    }
    let txc = tx.clone();
    let done = Box::new(move |r| txc.send(r).unwrap());
    unsafe { vol.submit(Op::Flush, 0, 0, SgList::empty(), done) };
    // Wait until a worker is inside the backend's put (not a guessed delay).
    let t = Instant::now();
    while gate.waiting.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no put reached the backend"
        );
        std::thread::yield_now();
    }
    assert!(
        rx.try_recv().is_err(),
        "nothing completes while the backend is stuck"
    );
    *gate.open.lock().unwrap() = true;
    gate.cv.notify_all();
    for _ in 0..21 {
        rx.recv().unwrap().unwrap();
    }
    let st = vol.stats();
    // The worker may have taken the first write alone before the rest queued;
    // everything queued behind it goes as one update.
    assert!(st.chunk_puts <= 2, "{st:?}");
    assert_eq!(st.chunk_puts + st.merged, 20, "{st:?}");
    let mut got = vec![0u8; 20 * BS as usize];
    vol.read(0, &mut got).unwrap();
    assert_eq!(got, bufs.concat());
}

/// Like `op_strategy`, plus runs of consecutive small reads (which start the
/// read-ahead thread), over a volume several times larger than the cache.
#[derive(Debug, Clone)]
enum COp {
    M(MOp),
    /// `count` consecutive reads of `len` bytes from `off`.
    Run(u64, u64, u64),
}

fn cached_op_strategy(blocks: u64) -> impl Strategy<Value = COp> {
    prop_oneof![
        3 => op_strategy(blocks).prop_map(COp::M),
        1 => (0..blocks, 1..16u64, 2..40u64)
            .prop_map(move |(s, n, count)| COp::Run(s * BS, n * BS, count)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// With a 1 MiB cache over a 2.5 MiB volume (so pages are evicted) and
    /// read-ahead running beside the writes, every read matches the model.
    #[test]
    fn cached_reads_match_model(ops in prop::collection::vec(cached_op_strategy(40 * CS / BS), 1..80)) {
        let size = 40 * CS;
        let mem: BackendRef = Arc::new(MemoryBackend::new());
        let mut o = CreateOptions::new(size);
        o.block_size = BS as u32;
        o.chunk_size = CS;
        let open = OpenOptions { cache_mb: 1, retry: Duration::ZERO, ..OpenOptions::default() };
        let vol = Volume::create(mem, &uri(), &o, &open).unwrap().0;
        let mut model = vec![0u8; size as usize];
        let check = |vol: &Volume, model: &[u8], o: u64, n: u64| -> std::result::Result<(), TestCaseError> {
            let n = n.min(size - o);
            let mut buf = vec![0xAA; n as usize];
            vol.read(o, &mut buf).unwrap();
            prop_assert!(buf[..] == model[o as usize..(o + n) as usize], "read {}+{} differs", o, n);
            Ok(())
        };
        for op in &ops {
            match op {
                COp::M(MOp::Read(o, n)) => check(&vol, &model, *o, *n)?,
                COp::M(m) => {
                    match *m {
                        MOp::Write(o, n, seed) => vol.write(o, &pattern(o, n, seed)).unwrap(),
                        MOp::Zero(o, n) => vol.write_zeroes(o, n).unwrap(),
                        MOp::Unmap(o, n) => vol.unmap(o, n).unwrap(),
                        _ => vol.flush().unwrap(),
                    }
                    apply(&mut model, m);
                }
                COp::Run(o, n, count) => {
                    for i in 0..*count {
                        let at = o + i * n;
                        if at >= size { break }
                        check(&vol, &model, at, *n)?;
                    }
                }
            }
        }
        let s = vol.stats().cache;
        prop_assert!(s.bytes <= s.capacity && s.capacity == 1 << 20, "{:?}", s);
    }
}
