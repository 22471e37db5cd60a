// SPDX-License-Identifier: Apache-2.0
//! In-memory backend for unit tests and model checks.
//!
//! Owns: a map from path to file content, with the same all-or-nothing `put`
//! contract as the real backends (the new content replaces the old in one step).
//! Must never: be used for data anyone wants to keep; it forgets everything on drop.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::{AppendFile, Backend, BackendError, FileInfo, ReadHandle, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir,
    /// Shared with open read handles, which keep the version they opened.
    File(Arc<Vec<u8>>),
}

/// A thread-safe in-memory filesystem.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    nodes: Mutex<BTreeMap<String, Node>>,
    /// Modification times (ms since the epoch) of files written by `put`.
    mtimes: Mutex<BTreeMap<String, u64>>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn normalize(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_string()
    } else {
        trimmed.to_string()
    }
}

fn parent(path: &str) -> Option<&str> {
    match path.rfind('/') {
        Some(0) if path.len() > 1 => Some("/"),
        Some(0) | None => None,
        Some(i) => Some(&path[..i]),
    }
}

fn name_of(path: &str) -> String {
    path.rsplit('/').next().unwrap_or("").to_string()
}

impl MemoryBackend {
    pub fn new() -> Self {
        let backend = MemoryBackend::default();
        backend.lock().insert("/".to_string(), Node::Dir);
        backend
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Node>> {
        // A panic in another test thread must not cascade into every later call.
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of everything stored right now: what a process that died at
    /// this instant would leave behind (appends count once hsynced); for tests.
    pub fn snapshot(&self) -> MemoryBackend {
        MemoryBackend {
            nodes: Mutex::new(self.lock().clone()),
            mtimes: Mutex::new(self.mtime_map().clone()),
        }
    }

    fn mtime_map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u64>> {
        self.mtimes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn mtime(&self, path: &str) -> u64 {
        self.mtime_map().get(path).copied().unwrap_or(0)
    }

    /// Replace a file's content (for tests that damage files).
    pub fn poke(&self, path: &str, data: Vec<u8>) {
        self.lock()
            .insert(normalize(path), Node::File(Arc::new(data)));
    }

    /// Names and contents of the files under `dir` (for tests).
    pub fn files_under(&self, dir: &str) -> Vec<(String, Vec<u8>)> {
        let prefix = format!("{}/", normalize(dir));
        self.lock()
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .filter_map(|(k, n)| match n {
                Node::File(d) => Some((k.clone(), d.to_vec())),
                Node::Dir => None,
            })
            .collect()
    }

    /// Number of files (not directories) stored; for tests.
    pub fn file_count(&self) -> usize {
        self.lock()
            .values()
            .filter(|n| matches!(n, Node::File(_)))
            .count()
    }
}

fn copy_at(data: &[u8], offset: u64, buf: &mut [u8]) -> usize {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(data.len());
    let n = buf.len().min(data.len() - start);
    buf[..n].copy_from_slice(&data[start..start + n]);
    n
}

/// An open file of the memory backend: the version current at open.
struct MemoryReader(Arc<Vec<u8>>);

impl ReadHandle for MemoryReader {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        Ok(copy_at(&self.0, offset, buf))
    }
}

impl MemoryBackend {
    /// Replace (or create) the file at a normalized `path`, with the nodes locked.
    fn write_file_locked(
        &self,
        nodes: &mut BTreeMap<String, Node>,
        path: String,
        data: &[u8],
    ) -> Result<()> {
        if let Some(Node::Dir) = nodes.get(&path) {
            return Err(BackendError::io("put", &path, 21, "is a directory"));
        }
        self.mtime_map().insert(path.clone(), now_ms());
        nodes.insert(path, Node::File(Arc::new(data.to_vec())));
        Ok(())
    }
}

fn mkdirs_locked(nodes: &mut BTreeMap<String, Node>, path: &str) -> Result<()> {
    let mut cur = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        cur.push('/');
        cur.push_str(part);
        match nodes.get(&cur) {
            Some(Node::Dir) => {}
            Some(Node::File(_)) => {
                return Err(BackendError::io("mkdirs", &cur, 20, "a file is in the way"))
            }
            None => {
                nodes.insert(cur.clone(), Node::Dir);
            }
        }
    }
    Ok(())
}

/// An in-memory file open for appending: appends become part of the file at
/// `hsync` (or `close`); dropped unclosed, the unsynced tail is lost, as it
/// would be when a process dies.
struct MemoryAppend<'a> {
    be: &'a MemoryBackend,
    path: String,
    pending: Vec<u8>,
}

