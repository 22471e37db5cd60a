// SPDX-License-Identifier: Apache-2.0
//! Per-chunk coherence marks: a version that changes whenever the engine
//! rewrites or deletes a chunk, and a count of mutations submitted and not
//! yet finished.
//!
//! Owns: two fixed-size tables of atomics indexed by chunk (chunks `SLOTS`
//! apart share a slot, which only causes a needless reopen or a cache miss,
//! never a stale read). Open read handles and cache fills record the version
//! before reading and are discarded when it moved; the submit-side cache hit
//! path serves a chunk only while its pending count is zero.
//! Must never: take a lock, or let a version go back (they only increase).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Slots per table (a power of two): 64 KiB of atomics per volume.
const SLOTS: usize = 4096;

pub(crate) struct ChunkMarks {
    versions: Box<[AtomicU64]>,
    pending: Box<[AtomicU32]>,
}

fn slot(c: u64) -> usize {
    (c as usize) & (SLOTS - 1)
}

impl ChunkMarks {
    pub(crate) fn new() -> Self {
        ChunkMarks {
            versions: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            pending: (0..SLOTS).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    /// The chunk's version now: read it before opening or loading.
    pub(crate) fn version(&self, c: u64) -> u64 {
        self.versions[slot(c)].load(Ordering::SeqCst)
    }

    /// The chunk's content may have changed: after every put or delete
    /// attempt, successful or not.
    pub(crate) fn bump(&self, c: u64) {
        self.versions[slot(c)].fetch_add(1, Ordering::SeqCst);
    }

    /// A mutation of `c` was accepted (before it is queued).
    pub(crate) fn begin_mutation(&self, c: u64) {
        self.pending[slot(c)].fetch_add(1, Ordering::SeqCst);
    }

    /// A mutation piece of `c` finished (after the cache was invalidated).
    pub(crate) fn end_mutation(&self, c: u64) {
        self.pending[slot(c)].fetch_sub(1, Ordering::SeqCst);
    }

    /// Whether a mutation of `c` (or of a chunk sharing its slot) is queued or running.
    pub(crate) fn mutation_pending(&self, c: u64) -> bool {
        self.pending[slot(c)].load(Ordering::SeqCst) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_move_and_pending_counts() {
        let m = ChunkMarks::new();
        let v = m.version(7);
        m.bump(7);
        assert_ne!(m.version(7), v);
        assert_eq!(m.version(8), 0, "another chunk is untouched");
        assert!(!m.mutation_pending(7));
        m.begin_mutation(7);
        m.begin_mutation(7);
        m.end_mutation(7);
        assert!(m.mutation_pending(7));
        m.end_mutation(7);
        assert!(!m.mutation_pending(7));
    }
}
