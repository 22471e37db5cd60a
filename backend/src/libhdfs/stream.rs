// SPDX-License-Identifier: Apache-2.0
//! Open libhdfs files: reading, writing, committing and abandoning.
//!
//! Owns: the `hdfsFile` handles (one per call, never shared between threads),
//! the all-or-nothing `put` (`ofs://`: create-overwrite, write, close = commit;
//! `file://`: temp file, fsync, rename, fsync the directory) and abandoning a
//! failed output stream without closing it.
//! Must never: close an output stream after a failed write (on Ozone, close
//! commits the bytes written so far: a truncated chunk); use a handle after it
//! was closed or abandoned.

use std::ffi::CStr;
use std::os::raw::{c_int, c_void};
use std::sync::atomic::Ordering;

use hdfs_sys as ffi;
use jni_sys as jni;

use super::error::Snap;
use super::{c_path, fsync_dir, jvm, split_parent, LibhdfsBackend, Scheme, TMP_MARK};
use crate::{Backend, BackendError, Result};

/// Largest piece handed to one hdfsWrite (each becomes a Java byte[] copy).
pub(super) const WRITE_PIECE: usize = 1 << 20;

/// A file open for reading; closed on drop.
pub(super) struct ReadFile<'a> {
    be: &'a LibhdfsBackend,
    pub(super) file: ffi::hdfsFile,
}

impl Drop for ReadFile<'_> {
    fn drop(&mut self) {
        // SAFETY: `file` is open and closed once; close of an input stream has no
        // effect on the data.
        if unsafe { ffi::hdfsCloseFile(self.be.fs, self.file) } != 0 {
            log::debug!("{}: closing a read stream failed", self.be.uri);
        }
    }
}

/// A file open for writing. Dropping it without `close` abandons it: the
/// stream is never closed, so nothing is committed.
pub(super) struct WriteFile<'a> {
    pub(super) be: &'a LibhdfsBackend,
    pub(super) file: ffi::hdfsFile,
}

impl WriteFile<'_> {
    /// Close, which on Ozone commits the key.
    pub(super) fn close(self, op: &'static str, path: &str) -> Result<()> {
        let me = std::mem::ManuallyDrop::new(self);
        let snap = Snap::take();
        // SAFETY: open handle, closed once (libhdfs frees it even on failure).
        if unsafe { ffi::hdfsCloseFile(me.be.fs, me.file) } == 0 {
            snap.ok();
            Ok(())
        } else {
            Err(me.be.error(op, path, snap.failure()))
        }
    }
}

impl Drop for WriteFile<'_> {
    fn drop(&mut self) {
        // SAFETY: open handle not closed yet; it is not used after this.
        if !unsafe { abandon_output_stream(self.file) } {
            log::error!(
                "{}: could not abandon a failed output stream; leaking it",
                self.be.uri
            );
        }
    }
}

/// A written, not yet closed file; see [`LibhdfsBackend::debug_begin_put`].
#[doc(hidden)]
pub struct PendingPut<'a> {
    file: WriteFile<'a>,
    path: String,
}

impl PendingPut<'_> {
    /// Close the stream (on Ozone: commit the key).
    pub fn commit(self) -> Result<()> {
        self.file.close("commit", &self.path)
    }
}

