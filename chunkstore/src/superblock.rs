// SPDX-License-Identifier: Apache-2.0
//! The volume superblock.
//!
//! Owns: the on-disk description of a volume (format version, uuid, size, block
//! size, chunk size), its JSON encoding, validation, and the chunk file naming.
//! Must never: be rewritten in place except through the backend's atomic `put`.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};

pub const MAGIC: &str = "bdev_ozone volume";
/// 2: the volume may have a journal (`journal/`), which every open replays.
/// A reader of format 1 refuses format 2 (it would ignore the journal).
/// 3: writers hold a lease (`lease.<epoch>`) and keep the data in their
/// epoch's root (`e<epoch>/chunks`, `e<epoch>/journal`); see lease/. A reader
/// of format 2 refuses format 3 (it would write without the lease).
pub const FORMAT_VERSION: u32 = 3;
pub const SUPERBLOCK_NAME: &str = "superblock.json";
pub const CHUNK_DIR: &str = "chunks";
pub const DEFAULT_BLOCK_SIZE: u32 = 4096;
/// Chosen by measurement; see docs/chunk-size.md.
pub const DEFAULT_CHUNK_SIZE: u64 = 4 << 20;
pub const MIN_CHUNK_SIZE: u64 = 64 << 10;
pub const MAX_CHUNK_SIZE: u64 = 256 << 20;

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
        Ok(())
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Serializing a plain struct of strings and integers cannot fail.
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    pub fn from_json(bytes: &[u8], path: &str) -> Result<Self> {
        let sb: Superblock = serde_json::from_slice(bytes).map_err(|e| {
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
        assert_eq!(parse_chunk_name(&chunk_name(0xabc)), Some(0xabc));
        assert_eq!(parse_chunk_name("xyz"), None);
    }
}
