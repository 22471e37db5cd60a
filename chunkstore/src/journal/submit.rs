// SPDX-License-Identifier: Apache-2.0
//! Routing user requests through the journal.
//!
//! Owns: the submit path of a journaled volume: reads overlaid with
//! journaled data, small writes admitted (sequence number, dirty map, queued
//! for group commit) or, when the journal is full, sent to the chunks; large writes
//! sent straight to the chunks with their Superseded record, and completing
//! user requests with their statistics.
//! Must never: block the submitting thread (an SPDK reactor), call a
//! completion while holding the journal lock, or let a read miss a
//! journaled write submitted before it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::dirty::{Payload, Src};
use super::record::{self, Header, Kind};
use super::{complete, lock, record_bytes, Journal, Pending, State};
use crate::chunk_io::Op;
use crate::scheduler::{Completion, Rejected};
use crate::sglist::SgList;
use crate::stats::Counters;

impl Journal {
    fn op_counter(&self, op: Op) -> &AtomicU64 {
        let c = self.counters();
        match op {
            Op::Read => &c.reads,
            Op::Write => &c.writes,
            Op::WriteZeroes => &c.zeroes,
            Op::Unmap => &c.unmaps,
            Op::Flush => &c.flushes,
        }
    }

    /// Route one request: reads overlay journaled data on the chunks; small
    /// writes, write-zeroes and unmaps are journaled; large ones go straight
    /// to the chunks; FLUSH completes at once (every completed write is
    /// already durable).
    pub(crate) fn try_submit(
        self: &Arc<Self>,
        op: Op,
        offset: u64,
        len: u64,
        sg: SgList,
        done: Completion,
    ) -> std::result::Result<(), Rejected> {
        if op == Op::Flush {
            if lock(&self.st).closing {
                return Err(closed(sg, done));
            }
            Counters::bump(&self.counters().flushes);
            complete(done, Ok(()), self.counters());
            return Ok(());
        }
        if let Err(error) = self.engine.validate(op, offset, len, &sg) {
            Counters::bump(&self.counters().errors);
            return Err(Rejected { error, sg, done });
        }
        if op == Op::Read {
            return self.read(offset, len, sg, done);
        }
        if len == 0 {
            Counters::bump(self.op_counter(op));
            complete(done, Ok(()), self.counters());
            return Ok(());
        }
        // The volume's in-flight bounds hold for journaled writes too.
        let Some(cost) = self.engine.try_admit(op, offset, len) else {
            return Err(Rejected {
                error: self.engine.busy_error(),
                sg,
                done,
            });
        };
        let slot = Arc::new(Mutex::new(Some(done)));
        let back = slot.clone();
        let engine = self.engine.clone();
        let wbytes = if op == Op::Write { len } else { 0 };
        let in_flight = self
            .inflight_write_bytes
            .fetch_add(wbytes, Ordering::Relaxed)
            + wbytes;
        let me = self.clone();
        let wrapped: Completion = Box::new(move |r| {
            engine.release_admitted(cost);
            me.inflight_write_bytes.fetch_sub(wbytes, Ordering::Relaxed);
            if let Some(d) = lock(&slot).take() {
                d(r);
            }
        });
        let routed = match self.gather(op, offset, len, sg, wrapped, in_flight) {
            super::gather::Gathered::Taken(r) => r,
            super::gather::Gathered::Route(sg, wrapped) => {
                self.route_mutation(op, offset, len, sg, wrapped)
            }
        };
        routed.map_err(|r| {
            self.engine.release_admitted(cost);
            self.inflight_write_bytes
                .fetch_sub(wbytes, Ordering::Relaxed);
            Rejected {
                error: r.error,
                sg: r.sg,
                done: take_back(&back),
            }
        })
    }

