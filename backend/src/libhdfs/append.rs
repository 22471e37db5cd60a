// SPDX-License-Identifier: Apache-2.0
//! Append files over libhdfs: the journal's segments.
//!
//! Owns: creating a file for appending, `hdfsWrite` of appended records,
//! `hdfsHSync` (on Ozone: WriteChunk + PutBlock, Ratis commit, and the length
//! committed to the OM, so a reader opening the file afterwards sees it), and
//! closing or abandoning the stream.
//! Must never: be used by two threads at once, or close a stream after a
//! failed write or hsync (the caller abandons it and writes elsewhere).

use super::error::Snap;
use super::stream::WriteFile;
use super::{c_path, LibhdfsBackend};
use crate::{AppendFile, Result};
use hdfs_sys as ffi;

pub(super) struct LibhdfsAppend<'a> {
    file: WriteFile<'a>,
    path: String,
}

// SAFETY: the handle's stream is a JNI global reference, valid on any thread
// attached to the JVM (libhdfs attaches callers itself); the `AppendFile`
// contract is one thread at a time, so the handle is never used concurrently.
unsafe impl Send for LibhdfsAppend<'_> {}

impl LibhdfsBackend {
    pub(super) fn create_append_file(&self, path: &str) -> Result<LibhdfsAppend<'_>> {
        let c = c_path("create", path)?;
        let file = self.open_write(path, &c)?;
        Ok(LibhdfsAppend {
            file,
            path: path.to_string(),
        })
    }
}

impl AppendFile for LibhdfsAppend<'_> {
    fn append(&mut self, data: &[u8]) -> Result<()> {
        self.file.be.write_all(&self.file, &self.path, data)
    }

    fn hsync(&mut self) -> Result<()> {
        let snap = Snap::take();
        // SAFETY: open output stream, used by this thread only.
        if unsafe { ffi::hdfsHSync(self.file.be.fs, self.file.file) } == 0 {
            snap.ok();
            Ok(())
        } else {
            Err(self.file.be.error("hsync", &self.path, snap.failure()))
        }
    }

    fn close(self: Box<Self>) -> Result<()> {
        let me = *self;
        me.file.close("close", &me.path)
    }
}
