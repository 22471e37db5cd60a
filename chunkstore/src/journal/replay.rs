// SPDX-License-Identifier: Apache-2.0
//! Replay at open: rebuild the dirty map from the journal segments.
//!
//! Owns: reading every segment (up to its hsynced length: a segment whose
//! writer died is still open in Ozone, and a reader sees what was hsynced;
//! no lease recovery is needed to read or delete it), verifying each record,
//! cutting a torn tail, applying records above the last checkpoint in
//! sequence order (newest wins; Superseded drops older data), and the
//! summary `ozbd info` shows.
//! Must never: apply a record that fails its checksum, apply anything from a
//! journal with a damaged record in the middle, or read the chunks (replay
//! time is bounded by the journal's size, not the volume's).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use ozbd_backend::{join, Backend};
use serde::Serialize;

use super::dirty::{DirtyMap, Payload, Src};
use super::record::{self, Header, Kind};
use super::segment::{self, seg_name};
use super::Seg;
use crate::error::{Error, Result};

/// What a volume's journal holds, and what replaying it would do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JournalInfo {
    pub segments: usize,
    pub bytes: u64,
    /// Valid records found (headers and checkpoints included).
    pub records: u64,
    /// Records at or above the last checkpoint: replay applies these.
    pub to_apply: u64,
    /// Bytes of volume data those records hold (what the destager will write).
    pub dirty_bytes: u64,
    /// Chunks that data falls in.
    pub chunks: usize,
    /// Bytes cut off as torn tails (writers that died mid-append).
    pub torn_bytes: u64,
    /// The last checkpoint's watermark: records below it are applied.
    pub watermark: u64,
}

pub(crate) struct Replayed {
    pub(crate) map: DirtyMap,
    pub(crate) segs: BTreeMap<u64, Seg>,
    pub(crate) seg_bytes: u64,
    pub(crate) next_segno: u64,
    pub(crate) next_seq: u64,
    pub(crate) watermark: u64,
    pub(crate) touched: HashMap<u64, u64>,
    pub(crate) info: JournalInfo,
    /// The length of every segment as read (after the seal cut it): the
    /// next seal.
    pub(crate) lengths: BTreeMap<u64, u64>,
}

/// Read and verify the journal in `dir`, and rebuild what it says.
pub(crate) fn replay(
    backend: &dyn Backend,
    dir: &str,
    uuid: &uuid::Uuid,
    chunk_size: u64,
    vol_size: u64,
    gauge: &Arc<AtomicU64>,
) -> Result<Replayed> {
    let mut info = JournalInfo::default();
    let mut segs = BTreeMap::new();
    let mut seg_bytes = 0;
    let mut next_segno = 1;
    let mut recs: Vec<(Header, Option<Vec<u8>>)> = Vec::new();
    let mut watermark = 0u64;
    let sealed = super::seal::read(backend, dir)?;
    if let Some((&n, _)) = sealed.last_key_value() {
        next_segno = n + 1;
    }
    let mut lengths = BTreeMap::new();
    for (n, len) in segment::list(backend, dir)? {
        let name = format!("{dir}/{}", seg_name(n));
        let mut data = match segment::read_all(backend, &join(dir, &seg_name(n)), len) {
            Ok(d) => d,
            // Removed since the list: only a read-only look can see this (a
            // holder's destager applied it); a writable open owns the directory.
            Err(Error::Backend(ozbd_backend::BackendError::NotFound { .. })) => {
                log::info!("{name}: removed while replaying (applied by the holder): skipped");
                continue;
            }
            Err(e) => return Err(e),
        };
        if let Some(&cut) = sealed.get(&n).filter(|&&l| l < data.len() as u64) {
            log::warn!(
                "{name}: ignoring {} bytes past the seal ({cut}): appended by a holder after it was fenced, never acknowledged",
                data.len() as u64 - cut
            );
            data.truncate(cut as usize);
        }
        lengths.insert(n, data.len() as u64);
        next_segno = next_segno.max(n + 1);
        info.segments += 1;
        info.bytes += data.len() as u64;
        seg_bytes += data.len() as u64;
        let parsed = record::parse_segment(&name, &data)?;
        if parsed.torn_bytes > 0 {
            log::info!(
                "{name}: cut a torn tail of {} bytes (a writer died before its hsync returned; nothing acknowledged is lost)",
                parsed.torn_bytes
            );
        }
        info.torn_bytes += parsed.torn_bytes as u64;
        let mut max_seq = 0;
        for (i, (h, s, e)) in parsed.records.iter().enumerate() {
            info.records += 1;
            if i == 0 {
                if h.kind != Kind::SegmentHeader || h.aux != n {
                    return Err(Error::Corrupt(format!(
                        "{name}: does not start with its segment header (found a {:?} record for segment {}): the journal is corrupt, so the volume is not opened",
                        h.kind, h.aux
                    )));
                }
                record::check_segment_header(&name, &data[*s..*e], uuid)?;
                continue;
            }
            match h.kind {
                Kind::SegmentHeader => {
                    return Err(Error::Corrupt(format!(
                        "{name}: a second segment header in the middle: the journal is corrupt"
                    )))
                }
                Kind::Checkpoint => watermark = watermark.max(h.aux),
                Kind::Write | Kind::Zeroes | Kind::Superseded => {
                    if h.offset.checked_add(h.len).is_none_or(|end| end > vol_size)
                        || h.len == 0
                        || (h.kind == Kind::Write && h.len != (e - s) as u64)
                    {
                        return Err(Error::Corrupt(format!(
                            "{name}: record {} covers {}+{}, outside the volume ({vol_size} bytes) or inconsistent: the journal is corrupt",
                            h.seq, h.offset, h.len
                        )));
                    }
                    max_seq = max_seq.max(h.seq);
                    let payload = (h.kind == Kind::Write).then(|| data[*s..*e].to_vec());
                    recs.push((*h, payload));
                }
            }
        }
        segs.insert(
            n,
            Seg {
                bytes: data.len() as u64,
                max_seq,
                sealed: true,
            },
        );
    }
    // Records retried after a failed hsync appear twice, with one sequence.
    recs.sort_by_key(|(h, _)| h.seq);
    recs.dedup_by_key(|(h, _)| h.seq);
    let mut map = DirtyMap::new(chunk_size);
    let mut touched = HashMap::new();
    let mut next_seq = 1;
    for (h, payload) in recs {
        next_seq = next_seq.max(h.seq + 1);
        if h.seq < watermark {
            continue;
        }
        info.to_apply += 1;
        let end = h.offset + h.len;
        match (h.kind, payload) {
            (Kind::Write, Some(p)) => {
                map.insert(h.offset, end, h.seq, Src::Data(Payload::new(p, gauge), 0))
            }
            (Kind::Zeroes, _) => map.insert(h.offset, end, h.seq, Src::Zero),
            (Kind::Superseded, _) => map.punch(h.offset, end),
            _ => {}
        }
        if h.kind != Kind::Superseded {
            for c in h.offset / chunk_size..=(end - 1) / chunk_size {
                touched.insert(c, h.seq);
            }
        }
    }
    next_seq = next_seq.max(watermark);
    info.watermark = watermark;
    info.dirty_bytes = map.covered_bytes();
    info.chunks = map.chunks().len();
    Ok(Replayed {
        map,
        segs,
        seg_bytes,
        next_segno,
        next_seq,
        watermark,
        touched,
        info,
        lengths,
    })
}
