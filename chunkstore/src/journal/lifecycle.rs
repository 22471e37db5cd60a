// SPDX-License-Identifier: Apache-2.0
//! The journal's lifecycle: load (replay) at open, drain for journal=none,
//! close, and inspecting a closed volume's journal.
//!
//! Owns: building a journal from what replay found, applying and removing a
//! journal without the committer, and the close handshake with the
//! destager and committers.
//! Must never: return from close before the destager is done, or delete a
//! segment before everything in it is in the chunks.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use ozbd_backend::BackendRef;

use super::{lock, replay, segment, Config, JCounters, Journal, JournalInfo, State};
use crate::scheduler::Engine;

impl Journal {
    /// Replay the journal in `dir` (whatever mode the volume opens with) and
    /// build the journal around what it held. No thread runs yet.
    pub(crate) fn load(
        engine: Arc<Engine>,
        backend: BackendRef,
        dir: String,
        epoch: u64,
        cfg: Config,
        readonly: bool,
    ) -> crate::error::Result<Journal> {
        let sb = engine.sb().clone();
        let gauge = Arc::new(AtomicU64::new(0));
        let t = Instant::now();
        let r = replay::replay(&*backend, &dir, &sb.uuid, sb.chunk_size, sb.size, &gauge)?;
        // Before anything new is acknowledged: what a fenced holder appends
        // to these segments from now on never counts.
        if !readonly
            && (!r.lengths.is_empty()
                || backend
                    .stat(&ozbd_backend::join(&dir, super::seal::SEAL_NAME))?
                    .is_some())
        {
            super::seal::write(&*backend, &dir, &r.lengths)?;
        }
        if r.info.segments > 0 {
            log::info!(
                "{dir}: replayed {} segments ({} bytes) in {} ms: {} records to apply, {} dirty bytes in {} chunks",
                r.info.segments,
                r.info.bytes,
                t.elapsed().as_millis(),
                r.info.to_apply,
                r.info.dirty_bytes,
                r.info.chunks
            );
        }
        let c = JCounters::default();
        c.replayed.store(r.info.to_apply, Ordering::Relaxed);
        let dirty_since = (!r.map.is_empty()).then(Instant::now);
        Ok(Journal {
            engine,
            backend,
            dir,
            uuid: sb.uuid,
            epoch,
            chunk_size: sb.chunk_size,
            seg_target: (cfg.capacity / 8).max(1 << 20),
            max_record: (cfg.capacity / 8).max(64 << 10),
            cfg,
            st: Mutex::new(State {
                map: r.map,
                next_seq: r.next_seq,
                pending: VecDeque::new(),
                pending_bytes: 0,
                segs: r.segs,
                seg_bytes: r.seg_bytes,
                next_segno: r.next_segno,
                w_durable: r.watermark,
                touched: r.touched,
                destaging: HashSet::new(),
                floors: BTreeMap::new(),
                direct_inflight: 0,
                undurable: Default::default(),
                roll_gen: 0,
                closing: false,
                destager_done: false,
                dirty_since,
                last_write: Instant::now(),
                not_before: None,
                gathers: Default::default(),
            }),
            commit_cv: Condvar::new(),
            destage_cv: Condvar::new(),
            idle_cv: Condvar::new(),
            dirty_bytes: gauge,
            inflight_write_bytes: AtomicU64::new(0),
            c,
            opened: Instant::now(),
        })
    }

    /// Whether replay left anything to apply or delete.
    pub(crate) fn holds_anything(&self) -> bool {
        let st = lock(&self.st);
        !st.map.is_empty() || !st.segs.is_empty()
    }

    /// Apply everything replay found to the chunks and delete the segments,
    /// without the committer: for volumes opened with `journal=none` (or
    /// falling back to it). The engine's workers must be running.
    pub(crate) fn drain(self: &Arc<Self>) -> crate::error::Result<()> {
        loop {
            let jobs = {
                let mut st = lock(&self.st);
                if st.map.is_empty() {
                    break;
                }
                self.start_jobs(&mut st)
            };
            let Some((rx, n)) = jobs else { break };
            let mut ok = true;
            for _ in 0..n {
                let Ok(job) = rx.recv() else { break };
                ok &= self.finish_job(&job);
            }
            if !ok {
                return Err(crate::error::Error::Backend(ozbd_backend::BackendError::io(
                    "destage",
                    &self.dir,
                    5,
                    "applying the journal to the chunks failed (see the log); the journal is kept: open the volume again when Ozone is healthy",
                )));
            }
        }
        let segs: Vec<u64> = lock(&self.st).segs.keys().copied().collect();
        // Oldest first: what is left at any point is a suffix, and replaying
        // a suffix over chunks that hold everything is harmless.
        for n in segs {
            let path = ozbd_backend::join(&self.dir, &segment::seg_name(n));
            self.backend.delete(&path, false)?;
            let mut st = lock(&self.st);
            if let Some(s) = st.segs.remove(&n) {
                st.seg_bytes -= s.bytes;
            }
        }
        Ok(())
    }

    /// Stop taking requests, destage everything (a clean close leaves an
    /// empty journal), and let the committer finish. Returns when the
    /// destager is done; the threads then exit by themselves.
    pub(crate) fn close(&self) {
        let mut st = lock(&self.st);
        self.flush_expired(&mut st, true);
        st.closing = true;
        drop(st);
        self.destage_cv.notify_all();
        self.commit_cv.notify_all();
        let st = lock(&self.st);
        let _unused = self
            .idle_cv
            .wait_while(st, |s| !s.destager_done)
            .unwrap_or_else(|e| e.into_inner());
    }
}

/// What the journal in `dir` holds and what replaying it would do.
pub(crate) fn inspect(
    backend: &dyn ozbd_backend::Backend,
    dir: &str,
    sb: &crate::superblock::Superblock,
) -> crate::error::Result<JournalInfo> {
    let gauge = Arc::new(AtomicU64::new(0));
    Ok(replay::replay(backend, dir, &sb.uuid, sb.chunk_size, sb.size, &gauge)?.info)
}

impl Journal {
    /// Stop a committer whose destager never started.
    pub(crate) fn close_without_destager(&self) {
        let mut st = lock(&self.st);
        st.closing = true;
        st.destager_done = true;
        drop(st);
        self.commit_cv.notify_all();
    }
}
