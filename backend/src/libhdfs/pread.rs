// SPDX-License-Identifier: Apache-2.0
//! A positional read of an open input stream by a direct JNI call with a
//! method ID resolved once, instead of `hdfsPread`, which resolves
//! `FSDataInputStream.read(long, byte[], int, int)` by name on every call (a
//! profile of cold random reads spent about 40 % of its samples in that
//! lookup: `InstanceKlass::find_method_index`, `SymbolTable::lookup_shared`).
//!
//! Owns: the cached method ID, the one Java byte array of each call, and
//! reading the stream object out of libhdfs's `hdfsFile`.
//! Must never: report an error itself (on any exception, JNI failure or
//! zero-byte answer it clears what it found and answers `None`, and the
//! caller repeats the read through `hdfsPread`, whose errno and root cause
//! the backend's error mapping understands), leave a local reference behind
//! (an attached native thread has no Java frame to free them), or be used on
//! a stream that another thread is reading.

use std::sync::OnceLock;

use hdfs_sys as ffi;
use jni_sys as jni;

use super::jni::getJNIEnv;

/// `FSDataInputStream.read(J[BII)I`'s method ID (valid while the class is
/// loaded: for the life of the JVM, which is never unloaded), as an address.
static READ: OnceLock<Option<usize>> = OnceLock::new();

/// libhdfs's `struct hdfsFile_internal` (hdfs.c of the vendored Hadoop 3.3
/// libhdfs that hdfs-sys 0.3 builds): the stream is its first field, a JNI
/// global reference.
#[repr(C)]
struct HdfsFileInternal {
    file: jni::jobject,
    stream_type: i32,
    flags: i32,
}

/// Clear a pending exception and drop its local reference.
unsafe fn clear(env: *mut jni::JNIEnv) {
    let f = &**env;
    if let (Some(check), Some(occurred), Some(clear), Some(del)) = (
        f.ExceptionCheck,
        f.ExceptionOccurred,
        f.ExceptionClear,
        f.DeleteLocalRef,
    ) {
        if check(env) != jni::JNI_FALSE {
            let t = occurred(env);
            clear(env);
            if !t.is_null() {
                del(env, t);
            }
        }
    }
}

unsafe fn read_method(env: *mut jni::JNIEnv) -> Option<jni::jmethodID> {
    let found = READ.get_or_init(|| {
        let f = &**env;
        let (Some(find), Some(get), Some(del)) = (f.FindClass, f.GetMethodID, f.DeleteLocalRef)
        else {
            return None;
        };
        let class = find(env, c"org/apache/hadoop/fs/FSDataInputStream".as_ptr());
        if class.is_null() {
            clear(env);
            return None;
        }
        let m = get(env, class, c"read".as_ptr(), c"(J[BII)I".as_ptr());
        del(env, class);
        if m.is_null() {
            clear(env);
            log::debug!(
                "FSDataInputStream.read(long, byte[], int, int) not found: using hdfsPread"
            );
            return None;
        }
        Some(m as usize)
    });
    found.map(|m| m as jni::jmethodID)
}

/// Read up to `buf.len()` bytes at `pos` of the open input stream `file`.
/// `Some(n)`: n bytes read (0 at end of file); `None`: ask `hdfsPread`.
///
/// # Safety
/// `file` is an open input stream of libhdfs, used by this thread only for
/// the duration of the call; the JVM runs.
pub(super) unsafe fn pread(file: ffi::hdfsFile, pos: i64, buf: &mut [u8]) -> Option<usize> {
    if file.is_null() || buf.is_empty() || buf.len() > i32::MAX as usize {
        return None;
    }
    let env = getJNIEnv();
    if env.is_null() {
        return None;
    }
    let stream = (*(file as *const HdfsFileInternal)).file;
    if stream.is_null() {
        return None;
    }
    let method = read_method(env)?;
    let f = &**env;
    let (Some(new_array), Some(call), Some(get_region), Some(del), Some(check)) = (
        f.NewByteArray,
        f.CallIntMethodA,
        f.GetByteArrayRegion,
        f.DeleteLocalRef,
        f.ExceptionCheck,
    ) else {
        return None;
    };
    let len = buf.len() as i32;
    let array = new_array(env, len);
    if array.is_null() {
        clear(env);
        return None;
    }
    let args = [
        jni::jvalue { j: pos },
        jni::jvalue { l: array },
        jni::jvalue { i: 0 },
        jni::jvalue { i: len },
    ];
    let n = call(env, stream, method, args.as_ptr());
    let out = if check(env) != jni::JNI_FALSE {
        clear(env);
        None
    } else if n < 0 {
        Some(0) // end of file
    } else if n == 0 || n > len {
        None
    } else {
        get_region(env, array, 0, n, buf.as_mut_ptr() as *mut jni::jbyte);
        if check(env) != jni::JNI_FALSE {
            clear(env);
            None
        } else {
            Some(n as usize)
        }
    };
    del(env, array);
    out
}
