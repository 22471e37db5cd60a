// SPDX-License-Identifier: Apache-2.0
//! The gateway binary without SPDK: its flags (no credentials on argv,
//! refusing to start without credentials, --no-auth's warning, bad TLS
//! files), and its HTTP answers when SPDK is missing, not listening, or does
//! not answer in time (a Unix socket that accepts and stays silent stands in
//! for a hung target: failure injection, not a stand-in for SPDK's answers).
//!
//! Owns: those checks. Must never: need SPDK; use ports outside 19000-19099.

mod common;
use common::{basic, exchange, post, read_reply, request, Gateway, TempDir, GATEWAY};

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixListener;
use std::process::Command;
use std::time::{Duration, Instant};

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(GATEWAY);
    cmd.args(args).env_remove("OZBD_GATEWAY_AUTH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run ozbd-gateway");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn credentials_never_come_from_argv() {
    for flag in ["--password", "--user", "--pass", "--username"] {
        let (code, err) = run(&[flag, "x", "--listen", "127.0.0.1:19099"], &[]);
        assert_eq!(code, 2, "{flag} must not exist: {err}");
        assert!(err.contains("unexpected argument"), "{flag}: {err}");
    }
    let out = Command::new(GATEWAY).arg("--help").output().expect("help");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("--auth-file") && help.contains("OZBD_GATEWAY_AUTH"),
        "{help}"
    );
    assert!(
        !help.contains("--password") && !help.contains("--user "),
        "{help}"
    );
}

#[test]
fn refuses_to_start_without_credentials() {
    let (code, err) = run(&["--listen", "127.0.0.1:19099"], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("no credentials")
            && err.contains("--auth-file")
            && err.contains("OZBD_GATEWAY_AUTH")
            && err.contains("--no-auth"),
        "{err}"
    );
    let (code, err) = run(
        &["--no-auth", "--listen", "127.0.0.1:19099"],
        &[("OZBD_GATEWAY_AUTH", "u:p")],
    );
    assert_eq!(
        code, 1,
        "--no-auth with credentials is contradictory: {err}"
    );
    let (code, err) = run(
        &["--listen", "127.0.0.1:19099"],
        &[("OZBD_GATEWAY_AUTH", "nocolon")],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("OZBD_GATEWAY_AUTH") && !err.contains("nocolon"),
        "{err}"
    );
    let (code, err) = run(
        &[
            "--listen",
            "127.0.0.1:19099",
            "--auth-file",
            "/nonexistent/gw-auth",
        ],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/nonexistent/gw-auth"), "{err}");
}

#[test]
fn bad_tls_files_refuse_to_start() {
    let dir = TempDir::new("cli-tls");
    let junk = dir.path("junk.pem");
    std::fs::write(&junk, "not a pem file\n").expect("write");
    let j = junk.to_str().expect("utf8");
    let (code, err) = run(
        &[
            "--listen",
            "127.0.0.1:19099",
            "--tls-cert",
            j,
            "--tls-key",
            j,
        ],
        &[("OZBD_GATEWAY_AUTH", "u:p")],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("no certificate") && err.contains("junk.pem"),
        "{err}"
    );
    let (code, err) = run(
        &["--listen", "127.0.0.1:19099", "--tls-cert", j],
        &[("OZBD_GATEWAY_AUTH", "u:p")],
    );
    assert_eq!(code, 2, "--tls-cert needs --tls-key: {err}");
}

#[test]
fn no_auth_warns_and_serves() {
    let gw = Gateway::start(
        &["--no-auth", "--spdk-socket", "/tmp/gw-cli-none.sock"],
        &[],
    );
    assert!(
        gw.log_text().contains("WARNING: --no-auth"),
        "{}",
        gw.log_text()
    );
    let r = post(
        gw.addr,
        None,
        br#"{"jsonrpc":"2.0","id":1,"method":"bdev_get_bdevs"}"#,
    );
    assert_eq!(r.status, 503, "no auth needed; SPDK is missing");
}

#[test]
fn spdk_missing_stale_or_silent() {
    let dir = TempDir::new("cli-sock");
    let missing = dir.path("missing.sock");
    let stale = dir.path("stale.sock");
    drop(UnixListener::bind(&stale).expect("bind"));
    let silent = dir.path("silent.sock");
    let silent_listener = UnixListener::bind(&silent).expect("bind");
    // Accept and hold connections, never answer.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in silent_listener.incoming().flatten() {
            held.push(c);
        }
    });
    let password = "s3cret-pw";
    let auth = basic("gw", password);
    let body = br#"{"jsonrpc":"2.0","id":"req-7","method":"bdev_get_bdevs"}"#;
    let env = [("OZBD_GATEWAY_AUTH", "gw:s3cret-pw")];

    let gw = Gateway::start(&["--spdk-socket", missing.to_str().expect("utf8")], &env);
    let r = post(gw.addr, Some(&auth), body);
    assert_eq!(r.status, 503);
    let v = r.json();
    assert_eq!(v["id"], "req-7", "the request's id is echoed");
    assert_eq!(v["error"]["code"], -32000);
    let msg = v["error"]["message"].as_str().expect("message");
    assert!(
        msg.contains("does not exist") && msg.contains("spdk_tgt"),
        "{msg}"
    );
    let log = gw.log_text();
    drop(gw);

    let gw = Gateway::start(&["--spdk-socket", stale.to_str().expect("utf8")], &env);
    let r = post(gw.addr, Some(&auth), body);
    assert_eq!(r.status, 503);
    let msg = r.json()["error"]["message"]
        .as_str()
        .expect("message")
        .to_string();
    assert!(msg.contains("nothing is listening"), "{msg}");
    drop(gw);

    let gw = Gateway::start(
        &[
            "--spdk-socket",
            silent.to_str().expect("utf8"),
            "--rpc-timeout",
            "1",
        ],
        &env,
    );
    let t = Instant::now();
    let r = post(gw.addr, Some(&auth), body);
    assert_eq!(r.status, 504, "{}", String::from_utf8_lossy(&r.body));
    assert!(t.elapsed() < Duration::from_secs(10));
    let v = r.json();
    assert_eq!(v["error"]["code"], -32001);
    assert!(v["error"]["message"]
        .as_str()
        .expect("message")
        .contains("--rpc-timeout"));

    // Credentials never reach the log.
    let all = format!("{log}\n{}", gw.log_text());
    assert!(
        !all.contains(password) && !all.contains(auth.trim_start_matches("Basic ")),
        "{all}"
    );
}

