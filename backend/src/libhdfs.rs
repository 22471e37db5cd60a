//! The libhdfs backend: `ofs://` (Apache Ozone) and `file://` (a local directory),
//! both through Hadoop's `FileSystem` API in an embedded JVM.
//!
//! # Run-time environment
//!
//! | variable | needed | what |
//! |---|---|---|
//! | `CLASSPATH` | yes | explicit jar list (a `dir/*` entry is expanded here); must hold hadoop-common, **hadoop-hdfs-client** (libhdfs caches `DistributedFileSystem` and friends at start-up), commons-lang3, ozone-filesystem-hadoop3 for `ofs://`, and the config dir with `core-site.xml`/`ozone-site.xml`. `eval "$(scripts/ozone-local env)"` sets it. |
//! | `LIBHDFS_OPTS` | no | extra JVM options, split on white space (`--add-opens X` pairs are joined into `--add-opens=X`). |
//! | `JAVA_HOME` | no | where to find `libjvm.so` at run time (see below). |
//! | `OZBD_LIBJVM` | no | explicit path of `libjvm.so`, tried first. |
//! | `OZBD_JVM_SIGNALS=1` | no | let the JVM install its SIGINT/SIGTERM/SIGHUP handlers (by default we pass `-Xrs`, so the host process, e.g. an SPDK app, keeps its own). |
//!
//! # How libjvm is found (no `LD_LIBRARY_PATH`, no rpath)
//!
//! `hdfs-sys` links `-ljvm`, which would make every binary need libjvm on its
//! library path (an rpath from a library's build script does not reach dependent
//! binaries or cdylibs). Instead this module *defines* the only two JNI
//! invocation symbols libhdfs uses, `JNI_GetCreatedJavaVMs` and
//! `JNI_CreateJavaVM`. The linker binds libhdfs to these definitions, so
//! `--as-needed` drops `libjvm.so` from the binary's dependencies, and the first
//! `connect` `dlopen`s libjvm from, in order: an already loaded `libjvm.so`,
//! `$OZBD_LIBJVM`, `$JAVA_HOME/lib/server`, `$JAVA_HOME/jre/lib/{,amd64/}server`,
//! the JDK found at build time (`OZBD_BUILD_JVM_LIB_DIR` from `build.rs`), then
//! the plain library search path. The tests check with `readelf` that test
//! binaries carry no `libjvm.so` dependency.
//!
//! We also create the JVM ourselves (same options libhdfs would use, plus
//! `-Xrs`), before libhdfs touches it: libhdfs leaves a dangling thread-local
//! pointer when its own JVM start fails, and a missing class in `CLASSPATH`
//! would only show as "getJNIEnv failed". Starting it here gives clear errors.
//!
//! # put: all-or-nothing
//!
//! * `ofs://`: `hdfsOpenFile(O_WRONLY)` is `create(overwrite=true)`; Ozone
//!   commits the key to the OM only in `close()`, atomically: readers see the old
//!   version until then, and a process that dies before close leaves the old
//!   version. After a failed `hdfsWrite` we must NOT call `hdfsCloseFile`: if the
//!   Java stream were still open, close would commit the bytes written so far (a
//!   truncated chunk). (Ozone's `KeyOutputStream` marks itself closed when a write
//!   throws an `Exception`, which makes close a no-op, but not for an `Error`
//!   such as `OutOfMemoryError`, nor when libhdfs fails before reaching Java.)
//!   So on any write failure the stream is *abandoned*: its JNI global reference
//!   is deleted without closing it and the libhdfs handle is freed; the garbage
//!   collector reclaims the Java stream, the uncommitted open key is purged by the
//!   OM's open-key cleanup. No hsync before close: close already waits for the
//!   datanodes' Ratis commit of every block before the OM commit, and hsync would
//!   add an OM round trip (and needs RATIS/THREE plus server flags).
//!   Durability therefore rests on Ratis replication (`hdds.container.chunk.write.sync`
//!   decides whether datanodes fsync).
//! * `file://`: create-overwrite truncates in place, so we write a temp file
//!   `.<name>.ozbd-tmp-<pid>-<n>` in the same directory, `hdfsHSync` (fsync), close,
//!   `hdfsRename` it onto the target (`RawLocalFileSystem.rename` is
//!   `File.renameTo` = rename(2), which atomically replaces) and fsync the
//!   directory. `fs.file.impl` is set to `RawLocalFileSystem` (no `.crc` side
//!   files). `list` hides temp files left by a crash.
//!
//! # Threads
//!
//! The `hdfsFS` (a Java `FileSystem`) is shared by all threads; every call opens
//! and closes its own `hdfsFile`. libhdfs attaches each calling thread to the JVM
//! and detaches it when the thread exits.
//!
//! # Bucket layout
//!
//! LEGACY and FILE_SYSTEM_OPTIMIZED buckets look the same through the Hadoop
//! `FileSystem` API, so `bucket_layout` asks the OM directly, through JNI calls
//! on the Ozone client inside our ofs `FileSystem` (see "Bucket layout" below):
//! one OM round trip, no new connection.
//!
//! # Noise on stderr
//!
//! libhdfs prints a Java stack trace for most failures, including opening a
//! missing file for reading (`read_at` on an absent path): callers that probe for
//! absent files should use `stat`/`list` first.

use std::cell::Cell;
use std::ffi::{CStr, CString};
use std::fmt;
use std::os::raw::{c_char, c_int, c_void};
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};

use hdfs_sys as ffi;
use jni_sys as jni;

use crate::{Backend, BackendError, FileInfo, Result};

/// libhdfs's errno for "an exception libhdfs has no errno for".
const EINTERNAL: i32 = 255;
/// Largest piece handed to one hdfsWrite (each becomes a Java byte[] copy).
const WRITE_PIECE: usize = 1 << 20;
/// Largest piece asked of one hdfsPread (Ozone reads straight into our buffer).
const READ_PIECE: usize = 8 << 20;
/// Marker in the names of `file://` temp files.
const TMP_MARK: &str = ".ozbd-tmp-";

/// The hint shown when the JVM environment is missing.
pub const ENV_HINT: &str = "run: eval \"$(scripts/ozone-local env)\"";

/// Options of [`LibhdfsBackend::connect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibhdfsOptions {
    /// Replication of the files `put` creates on `ofs://` (3 = RATIS/THREE).
    /// libhdfs turns 0 into `dfs.replication`, default 1, so pass it explicitly.
    /// Ignored for `file://`.
    pub replication: i16,
    /// Hadoop configuration keys set on the `FileSystem` (after ours; last wins).
    pub conf: Vec<(String, String)>,
    /// Keys set only where no user configuration file sets them (TEMPORARY: forced).
    pub defaults: Vec<(String, String)>,
}

impl Default for LibhdfsOptions {
    fn default() -> Self {
        LibhdfsOptions {
            replication: 3,
            conf: Vec::new(),
            defaults: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Ofs,
    Local,
}

/// Status of a path with the fields `FileInfo` leaves out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibhdfsFileStatus {
    pub info: FileInfo,
    pub replication: i16,
    pub block_size: i64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    pub owner: String,
}

/// A [`Backend`] over libhdfs. See the module documentation.
pub struct LibhdfsBackend {
    fs: ffi::hdfsFS,
    uri: String,
    scheme: Scheme,
    replication: i16,
    seq: AtomicU64,
}

// SAFETY: `fs` is a JNI *global* reference to a Java `FileSystem`, valid on every
// thread until `hdfsDisconnect` in `Drop`. Hadoop `FileSystem` implementations
// (OzoneFileSystem, RawLocalFileSystem) are safe for concurrent use, and libhdfs
// attaches each calling thread to the JVM itself. Nothing else is shared: every
// call opens and closes its own `hdfsFile`.
unsafe impl Send for LibhdfsBackend {}
unsafe impl Sync for LibhdfsBackend {}

impl fmt::Debug for LibhdfsBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LibhdfsBackend")
            .field("uri", &self.uri)
            .field("replication", &self.replication)
            .finish()
    }
}

