// SPDX-License-Identifier: Apache-2.0
//! Benchmark: random reads at a fixed queue depth through the engine.
//!
//! Owns: filling a volume region once, then timing random reads of one size
//! at QD N in phases: "cold" with the read cache off, "cold" with it on (the
//! cache warming), and "hot" (after a sequential pass warmed the cache).
//! Prints one line per phase and the engine's counters.
//! Must never: assert a speed (the machines are shared and noisy), or write
//! to a volume it did not create (it refuses an existing directory unless
//! `--reuse` is given, and then only reads after checking the size).
//!
//! ```text
//! eval "$(scripts/ozone-local env)"
//! cargo run --release -p ozbd-chunkstore --example randread -- \
//!     ofs://$OZONE_OM_ADDRESS/vol1/bench/randread --size 128M --qd 32 --secs 20
//! ```

use std::time::{Duration, Instant};

mod common;
use common::parse_size;

use ozbd_chunkstore::{
    connect, ConnectOptions, CreateOptions, Error, Op, OpenOptions, Result, Volume, VolumeUri,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

struct Args {
    uri: String,
    size: u64,
    qd: usize,
    bs: usize,
    secs: u64,
    cache_mb: u64,
    workers: usize,
    reuse: bool,
    phases: String,
}

fn args() -> std::result::Result<Args, String> {
    let mut a = Args {
        uri: String::new(),
        size: 128 << 20,
        qd: 32,
        bs: 4096,
        secs: 20,
        cache_mb: 256,
        workers: ozbd_chunkstore::DEFAULT_WORKERS,
        reuse: false,
        phases: "off,cold,hot".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or(format!("{k} needs a value"));
        match k.as_str() {
            "--size" => a.size = parse_size(&v()?).ok_or("bad --size")?,
            "--bs" => a.bs = parse_size(&v()?).ok_or("bad --bs")? as usize,
            "--qd" => a.qd = v()?.parse().map_err(|_| "bad --qd")?,
            "--secs" => a.secs = v()?.parse().map_err(|_| "bad --secs")?,
            "--cache-mb" => a.cache_mb = v()?.parse().map_err(|_| "bad --cache-mb")?,
            "--workers" => a.workers = v()?.parse().map_err(|_| "bad --workers")?,
            "--phases" => a.phases = v()?,
            "--reuse" => a.reuse = true,
            _ if a.uri.is_empty() && !k.starts_with('-') => a.uri = k,
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    if a.uri.is_empty() {
        return Err("usage: randread URI [--size 128M] [--bs 4K] [--qd 32] [--secs 20] [--cache-mb 256] [--workers 32] [--phases off,cold,hot] [--reuse]".into());
    }
    Ok(a)
}

/// Random reads of `bs` at QD `qd` for `secs`; returns IOPS.
fn random_reads(vol: &Volume, a: &Args, seed: u64) -> Result<f64> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let blocks = a.size / a.bs as u64;
    common::at_queue_depth(vol, Op::Read, a.bs, a.qd, a.secs, |_, _| {
        rng.gen_range(0..blocks) * a.bs as u64
    })
}

/// Read the whole region sequentially, 1 MiB at a time.
fn sequential_pass(vol: &Volume, size: u64) -> Result<f64> {
    let mut buf = vec![0u8; 1 << 20];
    let start = Instant::now();
    let mut off = 0;
    while off < size {
        let n = (size - off).min(buf.len() as u64) as usize;
        vol.read(off, &mut buf[..n])?;
        off += n as u64;
    }
    Ok(size as f64 / start.elapsed().as_secs_f64() / (1 << 20) as f64)
}

fn run(a: &Args) -> Result<()> {
    let uri = VolumeUri::parse(&a.uri)?;
    // A loaded machine can take minutes to start the JVM and reach the OM.
    let co = ConnectOptions {
        timeout: Duration::from_secs(600),
        ..ConnectOptions::default()
    };
    let backend = connect(&uri, &co)?;
    let open = |cache_mb: u64| -> Result<Volume> {
        let o = OpenOptions {
            cache_mb,
            workers: a.workers,
            ..OpenOptions::default()
        };
        Volume::open(backend.clone(), &uri, &o)
    };
    if backend.stat(&uri.dir)?.is_some() {
        if !a.reuse {
            return Err(Error::AlreadyExists(format!(
                "{} exists: pass --reuse to read an existing benchmark volume, or choose a fresh path",
                uri.canonical()
            )));
        }
        let vol = open(0)?;
        if vol.superblock().size < a.size {
            return Err(Error::InvalidArgument(format!(
                "{} holds {} bytes, fewer than --size",
                uri.canonical(),
                vol.superblock().size
            )));
        }
    } else {
        let t = Instant::now();
        let o = OpenOptions::default();
        let (vol, _) = Volume::create(backend.clone(), &uri, &CreateOptions::new(a.size), &o)?;
        let cs = vol.superblock().chunk_size;
        let mut data = vec![0u8; cs as usize];
        let mut off = 0;
        while off < a.size {
            let n = (a.size - off).min(cs) as usize;
            for (i, b) in data[..n].iter_mut().enumerate() {
                *b = ((off + i as u64) / 4096) as u8 | 1;
            }
            vol.write(off, &data[..n])?;
            off += n as u64;
        }
        eprintln!(
            "randread: filled {} MiB in {:.1} s",
            a.size >> 20,
            t.elapsed().as_secs_f64()
        );
    }
    eprintln!(
        "randread: {} at QD {} with {} workers, {} s per phase, on {}",
        a.bs,
        a.qd,
        a.workers,
        a.secs,
        backend.describe()
    );
    for phase in a.phases.split(',') {
        let (cache_mb, warm) = match phase {
            "off" => (0, false),
            "cold" => (a.cache_mb, false),
            "hot" => (a.cache_mb, true),
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "unknown phase {phase}: use off, cold, hot"
                )))
            }
        };
        let vol = open(cache_mb)?;
        if warm {
            let mibs = sequential_pass(&vol, a.size)?;
            eprintln!("randread: sequential warm-up pass {mibs:.1} MiB/s");
        }
        let iops = random_reads(&vol, a, 7)?;
        let s = vol.stats();
        println!(
            "phase {phase:>4} (cache_mb {cache_mb}): {iops:.0} IOPS  [chunk_reads {} cache hits {} misses {} readahead {} bytes {}]",
            s.chunk_reads, s.cache.hits, s.cache.misses, s.cache.readahead, s.cache.bytes
        );
    }
    Ok(())
}

fn main() {
    common::main_with("randread", args, run);
}
