// SPDX-License-Identifier: Apache-2.0
//! A positional read of an open input stream by a direct JNI call with a
//! method ID resolved once, instead of `hdfsPread`, which resolves
//! `FSDataInputStream.read(long, byte[], int, int)` by name on every call (a
//! profile of cold random reads spent about 40 % of its samples in that
//! lookup: `InstanceKlass::find_method_index`, `SymbolTable::lookup_shared`).
//!
//! A stream that declares `in:preadbytebuffer` (libhdfs records it in the
//! file's flags at open; Ozone's does) is read straight into the caller's
//! buffer: `read(long, ByteBuffer)` with a direct `ByteBuffer` over it
//! (`NewDirectByteBuffer`), as libhdfs's own `preadDirect` does. Any other
//! stream, or one that answers `UnsupportedOperationException` (its flag is
//! then cleared, as libhdfs does), is read by `read(long, byte[], int, int)`:
//! a Java array and one more copy.
//!
//! Owns: the cached method IDs, the one direct buffer (or Java byte array) of
//! each call, and reading the stream object out of libhdfs's `hdfsFile`.
//! Must never: report an error itself (on any exception, JNI failure or
//! zero-byte answer it clears what it found and answers `None`, and the
//! caller repeats the read through `hdfsPread`, whose errno and root cause
//! the backend's error mapping understands), leave a local reference behind
//! (an attached native thread has no Java frame to free them), let Java keep
//! the direct buffer past the call (it is the caller's memory), or be used on
//! a stream that another thread is reading.

use std::ffi::CStr;
use std::os::raw::c_void;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use hdfs_sys as ffi;
use jni_sys as jni;

use super::jni::getJNIEnv;

/// Method IDs of `FSDataInputStream` (valid while the class is loaded: for
/// the life of the JVM, which is never unloaded), as addresses.
/// `read(J[BII)I`:
static READ_ARRAY: OnceLock<Option<usize>> = OnceLock::new();
/// `read(JLjava/nio/ByteBuffer;)I`:
static READ_BUFFER: OnceLock<Option<usize>> = OnceLock::new();
/// libhdfs's `HDFS_FILE_SUPPORTS_DIRECT_PREAD` flag of `hdfsFile_internal`.
const DIRECT_PREAD: i32 = 1 << 1;
/// Whether the fallback to byte-array reads has been logged.
static LOGGED_FALLBACK: AtomicBool = AtomicBool::new(false);

/// How a read was done.
#[derive(Clone, Copy)]
pub(super) enum Via {
    /// Straight into the caller's buffer.
    Direct,
    /// Through a Java byte array, copied out.
    Array,
}

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

/// Whether `t` is a `java.lang.UnsupportedOperationException`. No exception
/// may be pending.
unsafe fn unsupported(env: *mut jni::JNIEnv, t: jni::jthrowable) -> bool {
    let f = &**env;
    let (Some(find), Some(is), Some(del)) = (f.FindClass, f.IsInstanceOf, f.DeleteLocalRef) else {
        return false;
    };
    let class = find(env, c"java/lang/UnsupportedOperationException".as_ptr());
    if class.is_null() {
        clear(env);
        return false;
    }
    let yes = is(env, t, class) != jni::JNI_FALSE;
    del(env, class);
    yes
}

unsafe fn method(
    env: *mut jni::JNIEnv,
    cell: &'static OnceLock<Option<usize>>,
    sig: &'static CStr,
) -> Option<jni::jmethodID> {
    let found = cell.get_or_init(|| {
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
        let m = get(env, class, c"read".as_ptr(), sig.as_ptr());
        del(env, class);
        if m.is_null() {
            clear(env);
            log::debug!("FSDataInputStream.read{sig:?} not found");
            return None;
        }
        Some(m as usize)
    });
    found.map(|m| m as jni::jmethodID)
}

