// SPDX-License-Identifier: Apache-2.0
//! One client connection: plain TCP or TLS, read deadlines, and closing.
//!
//! Owns: the transport (`Plain` or `Tls`), the deadline every read is held
//! to (so a client that sends slowly or not at all frees its worker), and the
//! lingering close after a refused body (the response is sent, then what the
//! client still sends is read and dropped for a moment, so the client reads
//! the response instead of a connection reset).
//! Must never: read without a deadline; keep draining past its byte or time
//! budget.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use rustls::{ServerConnection, StreamOwned};

/// How long a lingering close drains the client's leftover bytes at most.
const LINGER: Duration = Duration::from_secs(2);
/// How many leftover bytes a lingering close drains at most.
const LINGER_BYTES: usize = 64 << 20;

/// The byte stream under HTTP.
pub enum Transport {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl Transport {
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(s) => &s.sock,
        }
    }
}

/// A transport whose reads stop at a deadline (`TimedOut` after it).
pub struct Timed {
    transport: Transport,
    deadline: Option<Instant>,
}

impl Timed {
    pub fn new(transport: Transport) -> Timed {
        Timed {
            transport,
            deadline: None,
        }
    }

    /// Reads after `deadline` fail with `TimedOut`.
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = Some(deadline);
    }

    pub fn tcp(&self) -> &TcpStream {
        self.transport.tcp()
    }

    /// Close: for TLS send close_notify; with `linger`, half-close and drain
    /// what the client still sends (bounded by [`LINGER`] and
    /// [`LINGER_BYTES`]) before the socket is dropped.
    pub fn close(mut self, linger: bool) {
        if let Transport::Tls(s) = &mut self.transport {
            s.conn.send_close_notify();
            let _ = s.flush();
        }
        let tcp = self.transport.tcp();
        if !linger {
            let _ = tcp.shutdown(Shutdown::Both);
            return;
        }
        let _ = tcp.shutdown(Shutdown::Write);
        let end = Instant::now() + LINGER;
        let mut scratch = vec![0u8; 64 << 10];
        let mut drained = 0usize;
        let mut raw: &TcpStream = tcp;
        while drained < LINGER_BYTES {
            let now = Instant::now();
            if now >= end || raw.set_read_timeout(Some(end - now)).is_err() {
                break;
            }
            match raw.read(&mut scratch) {
                Ok(0) => break,
                Ok(n) => drained += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    }
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(deadline) = self.deadline {
            let now = Instant::now();
            if now >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "read deadline passed",
                ));
            }
            self.transport
                .tcp()
                .set_read_timeout(Some(deadline - now))?;
        }
        let r = match &mut self.transport {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(s) => s.read(buf),
        };
        match r {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "read deadline passed",
            )),
            other => other,
        }
    }
}

impl Write for Timed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.transport {
            Transport::Plain(s) => s.write(buf),
            Transport::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.transport {
            Transport::Plain(s) => s.flush(),
            Transport::Tls(s) => s.flush(),
        }
    }
}
