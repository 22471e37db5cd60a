// SPDX-License-Identifier: Apache-2.0
//! Epoch roots: where a volume's data lives, and the fencing move.
//!
//! Owns: the data root of each writer epoch (`<volume>/e<N>/`, holding
//! `chunks/` and `journal/`; format 2 volumes kept both in `<volume>/`), the
//! fence marker `e<N>/fence-<N>`, finding the current root, and `fence`: the
//! one rename that moves the data to a new epoch's root, so that every path
//! an earlier holder still uses stops existing at one instant in the OM.
//! Must never: move data into a root while another root is newer, or delete
//! a root the data is still in.

use ozbd_backend::{join, Backend, BackendError};

use crate::error::{Error, Result};
use crate::journal::segment::JOURNAL_DIR;
use crate::superblock::CHUNK_DIR;

/// `e<N>`: the directory name of epoch N's data root.
pub(crate) fn root_name(epoch: u64) -> String {
    format!("e{epoch}")
}

/// N from "<prefix>N", N >= 1 in decimal as the engine writes it (no sign,
/// no leading zero): data roots, leases, markers. Anything else ("e0",
/// "e007", "e1x") is not the engine's, so it can never alias a real epoch;
/// "e0" would otherwise name the volume directory itself (`root_path`).
pub(crate) fn parse_numbered(name: &str, prefix: &str) -> Option<u64> {
    let n = name.strip_prefix(prefix)?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || n.starts_with('0') {
        return None;
    }
    n.parse().ok()
}

fn parse_root_name(name: &str) -> Option<u64> {
    parse_numbered(name, "e")
}

/// The data root of `epoch` in the volume directory `dir` (epoch 0: the
/// volume directory itself, as in format 2).
pub(crate) fn root_path(dir: &str, epoch: u64) -> String {
    if epoch == 0 {
        dir.to_string()
    } else {
        join(dir, &root_name(epoch))
    }
}

/// The marker whose presence proves that epoch `epoch` still owns `root`.
pub(crate) fn marker_path(root: &str, epoch: u64) -> String {
    join(root, &format!("fence-{epoch}"))
}

/// The epochs of the data roots in `dir`, ascending.
pub(crate) fn root_epochs(backend: &dyn Backend, dir: &str) -> Result<Vec<u64>> {
    let mut v: Vec<u64> = backend
        .list(dir)?
        .into_iter()
        .filter(|e| e.is_dir)
        .filter_map(|e| parse_root_name(&e.name))
        .collect();
    v.sort_unstable();
    Ok(v)
}

/// The current data root of the volume in `dir`: the newest epoch root, or
/// the volume directory itself for a volume no lease-taking open has touched.
pub fn current_root(backend: &dyn Backend, dir: &str) -> Result<(u64, String)> {
    let e = root_epochs(backend, dir)?.last().copied().unwrap_or(0);
    Ok((e, root_path(dir, e)))
}

