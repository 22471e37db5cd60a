// SPDX-License-Identifier: Apache-2.0
//! Exclusive open: the writer's lease on a volume, and taking it over.
//!
//! Owns: the lease files `<volume>/lease.<epoch>` (JSON: holder, epoch,
//! lease length, renewal count), choosing the next epoch, refusing a second
//! opener while a lease is fresh (naming the holder and the lease's age),
//! taking over an expired lease (`force`) or one whose holder is provably
//! dead on this machine, renewing it, and removing it at close.
//! Must never: let two openers win the same epoch (the lease file is made by
//! a rename that fails when the name exists), judge a lease's age by this
//! machine's clock (ages are differences of two times from the OM: the
//! lease file's and a file we have just written), or rest safety on the
//! lease: the fencing move (layout.rs) and the marker check (fence.rs) keep a
//! fenced holder from changing anything, whatever the clocks say.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | lease files, acquire, renew, release, `LeaseInfo` |
//! | `holder.rs` | the holder's identity; "dead on this host" |
//! | `layout.rs` | epoch data roots, the fencing move, the marker |
//! | `fence.rs` | `FencedBackend`: the marker check after every change |
//! | `readonly.rs` | `ReadOnlyBackend`: read-only opens, which take no lease |

pub(crate) mod fence;
pub mod holder;
pub mod layout;
pub(crate) mod readonly;

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ozbd_backend::{join, BackendError, BackendRef};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub use holder::Holder;

const LEASE_MAGIC: &str = "bdev_ozone lease";
/// Added to the lease length before a lease counts as expired: the OM's
/// timestamps are whole seconds through libhdfs, and a renewal takes time.
const EXPIRY_SLACK_MS: u64 = 2_000;

/// What is in a lease file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub magic: String,
    pub epoch: u64,
    pub holder: Holder,
    pub lease_ms: u64,
    pub renewals: u64,
}

/// A volume's current lease as another process sees it (`ozbd info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    pub record: LeaseRecord,
    /// Milliseconds since the last renewal, by the OM's clock; None when
    /// it could not be measured (a read-only look writes nothing).
    pub age_ms: Option<u64>,
    pub path: String,
}

impl LeaseInfo {
    pub fn expired(&self) -> bool {
        self.age_ms
            .is_some_and(|a| a > self.record.lease_ms + EXPIRY_SLACK_MS)
    }

    pub fn describe(&self) -> String {
        let age = match self.age_ms {
            Some(a) => format!("renewed {:.1} s ago", a as f64 / 1000.0),
            None => "age unknown".to_string(),
        };
        format!(
            "held by {} (writer epoch {}, {age}, lease {} s)",
            self.record.holder.describe(),
            self.record.epoch,
            self.record.lease_ms / 1000
        )
    }
}

/// How to take the lease.
#[derive(Debug, Clone)]
pub struct LeaseOptions {
    pub lease_ms: u64,
    /// Take over a lease that has expired (its holder is presumed dead).
    pub force: bool,
    pub frontend: String,
    pub name: String,
}

fn lease_name(epoch: u64) -> String {
    format!("lease.{epoch}")
}

fn parse_lease_name(name: &str) -> Option<u64> {
    layout::parse_numbered(name, "lease.")
}

fn read_record(backend: &BackendRef, path: &str) -> Result<LeaseRecord> {
    let mut buf = vec![0u8; 16 << 10];
    let mut at = 0;
    loop {
        let n = backend.read_at(path, at as u64, &mut buf[at..])?;
        if n == 0 || at + n == buf.len() {
            at += n;
            break;
        }
        at += n;
    }
    let rec: LeaseRecord = serde_json::from_slice(&buf[..at])
        .map_err(|e| Error::Corrupt(format!("{path}: not a lease: {e}")))?;
    if rec.magic != LEASE_MAGIC {
        return Err(Error::Corrupt(format!("{path}: not a bdev_ozone lease")));
    }
    Ok(rec)
}

