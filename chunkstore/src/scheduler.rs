// SPDX-License-Identifier: Apache-2.0
//! The scheduler: admission, per-chunk ordering, workers, retries, FLUSH, and
//! completion of requests.
//!
//! Owns: splitting requests into chunk pieces; admission control (a bound on
//! requests and bytes in flight: past it, `try_submit` answers Busy/EAGAIN);
//! per-chunk FIFO queues (in submission order: a mutation batch runs alone, a
//! read runs only after every mutation queued before it finished, and
//! consecutive reads of a chunk run on several workers at once; different
//! chunks run in parallel); serving a read at submit, with no lock but the
//! cache's shard locks, when the cache (or an absent chunk) holds all of it
//! and no mutation of its chunks is pending; read-ahead hints; batching consecutive
//! mutations of one chunk into one chunk update; each request's retry deadline,
//! set at submit; parking a chunk whose operation failed transiently on the
//! timer queue until its back-off has passed (no worker sleeps); the FLUSH
//! barrier; catching a panic in a worker (its pieces fail with EIO, the worker
//! lives on); completing requests; the in-flight statistics; freezing
//! admission while a shrink checks the space it cuts off (`quiesce`: users are
//! told Busy, never failed) and rewriting one chunk in its queue's order
//! (`rewrite`). Ranges need not be block-aligned: a partial block is part of
//! its chunk's read-modify-write.
//! Must never: block the submitting thread (`try_submit` only queues work),
//! call a completion while holding a lock, let a request outlive its deadline
//! by more than one backend call, or let a panic leave a request incomplete.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ozbd_backend::BackendRef;

use crate::chunk_io::{ChunkIo, Op, PieceRef};
use crate::defaults::MAX_PARALLEL_UPDATES;
use crate::error::{Error, Result};
use crate::readahead::Readahead;
use crate::retry::{is_transient_error, pause_after, TimerQueue};
use crate::sglist::SgList;
use crate::stats::{Counters, Stats};
use crate::superblock::Superblock;

/// Admission frozen by `Engine::quiesce`; thawed when dropped.
pub(crate) struct Frozen<'a>(&'a Engine);

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        lock(&self.0.sched).frozen = false;
        self.0.idle.notify_all();
    }
}

/// Called exactly once per accepted request, on an engine worker thread (or on
/// the submitting thread when the request needs no work).
pub type Completion = Box<dyn FnOnce(Result<()>) + Send>;

/// A request `try_submit` did not accept: its completion was not called, and
/// its buffers are handed back.
pub struct Rejected {
    pub error: Error,
    pub sg: SgList,
    pub done: Completion,
}

/// Most mutations folded into one chunk update (the journal's destager hands
/// a chunk's journaled extents over as one run of mutations).
const MAX_BATCH: usize = 1024;

/// Bounds and retry window of one volume's scheduler.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) retry_for: Duration,
    pub(crate) max_requests: usize,
    pub(crate) max_bytes: u64,
}

struct Request {
    op: Op,
    sg: SgList,
    remaining: AtomicUsize,
    error: Mutex<Option<Error>>,
    done: Mutex<Option<Completion>>,
    seq: u64,
    /// Past this instant a failing request is not tried again.
    deadline: Instant,
    /// What the request counts against the in-flight byte bound.
    cost: u64,
    /// Submitted by the engine itself (the journal's destager and direct
    /// writes): never refused for room, and not counted as a user request.
    internal: bool,
}

struct Piece {
    req: Arc<Request>,
    chunk: u64,
    off: usize,
    len: usize,
    sg_off: usize,
}

impl Piece {
    fn as_ref(&self) -> PieceRef<'_> {
        PieceRef {
            op: self.req.op,
            sg: &self.req.sg,
            off: self.off,
            len: self.len,
            sg_off: self.sg_off,
        }
    }
}

/// One chunk's queue and what of it is running.
#[derive(Default)]
struct ChunkQueue {
    q: VecDeque<Piece>,
    /// Reads of this chunk running now (any number at once).
    reads: usize,
    /// A mutation batch is running (alone).
    writing: bool,
    /// In `ready` now.
    listed: bool,
    /// Waiting for a retry until then.
    parked_until: Option<Instant>,
}

