// SPDX-License-Identifier: Apache-2.0
//! Engine-owned client defaults (`LibhdfsOptions::defaults`) on a real Ozone
//! cluster: applied when the user's configuration files lack the key, and
//! left alone when a file sets it, with `Backend::client_settings` saying
//! which. Needs OZONE_OM_ADDRESS and the client environment
//! (`eval "$(scripts/ozone-local env)"`); skips loudly otherwise, unless
//! OZBD_REQUIRE_OZONE=1.
//!
//! The JVM reads CLASSPATH (and with it the configuration dir) once per
//! process, so each scenario runs in a child process of this test binary: a
//! copy of `$HADOOP_CONF_DIR` with the files adjusted comes first on the
//! child's CLASSPATH instead of the original.
#![cfg(feature = "libhdfs")]

mod libhdfs_common;

use std::path::{Path, PathBuf};
use std::process::Command;

use libhdfs_common::*;
use ozbd_backend::libhdfs::{LibhdfsBackend, LibhdfsOptions};
use ozbd_backend::{join, Backend, ClientSetting};

/// Tells the child which scenario to run.
const SCENARIO_ENV: &str = "OZBD_CLIENT_DEFAULTS_SCENARIO";
const CHILD_TEST: &str = "child_scenario";
/// A real Ozone client key, present in the test cluster's client files.
const READ_TIMEOUT: &str = "ozone.client.read.timeout";

type Keys = Vec<(String, String)>;

fn setting(key: &str, value: &str, source: &str) -> ClientSetting {
    ClientSetting {
        key: key.into(),
        value: Some(value.into()),
        source: source.into(),
    }
}

/// The client environment, or None after a loud skip.
fn ozone_env(test: &str) -> Option<(String, PathBuf)> {
    if !jvm_env(test) {
        return None;
    }
    let om = std::env::var("OZONE_OM_ADDRESS").unwrap_or_default();
    let conf = std::env::var("HADOOP_CONF_DIR").unwrap_or_default();
    if om.trim().is_empty() || conf.trim().is_empty() {
        skip(
            test,
            "OZONE_OM_ADDRESS or HADOOP_CONF_DIR is not set (run: scripts/ozone-local start && \
             eval \"$(scripts/ozone-local env)\")",
        );
        return None;
    }
    Some((om.trim().to_string(), PathBuf::from(conf.trim())))
}

