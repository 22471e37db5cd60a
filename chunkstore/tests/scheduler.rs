// SPDX-License-Identifier: Apache-2.0
//! Hardening tests of the scheduler, on a scripted in-memory backend: no I/O
//! hangs or outlives its deadline, a waiting chunk holds no worker, panics and
//! operator errors fail at once, the chunk map heals after ambiguous failures,
//! admission is bounded, and FLUSH waits for the writes before it.
//! Must never: use sleeps to synchronise (every wait is on an observable
//! condition with a bounded timeout).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use ozbd_backend::memory::MemoryBackend;
use ozbd_backend::{Backend, BackendError, BackendRef, FileInfo};
use ozbd_chunkstore::{
    CreateOptions, Error, Op, OpenOptions, Rejected, Result, SgList, Volume, VolumeUri,
};

const BS: u64 = 512;
const CS: u64 = 64 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read,
    Put,
    Delete,
    Stat,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Action {
    /// Fail with EIO before touching anything.
    Eio,
    /// Fail with this errno before touching anything.
    Errno(i32),
    /// Apply the call, then report EIO (an ambiguous failure).
    ApplyThenEio,
    Panic,
    /// Wait for the gate to open, then apply.
    Block,
    /// Apply, then wait for the gate to open (a read returns what it read before).
    BlockAfter,
}

#[derive(Debug, Clone)]
struct Rule {
    kind: Kind,
    /// Only calls whose path contains this.
    path: &'static str,
    action: Action,
    /// How many matching calls it applies to (None: all).
    times: Option<u32>,
    /// Only until this instant (None: forever).
    until: Option<Instant>,
}

/// A memory backend that misbehaves as scripted.
#[derive(Debug, Default)]
struct Scripted {
    inner: MemoryBackend,
    rules: Mutex<Vec<Rule>>,
    gate_open: Mutex<bool>,
    gate: Condvar,
    blocked: AtomicUsize,
    calls: AtomicUsize,
}

impl Scripted {
    fn new() -> Arc<Self> {
        Arc::new(Scripted {
            gate_open: Mutex::new(true),
            ..Default::default()
        })
    }
    fn rule(&self, kind: Kind, path: &'static str, action: Action, times: Option<u32>) {
        self.rules.lock().unwrap().push(Rule {
            kind,
            path,
            action,
            times,
            until: None,
        });
    }
    fn rule_until(&self, kind: Kind, path: &'static str, action: Action, until: Instant) {
        self.rules.lock().unwrap().push(Rule {
            kind,
            path,
            action,
            times: None,
            until: Some(until),
        });
    }
    fn heal(&self) {
        self.rules.lock().unwrap().clear();
    }
    fn close_gate(&self) {
        *self.gate_open.lock().unwrap() = false;
    }
    fn open_gate(&self) {
        *self.gate_open.lock().unwrap() = true;
        self.gate.notify_all();
    }
    fn wait_at_gate(&self) {
        let mut g = self.gate_open.lock().unwrap();
        self.blocked.fetch_add(1, Ordering::SeqCst);
        while !*g {
            g = self.gate.wait(g).unwrap();
        }
        self.blocked.fetch_sub(1, Ordering::SeqCst);
    }
    /// Wait until `n` calls are blocked at the gate.
    fn wait_blocked(&self, n: usize) {
        wait_for("calls blocked at the gate", || {
            self.blocked.load(Ordering::SeqCst) >= n
        });
    }
    fn action(&self, kind: Kind, path: &str) -> Option<Action> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut rules = self.rules.lock().unwrap();
        let now = Instant::now();
        let i = rules.iter().position(|r| {
            r.kind == kind
                && path.contains(r.path)
                && r.times != Some(0)
                && r.until.is_none_or(|u| now < u)
        })?;
        let r = &mut rules[i];
        if let Some(t) = &mut r.times {
            *t -= 1;
        }
        Some(r.action)
    }
    fn run<T>(
        &self,
        kind: Kind,
        path: &str,
        apply: impl FnOnce() -> ozbd_backend::Result<T>,
    ) -> ozbd_backend::Result<T> {
        let eio = || BackendError::io("scripted", path, 5, "injected EIO");
        match self.action(kind, path) {
            None => apply(),
            Some(Action::Eio) => Err(eio()),
            Some(Action::Errno(e)) => Err(BackendError::io("scripted", path, e, "injected")),
            Some(Action::ApplyThenEio) => apply().and_then(|_| Err(eio())),
            Some(Action::Panic) => panic!("injected panic on {path}"),
            Some(Action::BlockAfter) => {
                let r = apply();
                self.wait_at_gate();
                r
            }
            Some(Action::Block) => {
                let mut g = self.gate_open.lock().unwrap();
                self.blocked.fetch_add(1, Ordering::SeqCst);
                while !*g {
                    g = self.gate.wait(g).unwrap();
                }
                self.blocked.fetch_sub(1, Ordering::SeqCst);
                drop(g);
                apply()
            }
        }
    }
}

