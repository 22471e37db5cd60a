// SPDX-License-Identifier: Apache-2.0
//! Chunk checksums: the trailer every chunk file carries after its data, and
//! checking data read from Ozone against it.
//!
//! Owns: the trailer format (one crc32c per `UNIT` bytes of the chunk, then a
//! footer naming the chunk), sealing a chunk's data before its put, decoding
//! and checking a trailer, and verifying a unit-aligned range of data. Every
//! sum is seeded with the volume's uuid, the chunk index and the unit index,
//! so data copied from another offset, another chunk or another volume fails
//! like damaged data does.
//! Must never: accept a range it has not verified, read or write the backend
//! (chunk_io does the I/O), or allocate on the verify path.
//!
//! A chunk file of a volume with checksums is `chunk_len` data bytes, then
//! `units * 4` bytes of sums (little endian), then a 32-byte footer:
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | magic `OZCS` |
//! | 4..8 | trailer format (1) |
//! | 8..12 | unit size (4096) |
//! | 12..16 | number of units |
//! | 16..24 | chunk index |
//! | 24..28 | crc32c of the sums and footer bytes 0..24, seeded by the volume |
//! | 28..32 | reserved, zero |

use uuid::Uuid;

pub(crate) const MAGIC: [u8; 4] = *b"OZCS";
pub(crate) const TRAILER_FORMAT: u32 = 1;
/// Bytes covered by one sum: a read verifies whole units, so a 512-byte read
/// costs a 4 KiB read at most. Chunk lengths are multiples of the block size
/// (512 or 4096); the last unit of a short last chunk may be partial.
pub(crate) const UNIT: usize = 4096;
pub(crate) const FOOTER_LEN: usize = 32;

/// Units of a chunk of `clen` bytes.
pub(crate) fn units(clen: usize) -> usize {
    clen.div_ceil(UNIT)
}

/// Bytes of trailer after a chunk of `clen` bytes.
pub(crate) fn trailer_len(clen: usize) -> usize {
    units(clen) * 4 + FOOTER_LEN
}

/// The data length of a sealed chunk file of `file_len` bytes: the one `d`
/// with `d + trailer_len(d) == file_len`, if any (the sum grows with `d`, so
/// there is at most one). A chunk is sealed at the length its index had when
/// it was written; after a resize the chunk that was (or became) the last
/// one may carry another length than its index has now (see chunk_io.rs).
pub(crate) fn data_len_for_file(file_len: usize) -> Option<usize> {
    let m = file_len.checked_sub(FOOTER_LEN)?;
    // d + 4 * ceil(d / UNIT) == m, so d is close to m * UNIT / (UNIT + 4).
    let guess = m / (UNIT + 4) * UNIT;
    (guess.saturating_sub(2 * UNIT)..=guess + 2 * UNIT).find(|&d| d > 0 && d + units(d) * 4 == m)
}

/// The checksum rules of one volume (seeded by its uuid).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Summer {
    base: u32,
}

/// The sums of one stored chunk, as its trailer holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sums(Box<[u32]>);

/// Why a range failed verification: the first bad unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadUnit(pub(crate) usize);

impl Summer {
    pub(crate) fn new(uuid: &Uuid) -> Self {
        Summer {
            base: crc32c::crc32c(uuid.as_bytes()),
        }
    }

    fn seed(&self, chunk: u64, unit: u64) -> u32 {
        let mut a = [0u8; 16];
        a[..8].copy_from_slice(&chunk.to_le_bytes());
        a[8..].copy_from_slice(&unit.to_le_bytes());
        crc32c::crc32c_append(self.base, &a)
    }

    /// The sum of unit `unit` of chunk `chunk` holding `data`.
    pub(crate) fn unit_sum(&self, chunk: u64, unit: usize, data: &[u8]) -> u32 {
        crc32c::crc32c_append(self.seed(chunk, unit as u64), data)
    }

