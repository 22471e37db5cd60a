// SPDX-License-Identifier: Apache-2.0
//! What the gateway reads in a JSON-RPC body, and the error bodies it writes
//! itself.
//!
//! Owns: checking that a body is one JSON value; the method name (for the log
//! line), the id (for the gateway's own error bodies), whether SPDK will
//! answer (notifications: no `id` or `id: null`); choosing the bytes to
//! forward (the original body, byte for byte, unless a translation applied);
//! the gateway's error codes.
//! Must never: re-serialise a body that was not translated; put request
//! params or credentials into a log label.

use serde_json::{json, Value};

use crate::translate::{translate_body, Translation};

/// Parse error (JSON-RPC 2.0): the body is not one JSON value.
pub const PARSE_ERROR: i64 = -32700;
/// Invalid request (JSON-RPC 2.0): used for the body-size limit (HTTP 413)
/// and for HTTP-level refusals (401, 405, 400).
pub const INVALID_REQUEST: i64 = -32600;
/// SPDK's RPC socket could not be reached (HTTP 503/502).
pub const SPDK_UNREACHABLE: i64 = -32000;
/// SPDK did not answer within `--rpc-timeout` (HTTP 504).
pub const SPDK_TIMEOUT: i64 = -32001;
/// SPDK's answer was cut short or malformed (HTTP 502).
pub const SPDK_BAD_RESPONSE: i64 = -32002;

/// A body that is ready to forward.
#[derive(Debug)]
pub struct Inspected {
    /// For the log line: the method, `batch[a,b]`, or `-`.
    pub label: String,
    /// The request's id, for the gateway's own error bodies (null for
    /// batches and notifications).
    pub id: Value,
    /// False when SPDK sends nothing back on success (a notification, or a
    /// batch of notifications only).
    pub expects_response: bool,
    /// The rewrites made; empty when `forward` is `None`.
    pub translations: Vec<Translation>,
    /// The rewritten body; `None` means forward the original bytes.
    pub forward: Option<Vec<u8>>,
}

/// Inspect (and, for the two lvol methods, translate) a request body. The
/// error is a message for a -32700 reply.
pub fn inspect(body: &[u8]) -> Result<Inspected, String> {
    let mut value: Value = serde_json::from_slice(body).map_err(|e| {
        format!("the request body is not valid JSON ({e}): send one JSON-RPC 2.0 object")
    })?;
    let label = label_of(&value);
    let (id, expects_response) = match &value {
        Value::Array(batch) => (
            Value::Null,
            batch.is_empty() || batch.iter().any(expects_answer),
        ),
        one => (
            one.get("id").cloned().unwrap_or(Value::Null),
            expects_answer(one),
        ),
    };
    let translations = translate_body(&mut value);
    let forward = if translations.is_empty() {
        None
    } else {
        Some(serde_json::to_vec(&value).map_err(|e| format!("cannot re-encode the request: {e}"))?)
    };
    Ok(Inspected {
        label,
        id,
        expects_response,
        translations,
        forward,
    })
}

/// SPDK answers a request unless it is an object with no `id` or `id: null`
/// (it still answers those with an error when they fail; the gateway waits
/// for that only briefly).
fn expects_answer(v: &Value) -> bool {
    match v {
        Value::Object(o) => !matches!(o.get("id"), None | Some(Value::Null)),
        _ => true,
    }
}

fn label_of(v: &Value) -> String {
    match v {
        Value::Array(batch) => {
            let names: Vec<String> = batch.iter().take(8).map(method_label).collect();
            let more = if batch.len() > 8 { ",..." } else { "" };
            format!("batch[{}{more}]", names.join(","))
        }
        one => method_label(one),
    }
}

/// The method name, restricted to the characters SPDK's method names use (so
/// a hostile name cannot forge log lines), at most 64 of them.
pub fn method_label(v: &Value) -> String {
    match v.get("method").and_then(Value::as_str) {
        Some(m) => {
            let clean: String = m
                .chars()
                .take(64)
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                        c
                    } else {
                        '?'
                    }
                })
                .collect();
            if clean.is_empty() {
                "-".to_string()
            } else {
                clean
            }
        }
        None => "-".to_string(),
    }
}

/// A JSON-RPC 2.0 error body written by the gateway itself.
pub fn error_body(id: &Value, code: i64, message: &str) -> Vec<u8> {
    let body = json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": { "code": code, "message": message },
    });
    let mut out = body.to_string().into_bytes();
    out.push(b'\n');
    out
}
