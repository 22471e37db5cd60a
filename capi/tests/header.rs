// SPDX-License-Identifier: Apache-2.0
//! The generated header must compile as strict C and C++ (front ends include it as is).

use std::process::Command;

fn compiles(compiler: &str, std: &str, lang: &str) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/include");
    let src = "#include \"ozbd.h\"\nint main(void) { struct ozbd_params p; p.mode = OZBD_OPEN_EXISTING; (void)p; return (int)OZBD_OP_FLUSH - 4; }\n";
    let path = std::env::temp_dir().join(format!("ozbd-header-{}-{lang}", std::process::id()));
    std::fs::write(&path, src).unwrap();
    let out = Command::new(compiler)
        .args([
            std,
            "-Wall",
            "-Wextra",
            "-Werror",
            "-fsyntax-only",
            "-x",
            lang,
            "-I",
            dir,
        ])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "{compiler} {std}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn header_compiles_as_c11() {
    compiles("cc", "-std=c11", "c");
}

#[test]
fn header_compiles_as_cxx17() {
    compiles("c++", "-std=c++17", "c++");
}
