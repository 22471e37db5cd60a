// SPDX-License-Identifier: Apache-2.0
//! Volumes: create, open, close, destroy, and the public I/O API.
//!
//! Owns: the volume directory layout (`superblock.json` + `chunks/` +
//! `journal/`), checks made at open (is this a volume, do the parameters
//! match), replaying the journal at every open, the format 1 → 2 upgrade,
//! the worker and journal threads' lifetime, blocking convenience
//! wrappers over the asynchronous submit, and resizing an open volume
//! (`resize`: the checks, the superblock rewrite under the writer's fence,
//! and publishing the new size to the engine).
//! Must never: overwrite an existing volume's superblock but through the
//! writer's fenced backend (format upgrades and `resize`, each after proving
//! the writer still owns the volume), shrink a volume over data or journaled
//! writes, or return from close while a request is still in flight.

use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use ozbd_backend::BackendError;

use ozbd_backend::{join, BackendRef};
use uuid::Uuid;

use crate::chunk_io::Op;
use crate::defaults::{
    DEFAULT_CACHE_MB, DEFAULT_GATHER_MIN_CHUNK, DEFAULT_JOURNAL_MB, DEFAULT_JOURNAL_STREAMS,
    DEFAULT_LEASE_MS, DEFAULT_MAX_INFLIGHT_BYTES, DEFAULT_MAX_INFLIGHT_REQUESTS, DEFAULT_RETRY,
    DEFAULT_WORKERS, MAX_CACHE_MB, MAX_JOURNAL_MB, MAX_JOURNAL_STREAMS, MAX_LEASE_MS, MAX_RETRY,
    MAX_WORKERS, MIN_JOURNAL_MB, MIN_LEASE_MS,
};
use crate::error::{Error, Result};
use crate::journal::segment::JOURNAL_DIR;
use crate::journal::{Journal, JournalInfo, JournalMode};
use crate::lease::{self, Lease, LeaseInfo, LeaseOptions};
use crate::scheduler::{Completion, Engine, Limits, Rejected};
use crate::sglist::SgList;
use crate::stats::Stats;
use crate::superblock::{
    parse_chunk_name, Superblock, CHUNK_DIR, DEFAULT_BLOCK_SIZE, DEFAULT_CHUNK_SIZE,
    SUPERBLOCK_NAME,
};
use crate::uri::{Scheme, VolumeUri};

/// Parameters of a new volume.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    pub size: u64,
    pub block_size: u32,
    pub chunk_size: u64,
    pub uuid: Option<Uuid>,
}

impl CreateOptions {
    pub fn new(size: u64) -> Self {
        CreateOptions {
            size,
            block_size: DEFAULT_BLOCK_SIZE,
            chunk_size: DEFAULT_CHUNK_SIZE,
            uuid: None,
        }
    }
}

/// How to open a volume. `Default` gives the engine's defaults (defaults.rs).
/// `expect_*` fields, when set, must match the superblock.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Worker threads making backend calls (1 to 256).
    pub workers: usize,
    /// How long, from submit, a request whose backend calls fail transiently
    /// (EIO, timeouts, an unreachable OM) is retried before it fails; zero:
    /// fail at the first error.
    pub retry: Duration,
    /// In-flight bounds: past either, `try_submit` answers Busy (EAGAIN).
    pub max_inflight_requests: usize,
    pub max_inflight_bytes: u64,
    /// Whether small writes go through the journal (see `journal`).
    pub journal: JournalMode,
    /// Journal space, and the dirty data it holds in memory, in MiB.
    pub journal_mb: u64,
    /// Read cache in MiB; 0 turns it off.
    pub cache_mb: u64,
    /// Journal streams (parallel hsyncing segments); default
    /// DEFAULT_JOURNAL_STREAMS, or `OZBD_JOURNAL_STREAMS` from the environment.
    pub journal_streams: usize,
    /// Gather sequential partial writes into whole-chunk puts in chunks of
    /// at least this size; default DEFAULT_GATHER_MIN_CHUNK, never with
    /// `OZBD_GATHER=0` in the environment (u64::MAX).
    pub gather_min_chunk: u64,
    /// After a group commit, wait briefly for the writers it completed
    /// (journal/commit.rs); default on, off with `OZBD_RETURN_WAIT=0` in
    /// the environment.
    pub return_wait: bool,
    pub expect_size: Option<u64>,
    pub expect_block_size: Option<u32>,
    pub expect_chunk_size: Option<u64>,
    pub expect_uuid: Option<Uuid>,
    /// Take over a lease that expired (its holder is presumed dead). A fresh
    /// lease is never taken over; a holder gone from this host needs no force.
    pub force: bool,
    /// The writer lease's length in ms (see defaults.rs).
    pub lease_ms: u64,
    /// Who opens: written into the lease ("spdk", "nbdkit", "ozbd") and the
    /// front end's name for the volume.
    pub frontend: String,
    pub name: String,
    /// Open without the lease, never writing: writes, write-zeroes and
    /// unmaps fail with EROFS, the journal is replayed in memory only, and
    /// a holder that writes meanwhile is not stopped (reads may see its
    /// changes or not).
    pub readonly: bool,
}

/// Whether an experiment switch in the environment is set to 0 (off).
fn env_is_zero(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v.trim() == "0")
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            workers: DEFAULT_WORKERS,
            retry: DEFAULT_RETRY,
            max_inflight_requests: DEFAULT_MAX_INFLIGHT_REQUESTS,
            max_inflight_bytes: DEFAULT_MAX_INFLIGHT_BYTES,
            journal: JournalMode::default(),
            journal_mb: DEFAULT_JOURNAL_MB,
            cache_mb: DEFAULT_CACHE_MB,
            journal_streams: std::env::var("OZBD_JOURNAL_STREAMS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(DEFAULT_JOURNAL_STREAMS),
            gather_min_chunk: if env_is_zero("OZBD_GATHER") {
                u64::MAX
            } else {
                DEFAULT_GATHER_MIN_CHUNK
            },
            return_wait: !env_is_zero("OZBD_RETURN_WAIT"),
            expect_size: None,
            expect_block_size: None,
            expect_chunk_size: None,
            expect_uuid: None,
            force: false,
            lease_ms: DEFAULT_LEASE_MS,
            frontend: String::new(),
            name: String::new(),
            readonly: false,
        }
    }
}