/// Move the volume's data to epoch `epoch`'s root and mark it. Afterwards
/// no path of an earlier epoch names the data: an earlier holder's chunk
/// commits fail in the OM (their parent directory is gone), and its hsyncs,
/// which Ozone still accepts on an open file, fail the marker check that
/// follows every one of them (see fence.rs). Roots left by earlier holders
/// after this point (a stalled writer recreating its old directory) hold
/// nothing anyone reads; they are removed here.
pub(crate) fn fence(backend: &dyn Backend, dir: &str, epoch: u64) -> Result<String> {
    let epochs = root_epochs(backend, dir)?;
    let newest = epochs.last().copied().unwrap_or(0);
    if newest >= epoch {
        return Err(Error::Internal(format!(
            "{dir}: epoch {epoch} is not newer than the data root e{newest}"
        )));
    }
    let root = root_path(dir, epoch);
    if newest > 0 {
        backend.rename(&root_path(dir, newest), &root)?;
    } else {
        backend.mkdirs(&root)?;
    }
    // A format 2 volume (or a move interrupted below) keeps chunks/ and
    // journal/ in the volume directory: move them in too.
    for sub in [CHUNK_DIR, JOURNAL_DIR] {
        let legacy = join(dir, sub);
        if backend.stat(&legacy)?.is_none() {
            continue;
        }
        let target = join(&root, sub);
        if backend.stat(&target)?.is_none() {
            backend.rename(&legacy, &target)?;
        } else {
            return Err(Error::Corrupt(format!(
                "{dir}: both {legacy} and {target} exist: the volume was written by two layouts at once; move one aside by hand (`ozbd fsck` lists both)"
            )));
        }
    }
    backend.put(&marker_path(&root, epoch), format!("{epoch}\n").as_bytes())?;
    for e in backend.list(&root)? {
        if let Some(old) = parse_numbered(&e.name, "fence-") {
            if old != epoch {
                backend.delete(&join(&root, &e.name), false)?;
            }
        }
    }
    for old in epochs.into_iter().filter(|e| *e != newest) {
        let p = root_path(dir, old);
        log::warn!("{p}: removing a data root an earlier holder left behind after it was fenced");
        match backend.delete(&p, true) {
            Ok(_) | Err(BackendError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ozbd_backend::memory::MemoryBackend;

    #[test]
    fn roots_are_found_moved_and_marked() {
        let b = MemoryBackend::new();
        b.put("/v/superblock.json", b"{}").unwrap();
        b.put("/v/chunks/0000000000000000", b"c0").unwrap();
        b.put("/v/journal/0000000000000001", b"j1").unwrap();
        assert_eq!(current_root(&b, "/v").unwrap(), (0, "/v".to_string()));
        assert_eq!(fence(&b, "/v", 1).unwrap(), "/v/e1");
        assert!(b.stat("/v/chunks").unwrap().is_none());
        assert!(b.stat("/v/e1/chunks/0000000000000000").unwrap().is_some());
        assert!(b.stat("/v/e1/journal/0000000000000001").unwrap().is_some());
        assert!(b.stat("/v/e1/fence-1").unwrap().is_some());
        // A stalled holder of epoch 1 recreates its root after epoch 2's fence.
        assert_eq!(fence(&b, "/v", 2).unwrap(), "/v/e2");
        assert!(b.stat("/v/e2/fence-1").unwrap().is_none());
        b.put("/v/e1/chunks/0000000000000005", b"stale").unwrap();
        assert_eq!(current_root(&b, "/v").unwrap().0, 2);
        assert_eq!(fence(&b, "/v", 3).unwrap(), "/v/e3");
        assert!(b.stat("/v/e1").unwrap().is_none(), "stale root removed");
        assert!(b.stat("/v/e3/chunks/0000000000000000").unwrap().is_some());
        assert!(fence(&b, "/v", 3).is_err(), "an epoch is never reused");
    }

    #[test]
    fn only_the_engines_own_names_are_epochs() {
        assert_eq!(parse_numbered("e12", "e"), Some(12));
        for bad in [
            "e0",
            "e007",
            "e",
            "e1x",
            "e-1",
            "e+1",
            "x1",
            "e99999999999999999999",
        ] {
            assert_eq!(parse_numbered(bad, "e"), None, "{bad}");
        }
        // A stray "e0" would name the volume directory itself: the fence
        // must never take it for an old root and delete the volume.
        let b = MemoryBackend::new();
        b.put("/v/superblock.json", b"{}").unwrap();
        b.put("/v/e0/junk", b"j").unwrap();
        b.put("/v/e1/chunks/0000000000000000", b"c0").unwrap();
        assert_eq!(fence(&b, "/v", 2).unwrap(), "/v/e2");
        assert!(
            b.stat("/v/superblock.json").unwrap().is_some(),
            "the volume is still there"
        );
        assert!(b.stat("/v/e2/chunks/0000000000000000").unwrap().is_some());
    }
}
