// SPDX-License-Identifier: Apache-2.0
//! ozbd-gateway: an HTTP(S) JSON-RPC gateway with Basic auth in front of
//! SPDK's Unix-socket JSON-RPC (what SPDK's `scripts/rpc_http_proxy.py`
//! offers, multi-threaded, with TLS, and with the `size` -> `size_in_mib`
//! translation that spdk-csi and Cinder need against SPDK >= 24.05).
//!
//! Owns: the module list; the binary (main.rs) wires them together.
//! Must never: hold logic of its own.

pub mod auth;
pub mod conn;
pub mod http;
pub mod jsonrpc;
pub mod log;
pub mod rpc;
pub mod server;
pub mod tls;
pub mod translate;