impl Drop for LibhdfsBackend {
    fn drop(&mut self) {
        // SAFETY: `fs` came from hdfsBuilderConnect and is disconnected once.
        let rc = unsafe { ffi::hdfsDisconnect(self.fs) };
        if rc != 0 {
            log::warn!("{}: hdfsDisconnect failed", self.uri);
        }
    }
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn c_path(op: &'static str, path: &str) -> Result<CString> {
    if !path.starts_with('/') {
        return Err(BackendError::io(
            op,
            path,
            libc::EINVAL,
            "path must be absolute",
        ));
    }
    CString::new(path).map_err(|_| BackendError::io(op, path, libc::EINVAL, "NUL in path"))
}

/// The last component of a path or URI ("" for the root).
fn last_component(name: &str) -> String {
    name.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_string()
}

fn is_tmp_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(TMP_MARK)
}

/// Split "/a/b/c" into ("/a/b", "c"); the root has no name.
fn split_parent(path: &str) -> Option<(&str, &str)> {
    let trimmed = path.trim_end_matches('/');
    let idx = trimmed.rfind('/')?;
    let name = &trimmed[idx + 1..];
    if name.is_empty() {
        return None;
    }
    let dir = if idx == 0 { "/" } else { &trimmed[..idx] };
    Some((dir, name))
}

fn fsync_dir(dir: &str) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

// ---------------------------------------------------------------------------
// Errors: errno plus the Java root cause libhdfs keeps per thread.

thread_local! {
    /// Whether libhdfs has thread-local state on this thread. Reading the last
    /// exception before the first libhdfs call would dereference NULL in libhdfs.
    static TLS_READY: Cell<bool> = const { Cell::new(false) };
}

/// What a failed libhdfs call left: errno and, if this call raised one, the
/// Java root cause message.
#[derive(Debug)]
struct Failure {
    errno: i32,
    cause: Option<String>,
}

/// The last-exception pointer before a call. libhdfs allocates the new message
/// before freeing the old one, so a changed pointer means a fresh exception.
struct Snap(*const c_char);

impl Snap {
    fn take() -> Snap {
        if TLS_READY.with(Cell::get) {
            // SAFETY: libhdfs has thread-local state on this thread.
            Snap(unsafe { ffi::hdfsGetLastExceptionRootCause() })
        } else {
            Snap(ptr::null())
        }
    }

    /// Record a successful call (libhdfs now has state on this thread).
    fn ok(&self) {
        TLS_READY.with(|r| r.set(true));
    }

    /// Call right after the failed libhdfs call (errno is read first).
    fn failure(&self) -> Failure {
        let errno = last_errno();
        TLS_READY.with(|r| r.set(true));
        // SAFETY: the failed call went through libhdfs's getJNIEnv, which set up
        // the thread-local state (we start the JVM before any libhdfs call).
        let p = unsafe { ffi::hdfsGetLastExceptionRootCause() };
        let cause = if !p.is_null() && p.cast_const() != self.0 {
            // SAFETY: NUL-terminated string owned by libhdfs, valid until the next
            // exception on this thread.
            let s = unsafe { CStr::from_ptr(p) }.to_string_lossy();
            let s = s.trim();
            (!s.is_empty()).then(|| s.to_string())
        } else {
            None
        };
        Failure { errno, cause }
    }
}

const UNAVAILABLE_PATTERNS: &[&str] = &[
    "ConnectException",
    "Connection refused",
    "NoRouteToHostException",
    "UnknownHostException",
    "ConnectTimeoutException",
    "SocketTimeoutException",
    "RetriesExhausted",
    "Failed to connect",
];

fn contains_any(s: &str, pats: &[&str]) -> bool {
    pats.iter().any(|p| s.contains(p))
}

fn strerror(errno: i32) -> String {
    if errno == EINTERNAL {
        "internal libhdfs error (details on stderr)".to_string()
    } else {
        std::io::Error::from_raw_os_error(errno).to_string()
    }
}

impl LibhdfsBackend {
    fn error(&self, op: &'static str, path: &str, f: Failure) -> BackendError {
        classify(&self.uri, op, path, f)
    }
}

fn classify(uri: &str, op: &'static str, path: &str, f: Failure) -> BackendError {
    let cause = f.cause.unwrap_or_default();
    if f.errno == libc::ENOENT
        || cause.starts_with("FileNotFoundException")
        || cause.contains("KEY_NOT_FOUND")
        || cause.contains("FILE_NOT_FOUND")
    {
        return BackendError::NotFound {
            path: path.to_string(),
        };
    }
    if contains_any(&cause, UNAVAILABLE_PATTERNS) {
        return BackendError::Unavailable {
            what: uri.to_string(),
            msg: format!("{op} {path}: {cause}"),
        };
    }
    if cause.contains("OBJECT_STORE") || cause.contains("does not support file system semantics") {
        return BackendError::Unsupported {
            path: path.to_string(),
            msg: cause,
        };
    }
    let errno = if cause.contains("PathIsNotEmptyDirectoryException")
        || cause.contains("DIRECTORY_NOT_EMPTY")
    {
        libc::ENOTEMPTY
    } else if cause.contains("KEY_ALREADY_EXISTS") || cause.contains("FILE_ALREADY_EXISTS") {
        libc::EEXIST
    } else if cause.contains("QUOTA_EXCEEDED") {
        libc::EDQUOT
    } else if cause.contains("PERMISSION_DENIED") {
        libc::EACCES
    } else if f.errno == 0 || f.errno == EINTERNAL {
        libc::EIO
    } else {
        f.errno
    };
    let msg = if cause.is_empty() {
        strerror(f.errno)
    } else {
        cause
    };
    BackendError::Io {
        op,
        path: path.to_string(),
        errno,
        msg,
    }
}

// ---------------------------------------------------------------------------
// Open files.

/// A file open for reading; closed on drop.
struct ReadFile<'a> {
    be: &'a LibhdfsBackend,
    file: ffi::hdfsFile,
}

impl Drop for ReadFile<'_> {
    fn drop(&mut self) {
        // SAFETY: `file` is open and closed once; close of an input stream has no
        // effect on the data.
        if unsafe { ffi::hdfsCloseFile(self.be.fs, self.file) } != 0 {
            log::debug!("{}: closing a read stream failed", self.be.uri);
        }
    }
}

/// A file open for writing. Dropping it without `close` abandons it: the
/// stream is never closed, so nothing is committed.
struct WriteFile<'a> {
    be: &'a LibhdfsBackend,
    file: ffi::hdfsFile,
}

impl WriteFile<'_> {
    /// Close, which on Ozone commits the key.
    fn close(self, op: &'static str, path: &str) -> Result<()> {
        let me = std::mem::ManuallyDrop::new(self);
        let snap = Snap::take();
        // SAFETY: open handle, closed once (libhdfs frees it even on failure).
        if unsafe { ffi::hdfsCloseFile(me.be.fs, me.file) } == 0 {
            snap.ok();
            Ok(())
        } else {
            Err(me.be.error(op, path, snap.failure()))
        }
    }
}

impl Drop for WriteFile<'_> {
    fn drop(&mut self) {
        // SAFETY: open handle not closed yet; it is not used after this.
        if !unsafe { jvm::abandon_output_stream(self.file) } {
            log::error!(
                "{}: could not abandon a failed output stream; leaking it",
                self.be.uri
            );
        }
    }
}

