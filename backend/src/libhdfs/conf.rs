// SPDX-License-Identifier: Apache-2.0
//! Engine-owned client defaults (`LibhdfsOptions::defaults`) and what is in
//! effect.
//!
//! Owns: deciding, before `connect`, which of the engine's default keys a
//! user's configuration file sets already, the way Hadoop itself tells
//! (`Configuration.getPropertySources`), and reading back, right after
//! `connect`, the value of every default key in the connected `FileSystem`'s
//! configuration (`fs.getConf().get(key)`), for `Backend::client_settings`.
//! Must never: override a key a user's configuration file sets (a key only a
//! `*-default.xml` sets is not the user's); enter the JVM after `connect` for
//! `client_settings` (the values are recorded once).
//!
//! How "set by a user's file" is decided: a fresh
//! `org.apache.hadoop.hdds.conf.OzoneConfiguration` (loads `core-default.xml`,
//! `core-site.xml`, `hdfs-*.xml`, `ozone-default.xml` and the generated
//! `hdds-client-default.xml` & co., then `ozone-site.xml`), or a plain
//! `org.apache.hadoop.conf.Configuration` (`core-default.xml`,
//! `core-site.xml`) when the Ozone classes are not on the CLASSPATH (e.g.
//! `file://` without the Ozone jars). `getPropertySources(key)` returns null
//! for a key set nowhere, else the sources of the winning value, as resource
//! names: on Ozone 2.2.1 e.g. `["ozone-site.xml"]`, `["core-site.xml"]`,
//! `["hdds-client-default.xml"]`, `["core-default.xml"]`, and
//! `["programmatically"]` for a key set by code. A key is the user's when a
//! source is not a `*-default.xml` file; the first such source is reported.

use std::ffi::CStr;

use hdfs_sys as ffi;
use jni_sys as jni;

use super::jni::{JavaError, Jni};
use crate::ClientSetting;

/// `ClientSetting::source` when the engine's default applies.
pub(super) const ENGINE_DEFAULT: &str = "engine default";
/// `ClientSetting::source` when `LibhdfsOptions::conf` forces the key.
pub(super) const ENGINE_CONF: &str = "engine conf";

/// The configuration class used to tell what the files set, and its fallback.
const CONF_CLASSES: &[&CStr] = &[
    c"org/apache/hadoop/hdds/conf/OzoneConfiguration",
    c"org/apache/hadoop/conf/Configuration",
];

/// What was decided for one default key before connecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Decision {
    pub(super) key: String,
    /// Whether the engine sets the key (its default applies).
    pub(super) apply: bool,
    /// The value as far as known before connecting (the engine's, the forced
    /// one, or the user's file's).
    pub(super) value: Option<String>,
    pub(super) source: String,
}

/// Whether a configuration source names a `*-default.xml` file (a resource
/// name, a path or a URL).
pub(super) fn is_default_source(source: &str) -> bool {
    let name = source.rsplit(['/', '!']).next().unwrap_or(source);
    name.ends_with("-default.xml")
}

/// The first source that is the user's, if any.
fn user_source(sources: &[Option<String>]) -> Option<String> {
    sources
        .iter()
        .flatten()
        .find(|s| !is_default_source(s))
        .cloned()
}

/// `conf.get(key)` on a Hadoop `Configuration`; `args` holds the key as a Java string.
///
/// # Safety
/// `conf` must be a live `Configuration` reference of this thread's JNI frame.
unsafe fn conf_get(
    j: &Jni,
    conf: jni::jobject,
    args: &[jni::jvalue],
) -> std::result::Result<Option<String>, JavaError> {
    let value = j.call_nullable(
        conf,
        c"get",
        c"(Ljava/lang/String;)Ljava/lang/String;",
        args,
    )?;
    Ok(j.rust_string(value))
}

/// One key in the configuration files: the sources of its value, and the value.
type FileAnswer = (Vec<Option<String>>, Option<String>);

/// For each key, its [`FileAnswer`] in a fresh configuration that loads the
/// files the client will load; with the name of the configuration class used.
fn file_sources(keys: &[&str]) -> std::result::Result<(String, Vec<FileAnswer>), JavaError> {
    let jni = Jni::this_thread()?;
    // SAFETY: `env` is this thread's; all local references die with the
    // frames and every exception is cleared.
    unsafe {
        jni.in_local_frame(|j| {
            let (conf, class) = j.new_first_of(CONF_CLASSES)?;
            let mut out = Vec::with_capacity(keys.len());
            for key in keys {
                out.push(j.in_local_frame(|j| {
                    let args = [jni::jvalue {
                        l: j.new_string(key)?,
                    }];
                    let array = j.call_nullable(
                        conf,
                        c"getPropertySources",
                        c"(Ljava/lang/String;)[Ljava/lang/String;",
                        &args,
                    )?;
                    let sources = if array.is_null() {
                        Vec::new()
                    } else {
                        j.string_array(array)?
                    };
                    Ok((sources, conf_get(j, conf, &args)?))
                })?);
            }
            Ok((class, out))
        })
    }
}

