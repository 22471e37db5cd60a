// SPDX-License-Identifier: Apache-2.0
//! Chunk I/O: reading, rewriting and deleting one chunk file, and the map of
//! which chunks are stored.
//!
//! Owns: the present-chunk map and its self-healing (a chunk whose last update
//! failed ambiguously is "unsure" until the backend says whether it exists),
//! loading a chunk range, applying a batch of mutations of one chunk as one
//! atomic update (read-modify-write of partial chunks, whole-chunk writes
//! without a load, deletes for chunks that become all zeros), and keeping the
//! read cache and open read handles coherent with those updates (after every
//! put or delete attempt the chunk's version moves and the cached range is
//! invalidated; reads fill the cache only while the version has not moved).
//! Must never: retry or sleep (one attempt per call; the scheduler decides
//! whether and when to try again), commit an update that mixes old and new
//! data (every update is one atomic backend `put` or `delete`, so repeating it
//! is idempotent), or trust the map after a failed commit without asking the
//! backend.

use std::sync::atomic::{AtomicU64, Ordering};

use ozbd_backend::{join, BackendError, BackendRef};

use crate::cache::{Cache, PAGE};
use crate::error::Result;
use crate::handles::HandlePool;
use crate::sglist::SgList;
use crate::stats::Counters;
use crate::superblock::{chunk_name, Superblock, CHUNK_DIR};
use crate::versions::ChunkMarks;

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

/// One request's part inside one chunk, as chunk I/O sees it.
pub(crate) struct PieceRef<'a> {
    pub(crate) op: Op,
    pub(crate) sg: &'a SgList,
    /// Byte range within the chunk.
    pub(crate) off: usize,
    pub(crate) len: usize,
    /// Where the piece's data sits in the request's scatter-gather list.
    pub(crate) sg_off: usize,
}

/// A bitmap over the volume's chunks.
struct Bitmap(Vec<AtomicU64>);

impl Bitmap {
    fn new(bits: u64) -> Self {
        Bitmap((0..bits.div_ceil(64)).map(|_| AtomicU64::new(0)).collect())
    }
    fn get(&self, c: u64) -> bool {
        self.0[(c / 64) as usize].load(Ordering::Acquire) & (1 << (c % 64)) != 0
    }
    /// Set or clear; returns the old value.
    fn set(&self, c: u64, yes: bool) -> bool {
        let w = &self.0[(c / 64) as usize];
        let bit = 1 << (c % 64);
        let old = if yes {
            w.fetch_or(bit, Ordering::AcqRel)
        } else {
            w.fetch_and(!bit, Ordering::AcqRel)
        };
        old & bit != 0
    }
    fn count(&self) -> u64 {
        self.0
            .iter()
            .map(|w| w.load(Ordering::Relaxed).count_ones() as u64)
            .sum()
    }
    fn ones(&self) -> Vec<u64> {
        let mut out = Vec::new();
        for (i, w) in self.0.iter().enumerate() {
            let mut bits = w.load(Ordering::Acquire);
            while bits != 0 {
                out.push(i as u64 * 64 + bits.trailing_zeros() as u64);
                bits &= bits - 1;
            }
        }
        out
    }
}

pub(crate) struct ChunkIo {
    pub(crate) backend: BackendRef,
    pub(crate) sb: Superblock,
    chunk_dir: String,
    /// Chunks known to be stored.
    present: Bitmap,
    /// Chunks whose last update failed in a way that may or may not have
    /// reached the backend: ask the backend before trusting `present`.
    unsure: Bitmap,
    /// Versions and pending mutations per chunk (cache and handle coherence).
    pub(crate) marks: ChunkMarks,
    /// The read cache (None: `cache_mb` 0).
    pub(crate) cache: Option<Cache>,
    /// Open read handles, shared by every thread that reads chunks.
    pub(crate) handles: HandlePool,
}

impl ChunkIo {
    pub(crate) fn new(
        backend: BackendRef,
        sb: Superblock,
        dir: &str,
        present: &[u64],
        cache_bytes: u64,
    ) -> Self {
        let n = sb.chunk_count();
        let map = Bitmap::new(n);
        for &c in present {
            map.set(c, true);
        }
        ChunkIo {
            handles: HandlePool::new(backend.clone()),
            backend,
            sb,
            chunk_dir: join(dir, CHUNK_DIR),
            present: map,
            unsure: Bitmap::new(n),
            marks: ChunkMarks::new(),
            cache: Cache::new(cache_bytes),
        }
    }

    fn path(&self, c: u64) -> String {
        join(&self.chunk_dir, &chunk_name(c))
    }

