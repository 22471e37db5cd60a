// SPDX-License-Identifier: Apache-2.0
//! Benchmark: whole-chunk writes and reads through the engine next to the same
//! number of same-sized files written and read directly through the backend
//! (raw libhdfs for ofs:// and file://), measured in the same run.
//!
//! Owns: the measurement loop and its table. Must never: assert an absolute
//! speed (machines are shared and noisy; only the ratio is the figure), or
//! leave its scratch directory behind on success.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use ozbd_backend::join;
use ozbd_chunkstore::{CreateOptions, Error, Op, Result, Volume, VolumeUri};

use crate::pipeline::Pipeline;
use crate::{human, Ctx};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn run(
    ctx: &Ctx,
    uri: &VolumeUri,
    size: u64,
    chunk_size: u64,
    depth: usize,
    rounds: usize,
) -> Result<()> {
    let backend = ctx.backend(uri)?;
    if backend.stat(&uri.dir)?.is_some() {
        return Err(Error::AlreadyExists(format!(
            "{} exists: the benchmark needs a fresh directory it can delete afterwards",
            uri.canonical()
        )));
    }
    let vol_uri = VolumeUri {
        dir: join(&uri.dir, "vol"),
        ..uri.clone()
    };
    let raw_dir = join(&uri.dir, "raw");
    let chunks = size / chunk_size;
    let mut copts = CreateOptions::new(chunks * chunk_size);
    copts.chunk_size = chunk_size;
    let mut oopts = ctx.open_opts();
    oopts.workers = depth;
    let (vol, _) = Volume::create(backend.clone(), &vol_uri, &copts, &oopts)?;
    backend.mkdirs(&raw_dir)?;
    let data: Vec<u8> = (0..chunk_size as usize)
        .map(|i| (i as u8) ^ 0x5A | 1)
        .collect();
    let total = chunks * chunk_size;
    eprintln!(
        "bench: {} in {chunks} chunks of {} on {}, {depth} in flight, {rounds} rounds",
        human(total),
        human(chunk_size),
        backend.describe()
    );

    let engine = |op: Op| -> Result<f64> {
        let start = Instant::now();
        let mut pipe = Pipeline::new(&vol, depth, chunk_size as usize);
        for c in 0..chunks {
            let slot = pipe.slot(|_, _| Ok(()))?;
            if op == Op::Write {
                pipe.buf(slot).copy_from_slice(&data);
            }
            pipe.submit(slot, op, c * chunk_size, chunk_size as usize);
        }
        pipe.drain(|_, _| Ok(()))?;
        Ok(total as f64 / start.elapsed().as_secs_f64())
    };
    let raw = |write: bool| -> Result<f64> {
        let start = Instant::now();
        let next = Arc::new(AtomicU64::new(0));
        let results: Vec<Result<()>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..depth)
                .map(|_| {
                    let (next, backend, raw_dir, data) = (next.clone(), &backend, &raw_dir, &data);
                    s.spawn(move || -> Result<()> {
                        let mut buf = vec![0u8; chunk_size as usize];
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= chunks {
                                return Ok(());
                            }
                            let path = join(raw_dir, &format!("f{i:08}"));
                            if write {
                                backend.put(&path, data)?;
                            } else {
                                let mut at = 0;
                                while at < buf.len() {
                                    let n = backend.read_at(&path, at as u64, &mut buf[at..])?;
                                    if n == 0 {
                                        break;
                                    }
                                    at += n;
                                }
                            }
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(Err(Error::Closed)))
                .collect()
        });
        results.into_iter().collect::<Result<Vec<()>>>()?;
        Ok(total as f64 / start.elapsed().as_secs_f64())
    };

    let (mut ew, mut rw, mut er, mut rr) = (vec![], vec![], vec![], vec![]);
    for r in 0..rounds {
        ew.push(engine(Op::Write)?);
        rw.push(raw(true)?);
        er.push(engine(Op::Read)?);
        rr.push(raw(false)?);
        eprintln!(
            "bench: round {}: engine write {}/s, raw write {}/s, engine read {}/s, raw read {}/s",
            r + 1,
            human(ew[r] as u64),
            human(rw[r] as u64),
            human(er[r] as u64),
            human(rr[r] as u64)
        );
    }
    let stats = vol.stats();
    vol.close();
    drop(vol);
    Volume::destroy(&backend, &vol_uri, false)?;
    backend.delete(&uri.dir, true)?;

    let (ew, rw, er, rr) = (median(ew), median(rw), median(er), median(rr));
    println!(
        "| whole-chunk I/O ({} x {}, depth {depth}) | engine MiB/s | raw backend MiB/s | engine / raw |",
        chunks,
        human(chunk_size)
    );
    println!("|---|---:|---:|---:|");
    let mib = |v: f64| v / (1 << 20) as f64;
    println!(
        "| write | {:.1} | {:.1} | {:.2} |",
        mib(ew),
        mib(rw),
        ew / rw
    );
    println!(
        "| read | {:.1} | {:.1} | {:.2} |",
        mib(er),
        mib(rr),
        er / rr
    );
    println!(
        "engine counters: chunk_puts {} chunk_reads {} rmw {}",
        stats.chunk_puts, stats.chunk_reads, stats.rmw
    );
    Ok(())
}
