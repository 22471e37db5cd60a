// SPDX-License-Identifier: Apache-2.0
//! Group commit: the committer thread that makes journal records durable.
//!
//! Owns: the active segment's open stream, taking every record queued while
//! the previous hsync was in flight into the next append + hsync (group
//! commit), rolling segments, and retrying a failed commit in a fresh
//! segment (the failed one is abandoned: its tail is in doubt) until the
//! records' deadlines. After a commit it briefly waits for the writers it
//! just completed to send their next writes (bounded by a share of the
//! commit's own time), so a full queue goes into one hsync.
//! Must never: complete a record before the hsync that covers it returned,
//! append to a segment after a failed append or hsync, or call a completion
//! while holding the journal lock.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use ozbd_backend::{AppendFile, Backend};

use super::record::{self, Kind};
use super::segment;
use super::{
    complete, lock, Journal, Pending, Seg, State, MAX_COMMIT_BYTES, RETURN_WAIT_DIVISOR,
    RETURN_WAIT_GAP, RETURN_WAIT_MAX,
};
use crate::error::{Error, Result};
use crate::retry::{is_transient_error, pause_after};

type Active<'b> = Option<(u64, Box<dyn AppendFile + 'b>)>;

/// The writers a committed batch completed, expected back with their next
/// writes: the next batch waits for them until `until`, or until none has
/// come for `RETURN_WAIT_GAP`.
struct Returning {
    /// Records queued when the batch completed, plus the writes it completed.
    target: usize,
    until: Instant,
    /// The queue's length when last seen, and since when it has had it.
    seen: usize,
    since: Instant,
}

impl Returning {
    /// Whether queued records (none queued: nothing to hold) should wait
    /// for returning writers a little longer, and if so until when at the
    /// latest.
    fn holds(&mut self, st: &State, now: Instant) -> Option<Instant> {
        let n = st.pending.len();
        if n != self.seen {
            self.seen = n;
            self.since = now;
        }
        let until = self.until.min(self.since + RETURN_WAIT_GAP);
        (n > 0
            && !st.closing
            && n < self.target
            && st.pending_bytes < MAX_COMMIT_BYTES
            && now < until)
            .then_some(until)
    }
}

impl Journal {
    /// One committer thread (there are `journal_streams` of them, each with
    /// its own segment; they take batches from one queue). With `ready`, it
    /// first reports whether its segment could be made durable (the hsync
    /// probe), then serves until close.
    pub(crate) fn commit_loop(self: Arc<Self>, ready: Option<mpsc::Sender<Result<()>>>) {
        let backend = self.backend.clone();
        let mut file: Active<'_> = None;
        let mut seen_roll = lock(&self.st).roll_gen;
        let mut returning: Option<Returning> = None;
        if let Some(ready) = ready {
            let first = self.roll(&*backend, &mut file, true);
            let failed = first.is_err();
            let _ = ready.send(first);
            if failed {
                return;
            }
        }
        loop {
            let (batch, roll) = {
                let mut st = lock(&self.st);
                loop {
                    // Held gathers time out here (no timer runs without one).
                    let next = if st.gathers.is_empty() {
                        None
                    } else {
                        let all = st.closing;
                        self.flush_expired(&mut st, all)
                    };
                    let now = Instant::now();
                    let held = returning.as_mut().and_then(|r| r.holds(&st, now));
                    if (!st.pending.is_empty() && held.is_none())
                        || (st.roll_gen != seen_roll && file.is_some())
                    {
                        break;
                    }
                    if st.closing && st.destager_done {
                        drop(st);
                        self.seal(&mut file);
                        return;
                    }
                    // Waiting for returning writers ends by their deadline too.
                    st = match next.into_iter().chain(held).min() {
                        Some(d) => {
                            let wait = d.saturating_duration_since(Instant::now());
                            self.commit_cv
                                .wait_timeout(st, wait)
                                .unwrap_or_else(|e| e.into_inner())
                                .0
                        }
                        None => self.commit_cv.wait(st).unwrap_or_else(|e| e.into_inner()),
                    };
                }
                let mut batch = Vec::new();
                let mut bytes = 0u64;
                while let Some(p) = st.pending.front() {
                    let n = record::record_len(p.hdr.payload_len as usize) as u64;
                    if !batch.is_empty() && bytes + n > MAX_COMMIT_BYTES {
                        break;
                    }
                    bytes += n;
                    if let Some(p) = st.pending.pop_front() {
                        batch.push(p);
                    }
                }
                st.pending_bytes -= bytes;
                let full = file
                    .as_ref()
                    .and_then(|(n, _)| st.segs.get(n))
                    .is_some_and(|s| s.bytes >= self.seg_target);
                let roll = st.roll_gen != seen_roll || full || file.is_none();
                seen_roll = st.roll_gen;
                (batch, roll)
            };
            if batch.is_empty() {
                if let Err(e) = self.roll(&*backend, &mut file, false) {
                    log::warn!("{}: could not start a journal segment: {e}", self.dir);
                }
                continue;
            }
            let started = Instant::now();
            let (completed, queued) = self.write_batch(&*backend, &mut file, batch, roll);
            returning = (completed > 0 && self.cfg.return_wait).then(|| {
                let wait = (started.elapsed() / RETURN_WAIT_DIVISOR).min(RETURN_WAIT_MAX);
                let now = Instant::now();
                Returning {
                    // Counted before the completions ran, so a writer that
                    // is back already counts towards the target.
                    target: queued + completed,
                    until: now + wait,
                    seen: queued,
                    since: now,
                }
            });
        }
    }

