// SPDX-License-Identifier: Apache-2.0
//! Positional reads of an open libhdfs file, and the `ReadHandle` that keeps
//! one open for many reads (`Backend::open_read`).
//!
//! Owns: the positional read loop (pieces of at most `READ_PIECE`, each by
//! `pread::pread` and, when that declines, by `hdfsPread`; EINTR retried a
//! few times, short only at end of file) and `Reader`, an open input stream
//! with its path, closed on drop.
//! Must never: let two threads use one `hdfsFile` at once (Ozone's positional
//! read seeks and seeks back without a lock: `Reader` is `!Sync` and every
//! read takes `&mut self`), or outlive the backend whose `FileSystem` opened
//! it (the handle borrows it).

use std::os::raw::c_void;
use std::sync::atomic::Ordering;

use hdfs_sys as ffi;

use super::error::Snap;
use super::pread;
use super::stream::ReadFile;
use super::{c_path, LibhdfsBackend};
use crate::{BackendError, ReadHandle, Result};

/// Largest piece asked of one hdfsPread (Ozone reads straight into our buffer).
const READ_PIECE: usize = 8 << 20;

/// An input stream kept open for positional reads by one thread at a time.
pub(super) struct Reader<'a> {
    file: ReadFile<'a>,
    be: &'a LibhdfsBackend,
    path: String,
}

// SAFETY: `file` is a JNI global reference (libhdfs makes one per open file)
// and `be` is Sync; libhdfs attaches whichever thread calls it. `Reader` is
// still !Sync and every read takes `&mut self`, so one thread at a time.
unsafe impl Send for Reader<'_> {}

impl ReadHandle for Reader<'_> {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.be.pread_all(&self.file, &self.path, offset, buf)
    }
}

impl LibhdfsBackend {
    /// Open `path` for reading (`hdfsOpenFile(O_RDONLY)`).
    pub(super) fn open_reader(&self, path: &str) -> Result<Reader<'_>> {
        let c = c_path("open", path)?;
        Ok(Reader {
            file: self.open_input(path, &c)?,
            be: self,
            path: path.to_string(),
        })
    }

    /// Fill `buf` from `offset` of the open file `f`; short only at end of file.
    pub(super) fn pread_all(
        &self,
        f: &ReadFile<'_>,
        path: &str,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize> {
        let mut done = 0usize;
        let mut empty_reads = 0;
        while done < buf.len() {
            let pos = offset
                .checked_add(done as u64)
                .filter(|p| *p <= i64::MAX as u64)
                .ok_or_else(|| BackendError::io("read", path, libc::EINVAL, "offset too large"))?;
            let want = (buf.len() - done).min(READ_PIECE);
            // SAFETY: as for hdfsPread below.
            match unsafe { pread::pread(f.file, pos as i64, &mut buf[done..done + want]) } {
                Some((0, _)) => break, // end of file
                Some((n, via)) => {
                    done += n;
                    empty_reads = 0;
                    let count = match via {
                        pread::Via::Direct => &self.direct_reads,
                        pread::Via::Array => &self.array_reads,
                    };
                    count.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                None => {} // hdfsPread repeats it, and reports any error
            }
            let snap = Snap::take();
            // SAFETY: open input stream used by this thread only (`ReadFile`
            // of one call, or a `Reader` borrowed mutably); the destination
            // is the unfilled part of `buf`, `want` bytes long.
            let n = unsafe {
                ffi::hdfsPread(
                    self.fs,
                    f.file,
                    pos as i64,
                    buf[done..].as_mut_ptr() as *mut c_void,
                    want as i32,
                )
            };
            if n > 0 {
                snap.ok();
                done += n as usize;
                empty_reads = 0;
            } else if n == 0 {
                snap.ok();
                break; // end of file
            } else {
                let fail = snap.failure();
                // EINTR: the stream returned 0 bytes; try again a few times.
                if fail.errno == libc::EINTR && empty_reads < 3 {
                    empty_reads += 1;
                    continue;
                }
                return Err(self.error("read", path, fail));
            }
        }
        Ok(done)
    }
}
