// SPDX-License-Identifier: Apache-2.0
//! ozbd: the command-line tool for bdev_ozone volumes, shaped like Ceph's `rbd`.
//!
//! Owns: argument parsing (the open options go to the engine as given, never
//! checked here), size suffixes, progress display, resizing (the engine's
//! `Volume::resize` under the writer lease), and streaming whole
//! volumes in and out (import/export) through the engine with many requests in
//! flight. Also tools used by tests and benchmarks (`crash-writer`, `crash-check`,
//! `bench`): subcommands hidden from the help (`cli/tests/help.rs` checks that).
//! Must never: reimplement engine logic (chunking, RMW, the volume format);
//! overwrite data beyond what the user asked for.

mod bench;
mod crash;
mod fsck;
mod pipeline;

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use ozbd_chunkstore::{
    connect, ConnectOptions, CreateOptions, Error, Op, OpenOptions, Result, Volume, VolumeUri,
};

use pipeline::Pipeline;

#[derive(Parser)]
#[command(
    name = "ozbd",
    version,
    about = "Manage bdev_ozone block volumes stored in Apache Ozone"
)]
#[command(
    after_help = "URIs: ofs://<om-host>[:port]/<ozone-volume>/<bucket>[/<path>] or file:///<dir>.\n\
The Ozone client environment comes from the shell: eval \"$(scripts/ozone-local env)\"."
)]
struct Cli {
    /// Seconds to wait for the Ozone Manager before giving up.
    #[arg(long, global = true, default_value_t = 60)]
    timeout: u64,
    /// Engine worker threads (parallel backend calls). Default: the engine's.
    #[arg(long, global = true)]
    workers: Option<usize>,
    /// Replication factor of chunk files (3 = RATIS/THREE; hsync needs 3).
    #[arg(long, global = true, default_value_t = 3)]
    replication: i16,
    /// Write-ahead journal of the opened volume: "ozone" (small writes are made
    /// durable in a journal in the volume's Ozone directory) or "none" (every
    /// write rewrites its chunk). Default: the engine's.
    #[arg(long, global = true, value_name = "MODE")]
    journal: Option<String>,
    /// Journal space, and the journaled data held in memory, in MiB. Default: the engine's.
    #[arg(long, global = true, value_name = "MIB")]
    journal_mb: Option<u64>,
    /// Read cache in MiB (0: no cache). Default: the engine's.
    #[arg(long, global = true, value_name = "MIB")]
    cache_mb: Option<u64>,
    /// Take over a volume whose writer lease has expired (its holder is
    /// presumed dead; it is fenced and its writes fail). A volume held by a
    /// live writer is always refused. `info` and `export` take no lease.
    #[arg(long = "takeover", global = true)]
    takeover: bool,
    /// The writer lease's length in ms (renewed every half of it; a dead
    /// holder can be taken over this long after its last renewal). Default:
    /// the engine's.
    #[arg(long, global = true, value_name = "MS")]
    lease_ms: Option<u64>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a volume.
    Create {
        uri: String,
        /// Size in bytes, or with a K/M/G/T suffix (powers of 1024).
        #[arg(long, value_parser = parse_size)]
        size: u64,
        /// Logical block size: 512 or 4096.
        #[arg(long, default_value_t = 4096)]
        block_size: u32,
        /// Chunk size (power of two, 64K to 256M), with an optional suffix.
        #[arg(long, value_parser = parse_size, default_value = "4M")]
        chunk_size: u64,
        /// UUID to give the volume (default: a new random one).
        #[arg(long)]
        uuid: Option<uuid::Uuid>,
    },
    /// Show a volume's parameters and allocation.
    Info {
        uri: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a volume and all its data.
    Delete {
        uri: String,
        /// Also delete a directory that is not a valid volume (e.g. an interrupted create).
        #[arg(long)]
        force: bool,
    },
    /// Copy a file into a volume from offset 0; the rest of the volume is left untouched.
    Import {
        file: String,
        uri: String,
        /// Create the volume first, sized to the file (rounded up to the block size).
        #[arg(long)]
        create: bool,
    },
    /// Copy a whole volume into a file (unallocated chunks become holes).
    Export { uri: String, file: String },
    /// Grow a volume (the new space reads as zeros), or shrink it with --force.
    ///
    /// Takes the writer lease, so a volume in use (an SPDK target, nbdkit)
    /// is refused: resize it there (RPC bdev_ozone_resize), or stop it first.
    Resize {
        uri: String,
        /// The new size in bytes, or with a K/M/G/T suffix (powers of 1024);
        /// a multiple of the volume's block size.
        #[arg(long, value_parser = parse_size)]
        size: u64,
        /// Allow shrinking. Even then only space that holds no data is cut:
        /// a shrink over data (or journaled writes) is refused, naming it.
        #[arg(long)]
        force: bool,
    },
    /// Check a volume: superblock, every chunk's length and checksums, the
    /// journal, and orphans (files no reader uses). Exit 0: clean; 1: orphans
    /// removed, nothing else wrong; 4: damage found, or orphans left; 8: the
    /// check could not run.
    Fsck {
        uri: String,
        /// Remove orphans (takes the writer lease; a volume in use is
        /// refused). Damaged data is only reported, never changed.
        #[arg(long)]
        repair: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// (test tool) Random writes to a volume, logging each submit and completion.
    #[command(hide = true)]
    CrashWriter {
        uri: String,
        #[arg(long)]
        seed: u64,
        #[arg(long, default_value_t = 1_000_000)]
        ops: u64,
        #[arg(long, default_value_t = 4)]
        depth: usize,
    },
    /// (test tool) Check a volume against a crash-writer log; update the model image.
    #[command(hide = true)]
    CrashCheck {
        uri: String,
        #[arg(long)]
        log: String,
        #[arg(long)]
        model: String,
    },
    /// (benchmark) Whole-chunk writes and reads through the engine vs raw backend files.
    #[command(hide = true)]
    Bench {
        /// A directory URI that does not exist yet; it is removed afterwards.
        uri: String,
        #[arg(long, value_parser = parse_size, default_value = "256M")]
        size: u64,
        #[arg(long, value_parser = parse_size, default_value = "4M")]
        chunk_size: u64,
        /// Requests in flight.
        #[arg(long, default_value_t = 8)]
        depth: usize,
        /// Repetitions of each measurement (the median is reported).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
}

/// Parse "4096", "4K", "1.5G", "10MiB".
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, mult) = match t.chars().last() {
        Some(c @ ('K' | 'k' | 'M' | 'm' | 'G' | 'g' | 'T' | 't')) => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                _ => 40,
            };
            (&t[..t.len() - 1], 1u64 << shift)
        }
        _ => (t, 1),
    };
    let bad = || format!("'{s}' is not a size: use bytes or a number with K, M, G or T (e.g. 10G)");
    if num.contains('.') {
        let f: f64 = num.parse().map_err(|_| bad())?;
        if !(f.is_finite() && f >= 0.0) {
            return Err(bad());
        }
        Ok((f * mult as f64).round() as u64)
    } else {
        let n: u64 = num.parse().map_err(|_| bad())?;
        n.checked_mul(mult).ok_or_else(bad)
    }
}

