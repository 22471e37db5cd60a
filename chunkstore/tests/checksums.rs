// SPDX-License-Identifier: Apache-2.0
//! End-to-end checksums on the in-memory backend: a chunk damaged behind the
//! engine's back (a flipped byte, truncated, extended, rewritten without a
//! trailer, another chunk's file copied over it) reads as an I/O error naming
//! the chunk, never as wrong data; the undamaged units of the chunk still
//! read; a partial write never launders the damage; a whole-chunk write
//! replaces it. A volume upgraded from format 3 reads its old chunks and
//! checks its new ones. The same damage through Ozone: cli/tests/fsck.rs.

mod common;

use std::sync::Arc;
use std::time::Duration;

use ozbd_backend::memory::MemoryBackend;
use ozbd_backend::{Backend, BackendRef};
use ozbd_chunkstore::{CreateOptions, Error, JournalMode, OpenOptions, Volume, VolumeUri};

const CS: usize = 1 << 20;
const DIR: &str = "/vol/bucket/disk";

fn uri() -> VolumeUri {
    VolumeUri::parse("mem://sums/vol/bucket/disk").unwrap()
}

fn opts(cache_mb: u64) -> OpenOptions {
    OpenOptions {
        journal: JournalMode::None,
        retry: Duration::ZERO,
        cache_mb,
        ..OpenOptions::default()
    }
}

/// Distinct, non-repeating bytes for chunk `c`.
fn pattern(c: usize) -> Vec<u8> {
    common::pattern(c as u64 + 1, CS)
}

fn chunk_path(mem: &MemoryBackend, c: usize) -> String {
    let root = mem
        .list(DIR)
        .unwrap()
        .into_iter()
        .find(|e| e.is_dir && e.name.starts_with('e'))
        .expect("a data root e<N>");
    format!("{DIR}/{}/chunks/{c:016x}", root.name)
}

fn file(mem: &MemoryBackend, path: &str) -> Vec<u8> {
    let len = mem.stat(path).unwrap().unwrap().len as usize;
    let mut b = vec![0u8; len];
    assert_eq!(mem.read_at(path, 0, &mut b).unwrap(), len);
    b
}

/// A closed volume of 4 chunks, each full of its pattern.
fn volume(mem: &Arc<MemoryBackend>) {
    let mut c = CreateOptions::new(4 * CS as u64);
    c.chunk_size = CS as u64;
    let (v, _) = Volume::create(mem.clone(), &uri(), &c, &opts(0)).unwrap();
    for i in 0..4 {
        v.write((i * CS) as u64, &pattern(i)).unwrap();
    }
    v.close();
}

fn read(v: &Volume, at: usize, len: usize) -> Result<Vec<u8>, Error> {
    let mut b = vec![0u8; len];
    v.read(at as u64, &mut b).map(|_| b)
}

fn assert_corrupt(r: Result<Vec<u8>, Error>, chunk: usize, what: &str) {
    match r {
        Err(e @ Error::Corrupt(_)) => {
            assert_eq!(e.errno(), 117, "{what}: an I/O error (EUCLEAN)");
            assert!(
                e.to_string().contains(&format!("{chunk:016x}")),
                "{what}: the error names the chunk: {e}"
            );
        }
        Err(e) => panic!("{what}: expected a checksum error, got {e}"),
        Ok(_) => panic!("{what}: damaged data was returned as data"),
    }
}

#[test]
fn damage_behind_the_engines_back_is_an_io_error_never_wrong_data() {
    for cache_mb in [0, 64] {
        let mem = Arc::new(MemoryBackend::new());
        volume(&mem);
        let (p0, p1, p2, p3) = (
            chunk_path(&mem, 0),
            chunk_path(&mem, 1),
            chunk_path(&mem, 2),
            chunk_path(&mem, 3),
        );
        // Chunk 0: one flipped bit in unit 5.
        let mut f0 = file(&mem, &p0);
        f0[5 * 4096 + 100] ^= 0x10;
        mem.put(&p0, &f0).unwrap();
        // Chunk 1: truncated to half.
        let f1 = file(&mem, &p1);
        mem.put(&p1, &f1[..CS / 2]).unwrap();
        // Chunk 3: chunk 2's file copied over it (valid data, wrong address).
        mem.put(&p3, &file(&mem, &p2)).unwrap();

        let v = Volume::open(mem.clone(), &uri(), &opts(cache_mb)).unwrap();
        assert_corrupt(read(&v, 5 * 4096, 4096), 0, "flipped bit");
        assert_corrupt(
            read(&v, 5 * 4096 + 512, 512),
            0,
            "flipped bit, unaligned read",
        );
        assert_corrupt(read(&v, 0, CS), 0, "flipped bit, whole chunk");
        assert_eq!(
            read(&v, 6 * 4096, 4096).unwrap(),
            pattern(0)[6 * 4096..7 * 4096],
            "the chunk's undamaged units still read"
        );
        assert_corrupt(read(&v, CS, 4096), 1, "truncated");
        assert_eq!(
            read(&v, 2 * CS, CS).unwrap(),
            pattern(2),
            "chunk 2 is intact"
        );
        assert_corrupt(read(&v, 3 * CS, 4096), 3, "another chunk's file");
        assert!(v.stats().checksum_errors >= 5, "{:?}", v.stats());

        // A partial write must not launder the damage into a new, valid chunk.
        // (The open moved the data root: paths are asked again.)
        let p0 = chunk_path(&mem, 0);
        let before = file(&mem, &p0);
        assert!(
            v.write(0, &[9u8; 4096]).is_err(),
            "read-modify-write of a damaged chunk fails"
        );
        assert_eq!(file(&mem, &p0), before, "and changes nothing");
        // A whole-chunk write replaces the damaged chunk.
        v.write(0, &pattern(7)).unwrap();
        assert_eq!(read(&v, 0, CS).unwrap(), pattern(7));
        v.close();
    }
}

