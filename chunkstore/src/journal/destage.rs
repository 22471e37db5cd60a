// SPDX-License-Identifier: Apache-2.0
//! The destager: applies journaled data to chunks, then frees journal space.
//!
//! Owns: deciding when to destage (the journal filling up,
//! a quiet volume, data older than `DESTAGE_MAX_AGE`, close), choosing the chunks with the most
//! dirty data, handing each chunk's journaled extents to the scheduler as one
//! run of mutations (one atomic chunk rewrite), removing what was applied
//! from the dirty map, writing checkpoint records, and deleting segments all
//! of whose records are applied.
//! Must never: spin (with nothing dirty it sleeps until a write arrives),
//! delete a segment before a durable checkpoint says its records are
//! applied, or submit a chunk's extents outside the journal lock (the lock
//! orders destages against direct writes in the chunk queues).

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use ozbd_backend::join;

use super::dirty::Src;
use super::record::Kind;
use super::segment::seg_name;
use super::{lock, Journal, State, CHECKPOINT_RETRY, DESTAGE_MAX_AGE, DESTAGE_QUIET};
use crate::chunk_io::Op;
use crate::error::{Error, Result};
use crate::scheduler::Completion;
use crate::sglist::SgList;

/// One chunk being destaged: which records it applies, and its outcome.
pub(super) struct Job {
    chunk: u64,
    seqs: HashSet<u64>,
    bytes: u64,
    remaining: AtomicUsize,
    error: Mutex<Option<Error>>,
    tx: mpsc::Sender<Arc<Job>>,
}

impl Job {
    fn piece_done(self: &Arc<Self>, r: Result<()>) {
        if let Err(e) = r {
            let mut slot = lock(&self.error);
            if slot.is_none() {
                *slot = Some(e);
            }
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _ = self.tx.send(self.clone());
        }
    }
}

/// Whether a checkpoint would let a segment go: the watermark moved past
/// the last durable one, and some segment holds only records below it (an
/// active segment holding no records, only its header and checkpoints, does
/// not count: rolling it would free nothing).
fn checkpoint_useful(st: &State) -> bool {
    let w = st.watermark();
    w > st.w_durable
        && st
            .segs
            .values()
            .any(|s| s.max_seq < w && (s.sealed || s.max_seq > 0))
}

/// Whether a sealed segment holds only records the last durable checkpoint
/// covers (it can be deleted now).
fn deletable_now(st: &State) -> bool {
    st.segs
        .values()
        .any(|s| s.sealed && s.max_seq < st.w_durable)
}

fn reclaimable(st: &State) -> bool {
    checkpoint_useful(st) || deletable_now(st)
}

impl Journal {
    fn pressure(&self, st: &State) -> bool {
        st.used() * 2 > self.cfg.capacity
    }

    /// Whether the destager has work now; else how long it may sleep (None:
    /// until woken).
    fn destage_due(&self, st: &State) -> std::result::Result<(), Option<std::time::Duration>> {
        if st.map.is_empty() {
            // Nothing to apply; free space if writers need it or at close.
            return if reclaimable(st) && (self.pressure(st) || st.closing) {
                Ok(())
            } else {
                Err(None)
            };
        }
        let now = Instant::now();
        if let Some(d) = st.not_before.and_then(|t| t.checked_duration_since(now)) {
            return Err(Some(d));
        }
        if st.closing || self.pressure(st) {
            return Ok(());
        }
        let aged = st.dirty_since.unwrap_or(now) + DESTAGE_MAX_AGE;
        let quiet = st.last_write + DESTAGE_QUIET;
        match aged.min(quiet).checked_duration_since(now) {
            Some(d) if !d.is_zero() => Err(Some(d)),
            _ => Ok(()),
        }
    }