impl OpenOptions {
    /// Check the options; the error says which one is out of range.
    pub fn validate(&self) -> Result<()> {
        if !(1..=MAX_WORKERS).contains(&self.workers) {
            return Err(Error::InvalidArgument(format!(
                "workers {} is out of range: use 1 to {MAX_WORKERS} (default {DEFAULT_WORKERS})",
                self.workers
            )));
        }
        if self.retry > MAX_RETRY {
            return Err(Error::InvalidArgument(format!(
                "retry {} ms is out of range: use 0 to {} ms (default {} ms)",
                self.retry.as_millis(),
                MAX_RETRY.as_millis(),
                DEFAULT_RETRY.as_millis()
            )));
        }
        if self.max_inflight_requests == 0 || self.max_inflight_bytes == 0 {
            return Err(Error::InvalidArgument(format!(
                "the in-flight bounds must be at least 1 (defaults: {DEFAULT_MAX_INFLIGHT_REQUESTS} requests, {DEFAULT_MAX_INFLIGHT_BYTES} bytes)"
            )));
        }
        if !(MIN_JOURNAL_MB..=MAX_JOURNAL_MB).contains(&self.journal_mb) {
            return Err(Error::InvalidArgument(format!(
                "journal_mb {} is out of range: use {MIN_JOURNAL_MB} to {MAX_JOURNAL_MB} (default {DEFAULT_JOURNAL_MB})",
                self.journal_mb
            )));
        }
        if !(1..=MAX_JOURNAL_STREAMS).contains(&self.journal_streams) {
            return Err(Error::InvalidArgument(format!(
                "journal streams {} is out of range: use 1 to {MAX_JOURNAL_STREAMS} (default {DEFAULT_JOURNAL_STREAMS}; OZBD_JOURNAL_STREAMS sets it)",
                self.journal_streams
            )));
        }
        if !(MIN_LEASE_MS..=MAX_LEASE_MS).contains(&self.lease_ms) {
            return Err(Error::InvalidArgument(format!(
                "lease_ms {} is out of range: use {MIN_LEASE_MS} to {MAX_LEASE_MS} (default {DEFAULT_LEASE_MS})",
                self.lease_ms
            )));
        }
        if self.cache_mb > MAX_CACHE_MB {
            return Err(Error::InvalidArgument(format!(
                "cache_mb {} is out of range: use 0 (no cache) to {MAX_CACHE_MB} (default {DEFAULT_CACHE_MB})",
                self.cache_mb
            )));
        }
        Ok(())
    }
}

/// The settings a volume runs with, and the Ozone client settings in effect.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Settings {
    pub workers: usize,
    pub retry_ms: u64,
    pub max_inflight_requests: usize,
    pub max_inflight_bytes: u64,
    /// The journal mode in effect: "none" when "ozone" was asked for but the
    /// bucket cannot hsync (then `journal_note` says why).
    pub journal: JournalMode,
    pub journal_note: Option<String>,
    pub journal_mb: u64,
    pub cache_mb: u64,
    /// Ozone client keys the engine's guarantees depend on: value and source.
    pub client: Vec<ClientSettingView>,
}

/// One Ozone client key in effect.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClientSettingView {
    pub key: String,
    pub value: Option<String>,
    /// "engine default", or the file that set it (e.g. "ozone-site.xml").
    pub source: String,
}

impl Settings {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// An open volume. Cheap to share between threads (`&Volume` is enough to submit).
pub struct Volume {
    engine: Arc<Engine>,
    journal: Option<Arc<Journal>>,
    uri: VolumeUri,
    workers: Mutex<Vec<JoinHandle<()>>>,
    settings: Settings,
    /// The writer lease; released at close, after the last write.
    lease: Option<Arc<Lease>>,
    readonly: bool,
    /// One resize at a time.
    resizing: Mutex<()>,
}

/// How much longer than the retry window a shrink waits for the requests in
/// flight to finish before it gives up (changing nothing).
const SHRINK_DRAIN_SLACK: Duration = Duration::from_secs(10);

impl std::fmt::Debug for Volume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Volume")
            .field("uri", &self.uri.canonical())
            .field("superblock", &self.engine.sb())
            .finish()
    }
}

fn superblock_path(uri: &VolumeUri) -> String {
    join(&uri.dir, SUPERBLOCK_NAME)
}

/// Read a small whole file.
fn read_small(backend: &BackendRef, path: &str) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; 64 << 10];
    let mut at = 0;
    loop {
        let n = backend.read_at(path, at as u64, &mut buf[at..])?;
        if n == 0 {
            break;
        }
        at += n;
        if at == buf.len() {
            return Err(Error::NotAVolume(format!(
                "{path} is larger than 64 KiB: not a bdev_ozone superblock"
            )));
        }
    }
    buf.truncate(at);
    Ok(buf)
}

/// Explain a missing volume directory: which part of the path is missing.
fn missing_volume_error(backend: &BackendRef, uri: &VolumeUri) -> Error {
    if let (Some(vol), Some(bucket)) = (&uri.ozone_volume, &uri.bucket) {
        let vpath = format!("/{vol}");
        let bpath = format!("/{vol}/{bucket}");
        if let Ok(None) = backend.stat(&vpath) {
            return Error::NotFound(format!(
                "Ozone volume '{vol}' does not exist on {}: check the URI, or create the block volume with `ozbd create {} --size SIZE` (it creates the Ozone volume and bucket)",
                uri.fs_uri,
                uri.canonical()
            ));
        }
        if let Ok(None) = backend.stat(&bpath) {
            return Error::NotFound(format!(
                "bucket '{bucket}' does not exist in Ozone volume '{vol}': check the URI, or create the block volume with `ozbd create {} --size SIZE` (it creates an FSO bucket)",
                uri.canonical()
            ));
        }
    }
    Error::NotFound(format!(
        "no volume at {}: create it with `ozbd create {} --size SIZE`",
        uri.canonical(),
        uri.canonical()
    ))
}

/// Refuse a bucket whose layout the backend knows and is not FSO: LEGACY
/// buckets pass every FileSystem call but lack atomic directory operations.
fn check_bucket_layout(backend: &BackendRef, vol: &str, bucket: &str) -> Result<()> {
    match backend.bucket_layout(vol, bucket)? {
        Some(layout) if layout != "FILE_SYSTEM_OPTIMIZED" => Err(Error::Mismatch(format!(
            "bucket '{bucket}' has layout {layout}; bdev_ozone needs a FILE_SYSTEM_OPTIMIZED bucket (atomic directory operations and the update protocol in docs/design.md): create one with `ozone sh bucket create --layout FILE_SYSTEM_OPTIMIZED /{vol}/<name>` or let `ozbd create` make it"
        ))),
        _ => Ok(()),
    }
}

