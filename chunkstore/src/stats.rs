// SPDX-License-Identifier: Apache-2.0
//! The volume's statistics: the one list of counters every front end shows.
//!
//! Owns: the counters the I/O path bumps, and `Stats`, their snapshot, whose
//! `Serialize` impl is the only description of the statistics: the C ABI's
//! `ozbd_stats_json`, `bdev_get_bdevs`, nbdkit's log line and `ozbd` all print
//! it, so a counter added here shows up everywhere.
//! Must never: take a lock (the counters are read from SPDK reactors).

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) reads: AtomicU64,
    pub(crate) writes: AtomicU64,
    pub(crate) zeroes: AtomicU64,
    pub(crate) unmaps: AtomicU64,
    pub(crate) flushes: AtomicU64,
    pub(crate) bytes_read: AtomicU64,
    pub(crate) bytes_written: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) chunk_reads: AtomicU64,
    pub(crate) chunk_puts: AtomicU64,
    pub(crate) chunk_deletes: AtomicU64,
    pub(crate) rmw: AtomicU64,
    pub(crate) merged: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) deadline_failures: AtomicU64,
    pub(crate) busy: AtomicU64,
    pub(crate) panics: AtomicU64,
    pub(crate) healed: AtomicU64,
    pub(crate) checksum_errors: AtomicU64,
    pub(crate) inflight: AtomicU64,
    pub(crate) inflight_bytes: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// The journal's counters (all zero with `journal=none`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct JournalStats {
    /// "ozone" or "none" (the mode in effect).
    pub mode: &'static str,
    /// Journaled bytes not yet destaged to chunks (held in memory).
    pub dirty_bytes: u64,
    /// Journal segment files in Ozone, and the bytes they hold.
    pub segments: u64,
    pub journal_bytes: u64,
    /// Records appended, and the hsyncs that made them durable.
    pub records: u64,
    pub hsyncs: u64,
    pub records_per_hsync: f64,
    /// Bytes and chunk rewrites the destager applied to chunks.
    pub destaged_bytes: u64,
    pub destaged_chunks: u64,
    /// Destage rate over the last few seconds, bytes per second.
    pub destage_rate: u64,
    /// Writes that found the journal full and went straight to their chunk
    /// (a read-modify-write: slower, never failed; backpressure).
    pub full_waits: u64,
    /// Whole-chunk writes that skipped the journal (one atomic put).
    pub direct_writes: u64,
    /// Chunks a sequential stream's partial writes filled and that went to
    /// Ozone as one put, skipping the journal (written once, not twice).
    pub gathered_chunks: u64,
    /// Gathers that did not fill their chunk in time (or met another
    /// request to it) and were journaled instead.
    pub gather_misses: u64,
    /// Records found and applied by replay at open.
    pub replayed_records: u64,
}

/// The read cache's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// Bytes held, and the bound (`cache_mb`).
    pub bytes: u64,
    pub capacity: u64,
    pub hits: u64,
    pub misses: u64,
    /// Chunk ranges read ahead of a sequential reader.
    pub readahead: u64,
}

/// A copy of the volume's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Stats {
    /// The volume's size in bytes now (a resize changes it).
    pub size: u64,
    pub reads: u64,
    pub writes: u64,
    pub write_zeroes: u64,
    pub unmaps: u64,
    pub flushes: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Requests that completed with an error.
    pub errors: u64,
    /// Backend reads of chunk files (reads and read-modify-write loads).
    pub chunk_reads: u64,
    /// Chunk files opened for reading: the rest of `chunk_reads` went through
    /// an open handle kept from an earlier read.
    pub handles_opened: u64,
    /// Chunk files written (each one atomic).
    pub chunk_puts: u64,
    /// Chunk files deleted (unmap, write-zeroes, all-zero chunks).
    pub chunk_deletes: u64,
    /// Partial-chunk mutations that needed the chunk's old content.
    pub rmw: u64,
    /// Mutations folded into another one's chunk update.
    pub merged: u64,
    /// Chunk operations attempted again after a transient failure.
    pub retries: u64,
    /// Requests failed because their retry deadline passed.
    pub deadline_failures: u64,
    /// Submissions refused with EAGAIN because the in-flight bound was reached.
    pub busy: u64,
    /// Internal errors (panics) caught on a worker; their requests failed with EIO.
    pub internal_errors: u64,
    /// Times the map of stored chunks was corrected after an ambiguous failure.
    pub healed: u64,
    /// Chunk reads whose data or trailer failed its checksum (the request
    /// failed with an I/O error; a log line names the chunk and the bytes).
    pub checksum_errors: u64,
    /// Chunks currently stored.
    pub allocated_chunks: u64,
    /// Requests submitted and not yet completed.
    pub inflight: u64,
    /// Bytes those requests hold.
    pub inflight_bytes: u64,
    pub journal: JournalStats,
    pub cache: CacheStats,
}

impl Counters {
    pub(crate) fn snapshot(&self, allocated_chunks: u64) -> Stats {
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            size: 0,
            reads: ld(&self.reads),
            writes: ld(&self.writes),
            write_zeroes: ld(&self.zeroes),
            unmaps: ld(&self.unmaps),
            flushes: ld(&self.flushes),
            bytes_read: ld(&self.bytes_read),
            bytes_written: ld(&self.bytes_written),
            errors: ld(&self.errors),
            chunk_reads: ld(&self.chunk_reads),
            handles_opened: 0,
            chunk_puts: ld(&self.chunk_puts),
            chunk_deletes: ld(&self.chunk_deletes),
            rmw: ld(&self.rmw),
            merged: ld(&self.merged),
            retries: ld(&self.retries),
            deadline_failures: ld(&self.deadline_failures),
            busy: ld(&self.busy),
            internal_errors: ld(&self.panics),
            healed: ld(&self.healed),
            checksum_errors: ld(&self.checksum_errors),
            allocated_chunks,
            inflight: ld(&self.inflight),
            inflight_bytes: ld(&self.inflight_bytes),
            journal: JournalStats {
                mode: "none",
                ..JournalStats::default()
            },
            cache: CacheStats::default(),
        }
    }
}

impl Stats {
    /// The statistics as one JSON object (the form every front end shows).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}