    fn footer_sum(&self, chunk: u64, sums_and_footer: &[u8]) -> u32 {
        crc32c::crc32c_append(self.seed(chunk, u64::MAX), sums_and_footer)
    }

    /// Append the trailer of chunk `chunk` to its data (`data` is exactly the
    /// chunk's bytes; give it `trailer_len` of spare capacity to avoid a copy).
    /// Returns the sums, for the reader's cache.
    pub(crate) fn seal(&self, chunk: u64, data: &mut Vec<u8>) -> Sums {
        let clen = data.len();
        let n = units(clen);
        let sums: Box<[u32]> = (0..n)
            .map(|u| self.unit_sum(chunk, u, &data[u * UNIT..clen.min((u + 1) * UNIT)]))
            .collect();
        data.reserve_exact(trailer_len(clen));
        for s in sums.iter() {
            data.extend_from_slice(&s.to_le_bytes());
        }
        data.extend_from_slice(&MAGIC);
        data.extend_from_slice(&TRAILER_FORMAT.to_le_bytes());
        data.extend_from_slice(&(UNIT as u32).to_le_bytes());
        data.extend_from_slice(&(n as u32).to_le_bytes());
        data.extend_from_slice(&chunk.to_le_bytes());
        let crc = self.footer_sum(chunk, &data[clen..]);
        data.extend_from_slice(&crc.to_le_bytes());
        data.extend_from_slice(&[0u8; 4]);
        Sums(sums)
    }

    /// Decode the trailer of chunk `chunk` (`clen` data bytes). The error
    /// says what is wrong, for a log line and an fsck report.
    pub(crate) fn decode(&self, chunk: u64, clen: usize, t: &[u8]) -> Result<Sums, String> {
        let n = units(clen);
        if t.len() != trailer_len(clen) {
            return Err(format!(
                "the checksum trailer is {} bytes, not {}: the file was truncated or extended",
                t.len(),
                trailer_len(clen)
            ));
        }
        let f = &t[n * 4..];
        let u32_at = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        if f[0..4] != MAGIC {
            return Err(
                "the file has no checksum trailer (it was rewritten from outside bdev_ozone)"
                    .into(),
            );
        }
        let format = u32_at(f, 4);
        if format != TRAILER_FORMAT || u32_at(f, 8) as usize != UNIT || u32_at(f, 12) as usize != n
        {
            return Err(format!(
                "the checksum trailer has format {format}, unit {} and {} units; this bdev_ozone writes format {TRAILER_FORMAT}, unit {UNIT} and {n} units here",
                u32_at(f, 8),
                u32_at(f, 12)
            ));
        }
        let mut idx = [0u8; 8];
        idx.copy_from_slice(&f[16..24]);
        let owner = u64::from_le_bytes(idx);
        if owner != chunk {
            return Err(format!(
                "the file holds chunk {owner}'s data, not chunk {chunk}'s (copied over it?)"
            ));
        }
        if self.footer_sum(chunk, &t[..n * 4 + 24]) != u32_at(f, 24) {
            return Err(
                "the checksum trailer does not match (damaged, or copied from another volume)"
                    .into(),
            );
        }
        Ok(Sums((0..n).map(|u| u32_at(t, u * 4)).collect()))
    }

    /// Verify `data`, the bytes of chunk `chunk` from unit `first` on (a
    /// whole number of units, except that the chunk's last unit may be short).
    pub(crate) fn verify(
        &self,
        chunk: u64,
        sums: &Sums,
        first: usize,
        data: &[u8],
    ) -> Result<(), BadUnit> {
        for (i, part) in data.chunks(UNIT).enumerate() {
            let u = first + i;
            match sums.0.get(u) {
                Some(&want) if self.unit_sum(chunk, u, part) == want => {}
                _ => return Err(BadUnit(u)),
            }
        }
        Ok(())
    }
}