/// A written, not yet closed file; see [`LibhdfsBackend::debug_begin_put`].
#[doc(hidden)]
pub struct PendingPut<'a> {
    file: WriteFile<'a>,
    path: String,
}

impl PendingPut<'_> {
    /// Close the stream (on Ozone: commit the key).
    pub fn commit(self) -> Result<()> {
        self.file.close("commit", &self.path)
    }
}

// ---------------------------------------------------------------------------

impl LibhdfsBackend {
    /// Connect to `ofs://host:port` (Ozone) or `file:///` (local paths).
    /// Starts the JVM on first use. Connecting to an unreachable Ozone Manager
    /// blocks for as long as the Ozone client retries (tune with `conf`, e.g.
    /// `ozone.client.failover.max.attempts`); a timeout is the caller's business.
    pub fn connect(fs_uri: &str, opts: &LibhdfsOptions) -> Result<Self> {
        let (scheme, uri) = parse_uri(fs_uri)?;
        jvm::ensure_jvm().map_err(|msg| BackendError::Io {
            op: "start JVM",
            path: uri.clone(),
            errno: libc::ELIBACC,
            msg,
        })?;

        let mut conf: Vec<(String, String)> = Vec::new();
        if scheme == Scheme::Local {
            conf.push((
                "fs.file.impl".into(),
                "org.apache.hadoop.fs.RawLocalFileSystem".into(),
            ));
        }
        for (k, v) in opts.defaults.iter().chain(&opts.conf) {
            match conf.iter_mut().find(|(ck, _)| ck == k) {
                Some(e) => e.1 = v.clone(),
                None => conf.push((k.clone(), v.clone())),
            }
        }
        let bad = |what: &str| BackendError::io("connect", &uri, libc::EINVAL, what.to_string());
        let c_uri = CString::new(uri.as_str()).map_err(|_| bad("NUL in URI"))?;
        let mut c_conf = Vec::with_capacity(conf.len());
        for (k, v) in &conf {
            c_conf.push((
                CString::new(k.as_str()).map_err(|_| bad("NUL in conf key"))?,
                CString::new(v.as_str()).map_err(|_| bad("NUL in conf value"))?,
            ));
        }

        // SAFETY: the builder keeps pointers to `c_uri` and `c_conf`, which live
        // until after hdfsBuilderConnect, which frees the builder in all cases.
        let fs = unsafe {
            let bld = ffi::hdfsNewBuilder();
            if bld.is_null() {
                return Err(BackendError::io(
                    "connect",
                    &uri,
                    libc::ENOMEM,
                    "hdfsNewBuilder",
                ));
            }
            ffi::hdfsBuilderSetNameNode(bld, c_uri.as_ptr());
            // Our own FileSystem instance: our conf applies, and hdfsDisconnect
            // cannot close an instance someone else shares through the cache.
            ffi::hdfsBuilderSetForceNewInstance(bld);
            for (k, v) in &c_conf {
                if ffi::hdfsBuilderConfSetStr(bld, k.as_ptr(), v.as_ptr()) != 0 {
                    ffi::hdfsFreeBuilder(bld);
                    return Err(BackendError::io("connect", &uri, libc::ENOMEM, "conf"));
                }
            }
            let snap = Snap::take();
            let fs = ffi::hdfsBuilderConnect(bld);
            if fs.is_null() {
                return Err(classify(&uri, "connect", &uri, snap.failure()));
            }
            snap.ok();
            fs
        };
        Ok(LibhdfsBackend {
            fs,
            uri,
            scheme,
            replication: if opts.replication > 0 {
                opts.replication
            } else {
                3
            },
            seq: AtomicU64::new(0),
        })
    }

    /// Whether this is a local (`file://`) filesystem.
    pub fn is_local(&self) -> bool {
        self.scheme == Scheme::Local
    }

    /// Like `stat`, with replication, block size, mtime and owner.
    pub fn file_status(&self, path: &str) -> Result<Option<LibhdfsFileStatus>> {
        let c = c_path("stat", path)?;
        let snap = Snap::take();
        // SAFETY: valid fs and C string; the result is freed below.
        let p = unsafe { ffi::hdfsGetPathInfo(self.fs, c.as_ptr()) };
        if p.is_null() {
            let f = snap.failure();
            if f.errno == libc::ENOENT {
                return Ok(None);
            }
            return Err(self.error("stat", path, f));
        }
        snap.ok();
        // SAFETY: non-null result of hdfsGetPathInfo: one entry, freed once.
        let st = unsafe {
            let st = convert_status(&*p);
            ffi::hdfsFreeFileInfo(p, 1);
            st
        };
        Ok(Some(st))
    }

    /// For tests: create(overwrite) `path` directly (no temp file, even on
    /// `file://`) and write `data`, without closing. `PendingPut::commit`
    /// closes (on Ozone: commits); dropping it abandons the stream as `put` does
    /// after a write error, so on Ozone the old content must stay.
    #[doc(hidden)]
    pub fn debug_begin_put(&self, path: &str, data: &[u8]) -> Result<PendingPut<'_>> {
        let c = c_path("put", path)?;
        let f = self.open_write(path, &c)?;
        self.write_all(&f, path, data)?;
        Ok(PendingPut {
            file: f,
            path: path.to_string(),
        })
    }

    fn open_read(&self, path: &str, c: &CStr) -> Result<ReadFile<'_>> {
        let snap = Snap::take();
        // SAFETY: valid fs and C string.
        let file = unsafe { ffi::hdfsOpenFile(self.fs, c.as_ptr(), libc::O_RDONLY, 0, 0, 0) };
        if file.is_null() {
            return Err(self.error("open", path, snap.failure()));
        }
        snap.ok();
        Ok(ReadFile { be: self, file })
    }

    /// create(overwrite=true) with our replication.
    fn open_write(&self, path: &str, c: &CStr) -> Result<WriteFile<'_>> {
        let repl = match self.scheme {
            Scheme::Ofs => self.replication,
            Scheme::Local => 1,
        };
        let snap = Snap::take();
        // SAFETY: valid fs and C string.
        let file = unsafe {
            ffi::hdfsOpenFile(
                self.fs,
                c.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT,
                0,
                repl,
                0,
            )
        };
        if file.is_null() {
            return Err(self.error("create", path, snap.failure()));
        }
        snap.ok();
        Ok(WriteFile { be: self, file })
    }

    fn write_all(&self, f: &WriteFile<'_>, path: &str, data: &[u8]) -> Result<()> {
        for piece in data.chunks(WRITE_PIECE) {
            let snap = Snap::take();
            // SAFETY: open output stream; `piece` is valid for its length, which
            // fits an i32. libhdfs writes all of it or fails.
            let n = unsafe {
                ffi::hdfsWrite(
                    self.fs,
                    f.file,
                    piece.as_ptr() as *const c_void,
                    piece.len() as i32,
                )
            };
            if n < 0 {
                return Err(self.error("write", path, snap.failure()));
            }
            snap.ok();
            if n as usize != piece.len() {
                return Err(BackendError::io(
                    "write",
                    path,
                    libc::EIO,
                    format!("short write: {n} of {} bytes", piece.len()),
                ));
            }
        }
        Ok(())
    }

    fn put_ofs(&self, path: &str, data: &[u8]) -> Result<()> {
        let c = c_path("put", path)?;
        let f = self.open_write(path, &c)?;
        // On error `f` is dropped unclosed: abandoned, nothing committed.
        self.write_all(&f, path, data)?;
        f.close("commit", path)
    }

    fn put_local(&self, path: &str, data: &[u8]) -> Result<()> {
        let (dir, name) = split_parent(path)
            .ok_or_else(|| BackendError::io("put", path, libc::EISDIR, "no file name"))?;
        let c_final = c_path("put", path)?;
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let tmp = crate::join(dir, &format!(".{name}{TMP_MARK}{}-{n}", std::process::id()));
        let c_tmp = c_path("put", &tmp)?;

        let f = self.open_write(&tmp, &c_tmp)?;
        let written = self.write_all(&f, &tmp, data).and_then(|()| {
            let snap = Snap::take();
            // SAFETY: open output stream.
            if unsafe { ffi::hdfsHSync(self.fs, f.file) } == 0 {
                snap.ok();
                Ok(())
            } else {
                Err(self.error("fsync", &tmp, snap.failure()))
            }
        });
        // Closing a temp file commits nothing visible, so close it either way.
        let closed = f.close("close", &tmp);
        let res = written.and(closed).and_then(|()| {
            let snap = Snap::take();
            // SAFETY: valid fs and C strings.
            if unsafe { ffi::hdfsRename(self.fs, c_tmp.as_ptr(), c_final.as_ptr()) } == 0 {
                snap.ok();
                Ok(())
            } else {
                Err(self.error("rename", path, snap.failure()))
            }
        });
        if let Err(e) = res {
            let _ = self.delete(&tmp, false);
            return Err(e);
        }
        fsync_dir(dir).map_err(|e| {
            BackendError::io(
                "fsync dir",
                dir,
                e.raw_os_error().unwrap_or(libc::EIO),
                e.to_string(),
            )
        })
    }
}