/// The newest lease file in `dir` and its modification time, if any.
fn newest_lease(backend: &BackendRef, dir: &str) -> Result<Option<(u64, String, u64)>> {
    let mut best: Option<(u64, String, u64)> = None;
    for e in backend.list(dir)? {
        if let Some(n) = parse_lease_name(&e.name).filter(|_| !e.is_dir) {
            if best.as_ref().is_none_or(|b| n > b.0) {
                best = Some((n, join(dir, &e.name), e.mtime_ms));
            }
        }
    }
    Ok(best)
}

/// The volume's current lease, if any, with its age when `now_ms` (an OM
/// time) is given.
pub fn current(backend: &BackendRef, dir: &str, now_ms: Option<u64>) -> Result<Option<LeaseInfo>> {
    match newest_lease(backend, dir)? {
        Some(found) => describe_lease(backend, found, now_ms),
        None => Ok(None),
    }
}

/// Read the lease file `newest_lease` found: (epoch, path, mtime).
fn describe_lease(
    backend: &BackendRef,
    (epoch, path, mtime): (u64, String, u64),
    now_ms: Option<u64>,
) -> Result<Option<LeaseInfo>> {
    let record = match read_record(backend, &path) {
        Ok(r) => r,
        // Removed between the list and the read: released just now.
        Err(Error::Backend(BackendError::NotFound { .. })) => return Ok(None),
        Err(e @ Error::Corrupt(_)) => {
            log::warn!("{e}: treated as a lease of an unknown holder");
            LeaseRecord {
                magic: LEASE_MAGIC.into(),
                epoch,
                holder: Holder {
                    host: "an unknown host".into(),
                    boot_id: String::new(),
                    pidns: String::new(),
                    pid: 0,
                    start_ticks: 0,
                    frontend: String::new(),
                    name: String::new(),
                },
                lease_ms: crate::defaults::DEFAULT_LEASE_MS,
                renewals: 0,
            }
        }
        Err(e) => return Err(e),
    };
    Ok(Some(LeaseInfo {
        age_ms: now_ms.map(|n| n.saturating_sub(mtime)),
        record,
        path,
    }))
}

struct RenewState {
    stop: bool,
}

/// A held lease. Renewed by its own thread; removed by `release` (or drop).
pub struct Lease {
    backend: BackendRef,
    path: String,
    pub(crate) epoch: u64,
    record: Mutex<LeaseRecord>,
    /// The fence marker of this epoch's data root: renewal stops when it is
    /// gone (a later opener took the volume over and moved the data).
    marker: String,
    state: Arc<(Mutex<RenewState>, Condvar)>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Lease({})", self.path)
    }
}

