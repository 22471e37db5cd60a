//! The I/O path: splitting requests into chunk pieces, ordering, and applying them.
//!
//! Owns: the worker pool that makes every blocking backend call; per-chunk FIFO
//! queues (pieces for one chunk run one batch at a time, in submission order;
//! different chunks run in parallel); read-modify-write of partial chunks;
//! batching of consecutive mutations of one chunk into one chunk update; the
//! FLUSH barrier; bounded retry of backend calls that fail transiently (a
//! datanode or the OM restarting); completion of requests; statistics. Ranges
//! need not be block-aligned: front ends whose clients send byte ranges (NBD)
//! pass them on, and the chunk's read-modify-write covers the partial blocks in
//! order.
//! Must never: block the submitting thread (submit only queues work), call a
//! completion while holding a lock, commit a chunk update that mixes old and
//! new data (every update is one atomic backend `put` or `delete`, so a retried
//! call is idempotent), or retry without a deadline.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ozbd_backend::{join, BackendError, BackendRef};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::sglist::SgList;
use crate::superblock::{chunk_name, Superblock, CHUNK_DIR};

/// What a request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Read,
    Write,
    /// Make the range read as zeros; whole chunks are deleted.
    WriteZeroes,
    /// Discard the range; it reads as zeros afterwards (same effect as WriteZeroes).
    Unmap,
    /// Completes when every request submitted before it has completed.
    Flush,
}

/// Called exactly once per request, on an engine worker thread (or on the
/// submitting thread when the request fails validation or needs no work).
pub type Completion = Box<dyn FnOnce(Result<()>) + Send>;

/// Most mutations folded into one chunk update.
const MAX_BATCH: usize = 64;

/// How long a failing backend call is retried when the opener does not say.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(30);
/// First and longest pause between two attempts of a failing backend call.
const RETRY_FIRST_PAUSE: Duration = Duration::from_millis(100);
const RETRY_MAX_PAUSE: Duration = Duration::from_secs(2);

/// Whether a failed backend call may succeed if tried again: the backend was
/// unreachable, or an I/O error of the kinds a restarting datanode or OM causes
/// (EIO, EAGAIN, connection reset/refused, timeouts, unreachable host or net).
/// Never NotFound, Unsupported, or errors such as EACCES or ENOSPC that only
/// an operator can fix.
pub(crate) fn is_transient(e: &BackendError) -> bool {
    match e {
        BackendError::Unavailable { .. } => true,
        BackendError::Io { errno, .. } => {
            matches!(errno, 5 | 11 | 101 | 104 | 110 | 111 | 112 | 113)
        }
        BackendError::NotFound { .. } | BackendError::Unsupported { .. } => false,
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    reads: AtomicU64,
    writes: AtomicU64,
    zeroes: AtomicU64,
    unmaps: AtomicU64,
    flushes: AtomicU64,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
    errors: AtomicU64,
    chunk_reads: AtomicU64,
    chunk_puts: AtomicU64,
    chunk_deletes: AtomicU64,
    rmw: AtomicU64,
    merged: AtomicU64,
    retries: AtomicU64,
}

/// A copy of the volume's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub reads: u64,
    pub writes: u64,
    pub write_zeroes: u64,
    pub unmaps: u64,
    pub flushes: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub errors: u64,
    /// Backend reads of chunk files (reads and read-modify-write loads).
    pub chunk_reads: u64,
    /// Chunk files written (each one atomic).
    pub chunk_puts: u64,
    /// Chunk files deleted (unmap, write-zeroes, all-zero chunks).
    pub chunk_deletes: u64,
    /// Partial-chunk mutations that needed the chunk's old content.
    pub rmw: u64,
    /// Mutations folded into another one's chunk update.
    pub merged: u64,
    /// Backend calls attempted again after a transient failure.
    pub retries: u64,
    /// Chunks currently stored.
    pub allocated_chunks: u64,
    /// Requests submitted and not yet completed.
    pub inflight: u64,
}

