// SPDX-License-Identifier: Apache-2.0
//! The one rewrite the gateway makes: `size` (bytes) to `size_in_mib` for
//! `bdev_lvol_create` and `bdev_lvol_resize`.
//!
//! spdk-csi and Cinder's SPDK driver send `size` in bytes; SPDK >= 24.05
//! accepts only `size_in_mib` and refuses `size` with -32603
//! "spdk_json_decode_object failed". When a request to one of those two
//! methods has an integer `size` and no `size_in_mib`, `size` is replaced by
//! `size_in_mib = ceil(size / 1 MiB)` (rounding up: a volume is never
//! smaller than asked for).
//! Owns: that rule. Must never: touch any other method or field; change a
//! request that already has `size_in_mib`; guess at a `size` that is not a
//! non-negative integer (those pass through, and SPDK refuses them).

use serde_json::{Map, Value};

/// One MiB.
pub const MIB: u64 = 1 << 20;

/// The methods whose `size` is rewritten.
pub const METHODS: [&str; 2] = ["bdev_lvol_create", "bdev_lvol_resize"];

/// What was rewritten, for the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translation {
    pub method: String,
    pub bytes: u64,
    pub mib: u64,
}

/// `ceil(bytes / 1 MiB)`.
pub fn bytes_to_mib_ceil(bytes: u64) -> u64 {
    bytes.div_ceil(MIB)
}

/// Rewrite one request object in place when the rule applies; return what
/// was done. Anything that is not such a request is left alone.
pub fn translate_request(request: &mut Value) -> Option<Translation> {
    let obj = request.as_object_mut()?;
    let method = obj.get("method")?.as_str()?;
    if !METHODS.contains(&method) {
        return None;
    }
    let method = method.to_string();
    let params = obj.get_mut("params")?.as_object_mut()?;
    let bytes = size_to_translate(params)?;
    let mib = bytes_to_mib_ceil(bytes);
    params.remove("size");
    params.insert("size_in_mib".to_string(), Value::from(mib));
    Some(Translation { method, bytes, mib })
}

fn size_to_translate(params: &Map<String, Value>) -> Option<u64> {
    if params.contains_key("size_in_mib") {
        return None;
    }
    params.get("size")?.as_u64()
}

/// Rewrite a whole JSON-RPC body (one request or a batch array); return the
/// rewrites made (empty: the body is to be forwarded as it came).
pub fn translate_body(body: &mut Value) -> Vec<Translation> {
    match body {
        Value::Array(batch) => batch.iter_mut().filter_map(translate_request).collect(),
        one => translate_request(one).into_iter().collect(),
    }
}
