// SPDX-License-Identifier: Apache-2.0
//! `ozbd`'s help shows only the user commands: the test and benchmark tools
//! (`crash-writer`, `crash-check`, `bench`) are hidden from it, yet still run,
//! since `cli/tests/crash.rs` and `bench/` call them.
//! Needs no cluster. Must never: connect to Ozone.

mod common;
use common::ozbd;

const USER_COMMANDS: [&str; 7] = [
    "create", "info", "delete", "import", "export", "fsck", "resize",
];
const HIDDEN_TOOLS: [&str; 3] = ["crash-writer", "crash-check", "bench"];

#[test]
fn help_lists_user_commands_only() {
    for args in [&["--help"][..], &["help"], &["-h"]] {
        let (ok, out) = ozbd(args);
        assert!(ok, "ozbd {args:?}: {out}");
        for cmd in USER_COMMANDS {
            assert!(
                out.lines()
                    .any(|l| l.trim_start().starts_with(&format!("{cmd} "))),
                "ozbd {args:?} must list '{cmd}': {out}"
            );
        }
        for tool in HIDDEN_TOOLS {
            assert!(
                !out.contains(tool),
                "ozbd {args:?} must not show the test tool '{tool}': {out}"
            );
        }
        assert!(
            !out.contains("test tool") && !out.contains("benchmark"),
            "ozbd {args:?} must not describe test tools: {out}"
        );
    }
}

#[test]
fn hidden_tools_still_run() {
    for (tool, flag) in [
        ("crash-writer", "--seed"),
        ("crash-check", "--model"),
        ("bench", "--rounds"),
    ] {
        let (ok, out) = ozbd(&[tool, "--help"]);
        assert!(ok && out.contains(flag), "ozbd {tool} --help: {out}");
    }
}
