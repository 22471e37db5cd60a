// SPDX-License-Identifier: Apache-2.0
//! `ozbd info` on real Ozone shows the engine's settings and the Ozone client
//! settings in effect, with their sources. The local cluster's client
//! configuration holds none of the engine-owned keys, so each must show the
//! engine's value with source "engine default": that proves a user's own
//! cluster gets them without editing its configuration. `--journal`,
//! `--journal-mb` and `--cache-mb` reach the engine's settings.
//! Must never: start or stop the cluster.

mod common;

use common::{om_address, ozbd};
use ozbd_chunkstore::defaults::OZONE_CLIENT_DEFAULTS;

#[test]
fn info_shows_the_client_settings_in_effect() {
    let Some(om) = om_address() else { return };
    let uri = format!(
        "ofs://{om}/vol1/settings-{}/d{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    );
    let (ok, out) = ozbd(&["create", &uri, "--size", "1M", "--chunk-size", "64K"]);
    assert!(ok, "{out}");
    let (ok, out) = ozbd(&["info", &uri, "--json"]);
    assert!(ok, "{out}");
    let start = out.find('{').expect("JSON in the output");
    let v: serde_json::Value = serde_json::from_str(&out[start..]).expect("valid JSON");
    let client = v["settings"]["client"].as_array().expect("settings.client");
    for d in OZONE_CLIENT_DEFAULTS {
        let c = client
            .iter()
            .find(|c| c["key"] == d.key)
            .unwrap_or_else(|| panic!("{} missing from {client:?}", d.key));
        assert_eq!(c["value"], d.value, "{c}");
        assert_eq!(c["source"], "engine default", "{c}");
    }
    assert_eq!(v["settings"]["retry_ms"], 30_000);
    // With only the engine's own hsync keys (the test cluster's client conf
    // has none), the journal's hsync check passes: the journal is on.
    assert_eq!(v["settings"]["journal"], "ozone", "{v}");
    assert!(v["settings"]["journal_note"].is_null(), "{v}");
    let (ok, text) = ozbd(&["info", &uri]);
    assert!(ok, "{text}");
    assert!(
        text.contains(
            "hdds.ratis.client.request.watch.type = MAJORITY_COMMITTED  (engine default)"
        ),
        "{text}"
    );
    // The open options reach the engine: its settings say so.
    let (ok, out) = ozbd(&[
        "info",
        &uri,
        "--json",
        "--journal",
        "none",
        "--journal-mb",
        "32",
        "--cache-mb",
        "0",
    ]);
    assert!(ok, "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&out[out.find('{').expect("JSON")..]).expect("valid JSON");
    assert_eq!(
        (
            &v["settings"]["journal"],
            &v["settings"]["journal_mb"],
            &v["settings"]["cache_mb"]
        ),
        (&"none".into(), &32.into(), &0.into()),
        "{v}"
    );
    let (ok, out) = ozbd(&["delete", &uri]);
    assert!(ok, "{out}");
}
