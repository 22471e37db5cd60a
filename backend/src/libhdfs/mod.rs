// SPDX-License-Identifier: Apache-2.0
//! The libhdfs backend: `ofs://` (Apache Ozone) and `file://` (a local directory),
//! both through Hadoop's `FileSystem` API in an embedded JVM.
//!
//! Owns (this file): the public API (`LibhdfsBackend`, `LibhdfsOptions`,
//! `ENV_HINT`, ...), `connect` (URI, the Hadoop configuration handed to the
//! `FileSystem`) and the [`Backend`] implementation.
//! Must never: share an open `hdfsFile` between calls or threads; call libhdfs
//! before the JVM is started (`jvm::ensure_jvm`); hold the `FileSystem` past
//! `Drop`.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | connect, the `Backend` impl, paths and URIs |
//! | `stream.rs` | open files: read, write, commit (close), abandon |
//! | `put_in_dir.rs` | a put that creates no directory (`createNonRecursive`, through JNI) |
//! | `append.rs` | append files with hsync (journal segments) |
//! | `reader.rs` | positional reads of an open file; `Backend::open_read` handles |
//! | `error.rs` | errno and Java exception → `BackendError` classification |
//! | `jni.rs` | JNI helpers for calls libhdfs has no function for |
//! | `layout.rs` | the Ozone bucket layout, through the ofs client |
//! | `conf.rs` | engine-owned client defaults: does a user's file set the key? what is in effect |
//! | `jvm.rs` | finding libjvm, the JNI entry points, JVM start, classpath |
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
//! and closes its own `hdfsFile`, except a handle from `open_read`, which its
//! caller keeps for many reads on one thread at a time (`&mut` per read). libhdfs attaches each calling thread to the JVM
//! and detaches it when the thread exits.
//!
//! # Bucket layout
//!
//! LEGACY and FILE_SYSTEM_OPTIMIZED buckets look the same through the Hadoop
//! `FileSystem` API, so `bucket_layout` asks the OM directly, through JNI calls
//! on the Ozone client inside our ofs `FileSystem` (see `layout.rs`): one OM
//! round trip, no new connection.
//!
//! # Noise on stderr
//!
//! libhdfs prints a Java stack trace for most failures, including opening a
//! missing file for reading (`read_at` on an absent path): callers that probe for
//! absent files should use `stat`/`list` first.

mod append;
mod conf;
mod error;
mod jni;
mod jvm;
mod layout;
mod pread;
mod put_in_dir;
mod reader;
mod stream;

use std::ffi::{CStr, CString};
use std::fmt;
use std::os::raw::c_int;
use std::sync::atomic::{AtomicU64, Ordering};

use hdfs_sys as ffi;

use crate::{Backend, BackendError, ClientSetting, FileInfo, ReadHandle, Result};
use error::{classify, Snap};

pub use jvm::{JNI_CreateJavaVM, JNI_GetCreatedJavaVMs};
pub use stream::PendingPut;

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
    /// Keys set on the `FileSystem` only when no user configuration file
    /// (`core-site.xml`, `ozone-site.xml`, ... on the CLASSPATH) sets them: a
    /// user's explicit value wins. `conf` overrides both. What is in effect is
    /// reported by `Backend::client_settings`. See `conf.rs` for how "a file
    /// sets it" is decided.
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
    /// `read_counts`.
    direct_reads: AtomicU64,
    array_reads: AtomicU64,
    /// `client_settings`, recorded at connect.
    settings: Vec<ClientSetting>,
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

        // Before connecting: which engine defaults do the user's files set?
        let decisions = conf::decide(&opts.defaults, &opts.conf).map_err(|msg| {
            BackendError::io(
                "connect",
                &uri,
                libc::ELIBACC,
                format!(
                    "cannot read the client configuration to tell which of the engine's default \
                     keys the configuration files set: {msg} (check CLASSPATH: {ENV_HINT})"
                ),
            )
        })?;
        let mut conf: Vec<(String, String)> = Vec::new();
        if scheme == Scheme::Local {
            conf.push((
                "fs.file.impl".into(),
                "org.apache.hadoop.fs.RawLocalFileSystem".into(),
            ));
        }
        let engine_defaults = decisions
            .iter()
            .filter(|d| d.apply)
            .filter_map(|d| Some((d.key.clone(), d.value.clone()?)));
        let forced = opts.conf.iter().cloned();
        for (k, v) in engine_defaults.chain(forced) {
            match conf.iter_mut().find(|(ck, _)| *ck == k) {
                Some(e) => e.1 = v,
                None => conf.push((k, v)),
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
        let settings = conf::settings(&uri, fs, &decisions);
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
            direct_reads: AtomicU64::new(0),
            array_reads: AtomicU64::new(0),
            settings,
        })
    }

    /// For tests: `key` in the connected `FileSystem`'s configuration now
    /// (`fs.getConf().get(key)`, entering the JVM).
    #[doc(hidden)]
    pub fn debug_live_conf(&self, key: &str) -> Result<Option<String>> {
        let mut v = conf::live_values(self.fs, &[key])
            .map_err(|e| BackendError::io("get conf", key, libc::EIO, e.to_string()))?;
        Ok(v.pop().flatten())
    }

    /// Positional reads so far (pieces of `read_at` and `ReadHandle::read_at`):
    /// `(direct, by_array)`, read straight into the caller's buffer, and
    /// through a Java byte array (a stream without a direct-buffer read).
    pub fn read_counts(&self) -> (u64, u64) {
        (
            self.direct_reads.load(Ordering::Relaxed),
            self.array_reads.load(Ordering::Relaxed),
        )
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
            mtime_ms: u64::try_from(fi.mLastMod).unwrap_or(0).saturating_mul(1000),
        },
        replication: fi.mReplication,
        block_size: fi.mBlockSize,
        mtime: fi.mLastMod,
        owner,
    }
}

