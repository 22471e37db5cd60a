// SPDX-License-Identifier: Apache-2.0
//! Test helpers: ports in 127.0.0.1:19000-19099, the gateway binary as a
//! child process (killed on drop), and a small HTTP/1.1 client over plain
//! TCP or TLS.
//!
//! Owns: nothing the gateway does; only the tests' side of the wire.
//! Must never: use ports outside 19000-19099; leave a child process behind
//! (every child is owned by a guard that kills it on drop, also on panic).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;

pub const GATEWAY: &str = env!("CARGO_BIN_EXE_ozbd-gateway");

static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// A port in 19000-19099 that is free right now (each call in this process
/// starts after the previous one's, so parallel tests do not collide).
pub fn free_port() -> u16 {
    let base = (std::process::id() % 5) as u16 * 20;
    for _ in 0..100 {
        let n = NEXT_PORT.fetch_add(1, Ordering::SeqCst);
        let port = 19000 + (base + n) % 100;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 127.0.0.1:19000-19099");
}

/// The gateway as a child process; killed (and reaped) on drop.
pub struct Gateway {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Gateway {
    /// Start the gateway on a free port with `args` (without --listen) and
    /// `env`, and wait for its "listening on" line. Retries on another port
    /// if the chosen one was taken meanwhile.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Gateway {
        for _ in 0..5 {
            let port = free_port();
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
            let mut cmd = Command::new(GATEWAY);
            cmd.arg("--listen")
                .arg(addr.to_string())
                .args(args)
                .env_remove("OZBD_GATEWAY_AUTH")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            for (k, v) in env {
                cmd.env(k, v);
            }
            let mut child = cmd.spawn().expect("spawn ozbd-gateway");
            let stderr = child.stderr.take().expect("stderr");
            let log = Arc::new(Mutex::new(Vec::new()));
            let (tx, rx) = std::sync::mpsc::channel::<bool>();
            {
                let log = Arc::clone(&log);
                std::thread::spawn(move || {
                    let mut told = false;
                    for line in BufReader::new(stderr).lines() {
                        let Ok(line) = line else { break };
                        eprintln!("[gateway] {line}");
                        let listening = line.contains("listening on");
                        log.lock().expect("log").push(line);
                        if !told && listening {
                            let _ = tx.send(true);
                            told = true;
                        }
                    }
                    if !told {
                        let _ = tx.send(false);
                    }
                });
            }
            let gw = Gateway { child, addr, log };
            match rx.recv_timeout(Duration::from_secs(20)) {
                Ok(true) => return gw,
                _ => {
                    let text = gw.log_text();
                    if text.contains("cannot listen") {
                        continue;
                    }
                    panic!("ozbd-gateway did not start; its stderr:\n{text}");
                }
            }
        }
        panic!("ozbd-gateway could not bind a port in 19000-19099");
    }

    pub fn log_text(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP response as read off the wire.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "HTTP {} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// `Authorization: Basic ...` for user:password.
pub fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Build a request's bytes.
pub fn request(method: &str, auth: Option<&str>, body: &[u8], keep_alive: bool) -> Vec<u8> {
    let mut head = format!("{method} / HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    if let Some(a) = auth {
        head.push_str(&format!("Authorization: {a}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        head.push_str("Content-Type: application/json\r\n");
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    if !keep_alive {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Read one response from `r` (framed by Content-Length; 204 and HEAD
/// responses have no body).
pub fn read_reply<R: BufRead>(r: &mut R, head_request: bool) -> std::io::Result<Reply> {
    let mut status_line = String::new();
    if r.read_line(&mut status_line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed before a response",
        ));
    }
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((n, v)) = line.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    if status == 100 {
        return read_reply(r, head_request);
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![
        0u8;
        if head_request || status == 204 {
            0
        } else {
            len
        }
    ];
    r.read_exact(&mut body)?;
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// Send one request on a new plain connection and read the response.
pub fn exchange(addr: SocketAddr, req: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).expect("connect to the gateway");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    // A refused body may not be read by the server: ignore write errors and
    // read what it answered.
    let _ = s.write_all(req);
    let mut r = BufReader::new(s);
    read_reply(&mut r, req.starts_with(b"HEAD ")).expect("read the gateway's response")
}

/// POST a JSON-RPC body with optional Authorization.
pub fn post(addr: SocketAddr, auth: Option<&str>, body: &[u8]) -> Reply {
    exchange(addr, &request("POST", auth, body, false))
}

/// Wait until `f` is true or `secs` pass.
pub fn wait_for(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

/// A scratch directory under /tmp, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::path::PathBuf::from(format!("/tmp/gw-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Read everything from a stream until EOF or error (for checking that a
/// connection gets no HTTP answer).
pub fn read_all_lossy<R: Read>(mut r: R) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = r.read_to_end(&mut out);
    out
}
