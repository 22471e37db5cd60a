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
//! invalidated; reads fill the cache only while the version has not moved),
//! and checking every byte read from a chunk against the chunk's checksum
//! trailer (sums.rs) before anyone sees it, sealing every chunk put with one;
//! putting chunks with `put_in_dir` (no directory created, so the backend
//! fences the put itself and no marker check follows it);
//! the volume's size (one atomic, read by every request) and the rest of its
//! superblock as last written, and growing the chunk maps when the volume
//! grows. A chunk is sealed at the length its index has when it is written,
//! so after a resize the chunk at the old or new end may be stored longer or
//! shorter than its index is now: its data length then comes from the file's
//! length and a trailer that verifies at that length; past its data it reads
//! as zeros, past the volume's end it is never read.
//! Must never: return or cache bytes that failed (or skipped) verification
//! on a volume with checksums, retry or sleep (one attempt per call; the scheduler decides
//! whether and when to try again; the one exception: a chunk put into a
//! missing chunk directory, tried again once after making it), commit an update that mixes old and new
//! data (every update is one atomic backend `put` or `delete`, so repeating it
//! is idempotent), or trust the map after a failed commit without asking the
//! backend.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use ozbd_backend::{join, BackendError, BackendRef};

use crate::cache::{Cache, PAGE};
use crate::error::{Error, Result};
use crate::handles::HandlePool;
use crate::sglist::SgList;
use crate::stats::Counters;
use crate::sum_cache::{Stored, SumCache};
use crate::sums::{data_len_for_file, trailer_len, Summer, UNIT};
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

/// A bitmap over the volume's chunks. It only grows (a shrink leaves the
/// bits past the new end clear: nothing is stored there), so every chunk
/// index a request of any earlier size named stays valid; a bit past the end
/// reads as clear.
struct Bitmap(RwLock<Vec<AtomicU64>>);

