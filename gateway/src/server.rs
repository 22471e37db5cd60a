// SPDX-License-Identifier: Apache-2.0
//! The gateway's request loop: a bounded pool of worker threads, each serving
//! one client connection at a time, each request over its own connection to
//! SPDK.
//!
//! Owns: what a request gets: HEAD -> 200 (a liveness probe, as SPDK's
//! rpc_http_proxy.py answers it, without auth); other non-POST -> 405;
//! missing or wrong Basic auth -> 401 with `WWW-Authenticate`; a body over
//! `--max-body` -> 413; a body that is not JSON -> 400 (-32700); otherwise
//! SPDK's answer with 200 (JSON-RPC errors included, verbatim), 204 for a
//! notification SPDK did not answer, and 502/503/504 with a JSON-RPC error
//! body when SPDK cannot be reached or does not answer. Keep-alive, with
//! [`IDLE_TIMEOUT`] between requests and [`REQUEST_TIMEOUT`] to send one.
//! One log line per request: peer, method, status, milliseconds.
//! Must never: log credentials, Authorization headers or params; forward a
//! request before it is authenticated; panic a worker away (a panic is caught
//! and logged, the worker goes on).

use std::io::BufReader;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection, StreamOwned};
use serde_json::Value;

use crate::auth::{Policy, REALM};
use crate::conn::{Timed, Transport};
use crate::glog;
use crate::http::{self, Framing, Head, HttpError, Response};
use crate::jsonrpc::{self, INVALID_REQUEST, PARSE_ERROR};
use crate::rpc::SpdkRpc;

/// How long a kept-alive connection may sit idle between requests.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client has to send one request (head and body) once it began,
/// and the TLS handshake before it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long writing a response may block.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything the workers share.
pub struct Config {
    pub policy: Policy,
    pub tls: Option<Arc<ServerConfig>>,
    pub rpc: SpdkRpc,
    pub max_body: usize,
    pub workers: usize,
}