impl LibhdfsBackend {
    /// For tests: create(overwrite) `path` directly (no temp file, even on
    /// `file://`) and write `data`, without closing. `PendingPut::commit`
    /// closes (on Ozone: commits); dropping it abandons the stream as `put` does
    /// after a write error, so on Ozone the old content must stay.
    #[doc(hidden)]
    pub fn debug_begin_put(&self, path: &str, data: &[u8]) -> Result<PendingPut<'_>> {
        let c = c_path("put", path)?;
        let f = self.open_write(path, &c)?;
        self.write_all(&f, path, data)?;
        Ok(PendingPut {
            file: f,
            path: path.to_string(),
        })
    }

    pub(super) fn open_input(&self, path: &str, c: &CStr) -> Result<ReadFile<'_>> {
        let snap = Snap::take();
        // SAFETY: valid fs and C string.
        let file = unsafe { ffi::hdfsOpenFile(self.fs, c.as_ptr(), libc::O_RDONLY, 0, 0, 0) };
        if file.is_null() {
            return Err(self.error("open", path, snap.failure()));
        }
        snap.ok();
        Ok(ReadFile { be: self, file })
    }

    /// create(overwrite=true) with our replication.
    pub(super) fn open_write(&self, path: &str, c: &CStr) -> Result<WriteFile<'_>> {
        let repl = match self.scheme {
            Scheme::Ofs => self.replication,
            Scheme::Local => 1,
        };
        let snap = Snap::take();
        // SAFETY: valid fs and C string.
        let file = unsafe {
            ffi::hdfsOpenFile(
                self.fs,
                c.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT,
                0,
                repl,
                0,
            )
        };
        if file.is_null() {
            return Err(self.error("create", path, snap.failure()));
        }
        snap.ok();
        Ok(WriteFile { be: self, file })
    }

    pub(super) fn write_all(&self, f: &WriteFile<'_>, path: &str, data: &[u8]) -> Result<()> {
        for piece in data.chunks(WRITE_PIECE) {
            let snap = Snap::take();
            // SAFETY: open output stream; `piece` is valid for its length, which
            // fits an i32. libhdfs writes all of it or fails.
            let n = unsafe {
                ffi::hdfsWrite(
                    self.fs,
                    f.file,
                    piece.as_ptr() as *const c_void,
                    piece.len() as i32,
                )
            };
            if n < 0 {
                return Err(self.error("write", path, snap.failure()));
            }
            snap.ok();
            if n as usize != piece.len() {
                return Err(BackendError::io(
                    "write",
                    path,
                    libc::EIO,
                    format!("short write: {n} of {} bytes", piece.len()),
                ));
            }
        }
        Ok(())
    }

    pub(super) fn put_ofs(&self, path: &str, data: &[u8]) -> Result<()> {
        let c = c_path("put", path)?;
        let f = self.open_write(path, &c)?;
        // On error `f` is dropped unclosed: abandoned, nothing committed.
        self.write_all(&f, path, data)?;
        f.close("commit", path)
    }

    pub(super) fn put_local(&self, path: &str, data: &[u8]) -> Result<()> {
        let (dir, name) = split_parent(path)
            .ok_or_else(|| BackendError::io("put", path, libc::EISDIR, "no file name"))?;
        let c_final = c_path("put", path)?;
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let tmp = crate::join(dir, &format!(".{name}{TMP_MARK}{}-{n}", std::process::id()));
        let c_tmp = c_path("put", &tmp)?;

        let f = self.open_write(&tmp, &c_tmp)?;
        let written = self.write_all(&f, &tmp, data).and_then(|()| {
            let snap = Snap::take();
            // SAFETY: open output stream.
            if unsafe { ffi::hdfsHSync(self.fs, f.file) } == 0 {
                snap.ok();
                Ok(())
            } else {
                Err(self.error("fsync", &tmp, snap.failure()))
            }
        });
        // Closing a temp file commits nothing visible, so close it either way.
        let closed = f.close("close", &tmp);
        let res = written.and(closed).and_then(|()| {
            let snap = Snap::take();
            // SAFETY: valid fs and C strings.
            if unsafe { ffi::hdfsRename(self.fs, c_tmp.as_ptr(), c_final.as_ptr()) } == 0 {
                snap.ok();
                Ok(())
            } else {
                Err(self.error("rename", path, snap.failure()))
            }
        });
        if let Err(e) = res {
            let _ = self.delete(&tmp, false);
            return Err(e);
        }
        fsync_dir(dir).map_err(|e| {
            BackendError::io(
                "fsync dir",
                dir,
                e.raw_os_error().unwrap_or(libc::EIO),
                e.to_string(),
            )
        })
    }
}

