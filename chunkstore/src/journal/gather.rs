// SPDX-License-Identifier: Apache-2.0
//! Gathering a sequential stream's writes into whole-chunk puts.
//!
//! Owns: holding the partial-chunk writes of a sequential stream (say 1 MiB
//! writes into 4 MiB chunks at QD 8) for a few milliseconds, so that when
//! they cover a whole chunk they go to Ozone as one atomic put, written
//! once, instead of through the journal and the destager (written twice).
//! A gather that does not fill its chunk in time, or that another request
//! to its chunk meets, is journaled as if it had never waited.
//! Must never: complete a held write before the put (or the hsync) that
//! makes it durable; let a request to a chunk (a read too) pass a gather of
//! that chunk (it flushes the gather to the journal first, in submission order); hold
//! a write on a volume whose stream cannot fill a chunk (a write starts a
//! gather only when enough write bytes are in flight to fill one); or hold
//! journal space it has not reserved (a held write reserves its record, so
//! flushing it always fits).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{lock, record_bytes, Journal, State};
use crate::chunk_io::Op;
use crate::scheduler::{Completion, Rejected};
use crate::sglist::SgList;
use crate::stats::Counters;

/// How long the first write of a gather waits for the rest of its chunk.
/// The other writes of a queue-depth burst arrive within microseconds; a
/// journal hsync takes tens of milliseconds, so a gather that misses costs
/// a fraction of one.
pub(crate) const GATHER_WAIT: Duration = Duration::from_millis(10);

/// One held write.
struct Held {
    offset: u64,
    len: u64,
    sg: SgList,
    done: Completion,
}

/// The held writes of one chunk.
pub(crate) struct Gather {
    held: Vec<Held>,
    covered: u64,
    /// Journal bytes reserved for the held writes' records.
    reserved: u64,
    deadline: Instant,
}

/// The gathers of a volume, by chunk.
#[derive(Default)]
pub(crate) struct Gathers {
    by_chunk: BTreeMap<u64, Gather>,
    /// Journal bytes reserved by every gather (counted as used).
    pub(crate) reserved: u64,
    /// Where the last write submitted ended: a write starting there is
    /// sequential.
    last_end: u64,
}

impl Gathers {
    pub(crate) fn is_empty(&self) -> bool {
        self.by_chunk.is_empty()
    }

    /// The earliest deadline of a gather, if any is held.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.by_chunk.values().map(|g| g.deadline).min()
    }
}

/// What `Journal::gather` did with a write.
pub(crate) enum Gathered {
    /// Held (or launched as a whole-chunk put with the writes it completed).
    Taken(std::result::Result<(), Rejected>),
    /// Not gathered: route it as usual (any gather in its way was flushed).
    Route(SgList, Completion),
}

impl Journal {
    /// Hold a write of a sequential stream, add it to its chunk's gather, or
    /// flush gathers in its way. Called for every mutation, under no lock.
    pub(crate) fn gather(
        self: &Arc<Self>,
        op: Op,
        offset: u64,
        len: u64,
        sg: SgList,
        done: Completion,
        inflight_write_bytes: u64,
    ) -> Gathered {
        let cs = self.chunk_size;
        let (c0, c1) = (offset / cs, (offset + len - 1) / cs);
        let mut st = lock(&self.st);
        let sequential = offset == st.gathers.last_end;
        if op == Op::Write {
            st.gathers.last_end = offset + len;
        }
        let joinable = op == Op::Write && c0 == c1 && len < cs && !st.closing;
        if joinable {
            if let Some(g) = st.gathers.by_chunk.get(&c0) {
                let overlaps = g
                    .held
                    .iter()
                    .any(|h| offset < h.offset + h.len && h.offset < offset + len);
                if !overlaps {
                    return Gathered::Taken(self.hold(st, c0, offset, len, sg, done));
                }
            }
        }
        let mut flushed = false;
        if !st.gathers.is_empty() {
            for c in c0..=c1 {
                flushed |= self.flush_chunk(&mut st, c);
            }
        }
        let rec = record_bytes(op, len);
        let starts = joinable
            && cs >= self.cfg.gather_min_chunk
            && sequential
            && offset.is_multiple_of(cs)
            && inflight_write_bytes >= cs
            && !st.touched.contains_key(&c0)
            && !st.gathers.by_chunk.contains_key(&c0)
            && st.used() + rec <= self.cfg.capacity;
        if !starts {
            drop(st);
            if flushed {
                self.commit_cv.notify_one();
            }
            return Gathered::Route(sg, done);
        }
        st.gathers.by_chunk.insert(
            c0,
            Gather {
                held: Vec::new(),
                covered: 0,
                reserved: 0,
                deadline: Instant::now() + GATHER_WAIT,
            },
        );
        let r = self.hold(st, c0, offset, len, sg, done);
        // A committer wakes to time the gather out.
        self.commit_cv.notify_one();
        Gathered::Taken(r)
    }

