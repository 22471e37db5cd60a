// SPDX-License-Identifier: Apache-2.0
//! The dirty map: journaled data not yet destaged to its chunks.
//!
//! Owns: a map of non-overlapping extents (volume byte ranges, never crossing
//! a chunk boundary) to their newest journaled content (bytes shared with the
//! journal record, or zeros), with the sequence number of the record each
//! came from; newest-wins insertion, punching a range out, snapshots for reads
//! and for the destager, removal of what the destager applied, and the lowest
//! sequence number still held (the journal's applied watermark).
//! Must never: copy record data (extents share it), or keep an extent whose
//! record is older than a later write to the same bytes.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::sglist::SgList;

/// The data of one journal record, shared by every extent cut from it. The
/// bytes it holds count toward the journal's dirty memory until it drops.
pub(crate) struct Payload {
    bytes: Vec<u8>,
    gauge: Arc<AtomicU64>,
}

impl Payload {
    pub(crate) fn new(bytes: Vec<u8>, gauge: &Arc<AtomicU64>) -> Arc<Payload> {
        gauge.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Arc::new(Payload {
            bytes,
            gauge: gauge.clone(),
        })
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Payload {
    fn drop(&mut self) {
        self.gauge
            .fetch_sub(self.bytes.len() as u64, Ordering::Relaxed);
    }
}

/// What an extent reads as.
#[derive(Clone)]
pub(crate) enum Src {
    Zero,
    /// Bytes of a payload, starting at the given offset in it.
    Data(Arc<Payload>, usize),
}

impl Src {
    /// The same source advanced by `n` bytes.
    fn advance(&self, n: u64) -> Src {
        match self {
            Src::Zero => Src::Zero,
            Src::Data(p, at) => Src::Data(p.clone(), at + n as usize),
        }
    }
}

#[derive(Clone)]
pub(crate) struct Extent {
    /// Exclusive end (volume byte offset).
    pub(crate) end: u64,
    pub(crate) seq: u64,
    pub(crate) src: Src,
}

/// One extent of a snapshot, clipped to the range asked for.
#[derive(Clone)]
pub(crate) struct Piece {
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) seq: u64,
    pub(crate) src: Src,
}

impl Piece {
    /// Copy this piece into `sg`, whose byte 0 is volume offset `base`.
    pub(crate) fn copy_into(&self, sg: &SgList, base: u64) {
        let at = (self.start - base) as usize;
        let n = (self.end - self.start) as usize;
        match &self.src {
            Src::Zero => sg.zero(at, n),
            Src::Data(p, off) => sg.copy_in(at, &p.bytes()[*off..*off + n]),
        }
    }