/// libhdfs's private handle, `struct hdfsFile_internal` in hdfs.c (hdfs-sys
/// builds libhdfs from `libhdfs/hdfs_3_3/hdfs.c`), unchanged since Hadoop 2.x:
/// `{ void *file; enum hdfsStreamType type; int flags; }`, allocated with
/// `calloc` and freed with `free`. `file` is a JNI global reference to the
/// `FSDataInputStream`/`FSDataOutputStream`. The test `handle_layout_matches_libhdfs`
/// compiles the C definition and compares size, alignment and offsets.
#[repr(C)]
struct HdfsFileInternal {
    file: *mut c_void,
    /// `enum hdfsStreamType`: 1 input, 2 output.
    stream_type: c_int,
    flags: c_int,
}

/// Drop an output stream without closing it (so nothing is committed):
/// delete its JNI global reference and free libhdfs's handle. Returns false
/// (and leaks the handle) if this thread has no JNIEnv.
///
/// Relies on libhdfs's private handle layout, [`HdfsFileInternal`].
///
/// # Safety
/// `file` must be an open libhdfs output handle, not used afterwards.
unsafe fn abandon_output_stream(file: ffi::hdfsFile) -> bool {
    let Some(env) = jvm::current_env() else {
        return false;
    };
    let Some(del) = (**env).DeleteGlobalRef else {
        return false;
    };
    let stream = (*(file as *const HdfsFileInternal)).file as jni::jobject;
    if !stream.is_null() {
        del(env, stream);
    }
    libc::free(file as *mut c_void);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// The text from `start` to the first `};` after it.
    fn c_block<'a>(src: &'a str, start: &str) -> &'a str {
        let i = src
            .find(start)
            .unwrap_or_else(|| panic!("hdfs.c no longer contains `{start}`"));
        let end = src[i..]
            .find("};")
            .unwrap_or_else(|| panic!("no `}};` after `{start}` in hdfs.c"));
        &src[i..i + end + 2]
    }

    /// The version of `name` in the workspace's Cargo.lock.
    fn locked_version(name: &str) -> String {
        let lock_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock");
        let lock = std::fs::read_to_string(&lock_path)
            .unwrap_or_else(|e| panic!("{}: {e}", lock_path.display()));
        lock.split("[[package]]")
            .find_map(|pkg| {
                let field = |f: &str| {
                    pkg.lines()
                        .find_map(|l| l.strip_prefix(f))
                        .map(|v| v.trim().trim_matches('"').to_string())
                };
                (field("name = ").as_deref() == Some(name)).then(|| field("version = "))?
            })
            .unwrap_or_else(|| panic!("{name} is not in {}", lock_path.display()))
    }

    /// The source of the hdfs-sys crate we build (it compiles libhdfs from it):
    /// `$OZBD_HDFS_SYS_SRC`, else the cargo registry.
    fn hdfs_sys_source() -> PathBuf {
        if let Some(p) = std::env::var_os("OZBD_HDFS_SYS_SRC") {
            return PathBuf::from(p);
        }
        let version = locked_version("hdfs-sys");
        let cargo_home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
            .expect("neither CARGO_HOME nor HOME is set");
        let registry = cargo_home.join("registry/src");
        std::fs::read_dir(&registry)
            .into_iter()
            .flatten()
            .flatten()
            .map(|d| d.path().join(format!("hdfs-sys-{version}")))
            .find(|p| p.join("libhdfs").is_dir())
            .unwrap_or_else(|| {
                panic!(
                    "hdfs-sys {version} source not found under {}; set OZBD_HDFS_SYS_SRC to its \
                     directory",
                    registry.display()
                )
            })
    }

    /// `abandon_output_stream` reads the global reference at the start of
    /// libhdfs's private `struct hdfsFile_internal` and frees the handle with
    /// `free`. Compile the C definition from the libhdfs source hdfs-sys builds
    /// and compare it with [`HdfsFileInternal`], and check that hdfs.c still
    /// allocates the handle with calloc, keeps a global reference in `file`, and
    /// frees it with `free`.
    #[test]
    fn handle_layout_matches_libhdfs() {
        // The libhdfs version hdfs-sys compiles follows our feature choice.
        let manifest =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
                .expect("backend/Cargo.toml");
        let dep = manifest
            .lines()
            .find(|l| l.starts_with("hdfs-sys"))
            .expect("hdfs-sys dependency in backend/Cargo.toml");
        assert!(
            dep.contains("\"hdfs_3_3\""),
            "backend/Cargo.toml no longer selects libhdfs hdfs_3_3 ({dep}): point this test at \
             the libhdfs source it selects and re-check HdfsFileInternal"
        );
        let lib = hdfs_sys_source().join("libhdfs/hdfs_3_3");
        let hdfs_c = std::fs::read_to_string(lib.join("hdfs.c"))
            .unwrap_or_else(|e| panic!("{}: {e}", lib.join("hdfs.c").display()));
        for needle in [
            "calloc(1, sizeof(struct hdfsFile_internal))",
            "file->file = (*env)->NewGlobalRef(env, jFile);",
            "(*env)->DeleteGlobalRef(env, file->file);\n    free(file);",
        ] {
            assert!(
                hdfs_c.contains(needle),
                "{}: libhdfs no longer does `{needle}`; re-check abandon_output_stream",
                lib.join("hdfs.c").display()
            );
        }
        let program = format!(
            "#include <stddef.h>\n#include <stdio.h>\n#include \"hdfs/hdfs.h\"\n{}\n{}\n\
             int main(void) {{\n\
             printf(\"%zu %zu %zu %zu %zu %zu %d\\n\", sizeof(struct hdfsFile_internal),\n\
             _Alignof(struct hdfsFile_internal), sizeof(*(hdfsFile)0),\n\
             offsetof(struct hdfsFile_internal, file), offsetof(struct hdfsFile_internal, type),\n\
             offsetof(struct hdfsFile_internal, flags), (int)HDFS_STREAM_OUTPUT);\n\
             return 0;\n}}\n",
            c_block(&hdfs_c, "enum hdfsStreamType"),
            c_block(&hdfs_c, "struct hdfsFile_internal {"),
        );
        let dir = std::env::temp_dir().join(format!("ozbd-hdfsfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (src, exe) = (dir.join("layout.c"), dir.join("layout"));
        std::fs::write(&src, &program).expect("write layout.c");
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let out = Command::new(&cc)
            .arg("-std=c11")
            .arg("-I")
            .arg(lib.join("include"))
            .arg(&src)
            .arg("-o")
            .arg(&exe)
            .output()
            .unwrap_or_else(|e| panic!("{cc}: {e} (set CC to a C compiler)"));
        assert!(
            out.status.success(),
            "{cc} failed on\n{program}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let run = Command::new(&exe).output().expect("run the layout program");
        let _ = std::fs::remove_dir_all(&dir);
        let got: Vec<usize> = String::from_utf8_lossy(&run.stdout)
            .split_whitespace()
            .map(|v| v.parse().expect("number"))
            .collect();
        let want = vec![
            std::mem::size_of::<HdfsFileInternal>(),
            std::mem::align_of::<HdfsFileInternal>(),
            std::mem::size_of::<HdfsFileInternal>(),
            std::mem::offset_of!(HdfsFileInternal, file),
            std::mem::offset_of!(HdfsFileInternal, stream_type),
            std::mem::offset_of!(HdfsFileInternal, flags),
            2,
        ];
        assert_eq!(
            got, want,
            "libhdfs's struct hdfsFile_internal (C: size, align, sizeof *hdfsFile, offsets of \
             file/type/flags, HDFS_STREAM_OUTPUT) differs from HdfsFileInternal: fix it and \
             abandon_output_stream"
        );
    }
}
