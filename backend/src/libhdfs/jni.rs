// SPDX-License-Identifier: Apache-2.0
//! JNI helpers for the calls libhdfs has no function for (bucket layout, the
//! client configuration, a put that creates no directory).
//!
//! Owns: this thread's `JNIEnv` (from libhdfs's `getJNIEnv`, which attaches the
//! thread and detaches it at thread exit, as every libhdfs call does), method
//! calls by name and signature on an object's own class, Java strings, local
//! frames, and turning a thrown exception into a [`JavaError`] (its text and
//! the first `OMException` result code along its cause chain).
//! Must never: leave a Java exception pending or a local reference behind (all
//! calls run inside [`Jni::in_local_frame`], and every call is followed by an
//! exception check that clears what it finds); panic or unwind across JNI.

use std::ffi::{CStr, CString};
use std::fmt;
use std::ptr;

use jni_sys as jni;

use super::error::{contains_any, TLS_READY};

extern "C" {
    /// libhdfs (jni_helper.c): this thread's JNIEnv, attaching the thread to
    /// the JVM (and detaching it at thread exit) as every libhdfs call does.
    pub(super) fn getJNIEnv() -> *mut jni::JNIEnv;
}

const RESULT_NOT_FOUND: &[&str] = &["VOLUME_NOT_FOUND", "BUCKET_NOT_FOUND"];

/// A Java exception (already cleared) or a failed JNI call.
#[derive(Debug)]
pub(super) struct JavaError {
    /// `Throwable.toString()`, or what went wrong on the JNI side.
    pub(super) text: String,
    /// `OMException.getResult().name()` of the exception or one of its causes.
    pub(super) code: Option<String>,
}

impl JavaError {
    pub(super) fn msg(text: impl Into<String>) -> Self {
        JavaError {
            text: text.into(),
            code: None,
        }
    }