#[test]
fn http_methods_auth_and_keep_alive() {
    let env = [("OZBD_GATEWAY_AUTH", "gw:pw")];
    let gw = Gateway::start(&["--spdk-socket", "/tmp/gw-cli-none.sock"], &env);
    let auth = basic("gw", "pw");
    // HEAD: a liveness probe, as rpc_http_proxy.py answers it.
    let r = exchange(gw.addr, &request("HEAD", None, b"", false));
    assert_eq!(r.status, 200);
    // GET: 405 with Allow.
    let r = exchange(gw.addr, &request("GET", Some(&auth), b"", false));
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST, HEAD"));
    assert_eq!(r.json()["error"]["code"], -32600);
    // 401 carries WWW-Authenticate; wrong password and wrong scheme too.
    for a in [
        None,
        Some(basic("gw", "nope")),
        Some("Bearer pw".to_string()),
    ] {
        let r = post(gw.addr, a.as_deref(), b"{}");
        assert_eq!(r.status, 401);
        let wa = r.header("www-authenticate").expect("WWW-Authenticate");
        assert!(wa.starts_with("Basic realm="), "{wa}");
    }
    // Not JSON: 400 with -32700.
    let r = post(gw.addr, Some(&auth), b"{not json");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], -32700);
    // Several requests on one kept-alive connection, a 401 among them.
    let mut s = TcpStream::connect(gw.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    for (a, want) in [
        (Some(auth.as_str()), 400),
        (None, 401),
        (Some(auth.as_str()), 400),
    ] {
        s.write_all(&request("POST", a, b"[", true)).expect("send");
        let reply = read_reply(&mut r, false).expect("reply on the same connection");
        assert_eq!(reply.status, want);
        assert!(reply.header("connection").is_none(), "kept alive");
    }
}