fn parse_uri(fs_uri: &str) -> Result<(Scheme, String)> {
    let bad = |msg: &str| BackendError::Unsupported {
        path: fs_uri.to_string(),
        msg: msg.to_string(),
    };
    let (scheme, rest) = fs_uri
        .split_once(':')
        .ok_or_else(|| bad("expected ofs://host:port or file:///"))?;
    match scheme {
        "file" => {
            let p = rest.trim_start_matches('/');
            if !p.is_empty() {
                return Err(bad(
                    "file:// takes no path: use file:/// and absolute paths",
                ));
            }
            Ok((Scheme::Local, "file:///".to_string()))
        }
        "ofs" => {
            let auth = rest
                .strip_prefix("//")
                .ok_or_else(|| bad("expected ofs://host:port"))?;
            let auth = auth.trim_end_matches('/');
            if auth.is_empty() || auth.contains('/') {
                return Err(bad(
                    "expected ofs://host:port (the volume and bucket belong in paths)",
                ));
            }
            Ok((Scheme::Ofs, format!("ofs://{auth}")))
        }
        _ => Err(bad(
            "only ofs:// (Ozone) and file:// are supported by the libhdfs backend",
        )),
    }
}

/// # Safety
/// `fi` must be a valid entry filled by libhdfs.
unsafe fn convert_status(fi: &ffi::hdfsFileInfo) -> LibhdfsFileStatus {
    let name = if fi.mName.is_null() {
        String::new()
    } else {
        last_component(&CStr::from_ptr(fi.mName).to_string_lossy())
    };
    let owner = if fi.mOwner.is_null() {
        String::new()
    } else {
        CStr::from_ptr(fi.mOwner).to_string_lossy().into_owned()
    };
    LibhdfsFileStatus {
        info: FileInfo {
            name,
            len: fi.mSize.max(0) as u64,
            is_dir: fi.mKind == ffi::tObjectKind_kObjectKindDirectory,
        },
        replication: fi.mReplication,
        block_size: fi.mBlockSize,
        mtime: fi.mLastMod,
        owner,
    }
}

impl Backend for LibhdfsBackend {
    fn read_at(&self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let c = c_path("read", path)?;
        let f = self.open_read(path, &c)?;
        let mut done = 0usize;
        let mut empty_reads = 0;
        while done < buf.len() {
            let pos = offset
                .checked_add(done as u64)
                .filter(|p| *p <= i64::MAX as u64)
                .ok_or_else(|| BackendError::io("read", path, libc::EINVAL, "offset too large"))?;
            let want = (buf.len() - done).min(READ_PIECE);
            let snap = Snap::take();
            // SAFETY: open input stream used by this thread only; the
            // destination is the unfilled part of `buf`, `want` bytes long.
            let n = unsafe {
                ffi::hdfsPread(
                    self.fs,
                    f.file,
                    pos as i64,
                    buf[done..].as_mut_ptr() as *mut c_void,
                    want as i32,
                )
            };
            if n > 0 {
                snap.ok();
                done += n as usize;
                empty_reads = 0;
            } else if n == 0 {
                snap.ok();
                break; // end of file
            } else {
                let fail = snap.failure();
                // EINTR: the stream returned 0 bytes; try again a few times.
                if fail.errno == libc::EINTR && empty_reads < 3 {
                    empty_reads += 1;
                    continue;
                }
                return Err(self.error("read", path, fail));
            }
        }
        Ok(done)
    }

    fn put(&self, path: &str, data: &[u8]) -> Result<()> {
        match self.scheme {
            Scheme::Ofs => self.put_ofs(path, data),
            Scheme::Local => self.put_local(path, data),
        }
    }

    fn delete(&self, path: &str, recursive: bool) -> Result<bool> {
        let c = c_path("delete", path)?;
        let snap = Snap::take();
        // SAFETY: valid fs and C string.
        if unsafe { ffi::hdfsDelete(self.fs, c.as_ptr(), c_int::from(recursive)) } == 0 {
            snap.ok();
            return Ok(true);
        }
        let f = snap.failure();
        if f.errno == libc::ENOENT {
            return Ok(false);
        }
        if f.errno == libc::EIO && f.cause.is_none() {
            // FileSystem#delete returned false: absent, or refused.
            return match self.stat(path)? {
                None => Ok(false),
                Some(_) => Err(BackendError::io(
                    "delete",
                    path,
                    libc::EIO,
                    "FileSystem#delete returned false",
                )),
            };
        }
        Err(self.error("delete", path, f))
    }

    fn mkdirs(&self, path: &str) -> Result<()> {
        let c = c_path("mkdirs", path)?;
        let snap = Snap::take();
        // SAFETY: valid fs and C string.
        if unsafe { ffi::hdfsCreateDirectory(self.fs, c.as_ptr()) } != 0 {
            return Err(self.error("mkdirs", path, snap.failure()));
        }
        snap.ok();
        if self.scheme == Scheme::Local {
            // Make the new directory entries durable (best effort).
            let mut p = path.trim_end_matches('/');
            while let Some((dir, _)) = split_parent(p) {
                let _ = fsync_dir(p);
                p = dir;
                if p == "/" {
                    break;
                }
            }
        }
        Ok(())
    }

    fn stat(&self, path: &str) -> Result<Option<FileInfo>> {
        Ok(self.file_status(path)?.map(|s| s.info))
    }

    fn list(&self, dir: &str) -> Result<Vec<FileInfo>> {
        let c = c_path("list", dir)?;
        let mut n: c_int = 0;
        let snap = Snap::take();
        // SAFETY: valid fs, C string and out pointer; the result is freed below.
        let p = unsafe { ffi::hdfsListDirectory(self.fs, c.as_ptr(), &mut n) };
        if p.is_null() {
            let f = snap.failure();
            if f.errno == 0 {
                snap.ok();
                return Ok(Vec::new()); // empty directory
            }
            return Err(self.error("list", dir, f));
        }
        snap.ok();
        let count = usize::try_from(n).unwrap_or(0);
        // SAFETY: libhdfs returned an array of `n` entries; freed once.
        let entries = unsafe {
            let v: Vec<FileInfo> = std::slice::from_raw_parts(p, count)
                .iter()
                .map(|fi| convert_status(fi).info)
                .collect();
            ffi::hdfsFreeFileInfo(p, n);
            v
        };
        Ok(entries
            .into_iter()
            .filter(|e| !(self.scheme == Scheme::Local && is_tmp_name(&e.name)))
            .collect())
    }