impl Backend for Scripted {
    fn read_at(&self, p: &str, o: u64, b: &mut [u8]) -> ozbd_backend::Result<usize> {
        self.run(Kind::Read, p, || self.inner.read_at(p, o, b))
    }
    fn put(&self, p: &str, d: &[u8]) -> ozbd_backend::Result<()> {
        self.run(Kind::Put, p, || self.inner.put(p, d))
    }
    fn delete(&self, p: &str, r: bool) -> ozbd_backend::Result<bool> {
        self.run(Kind::Delete, p, || self.inner.delete(p, r))
    }
    fn mkdirs(&self, p: &str) -> ozbd_backend::Result<()> {
        self.inner.mkdirs(p)
    }
    fn rename(&self, s: &str, d: &str) -> ozbd_backend::Result<()> {
        self.inner.rename(s, d)
    }
    fn stat(&self, p: &str) -> ozbd_backend::Result<Option<FileInfo>> {
        self.run(Kind::Stat, p, || self.inner.stat(p))
    }
    fn list(&self, p: &str) -> ozbd_backend::Result<Vec<FileInfo>> {
        self.inner.list(p)
    }
    fn describe(&self) -> String {
        "scripted".into()
    }
}

/// Opens the gate when dropped, so a failing assertion cannot leave the
/// volume's close waiting for a blocked call forever.
struct OpenOnDrop(Arc<Scripted>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.heal();
        self.0.open_gate();
    }
}

fn uri() -> VolumeUri {
    VolumeUri::parse("mem://sched/vol/bucket/disk").unwrap()
}

fn create(backend: &Arc<Scripted>, chunks: u64, opts: OpenOptions) -> Volume {
    let mut o = CreateOptions::new(chunks * CS);
    o.block_size = BS as u32;
    o.chunk_size = CS;
    let b: BackendRef = backend.clone();
    Volume::create(b, &uri(), &o, &opts).unwrap().0
}

fn opts(workers: usize, retry: Duration) -> OpenOptions {
    OpenOptions {
        workers,
        retry,
        ..OpenOptions::default()
    }
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "timed out waiting: {what}"
        );
        std::thread::yield_now();
    }
}

/// Submit a write of `data` at `off` without waiting; the result arrives on the channel.
fn write_async(vol: &Volume, off: u64, data: &'static [u8]) -> mpsc::Receiver<Result<()>> {
    let (tx, rx) = mpsc::channel();
    let sg = unsafe { SgList::from_const_slice(data) };
    let done = Box::new(move |r| {
        let _ = tx.send(r);
    });
    unsafe { vol.submit(Op::Write, off, data.len() as u64, sg, done) };
    rx
}

fn leak(v: Vec<u8>) -> &'static [u8] {
    Box::leak(v.into_boxed_slice())
}

#[test]
fn panic_in_a_worker_fails_its_requests_and_the_engine_goes_on() {
    let be = Scripted::new();
    let vol = create(&be, 4, opts(2, Duration::ZERO));
    be.rule(Kind::Put, "chunks/", Action::Panic, Some(1));
    let e = vol.write(0, &[1u8; BS as usize]).unwrap_err();
    assert_eq!(e.errno(), 5, "{e}");
    assert!(matches!(e, Error::Internal(_)), "{e}");
    // Every worker is still there: more I/O than workers succeeds, flush and close return.
    for i in 0..4 {
        vol.write(i * CS, &[7u8; BS as usize]).unwrap();
    }
    vol.flush().unwrap();
    let s = vol.stats();
    assert_eq!(s.internal_errors, 1, "{s:?}");
    assert_eq!(s.inflight, 0, "{s:?}");
    vol.close();
}

