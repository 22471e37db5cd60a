// SPDX-License-Identifier: Apache-2.0
//! Shared by the CLI's integration tests: finding the Ozone cluster and running `ozbd`.
//! Must never: start or stop the cluster (scripts/test-all owns its lifetime).

#![allow(dead_code)] // Each test file uses a different subset.

use std::process::Command;

pub const OZBD: &str = env!("CARGO_BIN_EXE_ozbd");

/// The OM address from `eval "$(scripts/ozone-local env)"`, or None after a loud
/// SKIPPED line; with OZBD_REQUIRE_OZONE=1 a missing cluster fails the test.
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

/// Run ozbd; (success, stdout + stderr).
pub fn ozbd(args: &[&str]) -> (bool, String) {
    let out = Command::new(OZBD).args(args).output().expect("run ozbd");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
