// SPDX-License-Identifier: Apache-2.0
//! Build script of ozbd-backend.
//!
//! With the `libhdfs` feature, `hdfs-sys` (which declares `links = "hdfs"`) has
//! located the JDK at build time and exports the directory of `libjvm.so` as
//! `DEP_HDFS_METADATA` (see below). We bake it into the crate as `OZBD_BUILD_JVM_LIB_DIR`: the
//! run-time libjvm loader in `src/libhdfs/jvm.rs` tries it after `$JAVA_HOME`.
//!
//! No rpath is emitted: `cargo:rustc-link-arg` from a library's build script
//! only reaches this package's own tests/examples, never dependent binaries or
//! cdylibs. Instead `src/libhdfs/jvm.rs` defines the two JNI entry points libhdfs
//! calls and `dlopen`s libjvm at run time, so no binary needs libjvm on its
//! library path.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // hdfs-sys 0.3.1 prints `cargo:metadata=JVM_PATH=<dir>`, which cargo reads as
    // the key `metadata`; accept the intended key too.
    let dir = std::env::var("DEP_HDFS_JVM_PATH").ok().or_else(|| {
        std::env::var("DEP_HDFS_METADATA")
            .ok()
            .and_then(|m| m.strip_prefix("JVM_PATH=").map(str::to_string))
    });
    if let Some(dir) = dir {
        println!("cargo:rustc-env=OZBD_BUILD_JVM_LIB_DIR={dir}");
    }
}