struct Request {
    op: Op,
    sg: SgList,
    remaining: AtomicUsize,
    error: Mutex<Option<Error>>,
    done: Mutex<Option<Completion>>,
    seq: u64,
}

struct Piece {
    req: Arc<Request>,
    chunk: u64,
    /// Byte range within the chunk.
    off: usize,
    len: usize,
    /// Where the piece's data sits in the request's scatter-gather list.
    sg_off: usize,
}

#[derive(Default)]
struct SchedState {
    /// Present while the chunk is queued or being processed.
    queues: HashMap<u64, VecDeque<Piece>>,
    ready: VecDeque<u64>,
    inflight: BTreeSet<u64>,
    flushes: Vec<(u64, Completion)>,
    next_seq: u64,
    closing: bool,
    shutdown: bool,
}

pub(crate) struct Engine {
    pub(crate) backend: BackendRef,
    pub(crate) sb: Superblock,
    chunk_dir: String,
    present: Vec<AtomicU64>,
    /// How long a failing backend call is retried (zero: not at all).
    retry_for: Duration,
    sched: Mutex<SchedState>,
    work: Condvar,
    idle: Condvar,
    pub(crate) counters: Counters,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Completions are user code; a panic there must not wedge the engine.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Engine {
    pub(crate) fn new(
        backend: BackendRef,
        sb: Superblock,
        dir: &str,
        present: &[u64],
        retry_for: Duration,
    ) -> Self {
        let words = sb.chunk_count().div_ceil(64) as usize;
        let bitmap: Vec<AtomicU64> = (0..words).map(|_| AtomicU64::new(0)).collect();
        for &c in present {
            bitmap[(c / 64) as usize].fetch_or(1 << (c % 64), Ordering::Relaxed);
        }
        Engine {
            backend,
            sb,
            chunk_dir: join(dir, CHUNK_DIR),
            present: bitmap,
            retry_for,
            sched: Mutex::new(SchedState::default()),
            work: Condvar::new(),
            idle: Condvar::new(),
            counters: Counters::default(),
        }
    }

    pub(crate) fn is_present(&self, c: u64) -> bool {
        self.present[(c / 64) as usize].load(Ordering::Acquire) & (1 << (c % 64)) != 0
    }

    fn set_present(&self, c: u64, yes: bool) {
        let w = &self.present[(c / 64) as usize];
        if yes {
            w.fetch_or(1 << (c % 64), Ordering::AcqRel);
        } else {
            w.fetch_and(!(1 << (c % 64)), Ordering::AcqRel);
        }
    }

    /// Indices of the chunks that are stored (the volume's allocated extents).
    pub(crate) fn allocated(&self) -> Vec<u64> {
        let mut out = Vec::new();
        for (i, w) in self.present.iter().enumerate() {
            let mut bits = w.load(Ordering::Acquire);
            while bits != 0 {
                let b = bits.trailing_zeros() as u64;
                out.push(i as u64 * 64 + b);
                bits &= bits - 1;
            }
        }
        out
    }

    fn chunk_path(&self, c: u64) -> String {
        join(&self.chunk_dir, &chunk_name(c))
    }

    pub(crate) fn stats(&self) -> Stats {
        let c = &self.counters;
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            reads: ld(&c.reads),
            writes: ld(&c.writes),
            write_zeroes: ld(&c.zeroes),
            unmaps: ld(&c.unmaps),
            flushes: ld(&c.flushes),
            bytes_read: ld(&c.bytes_read),
            bytes_written: ld(&c.bytes_written),
            errors: ld(&c.errors),
            chunk_reads: ld(&c.chunk_reads),
            chunk_puts: ld(&c.chunk_puts),
            chunk_deletes: ld(&c.chunk_deletes),
            rmw: ld(&c.rmw),
            merged: ld(&c.merged),
            retries: ld(&c.retries),
            allocated_chunks: self
                .present
                .iter()
                .map(|w| w.load(Ordering::Relaxed).count_ones() as u64)
                .sum(),
            inflight: lock(&self.sched).inflight.len() as u64,
        }
    }

