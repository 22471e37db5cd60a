// SPDX-License-Identifier: Apache-2.0
//! Fuzz target: ozbd_chunkstore::fuzzing::journal_segment (the engine's own parser).
//! Must never: hold checks of its own (they live in chunkstore/src/fuzzing.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ozbd_chunkstore::fuzzing::journal_segment(data);
});
