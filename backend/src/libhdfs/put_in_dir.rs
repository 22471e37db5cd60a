// SPDX-License-Identifier: Apache-2.0
//! A whole-file put that never creates a directory (`Backend::put_in_dir`).
//!
//! Owns: the ofs put through `FileSystem#createNonRecursive`, which libhdfs
//! has no function for: create (the OM refuses it when the directory is
//! missing), write, close (the OM commit, which fails with
//! DIRECTORY_NOT_FOUND when the directory's path no longer resolves). So a put
//! that races a rename of a directory above the file either fails or
//! committed before the rename; the engine's fencing (chunkstore
//! `lease/fence.rs`) rests on that instead of a marker `stat` after each
//! chunk put. `file://` keeps the plain put (its temporary file would
//! recreate the directory), and says so (Ok(false)).
//! Must never: create a directory; commit a file whose write failed (on any
//! error the stream is dropped unclosed: the OM never commits it, and its
//! open-key cleanup removes it); leave a Java exception pending or a local
//! reference behind (one local frame; every call checks and clears).

use jni_sys as jni;

use super::error::{classify, Failure, EINTERNAL};
use super::jni::{JavaError, Jni};
use super::stream::WRITE_PIECE;
use super::{c_path, LibhdfsBackend, Scheme};
use crate::{BackendError, Result};

/// The block size passed to `createNonRecursive`. The ofs client ignores it
/// (the cluster's `ozone.scm.block.size` decides); Hadoop's signature needs one.
const BLOCK_SIZE: i64 = 256 << 20;

/// The stream buffer size passed to `createNonRecursive` (ignored by ofs,
/// like libhdfs's default it passes).
const BUFFER_SIZE: i32 = 64 << 10;

impl Jni {
    /// `fs.createNonRecursive(path, overwrite, ...)`, `between()`, then
    /// write and close. Any failure drops the stream unclosed.
    unsafe fn put_non_recursive(
        &self,
        fs: jni::jobject,
        path: &str,
        data: &[u8],
        replication: i16,
        between: &mut dyn FnMut(),
    ) -> std::result::Result<(), JavaError> {
        let jpath = self.new_with_string(c"org/apache/hadoop/fs/Path", path)?;
        let args = [
            jni::jvalue { l: jpath },
            jni::jvalue { z: jni::JNI_TRUE },
            jni::jvalue { i: BUFFER_SIZE },
            jni::jvalue { s: replication },
            jni::jvalue { j: BLOCK_SIZE },
            jni::jvalue {
                l: std::ptr::null_mut(),
            },
        ];
        let out = self.call(
            fs,
            c"createNonRecursive",
            c"(Lorg/apache/hadoop/fs/Path;ZISJLorg/apache/hadoop/util/Progressable;)Lorg/apache/hadoop/fs/FSDataOutputStream;",
            &args,
        )?;
        between();
        self.write_bytes(out, data, WRITE_PIECE)?;
        self.call_void(out, c"close", c"()V", &[])
    }
}

/// What a failed JNI put left, as `classify` takes it.
fn failure(e: &JavaError) -> Failure {
    let not_found = e.text.contains("FileNotFoundException")
        || matches!(
            e.code.as_deref(),
            Some("DIRECTORY_NOT_FOUND" | "KEY_NOT_FOUND" | "FILE_NOT_FOUND")
        );
    Failure {
        errno: if not_found { libc::ENOENT } else { EINTERNAL },
        cause: Some(e.to_string()),
    }
}

impl LibhdfsBackend {
    /// `Backend::put_in_dir`, running `between` after the create and before the first
    /// write: for the contract test that renames the directory in between.
    #[doc(hidden)]
    pub fn put_in_dir_with(
        &self,
        path: &str,
        data: &[u8],
        between: &mut dyn FnMut(),
    ) -> Result<bool> {
        if self.scheme == Scheme::Local {
            between();
            return self.put_local(path, data).map(|()| false);
        }
        c_path("put", path)?;
        let jni = Jni::this_thread()
            .map_err(|e| BackendError::io("put", path, libc::EIO, e.to_string()))?;
        let fs = self.fs.cast::<jni::_jobject>();
        // SAFETY: `env` is this thread's; `fs` is a global reference to the live
        // FileSystem (see the Send/Sync note in mod.rs); all local references
        // die with the frame and every exception is cleared.
        let r = unsafe {
            jni.in_local_frame(|j| j.put_non_recursive(fs, path, data, self.replication, between))
        };
        match r {
            Ok(()) => Ok(true),
            Err(e) => Err(classify(&self.uri, "put", path, failure(&e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_directory_is_not_found() {
        let e = |text: &str, code: Option<&str>| JavaError {
            text: text.into(),
            code: code.map(Into::into),
        };
        for (err, enoent) in [
            (e("java.io.FileNotFoundException: /v/b/d/f", None), true),
            (
                e("OMException: parent gone", Some("DIRECTORY_NOT_FOUND")),
                true,
            ),
            (e("OMException: no key", Some("KEY_NOT_FOUND")), true),
            (e("java.io.IOException: boom", None), false),
            (e("OMException: x", Some("PERMISSION_DENIED")), false),
        ] {
            let f = failure(&err);
            assert_eq!(f.errno == libc::ENOENT, enoent, "{err}");
            let be = classify("ofs://x", "put", "/v/b/d/f", f);
            assert_eq!(
                matches!(be, BackendError::NotFound { .. }),
                enoent,
                "{err} -> {be:?}"
            );
        }
    }
}
