// SPDX-License-Identifier: Apache-2.0
//! What the real-Ozone tests of the chunk store share: finding the cluster.
//! Must never: pass silently without a cluster (it says SKIPPED, and fails
//! when OZBD_REQUIRE_OZONE=1).

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
