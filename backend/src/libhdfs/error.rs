// SPDX-License-Identifier: Apache-2.0
//! libhdfs errors: what a failed libhdfs call left (errno and the Java root
//! cause libhdfs keeps per thread) and its classification into a [`BackendError`].
//!
//! Owns: reading errno and `hdfsGetLastExceptionRootCause` right after a failed
//! call, and the mapping from Java exception text to `NotFound`, `Unavailable`,
//! `Unsupported` or `Io` with a POSIX errno and, for what only an operator can
//! fix (quota, space), what to do.
//! Must never: call libhdfs for anything but the last exception; read the last
//! exception on a thread libhdfs has no state on (libhdfs dereferences NULL);
//! turn an error an operator must fix (quota, no space, permissions) into EIO:
//! the engine retries EIO (and other transient errnos) for a bounded time.
//!
//! # What arrives
//!
//! libhdfs maps only Hadoop's own exception classes to an errno (e.g.
//! `DSQuotaExceededException` to EDQUOT); an Ozone `OMException` arrives as
//! errno 255 (`EINTERNAL`), so the root cause text ("OMException: ...", the
//! `OMException$ResultCodes` name is not in it) is what we classify. On Ozone
//! 2.2.1 through `ofs://` (rows marked * are taken from Ozone's source, not
//! reproduced):
//!
//! | condition | where | root cause | result |
//! |---|---|---|---|
//! | bucket space quota | `hdfsOpenFile` (create) | `OMException: The DiskSpace quota of bucket:<b> exceeded quotaInBytes: <q> Bytes but diskspace consumed: <n> Bytes.` (code QUOTA_EXCEEDED) | `Io` EDQUOT + how to raise it |
//! | namespace quota * | create | `OMException: The namespace quota of Bucket:<b> exceeded: ...` (or `of Volume:`) | `Io` EDQUOT |
//! | volume with a space quota, bucket created by ofs without one | create / mkdirs | `OMException: Bucket space quota in this volume should be set as volume space quota is already set.` (QUOTA_ERROR) | `Io` EDQUOT + how to create the bucket |
//! | SCM cannot place a RATIS/THREE block | create (the OM allocates the first block there) | `OMException: Unable to allocate a container to the block of size: 268435456, replicationConfig: RATIS/THREE. Unable to find enough nodes that meet the space requirement of 1073741824 bytes for metadata and 1073741824 bytes for data in healthy node set. Required 3. Found 2.` (code INTERNAL_ERROR) | `Io` ENOSPC, not retried |
//! | datanode volume full *, local disk full * | write / close | `DiskOutOfSpaceException`, `DISK_OUT_OF_SPACE`, "Out of space", "No space left on device" | `Io` ENOSPC |
//!
//! The space quota is checked when the file is created, against one whole
//! block per replica (3 x 256 MiB = 805306368 bytes for a 100-byte file), so a
//! bucket needs that much headroom below its quota for any new file.
//!
//! The placement failure is SCM's `PipelinePlacementPolicy.filterViableNodes`
//! (`SCMCommonPlacementPolicy.filterNodesWithSpace` throws
//! FAILED_TO_FIND_NODES_WITH_SPACE, `WritableRatisContainerProvider` wraps it,
//! the OM turns it into INTERNAL_ERROR). It counts the *healthy* datanodes
//! with enough space, so the same text means "datanodes full" or "a datanode
//! has been down longer than `ozone.scm.stale.node.interval` (5 min), SCM
//! closed its pipelines and three healthy nodes are needed for a new one"
//! (reproduced: dn3 killed, a create 6 min later fails with "Required 3. Found
//! 2."). It is ENOSPC, failed at once: retrying for seconds does not help with
//! either, and writes resume on their own once SCM has a pipeline again (in
//! the reproduction, 64 s after restarting the datanode). Other "Unable to
//! allocate a container" failures (e.g. "Waiting for one of pipelines to be
//! OPEN failed") stay EIO and are retried.

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

/// "/vol/bucket" of an absolute path "/vol/bucket/...", for hints.
fn bucket_of(path: &str) -> String {
    let mut parts = path.trim_start_matches('/').splitn(3, '/');
    match (parts.next(), parts.next()) {
        (Some(v), Some(b)) if !v.is_empty() && !b.is_empty() => format!("/{v}/{b}"),
        (Some(v), _) if !v.is_empty() => format!("/{v}/<bucket>"),
        _ => "/<volume>/<bucket>".to_string(),
    }
}

