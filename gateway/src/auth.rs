// SPDX-License-Identifier: Apache-2.0
//! HTTP Basic authentication: where credentials come from and how a request's
//! `Authorization` header is checked against them.
//!
//! Owns: parsing the auth file (`user:password` lines, `#` comments) and the
//! `OZBD_GATEWAY_AUTH=user:password` variable; the constant-time comparison.
//! Must never: take credentials from argv; log or print a password or an
//! Authorization header (errors name the file and line, never the text);
//! stop comparing early (every configured credential is compared in full, so
//! the time taken says nothing about which byte differed).

use std::fmt;
use std::path::Path;

use base64::Engine;

/// The environment variable that may hold one `user:password` pair.
pub const AUTH_ENV: &str = "OZBD_GATEWAY_AUTH";

/// The realm sent in `WWW-Authenticate`.
pub const REALM: &str = "ozbd-gateway";

/// One `user:password` pair. Its Debug output hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub user: String,
    password: String,
}

impl Credential {
    /// Parse `user:password` (split at the first colon, as RFC 7617 does: the
    /// user name cannot hold a colon, the password can). `what` names the
    /// source in the error (`"line 3 of /etc/x"`).
    pub fn parse(text: &str, what: &str) -> Result<Credential, String> {
        let Some((user, password)) = text.split_once(':') else {
            return Err(format!("{what}: expected `user:password` (no colon found)"));
        };
        if user.is_empty() {
            return Err(format!("{what}: the user name before the colon is empty"));
        }
        if password.is_empty() {
            return Err(format!("{what}: the password after the colon is empty"));
        }
        if text.chars().any(char::is_control) {
            return Err(format!(
                "{what}: control characters are not allowed in user names or passwords"
            ));
        }
        Ok(Credential {
            user: user.to_string(),
            password: password.to_string(),
        })
    }

    /// The password (for the caller that builds a client; never log it).
    pub fn password(&self) -> &str {
        &self.password
    }

    fn joined(&self) -> Vec<u8> {
        format!("{}:{}", self.user, self.password).into_bytes()
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// Parse an auth file's text: one `user:password` per line; blank lines and
/// lines whose first non-blank character is `#` are skipped; whitespace at
/// both ends of a line is dropped (so a password cannot begin or end with a
/// space). An empty result is an error: a file that grants nobody is a mistake.
pub fn parse_auth_file(text: &str, name: &str) -> Result<Vec<Credential>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(Credential::parse(
            line,
            &format!("line {} of {name}", i + 1),
        )?);
    }
    if out.is_empty() {
        return Err(format!(
            "{name} holds no credentials: add a `user:password` line"
        ));
    }
    Ok(out)
}

/// The accepted credentials. Checks an `Authorization` header value.
#[derive(Debug, Clone)]
pub struct Credentials {
    list: Vec<Credential>,
}

impl Credentials {
    pub fn new(list: Vec<Credential>) -> Credentials {
        Credentials { list }
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// True when `header` (the value of `Authorization`) is `Basic <base64>`
    /// of one of the configured `user:password` pairs. The scheme name is
    /// case-insensitive (RFC 7235); every credential is compared in full.
    pub fn check(&self, header: Option<&[u8]>) -> bool {
        let Some(decoded) = header.and_then(decode_basic) else {
            return false;
        };
        let mut ok = false;
        for c in &self.list {
            ok |= ct_eq(&decoded, &c.joined());
        }
        ok
    }
}

/// Decode `Basic <base64>` to the `user:password` bytes.
fn decode_basic(value: &[u8]) -> Option<Vec<u8>> {
    let value = trim_ascii(value);
    if value.len() < 6 || !value[..5].eq_ignore_ascii_case(b"basic") || value[5] != b' ' {
        return None;
    }
    let token = trim_ascii(&value[6..]);
    base64::engine::general_purpose::STANDARD.decode(token).ok()
}

fn trim_ascii(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// Compare two byte strings in time that depends only on their lengths (the
/// longer one's), never on where they differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().max(b.len());
    let mut diff = (a.len() ^ b.len()) as u64;
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= u64::from(x ^ y);
    }
    // Keep the optimiser from turning the loop into an early exit.
    std::hint::black_box(diff) == 0
}

/// What the gateway requires of a request.
#[derive(Debug, Clone)]
pub enum Policy {
    /// Basic auth with one of these credentials.
    Required(Credentials),
    /// `--no-auth`: every request is let through.
    Disabled,
}

impl Policy {
    pub fn allows(&self, header: Option<&[u8]>) -> bool {
        match self {
            Policy::Required(c) => c.check(header),
            Policy::Disabled => true,
        }
    }
}

/// Build the policy from `--auth-file`, the `OZBD_GATEWAY_AUTH` value and
/// `--no-auth`. Credentials from both sources are all accepted. With none
/// and without `--no-auth` this refuses, saying how to give some.
pub fn load_policy(
    auth_file: Option<&Path>,
    env_value: Option<&str>,
    no_auth: bool,
) -> Result<Policy, String> {
    if no_auth {
        if auth_file.is_some() || env_value.is_some() {
            return Err(format!(
                "--no-auth was given together with credentials (--auth-file or {AUTH_ENV}): \
                 drop one of them"
            ));
        }
        return Ok(Policy::Disabled);
    }
    let mut list = Vec::new();
    if let Some(path) = auth_file {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!("cannot read the auth file {name}: {e} (give a readable file of `user:password` lines)")
        })?;
        list.extend(parse_auth_file(&text, &name)?);
    }
    if let Some(value) = env_value {
        list.push(Credential::parse(value.trim(), AUTH_ENV)?);
    }
    if list.is_empty() {
        return Err(format!(
            "no credentials: give --auth-file FILE (lines `user:password`) or set \
             {AUTH_ENV}=user:password; to run without authentication pass --no-auth \
             explicitly (only behind a trusted loopback)"
        ));
    }
    Ok(Policy::Required(Credentials::new(list)))
}

/// A warning when the auth file can be read by group or others.
pub fn file_mode_warning(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o077 != 0).then(|| {
        format!(
            "WARNING: auth file {} is accessible by group or others (mode {:o}): chmod 600 it",
            path.display(),
            mode & 0o777
        )
    })
}