#[test]
fn a_chunk_waiting_for_its_retry_holds_no_worker() {
    let be = Scripted::new();
    // One worker: if a retry slept on it, nothing else could run.
    let vol = create(&be, 4, opts(1, Duration::from_secs(60)));
    be.rule(Kind::Put, chunk_path_part(0), Action::Eio, None);
    let _heal = OpenOnDrop(be.clone());
    let stuck = write_async(&vol, 0, leak(vec![1u8; BS as usize]));
    wait_for("chunk 0 parked", || vol.chunks_waiting_for_retry() == 1);
    let t = Instant::now();
    for i in 1..4 {
        vol.write(i * CS, &[2u8; BS as usize]).unwrap();
        let mut b = vec![0u8; BS as usize];
        vol.read(i * CS, &mut b).unwrap();
        assert_eq!(b, vec![2u8; BS as usize]);
    }
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "other chunks waited {:?} behind a failing one",
        t.elapsed()
    );
    assert!(
        stuck.try_recv().is_err(),
        "the failing write is still retrying"
    );
    be.heal();
    stuck.recv().unwrap().unwrap();
    assert!(vol.stats().retries >= 1);
}

/// The end of chunk `c`'s file path, as the engine names it.
fn chunk_path_part(c: u64) -> &'static str {
    Box::leak(format!("chunks/{c:016x}").into_boxed_str())
}

#[test]
fn the_retry_deadline_is_per_request_from_submit() {
    // A read-modify-write whose load fails for a while and whose put then
    // fails for good must fail within one retry window of its submit, not
    // one window per backend call.
    let be = Scripted::new();
    let retry = Duration::from_millis(1200);
    let vol = create(&be, 2, opts(2, retry));
    vol.write(0, &vec![3u8; CS as usize]).unwrap();
    let t = Instant::now();
    be.rule_until(
        Kind::Read,
        chunk_path_part(0),
        Action::Eio,
        t + Duration::from_millis(800),
    );
    be.rule(Kind::Put, chunk_path_part(0), Action::Eio, None);
    let e = vol.write(BS, &[4u8; BS as usize]).unwrap_err();
    let took = t.elapsed();
    assert_eq!(e.errno(), 5, "{e}");
    assert!(
        took <= retry + Duration::from_millis(150),
        "failed after {took:?}, more than the {retry:?} retry window"
    );
    assert!(
        took >= Duration::from_millis(500),
        "gave up early: {took:?}"
    );
    assert!(vol.stats().deadline_failures >= 1);
    be.heal();
    let mut b = vec![0u8; CS as usize];
    vol.read(0, &mut b).unwrap();
    assert_eq!(
        b,
        vec![3u8; CS as usize],
        "the failed write changed nothing"
    );
}

#[test]
fn operator_errors_fail_at_once_without_retry() {
    for errno in [28, 122, 13] {
        let be = Scripted::new();
        let vol = create(&be, 2, opts(2, Duration::from_secs(30)));
        be.rule(Kind::Put, "chunks/", Action::Errno(errno), None);
        let t = Instant::now();
        let e = vol.write(0, &[1u8; BS as usize]).unwrap_err();
        assert_eq!(e.errno(), errno, "{e}");
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        assert_eq!(vol.stats().retries, 0);
    }
}

#[test]
fn a_delete_applied_but_reported_failed_reads_as_zeros() {
    for stat_fails_too in [false, true] {
        let be = Scripted::new();
        let vol = create(&be, 2, opts(2, Duration::ZERO));
        vol.write(0, &vec![5u8; CS as usize]).unwrap();
        be.rule(Kind::Delete, "chunks/", Action::ApplyThenEio, Some(1));
        if stat_fails_too {
            be.rule(Kind::Stat, "chunks/", Action::Eio, Some(1));
        }
        assert!(vol.unmap(0, CS).is_err());
        let mut b = vec![9u8; CS as usize];
        vol.read(0, &mut b)
            .unwrap_or_else(|e| panic!("read after an ambiguous delete failed: {e}"));
        assert_eq!(b, vec![0u8; CS as usize]);
        assert!(vol.stats().healed >= 1);
        assert!(!vol.chunk_may_hold_data(0));
        // A partial write of that chunk now starts from zeros.
        vol.write(BS, &[6u8; BS as usize]).unwrap();
        vol.read(0, &mut b).unwrap();
        assert!(b[..BS as usize].iter().all(|&x| x == 0));
        assert!(b[BS as usize..2 * BS as usize].iter().all(|&x| x == 6));
    }
}

