// SPDX-License-Identifier: Apache-2.0
//! The read cache: chunk data in fixed pages, bounded in bytes (`cache_mb`).
//!
//! Owns: pages of `PAGE` bytes keyed by (chunk, page index) in `SHARDS`
//! independently locked shards (no global lock: a hit locks one shard for a
//! lookup, clones an `Arc` and copies outside the lock, once, into the
//! caller's buffer); CLOCK (second chance) eviction per shard; the byte bound
//! (every page counts its buffer plus `ENTRY_OVERHEAD` for the map, the queue
//! and the `Arc`, and a shard never holds more than its share of the bound);
//! invalidation of a chunk range; inserts that are dropped when the chunk's
//! version moved since the data was read (checked under the shard lock, so an
//! invalidation cannot slip between the check and the insert); the cache
//! statistics.
//! Must never: hold data newer or older than the backend's for longer than a
//! mutation of that range takes (the chunk I/O layer bumps the chunk's version
//! and invalidates the range after every put or delete attempt), call the
//! backend, or exceed its byte bound.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::stats::CacheStats;

/// Cache page size: Ozone's default `ozone.client.bytes.per.checksum`, so a
/// miss reads what the datanode verifies anyway for a smaller read.
pub(crate) const PAGE: usize = 16 << 10;
/// Independently locked shards.
const SHARDS: usize = 16;
/// Bytes each page counts beyond its data: map slot, queue slot, `Arc` and
/// `Vec` headers, rounded up.
pub(crate) const ENTRY_OVERHEAD: usize = 192;

type Key = (u64, u32);

/// A multiply-rotate hasher for the integer keys (SipHash is not needed:
/// keys are chunk and page numbers, not attacker-chosen strings).
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

struct Entry {
    data: Arc<Vec<u8>>,
    seq: u64,
    referenced: bool,
}

#[derive(Default)]
struct Shard {
    map: HashMap<Key, Entry, BuildHasherDefault<KeyHasher>>,
    /// Insertion order for CLOCK; entries whose seq no longer matches the
    /// map's are stale and skipped.
    order: VecDeque<(Key, u64)>,
    bytes: usize,
    next_seq: u64,
}

fn cost(data: &Vec<u8>) -> usize {
    data.capacity() + ENTRY_OVERHEAD
}

impl Shard {
    fn remove(&mut self, key: &Key) -> Option<usize> {
        let e = self.map.remove(key)?;
        let c = cost(&e.data);
        self.bytes -= c;
        Some(c)
    }

    /// Evict until `need` more bytes fit under `cap`; returns bytes freed.
    fn make_room(&mut self, need: usize, cap: usize) -> usize {
        let mut freed = 0;
        while self.bytes + need > cap {
            let Some((key, seq)) = self.order.pop_front() else {
                break;
            };
            match self.map.get_mut(&key) {
                Some(e) if e.seq == seq && e.referenced => {
                    e.referenced = false;
                    self.order.push_back((key, seq));
                }
                Some(e) if e.seq == seq => freed += self.remove(&key).unwrap_or(0),
                _ => {} // stale queue slot
            }
        }
        freed
    }
}

pub(crate) struct Cache {
    shards: Box<[Mutex<Shard>]>,
    shard_cap: usize,
    capacity: u64,
    bytes: AtomicU64,
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) readahead: AtomicU64,
}

fn shard_of(key: &Key) -> usize {
    let mut h = KeyHasher::default();
    h.write_u64(key.0);
    h.write_u32(key.1);
    (h.finish() >> 59) as usize % SHARDS
}

/// The pages [first, last] covering [off, off + len) of a chunk.
fn page_span(off: usize, len: usize) -> (usize, usize) {
    (off / PAGE, (off + len - 1) / PAGE)
}

