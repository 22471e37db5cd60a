// SPDX-License-Identifier: Apache-2.0
//! Journal segment files: naming, listing, reading, and starting a new one.
//!
//! Owns: `<volume>/journal/<016x segment number>`, the segment header record
//! every segment starts with, and the check made on the first segment of an
//! open that hsync really publishes (without Ozone's hsync keys it silently
//! degrades to flush, and a reader would see nothing).
//! Must never: reuse a segment number, or append to a segment found at open.

use ozbd_backend::{join, AppendFile, Backend, BackendError};

use super::record::{self, Header, Kind};
use crate::error::{Error, Result};

pub(crate) const JOURNAL_DIR: &str = "journal";

pub(crate) fn seg_name(n: u64) -> String {
    format!("{n:016x}")
}

pub(crate) fn parse_seg_name(name: &str) -> Option<u64> {
    (name.len() == 16)
        .then(|| u64::from_str_radix(name, 16).ok())
        .flatten()
}

/// The segments in `dir`, by number; an absent directory has none.
pub(crate) fn list(backend: &dyn Backend, dir: &str) -> Result<Vec<(u64, u64)>> {
    let entries = match backend.list(dir) {
        Ok(e) => e,
        Err(BackendError::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for e in entries {
        match parse_seg_name(&e.name) {
            Some(n) if !e.is_dir => out.push((n, e.len)),
            None if e.name == super::seal::SEAL_NAME => {}
            _ => log::warn!("{dir}: ignoring unexpected entry '{}'", e.name),
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The whole (hsynced) content of a segment.
pub(crate) fn read_all(backend: &dyn Backend, path: &str, len_hint: u64) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; (len_hint as usize).max(1 << 16)];
    let mut at = 0;
    loop {
        if at == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let n = backend.read_at(path, at as u64, &mut buf[at..])?;
        if n == 0 {
            break;
        }
        at += n;
    }
    buf.truncate(at);
    Ok(buf)
}

/// Create segment `n` in `dir` and make its header durable. With `probe`,
/// check that a reader sees the hsynced header; when it does not, delete the
/// segment and say why (hsync is not available on this bucket or client).
pub(crate) fn create<'a>(
    backend: &'a dyn Backend,
    dir: &str,
    n: u64,
    uuid: &uuid::Uuid,
    epoch: u64,
    probe: bool,
) -> Result<(Box<dyn AppendFile + 'a>, u64)> {
    let path = join(dir, &seg_name(n));
    let payload = record::segment_header_payload(uuid, epoch);
    let mut buf = Vec::new();
    record::encode(
        &mut buf,
        &Header {
            kind: Kind::SegmentHeader,
            payload_len: payload.len() as u32,
            seq: 0,
            offset: 0,
            len: 0,
            aux: n,
        },
        &payload,
    );
    let mut f = backend.create_append(&path)?;
    f.append(&buf)?;
    f.hsync()?;
    if probe {
        let seen = backend.stat(&path)?.map_or(0, |i| i.len);
        if seen != buf.len() as u64 {
            drop(f);
            let _ = backend.delete(&path, false);
            return Err(Error::Backend(BackendError::Unsupported {
                path,
                msg: format!(
                    "hsync does not publish on {}: a reader saw {seen} of {} hsynced bytes. The journal needs Ozone's hsync: ozone.hbase.enhancements.allowed=true and ozone.fs.hsync.enabled=true on the OM, the same two client keys (the engine sets them unless your ozone-site.xml turns them off), and a RATIS/THREE bucket",
                    backend.describe(),
                    buf.len()
                ),
            }));
        }
    }
    Ok((f, buf.len() as u64))
}
