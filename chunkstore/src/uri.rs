// SPDX-License-Identifier: Apache-2.0
//! Volume URIs.
//!
//! Owns: parsing `ofs://<om-host>[:port]/<ozone-volume>/<bucket>[/<path>]`,
//! `file:///<dir>` and the test-only `mem://<name>/<dir>` into the filesystem
//! to connect to and the volume's directory in it.
//! Must never: touch the network or the filesystem.

use crate::error::{Error, Result};

/// The Ozone Manager's default RPC port.
pub const DEFAULT_OM_PORT: u16 = 9862;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    Ofs,
    File,
    Mem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeUri {
    pub scheme: Scheme,
    /// `ofs://host:port`, `file:///` or `mem://name`.
    pub fs_uri: String,
    /// Absolute directory of the volume inside that filesystem, no trailing '/'.
    pub dir: String,
    /// For ofs: the Ozone volume and bucket the directory lives in.
    pub ozone_volume: Option<String>,
    pub bucket: Option<String>,
}

const USAGE: &str =
    "expected ofs://<om-host>[:port]/<ozone-volume>/<bucket>[/<path>] or file:///<dir>";

fn valid_component(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains(char::is_whitespace)
}

/// Ozone's rules for volume and bucket names (S3-compatible).
fn ozone_name_problem(name: &str) -> Option<&'static str> {
    if !(3..=63).contains(&name.len()) {
        return Some("must be 3 to 63 characters long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return Some("may hold only lowercase letters, digits, '-' and '.'");
    }
    let first = name.as_bytes()[0];
    let last = name.as_bytes()[name.len() - 1];
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return Some("must start and end with a letter or digit");
    }
    None
}

impl VolumeUri {
    pub fn parse(uri: &str) -> Result<VolumeUri> {
        let bad = |why: &str| {
            Error::InvalidArgument(format!("malformed volume URI '{uri}': {why}; {USAGE}"))
        };
        let (scheme, rest) = uri.split_once("://").ok_or_else(|| bad("no scheme"))?;
        match scheme {
            "ofs" => {
                let (authority, path) = rest.split_once('/').ok_or_else(|| bad("no path"))?;
                if authority.is_empty() {
                    return Err(bad("no Ozone Manager host"));
                }
                let (host, port) = match authority.rsplit_once(':') {
                    Some((h, p)) => {
                        let port: u16 = p.parse().map_err(|_| bad("port is not a number"))?;
                        (h, port)
                    }
                    None => (authority, DEFAULT_OM_PORT),
                };
                if host.is_empty() {
                    return Err(bad("no Ozone Manager host"));
                }
                let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
                if parts.len() < 2 {
                    return Err(bad("it must name an Ozone volume and a bucket"));
                }
                if let Some(p) = parts.iter().find(|p| !valid_component(p)) {
                    return Err(bad(&format!("invalid path component '{p}'")));
                }
                for (what, name) in [("Ozone volume", parts[0]), ("bucket", parts[1])] {
                    if let Some(why) = ozone_name_problem(name) {
                        return Err(bad(&format!("{what} name '{name}' {why}")));
                    }
                }
                Ok(VolumeUri {
                    scheme: Scheme::Ofs,
                    fs_uri: format!("ofs://{host}:{port}"),
                    dir: format!("/{}", parts.join("/")),
                    ozone_volume: Some(parts[0].to_string()),
                    bucket: Some(parts[1].to_string()),
                })
            }
            "file" | "mem" => {
                let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
                if scheme == "file" && !authority.is_empty() {
                    return Err(bad("file URIs have no host: use file:///absolute/dir"));
                }
                let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
                if parts.is_empty() {
                    return Err(bad("no directory"));
                }
                if let Some(p) = parts.iter().find(|p| !valid_component(p)) {
                    return Err(bad(&format!("invalid path component '{p}'")));
                }
                let (scheme, fs_uri) = if scheme == "file" {
                    (Scheme::File, "file:///".to_string())
                } else {
                    (Scheme::Mem, format!("mem://{authority}"))
                };
                Ok(VolumeUri {
                    scheme,
                    fs_uri,
                    dir: format!("/{}", parts.join("/")),
                    ozone_volume: None,
                    bucket: None,
                })
            }
            other => Err(bad(&format!("unsupported scheme '{other}'"))),
        }
    }

    /// The URI in canonical form.
    pub fn canonical(&self) -> String {
        match self.scheme {
            Scheme::File => format!("file://{}", self.dir),
            _ => format!("{}{}", self.fs_uri, self.dir),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ofs() {
        let u = VolumeUri::parse("ofs://127.0.0.1:9862/vol1/bucket1/disks/d0/").unwrap();
        assert_eq!(u.fs_uri, "ofs://127.0.0.1:9862");
        assert_eq!(u.dir, "/vol1/bucket1/disks/d0");
        assert_eq!(u.ozone_volume.as_deref(), Some("vol1"));
        assert_eq!(u.bucket.as_deref(), Some("bucket1"));
        let u = VolumeUri::parse("ofs://om/vol/bkt").unwrap();
        assert_eq!(u.fs_uri, "ofs://om:9862");
        assert_eq!(u.canonical(), "ofs://om:9862/vol/bkt");
    }

    #[test]
    fn parses_file_and_mem() {
        let u = VolumeUri::parse("file:///tmp/x/vol").unwrap();
        assert_eq!(
            (u.fs_uri.as_str(), u.dir.as_str()),
            ("file:///", "/tmp/x/vol")
        );
        assert_eq!(u.canonical(), "file:///tmp/x/vol");
        let u = VolumeUri::parse("mem://t1/a/b").unwrap();
        assert_eq!((u.fs_uri.as_str(), u.dir.as_str()), ("mem://t1", "/a/b"));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "ofs:/x/y",
            "ofs:///vol/bkt",
            "ofs://h/vol",
            "ofs://h:port/vol/bkt",
            "ofs://h:99999/vol/bkt",
            "s3://h/v/b",
            "file://host/x",
            "file:///",
            "ofs://h/vol/../b",
            "ofs://h/vol/b1",
            "ofs://h/Vol/bucket",
            "ofs://h/vol/buck_et",
        ] {
            let e = VolumeUri::parse(bad).unwrap_err();
            assert!(e.to_string().contains("malformed volume URI"), "{bad}: {e}");
        }
    }
}
