// SPDX-License-Identifier: Apache-2.0
//! `ozbd_params`: the versioned open parameters of the C ABI.
//!
//! Owns: the struct's layout and growth rule (fields are only ever appended;
//! `opts_size` says how much of it the caller knows, the way `spdk_bdev_opts`
//! does), filling it with the engine's defaults (`ozbd_params_init`), and
//! turning it into engine options with the engine's own validation.
//! Must never: read past `opts_size` bytes of the caller's struct, keep a
//! default of its own (every default comes from `ozbd_chunkstore::defaults`
//! and `JournalMode::default`), parse or range-check an option the engine
//! parses (`JournalMode::from_str`, `OpenOptions::validate`), or give a field
//! a sentinel meaning: each field means its value (a NULL string means "not
//! given", as for `uuid` and `cpumask`).

use std::ffi::{c_char, c_int, CStr};
use std::time::Duration;

use ozbd_chunkstore::defaults::{
    DEFAULT_CACHE_MB, DEFAULT_CONNECT_TIMEOUT, DEFAULT_JOURNAL_MB, DEFAULT_LEASE_MS,
    DEFAULT_MAX_INFLIGHT_BYTES, DEFAULT_MAX_INFLIGHT_REQUESTS, DEFAULT_RETRY, DEFAULT_WORKERS,
};
use ozbd_chunkstore::superblock::{DEFAULT_BLOCK_SIZE, DEFAULT_CHUNK_SIZE};
use ozbd_chunkstore::{Error, JournalMode, OpenOptions, Superblock, VolumeUri};

use crate::affinity::CpuMask;

/// What `ozbd_open` does when no volume exists at the URI.
pub const OZBD_OPEN_EXISTING: c_int = 0;
pub const OZBD_OPEN_OR_CREATE: c_int = 1;
pub const OZBD_CREATE_NEW: c_int = 2;

/// Parameters for `ozbd_open`. Fill it with `ozbd_params_init` (which sets
/// `opts_size` and every default), then change what you need. Fields are only
/// ever appended: a caller built against an older header passes its smaller
/// `opts_size`, and the fields it does not know keep their defaults.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct ozbd_params {
    /// sizeof(struct ozbd_params) as the caller was compiled; set by ozbd_params_init.
    pub opts_size: usize,
    /// Size in bytes: required to create; when opening, 0 or the volume's size.
    pub size: u64,
    /// 512 or 4096: used to create; when opening, 0 or the volume's block size.
    pub block_size: u32,
    /// A power of two, 64 KiB to 256 MiB: used to create; when opening, 0 or
    /// the volume's chunk size.
    pub chunk_size: u64,
    /// Optional UUID string (NULL = generate on create, don't check on open).
    pub uuid: *const c_char,
    /// One of OZBD_OPEN_EXISTING, OZBD_OPEN_OR_CREATE, OZBD_CREATE_NEW.
    pub mode: c_int,
    /// I/O worker threads (default 8, 1 to 256).
    pub workers: u32,
    /// How long connecting may take, in milliseconds (default 60000; at least 1).
    pub timeout_ms: u32,
    /// How long, from submit, an I/O retries transient Ozone failures (a
    /// datanode or the OM restarting) before it fails, in milliseconds
    /// (default 30000; 0 = fail at the first error).
    pub retry_ms: u32,
    /// CPUs for the engine's threads and the JVM's (a hex mask "0x3" or a
    /// list "[0,1]"); NULL = every CPU the process may use. The JVM is started
    /// by the process's first open, so its threads follow that open's mask.
    pub cpumask: *const c_char,
    /// Requests in flight before ozbd_submit answers -EAGAIN (default 1024).
    pub max_inflight_requests: u32,
    /// Bytes in flight before ozbd_submit answers -EAGAIN (default 256 MiB).
    pub max_inflight_bytes: u64,
    /// Whether small writes go through the write-ahead journal in the
    /// volume's Ozone directory: "ozone" or "none". ozbd_params_init points it
    /// at the engine's default ("ozone", a static string); NULL also means the
    /// default. Another value is refused with -EINVAL and the engine's message.
    pub journal: *const c_char,
    /// Journal space, and the dirty data it holds in memory, in MiB
    /// (default 256, 16 to 65536). Writers wait when it is full.
    pub journal_mb: u64,
    /// Read cache in MiB (default 64, at most 65536; 0 = no cache).
    pub cache_mb: u64,
    /// Non-zero: take over the volume when its writer lease has expired
    /// (the holder is presumed dead; it is fenced). A fresh lease is never
    /// taken over: the open fails with -EBUSY, naming the holder.
    pub force: c_int,
    /// The writer lease's length in ms (default 30000, 1000 to 600000).
    pub lease_ms: u64,
    /// Who opens, written into the lease for `ozbd info` and for the error a
    /// second opener gets: the front end ("spdk", "nbdkit") and its name for
    /// the volume (a bdev name). NULL: unnamed.
    pub holder_frontend: *const c_char,
    pub holder_name: *const c_char,
    /// Non-zero: open read-only. No lease is taken and nothing is ever
    /// written; writes, write-zeroes and unmaps complete with -EROFS.
    pub readonly: c_int,
}

