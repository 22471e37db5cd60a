// SPDX-License-Identifier: Apache-2.0
//! The JVM: finding libjvm, the JNI entry points libhdfs links against, start-up.
//!
//! Owns: loading `libjvm.so` at run time (see "How libjvm is found" in the
//! module documentation), the `JNI_GetCreatedJavaVMs` / `JNI_CreateJavaVM`
//! definitions libhdfs binds to, starting the JVM once per process with the
//! `CLASSPATH` (expanded), the engine's few JVM options and `LIBHDFS_OPTS`,
//! and checking that the classes libhdfs caches are there.
//! Must never: make a binary depend on libjvm at load time (no `-ljvm`, no
//! rpath); start a second JVM or replace one the host process runs; let the JVM
//! take the host's signals unless `OZBD_JVM_SIGNALS=1`.

use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_void};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::OnceLock;

use jni_sys as jni;

use super::ENV_HINT;

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
    match libjvm() {
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
    match libjvm() {
        Ok(l) => (l.create)(pvm, penv, args),
        Err(e) => {
            eprintln!("ozbd libhdfs: {e}");
            jni::JNI_ERR
        }
    }
}

type CreateFn =
    unsafe extern "system" fn(*mut *mut jni::JavaVM, *mut *mut c_void, *mut c_void) -> jni::jint;
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
        if std::ptr::eq(create.cast_const(), JNI_CreateJavaVM as *const c_void) {
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
    std::hint::black_box(JNI_GetCreatedJavaVMs as *const () as usize);
    std::hint::black_box(JNI_CreateJavaVM as *const () as usize);
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

/// JVM options the engine starts its JVM with, ahead of `LIBHDFS_OPTS`
/// (which can undo them). `-XX:-UsePerfData`: no `hsperfdata` statistics
/// file in /tmp and no sampler waking every 50 ms (the "VM Periodic Task"
/// thread was about 0.1 % of a core on an idle target: docs/performance.md
/// "Idle, profiled"); `jcmd <pid>` still works, `jps` and `jstat` do not
/// (add `-XX:+UsePerfData` to `LIBHDFS_OPTS` for them).
const ENGINE_JVM_OPTS: &[&str] = &["-XX:-UsePerfData"];

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
    // Before the user's options, so that theirs win (the JVM takes the last).
    opts.extend(ENGINE_JVM_OPTS.iter().map(|o| o.to_string()));
    opts.extend(split_jvm_opts(
        &std::env::var("LIBHDFS_OPTS").unwrap_or_default(),
    ));
    if std::env::var("OZBD_JVM_SIGNALS").as_deref() != Ok("1") && !opts.iter().any(|o| o == "-Xrs")
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
pub(super) unsafe fn current_env() -> Option<*mut jni::JNIEnv> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jvm_opts() {
        assert_eq!(
            split_jvm_opts(" -Xmx1g --add-opens java.base/java.nio=ALL-UNNAMED -Dx=y "),
            vec![
                "-Xmx1g",
                "--add-opens=java.base/java.nio=ALL-UNNAMED",
                "-Dx=y"
            ]
        );
    }
}
