// SPDX-License-Identifier: Apache-2.0
//! Fault-injecting wrapper around any backend, for tests.
//!
//! Owns: deciding, per call, whether to fail it before it reaches the inner
//! backend (so a failed call changes nothing), and counting calls.
//! Must never: fail a call after it changed the inner backend; a test relying on
//! "failed means unchanged" would then be testing a lie.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::{AppendFile, Backend, BackendError, ClientSetting, FileInfo, ReadHandle, Result};

/// Which calls a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Read,
    Put,
    Delete,
    Mkdirs,
    Stat,
    List,
    /// Creating an append file, and appending to it.
    Append,
    /// `hsync` of an append file.
    Hsync,
    /// Opening a read handle (`open_read`); reads through the handle are `Read`.
    Open,
    Rename,
}

#[derive(Debug)]
struct State {
    /// Probability (0..=1) that a matching call fails.
    probability: f64,
    kinds: Vec<OpKind>,
    /// Fail exactly these (1-based) call numbers, counted over matching calls.
    fail_nth: Vec<u64>,
    matched: u64,
    /// When set, only calls on paths containing this string match.
    path_filter: Option<String>,
    rng: u64,
    injected: u64,
}

/// Wraps a backend and fails chosen calls with EIO, deterministically from a seed.
#[derive(Debug)]
pub struct FaultBackend {
    inner: Arc<dyn Backend>,
    state: Mutex<State>,
    calls: AtomicU64,
}

impl FaultBackend {
    pub fn new(inner: Arc<dyn Backend>, seed: u64) -> Self {
        FaultBackend {
            inner,
            state: Mutex::new(State {
                probability: 0.0,
                kinds: Vec::new(),
                fail_nth: Vec::new(),
                matched: 0,
                path_filter: None,
                rng: seed | 1,
                injected: 0,
            }),
            calls: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fail matching calls of these kinds with the given probability.
    pub fn set_failure_rate(&self, kinds: &[OpKind], probability: f64) {
        let mut s = self.lock();
        s.kinds = kinds.to_vec();
        s.probability = probability;
    }

    /// Fail exactly the n-th (1-based) matching calls of these kinds from now on.
    pub fn fail_calls(&self, kinds: &[OpKind], nth: &[u64]) {
        let mut s = self.lock();
        s.kinds = kinds.to_vec();
        s.fail_nth = nth.to_vec();
        s.matched = 0;
    }

    /// Restrict the rules to calls on paths that contain `part` (None: all paths).
    pub fn only_paths_containing(&self, part: Option<&str>) {
        self.lock().path_filter = part.map(str::to_string);
    }

    /// Stop injecting faults.
    pub fn heal(&self) {
        let mut s = self.lock();
        s.probability = 0.0;
        s.fail_nth.clear();
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> u64 {
        self.lock().injected
    }

    /// How many calls reached this wrapper.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn check(&self, kind: OpKind, op: &'static str, path: &str) -> Result<()> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mut s = self.lock();
        if !s.kinds.contains(&kind) || s.path_filter.as_deref().is_some_and(|p| !path.contains(p)) {
            return Ok(());
        }
        s.matched += 1;
        // xorshift64*: deterministic per seed and call order.
        let mut x = s.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.rng = x;
        let r = (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
        let matched = s.matched;
        if s.fail_nth.contains(&matched) || r < s.probability {
            s.injected += 1;
            return Err(BackendError::io(op, path, 5, "injected fault"));
        }
        Ok(())
    }
}

/// An append file whose appends and hsyncs may fail (before reaching the inner file).
struct FaultAppend<'a> {
    be: &'a FaultBackend,
    inner: Box<dyn AppendFile + 'a>,
    path: String,
}

impl AppendFile for FaultAppend<'_> {
    fn append(&mut self, data: &[u8]) -> Result<()> {
        self.be.check(OpKind::Append, "append", &self.path)?;
        self.inner.append(data)
    }

    fn hsync(&mut self) -> Result<()> {
        self.be.check(OpKind::Hsync, "hsync", &self.path)?;
        self.inner.hsync()
    }

    fn close(self: Box<Self>) -> Result<()> {
        self.inner.close()
    }
}

impl Backend for FaultBackend {
    fn create_append(&self, path: &str) -> Result<Box<dyn AppendFile + '_>> {
        self.check(OpKind::Append, "create", path)?;
        Ok(Box::new(FaultAppend {
            be: self,
            inner: self.inner.create_append(path)?,
            path: path.to_string(),
        }))
    }

    fn read_at(&self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.check(OpKind::Read, "read", path)?;
        self.inner.read_at(path, offset, buf)
    }
    fn put(&self, path: &str, data: &[u8]) -> Result<()> {
        self.check(OpKind::Put, "put", path)?;
        self.inner.put(path, data)
    }
    fn put_in_dir(&self, path: &str, data: &[u8]) -> Result<bool> {
        self.check(OpKind::Put, "put", path)?;
        self.inner.put_in_dir(path, data)
    }
    fn delete(&self, path: &str, recursive: bool) -> Result<bool> {
        self.check(OpKind::Delete, "delete", path)?;
        self.inner.delete(path, recursive)
    }
    fn rename(&self, src: &str, dst: &str) -> Result<()> {
        self.check(OpKind::Rename, "rename", src)?;
        self.inner.rename(src, dst)
    }

