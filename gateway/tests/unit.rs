// SPDX-License-Identifier: Apache-2.0
//! Unit tests of the gateway's pieces, without a network or SPDK: the auth
//! file and Basic header check, the size -> size_in_mib translation, the
//! JSON-RPC inspection (what is forwarded untouched), the HTTP body limit and
//! framing, and the scanner that finds the end of SPDK's answer.
//!
//! Owns: those checks. Must never: start processes or open sockets.

use std::io::Cursor;

use serde_json::{json, Value};

use ozbd_gateway::auth::{self, ct_eq, parse_auth_file, Credential, Credentials, Policy};
use ozbd_gateway::http::{self, Framing, HttpError};
use ozbd_gateway::jsonrpc;
use ozbd_gateway::log::utc_stamp;
use ozbd_gateway::rpc::{complete_value, Scan, Scanner};
use ozbd_gateway::translate::{bytes_to_mib_ceil, translate_body, translate_request, MIB};

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

// ---- auth file ----

#[test]
fn auth_file_lines_comments_blanks() {
    let text = "# gateway users\n\nalice:secret\n  # indented comment\nbob:pa:ss:word\r\n  carol:with space  \n";
    let creds = parse_auth_file(text, "f").expect("parses");
    assert_eq!(creds.len(), 3);
    assert_eq!(creds[0].user, "alice");
    assert_eq!(creds[0].password(), "secret");
    assert_eq!(creds[1].user, "bob");
    assert_eq!(
        creds[1].password(),
        "pa:ss:word",
        "split at the first colon only"
    );
    assert_eq!(creds[2].user, "carol");
    assert_eq!(
        creds[2].password(),
        "with space",
        "ends of a line are trimmed"
    );
}

#[test]
fn auth_file_errors_name_the_line_not_the_text() {
    let err = parse_auth_file("ok:fine\nnocolonhere\n", "/etc/gw.auth").unwrap_err();
    assert!(err.contains("line 2 of /etc/gw.auth"), "{err}");
    assert!(
        !err.contains("nocolonhere"),
        "the line's text must not be echoed: {err}"
    );
    let err = parse_auth_file(":pw\n", "f").unwrap_err();
    assert!(err.contains("user name") && err.contains("line 1"), "{err}");
    let err = parse_auth_file("user:\n", "f").unwrap_err();
    assert!(err.contains("password") && err.contains("empty"), "{err}");
    let err = parse_auth_file("# only a comment\n\n", "f").unwrap_err();
    assert!(err.contains("no credentials"), "{err}");
    let err = parse_auth_file("", "f").unwrap_err();
    assert!(err.contains("no credentials"), "{err}");
}

#[test]
fn credential_debug_hides_the_password() {
    let c = Credential::parse("alice:topsecret", "x").expect("parses");
    let dbg = format!("{c:?}");
    assert!(dbg.contains("alice") && !dbg.contains("topsecret"), "{dbg}");
    let policy = Policy::Required(Credentials::new(vec![c]));
    assert!(!format!("{policy:?}").contains("topsecret"));
}