/// Take the lease on the volume in `dir`, whose newest data root is of epoch
/// `root_epoch`. Returns the lease (not yet renewing: call `start`).
pub fn acquire(
    backend: &BackendRef,
    dir: &str,
    root_epoch: u64,
    volume: &str,
    opts: &LeaseOptions,
) -> Result<Lease> {
    let me = Holder::me(&opts.frontend, &opts.name);
    // Our candidate lease, written under a temporary name; its modification
    // time is "now" by the OM's clock.
    let tmp = join(
        dir,
        &format!(".lease-{}-{}", me.pid, uuid::Uuid::new_v4().simple()),
    );
    let cleanup = |e: Error| {
        let _ = backend.delete(&tmp, false);
        e
    };
    let mut prior = newest_lease(backend, dir)?;
    if let Some((e, path, _)) = prior.as_ref().filter(|p| p.0 < root_epoch) {
        // Older than the data: a fenced holder renewed it after its takeover.
        log::warn!(
            "{path}: lease of writer epoch {e}, which was fenced by epoch {root_epoch}: removed"
        );
        let _ = backend.delete(path, false);
        prior = None;
    }
    let epoch = prior.as_ref().map_or(0, |p| p.0).max(root_epoch) + 1;
    let record = LeaseRecord {
        magic: LEASE_MAGIC.into(),
        epoch,
        holder: me,
        lease_ms: opts.lease_ms,
        renewals: 0,
    };
    let bytes = serde_json::to_vec_pretty(&record)
        .map_err(|e| Error::Internal(format!("lease encoding: {e}")))?;
    backend.put(&tmp, &bytes)?;
    let now = backend
        .stat(&tmp)
        .map_err(|e| cleanup(e.into()))?
        .map(|i| i.mtime_ms)
        .filter(|t| *t > 0);
    let mut taken_over = None;
    if let Some(found) = prior.clone() {
        if let Some(cur) = describe_lease(backend, found, now).map_err(cleanup)? {
            let dead_here = cur.record.holder.is_dead_here();
            if dead_here {
                log::warn!(
                    "{volume}: taking over the lease {}: its holder is gone from this host",
                    cur.describe()
                );
            } else if !cur.expired() {
                return Err(cleanup(Error::Held(format!(
                    "{volume} is in use: {}; close it there first (a lease is taken over only after it expires, {} s without renewal, and then only with force)",
                    cur.describe(),
                    (cur.record.lease_ms + EXPIRY_SLACK_MS) / 1000
                ))));
            } else if !opts.force {
                return Err(cleanup(Error::Held(format!(
                    "{volume}: the lease expired: {}; if that holder is dead, take the volume over with force (RPC `force`, `ozbd --takeover`, nbdkit `takeover=1`): its writes then fail, and nothing it does after that reaches the volume",
                    cur.describe()
                ))));
            } else {
                log::warn!(
                    "{volume}: taking over (force) the expired lease {}",
                    cur.describe()
                );
            }
            taken_over = Some(cur.path.clone());
        }
    }
    let path = join(dir, &lease_name(epoch));
    if let Err(e) = backend.rename(&tmp, &path) {
        let _ = backend.delete(&tmp, false);
        return Err(match e {
            BackendError::Io { errno: 17, .. } => Error::Held(format!(
                "{volume}: another process opened it at the same moment (it took writer epoch {epoch}); try again"
            )),
            e => e.into(),
        });
    }
    if let Some(old) = taken_over {
        // The old holder may still renew it; harmless, ours is newer.
        let _ = backend.delete(&old, false);
    }
    Ok(Lease {
        backend: backend.clone(),
        path,
        epoch,
        record: Mutex::new(record),
        marker: layout::marker_path(&layout::root_path(dir, epoch), epoch),
        state: Arc::new((Mutex::new(RenewState { stop: false }), Condvar::new())),
        thread: Mutex::new(None),
    })
}

impl Lease {
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The fence marker of this holder's data root: while it exists, no
    /// later opener has taken the volume over.
    pub(crate) fn marker(&self) -> &str {
        &self.marker
    }

