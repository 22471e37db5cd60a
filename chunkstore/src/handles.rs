// SPDX-License-Identifier: Apache-2.0
//! The volume's pool of open read handles, shared by every worker.
//!
//! Owns: keeping up to `MAX_OPEN_HANDLES` idle handles open (in `SHARDS`
//! shards by chunk, least recently used closed first), lending one to a
//! reader for one positional read (several readers of one chunk get several
//! handles), reopening a chunk whose version moved since its handle was
//! opened (the engine rewrote or deleted it: an open stream would read the old
//! key version), dropping a handle whose read failed, and falling back to
//! `Backend::read_at` for backends without handles.
//! Must never: lend one handle to two readers at once (a libhdfs handle's
//! positional read is not thread-safe), read through a handle opened before
//! the chunk's current version, close a handle while holding a shard lock
//! (closing is a JNI call), or let a handle outlive the backend it borrows.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use ozbd_backend::{BackendRef, ReadHandle, Result};

use crate::versions::ChunkMarks;

/// Idle handles kept open per volume. A handle is a Java input stream (the
/// key's block list, no data buffer between reads): tens of KiB of JVM heap.
pub(crate) const MAX_OPEN_HANDLES: usize = 512;
/// Shards (by chunk) of the pool: readers of different chunks rarely meet on
/// one lock, and no lock is held across a backend call.
const SHARDS: usize = 16;
const PER_SHARD: usize = MAX_OPEN_HANDLES / SHARDS;

/// A handle with its lifetime erased. Sound because only `HandlePool` holds
/// these, the pool keeps its own strong reference to the backend they borrow
/// (`HandlePool::backend`, declared after `shards` so it drops after them),
/// and a handle leaves a shard only for the duration of one `read_at` call.
type Handle = Box<dyn ReadHandle + 'static>;

struct Idle {
    chunk: u64,
    version: u64,
    last_used: u64,
    handle: Handle,
}

pub(crate) struct HandlePool {
    shards: Box<[Mutex<Vec<Idle>>]>,
    /// Keeps the backend alive for as long as any handle is (drops last).
    backend: BackendRef,
    tick: AtomicU64,
    /// The backend answered `open_read` with None: it has no handles.
    no_handles: AtomicBool,
    /// Handles opened so far (for statistics and tests).
    opened: AtomicU64,
}

