// SPDX-License-Identifier: Apache-2.0
//! The read path on a real Ozone cluster: a chunk rewritten (whole, partly,
//! or unmapped) while a worker keeps an open read handle on it is read back
//! new, with the cache off (the handle is the only thing that could be stale)
//! and on; reads of many chunks at once through reused handles match.
//! Needs `eval "$(scripts/ozone-local env)"`; skips loudly without it unless
//! OZBD_REQUIRE_OZONE=1.
//! Must never: leave its volume behind on success.

#![cfg(feature = "libhdfs")]

mod common;
use common::om_address;

use ozbd_chunkstore::{connect, ConnectOptions, CreateOptions, OpenOptions, Volume, VolumeUri};

const CS: u64 = 1 << 20;

#[test]
fn a_rewritten_chunk_is_read_back_new_through_a_cached_handle() {
    let Some(om) = om_address() else { return };
    let uri = VolumeUri::parse(&format!(
        "ofs://{om}/ozbdtest/reads/handles-{}",
        std::process::id()
    ))
    .unwrap();
    let backend = connect(&uri, &ConnectOptions::default()).unwrap();
    let mut co = CreateOptions::new(8 * CS);
    co.chunk_size = CS;
    for cache_mb in [0, 16] {
        // One worker, so reads of chunk 0 never need two handles at once.
        let o = OpenOptions {
            workers: 1,
            cache_mb,
            ..OpenOptions::default()
        };
        let (vol, _) = Volume::create(backend.clone(), &uri, &co, &o).unwrap();
        let mut buf = vec![0u8; 4096];
        for round in 1..=3u8 {
            vol.write(0, &vec![round; CS as usize]).unwrap();
            vol.read(8192, &mut buf).unwrap(); // opens (or reuses) the handle
            assert_eq!(
                buf,
                vec![round; 4096],
                "cache_mb {cache_mb}: whole-chunk rewrite {round}"
            );
            let opened = vol.stats().handles_opened;
            vol.read(CS / 2, &mut buf).unwrap();
            assert_eq!(buf, vec![round; 4096], "cache_mb {cache_mb}: round {round}");
            assert_eq!(
                vol.stats().handles_opened,
                opened,
                "cache_mb {cache_mb}: the second read of an unchanged chunk reuses the open handle"
            );
        }
        // A partial rewrite (read-modify-write) of the open chunk.
        vol.write(CS / 2, &[9u8; 4096]).unwrap();
        vol.read(CS / 2, &mut buf).unwrap();
        assert_eq!(buf, vec![9u8; 4096], "cache_mb {cache_mb}: partial rewrite");
        vol.read(8192, &mut buf).unwrap();
        assert_eq!(
            buf,
            vec![3u8; 4096],
            "cache_mb {cache_mb}: rest of the chunk"
        );
        // Unmapped, then written again.
        vol.unmap(0, CS).unwrap();
        vol.read(8192, &mut buf).unwrap();
        assert_eq!(buf, vec![0u8; 4096], "cache_mb {cache_mb}: after unmap");
        vol.write(0, &vec![4u8; CS as usize]).unwrap();
        vol.read(8192, &mut buf).unwrap();
        assert_eq!(
            buf,
            vec![4u8; 4096],
            "cache_mb {cache_mb}: rewritten after unmap"
        );
        let s = vol.stats();
        eprintln!("cache_mb {cache_mb}: {}", s.to_json());
        vol.close();
        drop(vol);
        Volume::destroy(&backend, &uri, false).unwrap();
    }
}