impl Bitmap {
    fn new(bits: u64) -> Self {
        Bitmap(RwLock::new(
            (0..bits.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
        ))
    }
    fn words(&self) -> std::sync::RwLockReadGuard<'_, Vec<AtomicU64>> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }
    fn get(&self, c: u64) -> bool {
        self.words()
            .get((c / 64) as usize)
            .is_some_and(|w| w.load(Ordering::Acquire) & (1 << (c % 64)) != 0)
    }
    /// Set or clear; returns the old value. A bit past the end stays clear.
    fn set(&self, c: u64, yes: bool) -> bool {
        let words = self.words();
        let Some(w) = words.get((c / 64) as usize) else {
            if yes {
                log::error!("chunk {c} lies past the end of the chunk map: not recorded");
            }
            return false;
        };
        let bit = 1 << (c % 64);
        let old = if yes {
            w.fetch_or(bit, Ordering::AcqRel)
        } else {
            w.fetch_and(!bit, Ordering::AcqRel)
        };
        old & bit != 0
    }
    /// Room for `bits` bits (the new ones clear).
    fn grow(&self, bits: u64) {
        let mut words = self.0.write().unwrap_or_else(|e| e.into_inner());
        let want = bits.div_ceil(64) as usize;
        while words.len() < want {
            words.push(AtomicU64::new(0));
        }
    }
    fn count(&self) -> u64 {
        self.words()
            .iter()
            .map(|w| w.load(Ordering::Relaxed).count_ones() as u64)
            .sum()
    }
    fn ones(&self) -> Vec<u64> {
        let mut out = Vec::new();
        for (i, w) in self.words().iter().enumerate() {
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
    /// The volume's size: the one place it is kept while the volume is open
    /// (`resize` changes it; every request is checked against it).
    size: AtomicU64,
    /// The superblock as last written, but for `size` (see `superblock`).
    record: Mutex<Superblock>,
    /// Fixed for the life of a volume: copied out of the superblock so the
    /// I/O path takes no lock for them.
    pub(crate) chunk_size: u64,
    block_size: u32,
    pub(crate) checksums: bool,
    pub(crate) chunk_dir: String,
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
    /// The volume's checksum rules, and the trailers of recently read chunks.
    summer: Summer,
    sums: SumCache,
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
            chunk_dir: join(dir, CHUNK_DIR),
            present: map,
            unsure: Bitmap::new(n),
            marks: ChunkMarks::new(),
            cache: Cache::new(cache_bytes),
            summer: Summer::new(&sb.uuid),
            sums: SumCache::new(),
            size: AtomicU64::new(sb.size),
            chunk_size: sb.chunk_size,
            block_size: sb.block_size,
            checksums: sb.checksums,
            record: Mutex::new(sb),
        }
    }

    /// The volume's size now.
    pub(crate) fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// The volume's superblock as it is now (the size of this instant).
    pub(crate) fn superblock(&self) -> Superblock {
        let mut sb = self
            .record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        sb.size = self.size();
        sb
    }

    /// The superblock was written as `sb`: keep its fields (all but the
    /// size, which `set_size` publishes).
    pub(crate) fn set_record(&self, sb: &Superblock) {
        *self.record.lock().unwrap_or_else(|e| e.into_inner()) = sb.clone();
    }

    /// Make room in the chunk maps for a volume of `size` bytes, then
    /// publish `size`: requests up to it are accepted from now on. Shrinking
    /// keeps the maps (nothing is stored past the new end).
    pub(crate) fn set_size(&self, size: u64) {
        let count = size.div_ceil(self.chunk_size);
        self.present.grow(count);
        self.unsure.grow(count);
        self.size.store(size, Ordering::Release);
    }

    /// Length of chunk `c` at the current size (0 past the end).
    pub(crate) fn chunk_len(&self, c: u64) -> u64 {
        let start = c.saturating_mul(self.chunk_size);
        self.chunk_size.min(self.size().saturating_sub(start))
    }

    /// Forget what is cached of chunk `c` (its data, its trailer) and move
    /// its version: after a resize changed its length.
    pub(crate) fn forget(&self, c: u64) {
        self.changed(c, 0, self.chunk_size as usize);
        self.sums.remove(c);
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

    /// Read from `pos` of chunk `c` into `buf` through a pooled handle;
    /// the count read is short only at the end of the file.
    fn read_range(
        &self,
        c: u64,
        path: &str,
        pos: usize,
        buf: &mut [u8],
    ) -> std::result::Result<usize, BackendError> {
        let mut at = 0;
        while at < buf.len() {
            match self
                .handles
                .read_at(c, path, &self.marks, (pos + at) as u64, &mut buf[at..])?
            {
                0 => break,
                n => at += n,
            }
        }
        Ok(at)
    }

    /// What chunk `c` carries after its data, at its current version: from
    /// the trailer cache, else read (and checked) through a pooled handle.
    fn stored(&self, c: u64, path: &str, counters: &Counters) -> Result<Stored> {
        let version = self.marks.version(c);
        if let Some(s) = self.sums.get(c, version) {
            return Ok(s);
        }
        let clen = self.chunk_len(c) as usize;
        if clen == 0 {
            // Past the end (a piece admitted before a shrink): nothing is read.
            return Ok(Stored::NoTrailer);
        }
        // From the chunk's last data byte, so a file shorter than the chunk
        // shows (n == 0), and one byte more than the trailer: a longer file
        // is damage too.
        let mut t = vec![0u8; trailer_len(clen) + 2];
        let n = self.read_range(c, path, clen - 1, &mut t)?;
        let s = match n {
            // Shorter than the chunk: written before a resize, or damaged.
            0 => match self.sealed_at_other_length(c, path, clen)? {
                Some(s) => s,
                // Without checksums, the read says "truncated".
                None if !self.checksums => Stored::NoTrailer,
                None => {
                    let why = "the file is shorter than the chunk's data: it was truncated";
                    return Err(self.corrupt(c, path, why, counters));
                }
            },
            1 if !self.checksums => Stored::NoTrailer,
            _ => match self.summer.decode(c, clen, &t[1..n]) {
                Ok(sums) => Stored::Sums(Arc::new(sums), clen),
                Err(why) => match self.sealed_at_other_length(c, path, clen)? {
                    Some(s) => s,
                    None => return Err(self.corrupt(c, path, &why, counters)),
                },
            },
        };
        self.sums.insert(c, version, s.clone());
        Ok(s)
    }

    /// Chunk `c` has no valid trailer at its length now (`clen`): it may be
    /// the chunk at the volume's end, written before a resize at the length
    /// it had then. The file's length says where its trailer would be; the
    /// chunk is taken at that length only if the trailer there verifies
    /// (seeded by volume and chunk, like any other) and the length is one a
    /// chunk can have. None: it is damaged after all.
    fn sealed_at_other_length(
        &self,
        c: u64,
        path: &str,
        clen: usize,
    ) -> std::result::Result<Option<Stored>, BackendError> {
        let Some(info) = self.backend.stat(path)? else {
            return Err(BackendError::NotFound {
                path: path.to_string(),
            });
        };
        let Some(dlen) = data_len_for_file(info.len as usize).filter(|&d| {
            d != clen && d as u64 <= self.chunk_size && d.is_multiple_of(self.block_size as usize)
        }) else {
            return Ok(None);
        };
        let mut t = vec![0u8; trailer_len(dlen) + 1];
        let n = self.read_range(c, path, dlen, &mut t)?;
        Ok(self
            .summer
            .decode(c, dlen, &t[..n])
            .ok()
            .map(|sums| Stored::Sums(Arc::new(sums), dlen)))
    }

    /// The error (and log line) for damage found in chunk `c`.
    fn corrupt(&self, c: u64, path: &str, why: &str, counters: &Counters) -> Error {
        Counters::bump(&counters.checksum_errors);
        let msg = format!(
            "{path} (chunk {c}, volume bytes from {}): {why}. The read fails with an I/O error rather than return wrong data; `ozbd fsck` reports every damaged chunk",
            c * self.chunk_size
        );
        log::error!("{msg}");
        Error::Corrupt(msg)
    }

    /// Read [off, off + buf.len()) of chunk `c`, zero-filling past its end,
    /// and verify it. A chunk the backend does not have reads as zeros, and
    /// the map learns it. Through a pooled handle (an open stream of the
    /// chunk's current version).
    fn load(&self, c: u64, off: usize, buf: &mut [u8], counters: &Counters) -> Result<()> {
        Counters::bump(&counters.chunk_reads);
        let path = self.path(c);
        match self.load_verified(c, &path, off, buf, counters) {
            Err(Error::Backend(BackendError::NotFound { .. })) => {
                if self.present.get(c) && !self.unsure.get(c) {
                    log::warn!(
                        "{path} is missing but the volume had it: is another writer using this volume? Reading it as zeros"
                    );
                }
                self.learn(c, false, counters);
                buf.fill(0);
                Ok(())
            }
            Err(e) => Err(e),
            Ok(()) => {
                if self.unsure.get(c) {
                    self.learn(c, true, counters);
                }
                Ok(())
            }
        }
    }

    fn load_verified(
        &self,
        c: u64,
        path: &str,
        off: usize,
        buf: &mut [u8],
        counters: &Counters,
    ) -> Result<()> {
        let clen = self.chunk_len(c) as usize;
        let stored = self.stored(c, path, counters)?;
        // The bytes the file holds: its data length, which differs from the
        // chunk's length now only for the chunk at the end after a resize
        // (past its data the chunk reads as zeros).
        let dlen = match &stored {
            Stored::Sums(_, d) => *d,
            Stored::NoTrailer => clen,
        };
        let end = (off + buf.len()).min(clen).min(dlen);
        if off < end {
            let short = |got: usize, want: usize| {
                self.corrupt(
                    c,
                    path,
                    &format!("the file ends {got} bytes into a read of {want} bytes from chunk offset {off}: it was truncated"),
                    counters,
                )
            };
            match stored {
                Stored::NoTrailer => {
                    let got = self.read_range(c, path, off, &mut buf[..end - off])?;
                    if got < end - off {
                        return Err(short(got, end - off));
                    }
                }
                Stored::Sums(sums, _) => {
                    // Whole units are read and verified; into the caller's
                    // buffer when the range is unit-aligned, else through one
                    // bounce buffer.
                    let ua = off / UNIT * UNIT;
                    let ub = end.div_ceil(UNIT).saturating_mul(UNIT).min(dlen);
                    let check = |span: &mut [u8]| -> Result<()> {
                        let got = self.read_range(c, path, ua, span)?;
                        if got < span.len() {
                            return Err(short(got, span.len()));
                        }
                        self.summer.verify(c, &sums, ua / UNIT, span).map_err(|bad| {
                            let lo = bad.0 * UNIT;
                            self.corrupt(
                                c,
                                path,
                                &format!(
                                    "bytes {lo}..{} of the chunk do not match their checksum: the chunk was changed behind bdev_ozone's back or is damaged",
                                    (lo + UNIT).min(dlen)
                                ),
                                counters,
                            )
                        })
                    };
                    if ua == off && ub == end {
                        check(&mut buf[..end - off])?;
                    } else {
                        let mut bounce = vec![0u8; ub - ua];
                        check(&mut bounce)?;
                        buf[..end - off].copy_from_slice(&bounce[off - ua..end - ua]);
                    }
                }
            }
        }
        buf[end.saturating_sub(off)..].fill(0);
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
        let clen = self.chunk_len(c) as usize;
        // A piece reaching past the chunk's end now (admitted before a
        // shrink) skips the cache: `load` reads what lies inside the volume
        // and zeros past it.
        let cache = self.cache.as_ref().filter(|_| p.off + p.len <= clen);
        let Some(cache) = cache else {
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
        let start = p.off / PAGE * PAGE;
        let end = (p.off + p.len)
            .div_ceil(PAGE)
            .saturating_mul(PAGE)
            .min(clen);
        let version = self.marks.version(c);
        let mut buf = vec![0u8; end - start];
        match self.load(c, start, &mut buf, counters) {
            Ok(()) => {}
            // Damage near the piece but outside it must not fail it: read
            // just the piece's units (nothing is cached).
            Err(Error::Corrupt(_)) if (start, end) != (p.off, p.off + p.len) => {
                let mut own = vec![0u8; p.len];
                self.load(c, p.off, &mut own, counters)?;
                p.sg.copy_in(p.sg_off, &own);
                return Ok(());
            }
            Err(e) => return Err(e),
        }
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
        let clen = self.chunk_len(c) as usize;
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
        let clen = self.chunk_len(c) as usize;
        if let Some(p) = batch.iter().find(|p| p.off + p.len > clen) {
            // Admitted before a shrink that the resize's drain should have
            // waited for: never cut a chunk short of a write.
            return Err(Error::InvalidArgument(format!(
                "chunk {c}: bytes {}..{} lie past the volume's end ({} bytes): the volume was shrunk",
                p.off,
                p.off + p.len,
                self.size()
            )));
        }
        let mut state = State::Unknown;
        for p in batch {
            let whole = p.off == 0 && p.len == clen;
            let zeroing = p.op != Op::Write;
            if whole {
                state = if zeroing {
                    State::Zero
                } else {
                    let mut v = chunk_buf(clen);
                    p.sg.copy_out(p.sg_off, &mut v);
                    State::Data(v)
                };
                continue;
            }
            if let State::Unknown = state {
                state = if self.may_hold_data(c) {
                    Counters::bump(&counters.rmw);
                    let mut v = chunk_buf(clen);
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
                    let mut v = chunk_buf(clen);
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
            State::Data(mut v) if v.iter().any(|&b| b != 0) => {
                Counters::bump(&counters.chunk_puts);
                let sums = self.summer.seal(c, &mut v);
                let r = self.put_chunk(&path, &v);
                self.changed(c, lo, hi);
                if let Err(e) = r {
                    self.after_failed_update(c, counters);
                    return Err(e.into());
                }
                self.learn_quietly(c, true);
                // Reads are ordered after this update: the new version's
                // trailer is known without reading it back.
                self.sums
                    .insert(c, self.marks.version(c), Stored::Sums(Arc::new(sums), clen));
            }
            _ => {
                if self.may_hold_data(c) {
                    Counters::bump(&counters.chunk_deletes);
                    let r = self.backend.delete(&path, false);
                    self.changed(c, lo, hi);
                    self.sums.remove(c);
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

    /// Put a chunk into its directory without creating the directory: the
    /// backend then fences the put itself (it commits only while the epoch
    /// root's path resolves), so no marker check follows it. A missing
    /// directory (removed by hand while this holder still owns the volume:
    /// a fenced holder gets `Fenced` here, not NotFound) is made again, and
    /// the put retried once.
    fn put_chunk(&self, path: &str, data: &[u8]) -> ozbd_backend::Result<()> {
        match self.backend.put_in_dir(path, data) {
            Err(BackendError::NotFound { .. }) => {
                log::warn!(
                    "{}: the chunk directory is missing: making it again",
                    self.chunk_dir
                );
                self.backend.mkdirs(&self.chunk_dir)?;
                self.backend.put_in_dir(path, data).map(|_| ())
            }
            r => r.map(|_| ()),
        }
    }

    /// Record the outcome of an update the backend confirmed.
    fn learn_quietly(&self, c: u64, stored: bool) {
        self.unsure.set(c, false);
        self.present.set(c, stored);
    }
}

/// A zeroed buffer for a chunk's data, with room for its trailer (sealing it
/// for the put then needs no copy).
fn chunk_buf(clen: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(clen + trailer_len(clen));
    v.resize(clen, 0);
    v
}