#[test]
fn policy_sources() {
    // Nothing given: refuse, saying how to give credentials.
    let err = auth::load_policy(None, None, false).unwrap_err();
    assert!(
        err.contains("--auth-file")
            && err.contains("OZBD_GATEWAY_AUTH")
            && err.contains("--no-auth"),
        "{err}"
    );
    // --no-auth alone: disabled.
    assert!(matches!(
        auth::load_policy(None, None, true),
        Ok(Policy::Disabled)
    ));
    // --no-auth with credentials: contradictory.
    assert!(auth::load_policy(None, Some("u:p"), true).is_err());
    // The variable alone.
    let Ok(Policy::Required(c)) = auth::load_policy(None, Some("u:p\n"), false) else {
        panic!("env credentials")
    };
    assert!(c.check(Some(format!("Basic {}", b64("u:p")).as_bytes())));
    // File and variable together: both accepted.
    let dir = std::env::temp_dir().join(format!("gw-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("auth");
    std::fs::write(&file, "a:1\nb:2\n").expect("write");
    let Ok(Policy::Required(c)) = auth::load_policy(Some(&file), Some("e:3"), false) else {
        panic!("file + env credentials")
    };
    assert_eq!(c.len(), 3);
    for pair in ["a:1", "b:2", "e:3"] {
        assert!(
            c.check(Some(format!("Basic {}", b64(pair)).as_bytes())),
            "{pair}"
        );
    }
    // A missing file: an error naming the file.
    let err = auth::load_policy(Some(&dir.join("missing")), None, false).unwrap_err();
    assert!(
        err.contains("missing") && err.contains("cannot read"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- Basic header check ----

#[test]
fn basic_header_check() {
    let creds = Credentials::new(vec![
        Credential::parse("alice:secret", "x").expect("c1"),
        Credential::parse("bob:hunter2", "x").expect("c2"),
    ]);
    let h = |s: &str| format!("Basic {}", b64(s));
    assert!(creds.check(Some(h("alice:secret").as_bytes())));
    assert!(
        creds.check(Some(h("bob:hunter2").as_bytes())),
        "any listed credential"
    );
    assert!(
        creds.check(Some(format!("basic {}", b64("alice:secret")).as_bytes())),
        "scheme is case-insensitive"
    );
    assert!(creds.check(Some(
        format!("Basic   {}  ", b64("alice:secret")).as_bytes()
    )));
    assert!(!creds.check(None), "missing header");
    assert!(
        !creds.check(Some(h("alice:wrong").as_bytes())),
        "wrong password"
    );
    assert!(
        !creds.check(Some(h("alice:secre").as_bytes())),
        "prefix of the password"
    );
    assert!(
        !creds.check(Some(h("alice:secretX").as_bytes())),
        "password plus more"
    );
    assert!(
        !creds.check(Some(h("alice:hunter2").as_bytes())),
        "another user's password"
    );
    assert!(
        !creds.check(Some(h("mallory:secret").as_bytes())),
        "wrong user"
    );
    assert!(!creds.check(Some(b"Basic !!!notbase64")), "bad base64");
    assert!(!creds.check(Some(b"Bearer abc")), "other scheme");
    assert!(!creds.check(Some(b"Basic")), "no token");
    assert!(!creds.check(Some(b"")), "empty");
    assert!(Policy::Disabled.allows(None));
}

#[test]
fn constant_time_compare() {
    assert!(ct_eq(b"", b""));
    assert!(ct_eq(b"abc", b"abc"));
    assert!(!ct_eq(b"abc", b"abd"));
    assert!(!ct_eq(b"abc", b"ab"));
    assert!(!ct_eq(b"ab", b"abc"));
    assert!(!ct_eq(b"", b"a"));
    // Same bytes but a trailing NUL: lengths differ, so not equal.
    assert!(!ct_eq(b"abc\0", b"abc"));
}

// ---- translation ----

#[test]
fn mib_rounds_up() {
    assert_eq!(bytes_to_mib_ceil(0), 0);
    assert_eq!(bytes_to_mib_ceil(1), 1);
    assert_eq!(bytes_to_mib_ceil(MIB - 1), 1);
    assert_eq!(bytes_to_mib_ceil(MIB), 1);
    assert_eq!(bytes_to_mib_ceil(MIB + 1), 2);
    assert_eq!(bytes_to_mib_ceil(5_000_000), 5);
    assert_eq!(bytes_to_mib_ceil(10 * (1 << 30)), 10 * 1024);
    assert_eq!(bytes_to_mib_ceil(u64::MAX), u64::MAX / MIB + 1);
}

#[test]
fn lvol_create_size_becomes_size_in_mib() {
    let mut req = json!({"jsonrpc":"2.0","id":1,"method":"bdev_lvol_create",
        "params":{"lvol_name":"v","size":5_000_000u64,"lvs_name":"lvs","thin_provision":true}});
    let t = translate_request(&mut req).expect("translated");
    assert_eq!(
        (t.method.as_str(), t.bytes, t.mib),
        ("bdev_lvol_create", 5_000_000, 5)
    );
    assert_eq!(
        req,
        json!({"jsonrpc":"2.0","id":1,"method":"bdev_lvol_create",
            "params":{"lvol_name":"v","size_in_mib":5,"lvs_name":"lvs","thin_provision":true}})
    );
}

#[test]
fn lvol_resize_size_becomes_size_in_mib() {
    let mut req = json!({"jsonrpc":"2.0","id":"x","method":"bdev_lvol_resize",
        "params":{"name":"lvs/v","size": 10u64 * (1 << 30)}});
    let t = translate_request(&mut req).expect("translated");
    assert_eq!(t.mib, 10240);
    assert_eq!(req["params"], json!({"name":"lvs/v","size_in_mib":10240}));
}

#[test]
fn untouched_when_size_in_mib_present() {
    let orig = json!({"jsonrpc":"2.0","id":1,"method":"bdev_lvol_create",
        "params":{"lvol_name":"v","size":5_000_000u64,"size_in_mib":3}});
    let mut req = orig.clone();
    assert!(translate_request(&mut req).is_none());
    assert_eq!(req, orig);
}

#[test]
fn other_methods_untouched() {
    for method in [
        "bdev_malloc_create",
        "bdev_lvol_create_lvstore",
        "bdev_get_bdevs",
        "bdev_lvol_clone",
        "bdev_lvol_create_x",
    ] {
        let orig = json!({"jsonrpc":"2.0","id":1,"method":method,"params":{"size":5_000_000u64}});
        let mut req = orig.clone();
        assert!(translate_request(&mut req).is_none(), "{method}");
        assert_eq!(req, orig, "{method}");
    }
}

#[test]
fn non_integer_sizes_untouched() {
    for size in [
        json!(-5),
        json!(1.5),
        json!("5000000"),
        json!(null),
        json!([1]),
    ] {
        let orig = json!({"jsonrpc":"2.0","id":1,"method":"bdev_lvol_create","params":{"lvol_name":"v","size":size}});
        let mut req = orig.clone();
        assert!(translate_request(&mut req).is_none(), "{size}");
        assert_eq!(req, orig);
    }
    // No params, params as an array: untouched.
    for orig in [
        json!({"jsonrpc":"2.0","id":1,"method":"bdev_lvol_create"}),
        json!({"jsonrpc":"2.0","id":1,"method":"bdev_lvol_create","params":[5000000]}),
    ] {
        let mut req = orig.clone();
        assert!(translate_request(&mut req).is_none());
        assert_eq!(req, orig);
    }
}

#[test]
fn batch_elements_translated_each() {
    let mut body = json!([
        {"jsonrpc":"2.0","id":1,"method":"bdev_lvol_create","params":{"lvol_name":"a","size":1u64}},
        {"jsonrpc":"2.0","id":2,"method":"bdev_get_bdevs"},
        {"jsonrpc":"2.0","id":3,"method":"bdev_lvol_resize","params":{"name":"a","size":3u64 * MIB}}
    ]);
    let t = translate_body(&mut body);
    assert_eq!(t.len(), 2);
    assert_eq!(body[0]["params"], json!({"lvol_name":"a","size_in_mib":1}));
    assert_eq!(
        body[1],
        json!({"jsonrpc":"2.0","id":2,"method":"bdev_get_bdevs"})
    );
    assert_eq!(body[2]["params"], json!({"name":"a","size_in_mib":3}));
}

// ---- JSON-RPC inspection ----

#[test]
fn untranslated_bodies_are_forwarded_as_sent() {
    // Odd spacing and key order: must reach SPDK byte for byte.
    let body = br#"  {"params" : {"name":"Malloc0"} , "method":"bdev_get_bdevs","id":9,"jsonrpc":"2.0"}  "#;
    let i = jsonrpc::inspect(body).expect("valid");
    assert!(i.forward.is_none(), "no rewrite: the original bytes go out");
    assert!(i.translations.is_empty());
    assert_eq!(i.label, "bdev_get_bdevs");
    assert_eq!(i.id, json!(9));
    assert!(i.expects_response);
    // size_in_mib present: untouched too.
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"bdev_lvol_create","params":{"lvol_name":"v","size_in_mib":4}}"#;
    assert!(jsonrpc::inspect(body).expect("valid").forward.is_none());
}

#[test]
fn translated_bodies_are_rewritten() {
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"bdev_lvol_create","params":{"lvol_name":"v","size":5000000,"lvs_name":"l"}}"#;
    let i = jsonrpc::inspect(body).expect("valid");
    let fwd: Value =
        serde_json::from_slice(i.forward.as_deref().expect("rewritten")).expect("json");
    assert_eq!(
        fwd["params"],
        json!({"lvol_name":"v","size_in_mib":5,"lvs_name":"l"})
    );
    assert_eq!(fwd["id"], json!(1));
    assert_eq!(i.translations.len(), 1);
}

#[test]
fn notifications_and_batches() {
    let n = jsonrpc::inspect(br#"{"jsonrpc":"2.0","method":"bdev_get_bdevs"}"#).expect("valid");
    assert!(!n.expects_response, "no id: a notification");
    let n = jsonrpc::inspect(br#"{"jsonrpc":"2.0","method":"bdev_get_bdevs","id":null}"#)
        .expect("valid");
    assert!(!n.expects_response, "id null: SPDK sends no result");
    let b = jsonrpc::inspect(
        br#"[{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","method":"b","id":2}]"#,
    )
    .expect("valid");
    assert!(b.expects_response);
    assert_eq!(b.label, "batch[a,b]");
    let b = jsonrpc::inspect(br#"[{"jsonrpc":"2.0","method":"a"}]"#).expect("valid");
    assert!(!b.expects_response, "a batch of notifications only");
    assert!(
        jsonrpc::inspect(b"[]").expect("valid").expects_response,
        "SPDK answers [] with an error"
    );
}

#[test]
fn bad_json_and_log_labels() {
    let err = jsonrpc::inspect(b"{\"method\":").unwrap_err();
    assert!(err.contains("not valid JSON"), "{err}");
    assert!(
        jsonrpc::inspect(b"{} {}").is_err(),
        "two values in one body"
    );
    assert!(jsonrpc::inspect(b"").is_err());
    let i = jsonrpc::inspect(br#"{"method":"evil\nline 200 OK","id":1}"#).expect("valid");
    assert!(
        !i.label.contains('\n') && !i.label.contains(' '),
        "{}",
        i.label
    );
    let body = jsonrpc::error_body(&json!(7), -32000, "msg");
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(
        v,
        json!({"jsonrpc":"2.0","id":7,"error":{"code":-32000,"message":"msg"}})
    );
}

// ---- HTTP: body limit and framing ----

fn head_of(text: &str) -> http::Head {
    http::read_head(&mut Cursor::new(text.as_bytes().to_vec())).expect("head parses")
}

#[test]
fn body_limit_declared_length() {
    let limit = 1024;
    // Over the limit: refused without reading (the cursor holds no body at
    // all; reading would fail with a different error).
    let mut empty = Cursor::new(Vec::new());
    assert!(matches!(
        http::read_body(&mut empty, Framing::Length(limit as u64 + 1), limit),
        Err(HttpError::BodyTooLarge { limit: 1024 })
    ));
    // At the limit: read.
    let mut full = Cursor::new(vec![b'x'; limit]);
    assert_eq!(
        http::read_body(&mut full, Framing::Length(limit as u64), limit)
            .expect("fits")
            .len(),
        limit
    );
    // Shorter than declared: an error, not a short body.
    let mut short = Cursor::new(vec![b'x'; 10]);
    assert!(matches!(
        http::read_body(&mut short, Framing::Length(20), limit),
        Err(HttpError::Bad(_))
    ));
}

#[test]
fn body_limit_chunked() {
    let ok = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n".to_vec();
    let body = http::read_body(&mut Cursor::new(ok), Framing::Chunked, 64).expect("chunked");
    assert_eq!(body, b"hello world");
    // Two chunks that pass the limit together.
    let big = b"8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n".to_vec();
    assert!(matches!(
        http::read_body(&mut Cursor::new(big), Framing::Chunked, 10),
        Err(HttpError::BodyTooLarge { .. })
    ));
    // A huge declared chunk: refused before allocating it.
    let huge = b"fffffffffff\r\n".to_vec();
    assert!(matches!(
        http::read_body(&mut Cursor::new(huge), Framing::Chunked, 1 << 20),
        Err(HttpError::BodyTooLarge { .. })
    ));
    let bad = b"zz\r\n".to_vec();
    assert!(matches!(
        http::read_body(&mut Cursor::new(bad), Framing::Chunked, 64),
        Err(HttpError::Bad(_))
    ));
}

#[test]
fn head_parsing_and_framing() {
    let h = head_of("\r\nPOST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\nAUTHORIZATION: Basic abc\r\nExpect: 100-continue\r\n\r\nbody...");
    assert_eq!(h.method, "POST");
    assert_eq!(h.path, "/x");
    assert_eq!(h.header("authorization"), Some(&b"Basic abc"[..]));
    assert_eq!(h.framing().expect("framing"), Framing::Length(12));
    assert!(h.expects_continue());
    assert!(!h.wants_close());
    let h = head_of("POST / HTTP/1.0\r\n\r\n");
    assert!(h.wants_close(), "HTTP/1.0 closes by default");
    assert_eq!(h.framing().expect("framing"), Framing::None);
    let h = head_of("POST / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n");
    assert!(h.wants_close());
    let h = head_of("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(h.framing().expect("framing"), Framing::Chunked);
    // Smuggling shapes: refused.
    let h = head_of("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n");
    assert!(matches!(h.framing(), Err(HttpError::Bad(_))));
    let h = head_of("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n");
    assert!(matches!(h.framing(), Err(HttpError::Bad(_))));
    let h = head_of("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n");
    assert!(matches!(h.framing(), Err(HttpError::Bad(_))));
    let h = head_of("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n");
    assert!(matches!(h.framing(), Err(HttpError::Bad(_))));
}

#[test]
fn head_limits() {
    let mut big = String::from("POST / HTTP/1.1\r\n");
    while big.len() < http::MAX_HEAD + 100 {
        big.push_str("X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    big.push_str("\r\n");
    assert!(matches!(
        http::read_head(&mut Cursor::new(big.into_bytes())),
        Err(HttpError::HeadTooLarge)
    ));
    let mut many = String::from("POST / HTTP/1.1\r\n");
    for i in 0..(http::MAX_HEADERS + 1) {
        many.push_str(&format!("X-{i}: a\r\n"));
    }
    many.push_str("\r\n");
    assert!(matches!(
        http::read_head(&mut Cursor::new(many.into_bytes())),
        Err(HttpError::HeadTooLarge)
    ));
    assert!(matches!(
        http::read_head(&mut Cursor::new(Vec::new())),
        Err(HttpError::Eof)
    ));
    assert!(matches!(
        http::read_head(&mut Cursor::new(b"POST / HT".to_vec())),
        Err(HttpError::Bad(_))
    ));
    assert!(matches!(
        http::read_head(&mut Cursor::new(b"\x01\x02 garbage\r\n\r\n".to_vec())),
        Err(HttpError::Bad(_))
    ));
}

#[test]
fn response_format() {
    let mut out = Vec::new();
    let resp = http::Response::json(401, b"{}".to_vec())
        .header("WWW-Authenticate", "Basic realm=\"r\"")
        .closing();
    http::write_response(&mut out, &resp, false).expect("write");
    let text = String::from_utf8(out).expect("utf8");
    assert!(text.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{text}");
    assert!(
        text.contains("Content-Length: 2\r\n")
            && text.contains("WWW-Authenticate: Basic realm=\"r\"\r\n")
    );
    assert!(
        text.contains("Connection: close\r\n") && text.ends_with("\r\n\r\n{}"),
        "{text}"
    );
    let mut out = Vec::new();
    http::write_response(&mut out, &http::Response::json(204, Vec::new()), false).expect("write");
    assert_eq!(out, b"HTTP/1.1 204 No Content\r\n\r\n");
}

// ---- the end of SPDK's answer ----

#[test]
fn scanner_finds_the_end_across_pieces() {
    let answer = br#"{"jsonrpc":"2.0","id":1,"result":[{"name":"a}b]{\"q\\","x":[1,{"y":"}"}]}]}"#;
    let mut full = answer.to_vec();
    full.push(b'\n');
    // Fed one byte at a time: complete only at the last brace.
    let mut scanner = Scanner::default();
    let mut buf = Vec::new();
    let mut done = None;
    for (i, b) in full.iter().enumerate() {
        buf.push(*b);
        if let Some(v) = complete_value(&mut scanner, &buf).expect("valid") {
            done = Some((i, v));
            break;
        }
    }
    let (i, v) = done.expect("completes");
    assert_eq!(i, answer.len() - 1);
    assert_eq!(&v[..v.len() - 1], &answer[..]);
    assert_eq!(v.last(), Some(&b'\n'));
    // Leading whitespace is skipped; the value's bytes are kept exactly.
    let mut s = Scanner::default();
    assert_eq!(s.feed(b"  \n{\"a\" : [ ] }"), Scan::Complete(3, 15));
    // A scalar falls back to serde_json.
    let mut s = Scanner::default();
    assert_eq!(
        complete_value(&mut s, b"123").expect("ok"),
        None,
        "123 may go on"
    );
    assert_eq!(
        complete_value(&mut s, b"123 ").expect("ok"),
        Some(b"123\n".to_vec())
    );
    // A complete but invalid value is an error, not a hang.
    let mut s = Scanner::default();
    assert!(complete_value(&mut s, b"{\"a\":tru}").is_err());
}

#[test]
fn log_timestamps() {
    assert_eq!(utc_stamp(0, 0), "1970-01-01T00:00:00.000Z");
    assert_eq!(utc_stamp(951_782_400, 5), "2000-02-29T00:00:00.005Z");
    assert_eq!(utc_stamp(1_780_000_000, 999), "2026-05-28T20:26:40.999Z");
}
