// SPDX-License-Identifier: Apache-2.0
//! Fuzz target: ozbd_chunkstore::fuzzing::uri (the engine's own parser).
//! Must never: hold checks of its own (they live in chunkstore/src/fuzzing.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        ozbd_chunkstore::fuzzing::uri(s);
    }
});