    fn describe(&self) -> String {
        self.uri.clone()
    }

    fn bucket_layout(&self, volume: &str, bucket: &str) -> Result<Option<String>> {
        match self.scheme {
            Scheme::Ofs => self.ofs_bucket_layout(volume, bucket),
            Scheme::Local => Ok(None),
        }
    }
}

// ---------------------------------------------------------------------------
// Bucket layout: JNI calls on the Ozone client the ofs `FileSystem` already has.
//
// fs.getAdapter()                  BasicRootedOzoneFileSystem -> OzoneClientAdapter
//   .getObjectStore()              BasicRootedOzoneClientAdapterImpl -> ObjectStore
//   .getClientProxy()              -> ClientProtocol (the RpcClient)
//   .getBucketDetails(vol, bucket) -> OzoneBucket: one OM round trip
//   .getBucketLayout().name()      "FILE_SYSTEM_OPTIMIZED", "LEGACY", "OBJECT_STORE"
//
// No new client, no new connection. A link bucket is followed to its source (a
// few hops at most; one more round trip per link). Ozone 2.2 already reports
// the source's layout for a link, but following it also makes a dangling link
// NotFound, as ofs sees it. Methods are looked up on the objects' own classes,
// so an unexpected class only makes the lookup fail (NoSuchMethodError,
// cleared): the layout is then unknown (None). All JNI calls run inside one
// local frame (every local reference goes at its end), and each is followed by
// an exception check that clears what it finds. The thread's JNIEnv comes from
// libhdfs's `getJNIEnv` (exported by the static libhdfs that hdfs-sys builds).

extern "C" {
    /// libhdfs (jni_helper.c): this thread's JNIEnv, attaching the thread to
    /// the JVM (and detaching it at thread exit) as every libhdfs call does.
    fn getJNIEnv() -> *mut jni::JNIEnv;
}

/// How many link buckets to follow to the real one.
const MAX_LINK_HOPS: usize = 8;
const RESULT_NOT_FOUND: &[&str] = &["VOLUME_NOT_FOUND", "BUCKET_NOT_FOUND"];

/// A Java exception (already cleared) or a failed JNI call.
#[derive(Debug)]
struct JavaError {
    /// `Throwable.toString()`, or what went wrong on the JNI side.
    text: String,
    /// `OMException.getResult().name()` of the exception or one of its causes.
    code: Option<String>,
}

impl JavaError {
    fn msg(text: impl Into<String>) -> Self {
        JavaError {
            text: text.into(),
            code: None,
        }
    }

    fn is_not_found(&self) -> bool {
        match &self.code {
            Some(c) => RESULT_NOT_FOUND.contains(&c.as_str()),
            None => contains_any(&self.text, RESULT_NOT_FOUND),
        }
    }
}

impl fmt::Display for JavaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(c) => write!(f, "{} [{c}]", self.text),
            None => f.write_str(&self.text),
        }
    }
}

/// One thread's JNIEnv.
struct Jni {
    env: *mut jni::JNIEnv,
}

/// A JNI function from the table, or a `JavaError` if the table lacks it.
macro_rules! jfn {
    ($jni:expr, $name:ident) => {
        (**$jni.env)
            .$name
            .ok_or_else(|| JavaError::msg(concat!("JNI function table lacks ", stringify!($name))))
    };
}

impl Jni {
    /// Clear a pending exception; returns it (a local reference) or null.
    unsafe fn clear(&self) -> jni::jthrowable {
        let env = self.env;
        let (Some(check), Some(occurred), Some(clear)) = (
            (**env).ExceptionCheck,
            (**env).ExceptionOccurred,
            (**env).ExceptionClear,
        ) else {
            return ptr::null_mut();
        };
        if check(env) == jni::JNI_FALSE {
            return ptr::null_mut();
        }
        let t = occurred(env);
        clear(env);
        t
    }

    /// `obj.name()` for an instance method returning an object (maybe null).
    /// Err holds the exception thrown (cleared), or null if JNI failed without one.
    unsafe fn call_raw(
        &self,
        obj: jni::jobject,
        name: &CStr,
        sig: &CStr,
        args: &[jni::jvalue],
    ) -> std::result::Result<jni::jobject, jni::jthrowable> {
        let env = self.env;
        let (Some(get_class), Some(get_method), Some(call)) = (
            (**env).GetObjectClass,
            (**env).GetMethodID,
            (**env).CallObjectMethodA,
        ) else {
            return Err(ptr::null_mut());
        };
        if obj.is_null() {
            return Err(ptr::null_mut());
        }
        let class = get_class(env, obj);
        if class.is_null() {
            return Err(self.clear());
        }
        let method = get_method(env, class, name.as_ptr(), sig.as_ptr());
        if method.is_null() {
            return Err(self.clear());
        }
        let r = call(env, obj, method, args.as_ptr());
        let t = self.clear();
        if t.is_null() {
            Ok(r)
        } else {
            Err(t)
        }
    }

    /// The content of a Java string; None if null or on failure (cleared).
    unsafe fn rust_string(&self, s: jni::jstring) -> Option<String> {
        if s.is_null() {
            return None;
        }
        let env = self.env;
        let (get, release) = ((**env).GetStringUTFChars?, (**env).ReleaseStringUTFChars?);
        let p = get(env, s, ptr::null_mut());
        if p.is_null() {
            self.clear();
            return None;
        }
        let out = CStr::from_ptr(p).to_string_lossy().into_owned();
        release(env, s, p);
        Some(out)
    }

    /// `obj.name()` returning a String.
    unsafe fn call_string(&self, obj: jni::jobject, name: &CStr) -> Option<String> {
        let s = self
            .call_raw(obj, name, c"()Ljava/lang/String;", &[])
            .ok()?;
        self.rust_string(s)
    }

    /// Describe a cleared exception: its text and the first OMException result
    /// code along its cause chain.
    unsafe fn describe(&self, t: jni::jthrowable) -> JavaError {
        if t.is_null() {
            return JavaError::msg("JNI call failed without a Java exception");
        }
        let text = self
            .call_string(t, c"toString")
            .unwrap_or_else(|| "(unprintable Java exception)".to_string());
        let mut code = None;
        let mut cur = t;
        for _ in 0..8 {
            if cur.is_null() {
                break;
            }
            if let Ok(r) = self.call_raw(
                cur,
                c"getResult",
                c"()Lorg/apache/hadoop/ozone/om/exceptions/OMException$ResultCodes;",
                &[],
            ) {
                code = self.call_string(r, c"name");
                break;
            }
            cur = self
                .call_raw(cur, c"getCause", c"()Ljava/lang/Throwable;", &[])
                .unwrap_or(ptr::null_mut());
        }
        JavaError { text, code }
    }

    /// `obj.name()` returning a non-null object, with `sig` its JNI signature.
    unsafe fn call(
        &self,
        obj: jni::jobject,
        name: &CStr,
        sig: &CStr,
        args: &[jni::jvalue],
    ) -> std::result::Result<jni::jobject, JavaError> {
        match self.call_raw(obj, name, sig, args) {
            Ok(r) if r.is_null() => Err(JavaError::msg(format!(
                "{}() returned null",
                name.to_string_lossy()
            ))),
            Ok(r) => Ok(r),
            Err(t) => Err(self.describe(t)),
        }
    }

