// SPDX-License-Identifier: Apache-2.0
//! The client side of SPDK's Unix-socket JSON-RPC: one connection per
//! request.
//!
//! SPDK writes a response with no length or delimiter in front of it, so the
//! answer is read until one complete JSON value has arrived (a scanner finds
//! where the top-level object ends; serde_json then checks it).
//! Owns: connecting, sending, the `--rpc-timeout` deadline, reading one
//! response, and what each failure means for the HTTP client (status, code,
//! and a message saying what to do).
//! Must never: share a connection between requests; block past the deadline;
//! change the response bytes; hold more than [`MAX_RESPONSE`] in memory.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::de::IgnoredAny;

use crate::jsonrpc;

/// The largest response accepted (SPDK's own send buffer stops at 32 MiB).
pub const MAX_RESPONSE: usize = 64 << 20;

/// How long to wait for an error answer to a notification (SPDK answers a
/// notification only when it fails, and then at once).
pub const NOTIFICATION_GRACE: Duration = Duration::from_millis(250);

/// SPDK's RPC socket.
#[derive(Debug, Clone)]
pub struct SpdkRpc {
    path: PathBuf,
    timeout: Duration,
}

/// Why a call failed.
#[derive(Debug)]
pub enum RpcError {
    Connect { path: PathBuf, source: io::Error },
    Send { path: PathBuf, source: io::Error },
    Receive { path: PathBuf, source: io::Error },
    Timeout { secs: u64 },
    Closed { received: usize },
    Malformed(String),
    TooLarge,
}

impl RpcError {
    /// The HTTP status to answer with: 503 when SPDK is not there (try again
    /// once it runs), 504 on timeout, 502 for everything else.
    pub fn http_status(&self) -> u16 {
        match self {
            RpcError::Connect { source, .. } => match source.kind() {
                io::ErrorKind::PermissionDenied => 502,
                _ => 503,
            },
            RpcError::Timeout { .. } => 504,
            _ => 502,
        }
    }

    /// The JSON-RPC error code of the gateway's error body.
    pub fn code(&self) -> i64 {
        match self {
            RpcError::Connect { .. } => jsonrpc::SPDK_UNREACHABLE,
            RpcError::Timeout { .. } => jsonrpc::SPDK_TIMEOUT,
            _ => jsonrpc::SPDK_BAD_RESPONSE,
        }
    }

    /// A short name for the log line.
    pub fn kind(&self) -> &'static str {
        match self {
            RpcError::Connect { .. } => "spdk-unreachable",
            RpcError::Send { .. } => "spdk-send-failed",
            RpcError::Receive { .. } => "spdk-receive-failed",
            RpcError::Timeout { .. } => "spdk-timeout",
            RpcError::Closed { .. } => "spdk-closed",
            RpcError::Malformed(_) => "spdk-malformed",
            RpcError::TooLarge => "spdk-response-too-large",
        }
    }
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RpcError::Connect { path, source } => {
                let p = path.display();
                match source.kind() {
                    io::ErrorKind::NotFound => write!(
                        f,
                        "ozbd-gateway: SPDK's RPC socket {p} does not exist: start spdk_tgt \
                         (it creates the socket; `-r {p}` if not the default) or point \
                         the gateway's --spdk-socket at the socket it uses"
                    ),
                    io::ErrorKind::ConnectionRefused => write!(
                        f,
                        "ozbd-gateway: nothing is listening on SPDK's RPC socket {p} \
                         (a stale socket file; spdk_tgt is not running): start spdk_tgt"
                    ),
                    io::ErrorKind::PermissionDenied => write!(
                        f,
                        "ozbd-gateway: permission denied opening SPDK's RPC socket {p}: run \
                         the gateway as a user that may open it (spdk_tgt's user or group)"
                    ),
                    _ => write!(
                        f,
                        "ozbd-gateway: cannot connect to SPDK's RPC socket {p}: {source}; \
                         check that spdk_tgt is running and --spdk-socket names its socket"
                    ),
                }
            }
            RpcError::Send { path, source } => write!(
                f,
                "ozbd-gateway: sending the request to SPDK ({}) failed: {source}; \
                 spdk_tgt may have exited: check its log, then retry",
                path.display()
            ),
            RpcError::Receive { path, source } => write!(
                f,
                "ozbd-gateway: reading SPDK's answer ({}) failed: {source}; \
                 spdk_tgt may have exited: check its log, then retry",
                path.display()
            ),
            RpcError::Timeout { secs } => write!(
                f,
                "ozbd-gateway: SPDK did not answer within {secs} s: the target is busy or \
                 hung; check spdk_tgt, or raise the gateway's --rpc-timeout for slow methods \
                 (the request may still complete in SPDK)"
            ),
            RpcError::Closed { received } => write!(
                f,
                "ozbd-gateway: SPDK closed the connection after {received} bytes, before a \
                 complete answer: check spdk_tgt's log (it may have crashed or refused the request)"
            ),
            RpcError::Malformed(e) => write!(
                f,
                "ozbd-gateway: SPDK's answer is not valid JSON ({e}): check spdk_tgt's log"
            ),
            RpcError::TooLarge => write!(
                f,
                "ozbd-gateway: SPDK's answer is larger than {} MiB: ask for less (for example \
                 pass a name to bdev_get_bdevs)",
                MAX_RESPONSE >> 20
            ),
        }
    }
}

