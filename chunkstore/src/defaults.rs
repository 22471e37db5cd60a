// SPDX-License-Identifier: Apache-2.0
//! The one source of the engine's defaults and limits.
//!
//! Owns: every default a front end may show or fall back to (workers, retry,
//! connect timeout, admission bounds) and the Ozone client settings the
//! engine's guarantees depend on. The C ABI exports these through
//! `ozbd_params_init`; the SPDK module, the nbdkit plugin and `ozbd` read them
//! from there, never from a copy.
//! Must never: hold a value that a front end repeats; a default changed here is
//! changed for every front end.

use std::time::Duration;

/// Worker threads making blocking backend calls for one volume. Reads use
/// all of them (a queue depth of 32 random reads is 32 positional reads in
/// flight, as in the raw-Ozone ceiling of docs/performance.md); at most
/// `MAX_PARALLEL_UPDATES` (8) of them update chunks at once.
pub const DEFAULT_WORKERS: usize = 32;
/// Chunk updates (read-modify-write or put of a whole chunk, or a delete)
/// running at once, whatever the worker count: each holds up to a chunk of
/// memory, so this bounds that memory at `MAX_PARALLEL_UPDATES x chunk size`.
pub const MAX_PARALLEL_UPDATES: usize = 8;
/// Most worker threads a volume may ask for.
pub const MAX_WORKERS: usize = 256;
/// How long a request whose backend calls fail transiently (a datanode or the
/// OM restarting) keeps being retried before it fails, counted from submit.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(30);
/// Longest retry window a volume may ask for.
pub const MAX_RETRY: Duration = Duration::from_secs(3600);
/// How long connecting to the backend (JVM start, first OM round trip) may take.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// Requests in flight at once before submit answers "busy" (EAGAIN).
pub const DEFAULT_MAX_INFLIGHT_REQUESTS: usize = 1024;
/// Bytes of request data (and piece bookkeeping) in flight before submit
/// answers "busy" (EAGAIN).
pub const DEFAULT_MAX_INFLIGHT_BYTES: u64 = 256 << 20;

/// Journal space (and the dirty data it holds in memory) per volume, in MiB.
/// Writers wait when it is full; they never fail for it.
pub const DEFAULT_JOURNAL_MB: u64 = 256;
/// Smallest and largest journal a volume may ask for, in MiB.
pub const MIN_JOURNAL_MB: u64 = 16;
pub const MAX_JOURNAL_MB: u64 = 64 << 10;
/// Journal streams: committer threads, each appending to its own segment
/// and hsyncing in parallel. Chosen by measurement (docs/performance.md).
/// `OZBD_JOURNAL_STREAMS` overrides it for experiments.
pub const DEFAULT_JOURNAL_STREAMS: usize = 1;
pub const MAX_JOURNAL_STREAMS: usize = 8;
/// The smallest chunk size at which a sequential stream's partial writes
/// are gathered into whole-chunk puts (docs/design.md "The journal"). Chosen
/// by measurement (docs/performance.md "Gathering sequential writes"): with
/// 4 MiB chunks, 1 MiB sequential writes at QD 8 ran 29.1 and 24.2 MiB/s
/// gathered against 19.4 and 19.6 journaled; with 256 KiB chunks, 64 KiB
/// verify at QD 32 ran 77.6 IOPS gathered against 170 journaled (a small
/// chunk's put costs its OM round trips, which one group-commit hsync shares
/// among many writes). `OZBD_GATHER=0` turns gathering off for experiments.
pub const DEFAULT_GATHER_MIN_CHUNK: u64 = 4 << 20;
/// How long a writer's lease on a volume lasts without renewal (it renews
/// every half of that, and retries a failed renewal within a twentieth). A
/// second opener is refused while the lease is fresh; after it expires, `force` takes the volume over. Safety does not
/// depend on it (every open fences the previous holder; see docs/design.md
/// "Exclusive open and fencing"), only how soon a dead holder can be replaced.
/// 30 s, not less: each renewal is a file write through the Ozone client,
/// and at 15 s the renewals alone cost about 0.6 % of a core on an idle
/// target (docs/performance.md "Idle, profiled"). A dead holder on the same
/// host is replaced at once whatever the length; only a cross-host takeover
/// waits it out.
pub const DEFAULT_LEASE_MS: u64 = 30_000;
pub const MIN_LEASE_MS: u64 = 1_000;
pub const MAX_LEASE_MS: u64 = 600_000;
/// Memory for cached chunk checksum trailers per volume (4 KiB per 4 MiB
/// chunk: 2,048 chunks, 8 GiB of data, before a trailer is read again).
pub const SUM_CACHE_BYTES: usize = 8 << 20;
/// Read cache per volume, in MiB (0 turns it off).
pub const DEFAULT_CACHE_MB: u64 = 64;
pub const MAX_CACHE_MB: u64 = 64 << 10;