    pub(crate) fn len(&self) -> u64 {
        self.end - self.start
    }
}

#[derive(Default)]
pub(crate) struct DirtyMap {
    /// start → extent; extents never overlap and never cross a chunk boundary.
    map: BTreeMap<u64, Extent>,
    /// How many extents hold each sequence number (for the watermark).
    seqs: BTreeMap<u64, usize>,
    chunk_size: u64,
    /// Bytes covered by extents.
    covered: u64,
}

impl DirtyMap {
    pub(crate) fn new(chunk_size: u64) -> DirtyMap {
        DirtyMap {
            chunk_size,
            ..DirtyMap::default()
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub(crate) fn covered_bytes(&self) -> u64 {
        self.covered
    }

    /// The lowest sequence number any extent holds.
    pub(crate) fn min_seq(&self) -> Option<u64> {
        self.seqs.keys().next().copied()
    }

    fn add(&mut self, start: u64, e: Extent) {
        *self.seqs.entry(e.seq).or_default() += 1;
        self.covered += e.end - start;
        self.map.insert(start, e);
    }

    fn del(&mut self, start: u64) -> Option<Extent> {
        let e = self.map.remove(&start)?;
        if let Some(n) = self.seqs.get_mut(&e.seq) {
            *n -= 1;
            if *n == 0 {
                self.seqs.remove(&e.seq);
            }
        }
        self.covered -= e.end - start;
        Some(e)
    }

    /// Remove everything in [s, e), keeping the parts of extents outside it.
    pub(crate) fn punch(&mut self, s: u64, e: u64) {
        if s >= e {
            return;
        }
        // An extent starting before s that reaches into the range.
        if let Some((&ps, pe)) = self.map.range(..s).next_back() {
            if pe.end > s {
                let p = self.del(ps).expect("present");
                self.add(
                    ps,
                    Extent {
                        end: s,
                        ..p.clone()
                    },
                );
                if p.end > e {
                    self.add(
                        e,
                        Extent {
                            end: p.end,
                            seq: p.seq,
                            src: p.src.advance(e - ps),
                        },
                    );
                }
            }
        }
        let inside: Vec<u64> = self.map.range(s..e).map(|(k, _)| *k).collect();
        for k in inside {
            let x = self.del(k).expect("present");
            if x.end > e {
                self.add(
                    e,
                    Extent {
                        end: x.end,
                        seq: x.seq,
                        src: x.src.advance(e - k),
                    },
                );
            }
        }
    }

    /// Make [s, e) read as `src` (newest wins), split at chunk boundaries.
    pub(crate) fn insert(&mut self, s: u64, e: u64, seq: u64, src: Src) {
        self.punch(s, e);
        let mut at = s;
        while at < e {
            let cend = (at / self.chunk_size + 1) * self.chunk_size;
            let end = e.min(cend);
            self.add(
                at,
                Extent {
                    end,
                    seq,
                    src: src.advance(at - s),
                },
            );
            at = end;
        }
    }

    /// The extents overlapping [s, e), clipped to it, in order.
    pub(crate) fn snapshot(&self, s: u64, e: u64) -> Vec<Piece> {
        let mut out = Vec::new();
        if s >= e {
            return out;
        }
        if let Some((&ps, p)) = self.map.range(..s).next_back() {
            if p.end > s {
                out.push(Piece {
                    start: s,
                    end: p.end.min(e),
                    seq: p.seq,
                    src: p.src.advance(s - ps),
                });
            }
        }
        for (&k, x) in self.map.range(s..e) {
            out.push(Piece {
                start: k,
                end: x.end.min(e),
                seq: x.seq,
                src: x.src.clone(),
            });
        }
        out
    }

    /// Remove the extents of chunk `c` that came from the records in `seqs`
    /// (what the destager just applied); newer extents stay.
    pub(crate) fn remove_applied(&mut self, c: u64, seqs: &HashSet<u64>) {
        let (s, e) = (c * self.chunk_size, (c + 1) * self.chunk_size);
        let done: Vec<u64> = self
            .map
            .range(s..e)
            .filter(|(_, x)| seqs.contains(&x.seq))
            .map(|(k, _)| *k)
            .collect();
        for k in done {
            self.del(k);
        }
    }

    /// What the map says of chunk `c` (`len` bytes long): Some(true) when
    /// journaled data lies in it, Some(false) when it is journaled as zeros
    /// from end to end, None when the chunk file decides.
    pub(crate) fn chunk_data(&self, c: u64, len: u64) -> Option<bool> {
        let s = c * self.chunk_size;
        let mut covered = s;
        for (&k, x) in self.map.range(s..s + len) {
            if matches!(x.src, Src::Data(..)) {
                return Some(true);
            }
            if k == covered {
                covered = x.end;
            }
        }
        (covered >= s + len).then_some(false)
    }

    /// Dirty bytes per chunk, for choosing what to destage.
    pub(crate) fn chunks(&self) -> BTreeMap<u64, u64> {
        let mut out = BTreeMap::new();
        for (&k, x) in &self.map {
            *out.entry(k / self.chunk_size).or_default() += x.end - k;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CS: u64 = 256;
    const SIZE: u64 = 4 * CS;

    /// Reference: one byte per volume byte; None = not dirty.
    fn apply_model(model: &mut [Option<(u8, u64)>], s: u64, e: u64, v: Option<u8>, seq: u64) {
        for b in &mut model[s as usize..e as usize] {
            *b = Some((v.unwrap_or(0), seq));
        }
    }

    fn read_map(m: &DirtyMap) -> Vec<Option<(u8, u64)>> {
        let mut out = vec![None; SIZE as usize];
        for p in m.snapshot(0, SIZE) {
            assert!(p.start / CS == (p.end - 1) / CS, "extent crosses a chunk");
            for i in p.start..p.end {
                let v = match &p.src {
                    Src::Zero => 0,
                    Src::Data(d, off) => d.bytes()[off + (i - p.start) as usize],
                };
                out[i as usize] = Some((v, p.seq));
            }
        }
        out
    }

    #[test]
    fn chunk_data_tells_data_from_zeros_end_to_end() {
        let gauge = Arc::new(AtomicU64::new(0));
        let mut m = DirtyMap::new(CS);
        assert_eq!(m.chunk_data(0, CS), None, "nothing journaled");
        m.insert(0, 100, 1, Src::Zero);
        assert_eq!(m.chunk_data(0, CS), None, "zeros over part of it");
        m.insert(100, CS, 2, Src::Zero);
        assert_eq!(m.chunk_data(0, CS), Some(false), "zeros end to end");
        m.insert(10, 20, 3, Src::Data(Payload::new(vec![1; 10], &gauge), 0));
        assert_eq!(m.chunk_data(0, CS), Some(true));
        m.insert(CS, CS + 8, 4, Src::Zero);
        assert_eq!(m.chunk_data(1, 8), Some(false), "a short last chunk");
        assert_eq!(m.chunk_data(1, CS), None);
    }

    proptest! {
        #[test]
        fn matches_a_byte_model(ops in proptest::collection::vec(
            (0u64..SIZE, 1u64..300, 0u8..4, any::<u8>()), 1..60)) {
            let gauge = Arc::new(AtomicU64::new(0));
            let mut m = DirtyMap::new(CS);
            let mut model = vec![None; SIZE as usize];
            let mut applied = Vec::new();
            for (i, (s, len, kind, v)) in ops.into_iter().enumerate() {
                let seq = i as u64 + 1;
                let e = (s + len).min(SIZE);
                match kind {
                    0 | 1 => {
                        let bytes: Vec<u8> = (0..e - s).map(|j| v.wrapping_add(j as u8)).collect();
                        m.insert(s, e, seq, Src::Data(Payload::new(bytes, &gauge), 0));
                        for j in s..e {
                            model[j as usize] = Some((v.wrapping_add((j - s) as u8), seq));
                        }
                    }
                    2 => {
                        m.insert(s, e, seq, Src::Zero);
                        apply_model(&mut model, s, e, None, seq);
                    }
                    _ => {
                        // The destager applied chunk s/CS: everything there now.
                        let c = s / CS;
                        let seqs: HashSet<u64> =
                            m.snapshot(c * CS, (c + 1) * CS).iter().map(|p| p.seq).collect();
                        m.remove_applied(c, &seqs);
                        for b in &mut model[(c * CS) as usize..((c + 1) * CS) as usize] {
                            *b = None;
                        }
                        applied.push(c);
                    }
                }
                prop_assert_eq!(read_map(&m), model.clone());
                let want_min = model.iter().flatten().map(|(_, q)| *q).min();
                prop_assert_eq!(m.min_seq(), want_min);
                prop_assert_eq!(m.covered_bytes(), model.iter().flatten().count() as u64);
            }
            drop(m);
            prop_assert_eq!(gauge.load(Ordering::Relaxed), 0, "payload memory is released");
        }
    }

    #[test]
    fn punch_keeps_the_outside() {
        let g = Arc::new(AtomicU64::new(0));
        let mut m = DirtyMap::new(CS);
        m.insert(
            10,
            100,
            1,
            Src::Data(Payload::new((0..90).collect(), &g), 0),
        );
        m.punch(20, 30);
        let s = m.snapshot(0, CS);
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].start, s[0].end, s[1].start, s[1].end),
            (10, 20, 30, 100)
        );
        match &s[1].src {
            Src::Data(p, off) => assert_eq!(p.bytes()[*off], 20),
            Src::Zero => panic!("data expected"),
        }
        assert!(m.snapshot(20, 30).is_empty() && m.snapshot(25, 31).len() == 1);
    }
}
