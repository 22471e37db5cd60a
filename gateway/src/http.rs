// SPDX-License-Identifier: Apache-2.0
//! HTTP/1.1 on the wire: reading a request head and body within limits, and
//! writing a response.
//!
//! Owns: the head-size and body-size limits (a body over `--max-body` is
//! refused before it is read when its length is declared, and as soon as it
//! passes the limit when it is chunked), body framing (Content-Length or
//! chunked; both at once is refused, as RFC 9112 advises against request
//! smuggling), and the response format.
//! Must never: read more than the limits allow into memory; accept a body
//! whose framing is ambiguous; decide what a request means (server.rs does).

use std::io::{self, BufRead, Read, Write};

/// The largest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 16 << 10;
/// The most headers accepted.
pub const MAX_HEADERS: usize = 64;
/// The longest chunk-size line (or trailer line) of a chunked body.
const MAX_CHUNK_LINE: usize = 1024;

/// Why reading a request failed.
#[derive(Debug)]
pub enum HttpError {
    /// The peer closed the connection before sending a byte of a request.
    Eof,
    /// The head is larger than [`MAX_HEAD`] or has more than [`MAX_HEADERS`].
    HeadTooLarge,
    /// The body is larger than the limit.
    BodyTooLarge {
        limit: usize,
    },
    /// Not HTTP/1.x as the gateway accepts it; the message says what.
    Bad(String),
    Io(io::Error),
}

impl From<io::Error> for HttpError {
    fn from(e: io::Error) -> HttpError {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            HttpError::Bad("the connection closed in the middle of the request".to_string())
        } else {
            HttpError::Io(e)
        }
    }
}

/// A request line and its headers.
#[derive(Debug, Clone)]
pub struct Head {
    pub method: String,
    pub path: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    /// Names in lower case, values as sent.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// How the body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
}

