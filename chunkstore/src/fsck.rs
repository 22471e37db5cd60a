// SPDX-License-Identifier: Apache-2.0
//! Checking a volume: `ozbd fsck`.
//!
//! Owns: scanning a volume's directory (superblock, writer lease, data roots,
//! every chunk's length and checksums, the journal, and files that belong to
//! none of these), the report of what it found, and removing orphans when
//! asked. Orphans are files no reader of the volume ever reads: data roots
//! left by fenced writers, interrupted lease files, chunks past the volume's
//! size, and stray names. Damage is everything a reader does read and cannot
//! trust: a chunk failing its length or checksums, a damaged journal.
//! Must never: change anything without `repair`; with it, change anything
//! but orphans (damaged data is reported, never "fixed" by guessing), or
//! repair a volume another writer holds (repair takes the writer lease, which
//! fences every earlier holder first).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use ozbd_backend::{join, BackendError, BackendRef, FileInfo};

use crate::error::{Error, Result};
use crate::journal::segment::JOURNAL_DIR;
use crate::journal::JournalInfo;
use crate::lease::{self, layout, LeaseOptions};
use crate::sums::{data_len_for_file, trailer_len, units, Summer, UNIT};
use crate::superblock::{parse_chunk_name, Superblock, CHUNK_DIR, SUPERBLOCK_NAME};
use crate::uri::VolumeUri;
use crate::volume::Volume;

/// Chunks verified at once (each a whole-chunk read from Ozone).
pub const FSCK_PARALLEL: usize = 4;

#[derive(Debug, Clone, Default)]
pub struct FsckOptions {
    /// Remove orphans (taking the writer lease for it).
    pub repair: bool,
    /// With `repair`: take over an expired lease.
    pub force: bool,
    pub lease_ms: u64,
}

/// One thing found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The file or directory, as a path in the backend.
    pub path: String,
    pub what: String,
    /// Removed by `repair`.
    pub removed: bool,
}

/// How far the chunk scan is.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub volume: String,
    pub format_version: u32,
    pub checksums: bool,
    /// The data root scanned (e<N>).
    pub root: String,
    pub chunks_checked: u64,
    pub bytes_checked: u64,
    /// Chunks written before the volume had checksums: their length was
    /// checked, their content cannot be.
    pub chunks_without_checksums: u64,
    pub damaged: Vec<Finding>,
    pub orphans: Vec<Finding>,
    pub journal: Option<JournalInfo>,
    pub notes: Vec<String>,
}

/// Exit codes, as e2fsck's: 0 clean, 1 orphans removed and nothing else
/// wrong, 4 damage found or orphans left.
pub const EXIT_CLEAN: i32 = 0;
pub const EXIT_REPAIRED: i32 = 1;
pub const EXIT_PROBLEMS: i32 = 4;
/// The volume could not be checked at all (not a volume, Ozone unreachable).
pub const EXIT_FAILED: i32 = 8;

impl Report {
    pub fn exit_code(&self) -> i32 {
        if !self.damaged.is_empty() || self.orphans.iter().any(|o| !o.removed) {
            EXIT_PROBLEMS
        } else if self.orphans.is_empty() {
            EXIT_CLEAN
        } else {
            EXIT_REPAIRED
        }
    }
}

fn finding(path: String, what: impl Into<String>) -> Finding {
    Finding {
        path,
        what: what.into(),
        removed: false,
    }
}