    /// The destager thread: runs until close, destaging everything first
    /// when the volume closes cleanly.
    pub(crate) fn destage_loop(self: Arc<Self>) {
        let mut failed_at_close = false;
        loop {
            let jobs = {
                let mut st = lock(&self.st);
                loop {
                    let settled = st.direct_inflight == 0;
                    if st.closing
                        && settled
                        && (failed_at_close
                            || (st.map.is_empty() && self.destage_due(&st).is_err()))
                    {
                        st.destager_done = true;
                        drop(st);
                        self.commit_cv.notify_all();
                        self.idle_cv.notify_all();
                        return;
                    }
                    match self.destage_due(&st) {
                        Ok(()) if !(st.map.is_empty() && failed_at_close) => break,
                        Ok(()) => st = self.destage_cv.wait(st).unwrap_or_else(|e| e.into_inner()),
                        Err(None) => {
                            st = self.destage_cv.wait(st).unwrap_or_else(|e| e.into_inner());
                        }
                        Err(Some(d)) => {
                            st = self
                                .destage_cv
                                .wait_timeout(st, d)
                                .unwrap_or_else(|e| e.into_inner())
                                .0;
                        }
                    }
                }
                self.start_jobs(&mut st)
            };
            let mut ok = true;
            match jobs {
                Some((rx, n)) => {
                    for _ in 0..n {
                        let Ok(job) = rx.recv() else { break };
                        ok &= self.finish_job(&job);
                    }
                }
                None => {
                    // Only data whose group commit is still in flight: wait
                    // for a commit (the committer wakes us) instead of spinning.
                    let st = lock(&self.st);
                    if !st.undurable.is_empty() {
                        let _unused = self
                            .destage_cv
                            .wait_timeout(st, std::time::Duration::from_millis(200));
                    }
                }
            }
            if !ok && lock(&self.st).closing {
                log::warn!(
                    "{}: destaging at close failed; the journal is kept and replayed at the next open",
                    self.dir
                );
                failed_at_close = true;
            }
            if let Err(e) = self.checkpoint() {
                log::warn!("{}: journal checkpoint failed: {e}", self.dir);
                let st = lock(&self.st);
                if st.closing {
                    failed_at_close = true;
                } else {
                    // Back off before the next try; a close wakes us.
                    let _unused = self.destage_cv.wait_timeout(st, CHECKPOINT_RETRY);
                }
            }
        }
    }

    /// Pick the dirtiest chunks not already being destaged and hand their
    /// extents to the scheduler. Called with the journal lock held.
    pub(super) fn start_jobs(
        self: &Arc<Self>,
        st: &mut State,
    ) -> Option<(mpsc::Receiver<Arc<Job>>, usize)> {
        let mut chunks: Vec<(u64, u64)> = st
            .map
            .chunks()
            .into_iter()
            .filter(|(c, _)| !st.destaging.contains(c))
            .collect();
        if chunks.is_empty() {
            return None;
        }
        chunks.sort_unstable_by_key(|c| std::cmp::Reverse(c.1));
        chunks.truncate(self.cfg.destage_parallel);
        let (tx, rx) = mpsc::channel();
        let mut started = 0;
        let durable = st.durable_below();
        for (c, bytes) in chunks {
            // Only durable records: replay must be able to reproduce what a
            // chunk holds, so each chunk stays a prefix of its writes.
            let pieces: Vec<_> = st
                .map
                .snapshot(c * self.chunk_size, (c + 1) * self.chunk_size)
                .into_iter()
                .filter(|p| p.seq < durable)
                .collect();
            if pieces.is_empty() {
                continue;
            }
            let job = Arc::new(Job {
                chunk: c,
                seqs: pieces.iter().map(|p| p.seq).collect(),
                bytes: pieces.iter().map(|p| p.len()).sum::<u64>().min(bytes),
                remaining: AtomicUsize::new(pieces.len()),
                error: Mutex::new(None),
                tx: tx.clone(),
            });
            st.destaging.insert(c);
            started += 1;
            for p in pieces {
                let j = job.clone();
                let (op, sg, keep) = match &p.src {
                    Src::Zero => (Op::WriteZeroes, SgList::empty(), None),
                    Src::Data(d, off) => {
                        let n = (p.end - p.start) as usize;
                        // SAFETY: the payload is kept alive by `keep` until
                        // the request completes; the engine only reads it.
                        let sg = unsafe { SgList::from_const_slice(&d.bytes()[*off..*off + n]) };
                        (Op::Write, sg, Some(d.clone()))
                    }
                };
                let done: Completion = Box::new(move |r| {
                    drop(keep);
                    j.piece_done(r);
                });
                if let Err(r) = self
                    .engine
                    .submit_internal(op, p.start, p.end - p.start, sg, done)
                {
                    job.piece_done(Err(r.error));
                }
            }
        }
        (started > 0).then_some((rx, started))
    }