/// Serve `listener` forever (returns only if the workers cannot start).
pub fn serve(listener: TcpListener, config: Config) -> std::io::Result<()> {
    let workers = config.workers.max(1);
    let config = Arc::new(config);
    let (tx, rx) = sync_channel::<TcpStream>(workers * 4);
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..workers {
        let rx = Arc::clone(&rx);
        let config = Arc::clone(&config);
        std::thread::Builder::new()
            .name(format!("gw-worker-{i}"))
            .spawn(move || worker(&rx, &config))?;
    }
    for stream in listener.incoming() {
        match stream {
            Ok(s) => {
                if tx.send(s).is_err() {
                    break;
                }
            }
            Err(e) => {
                // EMFILE and friends: say so, back off, go on.
                glog!("accept failed: {e} (raise the open-files limit if this repeats)");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    Ok(())
}

fn worker(rx: &Mutex<Receiver<TcpStream>>, config: &Config) {
    loop {
        let next = {
            let guard = match rx.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            guard.recv()
        };
        let Ok(stream) = next else { return };
        if catch_unwind(AssertUnwindSafe(|| serve_connection(stream, config))).is_err() {
            glog!("BUG: a worker panicked serving a connection; the connection was dropped");
        }
    }
}

/// What one request came to.
struct Outcome {
    resp: Response,
    label: String,
    /// Why it failed, for the log line.
    note: Option<String>,
    /// Drain what the client still sends before closing.
    linger: bool,
}

impl Outcome {
    fn new(resp: Response, label: impl Into<String>) -> Outcome {
        Outcome {
            resp,
            label: label.into(),
            note: None,
            linger: false,
        }
    }

    fn note(mut self, note: impl Into<String>) -> Outcome {
        self.note = Some(note.into());
        self
    }

    fn lingering(mut self) -> Outcome {
        self.linger = true;
        self.resp.close = true;
        self
    }
}

fn serve_connection(stream: TcpStream, config: &Config) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".to_string());
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let transport = match &config.tls {
        None => Transport::Plain(stream),
        Some(tls) => match ServerConnection::new(Arc::clone(tls)) {
            Ok(conn) => Transport::Tls(Box::new(StreamOwned::new(conn, stream))),
            Err(e) => {
                glog!("{peer}: TLS setup failed: {e}");
                return;
            }
        },
    };
    let tls = config.tls.is_some();
    let mut reader = BufReader::with_capacity(16 << 10, Timed::new(transport));
    let mut first = true;
    loop {
        // Wait for the first byte of the next request (the TLS handshake,
        // for a new connection) ...
        let wait = if first { REQUEST_TIMEOUT } else { IDLE_TIMEOUT };
        reader.get_mut().set_deadline(Instant::now() + wait);
        match std::io::BufRead::fill_buf(&mut reader) {
            Ok([]) => return reader.into_inner().close(false),
            Ok(_) => {}
            Err(e) => {
                if first && tls {
                    glog!("{peer}: TLS handshake or first read failed: {e}");
                }
                return reader.into_inner().close(false);
            }
        }
        first = false;
        // ... then give it REQUEST_TIMEOUT for the whole request.
        let started = Instant::now();
        reader.get_mut().set_deadline(started + REQUEST_TIMEOUT);
        let Some(out) = handle_request(&mut reader, config) else {
            return reader.into_inner().close(false);
        };
        let head_only = out.label == "HTTP-HEAD";
        let written = http::write_response(reader.get_mut(), &out.resp, head_only);
        let ms = started.elapsed().as_millis();
        let note = out
            .note
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        glog!("{peer} {} -> {} {ms}ms{note}", out.label, out.resp.status);
        if written.is_err() || out.resp.close {
            return reader.into_inner().close(out.linger && written.is_ok());
        }
    }
}

/// Read one request and work out the response. `None`: the client went
/// away (or stalled) before sending a whole request head; just close.
fn handle_request(reader: &mut BufReader<Timed>, config: &Config) -> Option<Outcome> {
    let head = match http::read_head(reader) {
        Ok(h) => h,
        Err(HttpError::Eof) => return None,
        Err(HttpError::HeadTooLarge) => {
            return Some(
                Outcome::new(
                    refusal(
                        431,
                        &format!(
                            "request head larger than {} KiB or more than {} headers",
                            http::MAX_HEAD >> 10,
                            http::MAX_HEADERS
                        ),
                    ),
                    "-",
                )
                .lingering(),
            )
        }
        Err(HttpError::Bad(msg)) => return Some(Outcome::new(refusal(400, &msg), "-").lingering()),
        Err(HttpError::BodyTooLarge { .. }) => return None,
        Err(HttpError::Io(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
            return Some(
                Outcome::new(refusal(408, "the request head did not arrive in time"), "-")
                    .note("timeout")
                    .lingering(),
            )
        }
        Err(HttpError::Io(_)) => return None,
    };

    if head.method == "HEAD" {
        let mut out = Outcome::new(Response::json(200, Vec::new()), "HTTP-HEAD");
        out.resp.close = head.wants_close() || !matches!(head.framing(), Ok(Framing::None));
        return Some(out);
    }
    if head.method != "POST" {
        let resp = refusal(
            405,
            &format!(
                "method {} is not allowed: send JSON-RPC 2.0 requests with POST",
                sanitize(&head.method)
            ),
        )
        .header("Allow", "POST, HEAD");
        let label = format!("HTTP-{}", sanitize(&head.method));
        return Some(refused_before_body(
            reader,
            &head,
            resp,
            label,
            config.max_body,
        ));
    }
    if !config.policy.allows(head.header("authorization")) {
        let resp = refusal(
            401,
            "authentication required: send HTTP Basic credentials that the gateway's \
             --auth-file or OZBD_GATEWAY_AUTH lists",
        )
        .header(
            "WWW-Authenticate",
            format!("Basic realm=\"{REALM}\", charset=\"UTF-8\""),
        );
        return Some(
            refused_before_body(reader, &head, resp, "-".to_string(), config.max_body)
                .note("bad or missing credentials"),
        );
    }

    let framing = match head.framing() {
        Ok(f) => f,
        Err(HttpError::Bad(msg)) => return Some(Outcome::new(refusal(400, &msg), "-").lingering()),
        Err(_) => return Some(Outcome::new(refusal(400, "bad body framing"), "-").lingering()),
    };
    if let Framing::Length(n) = framing {
        if n > config.max_body as u64 {
            return Some(too_large(config.max_body));
        }
    }
    if head.expects_continue()
        && framing != Framing::None
        && http::write_continue(reader.get_mut()).is_err()
    {
        return None;
    }
    let body = match http::read_body(reader, framing, config.max_body) {
        Ok(b) => b,
        Err(HttpError::BodyTooLarge { .. }) => return Some(too_large(config.max_body)),
        Err(HttpError::Bad(msg)) => return Some(Outcome::new(refusal(400, &msg), "-").lingering()),
        Err(HttpError::Io(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
            return Some(
                Outcome::new(refusal(408, "the request body did not arrive in time"), "-")
                    .note("timeout")
                    .lingering(),
            )
        }
        Err(_) => return None,
    };
    let mut out = forward(&body, config);
    out.resp.close |= head.wants_close();
    Some(out)
}

/// Inspect, translate and forward an authenticated body to SPDK.
fn forward(body: &[u8], config: &Config) -> Outcome {
    let req = match jsonrpc::inspect(body) {
        Ok(r) => r,
        Err(msg) => {
            return Outcome::new(
                Response::json(400, jsonrpc::error_body(&Value::Null, PARSE_ERROR, &msg)),
                "-",
            )
            .note("not JSON")
        }
    };
    for t in &req.translations {
        glog!(
            "translated {}: size {} bytes -> size_in_mib {} (SPDK >= 24.05 accepts only size_in_mib)",
            t.method,
            t.bytes,
            t.mib
        );
    }
    let bytes = req.forward.as_deref().unwrap_or(body);
    match config.rpc.call(bytes, req.expects_response) {
        Ok(Some(answer)) => Outcome::new(Response::json(200, answer), req.label),
        Ok(None) => Outcome::new(Response::json(204, Vec::new()), req.label).note("notification"),
        Err(e) => {
            let status = e.http_status();
            let kind = e.kind();
            let body = jsonrpc::error_body(&req.id, e.code(), &e.to_string());
            Outcome::new(Response::json(status, body), req.label).note(kind)
        }
    }
}

/// A refusal sent before the body was read: read and drop a small declared
/// body so the connection can go on; otherwise close after the response.
fn refused_before_body(
    reader: &mut BufReader<Timed>,
    head: &Head,
    mut resp: Response,
    label: String,
    max_body: usize,
) -> Outcome {
    resp.close |= head.wants_close();
    match head.framing() {
        Ok(Framing::None) => Outcome::new(resp, label),
        Ok(Framing::Length(n)) if n <= max_body as u64 && !head.expects_continue() => {
            match http::read_body(reader, Framing::Length(n), max_body) {
                Ok(_) => Outcome::new(resp, label),
                Err(_) => Outcome::new(resp, label).lingering(),
            }
        }
        _ => Outcome::new(resp, label).lingering(),
    }
}

fn too_large(max_body: usize) -> Outcome {
    let msg = format!(
        "request body larger than {max_body} bytes: send a smaller request, or start the \
         gateway with a larger --max-body"
    );
    Outcome::new(
        Response::json(
            413,
            jsonrpc::error_body(&Value::Null, INVALID_REQUEST, &msg),
        ),
        "-",
    )
    .note("body too large")
    .lingering()
}

/// An HTTP-level refusal with a JSON-RPC error body.
fn refusal(status: u16, message: &str) -> Response {
    Response::json(
        status,
        jsonrpc::error_body(&Value::Null, INVALID_REQUEST, message),
    )
}

/// An HTTP method name fit for a log line.
fn sanitize(s: &str) -> String {
    s.chars()
        .take(16)
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '?' })
        .collect()
}

/// The address the gateway listens on, for the startup line.
pub fn describe(addr: SocketAddr, tls: bool) -> String {
    format!("{}://{addr}", if tls { "https" } else { "http" })
}