impl Volume {
    /// Create a new volume and open it. Returns notes on what was created
    /// besides the volume (an Ozone volume, a bucket).
    pub fn create(
        backend: BackendRef,
        uri: &VolumeUri,
        opts: &CreateOptions,
        open: &OpenOptions,
    ) -> Result<(Volume, Vec<String>)> {
        let mut sb = Superblock::new(opts.size, opts.block_size, opts.chunk_size, opts.uuid)?;
        open.validate()?;
        sb.journal = open.journal == JournalMode::Ozone;
        let mut notes = Vec::new();
        if let (Some(vol), Some(bucket)) = (&uri.ozone_volume, &uri.bucket) {
            let vpath = format!("/{vol}");
            let bpath = format!("/{vol}/{bucket}");
            if backend.stat(&vpath)?.is_none() {
                notes.push(format!("created Ozone volume '{vol}'"));
            }
            if backend.stat(&bpath)?.is_none() {
                notes.push(format!("created FILE_SYSTEM_OPTIMIZED bucket '{bucket}'"));
            } else {
                check_bucket_layout(&backend, vol, bucket)?;
            }
        }
        let sbp = superblock_path(uri);
        if backend.stat(&sbp)?.is_some() {
            return Err(Error::AlreadyExists(format!(
                "a volume already exists at {}: open it, or remove it first with `ozbd delete {}`",
                uri.canonical(),
                uri.canonical()
            )));
        }
        if let Some(info) = backend.stat(&uri.dir)? {
            if !info.is_dir {
                return Err(Error::AlreadyExists(format!(
                    "{} is a file, not a directory: choose another path",
                    uri.canonical()
                )));
            }
            if !backend.list(&uri.dir)?.is_empty() {
                return Err(Error::AlreadyExists(format!(
                    "{} exists and is not empty but holds no volume: choose another path, or remove it with `ozbd delete --force {}`",
                    uri.canonical(),
                    uri.canonical()
                )));
            }
        }
        backend.mkdirs(&uri.dir)?;
        // The superblock goes last: a create interrupted before this point leaves
        // no volume, only an empty directory that open reports as such.
        backend.put(&sbp, &sb.to_json())?;
        let vol = Volume::open_checked(backend, uri, sb, open)?;
        Ok((vol, notes))
    }

    /// Read a volume's superblock without opening it.
    pub fn inspect(backend: &BackendRef, uri: &VolumeUri) -> Result<Superblock> {
        match backend.stat(&uri.dir)? {
            None => return Err(missing_volume_error(backend, uri)),
            Some(info) if !info.is_dir => {
                return Err(Error::NotAVolume(format!(
                    "{} is a file, not a volume directory",
                    uri.canonical()
                )))
            }
            Some(_) => {}
        }
        let sbp = superblock_path(uri);
        let bytes = match read_small(backend, &sbp) {
            Ok(b) => b,
            Err(Error::Backend(ozbd_backend::BackendError::NotFound { .. })) => {
                return Err(Error::NotAVolume(format!(
                    "{} is a directory without {SUPERBLOCK_NAME}: not a bdev_ozone volume (an interrupted create leaves this; remove it with `ozbd delete --force {}`)",
                    uri.canonical(),
                    uri.canonical()
                )))
            }
            Err(e) => return Err(e),
        };
        Superblock::from_json(&bytes, &format!("{}/{SUPERBLOCK_NAME}", uri.canonical()))
    }

    /// Open an existing volume. Its bucket must be FILE_SYSTEM_OPTIMIZED.
    pub fn open(backend: BackendRef, uri: &VolumeUri, opts: &OpenOptions) -> Result<Volume> {
        opts.validate()?;
        let sb = Volume::inspect(&backend, uri)?;
        if let (Some(vol), Some(bucket)) = (&uri.ozone_volume, &uri.bucket) {
            check_bucket_layout(&backend, vol, bucket)?;
        }
        let mismatch = |what: &str, have: String, want: String| {
            Error::Mismatch(format!(
                "{} has {what} {have}, but {want} was requested: pass {have}, or leave it out to use the volume's",
                uri.canonical()
            ))
        };
        if let Some(s) = opts.expect_size.filter(|s| *s != sb.size) {
            return Err(mismatch("size", sb.size.to_string(), s.to_string()));
        }
        if let Some(b) = opts.expect_block_size.filter(|b| *b != sb.block_size) {
            return Err(mismatch(
                "block size",
                sb.block_size.to_string(),
                b.to_string(),
            ));
        }
        if let Some(c) = opts.expect_chunk_size.filter(|c| *c != sb.chunk_size) {
            return Err(mismatch(
                "chunk size",
                sb.chunk_size.to_string(),
                c.to_string(),
            ));
        }
        if let Some(u) = opts.expect_uuid.filter(|u| *u != sb.uuid) {
            return Err(mismatch("uuid", sb.uuid.to_string(), u.to_string()));
        }
        Volume::open_checked(backend, uri, sb, opts)
    }

    /// Take the lease, fence earlier holders, find the stored chunks, start
    /// the engine and replay the journal.
    fn open_checked(
        backend: BackendRef,
        uri: &VolumeUri,
        mut sb: Superblock,
        opts: &OpenOptions,
    ) -> Result<Volume> {
        if opts.readonly {
            let (_, root) = lease::layout::current_root(&*backend, &uri.dir)?;
            let ro: BackendRef = Arc::new(lease::readonly::ReadOnlyBackend(backend));
            return Volume::start_at(ro, uri, &root, sb, opts, None);
        }
        let taken = lease::take(
            &backend,
            &uri.dir,
            &uri.canonical(),
            &LeaseOptions {
                lease_ms: opts.lease_ms,
                force: opts.force,
                frontend: opts.frontend.clone(),
                name: opts.name.clone(),
            },
        )?;
        let guard = ReleaseOnError(Some(taken.lease.clone()));
        // Read again now that earlier holders are fenced: a resize a fenced
        // holder made between our first read and the fencing move is seen.
        let fresh = Volume::inspect(&taken.backend, uri)?;
        if fresh != sb {
            if fresh.uuid != sb.uuid {
                return Err(Error::Mismatch(format!(
                    "{}: the volume was replaced while it was being opened (uuid {} became {}): open it again",
                    uri.canonical(),
                    sb.uuid,
                    fresh.uuid
                )));
            }
            if let Some(s) = opts.expect_size.filter(|s| *s != fresh.size) {
                return Err(Error::Mismatch(format!(
                    "{} has size {}, but {s} was requested: pass {}, or leave it out to use the volume's (it was resized while it was being opened)",
                    uri.canonical(),
                    fresh.size,
                    fresh.size
                )));
            }
            log::warn!(
                "{}: the superblock changed while the volume was being opened (size {} -> {}): using the new one",
                uri.canonical(),
                sb.size,
                fresh.size
            );
            sb = fresh;
        }
        if sb.format_version < crate::superblock::FORMAT_VERSION {
            let from = sb.format_version;
            sb.format_version = crate::superblock::FORMAT_VERSION;
            taken.backend.put(&superblock_path(uri), &sb.to_json())?;
            log::info!(
                "{}: upgraded the volume from format {from} to {} ({}chunk checksums on every chunk written from now on; chunks written before have none until rewritten); older bdev_ozone refuses to open it now",
                uri.canonical(),
                sb.format_version,
                if from < 3 { "writer leases, data under e<epoch>/, " } else { "" }
            );
        }
        let lease = guard.defuse();
        Volume::start_at(taken.backend, uri, &taken.root, sb, opts, lease)
    }