fn lock(m: &Mutex<Vec<Idle>>) -> MutexGuard<'_, Vec<Idle>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl HandlePool {
    pub(crate) fn new(backend: BackendRef) -> Self {
        HandlePool {
            shards: (0..SHARDS).map(|_| Mutex::new(Vec::new())).collect(),
            backend,
            tick: AtomicU64::new(0),
            no_handles: AtomicBool::new(false),
            opened: AtomicU64::new(0),
        }
    }

    fn shard(&self, c: u64) -> &Mutex<Vec<Idle>> {
        &self.shards[(c as usize) % SHARDS]
    }

    /// An idle handle of chunk `c` at `version`, if the pool has one. Stale
    /// handles of the chunk found on the way are returned for closing.
    fn take(&self, c: u64, version: u64, stale: &mut Vec<Idle>) -> Option<Handle> {
        let mut sh = lock(self.shard(c));
        let mut found = None;
        let mut i = 0;
        while i < sh.len() {
            if sh[i].chunk != c {
                i += 1;
            } else if sh[i].version == version && found.is_none() {
                found = Some(sh.swap_remove(i).handle);
            } else if sh[i].version != version {
                stale.push(sh.swap_remove(i));
            } else {
                i += 1;
            }
        }
        found
    }

    /// Give a handle back after a successful read; returns the one it pushed
    /// out (to close outside the lock), or the handle itself when the chunk
    /// changed meanwhile.
    fn give_back(&self, c: u64, version: u64, handle: Handle, marks: &ChunkMarks) -> Option<Idle> {
        let idle = Idle {
            chunk: c,
            version,
            last_used: self.tick.fetch_add(1, Ordering::Relaxed),
            handle,
        };
        if marks.version(c) != version {
            return Some(idle);
        }
        let mut sh = lock(self.shard(c));
        sh.push(idle);
        if sh.len() <= PER_SHARD {
            return None;
        }
        let lru = (0..sh.len()).min_by_key(|&i| sh[i].last_used)?;
        Some(sh.swap_remove(lru))
    }

    /// Read from `offset` of chunk `c` (at `path`) into `buf`, through an open
    /// handle of the chunk's current version. Short only at end of file.
    pub(crate) fn read_at(
        &self,
        c: u64,
        path: &str,
        marks: &ChunkMarks,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize> {
        if self.no_handles.load(Ordering::Relaxed) {
            return self.backend.read_at(path, offset, buf);
        }
        let version = marks.version(c);
        let mut stale = Vec::new();
        let found = self.take(c, version, &mut stale);
        drop(stale); // closes them, with no lock held
        let mut handle = match found {
            Some(h) => h,
            None => {
                let Some(h) = self.backend.open_read(path)? else {
                    self.no_handles.store(true, Ordering::Relaxed);
                    return self.backend.read_at(path, offset, buf);
                };
                self.opened.fetch_add(1, Ordering::Relaxed);
                // SAFETY: see `Handle`: the handle borrows `*self.backend`,
                // which this pool keeps alive until every handle is dropped.
                unsafe { std::mem::transmute::<Box<dyn ReadHandle + '_>, Handle>(h) }
            }
        };
        let mut at = 0;
        while at < buf.len() {
            match handle.read_at(offset + at as u64, &mut buf[at..]) {
                Ok(0) => break,
                Ok(n) => at += n,
                // A stream that failed may be broken: it is dropped here and
                // the next read opens afresh.
                Err(err) => return Err(err),
            }
        }
        drop(self.give_back(c, version, handle, marks));
        Ok(at)
    }

    /// Handles opened so far.
    pub(crate) fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// Idle handles open now.
    #[cfg(test)]
    pub(crate) fn idle(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }
}

impl Drop for HandlePool {
    fn drop(&mut self) {
        // Close every handle while `backend` is still alive (field order
        // already guarantees it; this makes it explicit).
        for s in self.shards.iter() {
            lock(s).clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ozbd_backend::memory::MemoryBackend;
    use ozbd_backend::Backend;
    use std::sync::Arc;

    #[test]
    fn reuses_handles_and_reopens_after_a_rewrite() {
        let b = Arc::new(MemoryBackend::new());
        let marks = ChunkMarks::new();
        b.put("/c0", b"old data").unwrap();
        let h = HandlePool::new(b.clone());
        let mut buf = [0u8; 3];
        h.read_at(0, "/c0", &marks, 0, &mut buf).unwrap();
        h.read_at(0, "/c0", &marks, 4, &mut buf).unwrap();
        assert_eq!(h.opened(), 1, "the second read reuses the handle");
        b.put("/c0", b"NEW DATA").unwrap();
        marks.bump(0);
        h.read_at(0, "/c0", &marks, 0, &mut buf).unwrap();
        assert_eq!(
            &buf, b"NEW",
            "a rewritten chunk is read from a fresh handle"
        );
        assert_eq!(h.opened(), 2);
        assert_eq!(h.idle(), 1, "the stale handle was closed");
        for c in 1..=MAX_OPEN_HANDLES as u64 * 2 {
            b.put(&format!("/c{c}"), b"x").unwrap();
            h.read_at(c, &format!("/c{c}"), &marks, 0, &mut buf[..1])
                .unwrap();
        }
        assert_eq!(h.idle(), MAX_OPEN_HANDLES, "bounded");
    }

    #[test]
    fn concurrent_readers_of_one_chunk_get_their_own_handles() {
        let b = Arc::new(MemoryBackend::new());
        b.put("/c0", &[7u8; 4096]).unwrap();
        let marks = ChunkMarks::new();
        let pool = HandlePool::new(b);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let mut buf = [0u8; 512];
                    for i in 0..200u64 {
                        let n = pool
                            .read_at(0, "/c0", &marks, i % 8 * 512, &mut buf)
                            .unwrap();
                        assert_eq!(n, 512);
                        assert!(buf.iter().all(|&x| x == 7));
                    }
                });
            }
        });
        assert!(
            pool.opened() <= 4,
            "at most one handle per concurrent reader"
        );
        assert!(pool.idle() <= 4);
    }
}
