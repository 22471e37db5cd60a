//! Puts the JDK's libjvm directory on the ozbd binary's run path, so that it
//! starts without LD_LIBRARY_PATH. Must never: fail the build when no JDK is found.

fn main() {
    println!("cargo:rerun-if-env-changed=JAVA_HOME");
    let home = std::env::var("JAVA_HOME").ok().or_else(|| {
        let out = std::process::Command::new("sh")
            .args(["-c", "readlink -f \"$(command -v javac || command -v java)\""])
            .output()
            .ok()?;
        let p = String::from_utf8(out.stdout).ok()?;
        // .../bin/javac -> ...
        let p = std::path::Path::new(p.trim()).parent()?.parent()?.to_path_buf();
        Some(p.to_string_lossy().into_owned())
    });
    if let Some(home) = home {
        for sub in ["lib/server", "jre/lib/amd64/server"] {
            let dir = format!("{home}/{sub}");
            if std::path::Path::new(&format!("{dir}/libjvm.so")).exists() {
                println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{dir}");
                return;
            }
        }
    }
    println!("cargo:warning=no JDK found: ozbd will need libjvm.so on LD_LIBRARY_PATH");
}