    pub fn record(&self) -> LeaseRecord {
        self.record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Start renewing: every half of the lease length, and after a failed
    /// renewal again soon until one succeeds (`renew_periods`).
    pub(crate) fn start(self: &Arc<Self>) -> Result<()> {
        let me = self.clone();
        let h = std::thread::Builder::new()
            .name("ozbd-lease".into())
            .spawn(move || me.renew_loop())
            .map_err(|e| Error::Internal(format!("cannot start the lease thread: {e}")))?;
        *self.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(h);
        Ok(())
    }

    fn renew_loop(&self) {
        let lease_ms = self.record().lease_ms;
        let (every, retry) = renew_periods(lease_ms);
        let mut last_ok = Instant::now();
        let mut failed = false; // the last renewal failed: retry soon
        loop {
            {
                let (m, cv) = &*self.state;
                let mut st = m.lock().unwrap_or_else(|e| e.into_inner());
                let deadline = Instant::now() + if failed { retry } else { every };
                while !st.stop {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    st = cv
                        .wait_timeout(st, deadline - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                if st.stop {
                    return;
                }
            }
            failed = match self.renew_once() {
                Ok(true) => {
                    last_ok = Instant::now();
                    false
                }
                Ok(false) => return,
                Err(e) => {
                    log::debug!(
                        "{}: lease renewal failed ({e}); trying again soon",
                        self.path
                    );
                    if last_ok.elapsed() > Duration::from_millis(lease_ms) {
                        log::warn!(
                            "{}: lease not renewed for {:.0} s ({e}); another opener may take the volume over with force, which fences this process",
                            self.path,
                            last_ok.elapsed().as_secs_f64()
                        );
                    }
                    true
                }
            };
        }
    }

    /// One renewal. Ok(false): this holder was taken over, so stop renewing
    /// (a stale renewal would make the volume look held by a fenced process).
    fn renew_once(&self) -> Result<bool> {
        // A taker writes its lease and then fences at once; a renewal in
        // between is harmless (a lease older than the data root is stale).
        if self.backend.stat(&self.marker)?.is_none() {
            log::error!(
                "{}: the data root moved to a newer writer epoch: this process was taken over and is fenced; lease renewal stops",
                self.path
            );
            return Ok(false);
        }
        let bytes = {
            let mut r = self.record.lock().unwrap_or_else(|e| e.into_inner());
            r.renewals += 1;
            serde_json::to_vec_pretty(&*r)
                .map_err(|e| Error::Internal(format!("lease encoding: {e}")))?
        };
        self.backend.put(&self.path, &bytes)?;
        Ok(true)
    }

    /// Stop renewing and remove the lease file (when it is still ours).
    pub(crate) fn release(&self) {
        {
            let (m, cv) = &*self.state;
            let mut st = m.lock().unwrap_or_else(|e| e.into_inner());
            if st.stop {
                return; // released already (close, then drop)
            }
            st.stop = true;
            cv.notify_all();
        }
        if let Some(h) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = h.join();
        }
        if let Err(e) = self.backend.delete(&self.path, false) {
            log::warn!("{}: could not remove the lease at close: {e}", self.path);
        }
    }
}

/// How often a lease of `lease_ms` is renewed, and how soon a failed renewal
/// is tried again. Every half of the lease: each renewal is a file write
/// through the Ozone client, the largest part of an idle target's cost
/// (docs/performance.md "Idle, profiled"). A failed renewal is tried again
/// every twentieth of the lease (at least 100 ms, at most 2 s), so a renewal
/// lost to a passing fault still leaves most of the second half.
fn renew_periods(lease_ms: u64) -> (Duration, Duration) {
    (
        Duration::from_millis((lease_ms / 2).max(100)),
        Duration::from_millis((lease_ms / 20).clamp(100, 2_000)),
    )
}

/// What a writable open gets from taking the lease: the lease (renewing),
/// the data root it now owns, and the backend to do all I/O through.
pub(crate) struct Taken {
    pub(crate) lease: Arc<Lease>,
    pub(crate) root: String,
    pub(crate) backend: BackendRef,
}

/// The writable-open sequence: take the lease (refusing a held volume),
/// fence every earlier holder by moving the data to this epoch's root, and
/// wrap the backend in the marker check.
pub(crate) fn take(
    backend: &BackendRef,
    dir: &str,
    volume: &str,
    opts: &LeaseOptions,
) -> Result<Taken> {
    let epochs = layout::root_epochs(&**backend, dir)?;
    let lease = Arc::new(acquire(
        backend,
        dir,
        epochs.last().copied().unwrap_or(0),
        volume,
        opts,
    )?);
    let fenced = layout::fence(&**backend, dir, lease.epoch).and_then(|root| {
        lease.start()?;
        Ok(root)
    });
    let root = match fenced {
        Ok(r) => r,
        Err(e) => {
            lease.release();
            return Err(e);
        }
    };
    let fb: BackendRef =
        fence::FencedBackend::new(backend.clone(), lease.marker.clone(), lease.epoch);
    Ok(Taken {
        lease,
        root,
        backend: fb,
    })
}