/// The smallest `opts_size` accepted: everything up to and including `mode`.
const MIN_OPTS_SIZE: usize = std::mem::offset_of!(ozbd_params, mode) + std::mem::size_of::<c_int>();

pub(crate) fn defaults() -> ozbd_params {
    ozbd_params {
        opts_size: std::mem::size_of::<ozbd_params>(),
        size: 0,
        block_size: 0,
        chunk_size: 0,
        uuid: std::ptr::null(),
        mode: OZBD_OPEN_EXISTING,
        workers: DEFAULT_WORKERS as u32,
        timeout_ms: DEFAULT_CONNECT_TIMEOUT.as_millis() as u32,
        retry_ms: DEFAULT_RETRY.as_millis() as u32,
        cpumask: std::ptr::null(),
        max_inflight_requests: DEFAULT_MAX_INFLIGHT_REQUESTS as u32,
        max_inflight_bytes: DEFAULT_MAX_INFLIGHT_BYTES,
        journal: journal_cstr(JournalMode::default()).as_ptr(),
        journal_mb: DEFAULT_JOURNAL_MB,
        cache_mb: DEFAULT_CACHE_MB,
        force: 0,
        lease_ms: DEFAULT_LEASE_MS,
        holder_frontend: std::ptr::null(),
        holder_name: std::ptr::null(),
        readonly: 0,
    }
}

/// The journal mode's name as a static C string (for `ozbd_params_init`).
fn journal_cstr(m: JournalMode) -> &'static CStr {
    match m {
        JournalMode::Ozone => c"ozone",
        JournalMode::None => c"none",
    }
}

/// Fill `*p` with the engine's defaults for the first `opts_size` bytes
/// (pass `sizeof(struct ozbd_params)`). Returns 0, or -EINVAL when `p` is NULL
/// or `opts_size` is too small to hold `mode`.
#[no_mangle]
pub unsafe extern "C" fn ozbd_params_init(p: *mut ozbd_params, opts_size: usize) -> c_int {
    if p.is_null() || opts_size < MIN_OPTS_SIZE {
        return -libc::EINVAL;
    }
    let mut d = defaults();
    let n = opts_size.min(std::mem::size_of::<ozbd_params>());
    d.opts_size = opts_size;
    // SAFETY: the caller gave `opts_size` writable bytes at `p`; we write at most that.
    std::ptr::copy_nonoverlapping(&d as *const ozbd_params as *const u8, p as *mut u8, n);
    0
}

pub(crate) fn cstr(p: *const c_char, what: &str) -> Result<String, Error> {
    if p.is_null() {
        return Err(Error::InvalidArgument(format!("{what} is NULL")));
    }
    // SAFETY: non-NULL, and the caller promises a NUL-terminated string.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map(str::to_string)
        .map_err(|_| Error::InvalidArgument(format!("{what} is not UTF-8")))
}

/// The parameters, checked.
pub(crate) struct Params {
    pub(crate) uri: VolumeUri,
    pub(crate) size: u64,
    pub(crate) block_size: u32,
    pub(crate) chunk_size: u64,
    pub(crate) uuid: Option<uuid::Uuid>,
    pub(crate) mode: c_int,
    pub(crate) timeout: Duration,
    pub(crate) cpumask: Option<CpuMask>,
    pub(crate) open: OpenOptions,
}

/// A string the caller may leave NULL (then empty).
fn opt_cstr(p: *const c_char, what: &str) -> Result<String, Error> {
    if p.is_null() {
        Ok(String::new())
    } else {
        cstr(p, what)
    }
}

/// Read the caller's struct: the first `opts_size` bytes over the defaults.
unsafe fn read_params(p: *const ozbd_params) -> Result<ozbd_params, Error> {
    if p.is_null() {
        return Err(Error::InvalidArgument("params is NULL".into()));
    }
    let given = std::ptr::read_unaligned(p as *const usize);
    if given < MIN_OPTS_SIZE {
        return Err(Error::InvalidArgument(format!(
            "params.opts_size is {given}: fill the struct with ozbd_params_init(&p, sizeof(p)) first"
        )));
    }
    let mut full = defaults();
    let n = given.min(std::mem::size_of::<ozbd_params>());
    // SAFETY: the caller promises `opts_size` readable bytes at `p`.
    std::ptr::copy_nonoverlapping(p as *const u8, &mut full as *mut ozbd_params as *mut u8, n);
    Ok(full)
}