    /// List the stored chunks under `root`, start the engine and attach the journal.
    fn start_at(
        backend: BackendRef,
        uri: &VolumeUri,
        root: &str,
        sb: Superblock,
        opts: &OpenOptions,
        lease: Option<Arc<Lease>>,
    ) -> Result<Volume> {
        // Released on every error below, before the volume owns it.
        let guard = ReleaseOnError(lease);
        let chunk_dir = join(root, CHUNK_DIR);
        let mut present = Vec::new();
        let entries = match backend.list(&chunk_dir) {
            Ok(e) => e,
            Err(ozbd_backend::BackendError::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        for e in entries {
            match parse_chunk_name(&e.name) {
                Some(c) if c < sb.chunk_count() && !e.is_dir => present.push(c),
                _ => log::warn!("{chunk_dir}: ignoring unexpected entry '{}'", e.name),
            }
        }
        let mut vol = Volume::start(backend, uri.clone(), root, sb, &present, opts)?;
        vol.lease = guard.defuse();
        vol.attach_journal(root, opts)
    }

    /// The volume's current writer lease, if any, with its age by this
    /// machine's clock (a look that writes nothing cannot ask the OM's).
    pub fn lease_info(backend: &BackendRef, uri: &VolumeUri) -> Result<Option<LeaseInfo>> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .ok();
        lease::current(backend, &uri.dir, now)
    }

    /// The writer epoch this open holds.
    pub fn epoch(&self) -> u64 {
        self.lease.as_ref().map_or(0, |l| l.epoch())
    }

    /// What the journal of a (closed) volume holds and what replaying it
    /// would do; reads the segments, changes nothing.
    pub fn journal_info(backend: &BackendRef, uri: &VolumeUri) -> Result<JournalInfo> {
        let sb = Volume::inspect(backend, uri)?;
        let (_, root) = lease::layout::current_root(&**backend, &uri.dir)?;
        crate::journal::inspect(&**backend, &join(&root, JOURNAL_DIR), &sb)
    }

    /// Replay whatever journal the volume has, then run with the journal
    /// mode asked for: "ozone" starts the committer (which checks that hsync
    /// works here; if not, the volume falls back to "none" with a warning,
    /// never silently losing durability) and the destager; "none" applies
    /// what replay found to the chunks and deletes the segments first.
    fn attach_journal(mut self, root: &str, opts: &OpenOptions) -> Result<Volume> {
        let dir = join(root, JOURNAL_DIR);
        let has_segments = !crate::journal::segment::list(&*self.backend(), &dir)?.is_empty();
        if opts.readonly {
            if has_segments {
                let cfg = crate::journal::Config {
                    capacity: opts.journal_mb << 20,
                    retry_for: opts.retry,
                    destage_parallel: 1,
                    streams: 1,
                    gather_min_chunk: u64::MAX,
                    return_wait: false,
                };
                // Replayed into memory for reads; no committer, no destager.
                self.journal = Some(Arc::new(Journal::load(
                    self.engine.clone(),
                    self.backend(),
                    dir,
                    0,
                    cfg,
                    true,
                )?));
            }
            return Ok(self);
        }
        if opts.journal == JournalMode::None && !has_segments {
            return Ok(self);
        }
        let cfg = crate::journal::Config {
            capacity: opts.journal_mb << 20,
            retry_for: opts.retry,
            destage_parallel: (opts.workers / 2).clamp(1, 8),
            streams: opts.journal_streams,
            gather_min_chunk: opts.gather_min_chunk,
            return_wait: opts.return_wait,
        };
        let sb = self.engine.sb().clone();
        let j = Arc::new(Journal::load(
            self.engine.clone(),
            self.backend(),
            dir.clone(),
            self.epoch(),
            cfg,
            false,
        )?);
        if opts.journal == JournalMode::Ozone {
            match self.start_journal(&j) {
                Ok(()) => {
                    if !sb.journal {
                        let mut v2 = sb.clone();
                        v2.journal = true;
                        self.backend()
                            .put(&superblock_path(&self.uri), &v2.to_json())?;
                        self.engine.io.set_record(&v2);
                        log::info!(
                            "{}: upgraded the volume to format {} (journal on); bdev_ozone older than the journal refuses to open it now",
                            self.uri.canonical(),
                            v2.format_version
                        );
                    }
                    self.journal = Some(j);
                    self.settings.journal = JournalMode::Ozone;
                    return Ok(self);
                }
                Err(e @ Error::Backend(ozbd_backend::BackendError::Unsupported { .. })) => {
                    let note = format!(
                        "journal=ozone was asked for but this bucket cannot hsync, so the volume runs with journal=none (every write rewrites its chunk; durability is unchanged): {e}"
                    );
                    log::warn!("{}: {note}", self.uri.canonical());
                    self.settings.journal_note = Some(note);
                }
                Err(e) => return Err(e),
            }
        }
        self.settings.journal = JournalMode::None;
        if j.holds_anything() {
            j.drain()?;
            log::info!(
                "{}: applied the journal to the chunks and removed it (journal=none)",
                self.uri.canonical()
            );
        }
        Ok(self)
    }

    /// Start the committer (waiting for its hsync check) and the destager.
    fn start_journal(&self, j: &Arc<Journal>) -> Result<()> {
        let (tx, rx) = mpsc::channel();
        let jc = j.clone();
        let h = spawn_thread(
            "ozbd-journal-0".into(),
            Box::new(move || jc.commit_loop(Some(tx))),
        )?;
        let first = rx.recv().unwrap_or_else(|_| {
            Err(Error::Internal(
                "the journal committer stopped at start".into(),
            ))
        });
        if let Err(e) = first {
            let _ = h.join();
            return Err(e);
        }
        self.push_handle(h);
        for i in 1..j.cfg.streams {
            let jc = j.clone();
            match spawn_thread(
                format!("ozbd-journal-{i}"),
                Box::new(move || jc.commit_loop(None)),
            ) {
                Ok(h) => self.push_handle(h),
                Err(e) => {
                    j.close_without_destager();
                    return Err(e);
                }
            }
        }
        let jd = j.clone();
        match spawn_thread("ozbd-destage".into(), Box::new(move || jd.destage_loop())) {
            Ok(h) => {
                self.push_handle(h);
                Ok(())
            }
            Err(e) => {
                // Let the committer exit.
                j.close_without_destager();
                Err(e)
            }
        }
    }

    fn push_handle(&self, h: JoinHandle<()>) {
        self.workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(h);
    }

    fn backend(&self) -> BackendRef {
        self.engine.io.backend.clone()
    }

    /// Remove a volume and all its data. Without `force`, the directory must hold
    /// a valid superblock. Works in any bucket layout, so a volume that ended up in
    /// a bucket the engine refuses to use can still be removed.
    pub fn destroy(backend: &BackendRef, uri: &VolumeUri, force: bool) -> Result<()> {
        if !force {
            Volume::inspect(backend, uri)?;
        } else if backend.stat(&uri.dir)?.is_none() {
            return Err(missing_volume_error(backend, uri));
        }
        // Never pull a disk out from under a live writer.
        if let Some(l) = Volume::lease_info(backend, uri)? {
            if !l.expired() && !l.record.holder.is_dead_here() {
                return Err(Error::Held(format!(
                    "{} is in use: {}; close it there before deleting it",
                    uri.canonical(),
                    l.describe()
                )));
            }
        }
        backend.delete(&uri.dir, true)?;
        Ok(())
    }

    /// Start the volume's worker and timer threads. Fails, and leaves no
    /// thread behind, if any of them cannot be started.
    fn start(
        backend: BackendRef,
        uri: VolumeUri,
        root: &str,
        sb: Superblock,
        present: &[u64],
        opts: &OpenOptions,
    ) -> Result<Volume> {
        let limits = Limits {
            retry_for: opts.retry,
            max_requests: opts.max_inflight_requests,
            max_bytes: opts.max_inflight_bytes,
        };
        let client = backend
            .client_settings()
            .into_iter()
            .map(|c| ClientSettingView {
                key: c.key,
                value: c.value,
                source: c.source,
            })
            .collect();
        let settings = Settings {
            workers: opts.workers,
            retry_ms: opts.retry.as_millis() as u64,
            max_inflight_requests: opts.max_inflight_requests,
            max_inflight_bytes: opts.max_inflight_bytes,
            journal: opts.journal,
            journal_note: None,
            journal_mb: opts.journal_mb,
            cache_mb: opts.cache_mb,
            client,
        };
        let cache_bytes = opts.cache_mb << 20;
        let engine = Arc::new(Engine::new(backend, sb, root, present, limits, cache_bytes));
        let vol = Volume {
            engine: engine.clone(),
            journal: None,
            uri,
            workers: Mutex::new(Vec::new()),
            settings,
            lease: None,
            readonly: opts.readonly,
            resizing: Mutex::new(()),
        };
        let spawn = spawn_thread;
        let mut handles = Vec::with_capacity(opts.workers + 2);
        let e = engine.clone();
        let started = spawn("ozbd-timer".into(), Box::new(move || e.timer_loop()))
            .map(|h| handles.push(h))
            .and_then(|()| {
                if engine.readahead.is_none() {
                    return Ok(());
                }
                let e = engine.clone();
                spawn(
                    "ozbd-readahead".into(),
                    Box::new(move || e.readahead_loop()),
                )
                .map(|h| handles.push(h))
            })
            .and_then(|()| {
                (0..opts.workers).try_for_each(|i| {
                    let e = engine.clone();
                    spawn(format!("ozbd-io-{i}"), Box::new(move || e.worker_loop()))
                        .map(|h| handles.push(h))
                })
            });
        *vol.workers.lock().unwrap_or_else(|e| e.into_inner()) = handles;
        // On failure, dropping `vol` stops and joins the threads already started.
        started.map(|()| vol)
    }

    /// The settings this volume runs with, and the Ozone client settings in effect.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The volume's superblock as it is now: a copy (the size changes when
    /// the volume is resized).
    pub fn superblock(&self) -> Superblock {
        self.engine.sb()
    }

    pub fn uri(&self) -> &VolumeUri {
        &self.uri
    }

    pub fn stats(&self) -> Stats {
        let mut s = self.engine.stats();
        if let Some(j) = &self.journal {
            s.journal = j.stats();
        }
        s
    }

    /// Chunk indices that may hold data (stored, or with journaled data not
    /// yet destaged); every other chunk reads as zeros.
    pub fn allocated_chunks(&self) -> Vec<u64> {
        let mut v = self.engine.io.allocated();
        if let Some(j) = &self.journal {
            v.extend(j.dirty_chunks());
            v.sort_unstable();
            v.dedup();
        }
        v
    }

    /// Whether chunk `idx` may hold data (false: it reads as zeros): stored,
    /// or journaled and not yet destaged. Never blocks for I/O.
    pub fn chunk_may_hold_data(&self, idx: u64) -> bool {
        let sb = self.superblock();
        if idx >= sb.chunk_count() {
            return false;
        }
        let len = sb.chunk_len(idx);
        match self.journal.as_ref().and_then(|j| j.chunk_data(idx, len)) {
            Some(journaled) => journaled,
            None => self.engine.io.may_hold_data(idx),
        }
    }

    /// Chunks waiting for a retry of a transiently failed operation.
    pub fn chunks_waiting_for_retry(&self) -> usize {
        self.engine.parked()
    }

    /// Queue a request without blocking, or hand it back: `Error::Busy` when the
    /// in-flight bound is reached (submit again after a completion),
    /// `InvalidArgument` for a range outside the volume, `Closed`. When it
    /// returns Ok, `done` runs exactly once: on a worker thread, or before this
    /// returns when there is nothing to do. When a WRITE, WRITE_ZEROES or UNMAP
    /// completes Ok, its effect is durable. A completion must not close the
    /// volume.
    ///
    /// # Safety
    /// For READ and WRITE, `sg`'s memory must stay valid until `done` runs.
    pub unsafe fn try_submit(
        &self,
        op: Op,
        offset: u64,
        len: u64,
        sg: SgList,
        done: Completion,
    ) -> std::result::Result<(), Rejected> {
        if self.readonly && matches!(op, Op::Write | Op::WriteZeroes | Op::Unmap) {
            return Err(Rejected {
                error: Error::ReadOnly(format!(
                    "{} is open read-only: writes, write-zeroes and unmaps are refused",
                    self.uri.canonical()
                )),
                sg,
                done,
            });
        }
        match &self.journal {
            Some(j) => j.try_submit(op, offset, len, sg, done),
            None => self.engine.try_submit(op, offset, len, sg, done),
        }
    }

    /// Queue a request; `done` runs once when it completes, with the request's
    /// error if it was refused. Waits (blocks the caller) while the in-flight
    /// bound is reached, so use `try_submit` on threads that must not block.
    ///
    /// # Safety
    /// As for `try_submit`.
    pub unsafe fn submit(&self, op: Op, offset: u64, len: u64, sg: SgList, done: Completion) {
        let (mut sg, mut done) = (sg, done);
        loop {
            match self.try_submit(op, offset, len, sg, done) {
                Ok(()) => return,
                Err(Rejected {
                    error: Error::Busy(_),
                    sg: s,
                    done: d,
                }) => {
                    self.engine.wait_for_room(op, offset, len);
                    (sg, done) = (s, d);
                }
                Err(r) => return (r.done)(Err(r.error)),
            }
        }
    }

    fn run(&self, op: Op, offset: u64, len: u64, sg: SgList) -> Result<()> {
        let (tx, rx) = mpsc::channel();
        let done: Completion = Box::new(move |r| {
            let _ = tx.send(r);
        });
        // SAFETY: the caller's buffer outlives this call, which waits for `done`.
        unsafe { self.submit(op, offset, len, sg, done) };
        rx.recv().unwrap_or(Err(Error::Closed))
    }

    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let len = buf.len() as u64;
        // SAFETY: `run` waits for completion while `buf` is borrowed.
        self.run(Op::Read, offset, len, unsafe { SgList::from_slice(buf) })
    }

