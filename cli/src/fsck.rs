// SPDX-License-Identifier: Apache-2.0
//! `ozbd fsck`: check a volume and print the report.
//!
//! Owns: the command's progress display (a bar on a terminal, a line every
//! 5 s otherwise), the printed report (text or JSON) and its exit code.
//! Must never: check anything itself (the engine's `fsck` does, with the
//! same checksum and journal code the I/O path uses), or change a volume
//! unless `--repair` was given.

use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use ozbd_chunkstore::fsck::{fsck, FsckOptions, Progress, Report, EXIT_FAILED};
use ozbd_chunkstore::VolumeUri;

use crate::{human, Ctx};

/// Run the check; every failure becomes exit code 8, so 1 keeps its fsck
/// meaning ("orphans removed").
pub fn run(ctx: &Ctx, uri: &str, repair: bool, json: bool) -> ExitCode {
    match check(ctx, uri, repair) {
        Ok(report) => {
            print(&report, json);
            ExitCode::from(report.exit_code() as u8)
        }
        Err(e) => {
            eprintln!("ozbd: error: {e}");
            if json {
                println!("{}", serde_json::json!({ "error": e.to_string() }));
            }
            ExitCode::from(EXIT_FAILED as u8)
        }
    }
}

fn check(ctx: &Ctx, uri: &str, repair: bool) -> ozbd_chunkstore::Result<Report> {
    let uri = VolumeUri::parse(uri)?;
    let backend = ctx.backend(&uri)?;
    let open = ctx.open_opts();
    let opts = FsckOptions {
        repair,
        force: open.force,
        lease_ms: open.lease_ms,
    };
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("fsck [{bar:40}] {pos}/{len} chunks, {msg} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let start = Instant::now();
    let last = Mutex::new(Instant::now());
    let show = |p: Progress| {
        bar.set_length(p.total);
        bar.set_position(p.done);
        bar.set_message(human(p.bytes));
        if bar.is_hidden() {
            let mut l = last.lock().unwrap_or_else(|e| e.into_inner());
            if l.elapsed() >= Duration::from_secs(5) || (p.done == p.total && p.total > 0) {
                *l = Instant::now();
                eprintln!(
                    "fsck: {} of {} chunks ({:.0}%), {} read, {:.0} s",
                    p.done,
                    p.total,
                    100.0 * p.done as f64 / p.total.max(1) as f64,
                    human(p.bytes),
                    start.elapsed().as_secs_f64()
                );
            }
        }
    };
    let r = fsck(&backend, &uri, &opts, &show);
    bar.finish_and_clear();
    r
}

fn print(r: &Report, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(r).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
        );
        return;
    }
    println!("volume:           {}", r.volume);
    println!(
        "format version:   {} (chunk checksums: {})",
        r.format_version,
        if r.checksums {
            "every chunk"
        } else {
            "chunks written since the upgrade to format 4"
        }
    );
    println!("data root:        {}", r.root);
    println!(
        "chunks checked:   {} ({}){}",
        r.chunks_checked,
        human(r.bytes_checked),
        if r.chunks_without_checksums > 0 {
            format!(
                ", {} written before checksums (length checked only)",
                r.chunks_without_checksums
            )
        } else {
            String::new()
        }
    );
    if let Some(j) = &r.journal {
        println!(
            "journal:          {} segments, {} records, {} to apply at the next open",
            j.segments, j.records, j.to_apply
        );
    }
    for d in &r.damaged {
        println!("DAMAGED  {}: {}", d.path, d.what);
    }
    for o in &r.orphans {
        println!(
            "ORPHAN   {}: {}{}",
            o.path,
            o.what,
            if o.removed { " (removed)" } else { "" }
        );
    }
    for n in &r.notes {
        println!("note:    {n}");
    }
    let left = r.orphans.iter().filter(|o| !o.removed).count();
    println!(
        "result:           {}",
        match (r.damaged.len(), left, r.orphans.len()) {
            (0, 0, 0) => "clean".to_string(),
            (0, 0, n) => format!("clean; {n} orphans removed"),
            (d, l, _) => format!(
                "{d} damaged, {l} orphans{}",
                if l > 0 {
                    " (`ozbd fsck --repair` removes orphans; it never changes data)"
                } else {
                    ""
                }
            ),
        }
    );
}
