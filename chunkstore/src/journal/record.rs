// SPDX-License-Identifier: Apache-2.0
//! Journal records: the on-disk format of one journal entry, and its checksum.
//!
//! Owns: encoding and decoding records (a fixed 48-byte little-endian header,
//! then the payload), the crc32c over header and payload, and telling a torn
//! tail (nothing valid follows) from a corrupt record in the middle.
//! Must never: return a record whose checksum does not match, or guess at the
//! content of a damaged one.
//!
//! Header layout (all little endian):
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | magic `OZJR` |
//! | 4 | kind (1 segment header, 2 write, 3 zeroes, 4 superseded, 5 checkpoint) |
//! | 5..8 | reserved, zero |
//! | 8..12 | payload length |
//! | 12..20 | sequence number |
//! | 20..28 | volume byte offset |
//! | 28..36 | length covered (write: payload length) |
//! | 36..44 | aux: segment header: segment number; checkpoint: applied watermark |
//! | 44..48 | crc32c of bytes 0..44 and the payload |

use crate::error::{Error, Result};

pub(crate) const MAGIC: [u8; 4] = *b"OZJR";
pub(crate) const HEADER_LEN: usize = 48;
/// Payload of a segment header record: format version, volume uuid, epoch.
pub(crate) const SEGMENT_FORMAT: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// First record of every segment: which volume, which segment.
    SegmentHeader = 1,
    /// Data for [offset, offset + len).
    Write = 2,
    /// [offset, offset + len) reads as zeros (write-zeroes and unmap).
    Zeroes = 3,
    /// [offset, offset + len) was written straight to its chunks after the
    /// records before this one: replay drops older journaled data there.
    Superseded = 4,
    /// Every record with a lower sequence number is applied to the chunks.
    Checkpoint = 5,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::SegmentHeader,
            2 => Kind::Write,
            3 => Kind::Zeroes,
            4 => Kind::Superseded,
            5 => Kind::Checkpoint,
            _ => return None,
        })
    }
}

/// A decoded record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) kind: Kind,
    pub(crate) payload_len: u32,
    pub(crate) seq: u64,
    pub(crate) offset: u64,
    pub(crate) len: u64,
    pub(crate) aux: u64,
}

/// Append one record (header + payload) to `out`.
pub(crate) fn encode(out: &mut Vec<u8>, h: &Header, payload: &[u8]) {
    debug_assert_eq!(h.payload_len as usize, payload.len());
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.push(h.kind as u8);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&h.payload_len.to_le_bytes());
    out.extend_from_slice(&h.seq.to_le_bytes());
    out.extend_from_slice(&h.offset.to_le_bytes());
    out.extend_from_slice(&h.len.to_le_bytes());
    out.extend_from_slice(&h.aux.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out[start..start + 44]), payload);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
}

