//! The engine's C ABI.
//!
//! Owns: translating C calls into engine calls: opening and closing volumes,
//! submitting I/O with a completion callback, info and statistics.
//! Must never: block in `ozbd_submit` or the getters (an SPDK reactor calls them);
//! enter the JVM on the caller's thread except in the calls documented as
//! blocking; let a Rust panic cross into C.

#![allow(clippy::missing_safety_doc)] // Each function's doc comment states its contract.
#![allow(non_camel_case_types)] // C names.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr;
use std::time::Duration;

use ozbd_chunkstore::{
    connect, ConnectOptions, CreateOptions, Error, Op, OpenOptions, SgList, Stats, Volume,
    VolumeUri,
};

/// An open volume.
pub struct ozbd_volume {
    vol: Volume,
}

/// I/O operations.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum ozbd_op {
    Read = 0,
    Write = 1,
    WriteZeroes = 2,
    Unmap = 3,
    Flush = 4,
}

/// What `ozbd_open` does when no volume exists at the URI.
pub const OZBD_OPEN_EXISTING: c_int = 0;
pub const OZBD_OPEN_OR_CREATE: c_int = 1;
pub const OZBD_CREATE_NEW: c_int = 2;

/// Parameters for `ozbd_open`. Zero means "the default" (open: "whatever the
/// volume has"); a non-zero value must match an existing volume.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct ozbd_params {
    /// Size in bytes; required to create.
    pub size: u64,
    /// 512 or 4096.
    pub block_size: u32,
    /// A power of two, 64 KiB to 256 MiB.
    pub chunk_size: u64,
    /// Optional UUID string (NULL = generate on create, don't check on open).
    pub uuid: *const c_char,
    /// One of OZBD_OPEN_EXISTING, OZBD_OPEN_OR_CREATE, OZBD_CREATE_NEW.
    pub mode: c_int,
    /// Worker threads (0 = default).
    pub workers: u32,
    /// Connect timeout in milliseconds (0 = default, 60 s).
    pub timeout_ms: u32,
    /// How long an I/O retries a transient Ozone failure (a datanode or the OM
    /// restarting) before it fails, in milliseconds (0 = default, 30 s;
    /// 1 = fail at the first error).
    pub retry_ms: u32,
}

/// A volume's geometry.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct ozbd_info {
    pub size: u64,
    pub block_size: u32,
    pub chunk_size: u64,
    pub chunk_count: u64,
    /// NUL-terminated canonical UUID string.
    pub uuid: [c_char; 40],
}

/// Counters since the volume was opened.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
#[allow(non_camel_case_types)]
pub struct ozbd_stats {
    pub reads: u64,
    pub writes: u64,
    pub write_zeroes: u64,
    pub unmaps: u64,
    pub flushes: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub errors: u64,
    pub chunk_reads: u64,
    pub chunk_puts: u64,
    pub chunk_deletes: u64,
    pub rmw: u64,
    pub merged: u64,
    pub allocated_chunks: u64,
    pub inflight: u64,
    pub retries: u64,
}

impl From<Stats> for ozbd_stats {
    fn from(s: Stats) -> Self {
        ozbd_stats {
            reads: s.reads,
            writes: s.writes,
            write_zeroes: s.write_zeroes,
            unmaps: s.unmaps,
            flushes: s.flushes,
            bytes_read: s.bytes_read,
            bytes_written: s.bytes_written,
            errors: s.errors,
            chunk_reads: s.chunk_reads,
            chunk_puts: s.chunk_puts,
            chunk_deletes: s.chunk_deletes,
            rmw: s.rmw,
            merged: s.merged,
            allocated_chunks: s.allocated_chunks,
            inflight: s.inflight,
            retries: s.retries,
        }
    }
}

/// Completion of one I/O: `status` is 0 or a negative errno.
pub type ozbd_io_cb = Option<unsafe extern "C" fn(cb_arg: *mut c_void, status: c_int)>;

/// Completion of `ozbd_open_async`: on success `vol` is the volume and `status`
/// 0; otherwise `vol` is NULL, `status` a negative errno and `errmsg` says why
/// (valid only during the call). `created` is 1 when the volume was created.
pub type ozbd_open_cb = Option<
    unsafe extern "C" fn(
        cb_arg: *mut c_void,
        vol: *mut ozbd_volume,
        status: c_int,
        created: c_int,
        errmsg: *const c_char,
    ),
>;

