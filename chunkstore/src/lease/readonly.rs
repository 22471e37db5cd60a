// SPDX-License-Identifier: Apache-2.0
//! Read-only opens: a backend wrapper that refuses every change.
//!
//! Owns: `ReadOnlyBackend`, through which a read-only open does all its I/O,
//! so that "a read-only open never writes" holds by construction, not by
//! every caller remembering it. Such an open takes no lease and fences no one.
//! Must never: pass a put, delete, rename, mkdirs or append to the backend.

use ozbd_backend::{
    AppendFile, Backend, BackendError, BackendRef, ClientSetting, FileInfo, ReadHandle, Result,
};

#[derive(Debug)]
pub(crate) struct ReadOnlyBackend(pub(crate) BackendRef);

fn refused(op: &'static str, path: &str) -> BackendError {
    BackendError::io(
        op,
        path,
        30, // EROFS
        "the volume is open read-only: reopen it writable (this takes the writer lease)",
    )
}

impl Backend for ReadOnlyBackend {
    fn read_at(&self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.0.read_at(path, offset, buf)
    }
    fn put(&self, path: &str, _: &[u8]) -> Result<()> {
        Err(refused("put", path))
    }
    fn put_in_dir(&self, path: &str, _: &[u8]) -> Result<bool> {
        Err(refused("put", path))
    }
    fn delete(&self, path: &str, _: bool) -> Result<bool> {
        Err(refused("delete", path))
    }
    fn rename(&self, src: &str, _: &str) -> Result<()> {
        Err(refused("rename", src))
    }
    fn mkdirs(&self, path: &str) -> Result<()> {
        Err(refused("mkdirs", path))
    }
    fn stat(&self, path: &str) -> Result<Option<FileInfo>> {
        self.0.stat(path)
    }
    fn list(&self, dir: &str) -> Result<Vec<FileInfo>> {
        self.0.list(dir)
    }
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn bucket_layout(&self, volume: &str, bucket: &str) -> Result<Option<String>> {
        self.0.bucket_layout(volume, bucket)
    }
    fn create_append(&self, path: &str) -> Result<Box<dyn AppendFile + '_>> {
        Err(refused("create", path))
    }
    fn client_settings(&self) -> Vec<ClientSetting> {
        self.0.client_settings()
    }
    fn open_read(&self, path: &str) -> Result<Option<Box<dyn ReadHandle + '_>>> {
        self.0.open_read(path)
    }
}
