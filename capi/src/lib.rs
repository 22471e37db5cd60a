// SPDX-License-Identifier: Apache-2.0
//! The engine's C ABI.
//!
//! Owns: translating C calls into engine calls: opening, resizing and
//! closing volumes, submitting I/O with a completion callback, info (the
//! size as it is now), settings and statistics
//! (as JSON from the engine's own `Serialize` impls, so no front end keeps a
//! list of its own).
//! Must never: block in `ozbd_submit` or the getters (an SPDK reactor calls them);
//! enter the JVM on the caller's thread (opens run on an engine thread, with
//! the engine's CPU mask); let a Rust panic cross into C; trust an enum value
//! from C (operations are plain ints, checked).

#![allow(clippy::missing_safety_doc)] // Each function's doc comment states its contract.
#![allow(non_camel_case_types)] // C names.

mod affinity;
mod params;

use std::ffi::{c_char, c_int, c_void};
use std::ptr;
use std::time::Duration;

use ozbd_chunkstore::defaults::DEFAULT_CONNECT_TIMEOUT;
use ozbd_chunkstore::{
    connect, ConnectOptions, CreateOptions, Error, Op, Rejected, SgList, Volume, VolumeUri,
};

use params::{cstr, Params};
pub use params::{
    ozbd_params, ozbd_params_init, OZBD_CREATE_NEW, OZBD_OPEN_EXISTING, OZBD_OPEN_OR_CREATE,
};

/// An open volume.
pub struct ozbd_volume {
    vol: Volume,
}

/// I/O operations, passed to `ozbd_submit` as a plain int.
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
    // Cut at a character boundary: half a UTF-8 character makes the message invalid UTF-8,
    // and SPDK's JSON writer then sends an unterminated answer that no client can parse.
    let mut n = bytes.len().min(errlen - 1);
    while !msg.is_char_boundary(n) {
        n -= 1;
    }
    // SAFETY: the caller gave `errlen` writable bytes at `err`.
    unsafe {
        ptr::copy_nonoverlapping(bytes.as_ptr(), err as *mut u8, n);
        *err.add(n) = 0;
    }
}

