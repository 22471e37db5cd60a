// SPDX-License-Identifier: Apache-2.0
//! Storage backends: the bottom layer of the engine.
//!
//! Owns: the `Backend` trait (a small, blocking, path-based file API) and its
//! implementations: in-memory (`memory`), fault-injecting wrapper (`fault`) and
//! libhdfs (`libhdfs`: `ofs://` for Ozone, `file://` for a local directory).
//! Must never: know about volumes, chunks or block sizes; share one open file
//! between threads; be called from an SPDK reactor thread (calls block, and the
//! libhdfs one enters the JVM).

pub mod fault;
#[cfg(feature = "libhdfs")]
pub mod libhdfs;
pub mod memory;
mod read_handle;

pub use read_handle::ReadHandle;

use std::fmt;
use std::sync::Arc;

/// What went wrong in a backend call. Every variant says what to do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The path does not exist.
    #[error("{path}: no such file or directory")]
    NotFound { path: String },
    /// The backend cannot be reached (e.g. the Ozone Manager is down).
    #[error("{what}: backend unreachable: {msg}")]
    Unavailable { what: String, msg: String },
    /// The bucket or filesystem does not support what the volume format needs.
    #[error("{path}: {msg}")]
    Unsupported { path: String, msg: String },
    /// This process no longer holds the volume: another opener took it over
    /// and moved its data out of reach. Never retried; reopen the volume.
    #[error("{path}: {msg}")]
    Fenced { path: String, msg: String },
    /// Any other I/O failure. `errno` is a positive POSIX errno (EIO when unknown).
    #[error("{op} {path}: {msg} (errno {errno})")]
    Io {
        op: &'static str,
        path: String,
        errno: i32,
        msg: String,
    },
}

impl BackendError {
    /// The positive POSIX errno that best describes this error.
    pub fn errno(&self) -> i32 {
        match self {
            BackendError::NotFound { .. } => 2,      // ENOENT
            BackendError::Unavailable { .. } => 112, // EHOSTDOWN
            BackendError::Unsupported { .. } => 95,  // EOPNOTSUPP
            BackendError::Fenced { .. } => 116,      // ESTALE
            BackendError::Io { errno, .. } => *errno,
        }
    }