#[test]
fn a_put_committed_but_reported_failed_reads_back_new() {
    for stat_fails_too in [false, true] {
        let be = Scripted::new();
        let vol = create(&be, 2, opts(2, Duration::ZERO));
        be.rule(Kind::Put, "chunks/", Action::ApplyThenEio, Some(1));
        if stat_fails_too {
            be.rule(Kind::Stat, "chunks/", Action::Eio, Some(1));
        }
        let data = vec![8u8; CS as usize];
        assert!(vol.write(CS, &data).is_err());
        let mut b = vec![0u8; CS as usize];
        vol.read(CS, &mut b).unwrap();
        assert_eq!(b, data, "stale zeros after a committed put");
        assert!(vol.chunk_may_hold_data(1));
    }
}

#[test]
fn admission_is_bounded_and_busy_is_not_a_failure() {
    let be = Scripted::new();
    let o = OpenOptions {
        workers: 4,
        max_inflight_requests: 2,
        ..OpenOptions::default()
    };
    let vol = create(&be, 8, o);
    be.rule(Kind::Put, "chunks/", Action::Block, None);
    be.close_gate();
    let _gate = OpenOnDrop(be.clone());
    let (tx, rx) = mpsc::channel();
    let buf: &'static [u8] = leak(vec![1u8; BS as usize]);
    let try_write = |c: u64| {
        let tx = tx.clone();
        let sg = unsafe { SgList::from_const_slice(buf) };
        unsafe {
            vol.try_submit(
                Op::Write,
                c * CS,
                BS,
                sg,
                Box::new(move |r| tx.send(r).unwrap()),
            )
        }
    };
    assert!(try_write(0).is_ok());
    assert!(try_write(1).is_ok());
    be.wait_blocked(2);
    match try_write(2) {
        Err(Rejected {
            error: Error::Busy(_),
            ..
        }) => {}
        Err(r) => panic!("expected Busy, got {}", r.error),
        Ok(()) => panic!("a third request was admitted past a bound of 2"),
    }
    assert_eq!(vol.stats().busy, 1);
    assert_eq!(vol.stats().inflight, 2);
    be.heal();
    be.open_gate();
    rx.recv().unwrap().unwrap();
    rx.recv().unwrap().unwrap();
    wait_for("in-flight drained", || vol.stats().inflight == 0);
    assert!(try_write(2).is_ok());
    rx.recv().unwrap().unwrap();
    assert_eq!(vol.stats().errors, 0);
}

#[test]
fn a_bytes_bound_admits_one_large_request_alone() {
    let be = Scripted::new();
    let o = OpenOptions {
        workers: 2,
        max_inflight_bytes: CS,
        ..OpenOptions::default()
    };
    let vol = create(&be, 8, o);
    // Larger than the bound, alone: admitted.
    vol.write(0, &vec![1u8; 3 * CS as usize]).unwrap();
    be.rule(Kind::Put, "chunks/", Action::Block, None);
    be.close_gate();
    let _gate = OpenOnDrop(be.clone());
    let first = write_async(&vol, 4 * CS, leak(vec![2u8; CS as usize]));
    be.wait_blocked(1);
    let sg = unsafe { SgList::from_const_slice(leak(vec![3u8; BS as usize])) };
    let r = unsafe { vol.try_submit(Op::Write, 5 * CS, BS, sg, Box::new(|_| {})) };
    assert!(matches!(
        r,
        Err(Rejected {
            error: Error::Busy(_),
            ..
        })
    ));
    be.heal();
    be.open_gate();
    first.recv().unwrap().unwrap();
}