    fn validate(&self, op: Op, offset: u64, len: u64, sg: &SgList) -> Result<()> {
        if op == Op::Flush {
            return Ok(());
        }
        // Any byte range is accepted: a partial block is part of its chunk's
        // read-modify-write, ordered with every other request on that chunk.
        if offset.checked_add(len).is_none_or(|end| end > self.sb.size) {
            return Err(Error::InvalidArgument(format!(
                "range {offset}+{len} is beyond the end of the volume ({} bytes)",
                self.sb.size
            )));
        }
        let needs_data = matches!(op, Op::Read | Op::Write);
        if needs_data && sg.len() as u64 != len {
            return Err(Error::InvalidArgument(format!(
                "buffer holds {} bytes but the request is for {len}",
                sg.len()
            )));
        }
        Ok(())
    }

    /// Queue a request. `done` runs exactly once.
    pub(crate) fn submit(&self, op: Op, offset: u64, len: u64, sg: SgList, done: Completion) {
        if let Err(e) = self.validate(op, offset, len, &sg) {
            self.counters.errors.fetch_add(1, Ordering::Relaxed);
            return done(Err(e));
        }
        let counter = match op {
            Op::Read => &self.counters.reads,
            Op::Write => &self.counters.writes,
            Op::WriteZeroes => &self.counters.zeroes,
            Op::Unmap => &self.counters.unmaps,
            Op::Flush => &self.counters.flushes,
        };
        counter.fetch_add(1, Ordering::Relaxed);

        let mut st = lock(&self.sched);
        if st.closing {
            drop(st);
            return done(Err(Error::Closed));
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        if op == Op::Flush {
            if st.inflight.is_empty() {
                drop(st);
                return done(Ok(()));
            }
            st.flushes.push((seq, done));
            return;
        }
        if len == 0 {
            drop(st);
            return done(Ok(()));
        }
        let cs = self.sb.chunk_size;
        let first = offset / cs;
        let last = (offset + len - 1) / cs;
        let req = Arc::new(Request {
            op,
            sg,
            remaining: AtomicUsize::new((last - first + 1) as usize),
            error: Mutex::new(None),
            done: Mutex::new(Some(done)),
            seq,
        });
        st.inflight.insert(seq);
        let mut woke = 0;
        for c in first..=last {
            let cstart = c * cs;
            let s = offset.max(cstart);
            let e = (offset + len).min(cstart + cs);
            let piece = Piece {
                req: req.clone(),
                chunk: c,
                off: (s - cstart) as usize,
                len: (e - s) as usize,
                sg_off: (s - offset) as usize,
            };
            match st.queues.get_mut(&c) {
                Some(q) => q.push_back(piece),
                None => {
                    st.queues.insert(c, VecDeque::from([piece]));
                    st.ready.push_back(c);
                    woke += 1;
                }
            }
        }
        drop(st);
        for _ in 0..woke {
            self.work.notify_one();
        }
    }

    /// Wait until nothing is queued or in flight, then stop the workers.
    pub(crate) fn shutdown(&self) {
        let mut st = lock(&self.sched);
        st.closing = true;
        while !st.inflight.is_empty() || !st.flushes.is_empty() {
            st = self.idle.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.shutdown = true;
        drop(st);
        self.work.notify_all();
    }

    /// The body of each worker thread.
    pub(crate) fn worker_loop(&self) {
        loop {
            let mut st = lock(&self.sched);
            let chunk = loop {
                if let Some(c) = st.ready.pop_front() {
                    break c;
                }
                if st.shutdown {
                    return;
                }
                st = self.work.wait(st).unwrap_or_else(|e| e.into_inner());
            };
            let batch = take_batch(st.queues.get_mut(&chunk));
            drop(st);

            if let Some(first) = batch.first() {
                let result = if first.req.op == Op::Read {
                    self.do_read(first)
                } else {
                    self.do_mutations(chunk, &batch)
                };
                for p in batch {
                    self.finish_piece(p, result.clone());
                }
            }

            let mut st = lock(&self.sched);
            let requeue = match st.queues.get(&chunk) {
                Some(q) if !q.is_empty() => true,
                _ => {
                    st.queues.remove(&chunk);
                    false
                }
            };
            if requeue {
                st.ready.push_back(chunk);
                drop(st);
                self.work.notify_one();
            }
        }
    }

    fn finish_piece(&self, p: Piece, result: Result<()>) {
        let req = p.req;
        if let Err(e) = result {
            let mut slot = lock(&req.error);
            if slot.is_none() {
                *slot = Some(e);
            }
        }
        if req.remaining.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let result = match lock(&req.error).take() {
            Some(e) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
            None => {
                let n = req.sg.len() as u64;
                match req.op {
                    Op::Read => self.counters.bytes_read.fetch_add(n, Ordering::Relaxed),
                    Op::Write => self.counters.bytes_written.fetch_add(n, Ordering::Relaxed),
                    _ => 0,
                };
                Ok(())
            }
        };
        if let Some(done) = lock(&req.done).take() {
            done(result);
        }
        // Only now may flushes submitted after this request's seq complete.
        let mut st = lock(&self.sched);
        st.inflight.remove(&req.seq);
        let oldest = st.inflight.first().copied().unwrap_or(u64::MAX);
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut st.flushes)
            .into_iter()
            .partition(|(seq, _)| *seq < oldest);
        st.flushes = waiting;
        let idle = st.inflight.is_empty() && st.flushes.is_empty();
        drop(st);
        for (_, done) in ready {
            done(Ok(()));
        }
        if idle {
            self.idle.notify_all();
        }
    }

    /// Run one backend call; while it fails transiently, pause (100 ms, doubling
    /// up to 2 s) and try again, for at most `retry_for` from the first attempt.
    /// Every call retried here is idempotent (a read, an atomic put, a delete).
    fn retrying<T>(
        &self,
        what: &str,
        mut call: impl FnMut() -> ozbd_backend::Result<T>,
    ) -> ozbd_backend::Result<T> {
        let start = Instant::now();
        let mut pause = RETRY_FIRST_PAUSE;
        let mut attempt = 1u32;
        loop {
            match call() {
                Ok(v) => {
                    if attempt > 1 {
                        log::warn!(
                            "{what}: succeeded on attempt {attempt}, {:.1} s after the first failure",
                            start.elapsed().as_secs_f64()
                        );
                    }
                    return Ok(v);
                }
                Err(e) if is_transient(&e) && start.elapsed() + pause <= self.retry_for => {
                    if attempt == 1 {
                        log::warn!(
                            "{e}; retrying for up to {} s",
                            self.retry_for.as_secs_f64().round()
                        );
                    }
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(RETRY_MAX_PAUSE);
                    attempt += 1;
                }
                Err(e) => {
                    if attempt > 1 {
                        log::warn!(
                            "{what}: giving up after {attempt} attempts in {:.1} s",
                            start.elapsed().as_secs_f64()
                        );
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Read a whole chunk, or the part [off, off + buf.len()), zero-filling past its end.
    fn load(&self, c: u64, off: usize, buf: &mut [u8]) -> Result<()> {
        self.counters.chunk_reads.fetch_add(1, Ordering::Relaxed);
        let path = self.chunk_path(c);
        let mut at = 0;
        while at < buf.len() {
            let dst = &mut buf[at..];
            match self.retrying(&path, || self.backend.read_at(&path, (off + at) as u64, dst)) {
                Ok(0) => break,
                Ok(n) => at += n,
                Err(BackendError::NotFound { .. }) => {
                    return Err(Error::Corrupt(format!(
                        "chunk file {path} vanished while the volume was open: is another writer using this volume?"
                    )))
                }
                Err(e) => return Err(e.into()),
            }
        }
        buf[at..].fill(0);
        Ok(())
    }

    fn do_read(&self, p: &Piece) -> Result<()> {
        if !self.is_present(p.chunk) {
            p.req.sg.zero(p.sg_off, p.len);
            return Ok(());
        }
        let mut buf = vec![0u8; p.len];
        self.load(p.chunk, p.off, &mut buf)?;
        p.req.sg.copy_in(p.sg_off, &buf);
        Ok(())
    }

    /// Apply a batch of mutations of one chunk and commit them as one atomic update.
    fn do_mutations(&self, c: u64, batch: &[Piece]) -> Result<()> {
        enum State {
            Unknown,
            Zero,
            Data(Vec<u8>),
        }
        let clen = self.sb.chunk_len(c) as usize;
        let mut state = State::Unknown;
        for p in batch {
            let whole = p.off == 0 && p.len == clen;
            let zeroing = p.req.op != Op::Write;
            if whole {
                state = if zeroing {
                    State::Zero
                } else {
                    let mut v = vec![0u8; clen];
                    p.req.sg.copy_out(p.sg_off, &mut v);
                    State::Data(v)
                };
                continue;
            }
            if let State::Unknown = state {
                state = if self.is_present(c) {
                    self.counters.rmw.fetch_add(1, Ordering::Relaxed);
                    let mut v = vec![0u8; clen];
                    self.load(c, 0, &mut v)?;
                    State::Data(v)
                } else {
                    State::Zero
                };
            }
            match (&mut state, zeroing) {
                (State::Zero, true) => {}
                (State::Data(v), true) => v[p.off..p.off + p.len].fill(0),
                (State::Zero, false) => {
                    let mut v = vec![0u8; clen];
                    p.req.sg.copy_out(p.sg_off, &mut v[p.off..p.off + p.len]);
                    state = State::Data(v);
                }
                (State::Data(v), false) => {
                    p.req.sg.copy_out(p.sg_off, &mut v[p.off..p.off + p.len])
                }
                (State::Unknown, _) => unreachable!("state was loaded above"),
            }
        }
        if batch.len() > 1 {
            self.counters
                .merged
                .fetch_add(batch.len() as u64 - 1, Ordering::Relaxed);
        }
        let path = self.chunk_path(c);
        match state {
            State::Data(v) if v.iter().any(|&b| b != 0) => {
                self.counters.chunk_puts.fetch_add(1, Ordering::Relaxed);
                self.retrying(&path, || self.backend.put(&path, &v))?;
                self.set_present(c, true);
            }
            _ => {
                if self.is_present(c) {
                    self.counters.chunk_deletes.fetch_add(1, Ordering::Relaxed);
                    self.retrying(&path, || self.backend.delete(&path, false))?;
                    self.set_present(c, false);
                }
            }
        }
        Ok(())
    }
}

/// The next unit of work for a chunk: one read, or consecutive mutations.
fn take_batch(queue: Option<&mut VecDeque<Piece>>) -> Vec<Piece> {
    let Some(q) = queue else { return Vec::new() };
    let mut batch = Vec::new();
    while let Some(p) = q.front() {
        let is_read = p.req.op == Op::Read;
        if (is_read && !batch.is_empty()) || batch.len() >= MAX_BATCH {
            break;
        }
        if let Some(p) = q.pop_front() {
            batch.push(p);
        }
        if is_read {
            break;
        }
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failures_that_may_pass_are_transient() {
        let io = |errno| BackendError::io("put", "/v/b/c", errno, "x");
        for errno in [5, 11, 101, 104, 110, 111, 112, 113] {
            assert!(is_transient(&io(errno)), "errno {errno}");
        }
        for errno in [1, 13, 22, 28, 30, 122] {
            assert!(!is_transient(&io(errno)), "errno {errno}");
        }
        assert!(is_transient(&BackendError::Unavailable {
            what: "om".into(),
            msg: "down".into()
        }));
        assert!(!is_transient(&BackendError::NotFound { path: "/x".into() }));
        assert!(!is_transient(&BackendError::Unsupported {
            path: "/x".into(),
            msg: "OBS".into()
        }));
    }
}
