// SPDX-License-Identifier: Apache-2.0
//! Entry points for the fuzz targets in chunkstore/fuzz/: the parsers of
//! bytes that come from outside the engine (a URI from a user, a superblock,
//! journal segments and chunk trailers read from Ozone).
//!
//! Owns: nothing but thin calls into the real parsers, so the fuzzers test
//! exactly the code the engine runs.
//! Must never: hold logic of its own, or be used by the engine.

use uuid::Uuid;

use crate::sums::{trailer_len, Summer};
use crate::superblock::Superblock;
use crate::uri::VolumeUri;

/// Parse a volume URI; a parsed one must print back to a URI that parses
/// to the same volume.
pub fn uri(s: &str) {
    if let Ok(u) = VolumeUri::parse(s) {
        let again = VolumeUri::parse(&u.canonical())
            .unwrap_or_else(|e| panic!("{s:?} parsed, but its canonical form did not: {e}"));
        assert_eq!(again.dir, u.dir, "{s:?}");
    }
}

/// Parse a superblock file; an accepted one must round-trip.
pub fn superblock(b: &[u8]) {
    if let Ok(sb) = Superblock::from_json(b, "fuzz") {
        let back = Superblock::from_json(&sb.to_json(), "fuzz")
            .unwrap_or_else(|e| panic!("an accepted superblock did not round-trip: {e}"));
        assert_eq!(back, sb);
    }
}

/// Parse a journal segment (records, torn tail, corruption in the middle).
pub fn journal_segment(b: &[u8]) {
    if let Ok(p) = crate::journal::record::parse_segment("fuzz", b) {
        let mut end = 0;
        for (_, s, e) in &p.records {
            assert!(
                s <= e && *e <= b.len() && *s >= end,
                "records stay in the segment, in order"
            );
            end = *e;
        }
        assert_eq!(
            end + p.torn_bytes,
            b.len(),
            "records and the torn tail cover the segment"
        );
    }
}

/// Decode a chunk trailer (first 8 bytes: chunk index and length selector).
pub fn chunk_trailer(b: &[u8]) {
    if b.len() < 2 {
        return;
    }
    let clen = (1 + b[0] as usize) * 512;
    let s = Summer::new(&Uuid::from_u128(1));
    if let Ok(sums) = s.decode(b[1] as u64, clen, &b[2..]) {
        assert_eq!(
            b.len() - 2,
            trailer_len(clen),
            "only a trailer of the right length decodes"
        );
        let _ = s.verify(b[1] as u64, &sums, 0, &vec![0u8; clen]);
    }
}