pub fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < units.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

pub struct Ctx {
    pub timeout: Duration,
    pub workers: usize,
    pub replication: i16,
    /// How volumes are opened: the engine's defaults and what the flags gave,
    /// checked by the engine before anything connects.
    open: OpenOptions,
}

impl Ctx {
    pub fn backend(&self, uri: &VolumeUri) -> Result<ozbd_backend::BackendRef> {
        connect(
            uri,
            &ConnectOptions {
                timeout: self.timeout,
                replication: self.replication,
            },
        )
    }

    pub fn open(&self, uri: &VolumeUri) -> Result<Volume> {
        let b = self.backend(uri)?;
        Volume::open(b, uri, &self.open_opts())
    }

    /// Open without the writer lease, never writing (info, export).
    pub fn open_readonly(&self, uri: &VolumeUri) -> Result<Volume> {
        let b = self.backend(uri)?;
        let mut o = self.open_opts();
        o.readonly = true;
        Volume::open(b, uri, &o)
    }

    pub fn open_opts(&self) -> OpenOptions {
        self.open.clone()
    }
}

/// The open options from the flags: the engine's defaults for what was not
/// given; the journal mode parsed, and every value checked, by the engine.
fn open_options(cli: &Cli) -> Result<OpenOptions> {
    let mut o = OpenOptions::default();
    if let Some(n) = cli.workers {
        o.workers = n;
    }
    if let Some(j) = &cli.journal {
        o.journal = j.parse()?;
    }
    if let Some(n) = cli.journal_mb {
        o.journal_mb = n;
    }
    if let Some(n) = cli.cache_mb {
        o.cache_mb = n;
    }
    o.force = cli.takeover;
    if let Some(n) = cli.lease_ms {
        o.lease_ms = n;
    }
    o.frontend = "ozbd".into();
    o.validate()?;
    Ok(o)
}