    /// Record a finished chunk destage; true when it succeeded.
    pub(super) fn finish_job(&self, job: &Job) -> bool {
        let err = lock(&job.error).take();
        let mut st = lock(&self.st);
        st.destaging.remove(&job.chunk);
        match err {
            None => {
                st.map.remove_applied(job.chunk, &job.seqs);
                st.not_before = None;
                if st.map.is_empty() {
                    st.dirty_since = None;
                }
                self.c
                    .destaged_bytes
                    .fetch_add(job.bytes, Ordering::Relaxed);
                self.c.destaged_chunks.fetch_add(1, Ordering::Relaxed);
                true
            }
            Some(e) => {
                log::warn!(
                    "{}: destaging chunk {} failed ({e}); it stays in the journal and is tried again",
                    self.dir,
                    job.chunk
                );
                st.not_before = Some(Instant::now() + std::time::Duration::from_secs(1));
                false
            }
        }
    }

    /// If records became applied, make that durable with a checkpoint record,
    /// then delete the segments that hold only applied records, and let
    /// the journal take new writes again.
    pub(crate) fn checkpoint(&self) -> Result<()> {
        let pending = {
            let mut st = lock(&self.st);
            let w = st.watermark();
            if !checkpoint_useful(&st) {
                if !deletable_now(&st) {
                    return Ok(());
                }
                None
            } else {
                if st
                    .segs
                    .values()
                    .any(|s| !s.sealed && s.max_seq > 0 && s.max_seq < w)
                {
                    // Active segments holding only applied records: roll them
                    // so they can go next time.
                    st.roll_gen += 1;
                }
                let (tx, rx) = mpsc::channel();
                let done: Completion = Box::new(move |r| {
                    let _ = tx.send(r);
                });
                self.push_meta(&mut st, Kind::Checkpoint, 0, 0, 0, w, done, 0);
                drop(st);
                self.commit_cv.notify_all();
                Some((w, rx))
            }
        };
        if let Some((w, rx)) = pending {
            rx.recv().unwrap_or(Err(Error::Closed))?;
            let mut st = lock(&self.st);
            st.w_durable = st.w_durable.max(w);
            st.touched.retain(|_, s| *s >= w);
        }
        let dels: Vec<u64> = {
            let st = lock(&self.st);
            let w = st.w_durable;
            st.segs
                .iter()
                .filter(|(_, s)| s.max_seq < w && s.sealed)
                .map(|(n, _)| *n)
                .collect()
        };
        for n in dels {
            let path = join(&self.dir, &seg_name(n));
            match self.backend.delete(&path, false) {
                Ok(_) => {
                    let mut st = lock(&self.st);
                    if let Some(s) = st.segs.remove(&n) {
                        st.seg_bytes -= s.bytes;
                    }
                }
                Err(e) => {
                    // An error, not a silent stop: the caller must not retry at once
                    // (a close would spin on it forever). The segment stays; its
                    // records are applied, so a replay only repeats them.
                    log::warn!("{path}: deleting an applied journal segment failed: {e}");
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }
}
