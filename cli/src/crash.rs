// SPDX-License-Identifier: Apache-2.0
//! Crash-test tools: a writer meant to be killed, and a checker for what it left.
//!
//! Owns: the writer's log format ("B id off len" before a write is submitted,
//! "A id" after it completed) and the check of what a block device promises
//! after a crash, chunk by chunk: the chunk holds the writes submitted to it
//! applied in submission order, every acknowledged write among them, and any
//! subset of the unacknowledged ones, each of those whole within the chunk.
//! (Writes in flight together have no order: a later write may be
//! acknowledged, and survive, while an earlier one is lost.) A failed check
//! names its case: "lost acknowledged write" (a block holds data older than
//! an acknowledged write to it), "torn chunk" (a write is in some of its
//! blocks of the chunk and not in others) or "foreign data" (a block holds
//! none of its writes, nor its content before them).
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
    let bs = sb.block_size as u64;
    let (mut applied_unacked, mut not_applied) = (0, 0);
    for c in 0..sb.chunk_count() {
        let cstart = c * cs;
        let clen = sb.chunk_len(c);
        let touching: Vec<(u64, u64, u64)> = writes
            .iter()
            .filter(|(_, o, l)| *o < cstart + clen && o + l > cstart)
            .copied()
            .collect();
        let mut actual = vec![0u8; clen as usize];
        vol.read(cstart, &mut actual)?;
        let before = &image[cstart as usize..(cstart + clen) as usize];
        let (a, n) = judge_chunk(c, cstart, bs, before, &actual, &touching, &acked).map_err(bad)?;
        applied_unacked += a;
        not_applied += n;
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

/// Whether one write is in a chunk's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applied {
    Unknown,
    Yes,
    No,
}

/// Check one chunk (at volume offset `cstart`, `before` its content before
/// the run, `actual` its content now) against the writes that touch it, in
/// submission order. Every block names the write it holds (or its earlier
/// content); that says of each write whether it is applied (it shows), or
/// not (an earlier write or the earlier content shows where it would lie on
/// top). The chunk is consistent when no write is said to be both, and every
/// acknowledged write is applied. Returns (unacknowledged writes applied,
/// unacknowledged writes shown not applied) or what is wrong.
fn judge_chunk(
    c: u64,
    cstart: u64,
    bs: u64,
    before: &[u8],
    actual: &[u8],
    touching: &[(u64, u64, u64)],
    acked: &HashSet<u64>,
) -> std::result::Result<(usize, usize), String> {
    let mut state = vec![Applied::Unknown; touching.len()];
    let mut want = vec![0u8; bs as usize];
    let clen = actual.len() as u64;
    for b in (0..clen).step_by(bs as usize) {
        let (lo, hi) = (b as usize, (b + bs).min(clen) as usize);
        let got = &actual[lo..hi];
        let abs = cstart + b;
        // The writes covering this block, oldest first.
        let cover: Vec<usize> = (0..touching.len())
            .filter(|&i| {
                let (_, o, l) = touching[i];
                o <= abs && abs < o + l
            })
            .collect();
        let holder = cover.iter().rposition(|&i| {
            let w = &mut want[..hi - lo];
            fill_pattern(touching[i].0, abs, w);
            w == got
        });
        let shown_from = match holder {
            Some(k) => {
                let i = cover[k];
                if state[i] == Applied::No {
                    return Err(torn(c, touching[i].0, abs));
                }
                state[i] = Applied::Yes;
                k + 1
            }
            None if got == &before[lo..hi] => 0,
            None => {
                return Err(format!(
                    "chunk {c}: foreign data: the block at offset {abs} holds none of the {} writes to it, nor its content before them",
                    cover.len()
                ))
            }
        };
        // Every write on top of the one shown is not in this chunk.
        for &i in &cover[shown_from..] {
            let (id, _, _) = touching[i];
            if acked.contains(&id) {
                let shown = holder.map_or_else(
                    || "its content from before this run".to_string(),
                    |k| format!("write {}", touching[cover[k]].0),
                );
                return Err(format!(
                    "chunk {c}: lost acknowledged write: the block at offset {abs} holds {shown}, but write {id}, submitted after it, was acknowledged"
                ));
            }
            if state[i] == Applied::Yes {
                return Err(torn(c, id, abs));
            }
            state[i] = Applied::No;
        }
    }
    let mut applied_unacked = 0;
    let mut not_applied = 0;
    for (i, (id, _, _)) in touching.iter().enumerate() {
        match (acked.contains(id), state[i]) {
            (false, Applied::Yes) => applied_unacked += 1,
            (false, Applied::No) => not_applied += 1,
            _ => {}
        }
    }
    Ok((applied_unacked, not_applied))
}