fn init_logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        struct Stderr;
        impl log::Log for Stderr {
            fn enabled(&self, m: &log::Metadata) -> bool {
                m.level() <= log::Level::Warn
            }
            fn log(&self, r: &log::Record) {
                if self.enabled(r.metadata()) {
                    eprintln!("ozbd: {}: {}", r.level(), r.args());
                }
            }
            fn flush(&self) {}
        }
        static LOGGER: Stderr = Stderr;
        let _ = log::set_logger(&LOGGER).map(|()| log::set_max_level(log::LevelFilter::Warn));
    });
}

fn write_err(err: *mut c_char, errlen: usize, msg: &str) {
    if err.is_null() || errlen == 0 {
        return;
    }
    let bytes = msg.as_bytes();
    let n = bytes.len().min(errlen - 1);
    // SAFETY: the caller gave `errlen` writable bytes at `err`.
    unsafe {
        ptr::copy_nonoverlapping(bytes.as_ptr(), err as *mut u8, n);
        *err.add(n) = 0;
    }
}

fn cstr(p: *const c_char, what: &str) -> Result<String, Error> {
    if p.is_null() {
        return Err(Error::InvalidArgument(format!("{what} is NULL")));
    }
    // SAFETY: non-NULL, and the caller promises a NUL-terminated string.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map(str::to_string)
        .map_err(|_| Error::InvalidArgument(format!("{what} is not UTF-8")))
}

struct Params {
    uri: VolumeUri,
    size: u64,
    block_size: u32,
    chunk_size: u64,
    uuid: Option<uuid::Uuid>,
    mode: c_int,
    workers: usize,
    timeout: Duration,
    retry: Option<Duration>,
}

fn parse_params(uri: *const c_char, p: *const ozbd_params) -> Result<Params, Error> {
    let uri = VolumeUri::parse(&cstr(uri, "uri")?)?;
    if p.is_null() {
        return Err(Error::InvalidArgument("params is NULL".into()));
    }
    // SAFETY: non-NULL and points to an ozbd_params per the contract.
    let p = unsafe { *p };
    let uuid = if p.uuid.is_null() {
        None
    } else {
        let s = cstr(p.uuid, "uuid")?;
        Some(uuid::Uuid::parse_str(&s).map_err(|e| {
            Error::InvalidArgument(format!(
                "uuid '{s}' is not a UUID ({e}): use the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
            ))
        })?)
    };
    if !(OZBD_OPEN_EXISTING..=OZBD_CREATE_NEW).contains(&p.mode) {
        return Err(Error::InvalidArgument(format!(
            "mode {} is unknown",
            p.mode
        )));
    }
    Ok(Params {
        uri,
        size: p.size,
        block_size: p.block_size,
        chunk_size: p.chunk_size,
        uuid,
        mode: p.mode,
        workers: p.workers as usize,
        timeout: Duration::from_millis(if p.timeout_ms == 0 {
            60_000
        } else {
            p.timeout_ms as u64
        }),
        retry: (p.retry_ms != 0).then(|| Duration::from_millis(p.retry_ms as u64)),
    })
}

/// Open (or create) a volume. Returns (volume, created).
fn open_impl(p: Params) -> Result<(Volume, bool), Error> {
    let copts = ConnectOptions {
        timeout: p.timeout,
        ..ConnectOptions::default()
    };
    let backend = connect(&p.uri, &copts)?;
    let oopts = OpenOptions {
        workers: p.workers,
        retry: p.retry,
        expect_size: (p.size != 0).then_some(p.size),
        expect_block_size: (p.block_size != 0).then_some(p.block_size),
        expect_chunk_size: (p.chunk_size != 0).then_some(p.chunk_size),
        expect_uuid: p.uuid,
    };
    let create = |backend| {
        if p.size == 0 {
            return Err(Error::InvalidArgument(format!(
                "no volume at {} and no size given: pass a size to create one",
                p.uri.canonical()
            )));
        }
        let mut c = CreateOptions::new(p.size);
        if p.block_size != 0 {
            c.block_size = p.block_size;
        }
        if p.chunk_size != 0 {
            c.chunk_size = p.chunk_size;
        }
        c.uuid = p.uuid;
        Volume::create(backend, &p.uri, &c, &oopts).map(|(v, notes)| {
            for n in notes {
                log::warn!("{}: {n}", p.uri.canonical());
            }
            (v, true)
        })
    };
    match p.mode {
        OZBD_CREATE_NEW => create(backend),
        OZBD_OPEN_OR_CREATE => match Volume::open(backend.clone(), &p.uri, &oopts) {
            Err(Error::NotFound(_)) => create(backend),
            other => other.map(|v| (v, false)),
        },
        _ => Volume::open(backend, &p.uri, &oopts).map(|v| (v, false)),
    }
}