impl ChunkQueue {
    /// Whether a worker may take the head of the queue now.
    fn runnable(&self) -> bool {
        self.parked_until.is_none()
            && !self.writing
            && self
                .q
                .front()
                .is_some_and(|p| p.req.op == Op::Read || self.reads == 0)
    }

    /// A batch taken from this queue is over (done, failed or put back).
    fn release(&mut self, was_read: bool) {
        if was_read {
            self.reads = self.reads.saturating_sub(1);
        } else {
            self.writing = false;
        }
    }

    fn idle(&self) -> bool {
        self.q.is_empty() && self.reads == 0 && !self.writing && self.parked_until.is_none()
    }
}

#[derive(Default)]
struct SchedState {
    /// Present while the chunk is queued, being processed or parked.
    queues: HashMap<u64, ChunkQueue>,
    ready: VecDeque<u64>,
    /// Sequence numbers of accepted requests whose completion has not yet
    /// returned (not FLUSHes): the FLUSH barrier waits on these.
    inflight: BTreeSet<u64>,
    /// Requests and bytes counted against the admission bound; released just
    /// before a request's completion runs, so a caller that resubmits from
    /// its completion callback finds room.
    admitted: usize,
    /// Of `admitted`, the users' requests (not the engine's own): what
    /// `quiesce` waits for.
    user_admitted: usize,
    /// Set by `quiesce`: no user request is admitted (they are told Busy).
    frozen: bool,
    inflight_bytes: u64,
    flushes: Vec<(u64, Completion)>,
    /// Consecutive failed attempts per chunk (absent: none).
    failures: HashMap<u64, u32>,
    next_seq: u64,
    /// Mutation batches running now (at most `MAX_PARALLEL_UPDATES`).
    updating: usize,
    closing: bool,
    shutdown: bool,
}

impl SchedState {
    /// The first listed chunk a worker may take now, unlisted: a read, or a
    /// mutation while fewer than `max_updates` run. Entries no longer
    /// runnable (parked or taken since listed) are dropped on the way;
    /// mutations over the bound stay listed, in order.
    fn next_ready(&mut self, max_updates: usize) -> Option<u64> {
        let mut i = 0;
        while i < self.ready.len() {
            let c = self.ready[i];
            let Some(cq) = self.queues.get_mut(&c) else {
                self.ready.remove(i);
                continue;
            };
            if !cq.runnable() {
                cq.listed = false;
                self.ready.remove(i);
                continue;
            }
            let is_read = cq.q.front().is_some_and(|p| p.req.op == Op::Read);
            if !is_read && self.updating >= max_updates {
                i += 1;
                continue;
            }
            cq.listed = false;
            self.ready.remove(i);
            return Some(c);
        }
        None
    }

    /// A mutation batch is over; returns whether a listed chunk may have
    /// been waiting for its slot.
    fn release_update(&mut self) -> bool {
        self.updating = self.updating.saturating_sub(1);
        !self.ready.is_empty()
    }

    /// After a change to chunk `c`: list it in `ready` if a worker may take
    /// it and it is not listed; forget it when nothing is left. Returns
    /// whether it was listed (wake a worker).
    fn poke(&mut self, c: u64) -> bool {
        let Some(cq) = self.queues.get_mut(&c) else {
            return false;
        };
        if cq.runnable() && !cq.listed {
            cq.listed = true;
            self.ready.push_back(c);
            return true;
        }
        if cq.idle() {
            self.queues.remove(&c);
        }
        false
    }
}

pub(crate) struct Engine {
    pub(crate) io: ChunkIo,
    limits: Limits,
    sched: Mutex<SchedState>,
    work: Condvar,
    /// Signalled when requests complete: admission waiters and shutdown.
    idle: Condvar,
    timers: TimerQueue<u64>,
    pub(crate) counters: Counters,
    /// Mirrors `SchedState::closing` for the lock-free read path.
    closing: AtomicBool,
    /// Present when the cache is on.
    pub(crate) readahead: Option<Readahead>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Completions are user code; a panic there must not wedge the engine.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

impl Engine {
    pub(crate) fn new(
        backend: BackendRef,
        sb: Superblock,
        dir: &str,
        present: &[u64],
        limits: Limits,
        cache_bytes: u64,
    ) -> Self {
        Engine {
            io: ChunkIo::new(backend, sb, dir, present, cache_bytes),
            closing: AtomicBool::new(false),
            readahead: (cache_bytes > 0).then(Readahead::new),
            limits,
            sched: Mutex::new(SchedState::default()),
            work: Condvar::new(),
            idle: Condvar::new(),
            timers: TimerQueue::new(),
            counters: Counters::default(),
        }
    }

