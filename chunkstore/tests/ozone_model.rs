// SPDX-License-Identifier: Apache-2.0
//! Randomized model test against a real Ozone cluster.
//!
//! 10,000 operations (reads, writes, write-zeroes, unmaps; one block to 8 MiB,
//! log-uniform, at random offsets) on a 1 GiB volume, many in flight at once.
//! Every read is checked against a reference model; then the volume is closed,
//! reopened and read whole. The seed is printed; rerun with OZBD_SEED=<seed>.
//! Needs `eval "$(scripts/ozone-local env)"` (OZONE_OM_ADDRESS); skips loudly
//! without it unless OZBD_REQUIRE_OZONE=1.

#![cfg(feature = "libhdfs")]

mod common;
use common::om_address;

use std::sync::mpsc;
use std::time::Instant;

use ozbd_chunkstore::{
    connect, ConnectOptions, CreateOptions, Op, OpenOptions, SgList, Volume, VolumeUri,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn env_usize(k: &str, d: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn pattern(off: u64, len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    for (i, b) in v.iter_mut().enumerate() {
        let p = off + i as u64;
        *b = ((p / 8).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ seed.wrapping_mul(0xD6E8_FEB8_6659_FD93))
        .rotate_left((p % 8) as u32 * 8) as u8;
    }
    v
}

/// Per in-flight slot: buffer, expected read content (None for mutations), description.
type Slot = Option<(Box<[u8]>, Option<Vec<u8>>, String)>;

#[test]
#[ignore = "long (minutes, real Ozone): scripts/test-all runs it with --ignored"]
fn random_ops_match_model_on_ozone() {
    let Some(om) = om_address() else { return };
    let seed: u64 = std::env::var("OZBD_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen_range(0..1_000_000));
    let ops = env_usize("OZBD_MODEL_OPS", 10_000);
    let depth = env_usize("OZBD_MODEL_DEPTH", 16);
    // 1 MiB chunks keep CI within its time limit; the engine logic is the same at any
    // chunk size (OZBD_MODEL_CHUNK=4194304 runs the default size).
    let chunk = env_usize("OZBD_MODEL_CHUNK", 1 << 20) as u64;
    let size: u64 = 1 << 30;
    let bs: u64 = 4096;
    eprintln!("ozone model test: seed {seed} (rerun with OZBD_SEED={seed}), {ops} ops, depth {depth}, chunk {chunk}");
    let uri = VolumeUri::parse(&format!(
        "ofs://{om}/ozbdtest/model/run-{seed}-{}",
        std::process::id()
    ))
    .unwrap();
    let backend = connect(&uri, &ConnectOptions::default()).unwrap();
    let mut copts = CreateOptions::new(size);
    copts.chunk_size = chunk;
    let oopts = OpenOptions {
        workers: depth,
        ..OpenOptions::default()
    };
    let (vol, _) = Volume::create(backend.clone(), &uri, &copts, &oopts).unwrap();

    let mut rng = SmallRng::seed_from_u64(seed);
    let mut model = vec![0u8; size as usize];
    let max_blocks = (8u64 << 20) / bs;
    let (tx, rx) = mpsc::channel::<(usize, ozbd_chunkstore::Result<()>)>();
    let mut slots: Vec<Slot> = (0..depth).map(|_| None).collect();
    let mut free: Vec<usize> = (0..depth).collect();
    let (mut checked, mut bytes) = (0u64, 0u64);
    let start = Instant::now();
    let mut reap = |slots: &mut Vec<Slot>, free: &mut Vec<usize>| {
        let (slot, r) = rx.recv().unwrap();
        let (buf, expect, what) = slots[slot].take().unwrap();
        if let Err(e) = r {
            panic!("seed {seed}: {what} failed: {e}");
        }
        if let Some(want) = expect {
            assert!(
                buf[..] == want[..],
                "seed {seed}: {what} returned data that differs from the model"
            );
            checked += 1;
        }
        free.push(slot);
    };
    for i in 0..ops {
        if free.is_empty() {
            reap(&mut slots, &mut free);
        }
        let slot = free.pop().unwrap();
        let nb = (2f64.powf(rng.gen_range(0.0..=(max_blocks as f64).log2())) as u64)
            .clamp(1, max_blocks);
        let start_block = rng.gen_range(0..=size / bs - nb);
        let (off, len) = (start_block * bs, nb * bs);
        let r = off as usize..(off + len) as usize;
        bytes += len;
        let (op, buf, expect) = match rng.gen_range(0..100) {
            0..=39 => (
                Op::Read,
                vec![0xEEu8; len as usize].into_boxed_slice(),
                Some(model[r].to_vec()),
            ),
            40..=74 => {
                let d = pattern(off, len as usize, i as u64 + seed);
                model[r].copy_from_slice(&d);
                (Op::Write, d.into_boxed_slice(), None)
            }
            75..=87 => {
                model[r].fill(0);
                (Op::WriteZeroes, Box::default(), None)
            }
            _ => {
                model[r].fill(0);
                (Op::Unmap, Box::default(), None)
            }
        };
        let what = format!("op #{i} {op:?} {off}+{len}");
        slots[slot] = Some((buf, expect, what));
        let b = &mut slots[slot].as_mut().unwrap().0;
        let sg = if b.is_empty() {
            SgList::empty()
        } else {
            unsafe { SgList::from_slice(b) }
        };
        let txc = tx.clone();
        unsafe {
            vol.submit(
                op,
                off,
                len,
                sg,
                Box::new(move |r| txc.send((slot, r)).unwrap()),
            )
        };
        if (i + 1) % 1000 == 0 {
            eprintln!(
                "  {} ops, {:.0} s, {:.1} MiB/s",
                i + 1,
                start.elapsed().as_secs_f64(),
                bytes as f64 / (1 << 20) as f64 / start.elapsed().as_secs_f64()
            );
        }
    }
    while free.len() < depth {
        reap(&mut slots, &mut free);
    }
    let secs = start.elapsed().as_secs_f64();
    let st = vol.stats();
    eprintln!("ozone model test: {ops} ops ({checked} reads checked, {:.0} MiB moved) in {secs:.1} s; {st:?}", bytes as f64 / (1 << 20) as f64);
    vol.close();
    drop(vol);

    let vol = Volume::open(backend.clone(), &uri, &oopts).unwrap();
    let step = 64 << 20;
    let mut buf = vec![0u8; step];
    for off in (0..size).step_by(step) {
        vol.read(off, &mut buf).unwrap();
        assert!(
            buf[..] == model[off as usize..off as usize + step],
            "seed {seed}: after reopen, [{off}, +64 MiB) differs from the model"
        );
    }
    eprintln!(
        "ozone model test: reopened and verified all 1 GiB in {:.1} s total",
        start.elapsed().as_secs_f64()
    );
    drop(vol);
    Volume::destroy(&backend, &uri, false).unwrap();
}
