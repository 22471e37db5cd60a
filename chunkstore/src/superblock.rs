// SPDX-License-Identifier: Apache-2.0
//! The volume superblock.
//!
//! Owns: the on-disk description of a volume (format version, uuid, size, block
//! size, chunk size, whether chunks carry checksums), its JSON encoding with
//! its own crc32c, validation, and the chunk file naming.
//! Must never: be rewritten in place except through the backend's atomic `put`,
//! or be accepted with a checksum that does not match.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};

pub const MAGIC: &str = "bdev_ozone volume";
/// 2: the volume may have a journal (`journal/`), which every open replays.
/// A reader of format 1 refuses format 2 (it would ignore the journal).
/// 3: writers hold a lease (`lease.<epoch>`) and keep the data in their
/// epoch's root (`e<epoch>/chunks`, `e<epoch>/journal`); see lease/. A reader
/// of format 2 refuses format 3 (it would write without the lease).
/// 4: chunk files carry a checksum trailer (sums.rs) and the superblock its
/// own crc32c (`crc`). A volume created at format 4 has `checksums`: every
/// chunk must have a trailer. One upgraded from format 3 keeps `checksums`
/// false: its chunks written before the upgrade have none, and are verified
/// from their next rewrite on. A reader of format 3 refuses format 4 (it
/// would read the trailer as data past the chunk and write chunks without).
pub const FORMAT_VERSION: u32 = 4;
pub const SUPERBLOCK_NAME: &str = "superblock.json";
pub const CHUNK_DIR: &str = "chunks";
pub const DEFAULT_BLOCK_SIZE: u32 = 4096;
/// Chosen by measurement; see docs/chunk-size.md.
pub const DEFAULT_CHUNK_SIZE: u64 = 4 << 20;
pub const MIN_CHUNK_SIZE: u64 = 64 << 10;
pub const MAX_CHUNK_SIZE: u64 = 256 << 20;
/// The most chunks a volume has: the engine keeps two bits per chunk in memory
/// (64 MiB at this bound), so a typo in a size (or 2^63 from a hostile RPC
/// client) is refused instead of taking the process's memory. That is 16 TiB
/// with 64 KiB chunks, 1 PiB with the default 4 MiB, 64 PiB with 256 MiB.
pub const MAX_CHUNKS: u64 = 1 << 28;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Superblock {
    pub magic: String,
    pub format_version: u32,
    pub uuid: Uuid,
    pub size: u64,
    pub block_size: u32,
    pub chunk_size: u64,
    /// Format 2: the volume was opened with a journal at least once, so
    /// `journal/` may hold data not yet in the chunks. Absent in format 1.
    #[serde(default)]
    pub journal: bool,
    /// Format 2: the writer epoch (fencing; reserved, always 0 for now).
    #[serde(default)]
    pub epoch: u64,
    /// Format 4: every chunk file carries a checksum trailer; a chunk without
    /// one is damage. False for volumes upgraded from format 3.
    #[serde(default)]
    pub checksums: bool,
    /// Format 4: crc32c (8 hex digits) of the compact JSON of every other
    /// field; required from format 4 on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc: Option<String>,
}

impl Superblock {
    pub fn new(size: u64, block_size: u32, chunk_size: u64, uuid: Option<Uuid>) -> Result<Self> {
        let sb = Superblock {
            magic: MAGIC.to_string(),
            format_version: FORMAT_VERSION,
            uuid: uuid.unwrap_or_else(Uuid::new_v4),
            size,
            block_size,
            chunk_size,
            journal: false,
            epoch: 0,
            checksums: true,
            crc: None,
        };
        sb.validate()?;
        Ok(sb)
    }

    pub fn validate(&self) -> Result<()> {
        if self.block_size != 512 && self.block_size != 4096 {
            return Err(Error::InvalidArgument(format!(
                "block size {} is not supported: use 512 or 4096",
                self.block_size
            )));
        }
        if !self.chunk_size.is_power_of_two()
            || self.chunk_size < MIN_CHUNK_SIZE
            || self.chunk_size > MAX_CHUNK_SIZE
        {
            return Err(Error::InvalidArgument(format!(
                "chunk size {} is not supported: use a power of two from {} KiB to {} MiB",
                self.chunk_size,
                MIN_CHUNK_SIZE >> 10,
                MAX_CHUNK_SIZE >> 20
            )));
        }
        if self.size == 0 || !self.size.is_multiple_of(self.block_size as u64) {
            return Err(Error::InvalidArgument(format!(
                "size {} is not a positive multiple of the block size {}: round it to a multiple of {}",
                self.size, self.block_size, self.block_size
            )));
        }
        if self.chunk_count() > MAX_CHUNKS {
            return Err(Error::InvalidArgument(format!(
                "size {} is {} chunks of {} bytes, more than the {MAX_CHUNKS} a volume may have: the most is {} bytes with this chunk size; use a larger chunk size for a larger volume",
                self.size,
                self.chunk_count(),
                self.chunk_size,
                MAX_CHUNKS * self.chunk_size
            )));
        }
        Ok(())
    }

    /// The crc32c of every field but `crc`.
    fn own_crc(&self) -> String {
        let mut bare = self.clone();
        bare.crc = None;
        // Serializing a plain struct of strings and integers cannot fail.
        let bytes = serde_json::to_vec(&bare).unwrap_or_default();
        format!("{:08x}", crc32c::crc32c(&bytes))
    }

    /// The superblock file's bytes, with its checksum.
    pub fn to_json(&self) -> Vec<u8> {
        let mut sealed = self.clone();
        sealed.crc = Some(self.own_crc());
        let mut v = serde_json::to_vec_pretty(&sealed).unwrap_or_default();
        v.push(b'\n');
        v
    }

