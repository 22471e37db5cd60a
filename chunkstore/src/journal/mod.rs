// SPDX-License-Identifier: Apache-2.0
//! The write-ahead journal: small writes made durable in Ozone by group-committed
//! hsyncs of checksummed records, applied to chunks later by the destager.
//!
//! Owns: the journal mode a volume runs with, and (in its files) the record
//! format (`record`), segment files (`segment`), group commit (`commit`), the
//! in-memory map of journaled-but-not-destaged data (`dirty`), the destager
//! (`destage`) and replay at open (`replay`).
//! Must never: complete a write before the hsync that covers it has returned,
//! or let a read see a chunk's data older than a journaled write to it.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// Whether a volume's small writes go through the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JournalMode {
    /// Journal segments in `<volume>/journal/`, hsynced in Ozone (the default).
    #[default]
    Ozone,
    /// Every write is a read-modify-write of its chunk.
    None,
}

impl JournalMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            JournalMode::Ozone => "ozone",
            JournalMode::None => "none",
        }
    }
}

impl fmt::Display for JournalMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JournalMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "ozone" => Ok(JournalMode::Ozone),
            "none" => Ok(JournalMode::None),
            other => Err(Error::InvalidArgument(format!(
                "journal '{other}' is not known: use \"ozone\" (the default: small writes are journaled in the volume's Ozone directory) or \"none\" (every write rewrites its chunk)"
            ))),
        }
    }
}

mod commit;
mod destage;
mod gather;
mod lifecycle;
mod submit;

pub(crate) use lifecycle::inspect;
pub(crate) mod dirty;
pub(crate) mod record;
mod replay;
pub(crate) mod seal;
pub(crate) mod segment;

pub use replay::JournalInfo;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ozbd_backend::BackendRef;

use crate::chunk_io::Op;
use crate::scheduler::{Completion, Engine};
use crate::stats::{Counters, JournalStats};
use dirty::{DirtyMap, Payload};
use record::Header;

/// The destager applies journaled data once no write has arrived for this
/// long (a quiet volume), when the journal is half full or writers wait for
/// it, at close, or at the latest when data has been dirty `DESTAGE_MAX_AGE`.
/// Until then small writes to one chunk keep coalescing in memory.
pub(crate) const DESTAGE_QUIET: Duration = Duration::from_secs(1);
pub(crate) const DESTAGE_MAX_AGE: Duration = Duration::from_secs(30);
/// How long the destager waits after a failed checkpoint before it tries again.
pub(crate) const CHECKPOINT_RETRY: Duration = Duration::from_secs(1);
/// Most bytes one group commit (one append + hsync) carries.
const MAX_COMMIT_BYTES: u64 = 8 << 20;
/// After a group commit completes N writes, the next one waits for up to
/// this share of the last commit's time (at most `RETURN_WAIT_MAX`) while
/// those N writers have not yet sent their next writes, so that a queue of
/// 32 writes fills one hsync instead of alternating between two half
/// batches (commit.rs). It never waits when nothing was completed, ends
/// when they are all back, and also when no write has arrived for
/// `RETURN_WAIT_GAP` (in a mixed workload some writers come back with reads).
const RETURN_WAIT_DIVISOR: u32 = 4;
const RETURN_WAIT_MAX: Duration = Duration::from_millis(5);
const RETURN_WAIT_GAP: Duration = Duration::from_millis(2);

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs a completion, never letting its panic escape into the journal.
fn complete(done: Completion, r: crate::error::Result<()>, counters: &Counters) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| done(r))).is_err() {
        Counters::bump(&counters.panics);
        log::error!("a completion callback panicked; the engine goes on");
    }
}

/// One segment file.
#[derive(Debug, Clone)]
pub(crate) struct Seg {
    pub(crate) bytes: u64,
    /// Highest sequence number of a record in it (0: none).
    pub(crate) max_seq: u64,
    /// No more appends (rolled, abandoned after a failure, or found at open).
    pub(crate) sealed: bool,
}

/// A record waiting for its group commit.
pub(crate) struct Pending {
    pub(crate) hdr: Header,
    pub(crate) payload: Option<Arc<Payload>>,
    pub(crate) done: Option<Completion>,
    pub(crate) deadline: Instant,
    /// User write: bump bytes_written with this on success.
    pub(crate) user_bytes: u64,
}

pub(crate) struct State {
    pub(crate) map: DirtyMap,
    pub(crate) next_seq: u64,
    pub(crate) pending: VecDeque<Pending>,
    pub(crate) pending_bytes: u64,
    pub(crate) segs: BTreeMap<u64, Seg>,
    pub(crate) seg_bytes: u64,
    pub(crate) next_segno: u64,
    /// The applied watermark of the last durable checkpoint.
    pub(crate) w_durable: u64,
    /// Highest journal record sequence touching each chunk (pruned below the
    /// watermark): a direct write there needs a Superseded record.
    pub(crate) touched: HashMap<u64, u64>,
    pub(crate) destaging: HashSet<u64>,
    /// Lowest sequence number of records a direct write punched out of the
    /// map, per direct write in flight: the watermark stays below them until
    /// the direct write is durable.
    floors: BTreeMap<u64, usize>,
    /// Direct writes submitted and not yet completed.
    pub(crate) direct_inflight: usize,
    /// Sequence numbers of data records admitted and not yet durable (their
    /// group commit has not returned, or failed). The destager applies only
    /// records below the lowest of these, so a chunk never holds journaled
    /// data that replay could not reproduce.
    pub(crate) undurable: std::collections::BTreeSet<u64>,
    /// Bumped to ask every committer to roll its segment.
    pub(crate) roll_gen: u64,
    pub(crate) closing: bool,
    pub(crate) destager_done: bool,
    pub(crate) dirty_since: Option<Instant>,
    /// When the last write was admitted.
    pub(crate) last_write: Instant,
    /// After a failed destage: not before this instant.
    pub(crate) not_before: Option<Instant>,
    /// Writes of sequential streams held to fill whole chunks.
    pub(crate) gathers: gather::Gathers,
}