#[test]
fn rewritten_or_extended_chunks_are_caught() {
    let mem = Arc::new(MemoryBackend::new());
    volume(&mem);
    let p0 = chunk_path(&mem, 0);
    let p1 = chunk_path(&mem, 1);
    // Chunk 0 rewritten from outside with plain data (as `ozone sh key put` would).
    mem.put(&p0, &pattern(5)).unwrap();
    // Chunk 1 with a byte appended.
    let mut f1 = file(&mem, &p1);
    f1.push(0);
    mem.put(&p1, &f1).unwrap();
    let v = Volume::open(mem.clone(), &uri(), &opts(0)).unwrap();
    assert_corrupt(read(&v, 4096, 4096), 0, "rewritten without a trailer");
    assert_corrupt(read(&v, CS, 4096), 1, "extended");
    v.close();
}

#[test]
fn an_upgraded_volume_reads_its_old_chunks_and_checks_its_new_ones() {
    let mem = Arc::new(MemoryBackend::new());
    volume(&mem);
    // Make it a format 3 volume: no superblock checksum, chunks without trailers.
    let sbp = format!("{DIR}/superblock.json");
    let mut sb: serde_json::Value = serde_json::from_slice(&file(&mem, &sbp)).unwrap();
    sb["format_version"] = 3.into();
    sb.as_object_mut().unwrap().remove("checksums");
    sb.as_object_mut().unwrap().remove("crc");
    mem.put(&sbp, &serde_json::to_vec(&sb).unwrap()).unwrap();
    for c in 0..4 {
        let p = chunk_path(&mem, c);
        mem.put(&p, &file(&mem, &p)[..CS]).unwrap();
    }
    let v = Volume::open(mem.clone(), &uri(), &opts(0)).unwrap();
    assert_eq!(v.superblock().format_version, 4);
    assert!(!v.superblock().checksums);
    for c in 0..4 {
        assert_eq!(
            read(&v, c * CS, CS).unwrap(),
            pattern(c),
            "old chunk {c} reads"
        );
    }
    // A rewrite gives the chunk a trailer, so damage to it is caught from now on.
    v.write((CS + 4096) as u64, &[3u8; 4096]).unwrap();
    v.close();
    let p1 = chunk_path(&mem, 1);
    let mut f1 = file(&mem, &p1);
    assert!(f1.len() > CS, "the rewritten chunk has a trailer");
    f1[100] ^= 1;
    mem.put(&p1, &f1).unwrap();
    // A truncated old chunk is caught too (its length is known).
    let p2 = chunk_path(&mem, 2);
    mem.put(&p2, &file(&mem, &p2)[..CS - 4096]).unwrap();
    let v = Volume::open(mem.clone(), &uri(), &opts(0)).unwrap();
    assert_corrupt(read(&v, CS, 4096), 1, "damaged rewritten chunk");
    assert_corrupt(read(&v, 2 * CS, CS), 2, "truncated old chunk");
    assert_eq!(read(&v, 0, CS).unwrap(), pattern(0));
    v.close();
}

#[test]
fn a_damaged_superblock_is_refused_with_a_clear_error() {
    let mem = Arc::new(MemoryBackend::new());
    volume(&mem);
    let sbp = format!("{DIR}/superblock.json");
    let text = String::from_utf8(file(&mem, &sbp)).unwrap();
    // Still valid JSON and a valid volume of another size: only the sum tells.
    let edited = text.replace(&(4 * CS).to_string(), &(8 * CS).to_string());
    assert_ne!(edited, text);
    mem.put(&sbp, edited.as_bytes()).unwrap();
    let e = Volume::open(mem.clone(), &uri(), &opts(0)).unwrap_err();
    assert!(matches!(e, Error::Corrupt(_)), "{e}");
    assert!(e.to_string().contains("checksum does not match"), "{e}");
    let b: BackendRef = mem.clone();
    assert!(
        Volume::inspect(&b, &uri()).is_err(),
        "inspect refuses it too"
    );
    // Nothing was written: the damaged file is as it was.
    assert_eq!(file(&mem, &sbp), edited.as_bytes());
}