impl Head {
    /// The first header of that (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// Whether a comma-separated header (Connection, Expect) lists `token`.
    fn lists(&self, name: &str, token: &str) -> bool {
        self.all(name).any(|v| {
            v.split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    }

    /// True when the client asked to close after this request (or speaks
    /// HTTP/1.0 without keep-alive).
    pub fn wants_close(&self) -> bool {
        if self.minor == 0 {
            !self.lists("connection", "keep-alive")
        } else {
            self.lists("connection", "close")
        }
    }

    /// `Expect: 100-continue`.
    pub fn expects_continue(&self) -> bool {
        self.minor >= 1 && self.lists("expect", "100-continue")
    }

    /// How the body is delimited. Transfer-Encoding must end in `chunked`
    /// and must not come with Content-Length; several Content-Length values
    /// must agree.
    pub fn framing(&self) -> Result<Framing, HttpError> {
        let te: Vec<&[u8]> = self.all("transfer-encoding").collect();
        let cl: Vec<&[u8]> = self.all("content-length").collect();
        if !te.is_empty() {
            if !cl.is_empty() {
                return Err(HttpError::Bad(
                    "both Transfer-Encoding and Content-Length were sent: send one".to_string(),
                ));
            }
            let last = te
                .iter()
                .flat_map(|v| v.split(|&b| b == b','))
                .map(|t| t.trim_ascii())
                .next_back()
                .unwrap_or_default();
            if !last.eq_ignore_ascii_case(b"chunked") {
                return Err(HttpError::Bad(
                    "unsupported Transfer-Encoding: send the body with Content-Length or chunked"
                        .to_string(),
                ));
            }
            return Ok(Framing::Chunked);
        }
        let mut length: Option<u64> = None;
        for v in cl {
            for part in v.split(|&b| b == b',') {
                let n = parse_decimal(part.trim_ascii()).ok_or_else(|| {
                    HttpError::Bad("Content-Length is not a decimal number".to_string())
                })?;
                if length.is_some_and(|l| l != n) {
                    return Err(HttpError::Bad(
                        "conflicting Content-Length values".to_string(),
                    ));
                }
                length = Some(n);
            }
        }
        Ok(match length {
            Some(n) => Framing::Length(n),
            None => Framing::None,
        })
    }
}

fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Read one request head. Leading empty lines (left by a previous request)
/// are skipped, as RFC 9112 allows.
pub fn read_head<R: BufRead>(r: &mut R) -> Result<Head, HttpError> {
    let mut head: Vec<u8> = Vec::with_capacity(1024);
    loop {
        let avail = r.fill_buf()?;
        if avail.is_empty() {
            return Err(if head.iter().all(|b| matches!(b, b'\r' | b'\n')) {
                HttpError::Eof
            } else {
                HttpError::Bad("the connection closed in the middle of the request head".into())
            });
        }
        let old = head.len();
        let take = avail.len().min(MAX_HEAD + 4 - old);
        head.extend_from_slice(&avail[..take]);
        // Skip empty lines in front of the request line.
        let lead = head
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count();
        let from = old.saturating_sub(3).max(lead);
        if let Some(end) = find_head_end(&head, from) {
            r.consume(end - old);
            head.truncate(end);
            return parse_head(&head[lead..]);
        }
        r.consume(take);
        if head.len() >= MAX_HEAD + 4 {
            return Err(HttpError::HeadTooLarge);
        }
    }
}

/// The index just past the first `\r\n\r\n` (or `\n\n`) at or after `from`.
fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < buf.len() {
        if buf[i] == b'\n' {
            if i + 1 < buf.len() && buf[i + 1] == b'\n' {
                return Some(i + 2);
            }
            if i + 2 < buf.len() && buf[i + 1] == b'\r' && buf[i + 2] == b'\n' {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

fn parse_head(bytes: &[u8]) -> Result<Head, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(HttpError::Bad("incomplete request head".to_string()))
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeadTooLarge),
        Err(e) => return Err(HttpError::Bad(format!("malformed request head ({e})"))),
    }
    let (Some(method), Some(path), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(HttpError::Bad("incomplete request line".to_string()));
    };
    Ok(Head {
        method: method.to_string(),
        path: path.to_string(),
        minor,
        headers: req
            .headers
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
            .collect(),
    })
}

/// Read the body that `framing` announces, refusing more than `limit` bytes.
pub fn read_body<R: BufRead>(
    r: &mut R,
    framing: Framing,
    limit: usize,
) -> Result<Vec<u8>, HttpError> {
    match framing {
        Framing::None => Ok(Vec::new()),
        Framing::Length(n) => {
            if n > limit as u64 {
                return Err(HttpError::BodyTooLarge { limit });
            }
            let mut body = vec![0u8; n as usize];
            r.read_exact(&mut body)?;
            Ok(body)
        }
        Framing::Chunked => read_chunked(r, limit),
    }
}

fn read_chunked<R: BufRead>(r: &mut R, limit: usize) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    loop {
        let line = read_line(r)?;
        let size_text = line
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        if size_text.is_empty()
            || size_text.len() > 15
            || !size_text.iter().all(u8::is_ascii_hexdigit)
        {
            return Err(HttpError::Bad(
                "malformed chunk size in a chunked body".to_string(),
            ));
        }
        let size = std::str::from_utf8(size_text)
            .ok()
            .and_then(|t| u64::from_str_radix(t, 16).ok())
            .ok_or_else(|| HttpError::Bad("malformed chunk size in a chunked body".to_string()))?;
        if size == 0 {
            // Trailer fields, then an empty line.
            loop {
                if read_line(r)?.is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() as u64 + size > limit as u64 {
            return Err(HttpError::BodyTooLarge { limit });
        }
        let start = body.len();
        body.resize(start + size as usize, 0);
        r.read_exact(&mut body[start..])?;
        if !read_line(r)?.is_empty() {
            return Err(HttpError::Bad(
                "a chunk is longer than its size says".to_string(),
            ));
        }
    }
}

/// One line without its `\r\n` (or `\n`), at most [`MAX_CHUNK_LINE`] bytes.
fn read_line<R: BufRead>(r: &mut R) -> Result<Vec<u8>, HttpError> {
    let mut line = Vec::new();
    let n = r
        .by_ref()
        .take(MAX_CHUNK_LINE as u64 + 2)
        .read_until(b'\n', &mut line)?;
    if n == 0 || line.last() != Some(&b'\n') {
        return Err(HttpError::Bad(
            "a chunk line is too long or the connection closed in a chunked body".to_string(),
        ));
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(line)
}

/// A response to write.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Extra headers (Content-Type, Content-Length and Connection are added).
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// Send `Connection: close` (and the caller closes).
    pub close: bool,
}

impl Response {
    /// A JSON response.
    pub fn json(status: u16, body: Vec<u8>) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body,
            close: false,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    pub fn closing(mut self) -> Response {
        self.close = true;
        self
    }
}

/// The reason phrase for a status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// Write `resp`; for a HEAD request (`head_only`) the body is left out but
/// its length is still announced.
pub fn write_response<W: Write>(w: &mut W, resp: &Response, head_only: bool) -> io::Result<()> {
    let mut out = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    if resp.status != 204 {
        if !resp.body.is_empty() {
            out.push_str("Content-Type: application/json\r\n");
        }
        out.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    }
    for (name, value) in &resp.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if resp.close {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !head_only && resp.status != 204 {
        bytes.extend_from_slice(&resp.body);
    }
    w.write_all(&bytes)?;
    w.flush()
}

/// `100 Continue`, sent before reading a body the client holds back.
pub fn write_continue<W: Write>(w: &mut W) -> io::Result<()> {
    w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    w.flush()
}