    /// Whether chunk `c` may hold data (stored, or unsure).
    pub(crate) fn may_hold_data(&self, c: u64) -> bool {
        self.present.get(c) || self.unsure.get(c)
    }

    /// Chunks that may hold data; every other chunk reads as zeros.
    pub(crate) fn allocated(&self) -> Vec<u64> {
        let mut v = self.present.ones();
        v.extend(self.unsure.ones());
        v.sort_unstable();
        v.dedup();
        v
    }

    pub(crate) fn allocated_count(&self) -> u64 {
        self.present.count()
    }

    /// Record what the backend said about chunk `c`.
    fn learn(&self, c: u64, stored: bool, counters: &Counters) {
        let was_unsure = self.unsure.set(c, false);
        let was = self.present.set(c, stored);
        if was_unsure || was != stored {
            if was != stored {
                log::warn!(
                    "{}: the map of stored chunks said {was}, the backend says {stored}: corrected",
                    self.path(c)
                );
            }
            Counters::bump(&counters.healed);
        }
    }

    /// After an update of `c` failed: the update may or may not have reached
    /// the backend. Ask once; if that fails too, keep `c` unsure so the next
    /// access asks again.
    fn after_failed_update(&self, c: u64, counters: &Counters) {
        self.unsure.set(c, true);
        match self.backend.stat(&self.path(c)) {
            Ok(info) => self.learn(c, info.is_some(), counters),
            Err(e) => log::warn!(
                "{}: cannot tell whether a failed update was applied ({e}); asking again at the next access",
                self.path(c)
            ),
        }
    }

