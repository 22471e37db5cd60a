// SPDX-License-Identifier: Apache-2.0
//! The journal seal: how much of each segment counts.
//!
//! Owns: `<journal>/seal.json`, the length of every segment as the last
//! writable open read it after its fencing move. A fenced former holder can
//! still hsync onto a segment it had open (Ozone accepts hsyncs on an open
//! file whose directory was renamed), so bytes past the sealed length are
//! its unacknowledged writes from after the takeover: replay ignores them.
//! Must never: grow a sealed length, or keep an entry for a segment that no
//! longer exists (segment numbers restart only at an open, which rewrites
//! the seal first).

use std::collections::BTreeMap;

use ozbd_backend::{join, Backend, BackendError};

use crate::error::{Error, Result};

pub(crate) const SEAL_NAME: &str = "seal.json";

/// The sealed lengths, by segment number; empty when there is no seal.
pub(crate) fn read(backend: &dyn Backend, dir: &str) -> Result<BTreeMap<u64, u64>> {
    let path = join(dir, SEAL_NAME);
    if backend.stat(&path)?.is_none() {
        return Ok(BTreeMap::new());
    }
    let bytes = match super::segment::read_all(backend, &path, 4096) {
        Ok(b) => b,
        Err(Error::Backend(BackendError::NotFound { .. })) => return Ok(BTreeMap::new()),
        Err(e) => return Err(e),
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::Corrupt(format!(
            "{path}: the journal seal is damaged ({e}): the volume is not opened, since replay cannot tell the holder's records from a fenced one's"
        ))
    })
}

/// Record `lengths` (every segment that exists now) as the seal.
pub(crate) fn write(backend: &dyn Backend, dir: &str, lengths: &BTreeMap<u64, u64>) -> Result<()> {
    let bytes =
        serde_json::to_vec(lengths).map_err(|e| Error::Internal(format!("seal encoding: {e}")))?;
    backend.mkdirs(dir)?;
    backend.put(&join(dir, SEAL_NAME), &bytes)?;
    Ok(())
}