/// Read up to `buf.len()` bytes at `pos` of the open input stream `file`.
/// `Some((n, via))`: n bytes read (0 at end of file) by `via`; `None`: ask
/// `hdfsPread`.
///
/// # Safety
/// `file` is an open input stream of libhdfs, used by this thread only for
/// the duration of the call; the JVM runs.
pub(super) unsafe fn pread(file: ffi::hdfsFile, pos: i64, buf: &mut [u8]) -> Option<(usize, Via)> {
    if file.is_null() || buf.is_empty() || buf.len() > i32::MAX as usize {
        return None;
    }
    let env = getJNIEnv();
    if env.is_null() {
        return None;
    }
    let fi = file as *mut HdfsFileInternal;
    let stream = (*fi).file;
    if stream.is_null() {
        return None;
    }
    if (*fi).flags & DIRECT_PREAD != 0 {
        let done = match method(env, &READ_BUFFER, c"(JLjava/nio/ByteBuffer;)I") {
            Some(m) => read_direct(env, stream, m, pos, buf),
            None => Direct::Unsupported,
        };
        match done {
            Direct::Done(n) => return n.map(|n| (n, Via::Direct)),
            Direct::Unsupported => {
                // This caller owns the file for the call (see `# Safety`).
                (*fi).flags &= !DIRECT_PREAD;
                if !LOGGED_FALLBACK.swap(true, Ordering::Relaxed) {
                    log::info!(
                        "an input stream declared a direct-buffer positional read but refused \
                         it: reading it through a Java byte array (one more copy per read)"
                    );
                }
            }
        }
    }
    read_array(env, stream, pos, buf).map(|n| (n, Via::Array))
}

enum Direct {
    Done(Option<usize>),
    Unsupported,
}

/// `read(long, ByteBuffer)` into a direct buffer over `buf`: Java writes the
/// caller's memory, no Java array and no copy.
unsafe fn read_direct(
    env: *mut jni::JNIEnv,
    stream: jni::jobject,
    method: jni::jmethodID,
    pos: i64,
    buf: &mut [u8],
) -> Direct {
    let f = &**env;
    let (Some(new_buffer), Some(call), Some(del), Some(check), Some(occurred), Some(clear_exc)) = (
        f.NewDirectByteBuffer,
        f.CallIntMethodA,
        f.DeleteLocalRef,
        f.ExceptionCheck,
        f.ExceptionOccurred,
        f.ExceptionClear,
    ) else {
        return Direct::Unsupported;
    };
    let len = buf.len() as i32;
    // The buffer lives as long as this call's local reference: Ozone's
    // positional read only fills it and returns (no reference kept).
    let bb = new_buffer(
        env,
        buf.as_mut_ptr() as *mut c_void,
        buf.len() as jni::jlong,
    );
    if bb.is_null() {
        clear(env);
        return Direct::Unsupported; // the JVM has no direct buffer access
    }
    let args = [jni::jvalue { j: pos }, jni::jvalue { l: bb }];
    let n = call(env, stream, method, args.as_ptr());
    let out = if check(env) != jni::JNI_FALSE {
        let t = occurred(env);
        clear_exc(env);
        let unsupported = !t.is_null() && unsupported(env, t);
        if !t.is_null() {
            del(env, t);
        }
        if unsupported {
            Direct::Unsupported
        } else {
            Direct::Done(None)
        }
    } else if n < 0 {
        Direct::Done(Some(0)) // end of file
    } else if n == 0 || n > len {
        Direct::Done(None)
    } else {
        Direct::Done(Some(n as usize))
    };
    del(env, bb);
    out
}

/// `read(long, byte[], int, int)` through one Java array, copied out.
unsafe fn read_array(
    env: *mut jni::JNIEnv,
    stream: jni::jobject,
    pos: i64,
    buf: &mut [u8],
) -> Option<usize> {
    let method = method(env, &READ_ARRAY, c"(J[BII)I")?;
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
