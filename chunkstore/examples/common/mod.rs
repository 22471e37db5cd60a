// SPDX-License-Identifier: Apache-2.0
//! What the engine's example benchmarks share: size arguments, the entry
//! point that turns an error into an exit code, and keeping N requests in
//! flight until a deadline.
//! Must never: assert a speed.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use ozbd_chunkstore::{Error, Op, Result, SgList, Volume};

/// "256M", "4K", "64G" or a byte count.
pub fn parse_size(s: &str) -> Option<u64> {
    let (n, mul) = match s.chars().last()? {
        'K' | 'k' => (&s[..s.len() - 1], 1u64 << 10),
        'M' | 'm' => (&s[..s.len() - 1], 1 << 20),
        'G' | 'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    n.parse::<u64>().ok()?.checked_mul(mul)
}

/// Parse the arguments, run, and exit 2 on a usage error, 1 on a failure.
pub fn main_with<A>(
    name: &str,
    args: impl FnOnce() -> std::result::Result<A, String>,
    run: impl FnOnce(&A) -> Result<()>,
) {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{name}: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&a) {
        eprintln!("{name}: {e}");
        std::process::exit(1);
    }
}

/// Keep `qd` requests of `op` and `bs` bytes in flight for `secs`, at the
/// offsets `next` picks (it also fills a write's buffer, given the request
/// number); returns the requests completed per second.
pub fn at_queue_depth(
    vol: &Volume,
    op: Op,
    bs: usize,
    qd: usize,
    secs: u64,
    mut next: impl FnMut(&mut [u8], u64) -> u64,
) -> Result<f64> {
    let mut bufs: Vec<Box<[u8]>> = (0..qd).map(|_| vec![0u8; bs].into()).collect();
    let (tx, rx) = mpsc::channel::<(usize, Result<()>)>();
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let mut n = 0u64;
    let mut submit = |slot: usize, bufs: &mut [Box<[u8]>], n: u64| {
        let off = next(&mut bufs[slot], n);
        let tx = tx.clone();
        // SAFETY: the slot's buffer is not touched until its completion arrives.
        let sg = unsafe { SgList::from_slice(&mut bufs[slot]) };
        unsafe {
            vol.submit(
                op,
                off,
                bs as u64,
                sg,
                Box::new(move |r| {
                    let _ = tx.send((slot, r));
                }),
            )
        };
    };
    for slot in 0..qd {
        submit(slot, &mut bufs, slot as u64);
    }
    let mut inflight = qd;
    while inflight > 0 {
        let (slot, r) = rx.recv().map_err(|_| Error::Closed)?;
        inflight -= 1;
        r?;
        n += 1;
        if Instant::now() < end {
            submit(slot, &mut bufs, n + qd as u64);
            inflight += 1;
        }
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}