#[test]
fn flush_completes_only_after_the_writes_submitted_before_it() {
    let be = Scripted::new();
    let vol = create(&be, 8, opts(4, Duration::ZERO));
    be.rule(Kind::Put, "chunks/", Action::Block, None);
    be.close_gate();
    let _gate = OpenOnDrop(be.clone());
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut bufs = Vec::new();
    for c in 0..6u64 {
        let b = leak(vec![c as u8 + 1; BS as usize]);
        bufs.push(b);
        let l = log.clone();
        let sg = unsafe { SgList::from_const_slice(b) };
        unsafe {
            vol.submit(
                Op::Write,
                c * CS,
                BS,
                sg,
                Box::new(move |r| {
                    r.unwrap();
                    l.lock().unwrap().push(format!("write {c}"));
                }),
            )
        };
    }
    let (tx, rx) = mpsc::channel();
    let l = log.clone();
    unsafe {
        vol.submit(
            Op::Flush,
            0,
            0,
            SgList::empty(),
            Box::new(move |r| {
                l.lock().unwrap().push("flush".into());
                tx.send(r).unwrap();
            }),
        )
    };
    be.wait_blocked(4);
    assert!(
        rx.try_recv().is_err(),
        "FLUSH completed while the writes before it were still in the backend"
    );
    be.heal();
    be.open_gate();
    rx.recv().unwrap().unwrap();
    let log = log.lock().unwrap().clone();
    assert_eq!(log.len(), 7, "{log:?}");
    assert_eq!(log.last().map(String::as_str), Some("flush"), "{log:?}");
    // And the data is in the backend when FLUSH completes.
    for (c, b) in bufs.iter().enumerate() {
        let mut got = vec![0u8; BS as usize];
        let (_, root) =
            ozbd_chunkstore::lease::layout::current_root(&be.inner, "/vol/bucket/disk").unwrap();
        let path = format!("{root}/{}", chunk_path_part(c as u64));
        be.inner.read_at(&path, 0, &mut got).unwrap();
        assert_eq!(&got[..], &b[..]);
    }
}

#[test]
fn close_waits_for_retrying_requests_and_never_hangs() {
    let be = Scripted::new();
    let vol = create(&be, 2, opts(2, Duration::from_millis(500)));
    be.rule(Kind::Put, "chunks/", Action::Eio, None);
    let r = write_async(&vol, 0, leak(vec![1u8; BS as usize]));
    wait_for("parked", || vol.chunks_waiting_for_retry() == 1);
    let t = Instant::now();
    vol.close();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(r.recv().unwrap().is_err());
}

#[test]
fn bad_open_options_are_refused() {
    let be = Scripted::new();
    for (o, want) in [
        (opts(0, Duration::ZERO), "workers 0 is out of range"),
        (
            opts(100_000, Duration::ZERO),
            "workers 100000 is out of range",
        ),
        (opts(2, Duration::from_secs(100_000)), "retry 100000000 ms"),
    ] {
        let mut c = CreateOptions::new(CS);
        c.chunk_size = CS;
        let b: BackendRef = be.clone();
        let e = Volume::create(b, &uri(), &c, &o).unwrap_err();
        assert!(e.to_string().contains(want), "{e}");
    }
}

#[test]
fn a_completion_that_resubmits_finds_room() {
    // With room for one request, each completion submits the next one from
    // inside the callback: the slot must already be free when it runs.
    let be = Scripted::new();
    let o = OpenOptions {
        workers: 2,
        max_inflight_requests: 1,
        ..OpenOptions::default()
    };
    let vol = Arc::new(create(&be, 4, o));
    let (tx, rx) = mpsc::channel::<std::result::Result<u32, String>>();
    fn chain(vol: Arc<Volume>, n: u32, tx: mpsc::Sender<std::result::Result<u32, String>>) {
        if n == 0 {
            let _ = tx.send(Ok(0));
            return;
        }
        let buf: &'static [u8] = Box::leak(vec![n as u8; BS as usize].into_boxed_slice());
        let sg = unsafe { SgList::from_const_slice(buf) };
        let v = vol.clone();
        let t = tx.clone();
        let r = unsafe {
            vol.try_submit(
                Op::Write,
                (n as u64 % 4) * CS,
                BS,
                sg,
                Box::new(move |r| match r {
                    Ok(()) => chain(v, n - 1, t),
                    Err(e) => {
                        let _ = t.send(Err(e.to_string()));
                    }
                }),
            )
        };
        if let Err(r) = r {
            let _ = tx.send(Err(format!("request {n} refused: {}", r.error)));
        }
    }
    chain(vol.clone(), 20, tx);
    let got = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the chain finished");
    assert_eq!(got, Ok(0));
    assert_eq!(vol.stats().busy, 0);
}