/// An Ozone client setting the engine sets on its own connection unless the
/// user's `ozone-site.xml` or `core-site.xml` sets the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientDefault {
    pub key: &'static str,
    pub value: &'static str,
    /// Which guarantee depends on it.
    pub why: &'static str,
}

/// The Ozone client settings the engine's guarantees depend on. They apply to
/// the engine's own `FileSystem` instance only. See docs/design.md, "Client
/// settings the engine owns".
pub const OZONE_CLIENT_DEFAULTS: &[ClientDefault] = &[
    ClientDefault {
        key: "ozone.client.hbase.enhancements.allowed",
        value: "true",
        why: "the journal's hsync is real only with this and ozone.fs.hsync.enabled (without them hsync silently degrades to flush)",
    },
    ClientDefault {
        key: "ozone.fs.hsync.enabled",
        value: "true",
        why: "the journal's hsync is real only with this and ozone.client.hbase.enhancements.allowed",
    },
    ClientDefault {
        key: "hdds.ratis.client.request.watch.type",
        value: "MAJORITY_COMMITTED",
        why: "a write completes once 2 of 3 replicas commit it: one datanode down does not hold writes for the 3 min watch timeout",
    },
    ClientDefault {
        key: "hdds.ratis.raft.client.rpc.request.timeout",
        value: "8s",
        why: "a hung Ratis leader is abandoned for the new one after 8 s instead of 60 s",
    },
    ClientDefault {
        key: "hdds.ratis.raft.client.rpc.watch.request.timeout",
        value: "8s",
        why: "a watch on a hung datanode gives up after 8 s instead of 180 s",
    },
    ClientDefault {
        key: "ozone.client.read.timeout",
        value: "3s",
        why: "a read that hits a hung datanode tries the next replica after 3 s instead of 30 s",
    },
    ClientDefault {
        key: "ozone.network.topology.aware.read",
        value: "false",
        why: "replicas are tried in random order, so one hung datanode is not every read's first choice",
    },
    ClientDefault {
        key: "ozone.client.failover.max.attempts",
        value: "5",
        why: "an unreachable OM fails a call in about 15 s (the default retries for hours), so the engine's per-request deadline is met",
    },
    ClientDefault {
        key: "ozone.client.wait.between.retries.millis",
        value: "500",
        why: "OM failover attempts 0.5 s apart",
    },
    ClientDefault {
        key: "ozone.om.client.rpc.timeout",
        value: "8s",
        why: "a hung OM (accepts, never answers) fails one RPC after 8 s instead of 15 min",
    },
    ClientDefault {
        key: "ipc.client.connect.max.retries",
        value: "2",
        why: "bounded connect retries to a stopped OM",
    },
    ClientDefault {
        key: "ipc.client.connect.retry.interval",
        value: "500",
        why: "bounded connect retries to a stopped OM",
    },
    ClientDefault {
        key: "ipc.client.connect.max.retries.on.timeouts",
        value: "2",
        why: "bounded connect retries to a stopped OM",
    },
    ClientDefault {
        key: "ipc.client.connect.timeout",
        value: "3000",
        why: "bounded connect retries to a stopped OM",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_defaults_are_unique_and_explained() {
        let mut keys: Vec<_> = OZONE_CLIENT_DEFAULTS.iter().map(|d| d.key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), OZONE_CLIENT_DEFAULTS.len(), "duplicate key");
        for d in OZONE_CLIENT_DEFAULTS {
            assert!(!d.value.is_empty() && d.why.len() > 10, "{d:?}");
        }
    }
}
