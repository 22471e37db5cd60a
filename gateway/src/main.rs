// SPDX-License-Identifier: Apache-2.0
//! ozbd-gateway: the command line, and starting the server.
//!
//! Owns: the flags (their names are an interface deployments rely on), their
//! checks, the startup warnings (no auth, clear text off loopback, world-
//! readable auth file, missing SPDK socket) and the startup line.
//! Must never: take credentials from argv (there is no --user or --password
//! flag, on purpose: argv is visible to every user through /proc); start
//! without credentials unless --no-auth is given.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use ozbd_gateway::auth::{self, Policy, AUTH_ENV};
use ozbd_gateway::rpc::SpdkRpc;
use ozbd_gateway::server::{self, Config};
use ozbd_gateway::{glog, tls};

/// HTTP(S) JSON-RPC gateway with Basic auth in front of SPDK's Unix-socket
/// JSON-RPC. Credentials come from --auth-file or OZBD_GATEWAY_AUTH, never
/// from the command line.
#[derive(Parser, Debug)]
#[command(name = "ozbd-gateway", version, about, long_about = None)]
struct Args {
    /// Address and port to listen on (IP:PORT). Keep it on loopback, or use
    /// --tls-cert/--tls-key.
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:9009")]
    listen: SocketAddr,

    /// SPDK's JSON-RPC Unix socket (spdk_tgt's -r).
    #[arg(long, value_name = "PATH", default_value = "/var/tmp/spdk.sock")]
    spdk_socket: PathBuf,

    /// File of `user:password` lines (several allowed, `#` comments). Keep it
    /// mode 600. Also read: the OZBD_GATEWAY_AUTH=user:password variable.
    #[arg(long, value_name = "FILE")]
    auth_file: Option<PathBuf>,

    /// Run without authentication (anyone who can reach --listen controls
    /// SPDK). Logs a warning.
    #[arg(long, conflicts_with = "auth_file")]
    no_auth: bool,

    /// PEM certificate chain for HTTPS (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// PEM private key for HTTPS (needs --tls-cert).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// Largest request body in bytes; larger ones get HTTP 413.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    max_body: usize,

    /// Seconds to wait for SPDK's answer to one request (then HTTP 504).
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    rpc_timeout: u64,

    /// Worker threads: client connections served at once (SPDK accepts 64
    /// RPC connections in all).
    #[arg(long, value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..=60))]
    workers: u16,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("ozbd-gateway: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let env_auth = match std::env::var(AUTH_ENV) {
        Ok(v) => Some(v),
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(format!(
                "{AUTH_ENV} is not valid UTF-8: set it to user:password"
            ))
        }
    };
    let policy = auth::load_policy(args.auth_file.as_deref(), env_auth.as_deref(), args.no_auth)?;
    if let Some(path) = &args.auth_file {
        if let Some(w) = auth::file_mode_warning(path) {
            glog!("{w}");
        }
    }
    if args.max_body == 0 {
        return Err("--max-body must be at least 1 byte".to_string());
    }
    if args.rpc_timeout == 0 {
        return Err("--rpc-timeout must be at least 1 second".to_string());
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tls::server_config(cert, key)?),
        _ => None,
    };
    let auth_desc = match &policy {
        Policy::Required(c) => format!("Basic auth, {} credential(s)", c.len()),
        Policy::Disabled => {
            glog!(
                "WARNING: --no-auth: there is NO authentication; anyone who can connect to {} \
                 can create, delete and read every SPDK volume. Use --auth-file or {AUTH_ENV}.",
                args.listen
            );
            "NO AUTH".to_string()
        }
    };
    if tls.is_none() && !args.listen.ip().is_loopback() {
        glog!(
            "WARNING: listening on {} without TLS: credentials and requests cross the network \
             in clear text. Bind to 127.0.0.1 or pass --tls-cert and --tls-key.",
            args.listen
        );
    }
    if !args.spdk_socket.exists() {
        glog!(
            "WARNING: SPDK's RPC socket {} does not exist (yet): requests get HTTP 503 until \
             spdk_tgt creates it",
            args.spdk_socket.display()
        );
    }
    let listener = TcpListener::bind(args.listen).map_err(|e| {
        format!(
            "cannot listen on {}: {e} (is another process using the port? pick another with --listen)",
            args.listen
        )
    })?;
    let local = listener.local_addr().unwrap_or(args.listen);
    let workers = usize::from(args.workers);
    glog!(
        "listening on {} -> SPDK {}; {auth_desc}; {workers} workers; max body {} bytes; rpc timeout {} s",
        server::describe(local, tls.is_some()),
        args.spdk_socket.display(),
        args.max_body,
        args.rpc_timeout
    );
    let config = Config {
        policy,
        tls,
        rpc: SpdkRpc::new(&args.spdk_socket, Duration::from_secs(args.rpc_timeout)),
        max_body: args.max_body,
        workers,
    };
    server::serve(listener, config).map_err(|e| format!("cannot start the worker threads: {e}"))
}