    pub fn io(op: &'static str, path: &str, errno: i32, msg: impl Into<String>) -> Self {
        BackendError::Io {
            op,
            path: path.to_string(),
            errno,
            msg: msg.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, BackendError>;

/// One client configuration key the engine has a default for, as it is in
/// effect in the backend's client (see [`Backend::client_settings`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSetting {
    pub key: String,
    /// The value in effect; None when the key is set nowhere.
    pub value: Option<String>,
    /// Who set it: "engine default" when the engine's default applies, the
    /// user's configuration file (e.g. "ozone-site.xml") when that file sets
    /// the key and so wins, "engine conf" when the engine forces the key.
    pub source: String,
}

/// One directory entry or the status of one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// The last path component.
    pub name: String,
    pub len: u64,
    pub is_dir: bool,
    /// Last modification, in milliseconds since the Unix epoch, by the
    /// storage's clock (the OM's for Ozone); 0 when unknown. libhdfs reports
    /// whole seconds.
    pub mtime_ms: u64,
}

/// A file being appended to: a journal segment. Used by one thread at a time.
/// Dropping it without `close` abandons it: what was appended after the last
/// successful `hsync` may be lost, as if the process had died.
pub trait AppendFile: Send {
    /// Append `data` (buffered; not durable until `hsync`).
    fn append(&mut self, data: &[u8]) -> Result<()>;
    /// Make everything appended so far durable, and visible to readers that
    /// open the file afterwards. On error, what this call covered is in doubt:
    /// abandon the file and write the data again elsewhere.
    fn hsync(&mut self) -> Result<()>;
    /// Close the file (what was appended stays).
    fn close(self: Box<Self>) -> Result<()>;
}

/// A blocking, path-based file store. Paths are absolute ("/vol/bucket/dir/file")
/// within the filesystem the backend was opened on. Implementations must be safe
/// to call from many threads at once; each call is independent (no shared open
/// file handles between calls).
pub trait Backend: Send + Sync + fmt::Debug {
    /// Read into `buf` from `offset`. Returns the bytes read, short only at end of
    /// file. `NotFound` when the file does not exist.
    fn read_at(&self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize>;

    /// Replace the file's whole content with `data`, creating it if absent.
    /// All-or-nothing: on error, or if the process dies before this returns, a
    /// reader sees either the complete old content (or absence) or the complete
    /// new content, never a mix. When it returns Ok the new content is durable.
    fn put(&self, path: &str, data: &[u8]) -> Result<()>;

    /// `put`, into a directory that must already exist. Ok(true) when the
    /// backend kept the promise that makes a fencing rename safe: it created
    /// no directory, and the put took effect only if the file's directory
    /// still existed at the instant it committed (so a put that raced a rename
    /// of any directory above the file either fails or landed before the
    /// rename). `NotFound` when the directory is missing; nothing is written.
    /// Ok(false): the backend cannot promise that and did a plain `put` (the
    /// default), which may have created the directory.
    fn put_in_dir(&self, path: &str, data: &[u8]) -> Result<bool> {
        self.put(path, data).map(|()| false)
    }

    /// Delete a file (or a directory, with `recursive`). Ok(false) when absent.
    fn delete(&self, path: &str, recursive: bool) -> Result<bool>;

    /// Create a directory and its missing parents. Ok when it already exists.
    fn mkdirs(&self, path: &str) -> Result<()>;

    /// Status of a path, None when absent.
    fn stat(&self, path: &str) -> Result<Option<FileInfo>>;

    /// The entries of a directory. `NotFound` when the directory is absent.
    fn list(&self, dir: &str) -> Result<Vec<FileInfo>>;

    /// Rename a file or directory, never replacing: `dst` must not exist.
    /// Atomic: a reader sees `src` or `dst`, never both or neither. `NotFound`
    /// when `src` is absent; `Io` with errno EEXIST (17) when `dst` exists.
    fn rename(&self, src: &str, dst: &str) -> Result<()> {
        let _ = dst;
        Err(BackendError::Unsupported {
            path: src.to_string(),
            msg: format!("{} cannot rename", self.describe()),
        })
    }

    /// A short human description, e.g. "ofs://127.0.0.1:9862".
    fn describe(&self) -> String;

    /// The Ozone bucket layout (e.g. FILE_SYSTEM_OPTIMIZED, LEGACY,
    /// OBJECT_STORE) when the backend can tell; None when it cannot or the
    /// backend is not Ozone; NotFound when the bucket does not exist.
    fn bucket_layout(&self, volume: &str, bucket: &str) -> Result<Option<String>> {
        let _ = (volume, bucket);
        Ok(None)
    }

    /// Create (or truncate) `path` for appending with durable `hsync`s.
    /// `Unsupported` when the backend cannot make appends durable.
    fn create_append(&self, path: &str) -> Result<Box<dyn AppendFile + '_>> {
        Err(BackendError::Unsupported {
            path: path.to_string(),
            msg: format!("{} cannot append with hsync", self.describe()),
        })
    }

    /// For every client configuration key the engine has a default for: the
    /// value in effect and where it comes from. Recorded at connect, so this
    /// never blocks. Empty for backends without such a client.
    fn client_settings(&self) -> Vec<ClientSetting> {
        Vec::new()
    }

    /// Open `path` for repeated positional reads by one thread (see
    /// [`ReadHandle`]); closed when the handle drops. `Ok(None)` when this
    /// backend has no open handles (the default): call `read_at` instead.
    /// `NotFound` when the file does not exist. The handle keeps reading the
    /// content the file had when it was opened: after a `put` or `delete` of
    /// the file, drop it and open again.
    fn open_read(&self, path: &str) -> Result<Option<Box<dyn ReadHandle + '_>>> {
        let _ = path;
        Ok(None)
    }
}

pub type BackendRef = Arc<dyn Backend>;

/// Join an absolute directory path and a relative name.
pub fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}
