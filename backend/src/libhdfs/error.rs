//! libhdfs errors: what a failed libhdfs call left (errno and the Java root
//! cause libhdfs keeps per thread) and its classification into a [`BackendError`].
//!
//! Owns: reading errno and `hdfsGetLastExceptionRootCause` right after a failed
//! call, and the mapping from Java exception text to `NotFound`, `Unavailable`,
//! `Unsupported` or `Io` with a POSIX errno.
//! Must never: call libhdfs for anything but the last exception; read the last
//! exception on a thread libhdfs has no state on (libhdfs dereferences NULL);
//! turn an error an operator must fix into EIO (the engine retries EIO).

use std::cell::Cell;
use std::ffi::CStr;
use std::os::raw::c_char;
use std::ptr;

use hdfs_sys as ffi;

use super::LibhdfsBackend;
use crate::BackendError;

/// libhdfs's errno for "an exception libhdfs has no errno for".
pub(super) const EINTERNAL: i32 = 255;

pub(super) fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

thread_local! {
    /// Whether libhdfs has thread-local state on this thread. Reading the last
    /// exception before the first libhdfs call would dereference NULL in libhdfs.
    pub(super) static TLS_READY: Cell<bool> = const { Cell::new(false) };
}

/// What a failed libhdfs call left: errno and, if this call raised one, the
/// Java root cause message.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) errno: i32,
    pub(super) cause: Option<String>,
}

/// The last-exception pointer before a call. libhdfs allocates the new message
/// before freeing the old one, so a changed pointer means a fresh exception.
pub(super) struct Snap(*const c_char);

impl Snap {
    pub(super) fn take() -> Snap {
        if TLS_READY.with(Cell::get) {
            // SAFETY: libhdfs has thread-local state on this thread.
            Snap(unsafe { ffi::hdfsGetLastExceptionRootCause() })
        } else {
            Snap(ptr::null())
        }
    }

    /// Record a successful call (libhdfs now has state on this thread).
    pub(super) fn ok(&self) {
        TLS_READY.with(|r| r.set(true));
    }

    /// Call right after the failed libhdfs call (errno is read first).
    pub(super) fn failure(&self) -> Failure {
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

pub(super) fn contains_any(s: &str, pats: &[&str]) -> bool {
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
    pub(super) fn error(&self, op: &'static str, path: &str, f: Failure) -> BackendError {
        classify(&self.uri, op, path, f)
    }
}

pub(super) fn classify(uri: &str, op: &'static str, path: &str, f: Failure) -> BackendError {
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

#[cfg(test)]
mod tests {
    use super::*;

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
