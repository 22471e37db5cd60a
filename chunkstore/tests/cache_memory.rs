// SPDX-License-Identifier: Apache-2.0
//! The read cache's memory bound, measured: a counting global allocator
//! records the peak of live heap bytes while random and sequential reads run
//! over a volume much larger than the cache; the peak above the level before
//! the reads must stay within `cache_mb` plus the stated slack.
//! Must never: share the process with other tests that allocate at the same
//! time (this file holds one test, so its binary measures only it).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ozbd_backend::memory::MemoryBackend;
use ozbd_backend::BackendRef;
use ozbd_chunkstore::{CreateOptions, OpenOptions, Volume, VolumeUri};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        System.dealloc(p, l)
    }
}

#[global_allocator]
static A: Counting = Counting;

const MIB: usize = 1 << 20;

#[test]
fn memory_stays_within_cache_mb_plus_a_small_constant() {
    let cache_mb = 8;
    let workers = 8;
    let size = 64 * MIB as u64; // 8 times the cache
    let cs = 1 << 20;
    let mem: BackendRef = Arc::new(MemoryBackend::new());
    let uri = VolumeUri::parse("mem://cachemem/vol/bucket/disk").unwrap();
    let mut co = CreateOptions::new(size);
    co.chunk_size = cs;
    let o = OpenOptions {
        cache_mb,
        workers,
        ..OpenOptions::default()
    };
    let vol = Volume::create(mem, &uri, &co, &o).unwrap().0;
    let chunk: Vec<u8> = (0..cs as usize).map(|i| (i % 251) as u8 | 1).collect();
    for c in 0..size / cs {
        vol.write(c * cs, &chunk).unwrap();
    }
    let mut buf = vec![0u8; 128 << 10];
    // Settle: one read of every kind, so lazily made structures exist.
    vol.read(0, &mut buf[..4096]).unwrap();

    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let mut rng = SmallRng::seed_from_u64(1);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let vol = &vol;
            s.spawn(move || {
                let mut rng = SmallRng::seed_from_u64(t);
                let mut b = vec![0u8; 64 << 10];
                for _ in 0..3000 {
                    let len = [4096usize, 16384, 65536][rng.gen_range(0..3)];
                    let off = rng.gen_range(0..(size - len as u64) / 4096) * 4096;
                    vol.read(off, &mut b[..len]).unwrap();
                }
            });
        }
    });
    // Sequential passes: read-ahead fills the cache too.
    let mut off = rng.gen_range(0..8) * cs;
    while off < size {
        vol.read(off, &mut buf).unwrap();
        off += buf.len() as u64;
    }
    let peak = PEAK.load(Ordering::Relaxed) - base;
    let stats = vol.stats().cache;
    assert!(stats.bytes <= stats.capacity, "{stats:?}");
    assert!(stats.hits > 0 && stats.readahead > 0, "{stats:?}");
    // The stated constant: per page 192 bytes of bookkeeping beyond its data
    // (counted in `bytes`), plus the buffers in flight: each worker's and the
    // read-ahead thread's current fetch (at most one request piece or the
    // 1 MiB read-ahead window), the test threads' own buffers, and maps.
    let slack = 4 * MIB;
    let bound = cache_mb as usize * MIB + slack;
    eprintln!(
        "peak heap above base {peak} bytes; bound {bound} (cache {} + slack {slack}); {stats:?}",
        cache_mb as usize * MIB
    );
    assert!(peak <= bound, "peak {peak} > {bound}");
    assert!(
        peak > cache_mb as usize * MIB / 2,
        "the cache was used ({peak})"
    );
}