    /// Read [off, off + buf.len()) of chunk `c`, zero-filling past its end.
    /// A chunk the backend does not have reads as zeros, and the map learns it.
    /// Through a pooled handle (an open stream of the chunk's current version).
    fn load(&self, c: u64, off: usize, buf: &mut [u8], counters: &Counters) -> Result<()> {
        Counters::bump(&counters.chunk_reads);
        let path = self.path(c);
        let mut at = 0;
        while at < buf.len() {
            let pos = (off + at) as u64;
            match self
                .handles
                .read_at(c, &path, &self.marks, pos, &mut buf[at..])
            {
                Ok(0) => break,
                Ok(n) => at += n,
                Err(BackendError::NotFound { .. }) => {
                    if self.present.get(c) && !self.unsure.get(c) {
                        log::warn!(
                            "{path} is missing but the volume had it: is another writer using this volume? Reading it as zeros"
                        );
                    }
                    self.learn(c, false, counters);
                    buf.fill(0);
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            }
        }
        buf[at..].fill(0);
        if self.unsure.get(c) {
            self.learn(c, true, counters);
        }
        Ok(())
    }

    /// Serve one read piece: zeros for an absent chunk; from the cache; else
    /// from the backend through the worker's open handle (straight into the
    /// caller's buffer when there is no cache and it is contiguous).
    pub(crate) fn read(&self, c: u64, p: &PieceRef<'_>, counters: &Counters) -> Result<()> {
        if !self.may_hold_data(c) {
            p.sg.zero(p.sg_off, p.len);
            return Ok(());
        }
        let Some(cache) = &self.cache else {
            let direct =
                p.sg.with_contiguous(p.sg_off, p.len, |dst| self.load(c, p.off, dst, counters));
            return match direct {
                Some(r) => r,
                None => {
                    let mut buf = vec![0u8; p.len];
                    self.load(c, p.off, &mut buf, counters)?;
                    p.sg.copy_in(p.sg_off, &buf);
                    Ok(())
                }
            };
        };
        if cache.copy_out(c, p.off, p.len, |b, at| p.sg.copy_in(p.sg_off + at, b)) {
            Counters::bump(&cache.hits);
            return Ok(());
        }
        Counters::bump(&cache.misses);
        let clen = self.sb.chunk_len(c) as usize;
        let start = p.off / PAGE * PAGE;
        let end = (p.off + p.len)
            .div_ceil(PAGE)
            .saturating_mul(PAGE)
            .min(clen);
        let version = self.marks.version(c);
        let mut buf = vec![0u8; end - start];
        self.load(c, start, &mut buf, counters)?;
        p.sg.copy_in(p.sg_off, &buf[p.off - start..p.off - start + p.len]);
        cache.insert_span(c, start, buf, || self.marks.version(c) == version);
        Ok(())
    }

    /// Serve [off, off + len) of chunk `c` into list bytes from `sg_off`
    /// without a backend call, or return false: only while no mutation of the
    /// chunk is pending, from zeros (absent chunk) or the cache.
    pub(crate) fn read_without_io(
        &self,
        c: u64,
        off: usize,
        len: usize,
        sg: &crate::sglist::SgList,
        sg_off: usize,
    ) -> bool {
        if self.marks.mutation_pending(c) {
            return false;
        }
        if !self.may_hold_data(c) {
            sg.zero(sg_off, len);
            return true;
        }
        match &self.cache {
            Some(cache) => cache.copy_out(c, off, len, |b, at| sg.copy_in(sg_off + at, b)),
            None => false,
        }
    }

    /// Read ahead: bring [off, off + len) of chunk `c` into the cache unless
    /// it is there, absent, or about to change.
    pub(crate) fn prefetch(
        &self,
        c: u64,
        off: usize,
        len: usize,
        counters: &Counters,
    ) -> Result<()> {
        let Some(cache) = &self.cache else {
            return Ok(());
        };
        let clen = self.sb.chunk_len(c) as usize;
        let start = off / PAGE * PAGE;
        let end = (off + len).div_ceil(PAGE).saturating_mul(PAGE).min(clen);
        if start >= end
            || !self.may_hold_data(c)
            || self.marks.mutation_pending(c)
            || cache.contains(c, start, end - start)
        {
            return Ok(());
        }
        let version = self.marks.version(c);
        let mut buf = vec![0u8; end - start];
        self.load(c, start, &mut buf, counters)?;
        cache.insert_span(c, start, buf, || self.marks.version(c) == version);
        Counters::bump(&cache.readahead);
        Ok(())
    }

    /// The chunk's content may have changed in [lo, hi): move its version
    /// (open handles reopen, fills in flight are dropped), then drop the
    /// cached range.
    fn changed(&self, c: u64, lo: usize, hi: usize) {
        self.marks.bump(c);
        if let Some(cache) = &self.cache {
            cache.invalidate(c, lo, hi - lo);
        }
    }

    /// Apply a batch of mutations of chunk `c` and commit them as one atomic update.
    pub(crate) fn mutate(&self, c: u64, batch: &[PieceRef<'_>], counters: &Counters) -> Result<()> {
        enum State {
            Unknown,
            Zero,
            Data(Vec<u8>),
        }
        let clen = self.sb.chunk_len(c) as usize;
        let mut state = State::Unknown;
        for p in batch {
            let whole = p.off == 0 && p.len == clen;
            let zeroing = p.op != Op::Write;
            if whole {
                state = if zeroing {
                    State::Zero
                } else {
                    let mut v = vec![0u8; clen];
                    p.sg.copy_out(p.sg_off, &mut v);
                    State::Data(v)
                };
                continue;
            }
            if let State::Unknown = state {
                state = if self.may_hold_data(c) {
                    Counters::bump(&counters.rmw);
                    let mut v = vec![0u8; clen];
                    self.load(c, 0, &mut v, counters)?;
                    State::Data(v)
                } else {
                    State::Zero
                };
            }
            match &mut state {
                State::Zero if zeroing => {}
                State::Data(v) if zeroing => v[p.off..p.off + p.len].fill(0),
                State::Zero | State::Unknown => {
                    let mut v = vec![0u8; clen];
                    p.sg.copy_out(p.sg_off, &mut v[p.off..p.off + p.len]);
                    state = State::Data(v);
                }
                State::Data(v) => p.sg.copy_out(p.sg_off, &mut v[p.off..p.off + p.len]),
            }
        }
        if batch.len() > 1 {
            counters
                .merged
                .fetch_add(batch.len() as u64 - 1, Ordering::Relaxed);
        }
        let path = self.path(c);
        let lo = batch.iter().map(|p| p.off).min().unwrap_or(0);
        let hi = batch.iter().map(|p| p.off + p.len).max().unwrap_or(0);
        match state {
            State::Data(v) if v.iter().any(|&b| b != 0) => {
                Counters::bump(&counters.chunk_puts);
                let r = self.backend.put(&path, &v);
                self.changed(c, lo, hi);
                if let Err(e) = r {
                    self.after_failed_update(c, counters);
                    return Err(e.into());
                }
                self.learn_quietly(c, true);
            }
            _ => {
                if self.may_hold_data(c) {
                    Counters::bump(&counters.chunk_deletes);
                    let r = self.backend.delete(&path, false);
                    self.changed(c, lo, hi);
                    if let Err(e) = r {
                        self.after_failed_update(c, counters);
                        return Err(e.into());
                    }
                    self.learn_quietly(c, false);
                }
            }
        }
        Ok(())
    }

    /// Record the outcome of an update the backend confirmed.
    fn learn_quietly(&self, c: u64, stored: bool) {
        self.unsure.set(c, false);
        self.present.set(c, stored);
    }
}