    fn mkdirs(&self, path: &str) -> Result<()> {
        self.check(OpKind::Mkdirs, "mkdirs", path)?;
        self.inner.mkdirs(path)
    }
    fn stat(&self, path: &str) -> Result<Option<FileInfo>> {
        self.check(OpKind::Stat, "stat", path)?;
        self.inner.stat(path)
    }
    fn list(&self, dir: &str) -> Result<Vec<FileInfo>> {
        self.check(OpKind::List, "list", dir)?;
        self.inner.list(dir)
    }
    fn bucket_layout(&self, volume: &str, bucket: &str) -> Result<Option<String>> {
        self.check(
            OpKind::Stat,
            "bucket_layout",
            &format!("/{volume}/{bucket}"),
        )?;
        self.inner.bucket_layout(volume, bucket)
    }
    fn describe(&self) -> String {
        format!("fault({})", self.inner.describe())
    }
    fn client_settings(&self) -> Vec<ClientSetting> {
        self.inner.client_settings()
    }
    fn open_read(&self, path: &str) -> Result<Option<Box<dyn ReadHandle + '_>>> {
        self.check(OpKind::Open, "open", path)?;
        Ok(self.inner.open_read(path)?.map(|inner| {
            Box::new(FaultReader {
                be: self,
                path: path.to_string(),
                inner,
            }) as Box<dyn ReadHandle + '_>
        }))
    }
}

/// A read handle whose reads may fail like `read_at` calls (kind `Read`).
struct FaultReader<'a> {
    be: &'a FaultBackend,
    path: String,
    inner: Box<dyn ReadHandle + 'a>,
}

impl ReadHandle for FaultReader<'_> {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.be.check(OpKind::Read, "read", &self.path)?;
        self.inner.read_at(offset, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryBackend;

    #[test]
    fn failed_put_changes_nothing() {
        let mem = Arc::new(MemoryBackend::new());
        let f = FaultBackend::new(mem.clone(), 7);
        f.put("/a", b"old").unwrap();
        f.fail_calls(&[OpKind::Put], &[1]);
        assert!(f.put("/a", b"new").is_err());
        let mut buf = [0u8; 3];
        f.read_at("/a", 0, &mut buf).unwrap();
        assert_eq!(&buf, b"old");
        f.put("/a", b"new").unwrap();
        f.read_at("/a", 0, &mut buf).unwrap();
        assert_eq!(&buf, b"new");
        assert_eq!(f.injected(), 1);
    }

    #[test]
    fn faults_reach_open_and_reads_through_a_handle() {
        let f = FaultBackend::new(Arc::new(MemoryBackend::new()), 3);
        f.put("/a", b"data").unwrap();
        f.fail_calls(&[OpKind::Open], &[1]);
        assert!(f.open_read("/a").is_err());
        let mut h = f.open_read("/a").unwrap().unwrap();
        f.fail_calls(&[OpKind::Read], &[2]);
        let mut buf = [0u8; 4];
        assert_eq!(h.read_at(0, &mut buf).unwrap(), 4);
        assert!(h.read_at(0, &mut buf).is_err());
        assert_eq!(h.read_at(2, &mut buf).unwrap(), 2);
        assert_eq!(f.injected(), 2);
    }

    #[derive(Debug)]
    struct WithSettings(MemoryBackend);

    impl Backend for WithSettings {
        fn read_at(&self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize> {
            self.0.read_at(path, offset, buf)
        }
        fn put(&self, path: &str, data: &[u8]) -> Result<()> {
            self.0.put(path, data)
        }
        fn delete(&self, path: &str, recursive: bool) -> Result<bool> {
            self.0.delete(path, recursive)
        }
        fn mkdirs(&self, path: &str) -> Result<()> {
            self.0.mkdirs(path)
        }
        fn stat(&self, path: &str) -> Result<Option<FileInfo>> {
            self.0.stat(path)
        }
        fn list(&self, dir: &str) -> Result<Vec<FileInfo>> {
            self.0.list(dir)
        }
        fn describe(&self) -> String {
            "with-settings".into()
        }
        fn client_settings(&self) -> Vec<ClientSetting> {
            vec![ClientSetting {
                key: "k".into(),
                value: Some("v".into()),
                source: "engine default".into(),
            }]
        }
    }

    #[test]
    fn client_settings_are_forwarded() {
        let inner = Arc::new(WithSettings(MemoryBackend::new()));
        let f = FaultBackend::new(inner.clone(), 1);
        f.set_failure_rate(&[OpKind::Read, OpKind::Put, OpKind::Stat], 1.0);
        assert_eq!(f.client_settings(), inner.client_settings());
        assert_eq!(f.injected(), 0, "client_settings is not an I/O call");
        assert!(MemoryBackend::new().client_settings().is_empty());
    }
}