    /// Journal a write, write-zeroes or unmap, or send it straight to its
    /// chunks (see `try_submit`).
    fn route_mutation(
        self: &Arc<Self>,
        op: Op,
        offset: u64,
        len: u64,
        sg: SgList,
        done: Completion,
    ) -> std::result::Result<(), Rejected> {
        if len > self.max_record {
            return self.direct(op, offset, len, sg, done);
        }
        if len >= self.chunk_size {
            // A large write skips the journal only where the journal holds
            // nothing for its chunks: then a crash can leave each chunk at a
            // prefix of its writes (replay re-applies nothing older over
            // it). Elsewhere it is journaled like a small one.
            let st = lock(&self.st);
            let (c0, c1) = (
                offset / self.chunk_size,
                (offset + len - 1) / self.chunk_size,
            );
            if !st.closing && !(c0..=c1).any(|c| st.touched.contains_key(&c)) {
                return self.direct_locked(st, op, offset, len, sg, done);
            }
        }
        self.journal_write(op, offset, len, sg, done)
    }

    fn read(
        self: &Arc<Self>,
        offset: u64,
        len: u64,
        sg: SgList,
        done: Completion,
    ) -> std::result::Result<(), Rejected> {
        let end = offset + len;
        let pieces = {
            let mut st = lock(&self.st);
            // A held write submitted before this read is journaled first,
            // so the read sees it (reads never wait for a gather).
            if len > 0 && !st.gathers.is_empty() {
                let mut flushed = false;
                for c in offset / self.chunk_size..=(end - 1) / self.chunk_size {
                    flushed |= self.flush_chunk(&mut st, c);
                }
                if flushed {
                    self.commit_cv.notify_one();
                }
            }
            if st.map.is_empty() {
                Vec::new()
            } else {
                st.map.snapshot(offset, end)
            }
        };
        if pieces.is_empty() {
            return self.engine.try_submit(Op::Read, offset, len, sg, done);
        }
        if pieces.iter().map(|p| p.len()).sum::<u64>() == len {
            for p in &pieces {
                p.copy_into(&sg, offset);
            }
            Counters::bump(&self.counters().reads);
            self.counters().bytes_read.fetch_add(len, Ordering::Relaxed);
            complete(done, Ok(()), self.counters());
            return Ok(());
        }
        // Read the chunks, then lay the journaled pieces (as they were at
        // submit) over them.
        // SAFETY: the alias writes only after the engine filled the buffer,
        // and is dropped before the caller's completion runs.
        let alias = unsafe { sg.alias() };
        let slot = Arc::new(Mutex::new(Some(done)));
        let back = slot.clone();
        let wrapped: Completion = Box::new(move |r| {
            if r.is_ok() {
                for p in &pieces {
                    p.copy_into(&alias, offset);
                }
            }
            drop(alias);
            if let Some(d) = lock(&slot).take() {
                d(r);
            }
        });
        self.engine
            .try_submit(Op::Read, offset, len, sg, wrapped)
            .map_err(|r| Rejected {
                error: r.error,
                sg: r.sg,
                done: take_back(&back),
            })
    }

    /// Whether a record of `bytes` fits in the journal now.
    fn fits(&self, st: &State, bytes: u64) -> bool {
        st.used() + bytes <= self.cfg.capacity
    }

    fn journal_write(
        self: &Arc<Self>,
        op: Op,
        offset: u64,
        len: u64,
        sg: SgList,
        done: Completion,
    ) -> std::result::Result<(), Rejected> {
        let rec = record_bytes(op, len);
        // Copy the data before taking the lock (the common case: it fits).
        let payload = self.copy_payload(op, len, &sg);
        let deadline = Instant::now() + self.cfg.retry_for;
        let mut st = lock(&self.st);
        if st.closing {
            return Err(closed(sg, done));
        }
        if !self.fits(&st, rec) {
            // The journal is full: this write goes straight to its chunk
            // (a read-modify-write, slower: writers are slowed, never
            // failed, and journal memory stays bounded), in order with
            // everything submitted before and after it.
            Counters::bump(&self.c.full_waits);
            self.destage_cv.notify_all();
            return self.direct_locked(st, op, offset, len, sg, done);
        }
        Counters::bump(self.op_counter(op));
        self.admit(&mut st, op, offset, len, payload, done, deadline);
        drop(st);
        self.commit_cv.notify_one();
        Ok(())
    }