/// Out of space or over a quota: the errno (ENOSPC or EDQUOT) and what the
/// operator has to do. None for any other failure. See the module
/// documentation for the texts Ozone 2.2.1 sends.
fn space_failure(errno: i32, cause: &str, path: &str) -> Option<(i32, String)> {
    let lc = cause.to_ascii_lowercase();
    let bucket = bucket_of(path);
    let volume = bucket.rsplit_once('/').map_or("/<volume>", |(v, _)| v);
    if lc.contains("space quota in this volume should be set") {
        return Some((
            libc::EDQUOT,
            format!(
                "the Ozone volume {volume} has a space quota, so each of its buckets needs one: \
                 create the bucket first with `ozone sh bucket create --space-quota <size> \
                 {bucket}` (or clear the volume's quota with `ozone sh volume clrquota \
                 --space-quota {volume}`)"
            ),
        ));
    }
    if errno == libc::EDQUOT
        || cause.contains("QUOTA_EXCEEDED")
        || cause.contains("QuotaExceeded")
        || (lc.contains("quota") && lc.contains("exceeded"))
    {
        let hint = if lc.contains("namespace") {
            format!(
                "the namespace (file count) quota of the Ozone bucket {bucket} or its volume is \
                 full: delete files or raise it with `ozone sh bucket setquota --namespace-quota \
                 <count> {bucket}` (or `ozone sh volume setquota --namespace-quota <count> \
                 {volume}`)"
            )
        } else {
            format!(
                "the space quota of the Ozone bucket {bucket} (or of its volume) is full: free \
                 space in it or raise it with `ozone sh bucket setquota --space-quota <size> \
                 {bucket}` (raise the volume's first with `ozone sh volume setquota \
                 --space-quota <size> {volume}` if it is the limit). Quotas count replicated \
                 bytes (3x with RATIS/THREE), and every file being written reserves one whole \
                 block per replica (3 x 256 MiB by default) until it is closed"
            )
        };
        return Some((libc::EDQUOT, hint));
    }
    if lc.contains("unable to find enough nodes that meet the space requirement") {
        return Some((
            libc::ENOSPC,
            "Ozone (SCM) cannot place a new block: fewer healthy datanodes with enough free \
             space than the replication needs (\"Required 3. Found 2\" for RATIS/THREE). Either \
             datanodes are full (free space or add datanodes) or a datanode has been down longer \
             than SCM's stale interval (ozone.scm.stale.node.interval, default 5 min; bring it \
             back: writes resume once SCM has opened a pipeline with it again)"
                .to_string(),
        ));
    }
    if errno == libc::ENOSPC
        || cause.contains("DiskOutOfSpace")
        || cause.contains("DISK_OUT_OF_SPACE")
        || lc.contains("out of space")
        || lc.contains("no space left on device")
    {
        return Some((
            libc::ENOSPC,
            "the storage is full: free space (on the Ozone datanodes, or the local disk for \
             file://) or add capacity"
                .to_string(),
        ));
    }
    None
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
    if let Some((errno, hint)) = space_failure(f.errno, &cause, path) {
        let msg = if cause.is_empty() {
            format!("{}: {hint}", strerror(f.errno))
        } else {
            format!("{cause}: {hint}")
        };
        return BackendError::Io {
            op,
            path: path.to_string(),
            errno,
            msg,
        };
    }
    let errno = if cause.contains("PathIsNotEmptyDirectoryException")
        || cause.contains("DIRECTORY_NOT_EMPTY")
    {
        libc::ENOTEMPTY
    } else if cause.contains("KEY_ALREADY_EXISTS") || cause.contains("FILE_ALREADY_EXISTS") {
        libc::EEXIST
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
        let quota = "OMException: The DiskSpace quota of bucket:quota1 exceeded quotaInBytes: \
                     1048576 Bytes but diskspace consumed: 805306368 Bytes.";
        let placement = "OMException: Unable to allocate a container to the block of size: \
                         268435456, replicationConfig: RATIS/THREE. Unable to find enough nodes \
                         that meet the space requirement of 1073741824 bytes for metadata and \
                         1073741824 bytes for data in healthy node set. Required 3. Found 2.";
        for (errno, cause, want, hint) in [
            (
                255,
                quota,
                libc::EDQUOT,
                "ozone sh bucket setquota --space-quota <size> /v/b",
            ),
            (
                255,
                "OMException: The namespace quota of Bucket:b exceeded: quotaInNamespace: 1 but \
                 namespace consumed: 2.",
                libc::EDQUOT,
                "--namespace-quota",
            ),
            (
                255,
                "OMException: Bucket space quota in this volume should be set as volume space \
                 quota is already set.",
                libc::EDQUOT,
                "ozone sh bucket create --space-quota <size> /v/b",
            ),
            (
                libc::EDQUOT,
                "DSQuotaExceededException: x",
                libc::EDQUOT,
                "setquota",
            ),
            (255, placement, libc::ENOSPC, "stale interval"),
            (
                255,
                "IOException: No space left on device",
                libc::ENOSPC,
                "full",
            ),
            (
                255,
                "DiskOutOfSpaceException: Out of space: x",
                libc::ENOSPC,
                "full",
            ),
            (libc::ENOSPC, "", libc::ENOSPC, "full"),
        ] {
            match classify("u", "create", "/v/b/chunks/0", f(errno, cause)) {
                BackendError::Io { errno, msg, .. } => {
                    assert_eq!(errno, want, "{cause}");
                    assert!(msg.starts_with(cause), "{msg}");
                    assert!(msg.contains(hint), "{msg}");
                }
                e => panic!("{cause}: {e:?}"),
            }
        }
        // Pipelines still being opened: transient, stays EIO.
        match classify(
            "u",
            "create",
            "/v/b/c",
            f(
                255,
                "OMException: Unable to allocate a container to the block of size: 268435456, \
                 replicationConfig: RATIS/THREE. Waiting for one of pipelines to be OPEN failed.",
            ),
        ) {
            BackendError::Io { errno, .. } => assert_eq!(errno, libc::EIO),
            e => panic!("{e:?}"),
        }
        assert_eq!(bucket_of("/v/b/c/d"), "/v/b");
        assert_eq!(bucket_of("/v"), "/v/<bucket>");
        match classify("u", "write", "/p", f(255, "IOException: boom")) {
            BackendError::Io { errno, msg, .. } => {
                assert_eq!(errno, libc::EIO);
                assert_eq!(msg, "IOException: boom");
            }
            e => panic!("{e:?}"),
        }
    }
}