fn progress(total: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// When stderr is not a terminal the bar is hidden: print a line every few seconds instead.
struct PlainProgress {
    last: Instant,
    start: Instant,
    total: u64,
    what: String,
}

impl PlainProgress {
    fn new(total: u64, what: &str) -> Self {
        PlainProgress {
            last: Instant::now(),
            start: Instant::now(),
            total,
            what: what.into(),
        }
    }
    fn tick(&mut self, done: u64) {
        if self.last.elapsed() >= Duration::from_secs(5) {
            self.last = Instant::now();
            let rate = done as f64 / self.start.elapsed().as_secs_f64().max(1e-3);
            eprintln!(
                "{}: {} of {} ({:.0}%), {}/s",
                self.what,
                human(done),
                human(self.total),
                100.0 * done as f64 / self.total.max(1) as f64,
                human(rate as u64)
            );
        }
    }
}

fn cmd_import(ctx: &Ctx, file: &str, uri: &VolumeUri, create: bool) -> Result<()> {
    let mut f =
        File::open(file).map_err(|e| Error::InvalidArgument(format!("cannot open {file}: {e}")))?;
    let flen = f
        .metadata()
        .map_err(|e| Error::InvalidArgument(format!("cannot stat {file}: {e}")))?
        .len();
    let vol = if create {
        let b = ctx.backend(uri)?;
        let size = flen.max(1).div_ceil(4096) * 4096;
        let (v, notes) = Volume::create(b, uri, &CreateOptions::new(size), &ctx.open_opts())?;
        for n in notes {
            eprintln!("ozbd: {n}");
        }
        eprintln!("ozbd: created volume {} ({})", uri.canonical(), human(size));
        v
    } else {
        ctx.open(uri)?
    };
    let sb = vol.superblock().clone();
    if flen > sb.size {
        return Err(Error::InvalidArgument(format!(
            "{file} is {} bytes but the volume holds only {}: nothing was written; create a larger volume",
            flen, sb.size
        )));
    }
    let bs = sb.block_size as u64;
    let aligned = flen / bs * bs;
    let step = sb.chunk_size;
    let depth = (ctx.workers * 2).max(2);
    let pb = progress(flen, "import");
    let mut plain = PlainProgress::new(flen, "import");
    let start = Instant::now();
    let mut pipe = Pipeline::new(&vol, depth, step as usize);
    let mut off = 0;
    while off < aligned {
        let n = step.min(aligned - off) as usize;
        let slot = pipe.slot(|_, _| Ok(()))?;
        f.read_exact(&mut pipe.buf(slot)[..n])
            .map_err(|e| Error::InvalidArgument(format!("reading {file} at {off}: {e}")))?;
        pipe.submit(slot, Op::Write, off, n);
        off += n as u64;
        pb.set_position(off);
        plain.tick(off);
    }
    pipe.drain(|_, _| Ok(()))?;
    if aligned < flen {
        // The file ends inside a block: keep the rest of that block as it was.
        let mut block = vec![0u8; bs as usize];
        vol.read(aligned, &mut block)?;
        f.read_exact(&mut block[..(flen - aligned) as usize])
            .map_err(|e| Error::InvalidArgument(format!("reading the end of {file}: {e}")))?;
        vol.write(aligned, &block)?;
    }
    pb.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "ozbd: imported {} into {} in {secs:.1} s ({}/s)",
        human(flen),
        uri.canonical(),
        human((flen as f64 / secs.max(1e-3)) as u64)
    );
    Ok(())
}

