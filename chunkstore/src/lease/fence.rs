// SPDX-License-Identifier: Apache-2.0
//! The fence check: a backend wrapper that proves, after every change it
//! makes, that this holder still owns the volume.
//!
//! Owns: `FencedBackend`, which passes every call through and then checks
//! the epoch's marker (layout.rs) after each put, delete, rename, mkdirs and
//! hsync, and after any answer that a file is absent; except after a
//! `put_in_dir` the backend fenced itself (Ok(true): no directory created,
//! committed only while the directory's path resolved). The OM orders the
//! marker check after the change: if the marker is still there, the change
//! happened before any later opener's fencing move, so that opener sees it.
//! Once the marker is gone the wrapper fails every call with `Fenced`, for
//! good: the volume must be reopened.
//! Must never: report success for a change it could not confirm, or let a
//! "not found" answer through unconfirmed (a fenced holder would read zeros).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ozbd_backend::{
    AppendFile, Backend, BackendError, BackendRef, ClientSetting, FileInfo, ReadHandle, Result,
};

#[derive(Debug)]
pub(crate) struct FencedBackend {
    inner: BackendRef,
    marker: String,
    epoch: u64,
    fenced: AtomicBool,
}

impl FencedBackend {
    pub(crate) fn new(inner: BackendRef, marker: String, epoch: u64) -> Arc<FencedBackend> {
        Arc::new(FencedBackend {
            inner,
            marker,
            epoch,
            fenced: AtomicBool::new(false),
        })
    }

    fn fenced_error(&self, path: &str) -> BackendError {
        BackendError::Fenced {
            path: path.to_string(),
            msg: format!(
                "this process lost the volume (writer epoch {}): another opener took it over, so nothing more is read or written here; close it and find the new holder with `ozbd info`",
                self.epoch
            ),
        }
    }

    fn precheck(&self, path: &str) -> Result<()> {
        if self.fenced.load(Ordering::Acquire) {
            return Err(self.fenced_error(path));
        }
        Ok(())
    }

    /// Prove the marker is still there (the OM orders this after the call it follows).
    fn confirm(&self, path: &str) -> Result<()> {
        self.precheck(path)?;
        if self.inner.stat(&self.marker)?.is_some() {
            return Ok(());
        }
        if !self.fenced.swap(true, Ordering::AcqRel) {
            log::error!(
                "{}: the fence marker is gone: another opener took over the volume; every request fails from now on (ESTALE)",
                self.marker
            );
        }
        Err(self.fenced_error(path))
    }

    /// After a change: confirm a success; on a failure, say "fenced" when
    /// that is why (a vanished path fails in many ways), else the failure.
    fn after<T>(&self, path: &str, r: Result<T>) -> Result<T> {
        match r {
            Ok(v) => self.confirm(path).map(|()| v),
            Err(e) => match self.confirm(path) {
                Err(f @ BackendError::Fenced { .. }) => Err(f),
                _ => Err(e),
            },
        }
    }
}

struct FencedAppend<'a> {
    be: &'a FencedBackend,
    inner: Box<dyn AppendFile + 'a>,
    path: String,
}

impl AppendFile for FencedAppend<'_> {
    fn append(&mut self, data: &[u8]) -> Result<()> {
        self.be.precheck(&self.path)?;
        self.inner.append(data)
    }
    fn hsync(&mut self) -> Result<()> {
        self.be.precheck(&self.path)?;
        let r = self.inner.hsync();
        self.be.after(&self.path, r)
    }
    fn close(self: Box<Self>) -> Result<()> {
        let be = self.be;
        let path = self.path.clone();
        be.precheck(&path)?;
        let r = self.inner.close();
        be.after(&path, r)
    }
}

impl Backend for FencedBackend {
    fn read_at(&self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.precheck(path)?;
        match self.inner.read_at(path, offset, buf) {
            Err(e @ BackendError::NotFound { .. }) => self.confirm(path).and(Err(e)),
            r => r,
        }
    }
    fn put(&self, path: &str, data: &[u8]) -> Result<()> {
        self.precheck(path)?;
        let r = self.inner.put(path, data);
        self.after(path, r)
    }
    /// No marker check after a put the backend fenced itself: it created no
    /// directory and committed only while the file's directory still had its
    /// path, so it landed before any later fencing rename of the root, where
    /// the next holder finds it. A failure, or a plain put, is confirmed as
    /// usual.
    fn put_in_dir(&self, path: &str, data: &[u8]) -> Result<bool> {
        self.precheck(path)?;
        match self.inner.put_in_dir(path, data) {
            Ok(true) => Ok(true),
            r => self.after(path, r),
        }
    }
    fn delete(&self, path: &str, recursive: bool) -> Result<bool> {
        self.precheck(path)?;
        let r = self.inner.delete(path, recursive);
        self.after(path, r)
    }
    fn rename(&self, src: &str, dst: &str) -> Result<()> {
        self.precheck(src)?;
        let r = self.inner.rename(src, dst);
        self.after(src, r)
    }
    fn mkdirs(&self, path: &str) -> Result<()> {
        self.precheck(path)?;
        let r = self.inner.mkdirs(path);
        self.after(path, r)
    }
    fn stat(&self, path: &str) -> Result<Option<FileInfo>> {
        self.precheck(path)?;
        match self.inner.stat(path)? {
            None => self.confirm(path).map(|()| None),
            some => Ok(some),
        }
    }
    fn list(&self, dir: &str) -> Result<Vec<FileInfo>> {
        self.precheck(dir)?;
        match self.inner.list(dir) {
            Err(e @ BackendError::NotFound { .. }) => self.confirm(dir).and(Err(e)),
            r => r,
        }
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn bucket_layout(&self, volume: &str, bucket: &str) -> Result<Option<String>> {
        self.inner.bucket_layout(volume, bucket)
    }
    fn create_append(&self, path: &str) -> Result<Box<dyn AppendFile + '_>> {
        self.precheck(path)?;
        let f = self.inner.create_append(path)?;
        Ok(Box::new(FencedAppend {
            be: self,
            inner: f,
            path: path.to_string(),
        }))
    }
    fn client_settings(&self) -> Vec<ClientSetting> {
        self.inner.client_settings()
    }
    fn open_read(&self, path: &str) -> Result<Option<Box<dyn ReadHandle + '_>>> {
        self.precheck(path)?;
        match self.inner.open_read(path) {
            Err(e @ BackendError::NotFound { .. }) => self.confirm(path).and(Err(e)),
            r => r,
        }
    }
}