/// Submit a read without waiting; its result and data arrive on the channel.
fn read_async(vol: &Volume, off: u64, len: usize) -> mpsc::Receiver<(Result<()>, Vec<u8>)> {
    let (tx, rx) = mpsc::channel();
    let buf: &'static mut [u8] = Box::leak(vec![0u8; len].into_boxed_slice());
    let ptr = buf.as_mut_ptr() as usize;
    let sg = unsafe { SgList::from_slice(buf) };
    let done = Box::new(move |r| {
        // SAFETY: the engine is done with the buffer once the completion runs.
        let data = unsafe { std::slice::from_raw_parts(ptr as *const u8, len) }.to_vec();
        let _ = tx.send((r, data));
    });
    unsafe { vol.submit(Op::Read, off, len as u64, sg, done) };
    rx
}

fn recv_read(rx: &mpsc::Receiver<(Result<()>, Vec<u8>)>) -> Vec<u8> {
    let (r, data) = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("read completes");
    r.unwrap();
    data
}

/// Long enough for a wrongly ordered request to have completed.
const MUST_WAIT: Duration = Duration::from_millis(300);

#[test]
fn reads_of_one_chunk_run_on_several_workers_at_once() {
    let be = Scripted::new();
    let o = OpenOptions {
        cache_mb: 0,
        ..opts(4, Duration::ZERO)
    };
    let vol = create(&be, 2, o);
    vol.write(0, &[5u8; CS as usize]).unwrap();
    let _heal = OpenOnDrop(be.clone());
    be.close_gate();
    be.rule(Kind::Read, chunk_path_part(0), Action::Block, None);
    let reads: Vec<_> = (0..4)
        .map(|i| read_async(&vol, i * BS, BS as usize))
        .collect();
    // A per-chunk FIFO would run them one at a time: only one would block.
    be.wait_blocked(4);
    be.open_gate();
    for r in &reads {
        assert_eq!(recv_read(r), vec![5u8; BS as usize]);
    }
    vol.close();
}

#[test]
fn reads_and_writes_of_one_chunk_keep_submission_order() {
    for cache_mb in [0, 64] {
        let be = Scripted::new();
        let o = OpenOptions {
            cache_mb,
            ..opts(4, Duration::ZERO)
        };
        let vol = create(&be, 2, o);
        let _heal = OpenOnDrop(be.clone());
        vol.write(0, &[1u8; CS as usize]).unwrap();
        let mut warm = vec![0u8; BS as usize];
        vol.read(0, &mut warm).unwrap(); // with the cache on, [0, BS) is now cached

        // Read after write: a read submitted while a write is running sees it
        // (with the cache on, the cached old data must not answer it).
        be.close_gate();
        be.rule(Kind::Put, chunk_path_part(0), Action::Block, Some(1));
        let w = write_async(&vol, 0, leak(vec![2u8; CS as usize]));
        be.wait_blocked(1);
        let r = read_async(&vol, 0, BS as usize);
        assert!(
            r.recv_timeout(MUST_WAIT).is_err(),
            "cache_mb {cache_mb}: a read submitted after a write completed before it"
        );
        be.open_gate();
        w.recv_timeout(Duration::from_secs(20)).unwrap().unwrap();
        assert_eq!(recv_read(&r), vec![2u8; BS as usize], "cache_mb {cache_mb}");

        // Write after read: a write submitted while a read is running does
        // not change what that read returns, and waits for it.
        be.close_gate();
        be.rule(Kind::Read, chunk_path_part(0), Action::Block, Some(1));
        let r = read_async(&vol, CS / 2, BS as usize); // not cached
        be.wait_blocked(1);
        let w = write_async(&vol, 0, leak(vec![3u8; CS as usize]));
        assert!(
            w.recv_timeout(MUST_WAIT).is_err(),
            "cache_mb {cache_mb}: a write submitted after a read completed before it"
        );
        be.open_gate();
        assert_eq!(recv_read(&r), vec![2u8; BS as usize], "cache_mb {cache_mb}");
        w.recv_timeout(Duration::from_secs(20)).unwrap().unwrap();
        vol.read(0, &mut warm).unwrap();
        assert_eq!(warm, vec![3u8; BS as usize], "cache_mb {cache_mb}");
        vol.close();
    }
}