    pub fn write(&self, offset: u64, data: &[u8]) -> Result<()> {
        // SAFETY: as in read; the engine only reads the buffer of a WRITE.
        let sg = unsafe { SgList::from_const_slice(data) };
        self.run(Op::Write, offset, data.len() as u64, sg)
    }

    pub fn write_zeroes(&self, offset: u64, len: u64) -> Result<()> {
        self.run(Op::WriteZeroes, offset, len, SgList::empty())
    }

    pub fn unmap(&self, offset: u64, len: u64) -> Result<()> {
        self.run(Op::Unmap, offset, len, SgList::empty())
    }

    pub fn flush(&self) -> Result<()> {
        self.run(Op::Flush, 0, 0, SgList::empty())
    }

    /// Grow or shrink the volume to `new_size` bytes while it serves I/O.
    ///
    /// `new_size` must be a positive multiple of the block size. The
    /// superblock is rewritten with one atomic put, only after proving that
    /// this writer still owns the volume (a fenced holder gets ESTALE and
    /// changes nothing), and the engine takes the new size only once it is
    /// written. Growing: requests in flight go on; the new space reads as
    /// zeros. Shrinking is refused unless `force_shrink`, and then also when
    /// anything lies past the new end (`Error::InUse`, EBUSY, naming it): a
    /// stored or journaled chunk, a non-zero byte of the chunk the new end
    /// cuts, a journal record. While a shrink checks and writes, admission is
    /// frozen (requests are told Busy and retried, never failed). Blocks
    /// (Ozone I/O): never call it on an SPDK reactor. Refused on a read-only
    /// open.
    pub fn resize(&self, new_size: u64, force_shrink: bool) -> Result<()> {
        let name = self.uri.canonical();
        if self.readonly {
            return Err(Error::ReadOnly(format!(
                "{name} is open read-only: resizing needs a writable open (which takes the writer lease)"
            )));
        }
        if self.engine.is_closing() {
            return Err(Error::Closed);
        }
        let _one = self.resizing.lock().unwrap_or_else(|e| e.into_inner());
        let sb = self.superblock();
        let mut next = sb.clone();
        next.size = new_size;
        next.validate()?;
        if new_size == sb.size {
            return Ok(());
        }
        if new_size < sb.size && !force_shrink {
            return Err(Error::InvalidArgument(format!(
                "shrinking {name} from {} to {new_size} bytes is refused: whatever lies past the new end would be gone. To shrink, pass force (`ozbd resize --force`, RPC `force`); even then only space that holds no data is cut",
                sb.size
            )));
        }
        if new_size > sb.size {
            self.grow(&sb, new_size)
        } else {
            self.shrink(&sb, new_size)
        }
    }

