// SPDX-License-Identifier: Apache-2.0
//! Shared by the CLI's integration tests: finding the Ozone cluster and running `ozbd`.
//! Must never: start or stop the cluster (scripts/test-all owns its lifetime).

#![allow(dead_code)] // Each test file uses a different subset.

use std::process::Command;

pub const OZBD: &str = env!("CARGO_BIN_EXE_ozbd");

// One helper for finding the cluster, shared with the chunk store's tests.
#[path = "../../../chunkstore/tests/common/mod.rs"]
mod cluster;
#[allow(unused_imports)] // Each test file uses a different subset.
pub use cluster::{om_address, pattern};

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

/// `ozbd crash-check URI --log LOG --model MODEL`: (success, output).
pub fn crash_check(uri: &str, log: &std::path::Path, model: &std::path::Path) -> (bool, String) {
    ozbd(&[
        "crash-check",
        uri,
        "--log",
        log.to_str().expect("utf-8 path"),
        "--model",
        model.to_str().expect("utf-8 path"),
    ])
}