/// Check the volume at `uri`; with `repair`, remove its orphans.
/// `progress` is called as chunks are verified. A superblock that cannot be
/// trusted is an error (nothing else can be checked without it).
pub fn fsck(
    backend: &BackendRef,
    uri: &VolumeUri,
    opts: &FsckOptions,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Report> {
    let dir = uri.dir.clone();
    let sb = Volume::inspect(backend, uri)?;
    let mut report = Report {
        volume: uri.canonical(),
        format_version: sb.format_version,
        checksums: sb.checksums,
        ..Report::default()
    };
    // Under `repair`, the scan runs under the writer lease (every earlier
    // holder fenced; nobody changes the volume meanwhile); the fencing move
    // itself removes the data roots fenced writers left, which are listed
    // first. Otherwise nothing may write: a read-only backend.
    let top = backend.list(&dir)?;
    let (cur_epoch, _) = layout::current_root(&**backend, &dir)?;
    let mut stale_roots = Vec::new();
    for e in &top {
        if let Some(n) = layout::parse_numbered(&e.name, "e").filter(|_| e.is_dir) {
            if n != cur_epoch {
                stale_roots.push(finding(
                    join(&dir, &e.name),
                    format!("data root of writer epoch {n}, left after a newer writer (epoch {cur_epoch}) fenced it; nothing reads it"),
                ));
            }
        }
    }
    let mut taken = None;
    let io: BackendRef = if opts.repair {
        let t = lease::take(
            backend,
            &dir,
            &uri.canonical(),
            &LeaseOptions {
                lease_ms: opts.lease_ms,
                force: opts.force,
                frontend: "fsck".into(),
                name: String::new(),
            },
        )?;
        for f in &mut stale_roots {
            f.removed = backend.stat(&f.path)?.is_none();
        }
        let b = t.backend.clone();
        taken = Some(t);
        b
    } else {
        if let Some(l) = lease::current(backend, &dir, None)? {
            report.notes.push(format!(
                "the volume's writer lease: {}; a volume in use may change while it is checked",
                l.describe()
            ));
        }
        Arc::new(lease::readonly::ReadOnlyBackend(backend.clone()))
    };
    let scan = scan(&io, &dir, &sb, progress, &mut report);
    report.orphans.splice(0..0, stale_roots);
    if let (Ok(()), true) = (&scan, opts.repair) {
        for o in report.orphans.iter_mut().filter(|o| !o.removed) {
            match io.delete(&o.path, true) {
                Ok(_) | Err(BackendError::NotFound { .. }) => o.removed = true,
                Err(e) => report
                    .notes
                    .push(format!("could not remove {}: {e}", o.path)),
            }
        }
    }
    if let Some(t) = taken {
        t.lease.release();
    }
    scan.map(|()| report)
}

/// Everything after the superblock and the lease.
fn scan(
    io: &BackendRef,
    dir: &str,
    sb: &Superblock,
    progress: &(dyn Fn(Progress) + Sync),
    report: &mut Report,
) -> Result<()> {
    let (epoch, root) = layout::current_root(&**io, dir)?;
    report.root = root.clone();
    // The volume directory: the superblock, leases, data roots.
    for e in io.list(dir)? {
        let path = join(dir, &e.name);
        let known = e.name == SUPERBLOCK_NAME
            || (layout::parse_numbered(&e.name, "lease.").is_some() && !e.is_dir)
            || (layout::parse_numbered(&e.name, "e").is_some() && e.is_dir)
            || e.name == CHUNK_DIR
            || e.name == JOURNAL_DIR;
        if epoch > 0 && (e.name == CHUNK_DIR || e.name == JOURNAL_DIR) {
            // A format 2 directory an interrupted upgrade has not moved yet:
            // data, never an orphan (the next writable open moves it in).
            report.notes.push(format!(
                "{path}: a format 2 directory not yet moved into e{epoch}/; the next writable open moves it (or refuses if both exist)"
            ));
        }
        if e.name.starts_with(".lease-") && !e.is_dir {
            report.orphans.push(finding(
                path,
                "a lease an opener wrote and never installed (it died while opening)",
            ));
        } else if layout::parse_numbered(&e.name, "e").is_some_and(|n| n > epoch) && e.is_dir {
            report
                .notes
                .push(format!("{path}: a newer writer appeared during the check"));
        } else if !known {
            // (Older data roots are reported by the caller.)
            report
                .orphans
                .push(finding(path, "not part of a bdev_ozone volume"));
        }
    }
    // The data root: chunks/, journal/, the fence marker.
    if epoch > 0 {
        for e in io.list(&root)? {
            let path = join(&root, &e.name);
            let ok = (e.name == CHUNK_DIR || e.name == JOURNAL_DIR) && e.is_dir
                || layout::parse_numbered(&e.name, "fence-") == Some(epoch);
            if !ok {
                report
                    .orphans
                    .push(finding(path, "not part of a bdev_ozone data root"));
            }
        }
    }
    check_chunks(io, &join(&root, CHUNK_DIR), sb, progress, report)?;
    match crate::journal::inspect(&**io, &join(&root, JOURNAL_DIR), sb) {
        Ok(info) => {
            if info.torn_bytes > 0 {
                report.notes.push(format!(
                    "the journal ends in a torn tail of {} bytes (a writer died before its hsync returned: never acknowledged); the next open cuts it",
                    info.torn_bytes
                ));
            }
            report.journal = Some(info);
        }
        Err(e @ (Error::Corrupt(_) | Error::Mismatch(_))) => report
            .damaged
            .push(finding(join(&root, JOURNAL_DIR), e.to_string())),
        Err(e) => return Err(e),
    }
    Ok(())
}

/// List and verify every chunk, `FSCK_PARALLEL` at a time.
fn check_chunks(
    io: &BackendRef,
    chunk_dir: &str,
    sb: &Superblock,
    progress: &(dyn Fn(Progress) + Sync),
    report: &mut Report,
) -> Result<()> {
    let entries = match io.list(chunk_dir) {
        Ok(e) => e,
        Err(BackendError::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let mut chunks = Vec::new();
    for e in entries {
        let path = join(chunk_dir, &e.name);
        match parse_chunk_name(&e.name).filter(|_| !e.is_dir) {
            Some(c) if c < sb.chunk_count() => chunks.push((c, e)),
            Some(c) => report.orphans.push(finding(
                path,
                format!(
                    "chunk {c} lies past the end of the volume ({} chunks of {} bytes)",
                    sb.chunk_count(),
                    sb.chunk_size
                ),
            )),
            None => report.orphans.push(finding(path, "not a chunk file name")),
        }
    }
    let summer = Summer::new(&sb.uuid);
    let next = AtomicUsize::new(0);
    let done = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    let legacy = AtomicU64::new(0);
    let total = chunks.len() as u64;
    let found: Mutex<Vec<(u64, Finding)>> = Mutex::new(Vec::new());
    let failed: Mutex<Option<Error>> = Mutex::new(None);
    progress(Progress {
        done: 0,
        total,
        bytes: 0,
    });
    std::thread::scope(|s| {
        for _ in 0..FSCK_PARALLEL.min(chunks.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((c, info)) = chunks.get(i) else {
                    break;
                };
                if failed.lock().map(|f| f.is_some()).unwrap_or(true) {
                    break;
                }
                let path = join(chunk_dir, &info.name);
                match check_chunk(io, &path, *c, info, sb, &summer) {
                    Ok(Checked::Good) => {}
                    Ok(Checked::NoSums) => {
                        legacy.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Checked::Bad(what)) => {
                        if let Ok(mut f) = found.lock() {
                            f.push((*c, finding(path, what)));
                        }
                    }
                    Err(e) => {
                        if let Ok(mut f) = failed.lock() {
                            f.get_or_insert(e);
                        }
                        break;
                    }
                }
                bytes.fetch_add(info.len, Ordering::Relaxed);
                progress(Progress {
                    done: done.fetch_add(1, Ordering::Relaxed) + 1,
                    total,
                    bytes: bytes.load(Ordering::Relaxed),
                });
            });
        }
    });
    if let Some(e) = failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    let mut found = found.into_inner().unwrap_or_else(|e| e.into_inner());
    found.sort_by_key(|(c, _)| *c);
    report.damaged.extend(found.into_iter().map(|(_, f)| f));
    report.chunks_checked = done.into_inner();
    report.bytes_checked = bytes.into_inner();
    report.chunks_without_checksums = legacy.into_inner();
    Ok(())
}

enum Checked {
    Good,
    /// A chunk of an upgraded volume written before it had checksums.
    NoSums,
    Bad(String),
}

/// Read one whole chunk file and check its length, trailer and every unit.
fn check_chunk(
    io: &BackendRef,
    path: &str,
    c: u64,
    info: &FileInfo,
    sb: &Superblock,
    summer: &Summer,
) -> Result<Checked> {
    let vlen = sb.chunk_len(c) as usize;
    let len = info.len as usize;
    if len == vlen && !sb.checksums {
        return Ok(Checked::NoSums);
    }
    // The chunk at the volume's end may have been written before a resize,
    // at the length it had then: take that length when the file has it and
    // its trailer verifies there (as the engine's reads do, chunk_io.rs).
    let other = data_len_for_file(len).filter(|&d| {
        d != vlen && d as u64 <= sb.chunk_size && d.is_multiple_of(sb.block_size as usize)
    });
    let clen = match other {
        Some(d) if len != vlen + trailer_len(vlen) => d,
        _ => vlen,
    };
    let want = clen + trailer_len(clen);
    if len != want {
        return Ok(Checked::Bad(format!(
            "{len} bytes, not {want} ({clen} of data and {} of checksums): truncated, extended or rewritten from outside bdev_ozone",
            trailer_len(clen)
        )));
    }
    let mut buf = vec![0u8; want];
    let mut at = 0;
    while at < want {
        match io.read_at(path, at as u64, &mut buf[at..]) {
            Ok(0) => break,
            Ok(n) => at += n,
            // Removed since the list (a holder's delete): nothing to check.
            Err(BackendError::NotFound { .. }) => return Ok(Checked::Good),
            Err(e) => return Err(e.into()),
        }
    }
    if at != want {
        return Ok(Checked::Bad(format!(
            "listed as {want} bytes but only {at} could be read: truncated"
        )));
    }
    let sums = match summer.decode(c, clen, &buf[clen..]) {
        Ok(s) => s,
        Err(why) if clen != vlen => {
            return Ok(Checked::Bad(format!(
                "{len} bytes, not {} ({vlen} of data and {} of checksums), and no valid trailer after {clen} bytes either ({why}): truncated, extended or rewritten from outside bdev_ozone",
                vlen + trailer_len(vlen),
                trailer_len(vlen)
            )))
        }
        Err(why) => return Ok(Checked::Bad(why)),
    };
    if clen > vlen && buf[vlen..clen].iter().any(|&b| b != 0) {
        return Ok(Checked::Bad(format!(
            "the chunk holds {clen} bytes of data and the volume ends {vlen} bytes into it, but the bytes past the end are not zeros (a shrink never leaves data there): they would show up if the volume grew again"
        )));
    }
    // Every bad unit, as ranges of chunk bytes.
    let mut bad: Vec<(usize, usize)> = Vec::new();
    for u in 0..units(clen) {
        let lo = u * UNIT;
        let hi = clen.min(lo + UNIT);
        if summer.verify(c, &sums, u, &buf[lo..hi]).is_err() {
            match bad.last_mut() {
                Some(r) if r.1 == lo => r.1 = hi,
                _ => bad.push((lo, hi)),
            }
        }
    }
    if bad.is_empty() {
        return Ok(Checked::Good);
    }
    let base = c * sb.chunk_size;
    let ranges: Vec<String> = bad
        .iter()
        .map(|(lo, hi)| {
            format!(
                "{lo}..{hi} (volume bytes {}..{})",
                base + *lo as u64,
                base + *hi as u64
            )
        })
        .collect();
    Ok(Checked::Bad(format!(
        "bytes {} of the chunk do not match their checksums: reads there fail with an I/O error; rewrite that range (or restore the volume) to clear it",
        ranges.join(", ")
    )))
}