    fn grow(&self, sb: &Superblock, new_size: u64) -> Result<()> {
        let old_count = sb.chunk_count();
        let last = old_count - 1;
        let cut = !sb.size.is_multiple_of(sb.chunk_size);
        // A chunk of a volume upgraded from format 3 may carry no trailer, so
        // only its length says where its data ends: seal the chunk at the old
        // end now, at the length it has, before its length changes.
        if cut && !self.engine.io.checksums && self.chunk_may_hold_data(last) {
            self.engine.rewrite(last)?;
        }
        // A chunk file past the old end (left by a resize that died, or put
        // there from outside) would read as data of the new space.
        self.remove_chunks_from(old_count)?;
        let written = self.write_superblock(sb, new_size).map_err(|(e, _)| e)?;
        self.engine.io.set_size(new_size);
        self.engine.io.set_record(&written);
        if cut {
            self.engine.io.forget(last);
        }
        log::info!(
            "{}: grown from {} to {new_size} bytes",
            self.uri.canonical(),
            sb.size
        );
        Ok(())
    }

    fn shrink(&self, sb: &Superblock, new_size: u64) -> Result<()> {
        let cs = sb.chunk_size;
        // The same checks as below, with I/O going on: a refusal needs no freeze.
        let seq = self.journal_next_seq();
        self.check_nothing_past(sb, new_size)?;
        self.check_journal_past(sb, new_size)?;
        let cut = new_size / cs;
        let cuts_a_chunk = !new_size.is_multiple_of(cs);
        if cuts_a_chunk && !self.engine.io.checksums && self.chunk_may_hold_data(cut) {
            // See `grow`: a chunk without a trailer is sealed at its length first.
            self.engine.rewrite(cut)?;
        }
        let within = Duration::from_millis(self.settings.retry_ms) + SHRINK_DRAIN_SLACK;
        let frozen = self.engine.quiesce(within)?;
        // No user request is in flight or admitted now, so nothing changes
        // the space past the new end until the new size is published.
        self.check_nothing_past(sb, new_size)?;
        if self.journal_next_seq() != seq {
            self.check_journal_past(sb, new_size)?;
        }
        match self.write_superblock(sb, new_size) {
            Ok(written) => {
                self.engine.io.set_size(new_size);
                self.engine.io.set_record(&written);
            }
            Err((e, false)) => return Err(e),
            Err((e, true)) => {
                // The superblock may hold the new size: never accept a write
                // the next open would not see.
                self.engine.io.set_size(new_size);
                return Err(Error::Backend(BackendError::io(
                    "resize",
                    &superblock_path(&self.uri),
                    e.errno(),
                    format!(
                        "writing the superblock failed ({e}), and it may hold the new size: this open now serves {new_size} bytes (nothing was stored past them); run the resize again to settle it"
                    ),
                )));
            }
        }
        if cuts_a_chunk {
            self.engine.io.forget(cut);
        }
        drop(frozen);
        log::info!(
            "{}: shrunk from {} to {new_size} bytes",
            self.uri.canonical(),
            sb.size
        );
        Ok(())
    }