/// Parse and check everything that can be checked without contacting Ozone.
pub(crate) fn parse(uri: *const c_char, p: *const ozbd_params) -> Result<Params, Error> {
    let uri = VolumeUri::parse(&cstr(uri, "uri")?)?;
    // SAFETY: per the contract, `p` points to an ozbd_params of `opts_size` bytes.
    let p = unsafe { read_params(p)? };
    let uuid = if p.uuid.is_null() {
        None
    } else {
        let s = cstr(p.uuid, "uuid")?;
        Some(uuid::Uuid::parse_str(&s).map_err(|e| {
            // Quote a long value in part, so the message's point fits a caller's buffer.
            let shown: String = s.chars().take(40).collect();
            let more = if shown.len() < s.len() { "..." } else { "" };
            Error::InvalidArgument(format!(
                "uuid '{shown}{more}' is not a UUID ({e}): use the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
            ))
        })?)
    };
    if !(OZBD_OPEN_EXISTING..=OZBD_CREATE_NEW).contains(&p.mode) {
        return Err(Error::InvalidArgument(format!(
            "mode {} is unknown: use OZBD_OPEN_EXISTING (0), OZBD_OPEN_OR_CREATE (1) or OZBD_CREATE_NEW (2)",
            p.mode
        )));
    }
    if p.timeout_ms == 0 {
        return Err(Error::InvalidArgument(format!(
            "timeout_ms is 0: give the connect timeout in milliseconds (default {})",
            DEFAULT_CONNECT_TIMEOUT.as_millis()
        )));
    }
    // Geometry: the engine's own checks (the superblock's), before any I/O.
    if p.size != 0 || p.block_size != 0 || p.chunk_size != 0 {
        let bs = if p.block_size != 0 {
            p.block_size
        } else {
            DEFAULT_BLOCK_SIZE
        };
        let cs = if p.chunk_size != 0 {
            p.chunk_size
        } else {
            DEFAULT_CHUNK_SIZE
        };
        let size = if p.size != 0 { p.size } else { bs as u64 };
        Superblock::new(size, bs, cs, None)?;
    }
    let journal = if p.journal.is_null() {
        JournalMode::default()
    } else {
        cstr(p.journal, "journal")?.parse::<JournalMode>()?
    };
    if p.mode == OZBD_CREATE_NEW && p.size == 0 {
        return Err(Error::InvalidArgument(format!(
            "no size given: creating a new volume at {} needs a size",
            uri.canonical()
        )));
    }
    let open = OpenOptions {
        workers: p.workers as usize,
        retry: Duration::from_millis(p.retry_ms as u64),
        max_inflight_requests: p.max_inflight_requests as usize,
        max_inflight_bytes: p.max_inflight_bytes,
        expect_size: (p.size != 0).then_some(p.size),
        expect_block_size: (p.block_size != 0).then_some(p.block_size),
        expect_chunk_size: (p.chunk_size != 0).then_some(p.chunk_size),
        expect_uuid: uuid,
        journal,
        journal_mb: p.journal_mb,
        cache_mb: p.cache_mb,
        // Not in the C ABI: the engine's defaults (OZBD_JOURNAL_STREAMS,
        // OZBD_GATHER and OZBD_RETURN_WAIT override them for experiments).
        journal_streams: OpenOptions::default().journal_streams,
        gather_min_chunk: OpenOptions::default().gather_min_chunk,
        return_wait: OpenOptions::default().return_wait,
        force: p.force != 0,
        lease_ms: p.lease_ms,
        frontend: opt_cstr(p.holder_frontend, "holder_frontend")?,
        name: opt_cstr(p.holder_name, "holder_name")?,
        readonly: p.readonly != 0,
    };
    open.validate()?;
    Ok(Params {
        uri,
        size: p.size,
        block_size: p.block_size,
        chunk_size: p.chunk_size,
        uuid,
        mode: p.mode,
        timeout: Duration::from_millis(p.timeout_ms as u64),
        cpumask: CpuMask::from_c(p.cpumask)?,
        open,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_names_are_the_engines() {
        for m in [JournalMode::Ozone, JournalMode::None] {
            let c = journal_cstr(m).to_str().unwrap_or_default();
            assert_eq!(c, m.as_str());
            assert_eq!(c.parse::<JournalMode>().ok(), Some(m));
        }
    }
}