    unsafe fn new_string(&self, s: &str) -> std::result::Result<jni::jstring, JavaError> {
        let c = CString::new(s).map_err(|_| JavaError::msg("NUL in name"))?;
        let j = jfn!(self, NewStringUTF)?(self.env, c.as_ptr());
        if j.is_null() {
            let t = self.clear();
            return Err(self.describe(t));
        }
        Ok(j)
    }

    /// Run `f` inside a fresh local frame; every local reference created in it
    /// is deleted at its end. No exception is left pending.
    unsafe fn in_local_frame<T>(
        &self,
        f: impl FnOnce(&Jni) -> std::result::Result<T, JavaError>,
    ) -> std::result::Result<T, JavaError> {
        let pop = jfn!(self, PopLocalFrame)?;
        // (PushLocalFrame may be called with an exception pending.)
        if jfn!(self, PushLocalFrame)?(self.env, 64) != 0 {
            // Out of memory: do not describe it (that needs more references).
            let t = self.clear();
            if let (false, Some(del)) = (t.is_null(), (**self.env).DeleteLocalRef) {
                del(self.env, t);
            }
            return Err(JavaError::msg("JNI PushLocalFrame failed"));
        }
        let stale = self.clear();
        if !stale.is_null() {
            log::warn!(
                "cleared a stale pending Java exception: {}",
                self.describe(stale)
            );
        }
        let r = f(self);
        self.clear();
        pop(self.env, ptr::null_mut());
        r
    }

    /// The layout name of `volume/bucket`, through the ofs FileSystem `fs`.
    unsafe fn bucket_layout(
        &self,
        fs: jni::jobject,
        volume: &str,
        bucket: &str,
    ) -> std::result::Result<String, JavaError> {
        let adapter = self.call(
            fs,
            c"getAdapter",
            c"()Lorg/apache/hadoop/fs/ozone/OzoneClientAdapter;",
            &[],
        )?;
        let store = self.call(
            adapter,
            c"getObjectStore",
            c"()Lorg/apache/hadoop/ozone/client/ObjectStore;",
            &[],
        )?;
        let proxy = self.call(
            store,
            c"getClientProxy",
            c"()Lorg/apache/hadoop/ozone/client/protocol/ClientProtocol;",
            &[],
        )?;
        let (mut vol, mut bkt) = (volume.to_string(), bucket.to_string());
        for _ in 0..=MAX_LINK_HOPS {
            let args = [
                jni::jvalue {
                    l: self.new_string(&vol)?,
                },
                jni::jvalue {
                    l: self.new_string(&bkt)?,
                },
            ];
            let details = self.call(
                proxy,
                c"getBucketDetails",
                c"(Ljava/lang/String;Ljava/lang/String;)Lorg/apache/hadoop/ozone/client/OzoneBucket;",
                &args,
            )?;
            let src_vol = self.call_string(details, c"getSourceVolume");
            let src_bkt = self.call_string(details, c"getSourceBucket");
            if let (Some(v), Some(b)) = (src_vol, src_bkt) {
                (vol, bkt) = (v, b);
                continue;
            }
            let layout = self.call(
                details,
                c"getBucketLayout",
                c"()Lorg/apache/hadoop/ozone/om/helpers/BucketLayout;",
                &[],
            )?;
            return self
                .call_string(layout, c"name")
                .ok_or_else(|| JavaError::msg("BucketLayout.name() failed"));
        }
        Err(JavaError::msg(format!(
            "more than {MAX_LINK_HOPS} bucket links from /{volume}/{bucket}"
        )))
    }
}