    /// The journal's next sequence number (None without a journal): it
    /// moves with every journaled write.
    fn journal_next_seq(&self) -> Option<u64> {
        self.journal
            .as_ref()
            .map(|j| crate::journal::lock(&j.st).next_seq)
    }

    /// Refuse (InUse) when anything lies in [new_size, old size): a chunk
    /// that is stored or journaled, journaled writes in the chunk the new end
    /// cuts, or a non-zero byte of that chunk past the new end.
    fn check_nothing_past(&self, sb: &Superblock, new_size: u64) -> Result<()> {
        let name = self.uri.canonical();
        let cs = sb.chunk_size;
        let whole = new_size.div_ceil(cs);
        let allocated = self.allocated_chunks();
        if let Some(&c) = allocated.iter().find(|&&c| c >= whole) {
            let keep = allocated
                .last()
                .map_or(sb.size, |&l| ((l + 1) * cs).min(sb.size));
            return Err(Error::InUse(format!(
                "{name}: chunk {c} (volume bytes {}..{}) holds data or journaled writes, past the new end {new_size}: a shrink cuts only space that holds none. Discard that space first (and give the journal a few seconds to apply the discard), or keep at least {keep} bytes",
                c * cs,
                ((c + 1) * cs).min(sb.size)
            )));
        }
        if let Some(j) = &self.journal {
            let journaled = crate::journal::lock(&j.st).map.snapshot(new_size, sb.size);
            if let Some(p) = journaled.first() {
                return Err(Error::InUse(format!(
                    "{name}: journaled writes to volume bytes {}..{}, past the new end {new_size}, are not applied to their chunk yet: discard that space if it holds data, wait a few seconds for the journal, and try again",
                    p.start, p.end
                )));
            }
        }
        if new_size.is_multiple_of(cs) || !self.engine.io.may_hold_data(new_size / cs) {
            return Ok(());
        }
        let end = sb.size.min((new_size / cs + 1) * cs);
        if let Some(at) = self.first_nonzero(new_size, end)? {
            let bs = sb.block_size as u64;
            return Err(Error::InUse(format!(
                "{name}: chunk {} holds data at volume byte {at}, past the new end {new_size}: discard it first, or keep at least {} bytes",
                new_size / cs,
                (at + 1).div_ceil(bs) * bs
            )));
        }
        Ok(())
    }

    /// The first non-zero byte the chunks hold in [from, to) (the journal
    /// not laid over them), read in order with the chunks' queues.
    fn first_nonzero(&self, from: u64, to: u64) -> Result<Option<u64>> {
        const STEP: u64 = 1 << 20;
        let mut buf = vec![0u8; STEP.min(to - from) as usize];
        let mut at = from;
        while at < to {
            let n = STEP.min(to - at) as usize;
            let part = &mut buf[..n];
            let (tx, rx) = mpsc::channel();
            let done: Completion = Box::new(move |r| {
                let _ = tx.send(r);
            });
            // SAFETY: `part` outlives the request: its completion is awaited below.
            let sg = unsafe { SgList::from_slice(part) };
            if let Err(r) = self
                .engine
                .submit_internal(Op::Read, at, n as u64, sg, done)
            {
                return Err(r.error);
            }
            rx.recv().unwrap_or(Err(Error::Closed))?;
            if let Some(i) = part.iter().position(|&b| b != 0) {
                return Ok(Some(at + i as u64));
            }
            at += n as u64;
        }
        Ok(None)
    }

    /// Refuse (InUse) while a journal segment holds a record past
    /// `new_size`: the next open's replay would call the journal corrupt.
    /// Records stay until their segment is retired, even once applied.
    fn check_journal_past(&self, sb: &Superblock, new_size: u64) -> Result<()> {
        let Some(j) = &self.journal else {
            return Ok(());
        };
        let backend = self.backend();
        let mut cut = sb.clone();
        cut.size = new_size;
        let Err(e) = crate::journal::inspect(&*backend, &j.dir, &cut) else {
            return Ok(());
        };
        // Read at the current size, the journal must be sound: if not, that is the error.
        crate::journal::inspect(&*backend, &j.dir, sb)?;
        Err(Error::InUse(format!(
            "{}: the journal still holds records of writes past the new end {new_size} ({e}); they stay until their segment is retired, usually a few seconds after writes stop: try again then, or close the volume and open it again (a clean close empties the journal) and shrink",
            self.uri.canonical()
        )))
    }

    /// Delete every chunk file from index `first` on.
    fn remove_chunks_from(&self, first: u64) -> Result<()> {
        let backend = self.backend();
        let dir = &self.engine.io.chunk_dir;
        let entries = match backend.list(dir) {
            Ok(e) => e,
            Err(BackendError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        for e in entries {
            if let Some(c) = parse_chunk_name(&e.name).filter(|&c| c >= first && !e.is_dir) {
                let path = join(dir, &e.name);
                log::warn!(
                    "{path}: chunk {c} lies past the volume's end: removed before the volume grows over it, so the new space reads as zeros"
                );
                backend.delete(&path, false)?;
            }
        }
        Ok(())
    }

    /// Rewrite the superblock with `new_size`, after proving this writer
    /// still owns the volume (the superblock lies outside the data root, so
    /// the fencing move alone does not stop a fenced holder's put) and that
    /// the superblock is still the one this open runs with. Returns what was
    /// written, or the error and whether the superblock may have changed.
    fn write_superblock(
        &self,
        sb: &Superblock,
        new_size: u64,
    ) -> std::result::Result<Superblock, (Error, bool)> {
        let backend = self.backend();
        let path = superblock_path(&self.uri);
        if let Some(l) = &self.lease {
            // The fenced backend answers a missing marker with ESTALE.
            backend
                .stat(l.marker())
                .map_err(|e| (Error::from(e), false))?;
        }
        let disk = Volume::inspect(&backend, &self.uri).map_err(|e| (e, false))?;
        if (disk.uuid, disk.size, disk.block_size, disk.chunk_size)
            != (sb.uuid, sb.size, sb.block_size, sb.chunk_size)
        {
            return Err((
                Error::Mismatch(format!(
                    "{path}: the superblock changed behind this open's back (it says {} bytes, uuid {}; this open runs with {} bytes, uuid {}): nothing was written; close the volume and open it again",
                    disk.size, disk.uuid, sb.size, sb.uuid
                )),
                false,
            ));
        }
        let mut next = disk;
        next.size = new_size;
        match backend.put(&path, &next.to_json()) {
            Ok(()) => Ok(next),
            Err(e @ BackendError::Fenced { .. }) => Err((e.into(), true)),
            // Did the put land? Ask.
            Err(e) => {
                match Volume::inspect(&backend, &self.uri) {
                    Ok(d) if d == next => {
                        log::warn!("{path}: writing the superblock reported {e}, but it holds the new size");
                        Ok(next)
                    }
                    Ok(d) if d.size == sb.size => Err((e.into(), false)),
                    _ => Err((e.into(), true)),
                }
            }
        }
    }

    /// Wait for in-flight requests, then stop the workers. Later submits fail
    /// with `Error::Closed`. Idempotent; also done on drop.
    pub fn close(&self) {
        if let Some(j) = &self.journal {
            if self.readonly {
                j.close_without_destager();
            } else {
                j.close();
            }
        }
        self.engine.shutdown();
        let handles = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|e| e.into_inner()));
        for h in handles {
            let _ = h.join();
        }
        if let Some(l) = &self.lease {
            l.release();
        }
    }
}

