// SPDX-License-Identifier: Apache-2.0
//! Exclusive open on a real Ozone cluster, across processes: a writer
//! (`ozbd crash-writer`) holds a volume; a second opener is refused while the
//! lease is fresh, naming the holder; the writer is frozen with SIGSTOP past
//! its lease; `ozbd --takeover` takes the volume over, and `crash-check`
//! checks the state then; the first writer is resumed with SIGCONT and must
//! not change a byte: its writes fail (ESTALE); a second writer then writes,
//! and `crash-check` finds exactly that state plus the second writer's writes.
//! Needs `eval "$(scripts/ozone-local env)"`; skips loudly without it unless
//! OZBD_REQUIRE_OZONE=1.

mod common;
use common::{crash_check, ozbd};
use common::{om_address, OZBD};

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LEASE_MS: &str = "3000";

/// Start `ozbd crash-writer`, copying its log (stdout) to `log` and its stderr to `err`.
fn writer(
    uri: &str,
    seed: u64,
    ops: u64,
    log: &std::path::Path,
    extra: &[&str],
) -> (Child, std::thread::JoinHandle<()>) {
    let mut child = Command::new(OZBD)
        .args(["--lease-ms", LEASE_MS])
        .args(extra)
        .args([
            "crash-writer",
            uri,
            "--seed",
            &seed.to_string(),
            "--ops",
            &ops.to_string(),
            "--depth",
            "4",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::from(
            std::fs::File::create(log.with_extension("err")).unwrap(),
        ))
        .spawn()
        .expect("spawn crash-writer");
    let stdout = child.stdout.take().unwrap();
    let log = log.to_path_buf();
    let copier = std::thread::spawn(move || {
        use std::io::Write;
        let mut f = std::fs::File::create(&log).unwrap();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = writeln!(f, "{line}");
            let _ = f.flush();
        }
    });
    (child, copier)
}

/// Kills the writer when the test fails early, so no writer outlives it.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.0.id().to_string()])
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn acked(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("A "))
        .count()
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig}");
}

#[test]
fn a_frozen_holder_is_refused_then_taken_over_and_cannot_change_a_byte() {
    let Some(om) = om_address() else { return };
    let uri = format!("ofs://{om}/ozbdtest/lease/run-{}", std::process::id());
    let (ok, out) = ozbd(&["create", &uri, "--size", "32M", "--chunk-size", "1M"]);
    assert!(ok, "create: {out}");
    let dir = std::env::temp_dir().join(format!("ozbd-lease-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let log_a = dir.join("a.log");
    let (a, copier_a) = writer(&uri, 1, 1_000_000, &log_a, &[]);
    let mut a = KillOnDrop(a);
    wait_for("writer A's first 20 acknowledged writes", 120, || {
        acked(&log_a) >= 20
    });

    // Held and fresh: refused at once, naming the holder; A goes on.
    let (ok, out) = ozbd(&[
        "--lease-ms",
        LEASE_MS,
        "--takeover",
        "import",
        "/dev/null",
        &uri,
    ]);
    assert!(!ok, "a second writable open must be refused: {out}");
    assert!(
        out.contains("is in use") && out.contains(&format!("pid {}", a.0.id())),
        "{out}"
    );
    let (ok, info) = ozbd(&["info", &uri]);
    assert!(
        ok && info.contains(&format!("pid {}", a.0.id())),
        "info shows the holder: {info}"
    );
    let before = acked(&log_a);
    wait_for("writer A to keep going", 60, || acked(&log_a) > before + 5);

    // Frozen past its lease: what it acknowledged so far is the record.
    signal(&a.0, "-STOP");
    std::thread::sleep(Duration::from_millis(500));
    let a_before = std::fs::read_to_string(&log_a).unwrap();
    let (_, info) = ozbd(&["info", "--json", &uri]);
    eprintln!("holder while frozen: {info}");
    wait_for("A's lease to expire", 60, || {
        let (_, j) = ozbd(&["info", "--json", &uri]);
        j.contains("\"expired\": true")
    });
    let (ok, out) = ozbd(&["--lease-ms", LEASE_MS, "import", "/dev/null", &uri]);
    assert!(
        !ok && out.contains("expired") && out.contains("--takeover"),
        "{out}"
    );

    // The takeover: a writable open with --takeover (it writes nothing). From
    // here on A must not change a byte.
    let (ok, out) = ozbd(&[
        "--lease-ms",
        LEASE_MS,
        "--takeover",
        "import",
        "/dev/null",
        &uri,
    ]);
    assert!(ok, "takeover: {out}");
    // The volume now: A's writes up to the freeze, each chunk a prefix of
    // them holding every acknowledged one (writes in flight may be missing).
    let keep = |t: &str| {
        t.lines()
            .filter(|l| l.starts_with("B ") || l.starts_with("A "))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    };
    let model = dir.join("model.img");
    let log_a_frozen = dir.join("a-frozen.log");
    std::fs::write(&log_a_frozen, keep(&a_before)).unwrap();
    let check = |log: &std::path::Path| crash_check(&uri, log, &model);
    let (ok, out) = check(&log_a_frozen);
    assert!(ok, "at the takeover: {out}");
    let summary_a = out
        .lines()
        .find(|l| l.starts_with("ok:"))
        .unwrap_or("")
        .to_string();

    // A resumes: every write it tries now fails; it exits with the fencing error.
    signal(&a.0, "-CONT");
    let t = Instant::now();
    let status = loop {
        if let Some(s) = a.0.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > Duration::from_secs(120) {
            let _ = a.0.kill();
            panic!("the fenced writer kept running for 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    copier_a.join().unwrap();
    let err_a = std::fs::read_to_string(log_a.with_extension("err")).unwrap_or_default();
    assert!(!status.success(), "the fenced writer must fail: {err_a}");
    assert!(err_a.contains("another opener took it over"), "{err_a}");
    let a_after = std::fs::read_to_string(&log_a).unwrap();
    let late: Vec<&str> = a_after[a_before.len()..].lines().collect();
    let late_sent = late.iter().filter(|l| l.starts_with("B ")).count();
    let late_acked = late.iter().filter(|l| l.starts_with("A ")).count();

    // B writes (no --takeover needed: the volume was released, and a lease the
    // fenced A may have renewed is older than the data).
    let log_b = dir.join("b.log");
    let (mut b, copier_b) = writer(&uri, 2, 300, &log_b, &[]);
    let st = b.wait().unwrap();
    copier_b.join().unwrap();
    assert!(
        st.success(),
        "writer B: {}",
        std::fs::read_to_string(log_b.with_extension("err")).unwrap_or_default()
    );
    assert_eq!(acked(&log_b), 300);
    // The volume now: the state at the takeover plus B's writes, nothing else.
    // Had a write of A reached the volume after the takeover, some chunk would
    // match no prefix of B's writes over that state.
    let (ok, out) = check(&log_b);
    assert!(ok, "after B: {out}");
    eprintln!(
        "lease test: at the takeover {summary_a}; A after SIGCONT sent {late_sent} writes and acknowledged {late_acked} (sent before the freeze); B acknowledged 300; {}",
        out.lines().find(|l| l.starts_with("ok:")).unwrap_or("")
    );
    let _ = ozbd(&["delete", &uri]);
}
