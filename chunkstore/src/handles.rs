// SPDX-License-Identifier: Apache-2.0
//! A worker's cache of open read handles, one per recently read chunk.
//!
//! Owns: keeping up to `HANDLES_PER_THREAD` handles open (least recently used
//! closed first), reopening a chunk whose version moved since its handle was
//! opened (the engine rewrote or deleted it: an open stream would read the old
//! key version), dropping a handle whose read failed, and falling back to
//! `Backend::read_at` for backends without handles.
//! Must never: be shared between threads (each worker and the read-ahead
//! thread own one; a libhdfs handle is not thread-safe), or read through a
//! handle opened before the chunk's current version.

use ozbd_backend::{Backend, ReadHandle, Result};

use crate::versions::ChunkMarks;

/// Open handles kept per thread.
pub(crate) const HANDLES_PER_THREAD: usize = 16;

struct Entry<'a> {
    chunk: u64,
    version: u64,
    last_used: u64,
    handle: Box<dyn ReadHandle + 'a>,
}

pub(crate) struct HandleCache<'a> {
    backend: &'a dyn Backend,
    entries: Vec<Entry<'a>>,
    tick: u64,
    /// The backend answered `open_read` with None: it has no handles.
    no_handles: bool,
    /// Handles opened so far (for statistics and tests).
    pub(crate) opened: u64,
}

impl<'a> HandleCache<'a> {
    pub(crate) fn new(backend: &'a dyn Backend) -> Self {
        HandleCache {
            backend,
            entries: Vec::new(),
            tick: 0,
            no_handles: false,
            opened: 0,
        }
    }

    /// Read from `offset` of chunk `c` (at `path`) into `buf`, through an open
    /// handle of the chunk's current version. Short only at end of file.
    pub(crate) fn read_at(
        &mut self,
        c: u64,
        path: &str,
        marks: &ChunkMarks,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize> {
        if self.no_handles {
            return self.backend.read_at(path, offset, buf);
        }
        self.tick += 1;
        let version = marks.version(c);
        let found = self.entries.iter().position(|e| e.chunk == c);
        let idx = match found {
            Some(i) if self.entries[i].version == version => i,
            stale => {
                if let Some(i) = stale {
                    self.entries.swap_remove(i); // closes the old stream
                }
                let Some(handle) = self.backend.open_read(path)? else {
                    self.no_handles = true;
                    return self.backend.read_at(path, offset, buf);
                };
                self.opened += 1;
                if self.entries.len() >= HANDLES_PER_THREAD {
                    if let Some(lru) =
                        (0..self.entries.len()).min_by_key(|&i| self.entries[i].last_used)
                    {
                        self.entries.swap_remove(lru);
                    }
                }
                self.entries.push(Entry {
                    chunk: c,
                    version,
                    last_used: 0,
                    handle,
                });
                self.entries.len() - 1
            }
        };
        let e = &mut self.entries[idx];
        e.last_used = self.tick;
        let mut at = 0;
        while at < buf.len() {
            match e.handle.read_at(offset + at as u64, &mut buf[at..]) {
                Ok(0) => break,
                Ok(n) => at += n,
                Err(err) => {
                    // A stream that failed may be broken: open afresh next time.
                    self.entries.swap_remove(idx);
                    return Err(err);
                }
            }
        }
        Ok(at)
    }

    /// Handles open now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ozbd_backend::memory::MemoryBackend;

    #[test]
    fn reuses_handles_and_reopens_after_a_rewrite() {
        let b = MemoryBackend::new();
        let marks = ChunkMarks::new();
        b.put("/c0", b"old data").unwrap();
        let mut h = HandleCache::new(&b);
        let mut buf = [0u8; 3];
        h.read_at(0, "/c0", &marks, 0, &mut buf).unwrap();
        h.read_at(0, "/c0", &marks, 4, &mut buf).unwrap();
        assert_eq!(h.opened, 1, "the second read reuses the handle");
        b.put("/c0", b"NEW DATA").unwrap();
        marks.bump(0);
        h.read_at(0, "/c0", &marks, 0, &mut buf).unwrap();
        assert_eq!(
            &buf, b"NEW",
            "a rewritten chunk is read from a fresh handle"
        );
        assert_eq!(h.opened, 2);
        for c in 1..=HANDLES_PER_THREAD as u64 + 3 {
            b.put(&format!("/c{c}"), b"x").unwrap();
            h.read_at(c, &format!("/c{c}"), &marks, 0, &mut buf[..1])
                .unwrap();
        }
        assert_eq!(h.len(), HANDLES_PER_THREAD, "bounded");
    }
}