    /// Add a write to chunk `c`'s gather; launch the chunk's put once the
    /// held writes cover it. Releases the lock.
    fn hold(
        self: &Arc<Self>,
        mut st: std::sync::MutexGuard<'_, State>,
        c: u64,
        offset: u64,
        len: u64,
        sg: SgList,
        done: Completion,
    ) -> std::result::Result<(), Rejected> {
        let rec = record_bytes(Op::Write, len);
        let cs = self.chunk_size;
        let full = {
            let gs = &mut st.gathers;
            let Some(g) = gs.by_chunk.get_mut(&c) else {
                return Err(Rejected {
                    error: crate::error::Error::Internal("a gather vanished under its lock".into()),
                    sg,
                    done,
                });
            };
            g.held.push(Held {
                offset,
                len,
                sg,
                done,
            });
            g.covered += len;
            g.reserved += rec;
            gs.reserved += rec;
            g.covered == cs
        };
        if !full {
            return Ok(());
        }
        let Some(mut g) = st.gathers.by_chunk.remove(&c) else {
            return Ok(());
        };
        st.gathers.reserved -= g.reserved;
        g.held.sort_by_key(|h| h.offset);
        // One list over the held writes' own buffers, in chunk order: they
        // cover the chunk exactly (no overlaps, total = chunk size).
        let mut segs = Vec::new();
        let mut dones = Vec::with_capacity(g.held.len());
        let mut lists = Vec::with_capacity(g.held.len());
        for h in g.held {
            segs.extend(h.sg.raw_segments());
            dones.push(h.done);
            lists.push(h.sg);
        }
        // SAFETY: every segment belongs to a held write whose caller keeps
        // it valid until that write's completion, which runs only from
        // `all` below, after the put finished with the list.
        let merged = unsafe { SgList::from_raw(segs) };
        let n = dones.len() as u64;
        let me = self.clone();
        let all: Completion = Box::new(move |r| {
            drop(lists);
            for d in dones {
                super::complete(d, r.clone(), me.counters());
            }
        });
        Counters::bump(&self.c.gathered_chunks);
        // The put counts as one write; count the others it carries.
        for _ in 1..n {
            Counters::bump(&self.counters().writes);
        }
        // A put the engine refuses completes every held write with the
        // error (the caller of this write gets Ok: its completion ran).
        if let Err(r) = self.direct_locked(st, Op::Write, c * cs, cs, merged, all) {
            super::complete(r.done, Err(r.error), self.counters());
        }
        Ok(())
    }

    /// Journal the held writes of chunk `c`, in their submission order.
    /// Whether there were any.
    pub(crate) fn flush_chunk(&self, st: &mut State, c: u64) -> bool {
        let Some(g) = st.gathers.by_chunk.remove(&c) else {
            return false;
        };
        st.gathers.reserved -= g.reserved;
        Counters::bump(&self.c.gather_misses);
        let deadline = Instant::now() + self.cfg.retry_for;
        for h in g.held {
            let payload = self.copy_payload(Op::Write, h.len, &h.sg);
            drop(h.sg);
            Counters::bump(&self.counters().writes);
            self.admit(st, Op::Write, h.offset, h.len, payload, h.done, deadline);
        }
        true
    }

    /// Journal every gather whose time is up (or all of them at close).
    /// Returns the next deadline, if a gather is still held.
    pub(crate) fn flush_expired(&self, st: &mut State, all: bool) -> Option<Instant> {
        let now = Instant::now();
        let due: Vec<u64> = st
            .gathers
            .by_chunk
            .iter()
            .filter(|(_, g)| all || g.deadline <= now)
            .map(|(&c, _)| c)
            .collect();
        for c in due {
            self.flush_chunk(st, c);
        }
        st.gathers.next_deadline()
    }
}