impl Sums {
    /// Bytes of memory the sums take (for the cache bound).
    pub(crate) fn bytes(&self) -> usize {
        self.0.len() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes that differ from unit to unit (so a copy is a different unit's data).
    fn chunk(len: usize, fill: u8) -> Vec<u8> {
        (0..len as u64)
            .map(|i| crc32c::crc32c(&(i ^ ((fill as u64) << 56)).to_le_bytes()) as u8)
            .collect()
    }

    #[test]
    fn sealed_chunks_verify_and_damage_is_caught() {
        let s = Summer::new(&Uuid::from_u128(7));
        let clen = 64 << 10;
        let mut file = chunk(clen, 1);
        let sums = s.seal(3, &mut file);
        assert_eq!(file.len(), clen + trailer_len(clen));
        let back = s.decode(3, clen, &file[clen..]).unwrap();
        assert_eq!(back, sums);
        assert_eq!(s.verify(3, &back, 0, &file[..clen]), Ok(()));
        assert_eq!(s.verify(3, &back, 2, &file[2 * UNIT..5 * UNIT]), Ok(()));
        let mut bad = file.clone();
        bad[5 * UNIT + 17] ^= 1;
        assert_eq!(s.verify(3, &back, 0, &bad[..clen]), Err(BadUnit(5)));
    }

    #[test]
    fn the_address_is_covered() {
        let s = Summer::new(&Uuid::from_u128(7));
        let clen = 64 << 10;
        let mut file = chunk(clen, 1);
        let sums = s.seal(3, &mut file);
        // The same bytes at another unit, in another chunk, in another volume.
        assert_eq!(s.verify(3, &sums, 1, &file[..UNIT]), Err(BadUnit(1)));
        assert!(s
            .decode(4, clen, &file[clen..])
            .unwrap_err()
            .contains("chunk 3"));
        let other = Summer::new(&Uuid::from_u128(8));
        assert!(other
            .decode(3, clen, &file[clen..])
            .unwrap_err()
            .contains("another volume"));
        // Zeros are not "valid by default".
        let zeros = vec![0u8; UNIT];
        assert!(s.verify(3, &sums, 0, &zeros).is_err());
    }

    #[test]
    fn the_data_length_follows_from_the_file_length() {
        for d in [
            512,
            4096,
            4096 + 512,
            65536,
            (4 << 20) - 512,
            4 << 20,
            256 << 20,
        ] {
            assert_eq!(data_len_for_file(d + trailer_len(d)), Some(d), "{d}");
        }
        // Lengths no sealed chunk has.
        assert_eq!(data_len_for_file(0), None);
        assert_eq!(data_len_for_file(FOOTER_LEN), None);
        // One byte more of data takes a second sum: 4 bytes more of trailer.
        assert_eq!(data_len_for_file(4097 + trailer_len(4097)), Some(4097));
        assert_eq!(data_len_for_file(4096 + trailer_len(4096) + 1), None);
    }

    #[test]
    fn truncated_extended_and_foreign_trailers_are_refused() {
        let s = Summer::new(&Uuid::from_u128(7));
        let clen = (64 << 10) + 512; // a short last unit
        let mut file = chunk(clen, 9);
        let sums = s.seal(0, &mut file);
        assert_eq!(s.verify(0, &sums, 16, &file[16 * UNIT..clen]), Ok(()));
        let t = &file[clen..];
        assert!(s.decode(0, clen, &t[..t.len() - 1]).is_err());
        let mut longer = t.to_vec();
        longer.push(0);
        assert!(s.decode(0, clen, &longer).is_err());
        let plain = chunk(t.len(), 2);
        assert!(s
            .decode(0, clen, &plain)
            .unwrap_err()
            .contains("no checksum trailer"));
        let mut flipped = t.to_vec();
        flipped[0] ^= 0x80;
        assert!(s.decode(0, clen, &flipped).is_err());
    }
}