fn cmd_export(ctx: &Ctx, uri: &VolumeUri, file: &str) -> Result<()> {
    let vol = ctx.open_readonly(uri)?;
    let sb = vol.superblock().clone();
    let out = File::create(file)
        .map_err(|e| Error::InvalidArgument(format!("cannot create {file}: {e}")))?;
    out.set_len(sb.size)
        .map_err(|e| Error::InvalidArgument(format!("cannot size {file}: {e}")))?;
    let allocated = vol.allocated_chunks();
    let pb = progress(sb.size, "export");
    let mut plain = PlainProgress::new(sb.size, "export");
    let start = Instant::now();
    let depth = (ctx.workers * 2).max(2);
    let mut pipe = Pipeline::new(&vol, depth, sb.chunk_size as usize);
    let write_out = |buf: &[u8], off: u64| {
        out.write_all_at(buf, off)
            .map_err(|e| Error::InvalidArgument(format!("writing {file} at {off}: {e}")))
    };
    let mut done = 0u64;
    for c in 0..sb.chunk_count() {
        let off = c * sb.chunk_size;
        let n = sb.chunk_len(c) as usize;
        if allocated.binary_search(&c).is_ok() {
            let slot = pipe.slot(write_out)?;
            pipe.submit(slot, Op::Read, off, n);
        }
        done += n as u64;
        pb.set_position(done);
        plain.tick(done);
    }
    pipe.drain(write_out)?;
    out.sync_all()
        .map_err(|e| Error::InvalidArgument(format!("syncing {file}: {e}")))?;
    pb.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "ozbd: exported {} ({} allocated) to {file} in {secs:.1} s",
        human(sb.size),
        human(allocated.len() as u64 * sb.chunk_size),
    );
    Ok(())
}