impl LibhdfsBackend {
    fn ofs_bucket_layout(&self, volume: &str, bucket: &str) -> Result<Option<String>> {
        let path = format!("/{volume}/{bucket}");
        for name in [volume, bucket] {
            if name.is_empty() || name.contains('/') || name.contains('\0') {
                return Err(BackendError::io(
                    "bucket layout",
                    &path,
                    libc::EINVAL,
                    "volume and bucket must be single, non-empty path components",
                ));
            }
        }
        // SAFETY: the JVM runs (connect started it); libhdfs attaches this thread.
        let env = unsafe { getJNIEnv() };
        if env.is_null() {
            log::warn!(
                "{}: bucket layout of {path}: no JNIEnv on this thread",
                self.uri
            );
            return Ok(None);
        }
        TLS_READY.with(|r| r.set(true));
        let jni = Jni { env };
        // SAFETY: `env` is this thread's; `fs` is a global reference to the live
        // FileSystem (see the Send/Sync note); all local references die with the
        // frame and every exception is cleared.
        let res = unsafe {
            jni.in_local_frame(|j| j.bucket_layout(self.fs.cast::<jni::_jobject>(), volume, bucket))
        };
        match res {
            Ok(layout) => Ok(Some(layout)),
            Err(e) if e.is_not_found() => Err(BackendError::NotFound { path }),
            Err(e) => {
                log::warn!("{}: cannot read the layout of bucket {path}: {e}", self.uri);
                Ok(None)
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The JVM: finding libjvm, the JNI entry points libhdfs links against, start-up.

/// libhdfs's `JNI_GetCreatedJavaVMs`, forwarded to the libjvm we load.
///
/// # Safety
/// JNI contract: valid out pointers.
#[no_mangle]
pub unsafe extern "system" fn JNI_GetCreatedJavaVMs(
    vm_buf: *mut *mut jni::JavaVM,
    buf_len: jni::jsize,
    n_vms: *mut jni::jsize,
) -> jni::jint {
    match jvm::libjvm() {
        Ok(l) => (l.get_created)(vm_buf, buf_len, n_vms),
        Err(e) => {
            eprintln!("ozbd libhdfs: {e}");
            jni::JNI_ERR
        }
    }
}

/// libhdfs's `JNI_CreateJavaVM`, forwarded to the libjvm we load.
///
/// # Safety
/// JNI contract: valid pointers and init args.
#[no_mangle]
pub unsafe extern "system" fn JNI_CreateJavaVM(
    pvm: *mut *mut jni::JavaVM,
    penv: *mut *mut c_void,
    args: *mut c_void,
) -> jni::jint {
    match jvm::libjvm() {
        Ok(l) => (l.create)(pvm, penv, args),
        Err(e) => {
            eprintln!("ozbd libhdfs: {e}");
            jni::JNI_ERR
        }
    }
}

mod jvm {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::sync::OnceLock;

    type CreateFn = unsafe extern "system" fn(
        *mut *mut jni::JavaVM,
        *mut *mut c_void,
        *mut c_void,
    ) -> jni::jint;
    type GetCreatedFn =
        unsafe extern "system" fn(*mut *mut jni::JavaVM, jni::jsize, *mut jni::jsize) -> jni::jint;

    pub(super) struct Libjvm {
        pub(super) create: CreateFn,
        pub(super) get_created: GetCreatedFn,
        pub(super) path: String,
    }

    static LIBJVM: OnceLock<std::result::Result<Libjvm, String>> = OnceLock::new();
    static JVM: OnceLock<std::result::Result<(), String>> = OnceLock::new();

    /// The classes libhdfs caches when a thread first uses it: all must load.
    const LIBHDFS_CLASSES: &[(&str, &str)] = &[
        ("org/apache/hadoop/conf/Configuration", "hadoop-common"),
        ("org/apache/hadoop/fs/FileSystem", "hadoop-common"),
        ("org/apache/hadoop/fs/Path", "hadoop-common"),
        ("org/apache/hadoop/fs/FsStatus", "hadoop-common"),
        ("org/apache/hadoop/fs/FileUtil", "hadoop-common"),
        ("org/apache/hadoop/fs/BlockLocation", "hadoop-common"),
        ("org/apache/hadoop/fs/FSDataInputStream", "hadoop-common"),
        ("org/apache/hadoop/fs/FSDataOutputStream", "hadoop-common"),
        ("org/apache/hadoop/fs/FileStatus", "hadoop-common"),
        (
            "org/apache/hadoop/fs/permission/FsPermission",
            "hadoop-common",
        ),
        ("org/apache/hadoop/net/unix/DomainSocket", "hadoop-common"),
        (
            "org/apache/hadoop/hdfs/DFSHedgedReadMetrics",
            "hadoop-hdfs-client",
        ),
        (
            "org/apache/hadoop/hdfs/DistributedFileSystem",
            "hadoop-hdfs-client",
        ),
        (
            "org/apache/hadoop/hdfs/ReadStatistics",
            "hadoop-hdfs-client",
        ),
        (
            "org/apache/hadoop/hdfs/client/HdfsDataInputStream",
            "hadoop-hdfs-client",
        ),
        (
            "org/apache/commons/lang3/exception/ExceptionUtils",
            "commons-lang3",
        ),
    ];

    pub(super) fn libjvm() -> std::result::Result<&'static Libjvm, String> {
        LIBJVM
            .get_or_init(load_libjvm)
            .as_ref()
            .map_err(Clone::clone)
    }

    fn candidates() -> Vec<PathBuf> {
        let mut v = Vec::new();
        if let Some(p) = std::env::var_os("OZBD_LIBJVM") {
            v.push(PathBuf::from(p));
        }
        if let Some(home) = std::env::var_os("JAVA_HOME") {
            let home = Path::new(&home);
            for sub in [
                "lib/server",
                "jre/lib/server",
                "jre/lib/amd64/server",
                "lib/amd64/server",
            ] {
                v.push(home.join(sub).join("libjvm.so"));
            }
        }
        if let Some(dir) = option_env!("OZBD_BUILD_JVM_LIB_DIR") {
            v.push(Path::new(dir).join("libjvm.so"));
        }
        v
    }

    fn dlerror_string() -> String {
        // SAFETY: dlerror returns NULL or a NUL-terminated thread-local string.
        unsafe {
            let e = libc::dlerror();
            if e.is_null() {
                "unknown dlopen error".into()
            } else {
                CStr::from_ptr(e).to_string_lossy().into_owned()
            }
        }
    }

    fn load_libjvm() -> std::result::Result<Libjvm, String> {
        let mut tried = Vec::new();
        // SAFETY: dlopen with RTLD_NOLOAD only looks for an already loaded copy.
        let mut handle = unsafe {
            libc::dlopen(
                c"libjvm.so".as_ptr(),
                libc::RTLD_NOW | libc::RTLD_GLOBAL | libc::RTLD_NOLOAD,
            )
        };
        let mut path = String::from("libjvm.so (already loaded)");
        if handle.is_null() {
            let mut names: Vec<String> = candidates()
                .into_iter()
                .filter(|p| p.exists())
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            names.push("libjvm.so".into());
            for name in names {
                let Ok(c) = CString::new(name.as_str()) else {
                    continue;
                };
                // SAFETY: loading libjvm runs no code that needs our state.
                handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
                if !handle.is_null() {
                    path = name;
                    break;
                }
                tried.push(format!("{name}: {}", dlerror_string()));
            }
        }
        if handle.is_null() {
            return Err(format!(
                "cannot load libjvm.so (set JAVA_HOME to a JDK/JRE, or OZBD_LIBJVM to the \
                 file); tried: {}",
                tried.join("; ")
            ));
        }
        // SAFETY: `handle` is a live library handle; the symbols have the JNI
        // invocation API signatures.
        unsafe {
            let create = libc::dlsym(handle, c"JNI_CreateJavaVM".as_ptr());
            let get_created = libc::dlsym(handle, c"JNI_GetCreatedJavaVMs".as_ptr());
            if create.is_null() || get_created.is_null() {
                return Err(format!("{path}: JNI invocation symbols not found"));
            }
            // Guard against finding our own forwarding definitions.
            if std::ptr::eq(
                create.cast_const(),
                super::JNI_CreateJavaVM as *const c_void,
            ) {
                return Err(format!("{path}: resolved to the forwarding shim itself"));
            }
            Ok(Libjvm {
                create: std::mem::transmute::<*mut c_void, CreateFn>(create),
                get_created: std::mem::transmute::<*mut c_void, GetCreatedFn>(get_created),
                path,
            })
        }
    }

    /// Where libjvm was loaded from (after a successful connect).
    pub(super) fn libjvm_path() -> Option<String> {
        LIBJVM.get()?.as_ref().ok().map(|l| l.path.clone())
    }

    /// Start the JVM once per process (or adopt one that runs already).
    pub(super) fn ensure_jvm() -> std::result::Result<(), String> {
        // Keep the JNI entry points in the link (see the module documentation).
        std::hint::black_box(super::JNI_GetCreatedJavaVMs as *const () as usize);
        std::hint::black_box(super::JNI_CreateJavaVM as *const () as usize);
        JVM.get_or_init(start_jvm).clone()
    }

    /// Expand `dir/*` entries into the jars of `dir`, as libhdfs does.
    pub(super) fn expand_classpath(cp: &str) -> String {
        let mut out: Vec<String> = Vec::new();
        for entry in cp.split(':').filter(|e| !e.is_empty()) {
            if let Some(dir) = entry.strip_suffix("/*") {
                let mut jars: Vec<String> = std::fs::read_dir(dir)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|d| d.path())
                    .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("jar")))
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect();
                jars.sort();
                out.extend(jars);
            } else {
                out.push(entry.to_string());
            }
        }
        out.join(":")
    }

    /// `LIBHDFS_OPTS` split on white space, joining `--add-opens X` pairs.
    pub(super) fn split_jvm_opts(opts: &str) -> Vec<String> {
        const PAIRED: &[&str] = &[
            "--add-opens",
            "--add-exports",
            "--add-modules",
            "--add-reads",
        ];
        let mut out: Vec<String> = Vec::new();
        let mut it = opts.split_whitespace();
        while let Some(tok) = it.next() {
            if PAIRED.contains(&tok) {
                if let Some(val) = it.next() {
                    out.push(format!("{tok}={val}"));
                    continue;
                }
            }
            out.push(tok.to_string());
        }
        out
    }

