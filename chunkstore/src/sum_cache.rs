// SPDX-License-Identifier: Apache-2.0
//! The cache of chunk checksum trailers.
//!
//! Owns: keeping the decoded trailers of recently read chunks (and the
//! knowledge that a chunk of an upgraded volume has none), keyed by chunk and
//! the chunk's version, in `SHARDS` shards bounded together by
//! `defaults::SUM_CACHE_BYTES`. A read of a chunk whose trailer is cached costs
//! one positional read; otherwise the trailer is read first, once per chunk
//! version.
//! Must never: serve a trailer of another version of the chunk (the engine
//! rewrote it: its sums changed), or hold a lock across a backend call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::defaults::SUM_CACHE_BYTES;
use crate::sums::Sums;

const SHARDS: usize = 16;

/// What a stored chunk carries.
#[derive(Debug, Clone)]
pub(crate) enum Stored {
    /// The trailer's sums, and the data length they cover: the chunk's
    /// length when it was written (a resize changes only the length of the
    /// chunk at the volume's end; see chunk_io.rs).
    Sums(Arc<Sums>, usize),
    /// Written before the volume had checksums (format 3 and older):
    /// nothing to verify until the engine rewrites it.
    NoTrailer,
}

impl Stored {
    fn bytes(&self) -> usize {
        64 + match self {
            Stored::Sums(s, _) => s.bytes(),
            Stored::NoTrailer => 0,
        }
    }
}

struct Shard {
    map: HashMap<u64, (u64, Stored)>,
    bytes: usize,
}

pub(crate) struct SumCache {
    shards: Box<[Mutex<Shard>]>,
}

fn lock(m: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SumCache {
    pub(crate) fn new() -> Self {
        SumCache {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        map: HashMap::new(),
                        bytes: 0,
                    })
                })
                .collect(),
        }
    }

    fn shard(&self, c: u64) -> &Mutex<Shard> {
        &self.shards[(c as usize) % SHARDS]
    }

    /// The trailer of chunk `c` at `version`, if cached.
    pub(crate) fn get(&self, c: u64, version: u64) -> Option<Stored> {
        let sh = lock(self.shard(c));
        match sh.map.get(&c) {
            Some((v, s)) if *v == version => Some(s.clone()),
            _ => None,
        }
    }

    /// Remember chunk `c`'s trailer at `version` (replacing any older one).
    /// When the shard is full, other entries of it make room (any of them:
    /// a dropped trailer costs one more positional read, never a wrong one).
    pub(crate) fn insert(&self, c: u64, version: u64, s: Stored) {
        let cap = SUM_CACHE_BYTES / SHARDS;
        let mut sh = lock(self.shard(c));
        let add = s.bytes();
        if let Some((_, old)) = sh.map.remove(&c) {
            sh.bytes -= old.bytes();
        }
        while sh.bytes + add > cap {
            let Some(&k) = sh.map.keys().next() else {
                break;
            };
            if let Some((_, old)) = sh.map.remove(&k) {
                sh.bytes -= old.bytes();
            }
        }
        if add <= cap {
            sh.bytes += add;
            sh.map.insert(c, (version, s));
        }
    }

    /// Forget chunk `c` (deleted).
    pub(crate) fn remove(&self, c: u64) {
        let mut sh = lock(self.shard(c));
        if let Some((_, old)) = sh.map.remove(&c) {
            sh.bytes -= old.bytes();
        }
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.shards.iter().map(|s| lock(s).bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sums::Summer;

    #[test]
    fn versions_and_the_bound_are_kept() {
        let s = Summer::new(&uuid::Uuid::from_u128(1));
        let c = SumCache::new();
        let mut data = vec![1u8; 4 << 20];
        let sums = Arc::new(s.seal(0, &mut data));
        c.insert(0, 5, Stored::Sums(sums.clone(), 4 << 20));
        assert!(c.get(0, 5).is_some());
        assert!(c.get(0, 6).is_none(), "another version is not served");
        for k in 1..10_000u64 {
            c.insert(k, 0, Stored::Sums(sums.clone(), 4 << 20));
        }
        assert!(c.bytes() <= SUM_CACHE_BYTES, "bounded");
        c.remove(9_999);
        assert!(c.get(9_999, 0).is_none());
    }
}