fn torn(c: u64, id: u64, abs: u64) -> String {
    format!(
        "chunk {c}: torn chunk: write {id} shows in some of its blocks in this chunk and not in others (the block at offset {abs} disagrees)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const BS: u64 = 512;
    const CS: u64 = 8 * BS;

    /// A chunk's content after applying `ids` (writes from `ws`) in order.
    fn apply(ws: &[(u64, u64, u64)], ids: &[u64]) -> Vec<u8> {
        let mut v = vec![0u8; CS as usize];
        for &(id, o, l) in ws.iter().filter(|w| ids.contains(&w.0)) {
            fill_pattern(id, o, &mut v[o as usize..(o + l) as usize]);
        }
        v
    }

    fn judge(
        ws: &[(u64, u64, u64)],
        acked: &[u64],
        actual: &[u8],
    ) -> std::result::Result<(usize, usize), String> {
        let acked: HashSet<u64> = acked.iter().copied().collect();
        judge_chunk(0, 0, BS, &vec![0u8; CS as usize], actual, ws, &acked)
    }

    // Writes 1 (blocks 0-3), 2 (blocks 2-5), 3 (blocks 4-7), in that order.
    const WS: [(u64, u64, u64); 3] = [(1, 0, 4 * BS), (2, 2 * BS, 4 * BS), (3, 4 * BS, 4 * BS)];

    #[test]
    fn every_prefix_and_every_subset_with_the_acknowledged_writes_passes() {
        assert_eq!(judge(&WS, &[], &apply(&WS, &[])), Ok((0, 3)));
        assert_eq!(judge(&WS, &[1], &apply(&WS, &[1, 2])), Ok((1, 1)));
        assert_eq!(judge(&WS, &[1, 2, 3], &apply(&WS, &[1, 2, 3])), Ok((0, 0)));
        // Write 3 acknowledged, write 2 (submitted before it, in flight with
        // it) lost: allowed, and counted as not applied.
        assert_eq!(judge(&WS, &[1, 3], &apply(&WS, &[1, 3])), Ok((0, 1)));
    }

    #[test]
    fn a_lost_acknowledged_write_is_named() {
        let e = judge(&WS, &[1, 2], &apply(&WS, &[1])).unwrap_err();
        assert!(
            e.contains("lost acknowledged write") && e.contains("write 2"),
            "{e}"
        );
        let e = judge(&WS, &[1], &apply(&WS, &[])).unwrap_err();
        assert!(
            e.contains("lost acknowledged write") && e.contains("from before"),
            "{e}"
        );
    }

    #[test]
    fn a_write_applied_in_part_is_a_torn_chunk() {
        // Write 2 shows in block 5 but write 1 shows in block 2, under it.
        let mut v = apply(&WS, &[1, 2]);
        let b2 = (2 * BS) as usize..(3 * BS) as usize;
        v[b2.clone()].copy_from_slice(&apply(&WS, &[1])[b2]);
        let e = judge(&WS, &[1], &v).unwrap_err();
        assert!(e.contains("torn chunk") && e.contains("write 2"), "{e}");
        // Half of a block new, half old: data no write put there.
        let mut v = apply(&WS, &[1]);
        v[..(BS / 2) as usize].fill(0);
        let e = judge(&WS, &[], &v).unwrap_err();
        assert!(e.contains("foreign data"), "{e}");
    }
}
