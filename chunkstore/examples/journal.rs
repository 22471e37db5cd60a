// SPDX-License-Identifier: Apache-2.0
//! Benchmark: journaled 4 KiB random writes at a fixed queue depth with N
//! journal streams, and the time a replay takes at the next open.
//!
//! Owns: `write` (create a volume, write for `--secs`, print IOPS and the
//! journal's counters, then end the process without closing the volume, as a
//! crash would: the journal keeps what was not destaged, its last segment
//! still open in Ozone) and `replay` (open the volume, print how long the
//! open took and what it replayed, close it).
//! Must never: assert a speed (the machines are shared and noisy), or write
//! to a volume it did not create (`write` refuses an existing directory).
//!
//! ```text
//! eval "$(scripts/ozone-local env)"
//! cargo run --release -p ozbd-chunkstore --example journal -- \
//!     write ofs://$OZONE_OM_ADDRESS/vol1/bench/j1 --size 256M --streams 2 --secs 20
//! cargo run --release -p ozbd-chunkstore --example journal -- \
//!     replay ofs://$OZONE_OM_ADDRESS/vol1/bench/j1
//! ```

use std::time::{Duration, Instant};

mod common;
use common::parse_size;

use ozbd_chunkstore::{
    connect, ConnectOptions, CreateOptions, Error, JournalMode, Op, OpenOptions, Result, Volume,
    VolumeUri,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

struct Args {
    phase: String,
    uri: String,
    size: u64,
    qd: usize,
    secs: u64,
    streams: usize,
    journal_mb: u64,
}

fn args() -> std::result::Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let usage = "usage: journal write|replay URI [--size 256M] [--qd 32] [--secs 20] [--streams 1] [--journal-mb 256]";
    let phase = it.next().ok_or(usage)?;
    let uri = it.next().ok_or(usage)?;
    let mut a = Args {
        phase,
        uri,
        size: 256 << 20,
        qd: 32,
        secs: 20,
        streams: ozbd_chunkstore::defaults::DEFAULT_JOURNAL_STREAMS,
        journal_mb: ozbd_chunkstore::defaults::DEFAULT_JOURNAL_MB,
    };
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or(format!("{k} needs a value"));
        match k.as_str() {
            "--size" => a.size = parse_size(&v()?).ok_or("bad --size")?,
            "--qd" => a.qd = v()?.parse().map_err(|_| "bad --qd")?,
            "--secs" => a.secs = v()?.parse().map_err(|_| "bad --secs")?,
            "--streams" => a.streams = v()?.parse().map_err(|_| "bad --streams")?,
            "--journal-mb" => a.journal_mb = v()?.parse().map_err(|_| "bad --journal-mb")?,
            _ => return Err(format!("unknown argument {k}\n{usage}")),
        }
    }
    Ok(a)
}

fn options(a: &Args) -> OpenOptions {
    OpenOptions {
        journal: JournalMode::Ozone,
        journal_mb: a.journal_mb,
        journal_streams: a.streams,
        ..OpenOptions::default()
    }
}

fn write(a: &Args, vol: &Volume) -> Result<f64> {
    let blocks = a.size / 4096;
    let mut rng = SmallRng::seed_from_u64(7);
    common::at_queue_depth(vol, Op::Write, 4096, a.qd, a.secs, |buf, n| {
        buf.fill((n % 251) as u8 + 1);
        rng.gen_range(0..blocks) * 4096
    })
}

fn run(a: &Args) -> Result<()> {
    let uri = VolumeUri::parse(&a.uri)?;
    let co = ConnectOptions {
        timeout: Duration::from_secs(600),
        ..ConnectOptions::default()
    };
    let backend = connect(&uri, &co)?;
    match a.phase.as_str() {
        "write" => {
            if backend.stat(&uri.dir)?.is_some() {
                return Err(Error::AlreadyExists(format!(
                    "{} exists: choose a fresh path",
                    uri.canonical()
                )));
            }
            let (vol, _) = Volume::create(
                backend.clone(),
                &uri,
                &CreateOptions::new(a.size),
                &options(a),
            )?;
            let iops = write(a, &vol)?;
            let j = vol.stats().journal;
            println!(
                "{{\"phase\":\"write\",\"streams\":{},\"qd\":{},\"size\":{},\"iops\":{iops:.1},\"records\":{},\"hsyncs\":{},\"records_per_hsync\":{:.1},\"dirty_bytes\":{},\"segments\":{},\"journal_bytes\":{}}}",
                a.streams, a.qd, a.size, j.records, j.hsyncs, j.records_per_hsync, j.dirty_bytes, j.segments, j.journal_bytes
            );
            // A crash: no close, no destage; the journal keeps the rest.
            std::process::exit(0);
        }
        "replay" => {
            let t = Instant::now();
            let vol = Volume::open(backend.clone(), &uri, &options(a))?;
            let secs = t.elapsed().as_secs_f64();
            let j = vol.stats().journal;
            println!(
                "{{\"phase\":\"replay\",\"size\":{},\"open_s\":{secs:.2},\"replayed_records\":{},\"dirty_bytes\":{},\"segments\":{},\"journal_bytes\":{}}}",
                vol.superblock().size, j.replayed_records, j.dirty_bytes, j.segments, j.journal_bytes
            );
            vol.close();
            Ok(())
        }
        p => Err(Error::InvalidArgument(format!(
            "unknown phase {p}: use write or replay"
        ))),
    }
}

fn main() {
    common::main_with("journal", args, run);
}