    pub(super) fn is_not_found(&self) -> bool {
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
pub(super) struct Jni {
    pub(super) env: *mut jni::JNIEnv,
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
    /// This thread's JNIEnv through libhdfs (which attaches the thread).
    pub(super) fn this_thread() -> std::result::Result<Jni, JavaError> {
        // SAFETY: the JVM runs (connect started it); libhdfs attaches this thread.
        let env = unsafe { getJNIEnv() };
        if env.is_null() {
            return Err(JavaError::msg("no JNIEnv on this thread"));
        }
        TLS_READY.with(|r| r.set(true));
        Ok(Jni { env })
    }

    /// Clear a pending exception; returns it (a local reference) or null.
    pub(super) unsafe fn clear(&self) -> jni::jthrowable {
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
    pub(super) unsafe fn call_raw(
        &self,
        obj: jni::jobject,
        name: &CStr,
        sig: &CStr,
        args: &[jni::jvalue],
    ) -> std::result::Result<jni::jobject, jni::jthrowable> {
        let Some(call) = (**self.env).CallObjectMethodA else {
            return Err(ptr::null_mut());
        };
        let method = self.method(obj, name, sig)?;
        let r = call(self.env, obj, method, args.as_ptr());
        let t = self.clear();
        if t.is_null() {
            Ok(r)
        } else {
            Err(t)
        }
    }

    /// The instance method `name` with signature `sig` on `obj`'s own class.
    /// Err holds the exception thrown (cleared), or null if JNI failed without one.
    unsafe fn method(
        &self,
        obj: jni::jobject,
        name: &CStr,
        sig: &CStr,
    ) -> std::result::Result<jni::jmethodID, jni::jthrowable> {
        let env = self.env;
        let (Some(get_class), Some(get_method)) = ((**env).GetObjectClass, (**env).GetMethodID)
        else {
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
        Ok(method)
    }

    /// The content of a Java string; None if null or on failure (cleared).
    pub(super) unsafe fn rust_string(&self, s: jni::jstring) -> Option<String> {
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
    pub(super) unsafe fn call_string(&self, obj: jni::jobject, name: &CStr) -> Option<String> {
        let s = self
            .call_raw(obj, name, c"()Ljava/lang/String;", &[])
            .ok()?;
        self.rust_string(s)
    }

    /// Describe a cleared exception: its text and the first OMException result
    /// code along its cause chain.
    pub(super) unsafe fn describe(&self, t: jni::jthrowable) -> JavaError {
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
    pub(super) unsafe fn call(
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

    pub(super) unsafe fn new_string(
        &self,
        s: &str,
    ) -> std::result::Result<jni::jstring, JavaError> {
        let c = CString::new(s).map_err(|_| JavaError::msg("NUL in name"))?;
        let j = jfn!(self, NewStringUTF)?(self.env, c.as_ptr());
        if j.is_null() {
            let t = self.clear();
            return Err(self.describe(t));
        }
        Ok(j)
    }

    /// `obj.name(args)` returning an object that may be null (Ok(null)).
    pub(super) unsafe fn call_nullable(
        &self,
        obj: jni::jobject,
        name: &CStr,
        sig: &CStr,
        args: &[jni::jvalue],
    ) -> std::result::Result<jni::jobject, JavaError> {
        self.call_raw(obj, name, sig, args)
            .map_err(|t| self.describe(t))
    }

    /// A new instance, by its no-argument constructor, of the first of
    /// `classes` (JNI names, "a/b/C") that loads; with that class's name.
    pub(super) unsafe fn new_first_of(
        &self,
        classes: &[&CStr],
    ) -> std::result::Result<(jni::jobject, String), JavaError> {
        let find = jfn!(self, FindClass)?;
        let get_method = jfn!(self, GetMethodID)?;
        let new_object = jfn!(self, NewObjectA)?;
        let mut missing = Vec::new();
        for class_name in classes {
            let class = find(self.env, class_name.as_ptr());
            if class.is_null() {
                let t = self.clear();
                missing.push(self.describe(t).to_string());
                continue;
            }
            let ctor = get_method(self.env, class, c"<init>".as_ptr(), c"()V".as_ptr());
            if ctor.is_null() {
                let t = self.clear();
                return Err(self.describe(t));
            }
            let no_args: [jni::jvalue; 0] = [];
            let obj = new_object(self.env, class, ctor, no_args.as_ptr());
            let t = self.clear();
            if !t.is_null() || obj.is_null() {
                return Err(self.describe(t));
            }
            return Ok((obj, class_name.to_string_lossy().replace('/', ".")));
        }
        Err(JavaError::msg(format!(
            "none of the classes loads: {}",
            missing.join("; ")
        )))
    }

    /// The elements of a Java `String[]` (a null element is None).
    pub(super) unsafe fn string_array(
        &self,
        array: jni::jobjectArray,
    ) -> std::result::Result<Vec<Option<String>>, JavaError> {
        let len = jfn!(self, GetArrayLength)?(self.env, array);
        let get = jfn!(self, GetObjectArrayElement)?;
        let del = jfn!(self, DeleteLocalRef)?;
        let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        for i in 0..len {
            let e = get(self.env, array, i);
            let t = self.clear();
            if !t.is_null() {
                return Err(self.describe(t));
            }
            out.push(self.rust_string(e));
            if !e.is_null() {
                del(self.env, e);
            }
        }
        Ok(out)
    }

    /// `new <class>(s)`: an instance by the constructor taking one String.
    pub(super) unsafe fn new_with_string(
        &self,
        class_name: &CStr,
        s: &str,
    ) -> std::result::Result<jni::jobject, JavaError> {
        let class = jfn!(self, FindClass)?(self.env, class_name.as_ptr());
        if class.is_null() {
            let t = self.clear();
            return Err(self.describe(t));
        }
        let ctor = jfn!(self, GetMethodID)?(
            self.env,
            class,
            c"<init>".as_ptr(),
            c"(Ljava/lang/String;)V".as_ptr(),
        );
        if ctor.is_null() {
            let t = self.clear();
            return Err(self.describe(t));
        }
        let arg = [jni::jvalue {
            l: self.new_string(s)?,
        }];
        let obj = jfn!(self, NewObjectA)?(self.env, class, ctor, arg.as_ptr());
        let t = self.clear();
        if !t.is_null() || obj.is_null() {
            return Err(self.describe(t));
        }
        Ok(obj)
    }

    /// `obj.name(args)` for an instance method returning void.
    pub(super) unsafe fn call_void(
        &self,
        obj: jni::jobject,
        name: &CStr,
        sig: &CStr,
        args: &[jni::jvalue],
    ) -> std::result::Result<(), JavaError> {
        let call = jfn!(self, CallVoidMethodA)?;
        let method = self.method(obj, name, sig).map_err(|t| self.describe(t))?;
        call(self.env, obj, method, args.as_ptr());
        let t = self.clear();
        if t.is_null() {
            Ok(())
        } else {
            Err(self.describe(t))
        }
    }

    /// `out.write(bytes)` on a `java.io.OutputStream`, in pieces of at most
    /// `piece` bytes, each copied into a Java array that is released after
    /// its write (as libhdfs's `hdfsWrite` does).
    pub(super) unsafe fn write_bytes(
        &self,
        out: jni::jobject,
        data: &[u8],
        piece: usize,
    ) -> std::result::Result<(), JavaError> {
        let new_array = jfn!(self, NewByteArray)?;
        let set_region = jfn!(self, SetByteArrayRegion)?;
        let del = jfn!(self, DeleteLocalRef)?;
        for p in data.chunks(piece.max(1)) {
            let len = jni::jsize::try_from(p.len())
                .map_err(|_| JavaError::msg("a write piece does not fit a Java array"))?;
            let arr = new_array(self.env, len);
            if arr.is_null() {
                let t = self.clear();
                return Err(self.describe(t));
            }
            set_region(self.env, arr, 0, len, p.as_ptr().cast::<jni::jbyte>());
            let t = self.clear();
            if !t.is_null() {
                del(self.env, arr);
                return Err(self.describe(t));
            }
            let args = [
                jni::jvalue { l: arr },
                jni::jvalue { i: 0 },
                jni::jvalue { i: len },
            ];
            let r = self.call_void(out, c"write", c"([BII)V", &args);
            del(self.env, arr);
            r?;
        }
        Ok(())
    }

    /// Run `f` inside a fresh local frame; every local reference created in it
    /// is deleted at its end. No exception is left pending.
    pub(super) unsafe fn in_local_frame<T>(
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