impl Backend for LibhdfsBackend {
    fn create_append(&self, path: &str) -> Result<Box<dyn crate::AppendFile + '_>> {
        Ok(Box::new(self.create_append_file(path)?))
    }

    fn read_at(&self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let c = c_path("read", path)?;
        let f = self.open_input(path, &c)?;
        self.pread_all(&f, path, offset, buf)
    }

    fn put(&self, path: &str, data: &[u8]) -> Result<()> {
        match self.scheme {
            Scheme::Ofs => self.put_ofs(path, data),
            Scheme::Local => self.put_local(path, data),
        }
    }

    fn put_in_dir(&self, path: &str, data: &[u8]) -> Result<bool> {
        self.put_in_dir_with(path, data, &mut || {})
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

    fn rename(&self, src: &str, dst: &str) -> Result<()> {
        let c_src = c_path("rename", src)?;
        let c_dst = c_path("rename", dst)?;
        if self.scheme == Scheme::Local {
            // RawLocalFileSystem.rename is rename(2), which replaces `dst`:
            // ask the kernel not to.
            // SAFETY: valid C strings; AT_FDCWD with absolute paths.
            let r = unsafe {
                libc::renameat2(
                    libc::AT_FDCWD,
                    c_src.as_ptr(),
                    libc::AT_FDCWD,
                    c_dst.as_ptr(),
                    libc::RENAME_NOREPLACE,
                )
            };
            if r == 0 {
                if let Some((dir, _)) = split_parent(dst) {
                    let _ = fsync_dir(dir);
                }
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            let errno = e.raw_os_error().unwrap_or(libc::EIO);
            if errno == libc::ENOENT {
                return Err(BackendError::NotFound {
                    path: src.to_string(),
                });
            }
            return Err(BackendError::io(
                "rename",
                src,
                errno,
                format!("to {dst}: {e}"),
            ));
        }
        let snap = Snap::take();
        // SAFETY: valid fs and C strings. Ozone's rename fails when `dst` exists.
        if unsafe { ffi::hdfsRename(self.fs, c_src.as_ptr(), c_dst.as_ptr()) } == 0 {
            snap.ok();
            return Ok(());
        }
        let f = snap.failure();
        // FileSystem#rename answers false both for an absent source and for
        // an existing target: tell them apart.
        if self.stat(dst)?.is_some() {
            return Err(BackendError::io(
                "rename",
                src,
                libc::EEXIST,
                format!("{dst} already exists"),
            ));
        }
        if self.stat(src)?.is_none() {
            return Err(BackendError::NotFound {
                path: src.to_string(),
            });
        }
        Err(self.error("rename", src, f))
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

    fn client_settings(&self) -> Vec<ClientSetting> {
        self.settings.clone()
    }

    fn open_read(&self, path: &str) -> Result<Option<Box<dyn ReadHandle + '_>>> {
        Ok(Some(Box::new(self.open_reader(path)?)))
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
}