#[test]
fn a_chunk_rewritten_while_a_worker_holds_it_open_is_read_back_new() {
    // The memory backend's handles keep the version they opened, as Ozone's do.
    let mem: BackendRef = Arc::new(MemoryBackend::new());
    let mut co = CreateOptions::new(2 * CS);
    co.chunk_size = CS;
    let o = OpenOptions {
        cache_mb: 0,
        ..opts(1, Duration::ZERO)
    };
    let (vol, _) = Volume::create(mem, &uri(), &co, &o).unwrap();
    let mut buf = vec![0u8; BS as usize];
    for round in 1..=3u8 {
        vol.write(0, &vec![round; CS as usize]).unwrap();
        vol.read(BS, &mut buf).unwrap(); // the one worker keeps chunk 0 open
        assert_eq!(buf, vec![round; BS as usize], "round {round}");
    }
    vol.unmap(0, CS).unwrap();
    vol.read(BS, &mut buf).unwrap();
    assert_eq!(buf, vec![0u8; BS as usize], "after unmap");
}

#[test]
fn a_read_ahead_overtaken_by_a_write_does_not_cache_the_old_data() {
    let be = Scripted::new();
    let o = OpenOptions {
        cache_mb: 16,
        ..opts(2, Duration::ZERO)
    };
    let vol = create(&be, 4, o);
    let _heal = OpenOnDrop(be.clone());
    for c in 0..4 {
        vol.write(c * CS, &[1u8; CS as usize]).unwrap();
    }
    // The read-ahead thread's fetch of chunk 2 has read the old data and
    // waits at the gate...
    be.close_gate();
    be.rule(Kind::Read, chunk_path_part(2), Action::BlockAfter, Some(1));
    let mut buf = vec![0u8; 4096];
    vol.read(0, &mut buf).unwrap();
    vol.read(4096, &mut buf).unwrap(); // sequential: read ahead over chunks 0-3
    be.wait_blocked(1);
    // ...while chunk 2 is rewritten; then it returns the old data.
    vol.write(2 * CS, &[2u8; CS as usize]).unwrap();
    be.open_gate();
    wait_for("the read-ahead of chunk 2 is over", || {
        vol.stats().cache.readahead >= 3
    });
    vol.read(2 * CS + 8192, &mut buf).unwrap();
    assert_eq!(buf, vec![2u8; 4096], "stale read-ahead data was cached");
    vol.close();
}

#[test]
fn at_most_eight_chunk_updates_run_at_once_and_reads_pass_them() {
    let be = Scripted::new();
    let o = OpenOptions {
        cache_mb: 0,
        journal: ozbd_chunkstore::JournalMode::None,
        ..opts(16, Duration::ZERO)
    };
    let vol = create(&be, 14, o);
    vol.write(13 * CS, &[9u8; CS as usize]).unwrap();
    let _heal = OpenOnDrop(be.clone());
    be.close_gate();
    be.rule(Kind::Put, "", Action::Block, None);
    let writes: Vec<_> = (0..12)
        .map(|c| write_async(&vol, c * CS, leak(vec![c as u8 + 1; CS as usize])))
        .collect();
    be.wait_blocked(ozbd_chunkstore::defaults::MAX_PARALLEL_UPDATES);
    // Reads of another chunk run on the free workers meanwhile.
    let read = read_async(&vol, 13 * CS, BS as usize);
    assert_eq!(recv_read(&read), vec![9u8; BS as usize]);
    assert_eq!(
        be.blocked.load(Ordering::SeqCst),
        ozbd_chunkstore::defaults::MAX_PARALLEL_UPDATES,
        "16 workers, 12 chunk updates queued: only the bound runs at once"
    );
    be.open_gate();
    for w in &writes {
        w.recv().unwrap().unwrap();
    }
    for c in 0..12u64 {
        let mut b = vec![0u8; BS as usize];
        vol.read(c * CS, &mut b).unwrap();
        assert_eq!(b, vec![c as u8 + 1; BS as usize]);
    }
    vol.close();
}