impl AppendFile for MemoryAppend<'_> {
    fn append(&mut self, data: &[u8]) -> Result<()> {
        self.pending.extend_from_slice(data);
        Ok(())
    }

    fn hsync(&mut self) -> Result<()> {
        let mut nodes = self.be.lock();
        match nodes.get_mut(&self.path) {
            Some(Node::File(data)) => {
                Arc::make_mut(data).append(&mut self.pending);
                Ok(())
            }
            _ => Err(BackendError::io(
                "hsync",
                &self.path,
                2,
                "the file was deleted while open",
            )),
        }
    }

    fn close(mut self: Box<Self>) -> Result<()> {
        self.hsync()
    }
}

impl Backend for MemoryBackend {
    fn create_append(&self, path: &str) -> Result<Box<dyn AppendFile + '_>> {
        self.put(path, &[])?;
        Ok(Box::new(MemoryAppend {
            be: self,
            path: normalize(path),
            pending: Vec::new(),
        }))
    }

    fn read_at(&self, path: &str, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let path = normalize(path);
        let nodes = self.lock();
        match nodes.get(&path) {
            Some(Node::File(data)) => Ok(copy_at(data, offset, buf)),
            Some(Node::Dir) => Err(BackendError::io("read", &path, 21, "is a directory")),
            None => Err(BackendError::NotFound { path }),
        }
    }

    /// A handle that keeps the version it opened, like an Ozone input stream
    /// after the key is overwritten.
    fn open_read(&self, path: &str) -> Result<Option<Box<dyn ReadHandle + '_>>> {
        let path = normalize(path);
        match self.lock().get(&path) {
            Some(Node::File(data)) => Ok(Some(Box::new(MemoryReader(data.clone())))),
            Some(Node::Dir) => Err(BackendError::io("open", &path, 21, "is a directory")),
            None => Err(BackendError::NotFound { path }),
        }
    }

    fn put(&self, path: &str, data: &[u8]) -> Result<()> {
        let path = normalize(path);
        let mut nodes = self.lock();
        if let Some(p) = parent(&path) {
            mkdirs_locked(&mut nodes, p)?;
        }
        self.write_file_locked(&mut nodes, path, data)
    }

    /// Checked and written under one lock: the directory exists at the
    /// instant the file commits.
    fn put_in_dir(&self, path: &str, data: &[u8]) -> Result<bool> {
        let path = normalize(path);
        let mut nodes = self.lock();
        if let Some(p) = parent(&path) {
            if p != "/" && !matches!(nodes.get(p), Some(Node::Dir)) {
                return Err(BackendError::NotFound { path: path.clone() });
            }
        }
        self.write_file_locked(&mut nodes, path, data)
            .map(|()| true)
    }

    fn delete(&self, path: &str, recursive: bool) -> Result<bool> {
        let path = normalize(path);
        let mut nodes = self.lock();
        match nodes.get(&path) {
            None => Ok(false),
            Some(Node::File(_)) => {
                nodes.remove(&path);
                Ok(true)
            }
            Some(Node::Dir) => {
                let prefix = format!("{path}/");
                let children: Vec<String> = nodes
                    .range(prefix.clone()..)
                    .take_while(|(k, _)| k.starts_with(&prefix))
                    .map(|(k, _)| k.clone())
                    .collect();
                if !children.is_empty() && !recursive {
                    return Err(BackendError::io("delete", &path, 39, "directory not empty"));
                }
                for c in children {
                    nodes.remove(&c);
                }
                nodes.remove(&path);
                Ok(true)
            }
        }
    }

    fn rename(&self, src: &str, dst: &str) -> Result<()> {
        let (src, dst) = (normalize(src), normalize(dst));
        let mut nodes = self.lock();
        if !nodes.contains_key(&src) {
            return Err(BackendError::NotFound { path: src });
        }
        if nodes.contains_key(&dst) {
            return Err(BackendError::io(
                "rename",
                &src,
                17,
                format!("{dst} already exists"),
            ));
        }
        if dst.starts_with(&format!("{src}/")) {
            return Err(BackendError::io("rename", &src, 22, "into itself"));
        }
        match parent(&dst) {
            Some(p) if matches!(nodes.get(p), Some(Node::Dir)) => {}
            _ => return Err(BackendError::NotFound { path: dst }),
        }
        let prefix = format!("{src}/");
        let moved: Vec<String> = std::iter::once(src.clone())
            .chain(
                nodes
                    .range(prefix.clone()..)
                    .take_while(|(k, _)| k.starts_with(&prefix))
                    .map(|(k, _)| k.clone()),
            )
            .collect();
        let mut mtimes = self.mtime_map();
        for k in moved {
            let to = format!("{dst}{}", &k[src.len()..]);
            if let Some(n) = nodes.remove(&k) {
                nodes.insert(to.clone(), n);
            }
            if let Some(t) = mtimes.remove(&k) {
                mtimes.insert(to, t);
            }
        }
        Ok(())
    }

    fn mkdirs(&self, path: &str) -> Result<()> {
        let path = normalize(path);
        mkdirs_locked(&mut self.lock(), &path)
    }

    fn stat(&self, path: &str) -> Result<Option<FileInfo>> {
        let path = normalize(path);
        let mtime_ms = self.mtime(&path);
        Ok(self.lock().get(&path).map(|n| FileInfo {
            mtime_ms,
            name: name_of(&path),
            len: match n {
                Node::File(d) => d.len() as u64,
                Node::Dir => 0,
            },
            is_dir: matches!(n, Node::Dir),
        }))
    }

    fn list(&self, dir: &str) -> Result<Vec<FileInfo>> {
        let dir = normalize(dir);
        let nodes = self.lock();
        match nodes.get(&dir) {
            None => return Err(BackendError::NotFound { path: dir }),
            Some(Node::File(_)) => {
                return Err(BackendError::io("list", &dir, 20, "not a directory"))
            }
            Some(Node::Dir) => {}
        }
        let prefix = if dir == "/" {
            "/".to_string()
        } else {
            format!("{dir}/")
        };
        Ok(nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| k.len() > prefix.len() && !k[prefix.len()..].contains('/'))
            .map(|(k, n)| FileInfo {
                mtime_ms: self.mtime(k),
                name: name_of(k),
                len: match n {
                    Node::File(d) => d.len() as u64,
                    Node::Dir => 0,
                },
                is_dir: matches!(n, Node::Dir),
            })
            .collect())
    }

    fn describe(&self) -> String {
        "memory://".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_in_dir_creates_no_directory() {
        let b = MemoryBackend::new();
        assert!(matches!(
            b.put_in_dir("/v/d/f", b"x"),
            Err(BackendError::NotFound { .. })
        ));
        assert!(b.stat("/v").unwrap().is_none(), "no directory made");
        b.mkdirs("/v/d").unwrap();
        assert!(b.put_in_dir("/v/d/f", b"xy").unwrap());
        assert_eq!(b.stat("/v/d/f").unwrap().unwrap().len, 2);
        assert!(b.put_in_dir("/top", b"z").unwrap(), "a file at the root");
    }

    #[test]
    fn put_read_list_delete() {
        let b = MemoryBackend::new();
        b.put("/v/b/dir/f1", b"hello").unwrap();
        b.put("/v/b/dir/f2", b"world!").unwrap();
        let mut buf = [0u8; 10];
        assert_eq!(b.read_at("/v/b/dir/f1", 1, &mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], b"ello");
        let mut names: Vec<_> = b
            .list("/v/b/dir")
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect();
        names.sort();
        assert_eq!(names, vec!["f1", "f2"]);
        assert!(b.delete("/v/b/dir/f1", false).unwrap());
        assert!(!b.delete("/v/b/dir/f1", false).unwrap());
        assert!(matches!(
            b.read_at("/v/b/dir/f1", 0, &mut buf),
            Err(BackendError::NotFound { .. })
        ));
        assert!(b.delete("/v/b/dir", false).is_err());
        assert!(b.delete("/v/b/dir", true).unwrap());
        assert_eq!(b.stat("/v/b/dir").unwrap(), None);
        assert!(b.stat("/v/b").unwrap().unwrap().is_dir);
    }

    #[test]
    fn an_open_handle_keeps_the_version_it_opened() {
        let b = MemoryBackend::new();
        b.put("/f", b"old!").unwrap();
        let mut h = b.open_read("/f").unwrap().unwrap();
        b.put("/f", b"new!").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(h.read_at(1, &mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"ld!");
        drop(h);
        let mut h = b.open_read("/f").unwrap().unwrap();
        assert_eq!(h.read_at(0, &mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], b"new!");
        assert!(matches!(
            b.open_read("/nope"),
            Err(BackendError::NotFound { .. })
        ));
    }
}