fn guard<T>(what: &str, default: T, f: impl FnOnce() -> T) -> T {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        log::error!("{what}: internal error (panic); this is a bug, please report it");
        default
    })
}

/// Open a volume, blocking until done (it may start the JVM and contact Ozone:
/// never call it on an SPDK reactor thread). On success stores the volume in
/// `*out`, sets `*created` (if non-NULL) and returns 0; otherwise returns a
/// negative errno and writes a message into `err` (`errlen` bytes).
#[no_mangle]
pub unsafe extern "C" fn ozbd_open(
    uri: *const c_char,
    params: *const ozbd_params,
    out: *mut *mut ozbd_volume,
    created: *mut c_int,
    err: *mut c_char,
    errlen: usize,
) -> c_int {
    init_logging();
    guard("ozbd_open", -libc::EIO, || {
        if out.is_null() {
            write_err(err, errlen, "out is NULL");
            return -libc::EINVAL;
        }
        match parse_params(uri, params).and_then(open_impl) {
            Ok((vol, c)) => {
                *out = Box::into_raw(Box::new(ozbd_volume { vol }));
                if !created.is_null() {
                    *created = c as c_int;
                }
                0
            }
            Err(e) => {
                write_err(err, errlen, &e.to_string());
                -e.errno()
            }
        }
    })
}

/// Let the current thread run on every CPU. A thread inherits its creator's
/// affinity: opened from an SPDK reactor, the engine's workers and the JVM's
/// threads (all created from here) would otherwise share the reactor's core.
fn unpin_current_thread() {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET stays within its bounds.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for cpu in 0..libc::CPU_SETSIZE as usize {
            libc::CPU_SET(cpu, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            log::warn!("cannot widen the CPU affinity of the open thread");
        }
    }
}

struct SendPtr(*mut c_void);
// SAFETY: the pointer is only handed back to the caller's callback.
unsafe impl Send for SendPtr {}

/// Open a volume on an engine thread and report through `cb` (called on that
/// thread). That thread, and the engine threads it starts, may run on every CPU
/// whatever the caller's affinity (safe to call from an SPDK reactor). Returns 0 when started, or a negative errno (and `cb` is not called).
#[no_mangle]
pub unsafe extern "C" fn ozbd_open_async(
    uri: *const c_char,
    params: *const ozbd_params,
    cb: ozbd_open_cb,
    cb_arg: *mut c_void,
) -> c_int {
    init_logging();
    let Some(cb) = cb else { return -libc::EINVAL };
    let parsed = parse_params(uri, params);
    let arg = SendPtr(cb_arg);
    let spawned = std::thread::Builder::new()
        .name("ozbd-open".into())
        .spawn(move || {
            let arg = arg;
            unpin_current_thread();
            let result = guard("ozbd_open_async", Err(Error::Closed), || {
                parsed.and_then(open_impl)
            });
            match result {
                Ok((vol, c)) => {
                    let v = Box::into_raw(Box::new(ozbd_volume { vol }));
                    cb(arg.0, v, 0, c as c_int, c"".as_ptr());
                }
                Err(e) => {
                    let msg = std::ffi::CString::new(e.to_string().replace('\0', " "))
                        .unwrap_or_default();
                    cb(arg.0, ptr::null_mut(), -e.errno(), 0, msg.as_ptr());
                }
            }
        });
    match spawned {
        Ok(_) => 0,
        Err(_) => -libc::EAGAIN,
    }
}

/// Wait for in-flight I/O, stop the volume's workers and free it. Blocks.
#[no_mangle]
pub unsafe extern "C" fn ozbd_close(vol: *mut ozbd_volume) {
    if vol.is_null() {
        return;
    }
    guard("ozbd_close", (), || drop(Box::from_raw(vol)));
}