impl SpdkRpc {
    pub fn new(path: impl Into<PathBuf>, timeout: Duration) -> SpdkRpc {
        SpdkRpc {
            path: path.into(),
            timeout,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Send one request body and return SPDK's answer (one JSON value,
    /// byte for byte, followed by a newline). For a notification
    /// (`expects_response == false`) the answer is waited for only
    /// [`NOTIFICATION_GRACE`]; `None` means SPDK sent nothing.
    pub fn call(&self, body: &[u8], expects_response: bool) -> Result<Option<Vec<u8>>, RpcError> {
        let start = Instant::now();
        let deadline = start + self.timeout;
        let mut sock = UnixStream::connect(&self.path).map_err(|source| RpcError::Connect {
            path: self.path.clone(),
            source,
        })?;
        let send_err = |source| RpcError::Send {
            path: self.path.clone(),
            source,
        };
        sock.set_write_timeout(Some(self.timeout.max(Duration::from_millis(1))))
            .map_err(send_err)?;
        if let Err(e) = sock.write_all(body).and_then(|()| sock.flush()) {
            return Err(if is_timeout(&e) {
                self.timeout_error()
            } else {
                send_err(e)
            });
        }
        let read_deadline = if expects_response {
            deadline
        } else {
            (Instant::now() + NOTIFICATION_GRACE).min(deadline)
        };
        match read_one_value(&mut sock, read_deadline) {
            Ok(v) => Ok(Some(v)),
            Err(ReadError::Timeout) if !expects_response => Ok(None),
            Err(ReadError::Closed(0)) if !expects_response => Ok(None),
            Err(ReadError::Timeout) => Err(self.timeout_error()),
            Err(ReadError::Closed(received)) => Err(RpcError::Closed { received }),
            Err(ReadError::Io(source)) => Err(RpcError::Receive {
                path: self.path.clone(),
                source,
            }),
            Err(ReadError::Malformed(e)) => Err(RpcError::Malformed(e)),
            Err(ReadError::TooLarge) => Err(RpcError::TooLarge),
        }
    }

    fn timeout_error(&self) -> RpcError {
        RpcError::Timeout {
            secs: self.timeout.as_secs(),
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Why reading one value stopped.
#[derive(Debug)]
pub enum ReadError {
    Timeout,
    /// The peer closed after this many bytes.
    Closed(usize),
    Io(io::Error),
    Malformed(String),
    TooLarge,
}

/// Read from `sock` until one complete JSON value has arrived; return its
/// bytes plus a newline.
fn read_one_value(sock: &mut UnixStream, deadline: Instant) -> Result<Vec<u8>, ReadError> {
    let mut buf: Vec<u8> = Vec::with_capacity(16 << 10);
    let mut chunk = vec![0u8; 64 << 10];
    let mut scanner = Scanner::default();
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(ReadError::Timeout);
        }
        sock.set_read_timeout(Some(deadline - now))
            .map_err(ReadError::Io)?;
        let n = match sock.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) => return Err(ReadError::Timeout),
            Err(e) => return Err(ReadError::Io(e)),
        };
        if n == 0 {
            return Err(ReadError::Closed(buf.len()));
        }
        if buf.len() + n > MAX_RESPONSE {
            return Err(ReadError::TooLarge);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(value) = complete_value(&mut scanner, &buf)? {
            return Ok(value);
        }
    }
}

/// If `buf` holds one complete JSON value (after optional whitespace), its
/// bytes plus a newline.
pub fn complete_value(scanner: &mut Scanner, buf: &[u8]) -> Result<Option<Vec<u8>>, ReadError> {
    let range = match scanner.feed(buf) {
        Scan::Incomplete => return Ok(None),
        Scan::Complete(start, end) => start..end,
        Scan::NotContainer => {
            // Not an object or array (SPDK never sends these): fall back to
            // asking serde_json whether a whole value is there yet. A value
            // at the very end of the buffer may go on (`12` of `123`), so
            // one is complete only once a byte (SPDK's newline) follows it.
            let mut it = serde_json::Deserializer::from_slice(buf).into_iter::<IgnoredAny>();
            match it.next() {
                Some(Ok(_)) if it.byte_offset() >= buf.len() => return Ok(None),
                Some(Ok(_)) => {
                    let end = it.byte_offset();
                    let start = buf.len() - buf.trim_ascii_start().len();
                    start..end
                }
                Some(Err(e)) if e.is_eof() => return Ok(None),
                Some(Err(e)) => return Err(ReadError::Malformed(e.to_string())),
                None => return Ok(None),
            }
        }
    };
    let value = &buf[range];
    serde_json::from_slice::<IgnoredAny>(value).map_err(|e| ReadError::Malformed(e.to_string()))?;
    let mut out = Vec::with_capacity(value.len() + 1);
    out.extend_from_slice(value);
    out.push(b'\n');
    Ok(Some(out))
}

/// Finds where a top-level JSON object or array ends, resuming where it
/// stopped (so reading a large answer in pieces costs one pass in total).
#[derive(Debug, Default)]
pub struct Scanner {
    pos: usize,
    start: Option<usize>,
    depth: usize,
    in_string: bool,
    escaped: bool,
    not_container: bool,
}

/// What the scanner found so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Scan {
    Incomplete,
    /// The value spans `start..end`.
    Complete(usize, usize),
    /// The value does not start with `{` or `[`.
    NotContainer,
}

impl Scanner {
    /// Scan the bytes of `buf` not yet seen (`buf` only ever grows).
    pub fn feed(&mut self, buf: &[u8]) -> Scan {
        if self.not_container {
            return Scan::NotContainer;
        }
        while self.pos < buf.len() {
            let b = buf[self.pos];
            let at = self.pos;
            self.pos += 1;
            if self.start.is_none() {
                match b {
                    b' ' | b'\t' | b'\r' | b'\n' => continue,
                    b'{' | b'[' => {
                        self.start = Some(at);
                        self.depth = 1;
                        continue;
                    }
                    _ => {
                        self.not_container = true;
                        return Scan::NotContainer;
                    }
                }
            }
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        return Scan::Complete(self.start.unwrap_or(0), self.pos);
                    }
                }
                _ => {}
            }
        }
        Scan::Incomplete
    }
}
