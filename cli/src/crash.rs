// SPDX-License-Identifier: Apache-2.0
//! Crash-test tools: a writer meant to be killed, and a checker for what it left.
//!
//! Owns: the writer's log format ("B id off len" before a write is submitted,
//! "A id" after it completed) and the check that, per chunk, the volume holds
//! the result of a prefix of the writes submitted to that chunk which includes
//! every completed one (no lost acknowledged write, no mix of old and new).
//! A failed check names its case: "lost acknowledged write" (the chunk holds an
//! older prefix) or "torn chunk" (it holds no prefix at all).
//! Must never: be used on a volume holding data anyone wants.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Write;
use std::sync::{mpsc, Arc, Mutex};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use ozbd_chunkstore::{Error, Op, Result, SgList, VolumeUri};

use crate::Ctx;

/// The bytes write `id` puts at absolute volume offset `off`.
pub fn pattern(id: u64, off: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    fill_pattern(id, off, &mut v);
    v
}

fn fill_pattern(id: u64, off: u64, buf: &mut [u8]) {
    let key = (id + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for (i, b) in buf.iter_mut().enumerate() {
        let pos = off + i as u64;
        let word = key ^ (pos / 8).wrapping_mul(0xD6E8_FEB8_6659_FD93);
        *b = (word >> ((pos % 8) * 8)) as u8;
    }
}

pub fn run_writer(ctx: &Ctx, uri: &VolumeUri, seed: u64, ops: u64, depth: usize) -> Result<()> {
    let vol = ctx.open(uri)?;
    let sb = vol.superblock().clone();
    let bs = sb.block_size as u64;
    let blocks = sb.size / bs;
    let max_blocks = (sb.chunk_size * 3 / 2 / bs).max(1);
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let say = |line: String| {
        let mut o = out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(o, "{line}");
        let _ = o.flush();
    };
    say(format!("READY {}", sb.size));
    let mut rng = SmallRng::seed_from_u64(seed);
    let (tx, rx) = mpsc::channel::<(u64, Result<()>)>();
    let mut inflight = 0;
    let mut bufs: HashMap<u64, Vec<u8>> = HashMap::new();
    for n in 0..ops {
        while inflight >= depth {
            let (id, r) = rx.recv().map_err(|_| Error::Closed)?;
            r?;
            bufs.remove(&id);
            inflight -= 1;
        }
        let id = seed * 1_000_000 + n;
        // Log-uniform sizes: mostly small, some spanning chunks.
        let nb =
            (2f64.powf(rng.gen_range(0.0..(max_blocks as f64).log2())) as u64).clamp(1, max_blocks);
        let start = rng.gen_range(0..=blocks - nb);
        let (off, len) = (start * bs, nb * bs);
        let data = pattern(id, off, len as usize);
        say(format!("B {id} {off} {len}"));
        // SAFETY: the buffer lives in `bufs` until its completion is received.
        let sg = unsafe { SgList::from_const_slice(&data) };
        bufs.insert(id, data);
        let (tx2, out2) = (tx.clone(), out.clone());
        let done = Box::new(move |r: Result<()>| {
            if r.is_ok() {
                let mut o = out2.lock().unwrap_or_else(|e| e.into_inner());
                let _ = writeln!(o, "A {id}");
                let _ = o.flush();
            }
            let _ = tx2.send((id, r));
        });
        // SAFETY: see above.
        unsafe { vol.submit(Op::Write, off, len, sg, done) };
        inflight += 1;
    }
    while inflight > 0 {
        let (_, r) = rx.recv().map_err(|_| Error::Closed)?;
        r?;
        inflight -= 1;
    }
    Ok(())
}

/// Verify the volume against the writer's log and the image before the run,
/// then store the volume's content as the next run's image.
pub fn check(ctx: &Ctx, uri: &VolumeUri, log: &str, model: &str) -> Result<String> {
    let bad = |m: String| Error::Corrupt(m);
    let vol = ctx.open_readonly(uri)?;
    let sb = vol.superblock().clone();
    let mut image = match fs::read(model) {
        Ok(v) if v.len() as u64 == sb.size => v,
        Ok(_) | Err(_) => vec![0u8; sb.size as usize],
    };
    let text = fs::read_to_string(log).map_err(|e| bad(format!("cannot read {log}: {e}")))?;
    let mut writes: Vec<(u64, u64, u64)> = Vec::new();
    let mut acked: HashSet<u64> = HashSet::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["B", id, off, len] => {
                let p = |s: &str| {
                    s.parse::<u64>()
                        .map_err(|_| bad(format!("bad log line '{line}'")))
                };
                writes.push((p(id)?, p(off)?, p(len)?));
            }
            ["A", id] => {
                acked.insert(
                    id.parse()
                        .map_err(|_| bad(format!("bad log line '{line}'")))?,
                );
            }
            _ => {}
        }
    }
    let cs = sb.chunk_size;
    let (mut applied_unacked, mut not_applied) = (0, 0);
    for c in 0..sb.chunk_count() {
        let cstart = c * cs;
        let clen = sb.chunk_len(c);
        let touching: Vec<&(u64, u64, u64)> = writes
            .iter()
            .filter(|(_, o, l)| *o < cstart + clen && o + l > cstart)
            .collect();
        let mut actual = vec![0u8; clen as usize];
        vol.read(cstart, &mut actual)?;
        let must = touching
            .iter()
            .rposition(|(id, _, _)| acked.contains(id))
            .map_or(0, |i| i + 1);
        let mut cur = image[cstart as usize..(cstart + clen) as usize].to_vec();
        // The first prefix that includes every acknowledged write and matches, else the first
        // shorter one that matches (which tells a lost write from a torn chunk).
        let (mut matched, mut short) = (None, None);
        for k in 0..=touching.len() {
            if k > 0 {
                let (id, o, l) = *touching[k - 1];
                let s = o.max(cstart);
                let e = (o + l).min(cstart + clen);
                fill_pattern(
                    id,
                    s,
                    &mut cur[(s - cstart) as usize..(e - cstart) as usize],
                );
            }
            if cur == actual {
                if k >= must {
                    matched = Some(k);
                    break;
                }
                short.get_or_insert(k);
            }
        }
        let Some(k) = matched else {
            // The last acknowledged write to this chunk (must >= 1 when a shorter prefix matched).
            let last_acked = touching
                .get(must.wrapping_sub(1))
                .map_or_else(|| "?".to_string(), |w| w.0.to_string());
            return Err(bad(match short {
                Some(k) => format!(
                    "chunk {c}: lost acknowledged write: the chunk holds the result of only its first {k} of {} writes, \
                     but write {last_acked} (its write number {must}) was acknowledged",
                    touching.len()
                ),
                None => format!(
                    "chunk {c}: torn chunk: its content is none of the {} states its {} logged writes can leave \
                     (part old, part new data)",
                    touching.len() + 1,
                    touching.len()
                ),
            }));
        };
        applied_unacked += k - must;
        not_applied += touching.len() - k;
        image[cstart as usize..(cstart + clen) as usize].copy_from_slice(&actual);
    }
    fs::write(model, &image).map_err(|e| bad(format!("cannot write {model}: {e}")))?;
    Ok(format!(
        "ok: {} chunks consistent; {} writes logged, {} acknowledged and all present; unacknowledged chunk updates: {} applied, {} not applied",
        sb.chunk_count(),
        writes.len(),
        acked.len(),
        applied_unacked,
        not_applied
    ))
}