/// The size of a record with `payload` bytes.
pub(crate) fn record_len(payload: usize) -> usize {
    HEADER_LEN + payload
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Why no record could be decoded at a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bad {
    /// The bytes end before the record does.
    Short,
    /// Wrong magic, unknown kind, or checksum mismatch.
    Invalid,
}

/// Decode the record at the start of `b`: its header and payload range.
fn decode_at(b: &[u8]) -> std::result::Result<(Header, usize), Bad> {
    if b.len() < HEADER_LEN {
        return Err(Bad::Short);
    }
    if b[0..4] != MAGIC || b[5..8] != [0, 0, 0] {
        return Err(Bad::Invalid);
    }
    let kind = Kind::from_u8(b[4]).ok_or(Bad::Invalid)?;
    let payload_len = u32_at(b, 8);
    let total = HEADER_LEN + payload_len as usize;
    if b.len() < total {
        return Err(Bad::Short);
    }
    let crc = crc32c::crc32c_append(crc32c::crc32c(&b[0..44]), &b[HEADER_LEN..total]);
    if crc != u32_at(b, 44) {
        return Err(Bad::Invalid);
    }
    let h = Header {
        kind,
        payload_len,
        seq: u64_at(b, 12),
        offset: u64_at(b, 20),
        len: u64_at(b, 28),
        aux: u64_at(b, 36),
    };
    Ok((h, total))
}

/// The records of one segment's bytes, and where a torn tail was cut.
#[derive(Debug)]
pub(crate) struct Parsed {
    /// (header, payload start, payload end) in order.
    pub(crate) records: Vec<(Header, usize, usize)>,
    /// Bytes cut off at the end (a record the writer did not finish hsyncing).
    pub(crate) torn_bytes: usize,
}

/// Parse a whole segment. A damaged record with nothing valid after it is a
/// torn tail and is cut; a damaged record followed by a valid one is
/// corruption and fails with an error naming `name` and the offset.
pub(crate) fn parse_segment(name: &str, b: &[u8]) -> Result<Parsed> {
    let mut records = Vec::new();
    let mut at = 0;
    while at < b.len() {
        match decode_at(&b[at..]) {
            Ok((h, total)) => {
                records.push((h, at + HEADER_LEN, at + total));
                at += total;
            }
            Err(bad) => {
                if let Some(next) = next_valid(b, at + 1) {
                    return Err(Error::Corrupt(format!(
                        "journal segment {name}: the record at byte {at} is damaged ({}) but a valid record follows at byte {next}: the journal is corrupt, so the volume is not opened (nothing was applied). Keep the segment for inspection; `ozbd info` shows the journal",
                        match bad {
                            Bad::Short => "cut short",
                            Bad::Invalid => "bad magic, kind or checksum",
                        }
                    )));
                }
                return Ok(Parsed {
                    records,
                    torn_bytes: b.len() - at,
                });
            }
        }
    }
    Ok(Parsed {
        records,
        torn_bytes: 0,
    })
}

/// The first offset at or after `from` where a complete valid record starts.
fn next_valid(b: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while at + HEADER_LEN <= b.len() {
        match b[at..].windows(4).position(|w| w == MAGIC) {
            None => return None,
            Some(i) => {
                at += i;
                if decode_at(&b[at..]).is_ok() {
                    return Some(at);
                }
                at += 1;
            }
        }
    }
    None
}

/// The payload of a segment header record.
pub(crate) fn segment_header_payload(uuid: &uuid::Uuid, epoch: u64) -> Vec<u8> {
    let mut p = Vec::with_capacity(28);
    p.extend_from_slice(&SEGMENT_FORMAT.to_le_bytes());
    p.extend_from_slice(uuid.as_bytes());
    p.extend_from_slice(&epoch.to_le_bytes());
    p
}

/// Check a segment header payload against the volume's uuid.
pub(crate) fn check_segment_header(name: &str, payload: &[u8], uuid: &uuid::Uuid) -> Result<()> {
    if payload.len() < 28 {
        return Err(Error::Corrupt(format!(
            "journal segment {name}: header payload is {} bytes, expected 28",
            payload.len()
        )));
    }
    let format = u32_at(payload, 0);
    if format != SEGMENT_FORMAT {
        return Err(Error::Mismatch(format!(
            "journal segment {name} has format {format}; this bdev_ozone reads format {SEGMENT_FORMAT}: upgrade bdev_ozone"
        )));
    }
    if &payload[4..20] != uuid.as_bytes() {
        return Err(Error::Corrupt(format!(
            "journal segment {name} belongs to another volume (uuid {}), not {uuid}: it was copied in by mistake; move it away",
            uuid::Uuid::from_slice(&payload[4..20]).unwrap_or_default()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(out: &mut Vec<u8>, seq: u64, data: &[u8]) {
        let h = Header {
            kind: Kind::Write,
            payload_len: data.len() as u32,
            seq,
            offset: seq * 4096,
            len: data.len() as u64,
            aux: 0,
        };
        encode(out, &h, data);
    }

    #[test]
    fn round_trip() {
        let mut b = Vec::new();
        for s in 1..=5 {
            rec(&mut b, s, &vec![s as u8; 100 * s as usize]);
        }
        let p = parse_segment("s", &b).unwrap();
        assert_eq!(p.records.len(), 5);
        assert_eq!(p.torn_bytes, 0);
        let (h, s, e) = p.records[2];
        assert_eq!((h.seq, h.offset, e - s), (3, 3 * 4096, 300));
        assert!(b[s..e].iter().all(|&x| x == 3));
    }

    #[test]
    fn torn_tail_is_cut_at_the_last_valid_record() {
        let mut b = Vec::new();
        for s in 1..=3 {
            rec(&mut b, s, &[7u8; 512]);
        }
        let whole = b.len();
        rec(&mut b, 4, &[8u8; 512]);
        for cut in [whole + 1, whole + 40, whole + HEADER_LEN, b.len() - 1] {
            let p = parse_segment("s", &b[..cut]).unwrap();
            assert_eq!(p.records.len(), 3, "cut at {cut}");
            assert_eq!(p.torn_bytes, cut - whole);
        }
        // A damaged last record (flipped payload byte) is a torn tail too.
        let mut d = b.clone();
        let n = d.len();
        d[n - 3] ^= 1;
        assert_eq!(parse_segment("s", &d).unwrap().records.len(), 3);
    }

    #[test]
    fn corruption_in_the_middle_fails_naming_the_segment() {
        let mut b = Vec::new();
        for s in 1..=4 {
            rec(&mut b, s, &[s as u8; 512]);
        }
        let second = record_len(512) + HEADER_LEN + 10;
        b[second] ^= 0x40;
        let e = parse_segment("0000000000000007", &b).unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("0000000000000007") && m.contains("corrupt"),
            "{m}"
        );
        assert_eq!(e.errno(), 117);
    }
}