/// Decide, before connecting, for every key of `defaults`: forced by `conf`
/// ("engine conf"), set by a user's file (that file wins), or set by the
/// engine ("engine default"). Enters the JVM only when there is a key to ask.
pub(super) fn decide(
    defaults: &[(String, String)],
    conf: &[(String, String)],
) -> std::result::Result<Vec<Decision>, String> {
    // Last wins, as for `conf`.
    let mut wanted: Vec<(String, String)> = Vec::new();
    for (k, v) in defaults {
        match wanted.iter_mut().find(|(wk, _)| wk == k) {
            Some(e) => e.1 = v.clone(),
            None => wanted.push((k.clone(), v.clone())),
        }
    }
    let forced = |k: &str| conf.iter().rev().find(|(ck, _)| ck == k).map(|(_, v)| v);
    let ask: Vec<&str> = wanted
        .iter()
        .filter(|(k, _)| forced(k).is_none())
        .map(|(k, _)| k.as_str())
        .collect();
    let (class, answers) = if ask.is_empty() {
        (String::new(), Vec::new())
    } else {
        file_sources(&ask).map_err(|e| e.to_string())?
    };
    let mut answers = answers.into_iter();
    let mut out = Vec::with_capacity(wanted.len());
    for (key, value) in wanted {
        let d = if let Some(v) = forced(&key) {
            Decision {
                key,
                apply: false,
                value: Some(v.clone()),
                source: ENGINE_CONF.into(),
            }
        } else {
            let (sources, file_value) = answers
                .next()
                .ok_or_else(|| format!("no answer for {key}"))?;
            match user_source(&sources) {
                Some(file) => {
                    log::debug!(
                        "client key {key}: {file} sets it ({file_value:?}, {class}); the engine \
                         default {value:?} is not applied"
                    );
                    Decision {
                        key,
                        apply: false,
                        value: file_value,
                        source: file,
                    }
                }
                None => Decision {
                    key,
                    apply: true,
                    value: Some(value),
                    source: ENGINE_DEFAULT.into(),
                },
            }
        };
        out.push(d);
    }
    Ok(out)
}

/// `fs.getConf().get(key)` for each key, in the connected `FileSystem`.
pub(super) fn live_values(
    fs: ffi::hdfsFS,
    keys: &[&str],
) -> std::result::Result<Vec<Option<String>>, JavaError> {
    let jni = Jni::this_thread()?;
    // SAFETY: `env` is this thread's; `fs` is a global reference to the live
    // FileSystem; all local references die with the frames and every
    // exception is cleared.
    unsafe {
        jni.in_local_frame(|j| {
            let conf = j.call(
                fs.cast::<jni::_jobject>(),
                c"getConf",
                c"()Lorg/apache/hadoop/conf/Configuration;",
                &[],
            )?;
            let mut out = Vec::with_capacity(keys.len());
            for key in keys {
                out.push(j.in_local_frame(|j| {
                    let args = [jni::jvalue {
                        l: j.new_string(key)?,
                    }];
                    conf_get(j, conf, &args)
                })?);
            }
            Ok(out)
        })
    }
}

/// The settings to report: each decision with the value read back from the
/// connected `FileSystem` (or, if that read fails, the decided value).
pub(super) fn settings(uri: &str, fs: ffi::hdfsFS, decisions: &[Decision]) -> Vec<ClientSetting> {
    if decisions.is_empty() {
        return Vec::new();
    }
    let keys: Vec<&str> = decisions.iter().map(|d| d.key.as_str()).collect();
    let live = match live_values(fs, &keys) {
        Ok(v) => Some(v),
        Err(e) => {
            log::warn!(
                "{uri}: cannot read the client configuration back ({e}); reporting the values \
                 decided at connect"
            );
            None
        }
    };
    decisions
        .iter()
        .enumerate()
        .map(|(i, d)| ClientSetting {
            key: d.key.clone(),
            value: match &live {
                Some(v) => v.get(i).cloned().flatten(),
                None => d.value.clone(),
            },
            source: d.source.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_sources() {
        for s in [
            "core-default.xml",
            "ozone-default.xml",
            "hdds-client-default.xml",
            "jar:file:/x/ozone-filesystem-hadoop3-2.2.1.jar!/hdds-common-default.xml",
            "/etc/hadoop/core-default.xml",
        ] {
            assert!(is_default_source(s), "{s}");
        }
        for s in [
            "ozone-site.xml",
            "core-site.xml",
            "programmatically",
            "file:/etc/ozone/ozone-site.xml",
            "because old.key is deprecated",
        ] {
            assert!(!is_default_source(s), "{s}");
        }
        let some = |v: &[&str]| v.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>();
        assert_eq!(user_source(&some(&["hdds-client-default.xml"])), None);
        assert_eq!(user_source(&[]), None);
        assert_eq!(
            user_source(&some(&["ozone-default.xml", "ozone-site.xml"])).as_deref(),
            Some("ozone-site.xml")
        );
    }

    #[test]
    fn forced_keys_need_no_jvm() {
        // Every default is also forced: decided without asking the JVM.
        let d = decide(
            &[("a".into(), "1".into()), ("a".into(), "2".into())],
            &[("a".into(), "3".into())],
        )
        .unwrap();
        assert_eq!(
            d,
            vec![Decision {
                key: "a".into(),
                apply: false,
                value: Some("3".into()),
                source: ENGINE_CONF.into(),
            }]
        );
        assert!(decide(&[], &[]).unwrap().is_empty());
    }
}