/// Releases a lease taken by an open that fails before the volume exists.
struct ReleaseOnError(Option<Arc<Lease>>);

impl ReleaseOnError {
    fn defuse(mut self) -> Option<Arc<Lease>> {
        self.0.take()
    }
}

impl Drop for ReleaseOnError {
    fn drop(&mut self) {
        if let Some(l) = self.0.take() {
            l.release();
        }
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        self.close();
    }
}

/// Start one engine thread; the error says what limit to raise.
fn spawn_thread(name: String, f: Box<dyn FnOnce() + Send>) -> Result<JoinHandle<()>> {
    #[cfg(test)]
    if tests::FAIL_SPAWN.with(|n| n.replace(n.get().saturating_sub(1)) == 1) {
        return Err(Error::Internal(format!(
            "cannot start thread {name}: injected failure"
        )));
    }
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(f)
        .map_err(|e| {
            Error::Internal(format!(
                "cannot start thread {name}: {e}; raise the process's thread or memory limits (ulimit -u, cgroup pids.max)"
            ))
        })
}

/// True when the URI names a local or Ozone filesystem (not the test-only memory one).
pub fn is_persistent(uri: &VolumeUri) -> bool {
    uri.scheme != Scheme::Mem
}

#[cfg(test)]
mod tests {
    use super::*;
    use ozbd_backend::memory::MemoryBackend;
    use ozbd_backend::{Backend, FileInfo};

    /// A memory backend that reports a settable bucket layout.
    #[derive(Debug)]
    struct Layout(MemoryBackend, Mutex<Option<&'static str>>);

    impl Backend for Layout {
        fn read_at(&self, p: &str, o: u64, b: &mut [u8]) -> ozbd_backend::Result<usize> {
            self.0.read_at(p, o, b)
        }
        fn put(&self, p: &str, d: &[u8]) -> ozbd_backend::Result<()> {
            self.0.put(p, d)
        }
        fn delete(&self, p: &str, r: bool) -> ozbd_backend::Result<bool> {
            self.0.delete(p, r)
        }
        fn mkdirs(&self, p: &str) -> ozbd_backend::Result<()> {
            self.0.mkdirs(p)
        }
        fn rename(&self, s: &str, d: &str) -> ozbd_backend::Result<()> {
            self.0.rename(s, d)
        }
        fn stat(&self, p: &str) -> ozbd_backend::Result<Option<FileInfo>> {
            self.0.stat(p)
        }
        fn list(&self, p: &str) -> ozbd_backend::Result<Vec<FileInfo>> {
            self.0.list(p)
        }
        fn describe(&self) -> String {
            "layout-test".into()
        }
        fn bucket_layout(&self, _: &str, _: &str) -> ozbd_backend::Result<Option<String>> {
            Ok(self.1.lock().unwrap().map(str::to_string))
        }
    }

    thread_local! {
        /// When n > 0, the n-th thread spawn of `Volume::start` on this thread fails.
        pub(super) static FAIL_SPAWN: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    #[test]
    fn open_fails_when_any_thread_cannot_start() {
        let backend: BackendRef = Arc::new(MemoryBackend::new());
        let uri = VolumeUri::parse("mem://spawn/vol/bkt/disk").unwrap();
        let opts = OpenOptions {
            workers: 4,
            ..OpenOptions::default()
        };
        drop(Volume::create(backend.clone(), &uri, &CreateOptions::new(1 << 20), &opts).unwrap());
        // The timer (1st), the first worker (2nd) and the last worker (5th) failing.
        for nth in [1, 2, 5] {
            FAIL_SPAWN.with(|n| n.set(nth));
            let e = Volume::open(backend.clone(), &uri, &opts).unwrap_err();
            assert!(e.to_string().contains("cannot start thread"), "{e}");
            assert_eq!(e.errno(), 5);
        }
        FAIL_SPAWN.with(|n| n.set(0));
        let v = Volume::open(backend, &uri, &opts).unwrap();
        v.write(0, &[1u8; 512]).unwrap();
    }

    #[test]
    fn non_fso_buckets_are_refused() {
        let be = Arc::new(Layout(MemoryBackend::new(), Mutex::new(Some("LEGACY"))));
        let backend: BackendRef = be.clone();
        let uri = VolumeUri::parse("ofs://om/vol/bkt/disk").unwrap();
        let (co, oo) = (CreateOptions::new(1 << 20), OpenOptions::default());

        // A missing bucket is not asked about: create makes it (as FSO).
        let (v, notes) = Volume::create(backend.clone(), &uri, &co, &oo).unwrap();
        assert_eq!(notes.len(), 2, "{notes:?}");
        drop(v);
        // An existing LEGACY bucket: open and a second create are refused.
        let e = Volume::open(backend.clone(), &uri, &oo).unwrap_err();
        assert!(
            matches!(&e, Error::Mismatch(m) if m.contains("layout LEGACY")),
            "{e}"
        );
        let other = VolumeUri::parse("ofs://om/vol/bkt/other").unwrap();
        let e = Volume::create(backend.clone(), &other, &co, &oo).unwrap_err();
        assert!(
            matches!(&e, Error::Mismatch(m) if m.contains("FILE_SYSTEM_OPTIMIZED")),
            "{e}"
        );
        assert!(
            backend.stat("/vol/bkt/other").unwrap().is_none(),
            "nothing made"
        );

        // FSO, or a backend that cannot tell: accepted.
        for layout in [Some("FILE_SYSTEM_OPTIMIZED"), None] {
            *be.1.lock().unwrap() = layout;
            drop(Volume::open(backend.clone(), &uri, &oo).unwrap());
        }
        drop(Volume::create(backend.clone(), &other, &co, &oo).unwrap());

        // A volume in a LEGACY bucket can still be deleted.
        *be.1.lock().unwrap() = Some("LEGACY");
        Volume::destroy(&backend, &uri, false).unwrap();
        assert!(backend.stat("/vol/bkt/disk").unwrap().is_none());
    }
}