impl State {
    pub(crate) fn used(&self) -> u64 {
        self.seg_bytes + self.pending_bytes + self.gathers.reserved
    }

    /// All records below this are applied to the chunks (or superseded).
    /// Records below this are durable (or were never journaled).
    pub(crate) fn durable_below(&self) -> u64 {
        self.undurable.first().copied().unwrap_or(self.next_seq)
    }

    pub(crate) fn watermark(&self) -> u64 {
        let mut w = self.next_seq;
        if let Some(m) = self.map.min_seq() {
            w = w.min(m);
        }
        if let Some((&f, _)) = self.floors.iter().next() {
            w = w.min(f);
        }
        w
    }
}

#[derive(Default)]
pub(crate) struct JCounters {
    pub(crate) records: AtomicU64,
    pub(crate) hsyncs: AtomicU64,
    pub(crate) destaged_bytes: AtomicU64,
    pub(crate) destaged_chunks: AtomicU64,
    pub(crate) full_waits: AtomicU64,
    pub(crate) direct_writes: AtomicU64,
    pub(crate) gathered_chunks: AtomicU64,
    pub(crate) gather_misses: AtomicU64,
    pub(crate) replayed: AtomicU64,
    /// (instant in ms since open, destaged bytes) at the last rate sample.
    pub(crate) rate: Mutex<(u64, u64, u64)>,
}

/// Tunables of one journal, from the open options.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    pub(crate) capacity: u64,
    pub(crate) retry_for: Duration,
    pub(crate) destage_parallel: usize,
    /// Committer threads, each appending to its own segment.
    pub(crate) streams: usize,
    /// Gather sequential partial writes into whole-chunk puts (gather.rs)
    /// when chunks are at least this large.
    pub(crate) gather_min_chunk: u64,
    /// Wait briefly for returning writers after a group commit (commit.rs).
    pub(crate) return_wait: bool,
}

/// The journal of one open volume.
pub(crate) struct Journal {
    pub(crate) engine: Arc<Engine>,
    pub(crate) backend: BackendRef,
    pub(crate) dir: String,
    pub(crate) uuid: uuid::Uuid,
    pub(crate) epoch: u64,
    pub(crate) chunk_size: u64,
    pub(crate) cfg: Config,
    /// Segments roll at this size.
    pub(crate) seg_target: u64,
    /// Larger writes skip the journal.
    pub(crate) max_record: u64,
    pub(crate) st: Mutex<State>,
    pub(crate) commit_cv: Condvar,
    pub(crate) destage_cv: Condvar,
    pub(crate) idle_cv: Condvar,
    pub(crate) dirty_bytes: Arc<AtomicU64>,
    /// Bytes of user writes submitted through the journal and not completed
    /// (held ones included): whether a stream could fill a chunk.
    pub(crate) inflight_write_bytes: AtomicU64,
    pub(crate) c: JCounters,
    pub(crate) opened: Instant,
}

impl Journal {
    pub(crate) fn counters(&self) -> &Counters {
        &self.engine.counters
    }

    /// See `DirtyMap::chunk_data`: whether chunk `c` (`len` bytes) holds
    /// journaled data (Some(true)), is journaled as all zeros (Some(false)),
    /// or neither (None).
    pub(crate) fn chunk_data(&self, c: u64, len: u64) -> Option<bool> {
        lock(&self.st).map.chunk_data(c, len)
    }

    /// The chunks journaled, not yet destaged data lies in.
    pub(crate) fn dirty_chunks(&self) -> Vec<u64> {
        lock(&self.st).map.chunks().into_keys().collect()
    }

    /// The journal's statistics.
    pub(crate) fn stats(&self) -> JournalStats {
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (segments, journal_bytes) = {
            let st = lock(&self.st);
            (st.segs.len() as u64, st.seg_bytes)
        };
        let (records, hsyncs) = (ld(&self.c.records), ld(&self.c.hsyncs));
        let destaged = ld(&self.c.destaged_bytes);
        let now = self.opened.elapsed().as_millis() as u64;
        let rate = {
            let mut r = lock(&self.c.rate);
            let (t0, b0, last) = *r;
            if now >= t0 + 1000 {
                let rate = (destaged - b0) * 1000 / (now - t0);
                *r = (now, destaged, rate);
                rate
            } else {
                last
            }
        };
        JournalStats {
            mode: "ozone",
            dirty_bytes: ld(&self.dirty_bytes),
            segments,
            journal_bytes,
            records,
            hsyncs,
            records_per_hsync: if hsyncs == 0 {
                0.0
            } else {
                records as f64 / hsyncs as f64
            },
            destaged_bytes: destaged,
            destaged_chunks: ld(&self.c.destaged_chunks),
            destage_rate: rate,
            full_waits: ld(&self.c.full_waits),
            direct_writes: ld(&self.c.direct_writes),
            gathered_chunks: ld(&self.c.gathered_chunks),
            gather_misses: ld(&self.c.gather_misses),
            replayed_records: ld(&self.c.replayed),
        }
    }
}

/// Journal bytes a user request's record takes.
fn record_bytes(op: Op, len: u64) -> u64 {
    if op == Op::Write {
        record::record_len(len as usize) as u64
    } else {
        record::HEADER_LEN as u64
    }
}