    /// The superblock as it is now (the size of this instant).
    pub(crate) fn sb(&self) -> Superblock {
        self.io.superblock()
    }

    pub(crate) fn stats(&self) -> Stats {
        let mut s = self.counters.snapshot(self.io.allocated_count());
        s.size = self.io.size();
        s.handles_opened = self.io.handles.opened();
        if let Some(cache) = &self.io.cache {
            s.cache = cache.stats();
        }
        s
    }

    /// Serve a read now, on the submitting thread, if it needs no backend
    /// call and no mutation of its chunks is pending (a read submitted after
    /// a write must see it); false leaves `sg` to be filled by the queue.
    fn read_at_submit(&self, offset: u64, len: u64, sg: &SgList) -> bool {
        if self.io.cache.is_none() || self.closing.load(Ordering::Acquire) {
            return false;
        }
        let cs = self.io.chunk_size;
        let (first, last) = self.chunk_span(offset, len);
        (first..=last).all(|c| {
            let cstart = c * cs;
            let s = offset.max(cstart);
            let e = (offset + len).min(cstart + cs);
            self.io.read_without_io(
                c,
                (s - cstart) as usize,
                (e - s) as usize,
                sg,
                (s - offset) as usize,
            )
        })
    }

    pub(crate) fn validate(&self, op: Op, offset: u64, len: u64, sg: &SgList) -> Result<()> {
        if op == Op::Flush {
            return Ok(());
        }
        let size = self.io.size();
        if offset.checked_add(len).is_none_or(|end| end > size) {
            return Err(Error::InvalidArgument(format!(
                "range {offset}+{len} is beyond the end of the volume ({size} bytes)"
            )));
        }
        if matches!(op, Op::Read | Op::Write) && sg.len() as u64 != len {
            return Err(Error::InvalidArgument(format!(
                "buffer holds {} bytes but the request is for {len}",
                sg.len()
            )));
        }
        Ok(())
    }

    /// Queue a request, or refuse it: Busy when the in-flight bound is reached
    /// (try again after a completion), InvalidArgument, or Closed. When
    /// accepted, `done` runs exactly once (possibly before this returns).
    pub(crate) fn try_submit(
        &self,
        op: Op,
        offset: u64,
        len: u64,
        sg: SgList,
        done: Completion,
    ) -> std::result::Result<(), Rejected> {
        self.submit_inner(op, offset, len, sg, done, false)
    }

    /// Queue a request on behalf of the engine itself (the journal): like
    /// `try_submit`, but never refused for room (the journal bounds its own
    /// work) and not counted in the user request statistics.
    pub(crate) fn submit_internal(
        &self,
        op: Op,
        offset: u64,
        len: u64,
        sg: SgList,
        done: Completion,
    ) -> std::result::Result<(), Rejected> {
        self.submit_inner(op, offset, len, sg, done, true)
    }

