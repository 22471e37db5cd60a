// SPDX-License-Identifier: Apache-2.0
//! Connecting to the backend a volume URI names.
//!
//! Owns: choosing the backend for a scheme (libhdfs for ofs:// and file://, the
//! process-wide memory registry for mem://), bounding the time a connect may
//! take, so an unreachable Ozone Manager gives an error instead of a hang, and
//! handing the engine's Ozone client defaults (defaults.rs) to the connection:
//! each applies unless the user's ozone-site.xml or core-site.xml sets the key.
//! Must never: read the user's environment beyond what libhdfs itself reads, or
//! override a client key the user's configuration files set.

use std::collections::HashMap;
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::Duration;

use ozbd_backend::memory::MemoryBackend;
use ozbd_backend::BackendRef;

use crate::defaults::{DEFAULT_CONNECT_TIMEOUT, OZONE_CLIENT_DEFAULTS};
use crate::error::{Error, Result};
use crate::uri::{Scheme, VolumeUri};

#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Give up connecting after this long.
    pub timeout: Duration,
    /// Ozone replication factor for chunk files (3 = RATIS/THREE).
    pub replication: i16,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            timeout: DEFAULT_CONNECT_TIMEOUT,
            replication: 3,
        }
    }
}

fn memory_registry() -> &'static Mutex<HashMap<String, BackendRef>> {
    static REG: OnceLock<Mutex<HashMap<String, BackendRef>>> = OnceLock::new();
    REG.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Run `f` on its own thread and give up waiting after `timeout`. A call that
/// times out is left to finish (or hang) in the background.
pub fn with_deadline<T: Send + 'static>(
    what: String,
    timeout: Duration,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("ozbd-connect".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| Error::Timeout(format!("{what}: cannot start a thread: {e}")))?;
    match rx.recv_timeout(timeout) {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout(format!(
            "{what}: no answer within {} s: is the Ozone Manager running and reachable? (`scripts/ozone-local status`)",
            timeout.as_secs()
        ))),
    }
}

/// Check, without starting anything, that this process can reach the
/// backend `uri` needs: for `ofs://` and `file://`, a libhdfs build and a
/// CLASSPATH. For front ends that refuse bad configuration before they fork
/// or register anything; `connect` still makes the full checks.
pub fn check_environment(uri: &VolumeUri) -> Result<()> {
    match uri.scheme {
        Scheme::Mem => Ok(()),
        Scheme::File | Scheme::Ofs => {
            if !cfg!(feature = "libhdfs") {
                return Err(Error::InvalidArgument(format!(
                    "{}: this build has no libhdfs backend (feature `libhdfs`); rebuild with it",
                    uri.canonical()
                )));
            }
            let cp = std::env::var("CLASSPATH").unwrap_or_default();
            if cp.trim().is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "CLASSPATH is not set: {} needs the Hadoop/Ozone client jars and the client configuration directory in it (with the local cluster: eval \"$(scripts/ozone-local env)\")",
                    uri.canonical()
                )));
            }
            Ok(())
        }
    }
}

/// Connect to the filesystem holding `uri`.
pub fn connect(uri: &VolumeUri, opts: &ConnectOptions) -> Result<BackendRef> {
    match uri.scheme {
        Scheme::Mem => {
            let mut reg = memory_registry().lock().unwrap_or_else(|e| e.into_inner());
            Ok(reg
                .entry(uri.fs_uri.clone())
                .or_insert_with(|| Arc::new(MemoryBackend::new()))
                .clone())
        }
        Scheme::File | Scheme::Ofs => connect_libhdfs(uri, opts),
    }
}

#[cfg(feature = "libhdfs")]
fn connect_libhdfs(uri: &VolumeUri, opts: &ConnectOptions) -> Result<BackendRef> {
    use ozbd_backend::libhdfs::{LibhdfsBackend, LibhdfsOptions};
    use ozbd_backend::Backend;
    let fs_uri = uri.fs_uri.clone();
    let lopts = LibhdfsOptions {
        replication: opts.replication,
        defaults: if uri.scheme == Scheme::Ofs {
            OZONE_CLIENT_DEFAULTS
                .iter()
                .map(|d| (d.key.to_string(), d.value.to_string()))
                .collect()
        } else {
            Vec::new()
        },
        ..LibhdfsOptions::default()
    };
    with_deadline(format!("connecting to {fs_uri}"), opts.timeout, move || {
        let b = LibhdfsBackend::connect(&fs_uri, &lopts)?;
        // Touch the root so an unreachable server shows up now, not at first I/O.
        b.stat("/")?;
        Ok(Arc::new(b) as BackendRef)
    })
}

#[cfg(not(feature = "libhdfs"))]
fn connect_libhdfs(uri: &VolumeUri, _opts: &ConnectOptions) -> Result<BackendRef> {
    Err(Error::InvalidArgument(format!(
        "{}: this build has no libhdfs backend (feature `libhdfs`); rebuild with it",
        uri.canonical()
    )))
}