    /// Close the active segment (it stays until the destager deletes it).
    fn seal(&self, file: &mut Active<'_>) {
        if let Some((n, f)) = file.take() {
            if let Err(e) = f.close() {
                log::info!("{}: closing journal segment {n}: {e}", self.dir);
            }
            let mut st = lock(&self.st);
            if let Some(s) = st.segs.get_mut(&n) {
                s.sealed = true;
            }
        }
    }

    /// Seal the active segment and start the next one.
    fn roll<'b>(&self, backend: &'b dyn Backend, file: &mut Active<'b>, probe: bool) -> Result<()> {
        self.seal(file);
        let n = {
            let mut st = lock(&self.st);
            let n = st.next_segno;
            st.next_segno += 1;
            n
        };
        let (f, bytes) = segment::create(backend, &self.dir, n, &self.uuid, self.epoch, probe)?;
        let mut st = lock(&self.st);
        st.segs.insert(
            n,
            Seg {
                bytes,
                max_seq: 0,
                sealed: false,
            },
        );
        st.seg_bytes += bytes;
        drop(st);
        *file = Some((n, f));
        Ok(())
    }

    /// Append and hsync one group of records, retrying in a new segment on
    /// transient failures; then complete them all. Returns how many user
    /// writes it completed successfully, and how many records were queued
    /// just before the completions ran.
    fn write_batch<'b>(
        &self,
        backend: &'b dyn Backend,
        file: &mut Active<'b>,
        batch: Vec<Pending>,
        mut roll: bool,
    ) -> (usize, usize) {
        let mut buf = Vec::with_capacity(
            batch
                .iter()
                .map(|p| record::record_len(p.hdr.payload_len as usize))
                .sum(),
        );
        for p in &batch {
            let payload = p.payload.as_ref().map_or(&[][..], |d| d.bytes());
            record::encode(&mut buf, &p.hdr, payload);
        }
        let max_seq = batch.iter().map(|p| p.hdr.seq).max().unwrap_or(0);
        let deadline = batch
            .iter()
            .map(|p| p.deadline)
            .min()
            .unwrap_or_else(Instant::now);
        let mut failures = 0u32;
        let result = loop {
            let attempt = (|| -> Result<u64> {
                if roll || file.is_none() {
                    self.roll(backend, file, false)?;
                    roll = false;
                }
                let Some((n, f)) = file.as_mut() else {
                    return Err(Error::Internal("no journal segment open".into()));
                };
                f.append(&buf)?;
                f.hsync()?;
                Ok(*n)
            })();
            match attempt {
                Ok(n) => {
                    let mut st = lock(&self.st);
                    if let Some(s) = st.segs.get_mut(&n) {
                        s.bytes += buf.len() as u64;
                        s.max_seq = s.max_seq.max(max_seq);
                    }
                    st.seg_bytes += buf.len() as u64;
                    break Ok(());
                }
                Err(e) => {
                    // The failed segment's tail is in doubt: abandon it (it
                    // is kept, sealed, and replay cuts a torn tail).
                    if let Some((n, f)) = file.take() {
                        drop(f);
                        let mut st = lock(&self.st);
                        if let Some(s) = st.segs.get_mut(&n) {
                            s.sealed = true;
                            s.bytes += buf.len() as u64;
                            s.max_seq = s.max_seq.max(max_seq);
                        }
                        st.seg_bytes += buf.len() as u64;
                    }
                    failures += 1;
                    let pause = pause_after(failures);
                    if is_transient_error(&e) && Instant::now() + pause < deadline {
                        log::warn!(
                            "{}: journal commit failed ({e}); retrying in a new segment in {} ms",
                            self.dir,
                            pause.as_millis()
                        );
                        std::thread::sleep(pause);
                        roll = true;
                        continue;
                    }
                    log::error!("{}: journal commit failed: {e}", self.dir);
                    break Err(e);
                }
            }
        };
        if result.is_ok() {
            self.c
                .hsyncs
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.c
                .records
                .fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        // Durable now, or failed for good: a failed write's range is
        // undefined, and its data may still reach the chunk (so the
        // watermark and the journal's space can move on).
        let queued = {
            let mut st = lock(&self.st);
            for p in &batch {
                st.undurable.remove(&p.hdr.seq);
            }
            st.pending.len()
        };
        self.destage_cv.notify_all();
        let mut users = 0;
        for mut p in batch {
            let Some(done) = p.done.take() else { continue };
            match p.hdr.kind {
                Kind::Write | Kind::Zeroes => {
                    users += 1;
                    self.finish_user(done, result.clone(), p.user_bytes)
                }
                _ => complete(done, result.clone(), self.counters()),
            }
        }
        (if result.is_ok() { users } else { 0 }, queued)
    }
}