fn run(cli: Cli) -> Result<ExitCode> {
    // Before any URI is parsed or anything connects: a bad option fails at once.
    let open = open_options(&cli)?;
    let ctx = Ctx {
        timeout: Duration::from_secs(cli.timeout),
        workers: open.workers,
        replication: cli.replication,
        open,
    };
    let done: Result<()> = match cli.cmd {
        Cmd::Fsck { uri, repair, json } => return Ok(fsck::run(&ctx, &uri, repair, json)),
        Cmd::Create {
            uri,
            size,
            block_size,
            chunk_size,
            uuid,
        } => {
            let uri = VolumeUri::parse(&uri)?;
            let opts = CreateOptions {
                size,
                block_size,
                chunk_size,
                uuid,
            };
            // Check the parameters before connecting (which may take seconds).
            ozbd_chunkstore::Superblock::new(size, block_size, chunk_size, uuid)?;
            let b = ctx.backend(&uri)?;
            let (vol, notes) = Volume::create(b, &uri, &opts, &ctx.open_opts())?;
            for n in notes {
                eprintln!("ozbd: {n}");
            }
            let sb = vol.superblock();
            println!(
                "created {} size {} ({}) block_size {} chunk_size {} uuid {}",
                uri.canonical(),
                sb.size,
                human(sb.size),
                sb.block_size,
                sb.chunk_size,
                sb.uuid
            );
            Ok(())
        }
        Cmd::Info { uri, json } => {
            let uri = VolumeUri::parse(&uri)?;
            // The journal as the last writer left it, before this open
            // replays it.
            let backend = ctx.backend(&uri)?;
            let journal = Volume::journal_info(&backend, &uri)?;
            let lease = Volume::lease_info(&backend, &uri)?;
            let vol = ctx.open_readonly(&uri)?;
            let sb = vol.superblock();
            let alloc = vol.allocated_chunks().len() as u64;
            if json {
                let v = serde_json::json!({
                    "uri": uri.canonical(),
                    "uuid": sb.uuid.to_string(),
                    "size": sb.size,
                    "block_size": sb.block_size,
                    "chunk_size": sb.chunk_size,
                    "chunk_count": sb.chunk_count(),
                    "allocated_chunks": alloc,
                    "format_version": sb.format_version,
                    "holder": lease.as_ref().map(|l| serde_json::json!({
                        "epoch": l.record.epoch,
                        "host": l.record.holder.host,
                        "pid": l.record.holder.pid,
                        "frontend": l.record.holder.frontend,
                        "name": l.record.holder.name,
                        "lease_ms": l.record.lease_ms,
                        "age_ms": l.age_ms,
                        "expired": l.expired(),
                    })),
                    "journal": journal,
                    "settings": vol.settings(),
                });
                println!("{v:#}");
            } else {
                println!("volume:           {}", uri.canonical());
                println!("uuid:             {}", sb.uuid);
                println!("size:             {} ({})", sb.size, human(sb.size));
                println!("block size:       {}", sb.block_size);
                println!(
                    "chunk size:       {} ({})",
                    sb.chunk_size,
                    human(sb.chunk_size)
                );
                println!(
                    "allocated chunks: {alloc} of {} ({})",
                    sb.chunk_count(),
                    human(alloc * sb.chunk_size)
                );
                println!("format version:   {}", sb.format_version);
                match &lease {
                    None => println!("holder:           none (not open for writing)"),
                    Some(l) => println!(
                        "holder:           {}{}",
                        l.describe(),
                        if l.expired() {
                            "; EXPIRED: `--takeover` takes it over"
                        } else {
                            ""
                        }
                    ),
                }
                let st = vol.settings();
                if journal.segments == 0 {
                    println!("journal:          empty (nothing to replay)");
                } else {
                    println!(
                        "journal:          {} segments, {}; a replay applies {} records ({} of data in {} chunks){}",
                        journal.segments,
                        human(journal.bytes),
                        journal.to_apply,
                        human(journal.dirty_bytes),
                        journal.chunks,
                        if journal.torn_bytes > 0 {
                            format!(", cutting a torn tail of {} bytes", journal.torn_bytes)
                        } else {
                            String::new()
                        }
                    );
                }
                println!(
                    "journal mode:     {} (journal_mb {}, cache_mb {}){}",
                    st.journal,
                    st.journal_mb,
                    st.cache_mb,
                    st.journal_note
                        .as_deref()
                        .map(|n| format!("\n                  {n}"))
                        .unwrap_or_default()
                );
                println!(
                    "engine:           {} workers, retry {} ms, at most {} requests / {} in flight",
                    st.workers,
                    st.retry_ms,
                    st.max_inflight_requests,
                    human(st.max_inflight_bytes)
                );
                println!(
                    "journal:          {} ({} MiB){}",
                    st.journal,
                    st.journal_mb,
                    st.journal_note
                        .as_deref()
                        .map(|n| format!(": {n}"))
                        .unwrap_or_default()
                );
                println!("read cache:       {} MiB", st.cache_mb);
                if !st.client.is_empty() {
                    println!("ozone client settings in effect:");
                    for c in &st.client {
                        println!(
                            "  {} = {}  ({})",
                            c.key,
                            c.value.as_deref().unwrap_or("(unset)"),
                            c.source
                        );
                    }
                }
            }
            Ok(())
        }
        Cmd::Delete { uri, force } => {
            let uri = VolumeUri::parse(&uri)?;
            let b = ctx.backend(&uri)?;
            Volume::destroy(&b, &uri, force)?;
            println!("deleted {}", uri.canonical());
            Ok(())
        }
        Cmd::Import { file, uri, create } => {
            cmd_import(&ctx, &file, &VolumeUri::parse(&uri)?, create)
        }
        Cmd::Export { uri, file } => cmd_export(&ctx, &VolumeUri::parse(&uri)?, &file),
        Cmd::Resize { uri, size, force } => {
            let uri = VolumeUri::parse(&uri)?;
            let vol = ctx.open(&uri)?;
            let old = vol.superblock().size;
            let r = vol.resize(size, force);
            vol.close();
            r?;
            if old == size {
                println!(
                    "{} is {size} bytes ({}) already",
                    uri.canonical(),
                    human(size)
                );
            } else {
                println!(
                    "resized {} from {old} ({}) to {size} ({})",
                    uri.canonical(),
                    human(old),
                    human(size)
                );
            }
            Ok(())
        }
        Cmd::CrashWriter {
            uri,
            seed,
            ops,
            depth,
        } => crash::run_writer(&ctx, &VolumeUri::parse(&uri)?, seed, ops, depth),
        Cmd::CrashCheck { uri, log, model } => {
            println!(
                "{}",
                crash::check(&ctx, &VolumeUri::parse(&uri)?, &log, &model)?
            );
            Ok(())
        }
        Cmd::Bench {
            uri,
            size,
            chunk_size,
            depth,
            rounds,
        } => bench::run(
            &ctx,
            &VolumeUri::parse(&uri)?,
            size,
            chunk_size,
            depth,
            rounds,
        ),
    };
    done.map(|()| ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ozbd: error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("10G"), Ok(10 << 30));
        assert_eq!(parse_size("1.5M"), Ok(3 << 19));
        assert_eq!(parse_size("2MiB"), Ok(2 << 20));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