    fn start_jvm() -> std::result::Result<(), String> {
        let lib = libjvm()?;
        let mut vm: *mut jni::JavaVM = ptr::null_mut();
        let mut n: jni::jsize = 0;
        // SAFETY: valid out pointers, buffer of one.
        let rc = unsafe { (lib.get_created)(&mut vm, 1, &mut n) };
        if rc != jni::JNI_OK {
            return Err(format!("JNI_GetCreatedJavaVMs failed ({rc})"));
        }
        if n > 0 {
            return Ok(()); // the host process runs a JVM already
        }
        let cp = std::env::var("CLASSPATH").unwrap_or_default();
        if cp.trim().is_empty() {
            return Err(format!(
                "CLASSPATH is not set; libhdfs needs the Hadoop/Ozone client jars and \
                 config dir in it ({ENV_HINT})"
            ));
        }
        let mut opts = vec![format!("-Djava.class.path={}", expand_classpath(&cp))];
        opts.extend(split_jvm_opts(
            &std::env::var("LIBHDFS_OPTS").unwrap_or_default(),
        ));
        if std::env::var("OZBD_JVM_SIGNALS").as_deref() != Ok("1")
            && !opts.iter().any(|o| o == "-Xrs")
        {
            opts.push("-Xrs".into());
        }
        let c_opts: Vec<CString> = opts
            .iter()
            .map(|o| CString::new(o.as_str()).map_err(|_| format!("NUL in JVM option {o:?}")))
            .collect::<std::result::Result<_, _>>()?;
        let mut jopts: Vec<jni::JavaVMOption> = c_opts
            .iter()
            .map(|c| jni::JavaVMOption {
                optionString: c.as_ptr() as *mut c_char,
                extraInfo: ptr::null_mut(),
            })
            .collect();
        let mut args = jni::JavaVMInitArgs {
            version: jni::JNI_VERSION_1_8,
            nOptions: jopts.len() as jni::jint,
            options: jopts.as_mut_ptr(),
            ignoreUnrecognized: jni::JNI_TRUE,
        };
        let mut env: *mut c_void = ptr::null_mut();
        // SAFETY: valid init args whose strings outlive the call.
        let rc = unsafe {
            (lib.create)(
                &mut vm,
                &mut env,
                &mut args as *mut jni::JavaVMInitArgs as *mut c_void,
            )
        };
        if rc != jni::JNI_OK {
            return Err(format!(
                "JNI_CreateJavaVM failed ({rc}) with options {:?} (libjvm: {})",
                &opts[1..],
                lib.path
            ));
        }
        // SAFETY: `env` belongs to this thread, freshly attached by create.
        let missing = unsafe { missing_classes(env as *mut jni::JNIEnv) };
        // Detach: libhdfs re-attaches this thread and detaches it at thread exit.
        // SAFETY: `vm` is the VM just created; this thread is attached to it.
        unsafe {
            if let Some(detach) = (**vm).DetachCurrentThread {
                detach(vm);
            }
        }
        if !missing.is_empty() {
            return Err(format!(
                "CLASSPATH lacks classes libhdfs needs: {} ({ENV_HINT})",
                missing.join(", ")
            ));
        }
        Ok(())
    }

    /// # Safety
    /// `env` must be the current thread's JNIEnv.
    unsafe fn missing_classes(env: *mut jni::JNIEnv) -> Vec<String> {
        let mut missing = Vec::new();
        let (Some(find), Some(clear), Some(del)) = (
            (**env).FindClass,
            (**env).ExceptionClear,
            (**env).DeleteLocalRef,
        ) else {
            return vec!["(JNI function table incomplete)".into()];
        };
        for (class, jar) in LIBHDFS_CLASSES {
            let Ok(c) = CString::new(*class) else {
                continue;
            };
            let k = find(env, c.as_ptr());
            if k.is_null() {
                clear(env);
                missing.push(format!("{} (jar {jar})", class.replace('/', ".")));
            } else {
                del(env, k);
            }
        }
        missing
    }

    /// This thread's JNIEnv, if it is attached.
    unsafe fn current_env() -> Option<*mut jni::JNIEnv> {
        let lib = libjvm().ok()?;
        let mut vm: *mut jni::JavaVM = ptr::null_mut();
        let mut n: jni::jsize = 0;
        if (lib.get_created)(&mut vm, 1, &mut n) != jni::JNI_OK || n < 1 || vm.is_null() {
            return None;
        }
        let get_env = (**vm).GetEnv?;
        let mut env: *mut c_void = ptr::null_mut();
        if get_env(vm, &mut env, jni::JNI_VERSION_1_2) != jni::JNI_OK || env.is_null() {
            return None;
        }
        Some(env as *mut jni::JNIEnv)
    }

    /// Drop an output stream without closing it (so nothing is committed):
    /// delete its JNI global reference and free libhdfs's handle. Returns false
    /// (and leaks the handle) if this thread has no JNIEnv.
    ///
    /// Relies on libhdfs's private handle layout, unchanged since Hadoop 2.x
    /// (hdfs.c): `struct hdfsFile_internal { void *file; enum hdfsStreamType
    /// type; int flags; }`, allocated with calloc.
    ///
    /// # Safety
    /// `file` must be an open libhdfs output handle, not used afterwards.
    pub(super) unsafe fn abandon_output_stream(file: ffi::hdfsFile) -> bool {
        let Some(env) = current_env() else {
            return false;
        };
        let Some(del) = (**env).DeleteGlobalRef else {
            return false;
        };
        let stream = *(file as *const jni::jobject);
        if !stream.is_null() {
            del(env, stream);
        }
        libc::free(file as *mut c_void);
        true
    }
}

/// Where libjvm was loaded from, once a backend has connected.
pub fn libjvm_path() -> Option<String> {
    jvm::libjvm_path()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_parsing() {
        assert_eq!(
            parse_uri("ofs://127.0.0.1:9862/").unwrap(),
            (Scheme::Ofs, "ofs://127.0.0.1:9862".to_string())
        );
        assert_eq!(
            parse_uri("file:///").unwrap(),
            (Scheme::Local, "file:///".to_string())
        );
        assert!(parse_uri("ofs://h:1/vol").is_err());
        assert!(parse_uri("hdfs://nn:8020").is_err());
        assert!(parse_uri("file:///tmp").is_err());
    }

    #[test]
    fn path_helpers() {
        assert_eq!(split_parent("/a/b/c"), Some(("/a/b", "c")));
        assert_eq!(split_parent("/c"), Some(("/", "c")));
        assert_eq!(split_parent("/"), None);
        assert_eq!(last_component("ofs://h:1/v/b/k"), "k");
        assert_eq!(last_component("file:/tmp/x/"), "x");
        assert!(is_tmp_name(".c1.ozbd-tmp-12-3"));
        assert!(!is_tmp_name("c1"));
    }

    #[test]
    fn jvm_opts() {
        assert_eq!(
            jvm::split_jvm_opts(" -Xmx1g --add-opens java.base/java.nio=ALL-UNNAMED -Dx=y "),
            vec![
                "-Xmx1g",
                "--add-opens=java.base/java.nio=ALL-UNNAMED",
                "-Dx=y"
            ]
        );
    }

    #[test]
    fn java_not_found() {
        let e = |text: &str, code: Option<&str>| JavaError {
            text: text.into(),
            code: code.map(Into::into),
        };
        assert!(e("OMException: Bucket not found", Some("BUCKET_NOT_FOUND")).is_not_found());
        assert!(e("x", Some("VOLUME_NOT_FOUND")).is_not_found());
        assert!(!e("BUCKET_NOT_FOUND", Some("PERMISSION_DENIED")).is_not_found());
        assert!(e("IOException: BUCKET_NOT_FOUND", None).is_not_found());
        assert!(!e("java.net.ConnectException", None).is_not_found());
    }

    #[test]
    fn error_mapping() {
        let f = |errno, cause: &str| Failure {
            errno,
            cause: (!cause.is_empty()).then(|| cause.to_string()),
        };
        assert!(matches!(
            classify("u", "open", "/p", f(libc::ENOENT, "")),
            BackendError::NotFound { .. }
        ));
        assert!(matches!(
            classify(
                "u",
                "connect",
                "/p",
                f(255, "ConnectException: Connection refused")
            ),
            BackendError::Unavailable { .. }
        ));
        assert!(matches!(
            classify(
                "u",
                "create",
                "/p",
                f(255, "OMException: Bucket: b has layout: OBJECT_STORE, which does not support file system semantics.")
            ),
            BackendError::Unsupported { .. }
        ));
        match classify("u", "write", "/p", f(255, "IOException: boom")) {
            BackendError::Io { errno, msg, .. } => {
                assert_eq!(errno, libc::EIO);
                assert_eq!(msg, "IOException: boom");
            }
            e => panic!("{e:?}"),
        }
    }
}