    /// A WRITE's data, copied out of the caller's buffers into a record
    /// payload (the only copy the journal makes before the hsync).
    pub(super) fn copy_payload(&self, op: Op, len: u64, sg: &SgList) -> Option<Arc<Payload>> {
        (op == Op::Write).then(|| {
            let mut v = vec![0u8; len as usize];
            sg.copy_out(0, &mut v);
            Payload::new(v, &self.dirty_bytes)
        })
    }

    /// Give a write its sequence number, make it visible to reads, and queue
    /// its record for the next group commit.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn admit(
        &self,
        st: &mut State,
        op: Op,
        offset: u64,
        len: u64,
        payload: Option<Arc<Payload>>,
        done: Completion,
        deadline: Instant,
    ) {
        let seq = st.next_seq;
        st.next_seq += 1;
        let src = match &payload {
            Some(p) => Src::Data(p.clone(), 0),
            None => Src::Zero,
        };
        st.last_write = Instant::now();
        if st.map.is_empty() {
            st.dirty_since = Some(st.last_write);
        }
        st.map.insert(offset, offset + len, seq, src);
        for c in offset / self.chunk_size..=(offset + len - 1) / self.chunk_size {
            st.touched.insert(c, seq);
        }
        let kind = if op == Op::Write {
            Kind::Write
        } else {
            Kind::Zeroes
        };
        let payload_len = payload.as_ref().map_or(0, |p| p.bytes().len()) as u32;
        st.undurable.insert(seq);
        st.pending_bytes += record::record_len(payload_len as usize) as u64;
        st.pending.push_back(Pending {
            hdr: Header {
                kind,
                payload_len,
                seq,
                offset,
                len,
                aux: 0,
            },
            payload,
            done: Some(done),
            deadline,
            user_bytes: if op == Op::Write { len } else { 0 },
        });
    }

    /// Queue a data-less record (Superseded with the sequence number its
    /// direct write reserved at submit, or Checkpoint with 0) for the next
    /// group commit; it never waits for space. A checkpoint takes no
    /// sequence number (its watermark is in `aux`), so writing one never
    /// moves the watermark itself.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push_meta(
        &self,
        st: &mut State,
        kind: Kind,
        seq: u64,
        offset: u64,
        len: u64,
        aux: u64,
        done: Completion,
        user_bytes: u64,
    ) {
        st.pending_bytes += record::HEADER_LEN as u64;
        st.pending.push_back(Pending {
            hdr: Header {
                kind,
                payload_len: 0,
                seq,
                offset,
                len,
                aux,
            },
            payload: None,
            done: Some(done),
            deadline: Instant::now() + self.cfg.retry_for,
            user_bytes,
        });
    }

    /// A write too large for the journal, or covering whole chunks: straight
    /// to the chunks (one atomic put each), ordered with the destager through
    /// the chunk queues. Older journaled data in its range is dropped from
    /// the map at once; a Superseded record tells replay to drop it too.
    fn direct(
        self: &Arc<Self>,
        op: Op,
        offset: u64,
        len: u64,
        sg: SgList,
        done: Completion,
    ) -> std::result::Result<(), Rejected> {
        let st = lock(&self.st);
        if st.closing {
            return Err(closed(sg, done));
        }
        self.direct_locked(st, op, offset, len, sg, done)
    }

    /// `direct`, with the journal lock already held (and released here).
    pub(super) fn direct_locked(
        self: &Arc<Self>,
        mut st: std::sync::MutexGuard<'_, State>,
        op: Op,
        offset: u64,
        len: u64,
        sg: SgList,
        done: Completion,
    ) -> std::result::Result<(), Rejected> {
        let end = offset + len;
        let (c0, c1) = (offset / self.chunk_size, (end - 1) / self.chunk_size);
        // The Superseded record takes its place in the sequence now, at
        // submit: it drops journaled data older than this write, never a
        // record admitted while the write is in flight (replay applies
        // records by sequence number, wherever they land in the segments).
        let marker = (c0..=c1).any(|c| st.touched.contains_key(&c)).then(|| {
            st.next_seq += 1;
            st.next_seq - 1
        });
        let floor = st.map.snapshot(offset, end).iter().map(|p| p.seq).min();
        st.map.punch(offset, end);
        if st.map.is_empty() {
            st.dirty_since = None;
        }
        if let Some(f) = floor {
            *st.floors.entry(f).or_default() += 1;
        }
        st.direct_inflight += 1;
        Counters::bump(self.op_counter(op));
        Counters::bump(&self.c.direct_writes);
        let me = self.clone();
        let user_bytes = if op == Op::Write { len } else { 0 };
        let slot = Arc::new(Mutex::new(Some(done)));
        let back = slot.clone();
        let wrapped: Completion = Box::new(move |r| {
            let Some(done) = lock(&slot).take() else {
                return;
            };
            me.direct_done(r, done, marker, floor, offset, len, user_bytes);
        });
        let res = self
            .engine
            .submit_internal(op, offset, len, sg, wrapped)
            .map_err(|r| {
                if let Some(f) = floor {
                    release_floor(&mut st, f);
                }
                st.direct_inflight -= 1;
                Rejected {
                    error: r.error,
                    sg: r.sg,
                    done: take_back(&back),
                }
            });
        drop(st);
        res
    }

    #[allow(clippy::too_many_arguments)]
    fn direct_done(
        self: &Arc<Self>,
        r: crate::error::Result<()>,
        done: Completion,
        marker: Option<u64>,
        floor: Option<u64>,
        offset: u64,
        len: u64,
        user_bytes: u64,
    ) {
        if let (Ok(()), Some(seq)) = (&r, marker) {
            let me = self.clone();
            let after: Completion = Box::new(move |r2| {
                me.direct_finished(floor);
                me.finish_user(done, r2, user_bytes);
            });
            let mut st = lock(&self.st);
            self.push_meta(&mut st, Kind::Superseded, seq, offset, len, 0, after, 0);
            drop(st);
            self.commit_cv.notify_one();
            return;
        }
        self.direct_finished(floor);
        self.finish_user(done, r, user_bytes);
    }

    fn direct_finished(&self, floor: Option<u64>) {
        let mut st = lock(&self.st);
        if let Some(f) = floor {
            release_floor(&mut st, f);
        }
        st.direct_inflight -= 1;
        drop(st);
        self.destage_cv.notify_all();
    }

    /// Complete a user request, with the statistics.
    pub(crate) fn finish_user(&self, done: Completion, r: crate::error::Result<()>, bytes: u64) {
        match &r {
            Ok(()) => {
                self.counters()
                    .bytes_written
                    .fetch_add(bytes, Ordering::Relaxed);
            }
            Err(_) => Counters::bump(&self.counters().errors),
        }
        complete(done, r, self.counters());
        self.idle_cv.notify_all();
    }
}

/// A request refused because the volume is closing.
fn closed(sg: SgList, done: Completion) -> Rejected {
    Rejected {
        error: crate::error::Error::Closed,
        sg,
        done,
    }
}

/// The caller's completion, back from a wrapper the engine refused (it was
/// never called).
fn take_back(slot: &Mutex<Option<Completion>>) -> Completion {
    lock(slot)
        .take()
        .unwrap_or_else(|| Box::new(|_: crate::error::Result<()>| {}))
}

fn release_floor(st: &mut State, f: u64) {
    if let Some(n) = st.floors.get_mut(&f) {
        *n -= 1;
        if *n == 0 {
            st.floors.remove(&f);
        }
    }
}