/// Remove the volume at `uri` and all its data. Blocks. Without `force` the
/// directory must hold a valid volume. Returns 0 or a negative errno with `err` set.
#[no_mangle]
pub unsafe extern "C" fn ozbd_destroy(
    uri: *const c_char,
    force: c_int,
    timeout_ms: u32,
    err: *mut c_char,
    errlen: usize,
) -> c_int {
    init_logging();
    guard("ozbd_destroy", -libc::EIO, || {
        let r = cstr(uri, "uri")
            .and_then(|u| VolumeUri::parse(&u))
            .and_then(|u| {
                let copts = ConnectOptions {
                    timeout: Duration::from_millis(if timeout_ms == 0 {
                        60_000
                    } else {
                        timeout_ms as u64
                    }),
                    ..ConnectOptions::default()
                };
                let b = connect(&u, &copts)?;
                Volume::destroy(&b, &u, force != 0)
            });
        match r {
            Ok(()) => 0,
            Err(e) => {
                write_err(err, errlen, &e.to_string());
                -e.errno()
            }
        }
    })
}

/// Fill `*info` with the volume's geometry. Never blocks.
#[no_mangle]
pub unsafe extern "C" fn ozbd_get_info(vol: *const ozbd_volume, info: *mut ozbd_info) -> c_int {
    if vol.is_null() || info.is_null() {
        return -libc::EINVAL;
    }
    let sb = (*vol).vol.superblock();
    let mut uuid = [0 as c_char; 40];
    for (d, s) in uuid.iter_mut().zip(sb.uuid.to_string().bytes()) {
        *d = s as c_char;
    }
    *info = ozbd_info {
        size: sb.size,
        block_size: sb.block_size,
        chunk_size: sb.chunk_size,
        chunk_count: sb.chunk_count(),
        uuid,
    };
    0
}

/// Fill `*stats` with the volume's counters. Never blocks for long (one short lock).
#[no_mangle]
pub unsafe extern "C" fn ozbd_get_stats(vol: *const ozbd_volume, stats: *mut ozbd_stats) -> c_int {
    if vol.is_null() || stats.is_null() {
        return -libc::EINVAL;
    }
    *stats = (*vol).vol.stats().into();
    0
}

/// 1 when chunk `idx` holds data, 0 when it reads as zeros (never stored or
/// discarded). For extent maps. Never blocks.
#[no_mangle]
pub unsafe extern "C" fn ozbd_chunk_allocated(vol: *const ozbd_volume, idx: u64) -> c_int {
    if vol.is_null() {
        return -libc::EINVAL;
    }
    let v = &(*vol).vol;
    if idx >= v.superblock().chunk_count() {
        return -libc::EINVAL;
    }
    v.allocated_chunks().binary_search(&idx).is_ok() as c_int
}

/// Queue one I/O on any byte range inside the volume (partial blocks are
/// read-modify-written in order with other requests). `iov`/`iovcnt` hold the data of a READ or WRITE (their total
/// must equal `len`) and must stay valid until `cb` runs; other operations pass
/// NULL/0. `cb` is called exactly once, with 0 or a negative errno: usually on
/// an engine thread, but on the calling thread before this returns when the
/// request is invalid or needs no work. When a WRITE, WRITE_ZEROES or UNMAP
/// completes with 0, its data is durable. Never blocks.
#[no_mangle]
pub unsafe extern "C" fn ozbd_submit(
    vol: *const ozbd_volume,
    op: ozbd_op,
    offset: u64,
    len: u64,
    iov: *const libc::iovec,
    iovcnt: c_int,
    cb: ozbd_io_cb,
    cb_arg: *mut c_void,
) {
    let Some(cb) = cb else { return };
    let arg = SendPtr(cb_arg);
    let done: ozbd_chunkstore::Completion = Box::new(move |r: ozbd_chunkstore::Result<()>| {
        let arg = arg;
        let status = match r {
            Ok(()) => 0,
            Err(e) => {
                log::warn!("I/O failed: {e}");
                -e.errno()
            }
        };
        cb(arg.0, status);
    });
    if vol.is_null() {
        return done(Err(Error::InvalidArgument("vol is NULL".into())));
    }
    let op = match op {
        ozbd_op::Read => Op::Read,
        ozbd_op::Write => Op::Write,
        ozbd_op::WriteZeroes => Op::WriteZeroes,
        ozbd_op::Unmap => Op::Unmap,
        ozbd_op::Flush => Op::Flush,
    };
    let sg = if iov.is_null() || iovcnt <= 0 {
        SgList::empty()
    } else {
        let iovs = std::slice::from_raw_parts(iov, iovcnt as usize);
        SgList::from_raw(iovs.iter().map(|v| (v.iov_base as *mut u8, v.iov_len)))
    };
    (*vol).vol.submit(op, offset, len, sg, done);
}