    fn submit_inner(
        &self,
        op: Op,
        offset: u64,
        len: u64,
        sg: SgList,
        done: Completion,
        internal: bool,
    ) -> std::result::Result<(), Rejected> {
        if let Err(error) = self.validate(op, offset, len, &sg) {
            Counters::bump(&self.counters.errors);
            return Err(Rejected { error, sg, done });
        }
        if op == Op::Read && len != 0 {
            if let Some(ra) = &self.readahead {
                ra.observe(offset, len, self.io.size());
            }
            if self.read_at_submit(offset, len, &sg) {
                Counters::bump(&self.counters.reads);
                self.counters.bytes_read.fetch_add(len, Ordering::Relaxed);
                if let Some(cache) = &self.io.cache {
                    Counters::bump(&cache.hits);
                }
                done(Ok(()));
                return Ok(());
            }
        }
        let cs = self.io.chunk_size;
        let (first, last) = self.chunk_span(offset, len);
        let pieces = last - first + 1;
        let cost = self.cost(op, offset, len);

        let mut st = lock(&self.sched);
        if st.closing {
            drop(st);
            return Err(Rejected {
                error: Error::Closed,
                sg,
                done,
            });
        }
        if !internal && op != Op::Flush && len != 0 && !self.has_room(&st, cost) {
            drop(st);
            Counters::bump(&self.counters.busy);
            return Err(Rejected {
                error: self.busy_error(),
                sg,
                done,
            });
        }
        // Checked again under the lock: a shrink publishes its size with
        // admission frozen, so a request checked against the old size before
        // it cannot slip in after it.
        if op != Op::Flush && offset + len > self.io.size() {
            drop(st);
            Counters::bump(&self.counters.errors);
            return Err(Rejected {
                error: Error::InvalidArgument(format!(
                    "range {offset}+{len} is beyond the end of the volume ({} bytes): it was shrunk",
                    self.io.size()
                )),
                sg,
                done,
            });
        }
        let counter = match op {
            Op::Read => &self.counters.reads,
            Op::Write => &self.counters.writes,
            Op::WriteZeroes => &self.counters.zeroes,
            Op::Unmap => &self.counters.unmaps,
            Op::Flush => &self.counters.flushes,
        };
        if !internal {
            Counters::bump(counter);
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        if op == Op::Flush {
            if st.inflight.is_empty() {
                drop(st);
                done(Ok(()));
                return Ok(());
            }
            st.flushes.push((seq, done));
            return Ok(());
        }
        if len == 0 {
            drop(st);
            done(Ok(()));
            return Ok(());
        }
        let req = Arc::new(Request {
            op,
            sg,
            remaining: AtomicUsize::new(pieces as usize),
            error: Mutex::new(None),
            done: Mutex::new(Some(done)),
            seq,
            deadline: Instant::now() + self.limits.retry_for,
            cost,
            internal,
        });
        st.inflight.insert(seq);
        st.admitted += 1;
        if !internal {
            st.user_admitted += 1;
        }
        st.inflight_bytes += cost;
        self.publish_inflight(&st);
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
            if op != Op::Read {
                self.io.marks.begin_mutation(c);
            }
            st.queues.entry(c).or_default().q.push_back(piece);
            if st.poke(c) {
                woke += 1;
            }
        }
        drop(st);
        for _ in 0..woke {
            self.work.notify_one();
        }
        Ok(())
    }

    /// The first and last chunk a range touches ((0, 0) for an empty range).
    fn chunk_span(&self, offset: u64, len: u64) -> (u64, u64) {
        let cs = self.io.chunk_size;
        if len == 0 {
            (0, 0)
        } else {
            (offset / cs, (offset + len - 1) / cs)
        }
    }

    /// What a request counts against the in-flight byte bound: its data, or
    /// for data-less requests the bookkeeping of its pieces.
    fn cost(&self, op: Op, offset: u64, len: u64) -> u64 {
        match op {
            Op::Read | Op::Write => len,
            Op::Flush => 0,
            _ if len == 0 => 0,
            _ => {
                let (first, last) = self.chunk_span(offset, len);
                (last - first + 1) * std::mem::size_of::<Piece>() as u64
            }
        }
    }

    /// Whether a request of `cost` bytes may be admitted now. An empty engine
    /// admits anything, so one request larger than the bound still runs.
    fn has_room(&self, st: &SchedState, cost: u64) -> bool {
        !st.frozen
            && (st.admitted == 0
                || (st.admitted < self.limits.max_requests
                    && st.inflight_bytes + cost <= self.limits.max_bytes))
    }

    /// Count a request the journal serves outside the queues against the
    /// in-flight bounds, as `try_submit` would: its cost, or None (and a
    /// `busy` count) when there is no room. Pair with `release_admitted`,
    /// just before the request's completion runs.
    /// A range checked against a size a shrink has since cut is refused the
    /// same way: the caller resubmits, and the range check then says why.
    pub(crate) fn try_admit(&self, op: Op, offset: u64, len: u64) -> Option<u64> {
        let cost = self.cost(op, offset, len);
        let mut st = lock(&self.sched);
        if !self.has_room(&st, cost) || offset.saturating_add(len) > self.io.size() {
            drop(st);
            Counters::bump(&self.counters.busy);
            return None;
        }
        st.admitted += 1;
        st.user_admitted += 1;
        st.inflight_bytes += cost;
        self.publish_inflight(&st);
        Some(cost)
    }

