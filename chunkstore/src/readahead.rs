// SPDX-License-Identifier: Apache-2.0
//! Sequential read-ahead: spotting sequential readers and fetching ahead of
//! them into the read cache, on a thread of its own.
//!
//! Owns: a few stream slots (lock-free: each remembers where its reader will
//! read next and how far ahead the cache is being filled), the bounded queue
//! of ranges to fetch (a full queue drops the hint, it never blocks a
//! submitter) and the read-ahead thread's loop, which fetches through its own
//! open handles (`ChunkIo::prefetch`).
//! Must never: block the submitting thread, fail or delay a request (a failed
//! read-ahead is only logged; the reader's own read fetches the data), or
//! insert data that a write has changed since it was read (`prefetch` fills
//! the cache only while the chunk's version has not moved).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;

use crate::chunk_io::ChunkIo;
use crate::stats::Counters;

/// How far ahead of a sequential reader the cache is filled; a new fetch
/// starts when the reader is within half of it. Also the largest buffer the
/// read-ahead thread holds (memory beyond `cache_mb`).
pub(crate) const READAHEAD_WINDOW: u64 = 1 << 20;
/// Sequential readers tracked at once.
const STREAMS: usize = 8;
/// Fetches queued at most.
const QUEUE: usize = 32;
const EMPTY: u64 = u64::MAX;

struct Stream {
    next: AtomicU64,
    ahead: AtomicU64,
}

enum Msg {
    Fetch { off: u64, len: u64 },
    Stop,
}

pub(crate) struct Readahead {
    streams: [Stream; STREAMS],
    victim: AtomicUsize,
    tx: SyncSender<Msg>,
    rx: Mutex<Option<Receiver<Msg>>>,
}

impl Readahead {
    pub(crate) fn new() -> Self {
        let (tx, rx) = sync_channel(QUEUE);
        Readahead {
            streams: std::array::from_fn(|_| Stream {
                next: AtomicU64::new(EMPTY),
                ahead: AtomicU64::new(0),
            }),
            victim: AtomicUsize::new(0),
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }

    /// A read of [off, off + len) was submitted on a volume of `size` bytes:
    /// if it continues a stream, queue a fetch ahead of it. Returns the range
    /// queued, if any (for tests).
    pub(crate) fn observe(&self, off: u64, len: u64, size: u64) -> Option<(u64, u64)> {
        let end = off.saturating_add(len);
        for s in &self.streams {
            if s.next
                .compare_exchange(off, end, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            let ahead = s.ahead.load(Ordering::Acquire);
            if ahead >= end + READAHEAD_WINDOW / 2 {
                return None;
            }
            let from = ahead.max(end);
            let to = (end + READAHEAD_WINDOW).min(size);
            if from >= to || s.ahead.fetch_max(to, Ordering::AcqRel) >= to {
                return None;
            }
            let msg = Msg::Fetch {
                off: from,
                len: to - from,
            };
            return self.tx.try_send(msg).ok().map(|()| (from, to - from));
        }
        let i = self.victim.fetch_add(1, Ordering::Relaxed) % STREAMS;
        self.streams[i].ahead.store(end, Ordering::Release);
        self.streams[i].next.store(end, Ordering::Release);
        None
    }

    /// The read-ahead thread: fetch queued ranges until `stop`.
    pub(crate) fn run(&self, io: &ChunkIo, counters: &Counters) {
        let rx = self.rx.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(rx) = rx else { return };
        let cs = io.chunk_size;
        while let Ok(Msg::Fetch { off, len }) = rx.recv() {
            let mut at = off;
            while at < off + len {
                let c = at / cs;
                let e = (off + len).min((c + 1) * cs);
                let r = io.prefetch(c, (at - c * cs) as usize, (e - at) as usize, counters);
                if let Err(err) = r {
                    log::debug!("read-ahead of chunk {c} failed ({err}); the reader will fetch it");
                }
                at = e;
            }
        }
    }

    /// Make the read-ahead thread return (after the fetch it is doing).
    pub(crate) fn stop(&self) {
        let _ = self.tx.send(Msg::Stop);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sequential_reader_is_read_ahead_of_and_a_random_one_is_not() {
        let ra = Readahead::new();
        let size = 64 << 20;
        assert_eq!(ra.observe(0, 4096, size), None, "one read is no stream");
        assert_eq!(ra.observe(4096, 4096, size), Some((8192, READAHEAD_WINDOW)));
        // Within the window already fetched: nothing new.
        assert_eq!(ra.observe(8192, 4096, size), None);
        // Past half the window: the next part.
        let mut off = 12288;
        let mut got = None;
        while got.is_none() && off < 2 * READAHEAD_WINDOW {
            got = ra.observe(off, 4096, size);
            off += 4096;
        }
        let (from, len) = got.unwrap();
        assert_eq!(from, 8192 + READAHEAD_WINDOW);
        assert_eq!(from + len, off + READAHEAD_WINDOW);
        // Random reads never trigger a fetch.
        for i in 0..100u64 {
            let o = (i * 7919 % 1000) * 65536 + 512;
            assert_eq!(ra.observe(o, 4096, size), None);
        }
        // Never past the end of the volume.
        let ra = Readahead::new();
        ra.observe(size - 8192, 4096, size);
        assert_eq!(ra.observe(size - 4096, 4096, size), None);
    }
}