/// Open (or create) a volume. Returns (volume, created).
fn open_impl(p: Params) -> Result<(Volume, bool), Error> {
    let copts = ConnectOptions {
        timeout: p.timeout,
        ..ConnectOptions::default()
    };
    let backend = connect(&p.uri, &copts)?;
    let oopts = p.open.clone();
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

struct SendPtr(*mut c_void);
// SAFETY: the pointer is only handed back to the caller's callback.
unsafe impl Send for SendPtr {}

/// Run `f` on a new engine thread placed on the volume's CPU mask (or every
/// CPU the process may use), so the threads the open starts (engine workers,
/// the JVM's) inherit that placement and not the caller's.
fn on_engine_thread(
    mask: Option<affinity::CpuMask>,
    f: impl FnOnce() + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, Error> {
    std::thread::Builder::new()
        .name("ozbd-open".into())
        .spawn(move || {
            if let Err(e) = affinity::apply_to_current_thread(mask.as_ref()) {
                log::warn!("{e}");
            }
            f()
        })
        .map_err(|e| Error::Internal(format!("cannot start the open thread: {e}")))
}

fn open_on_engine_thread(
    params: Result<Params, Error>,
    report: impl FnOnce(Result<(Volume, bool), Error>) + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, Error> {
    let mask = params.as_ref().ok().and_then(|p| p.cpumask.clone());
    on_engine_thread(mask, move || {
        let r = guard(
            "ozbd_open",
            Err(Error::Internal("panic in open".into())),
            || params.and_then(open_impl),
        );
        report(r)
    })
}

/// Open a volume, blocking until done (it may start the JVM and contact Ozone:
/// never call it on an SPDK reactor thread). The open itself runs on an engine
/// thread with the volume's CPU mask. On success stores the volume in `*out`,
/// sets `*created` (if non-NULL) and returns 0; otherwise returns a negative
/// errno and writes a message into `err` (`errlen` bytes).
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
        let (tx, rx) = std::sync::mpsc::channel();
        let r = open_on_engine_thread(params::parse(uri, params), move |r| {
            let _ = tx.send(r);
        })
        .and_then(|h| {
            let r = rx
                .recv()
                .unwrap_or(Err(Error::Internal("the open thread died".into())));
            let _ = h.join();
            r
        });
        match r {
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

/// Open a volume on an engine thread and report through `cb` (called on that
/// thread, always, also for bad parameters). That thread, and the engine and
/// JVM threads it starts, run on `params.cpumask` (default: every CPU the
/// process may use), whatever the caller's affinity: safe to call from an
/// SPDK reactor. Returns 0 when started, or a negative errno (and `cb` is not
/// called).
#[no_mangle]
pub unsafe extern "C" fn ozbd_open_async(
    uri: *const c_char,
    params: *const ozbd_params,
    cb: ozbd_open_cb,
    cb_arg: *mut c_void,
) -> c_int {
    init_logging();
    let Some(cb) = cb else { return -libc::EINVAL };
    let arg = SendPtr(cb_arg);
    let started = guard(
        "ozbd_open_async",
        Err(Error::Internal("panic".into())),
        || {
            open_on_engine_thread(params::parse(uri, params), move |r| {
                let arg = arg;
                match r {
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
            })
        },
    );
    match started {
        Ok(_) => 0,
        Err(_) => -libc::EAGAIN,
    }
}

/// Check `uri` and `params` the way `ozbd_open` does before it contacts Ozone
/// (URI syntax, geometry, options, CPU mask, a size to create with), and that
/// the process environment can reach the backend (a CLASSPATH for `ofs://`
/// and `file://`). Returns 0, or a negative errno
/// with the engine's message in `err`. Never blocks. For front ends that want
/// to refuse bad configuration early with the engine's own words.
#[no_mangle]
pub unsafe extern "C" fn ozbd_check_params(
    uri: *const c_char,
    params: *const ozbd_params,
    err: *mut c_char,
    errlen: usize,
) -> c_int {
    init_logging();
    guard("ozbd_check_params", -libc::EIO, || {
        match params::parse(uri, params)
            .and_then(|p| ozbd_chunkstore::connect::check_environment(&p.uri))
        {
            Ok(()) => 0,
            Err(e) => {
                write_err(err, errlen, &e.to_string());
                -e.errno()
            }
        }
    })
}

/// Wait for in-flight I/O, stop the volume's workers and free it. Blocks.
#[no_mangle]
pub unsafe extern "C" fn ozbd_close(vol: *mut ozbd_volume) {
    if vol.is_null() {
        return;
    }
    guard("ozbd_close", (), || drop(Box::from_raw(vol)));
}

/// Remove the volume at `uri` and all its data. Blocks (the work runs on an
/// engine thread placed on every CPU the process may use). Without `force` the
/// directory must hold a valid volume. `timeout_ms` bounds the connect (0 =
/// the default). Returns 0 or a negative errno with `err` set.
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
        // On an engine thread with every CPU the process may use, like opens:
        // the connect thread (and a JVM this may start) must not inherit a
        // reactor's core.
        let r = cstr(uri, "uri")
            .and_then(|u| VolumeUri::parse(&u))
            .and_then(|u| {
                let (tx, rx) = std::sync::mpsc::channel();
                let h = on_engine_thread(None, move || {
                    let copts = ConnectOptions {
                        timeout: if timeout_ms == 0 {
                            DEFAULT_CONNECT_TIMEOUT
                        } else {
                            Duration::from_millis(timeout_ms as u64)
                        },
                        ..ConnectOptions::default()
                    };
                    let r = connect(&u, &copts).and_then(|b| Volume::destroy(&b, &u, force != 0));
                    let _ = tx.send(r);
                })?;
                let r = rx
                    .recv()
                    .unwrap_or(Err(Error::Internal("the destroy thread died".into())));
                let _ = h.join();
                r
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

/// Grow the open volume to `new_size` bytes, or with `force` shrink it, while
/// it serves I/O (see the engine's `Volume::resize`). `new_size` must be a
/// positive multiple of the block size. Blocks (Ozone I/O through the JVM):
/// never call it on an SPDK reactor thread; call it where `ozbd_close` is
/// called. On success returns 0, and `ozbd_get_info` reports the new size
/// from then on: I/O up to it is accepted (a shrink refuses I/O past it).
/// Otherwise returns a negative errno with the engine's message in `err`
/// (`errlen` bytes) and the size is unchanged: -EINVAL (not a positive
/// multiple of the block size, or a shrink without `force`), -EBUSY (a forced
/// shrink over data, journaled writes or journal records past the new end;
/// the message names the first), -EROFS (a read-only open), -ESTALE (this
/// opener was fenced by a takeover), -ETIMEDOUT (a shrink could not drain
/// the requests in flight), or the backend's error.
#[no_mangle]
pub unsafe extern "C" fn ozbd_resize(
    vol: *mut ozbd_volume,
    new_size: u64,
    force: c_int,
    err: *mut c_char,
    errlen: usize,
) -> c_int {
    init_logging();
    if vol.is_null() {
        write_err(err, errlen, "vol is NULL");
        return -libc::EINVAL;
    }
    guard("ozbd_resize", -libc::EIO, || {
        match (*vol).vol.resize(new_size, force != 0) {
            Ok(()) => {
                write_err(err, errlen, "");
                0
            }
            Err(e) => {
                write_err(err, errlen, &e.to_string());
                -e.errno()
            }
        }
    })
}

/// Fill `*info` with the volume's geometry as it is now (`size` changes
/// when `ozbd_resize` succeeds). Never blocks.
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

/// Write `report(volume)` into `buf` the way snprintf does: returns its
/// length (without the NUL); writes at most `len` bytes, NUL-terminated when
/// `len > 0`. -EINVAL for a NULL `vol`.
unsafe fn snprint_report(
    vol: *const ozbd_volume,
    buf: *mut c_char,
    len: usize,
    what: &str,
    report: impl FnOnce(&Volume) -> String,
) -> c_int {
    if vol.is_null() {
        return -libc::EINVAL;
    }
    guard(what, -libc::EIO, || {
        let json = report(&(*vol).vol);
        write_err(buf, len, &json);
        json.len().min(c_int::MAX as usize) as c_int
    })
}

/// The volume's statistics as one JSON object (the engine's one list of
/// counters), snprintf-style: returns the JSON's length; call again with a
/// larger buffer when that is >= `len`. -EINVAL for NULL `vol`. Never blocks.
#[no_mangle]
pub unsafe extern "C" fn ozbd_stats_json(
    vol: *const ozbd_volume,
    buf: *mut c_char,
    len: usize,
) -> c_int {
    snprint_report(vol, buf, len, "ozbd_stats_json", |v| v.stats().to_json())
}

/// The settings the volume runs with (workers, retry, in-flight bounds) and
/// the Ozone client settings in effect with their sources, as one JSON
/// object, snprintf-style like `ozbd_stats_json`. Never blocks.
#[no_mangle]
pub unsafe extern "C" fn ozbd_settings_json(
    vol: *const ozbd_volume,
    buf: *mut c_char,
    len: usize,
) -> c_int {
    snprint_report(vol, buf, len, "ozbd_settings_json", |v| {
        v.settings().to_json()
    })
}

/// 1 when chunk `idx` may hold data, 0 when it reads as zeros (never stored or
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
    v.chunk_may_hold_data(idx) as c_int
}

/// Queue one I/O on any byte range inside the volume (partial blocks are
/// read-modify-written in order with other requests). `op` is an `ozbd_op`
/// value. `iov`/`iovcnt` hold the data of a READ or WRITE (their total must
/// equal `len`) and must stay valid until `cb` runs; other operations pass
/// NULL/0.
///
/// Returns 0 when the request was accepted: `cb` is then called exactly once,
/// with 0 or a negative errno, usually on an engine thread but possibly on
/// the calling thread before this returns (a request with nothing to do).
/// Returns a negative errno when it was not accepted, and `cb` is never
/// called: -EAGAIN when the volume's in-flight bound is reached (submit again
/// after a completion: SPDK completes the I/O with NOMEM, which makes the bdev
/// layer retry it), -EINVAL for an unknown op, a range beyond the volume or a
/// buffer of the wrong size (the reason is logged), -EBADF once the volume
/// is closing. When a WRITE, WRITE_ZEROES or UNMAP completes with 0, its data
/// is durable. Never blocks.
#[no_mangle]
pub unsafe extern "C" fn ozbd_submit(
    vol: *const ozbd_volume,
    op: c_int,
    offset: u64,
    len: u64,
    iov: *const libc::iovec,
    iovcnt: c_int,
    cb: ozbd_io_cb,
    cb_arg: *mut c_void,
) -> c_int {
    let Some(cb) = cb else { return -libc::EINVAL };
    if vol.is_null() {
        return -libc::EINVAL;
    }
    let op = match op {
        x if x == ozbd_op::Read as c_int => Op::Read,
        x if x == ozbd_op::Write as c_int => Op::Write,
        x if x == ozbd_op::WriteZeroes as c_int => Op::WriteZeroes,
        x if x == ozbd_op::Unmap as c_int => Op::Unmap,
        x if x == ozbd_op::Flush as c_int => Op::Flush,
        other => {
            log::warn!("ozbd_submit: unknown op {other}: use an ozbd_op value (0 to 4)");
            return -libc::EINVAL;
        }
    };
    if iovcnt < 0 || (iovcnt > 0 && iov.is_null()) {
        return -libc::EINVAL;
    }
    let arg = SendPtr(cb_arg);
    guard("ozbd_submit", -libc::EIO, move || {
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
        let sg = if iovcnt == 0 {
            SgList::empty()
        } else {
            let iovs = std::slice::from_raw_parts(iov, iovcnt as usize);
            SgList::from_raw(iovs.iter().map(|v| (v.iov_base as *mut u8, v.iov_len)))
        };
        match (*vol).vol.try_submit(op, offset, len, sg, done) {
            Ok(()) => 0,
            Err(Rejected { error, .. }) => {
                if !matches!(error, Error::Busy(_)) {
                    log::warn!("ozbd_submit refused: {error}");
                }
                -error.errno()
            }
        }
    })
}