    /// A request counted by `try_admit` is about to complete.
    pub(crate) fn release_admitted(&self, cost: u64) {
        let mut st = lock(&self.sched);
        st.admitted = st.admitted.saturating_sub(1);
        st.user_admitted = st.user_admitted.saturating_sub(1);
        st.inflight_bytes = st.inflight_bytes.saturating_sub(cost);
        self.publish_inflight(&st);
        drop(st);
        self.idle.notify_all();
    }

    /// The refusal `try_submit` gives when the in-flight bounds are reached.
    pub(crate) fn busy_error(&self) -> Error {
        Error::Busy(format!(
            "{} requests or {} bytes in flight: try again after a completion",
            self.limits.max_requests, self.limits.max_bytes
        ))
    }

    /// Block until a request like this one would be admitted (or the volume
    /// closes). For blocking callers only; never on an SPDK reactor.
    pub(crate) fn wait_for_room(&self, op: Op, offset: u64, len: u64) {
        let cost = self.cost(op, offset, len);
        let st = lock(&self.sched);
        let _unused = self
            .idle
            .wait_while(st, |s| !s.closing && !self.has_room(s, cost))
            .unwrap_or_else(|e| e.into_inner());
    }

    /// Freeze admission (users are told Busy: SPDK retries, nbdkit and
    /// `Volume::submit` wait) and wait until no user request is in flight,
    /// for at most `within`. The engine's own work (the journal's destager)
    /// goes on. Admission thaws when the guard drops. For `Volume::resize`
    /// only: never on an SPDK reactor.
    pub(crate) fn quiesce(&self, within: Duration) -> Result<Frozen<'_>> {
        let mut st = lock(&self.sched);
        if st.frozen {
            return Err(Error::Busy("admission is frozen already".into()));
        }
        st.frozen = true;
        let frozen = Frozen(self);
        let until = Instant::now() + within;
        while st.user_admitted > 0 && !st.closing {
            let now = Instant::now();
            if now >= until {
                let n = st.user_admitted;
                drop(st);
                drop(frozen);
                return Err(Error::Timeout(format!(
                    "{n} requests were still in flight after {} s (Ozone slow or unreachable?): nothing was changed; try again",
                    within.as_secs()
                )));
            }
            st = self
                .idle
                .wait_timeout(st, until - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if st.closing {
            drop(st);
            drop(frozen);
            return Err(Error::Closed);
        }
        Ok(frozen)
    }

    /// Rewrite chunk `c` as it is, in order with every request queued for it
    /// (a read-modify-write that changes no byte: the put seals the chunk
    /// with a trailer at its current length; an all-zero chunk is deleted).
    /// Blocks until done. For `Volume::resize` only.
    pub(crate) fn rewrite(&self, c: u64) -> Result<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        let done: Completion = Box::new(move |r| {
            let _ = tx.send(r);
        });
        let mut st = lock(&self.sched);
        if st.closing {
            return Err(Error::Closed);
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        let req = Arc::new(Request {
            // An empty zeroing piece: the batch loads the chunk and puts it back.
            op: Op::WriteZeroes,
            sg: SgList::empty(),
            remaining: AtomicUsize::new(1),
            error: Mutex::new(None),
            done: Mutex::new(Some(done)),
            seq,
            deadline: Instant::now() + self.limits.retry_for,
            cost: 0,
            internal: true,
        });
        st.inflight.insert(seq);
        st.admitted += 1;
        self.publish_inflight(&st);
        self.io.marks.begin_mutation(c);
        st.queues.entry(c).or_default().q.push_back(Piece {
            req,
            chunk: c,
            off: 0,
            len: 0,
            sg_off: 0,
        });
        let woke = st.poke(c);
        drop(st);
        if woke {
            self.work.notify_one();
        }
        rx.recv().unwrap_or(Err(Error::Closed))
    }

    fn publish_inflight(&self, st: &SchedState) {
        self.counters
            .inflight
            .store(st.admitted as u64, Ordering::Relaxed);
        self.counters
            .inflight_bytes
            .store(st.inflight_bytes, Ordering::Relaxed);
    }

    /// Wait until nothing is queued or in flight, then stop the workers and
    /// the timer thread.
    pub(crate) fn shutdown(&self) {
        let mut st = lock(&self.sched);
        st.closing = true;
        self.closing.store(true, Ordering::Release);
        self.idle.notify_all();
        while !st.inflight.is_empty() || !st.flushes.is_empty() {
            st = self.idle.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.shutdown = true;
        drop(st);
        self.timers.stop();
        self.work.notify_all();
        if let Some(ra) = &self.readahead {
            ra.stop();
        }
    }

    /// The body of the read-ahead thread (only with the cache on).
    pub(crate) fn readahead_loop(&self) {
        if let Some(ra) = &self.readahead {
            ra.run(&self.io, &self.counters);
        }
    }

    /// The body of the timer thread: bring parked chunks back when due.
    pub(crate) fn timer_loop(&self) {
        while let Some(chunk) = self.timers.next_due() {
            let mut st = lock(&self.sched);
            if let Some(cq) = st.queues.get_mut(&chunk) {
                // A later failure may have parked it for longer.
                if cq.parked_until.is_some_and(|t| t <= Instant::now()) {
                    cq.parked_until = None;
                }
            }
            let woke = st.poke(chunk);
            drop(st);
            if woke {
                self.work.notify_one();
            }
        }
    }

    /// Whether the volume is closing (or closed).
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Chunks waiting for a retry.
    pub(crate) fn parked(&self) -> usize {
        self.timers.len()
    }

    /// Run one batch (a read, or consecutive mutations of one chunk), once.
    fn run_batch(&self, chunk: u64, batch: &[Piece]) -> Result<()> {
        match batch.first() {
            Some(p) if p.req.op == Op::Read => self.io.read(chunk, &p.as_ref(), &self.counters),
            Some(_) => {
                let refs: Vec<PieceRef<'_>> = batch.iter().map(Piece::as_ref).collect();
                self.io.mutate(chunk, &refs, &self.counters)
            }
            None => Ok(()),
        }
    }

    /// The body of each worker thread.
    pub(crate) fn worker_loop(&self) {
        loop {
            let mut st = lock(&self.sched);
            let (chunk, batch, woke) = loop {
                if let Some(c) = st.next_ready(MAX_PARALLEL_UPDATES) {
                    let Some(cq) = st.queues.get_mut(&c) else {
                        continue;
                    };
                    let batch = take_batch(&mut cq.q);
                    match batch.first() {
                        Some(p) if p.req.op == Op::Read => cq.reads += 1,
                        _ => {
                            cq.writing = true;
                            st.updating += 1;
                        }
                    }
                    // The next read of the chunk may start on another worker.
                    let woke = st.poke(c);
                    break (c, batch, woke);
                }
                if st.shutdown {
                    return;
                }
                st = self.work.wait(st).unwrap_or_else(|e| e.into_inner());
            };
            drop(st);
            if woke {
                self.work.notify_one();
            }
            let was_read = batch.first().is_some_and(|p| p.req.op == Op::Read);

            let result =
                catch_unwind(AssertUnwindSafe(|| self.run_batch(chunk, &batch)))
                .unwrap_or_else(|p| {
                    Counters::bump(&self.counters.panics);
                    let msg = panic_text(p.as_ref());
                    log::error!(
                        "internal error (panic) on chunk {chunk}: {msg}; its requests fail with EIO. This is a bug: please report it"
                    );
                    Err(Error::Internal(format!("panic on chunk {chunk}: {msg}")))
                });

            let parked = match result {
                Ok(()) => {
                    if let Some(n) = lock(&self.sched).failures.remove(&chunk) {
                        log::warn!("chunk {chunk}: succeeded after {n} failed attempt(s)");
                    }
                    self.finish_all(batch, &Ok(()));
                    false
                }
                Err(e) if is_transient_error(&e) => self.retry_later(chunk, batch, e, was_read),
                Err(e) => {
                    lock(&self.sched).failures.remove(&chunk);
                    self.finish_all(batch, &Err(e));
                    false
                }
            };
            if parked {
                continue; // on the timer queue, its pieces back at the front
            }
            let mut st = lock(&self.sched);
            let woke = st.queues.get_mut(&chunk).is_some_and(|cq| {
                cq.release(was_read);
                true
            }) && st.poke(chunk);
            // A chunk update slot came free: a chunk waiting for one may run.
            let slot_freed = !was_read && st.release_update();
            drop(st);
            if woke || slot_freed {
                self.work.notify_one();
            }
        }
    }

    /// A batch failed transiently: fail the pieces whose deadline comes before
    /// the next attempt, put the others back at the front of the chunk's queue
    /// and park the chunk until the back-off has passed. Returns whether it
    /// parked the chunk.
    fn retry_later(&self, chunk: u64, batch: Vec<Piece>, e: Error, was_read: bool) -> bool {
        let mut st = lock(&self.sched);
        let failures = {
            let n = st.failures.entry(chunk).or_insert(0);
            *n += 1;
            *n
        };
        let retry_at = Instant::now() + pause_after(failures);
        let (keep, expired): (Vec<Piece>, Vec<Piece>) =
            batch.into_iter().partition(|p| p.req.deadline > retry_at);
        let parked = !keep.is_empty();
        let cq = st.queues.entry(chunk).or_default();
        if parked {
            // (When not parked, the worker releases the batch as for any
            // other outcome.)
            cq.release(was_read);
            // Back at the front: still before every piece submitted after them.
            for p in keep.into_iter().rev() {
                cq.q.push_front(p);
            }
            cq.parked_until = Some(cq.parked_until.map_or(retry_at, |t| t.max(retry_at)));
            Counters::bump(&self.counters.retries);
            self.timers.schedule(retry_at, chunk);
        } else {
            st.failures.remove(&chunk);
        }
        let slot_freed = parked && !was_read && st.release_update();
        let woke = st.poke(chunk);
        drop(st);
        if woke || slot_freed {
            self.work.notify_one();
        }
        if failures == 1 && parked {
            log::warn!(
                "{e}; retrying chunk {chunk} until its requests' deadlines (up to {} s after submit)",
                self.limits.retry_for.as_secs_f64().round()
            );
        }
        if !expired.is_empty() {
            log::warn!(
                "chunk {chunk}: giving up on {} request piece(s) after {failures} attempt(s): their {} s retry deadline passed",
                expired.len(),
                self.limits.retry_for.as_secs_f64().round()
            );
            self.counters
                .deadline_failures
                .fetch_add(expired.len() as u64, Ordering::Relaxed);
            self.finish_all(expired, &Err(e));
        }
        parked
    }

    fn finish_all(&self, batch: Vec<Piece>, result: &Result<()>) {
        for p in batch {
            self.finish_piece(p, result.clone());
        }
    }

    fn finish_piece(&self, p: Piece, result: Result<()>) {
        if p.req.op != Op::Read {
            // After the chunk update (and its cache invalidation) is done.
            self.io.marks.end_mutation(p.chunk);
        }
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
                if !req.internal {
                    Counters::bump(&self.counters.errors);
                }
                Err(e)
            }
            None if req.internal => Ok(()),
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
        // Release the admission slot first: a caller that resubmits from
        // inside the completion (or on being woken by it) must find room.
        {
            let mut st = lock(&self.sched);
            st.admitted -= 1;
            if !req.internal {
                st.user_admitted -= 1;
            }
            st.inflight_bytes -= req.cost;
            self.publish_inflight(&st);
        }
        self.idle.notify_all();
        if let Some(done) = lock(&req.done).take() {
            if catch_unwind(AssertUnwindSafe(|| done(result))).is_err() {
                Counters::bump(&self.counters.panics);
                log::error!("a completion callback panicked; the engine goes on");
            }
        }
        // Only now may flushes submitted after this request's seq complete.
        let mut st = lock(&self.sched);
        st.inflight.remove(&req.seq);
        let oldest = st.inflight.first().copied().unwrap_or(u64::MAX);
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut st.flushes)
            .into_iter()
            .partition(|(seq, _)| *seq < oldest);
        st.flushes = waiting;
        drop(st);
        self.idle.notify_all();
        for (_, done) in ready {
            if catch_unwind(AssertUnwindSafe(|| done(Ok(())))).is_err() {
                Counters::bump(&self.counters.panics);
                log::error!("a FLUSH completion callback panicked; the engine goes on");
            }
        }
    }
}

/// The next unit of work for a chunk: one read, or consecutive mutations.
fn take_batch(q: &mut VecDeque<Piece>) -> Vec<Piece> {
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