impl Cache {
    /// A cache of `capacity` bytes; None for 0 (no cache).
    pub(crate) fn new(capacity: u64) -> Option<Cache> {
        if capacity == 0 {
            return None;
        }
        Some(Cache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            shard_cap: usize::try_from(capacity / SHARDS as u64).unwrap_or(usize::MAX),
            capacity,
            bytes: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            readahead: AtomicU64::new(0),
        })
    }

    fn shard(&self, key: &Key) -> MutexGuard<'_, Shard> {
        self.shards[shard_of(key)]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn page(&self, key: Key) -> Option<Arc<Vec<u8>>> {
        let mut s = self.shard(&key);
        let e = s.map.get_mut(&key)?;
        e.referenced = true;
        Some(e.data.clone())
    }

    /// Hand the cached bytes [off, off + len) of chunk `c` to `f(bytes,
    /// position in the range)`, page by page, and return true; false as soon
    /// as a page is missing (what `f` got so far is then incomplete).
    pub(crate) fn copy_out(
        &self,
        c: u64,
        off: usize,
        len: usize,
        mut f: impl FnMut(&[u8], usize),
    ) -> bool {
        if len == 0 {
            return true;
        }
        let (first, last) = page_span(off, len);
        for pg in first..=last {
            let Some(data) = self.page((c, pg as u32)) else {
                return false;
            };
            let pstart = pg * PAGE;
            let s = off.max(pstart);
            let e = (off + len).min(pstart + PAGE);
            let Some(bytes) = data.get(s - pstart..e - pstart) else {
                return false;
            };
            f(bytes, s - off);
        }
        true
    }

    /// Whether every page of [off, off + len) of chunk `c` is cached.
    pub(crate) fn contains(&self, c: u64, off: usize, len: usize) -> bool {
        if len == 0 {
            return true;
        }
        let (first, last) = page_span(off, len);
        (first..=last).all(|pg| {
            let key = (c, pg as u32);
            self.shard(&key).map.contains_key(&key)
        })
    }

    /// Cache `data`, the bytes of chunk `c` from the page boundary `start`
    /// (whole pages, the last one possibly cut at the chunk's end). Each page
    /// is kept only if `still_valid()` holds under its shard's lock.
    pub(crate) fn insert_span(
        &self,
        c: u64,
        start: usize,
        data: Vec<u8>,
        still_valid: impl Fn() -> bool,
    ) {
        debug_assert_eq!(start % PAGE, 0);
        let first = start / PAGE;
        if data.len() <= PAGE {
            self.insert_page((c, first as u32), data, &still_valid);
            return;
        }
        for (i, part) in data.chunks(PAGE).enumerate() {
            self.insert_page(((c), (first + i) as u32), part.to_vec(), &still_valid);
        }
    }

    fn insert_page(&self, key: Key, data: Vec<u8>, still_valid: &impl Fn() -> bool) {
        let need = cost(&data);
        if need > self.shard_cap {
            return;
        }
        let mut s = self.shard(&key);
        if !still_valid() {
            return;
        }
        let mut freed = s.remove(&key).unwrap_or(0);
        freed += s.make_room(need, self.shard_cap);
        if s.bytes + need > self.shard_cap {
            return;
        }
        let seq = s.next_seq;
        s.next_seq += 1;
        s.bytes += need;
        s.map.insert(
            key,
            Entry {
                data: Arc::new(data),
                seq,
                referenced: false,
            },
        );
        s.order.push_back((key, seq));
        if s.order.len() > 2 * s.map.len() + 64 {
            let Shard { map, order, .. } = &mut *s;
            order.retain(|(k, q)| map.get(k).is_some_and(|e| e.seq == *q));
        }
        drop(s);
        self.bytes.fetch_add(need as u64, Ordering::Relaxed);
        self.bytes.fetch_sub(freed as u64, Ordering::Relaxed);
    }

    /// Forget every cached page overlapping [off, off + len) of chunk `c`.
    pub(crate) fn invalidate(&self, c: u64, off: usize, len: usize) {
        if len == 0 {
            return;
        }
        let (first, last) = page_span(off, len);
        let mut freed = 0;
        for pg in first..=last {
            let key = (c, pg as u32);
            freed += self.shard(&key).remove(&key).unwrap_or(0);
        }
        self.bytes.fetch_sub(freed as u64, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> CacheStats {
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CacheStats {
            bytes: ld(&self.bytes),
            capacity: self.capacity,
            hits: ld(&self.hits),
            misses: ld(&self.misses),
            readahead: ld(&self.readahead),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page_of(b: u8) -> Vec<u8> {
        vec![b; PAGE]
    }

    #[test]
    fn hits_misses_invalidation_and_stale_inserts() {
        let c = Cache::new(1 << 20).unwrap();
        let mut data = page_of(1);
        data.extend(page_of(2));
        c.insert_span(5, PAGE, data, || true);
        let mut got = vec![0u8; 8];
        assert!(c.copy_out(5, 2 * PAGE - 4, 8, |b, at| got[at..at + b.len()]
            .copy_from_slice(b)));
        assert_eq!(got, [1, 1, 1, 1, 2, 2, 2, 2]);
        assert!(!c.copy_out(5, 0, 8, |_, _| {}), "page 0 was never cached");
        c.invalidate(5, 2 * PAGE + 1, 1);
        assert!(c.contains(5, PAGE, PAGE) && !c.contains(5, 2 * PAGE, 1));
        c.insert_span(6, 0, page_of(3), || false);
        assert!(
            !c.contains(6, 0, 1),
            "an insert whose chunk changed is dropped"
        );
        assert_eq!(c.stats().bytes, (PAGE + ENTRY_OVERHEAD) as u64);
    }

    #[test]
    fn never_holds_more_than_its_bound() {
        let cap = 4 << 20;
        let c = Cache::new(cap).unwrap();
        for i in 0..1000u64 {
            c.insert_span(i % 37, (i as usize % 64) * PAGE, page_of(i as u8), || true);
            if i % 3 == 0 {
                // Touch some pages so CLOCK has referenced entries to skip.
                c.copy_out(i % 37, 0, 1, |_, _| {});
            }
            if i % 11 == 0 {
                c.invalidate(i % 37, 0, 64 * PAGE);
            }
            let s = c.stats();
            assert!(s.bytes <= cap, "{} > {cap}", s.bytes);
            let real: usize = c
                .shards
                .iter()
                .map(|s| {
                    s.lock()
                        .unwrap()
                        .map
                        .values()
                        .map(|e| cost(&e.data))
                        .sum::<usize>()
                })
                .sum();
            assert_eq!(real as u64, s.bytes);
            for sh in c.shards.iter() {
                let sh = sh.lock().unwrap();
                assert!(sh.order.len() <= 2 * sh.map.len() + 65);
            }
        }
        assert!(c.stats().bytes > cap / 2, "the cache fills up to its bound");
    }
}