/// Remove every `<property>` line naming `key`.
fn drop_property(xml: &str, key: &str) -> String {
    let name = format!("<name>{key}</name>");
    xml.lines()
        .filter(|l| !l.contains(&name))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Set `key` to `value` (one property line, before `</configuration>`).
fn set_property(xml: &str, key: &str, value: &str) -> String {
    let xml = drop_property(xml, key);
    let line = format!("  <property><name>{key}</name><value>{value}</value></property>\n");
    let at = xml
        .rfind("</configuration>")
        .expect("a Hadoop configuration file ends with </configuration>");
    format!("{}{line}{}", &xml[..at], &xml[at..])
}

/// Copy `from` into a fresh temp dir, letting `edit` change each file's text.
fn copy_conf(from: &Path, edit: impl Fn(&str, String) -> String) -> PathBuf {
    let dir = std::env::temp_dir().join(unique("ozbd-client-conf-"));
    std::fs::create_dir_all(&dir).expect("temp conf dir");
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let path = entry.expect("conf dir entry").path();
        if !path.is_file() {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        std::fs::write(dir.join(&name), edit(&name, text)).expect("write conf file");
    }
    dir
}

/// Run the child scenario with `conf` first on CLASSPATH instead of `orig`.
fn run_child(scenario: &str, orig: &Path, conf: &Path) {
    let cp = std::env::var("CLASSPATH").unwrap_or_default();
    let same = |e: &str| Path::new(e.trim_end_matches('/')) == orig;
    assert!(
        cp.split(':').any(same),
        "CLASSPATH does not hold HADOOP_CONF_DIR {}: the scenario could not replace it",
        orig.display()
    );
    let new_cp: Vec<String> = std::iter::once(conf.to_string_lossy().into_owned())
        .chain(cp.split(':').filter(|e| !same(e)).map(str::to_string))
        .collect();
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args([CHILD_TEST, "--exact", "--ignored", "--nocapture"])
        .args(["--test-threads", "1"])
        .env("CLASSPATH", new_cp.join(":"))
        .env("HADOOP_CONF_DIR", conf)
        .env("OZONE_CONF_DIR", conf)
        .env(SCENARIO_ENV, scenario)
        .output()
        .expect("run the child scenario");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("--- child {scenario} stdout:\n{stdout}\n--- child {scenario} stderr (tail):");
    let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
    for l in tail.into_iter().rev() {
        eprintln!("{l}");
    }
    assert!(out.status.success(), "child scenario {scenario} failed");
    assert!(
        stdout.contains("1 passed"),
        "the child scenario {scenario} did not run"
    );
    let _ = std::fs::remove_dir_all(conf);
}

/// (a) The client files lack the keys: the engine's defaults apply, are
/// reported as "engine default", and the live FileSystem configuration has
/// them. A key only a `*-default.xml` sets (`ozone.client.bytes.per.checksum`
/// in hdds-client-default.xml) is not the user's.
#[test]
fn engine_defaults_apply_when_files_lack_them() {
    const T: &str = "engine_defaults_apply_when_files_lack_them";
    let Some((_, orig)) = ozone_env(T) else {
        return;
    };
    let conf = copy_conf(&orig, |_, text| drop_property(&text, READ_TIMEOUT));
    for f in ["core-site.xml", "ozone-site.xml"] {
        let text = std::fs::read_to_string(conf.join(f)).expect(f);
        assert!(
            !text.contains(READ_TIMEOUT),
            "{f} still sets {READ_TIMEOUT}"
        );
    }
    run_child("a", &orig, &conf);
}

/// (b) The client's ozone-site.xml sets `ozone.client.read.timeout=5s` and its
/// core-site.xml a key of its own: those values win, and the source names the
/// file. Keys no file sets still get the engine's default, and `conf` still
/// forces its keys.
#[test]
fn user_files_win_over_engine_defaults() {
    const T: &str = "user_files_win_over_engine_defaults";
    let Some((_, orig)) = ozone_env(T) else {
        return;
    };
    let conf = copy_conf(&orig, |name, text| match name {
        "ozone-site.xml" => set_property(&text, READ_TIMEOUT, "5s"),
        "core-site.xml" => set_property(
            &drop_property(&text, READ_TIMEOUT),
            "ozbd.test.core.key",
            "fromcore",
        ),
        _ => text,
    });
    let ozone_site = std::fs::read_to_string(conf.join("ozone-site.xml")).expect("ozone-site");
    assert!(ozone_site.contains("<name>ozone.client.read.timeout</name><value>5s</value>"));
    run_child("b", &orig, &conf);
}

/// The scenarios, in a child process started by the tests above (which set
/// CLASSPATH and the scenario).
#[test]
#[ignore = "run by engine_defaults_apply_when_files_lack_them and user_files_win_over_engine_defaults"]
fn child_scenario() {
    let Ok(scenario) = std::env::var(SCENARIO_ENV) else {
        eprintln!("{CHILD_TEST}: only the other tests of this file run it (with {SCENARIO_ENV})");
        return;
    };
    let om = std::env::var("OZONE_OM_ADDRESS").expect("OZONE_OM_ADDRESS");
    let (defaults, conf, want): (Keys, Keys, Vec<ClientSetting>) = match scenario.as_str() {
        "a" => (
            vec![
                (READ_TIMEOUT.into(), "4s".into()),
                ("ozone.client.bytes.per.checksum".into(), "32KB".into()),
                ("ozbd.test.engine.default".into(), "42".into()),
            ],
            vec![],
            vec![
                setting(READ_TIMEOUT, "4s", "engine default"),
                setting("ozone.client.bytes.per.checksum", "32KB", "engine default"),
                setting("ozbd.test.engine.default", "42", "engine default"),
            ],
        ),
        "b" => (
            vec![
                (READ_TIMEOUT.into(), "4s".into()),
                ("ozbd.test.core.key".into(), "engine".into()),
                ("ozbd.test.engine.default".into(), "42".into()),
                ("ozbd.test.forced".into(), "default".into()),
            ],
            vec![("ozbd.test.forced".into(), "forced".into())],
            vec![
                setting(READ_TIMEOUT, "5s", "ozone-site.xml"),
                setting("ozbd.test.core.key", "fromcore", "core-site.xml"),
                setting("ozbd.test.engine.default", "42", "engine default"),
                setting("ozbd.test.forced", "forced", "engine conf"),
            ],
        ),
        s => panic!("unknown scenario {s}"),
    };
    let opts = LibhdfsOptions {
        defaults,
        conf,
        ..LibhdfsOptions::default()
    };
    let be = LibhdfsBackend::connect(&format!("ofs://{om}"), &opts)
        .unwrap_or_else(|e| panic!("connect ofs://{om}: {e}"));
    let got = be.client_settings();
    eprintln!("scenario {scenario}: client_settings = {got:#?}");
    assert_eq!(got, want);
    for s in &want {
        assert_eq!(
            be.debug_live_conf(&s.key).unwrap(),
            s.value,
            "{} in the live FileSystem configuration",
            s.key
        );
    }
    // The client works with these settings.
    let bucket = join("/ozbdtest", &unique("defaults"));
    let f = join(&bucket, "f");
    be.put(&f, b"defaults").unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(be.read_at(&f, 0, &mut buf).unwrap(), 8);
    be.delete(&bucket, true).unwrap();
}