    pub fn from_json(bytes: &[u8], path: &str) -> Result<Self> {
        let mut sb: Superblock = serde_json::from_slice(bytes).map_err(|e| {
            Error::NotAVolume(format!(
                "{path} is not a bdev_ozone superblock ({e}); is this directory a volume?"
            ))
        })?;
        if sb.magic != MAGIC {
            return Err(Error::NotAVolume(format!(
                "{path} has magic '{}', not '{MAGIC}': this directory is not a bdev_ozone volume",
                sb.magic
            )));
        }
        if sb.format_version > FORMAT_VERSION {
            return Err(Error::Mismatch(format!(
                "{path}: format version {} was written by a newer bdev_ozone (this one reads up to {FORMAT_VERSION}); upgrade",
                sb.format_version
            )));
        }
        match &sb.crc {
            Some(crc) if *crc != sb.own_crc() => {
                return Err(Error::Corrupt(format!(
                    "{path}: the superblock's checksum does not match its content (it holds {crc}, the content sums to {}): it was damaged or edited by hand; the volume is not opened. Restore it from a copy, or run `ozbd fsck` for a report",
                    sb.own_crc()
                )))
            }
            None if sb.format_version >= 4 => {
                return Err(Error::Corrupt(format!(
                    "{path}: a format {} superblock must carry a checksum and this one has none: it was damaged or edited by hand; the volume is not opened",
                    sb.format_version
                )))
            }
            _ => {}
        }
        // The checksum belongs to the file, not the content: `to_json` makes it anew.
        sb.crc = None;
        sb.validate()
            .map_err(|e| Error::Corrupt(format!("{path}: superblock is invalid: {e}")))?;
        Ok(sb)
    }

    pub fn chunk_count(&self) -> u64 {
        self.size.div_ceil(self.chunk_size)
    }

    /// Length of chunk `idx` (the last one may be short).
    pub fn chunk_len(&self, idx: u64) -> u64 {
        let start = idx * self.chunk_size;
        self.chunk_size.min(self.size - start)
    }
}

/// File name of chunk `idx`: 16 hex digits, so names sort by index.
pub fn chunk_name(idx: u64) -> String {
    format!("{idx:016x}")
}

pub fn parse_chunk_name(name: &str) -> Option<u64> {
    if name.len() != 16 {
        return None;
    }
    u64::from_str_radix(name, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_validation() {
        let sb = Superblock::new(1 << 30, 4096, 4 << 20, None).unwrap();
        let back = Superblock::from_json(&sb.to_json(), "x").unwrap();
        assert_eq!(sb, back);
        assert_eq!(sb.chunk_count(), 256);
        assert!(Superblock::new(4097, 4096, 4 << 20, None).is_err());
        assert!(Superblock::new(4096, 1024, 4 << 20, None).is_err());
        assert!(Superblock::new(4096, 4096, 3 << 20, None).is_err());
        let odd = Superblock::new((4 << 20) + 512, 512, 4 << 20, None).unwrap();
        assert_eq!(odd.chunk_count(), 2);
        assert_eq!(odd.chunk_len(1), 512);
        assert!(Superblock::from_json(b"{}", "x").is_err());
        assert!(sb.checksums, "new volumes carry checksums");
        assert_eq!(parse_chunk_name(&chunk_name(0xabc)), Some(0xabc));
        assert_eq!(parse_chunk_name("xyz"), None);
    }

    /// A size whose chunk map would not fit in memory is refused with what to do, not
    /// allocated (2^63 bytes aborted the process on a 256 GiB allocation).
    #[test]
    fn a_size_past_the_chunk_bound_is_refused() {
        let most = MAX_CHUNKS * (4 << 20);
        assert!(Superblock::new(most, 4096, 4 << 20, None).is_ok());
        for size in [most + 4096, 1 << 63, u64::MAX - 4095] {
            let e = Superblock::new(size, 4096, 4 << 20, None).unwrap_err();
            assert!(e.to_string().contains("use a larger chunk size"), "{e}");
        }
        assert!(Superblock::new(most + 4096, 4096, 8 << 20, None).is_ok());
    }

    #[test]
    fn a_damaged_superblock_is_refused() {
        let sb = Superblock::new(1 << 30, 4096, 4 << 20, None).unwrap();
        let text = String::from_utf8(sb.to_json()).unwrap();
        // A changed value that is still valid JSON and a valid volume.
        let edited = text.replace("1073741824", "2147483648");
        assert_ne!(edited, text);
        let e = Superblock::from_json(edited.as_bytes(), "x").unwrap_err();
        assert!(matches!(e, Error::Corrupt(_)), "{e}");
        assert!(e.to_string().contains("checksum does not match"), "{e}");
        // Format 4 without a checksum.
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v.as_object_mut().unwrap().remove("crc");
        let e = Superblock::from_json(v.to_string().as_bytes(), "x").unwrap_err();
        assert!(e.to_string().contains("has none"), "{e}");
        // A format 3 superblock (no crc, no checksums) still reads.
        v["format_version"] = 3.into();
        v.as_object_mut().unwrap().remove("checksums");
        let old = Superblock::from_json(v.to_string().as_bytes(), "x").unwrap();
        assert!(!old.checksums);
        // Whitespace does not matter: the sum is over the content.
        let squeezed = text.replace("\n", "").replace("  ", "");
        assert!(Superblock::from_json(squeezed.as_bytes(), "x").is_ok());
    }
}
