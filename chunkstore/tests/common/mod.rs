// SPDX-License-Identifier: Apache-2.0
//! What the chunk store's tests (and the CLI's) share: finding the cluster,
//! and a non-repeating data pattern.
//! Must never: pass silently without a cluster (it says SKIPPED, and fails
//! when OZBD_REQUIRE_OZONE=1).

#![allow(dead_code)] // Each test file uses a different subset.

/// The OM address from `scripts/ozone-local env`, or None (a loud skip).
pub fn om_address() -> Option<String> {
    match std::env::var("OZONE_OM_ADDRESS") {
        Ok(a) if !a.is_empty() => Some(a),
        _ => {
            assert!(
                std::env::var("OZBD_REQUIRE_OZONE").as_deref() != Ok("1"),
                "OZBD_REQUIRE_OZONE=1 but OZONE_OM_ADDRESS is not set: run eval \"$(scripts/ozone-local env)\""
            );
            eprintln!("SKIPPED: no Ozone cluster (OZONE_OM_ADDRESS unset); run scripts/ozone-local start and eval \"$(scripts/ozone-local env)\"");
            None
        }
    }
}

/// `len` bytes that never repeat at the scale of a chunk (xorshift from
/// `seed`): a block copied to another offset is another offset's data.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
