// SPDX-License-Identifier: Apache-2.0
//! Exclusive open on the in-memory backend: a second opener is refused while
//! the lease is fresh (naming the holder and the lease's age) and the first
//! keeps working; an expired lease is taken over only with force; after a
//! takeover the former holder cannot change a byte (its writes fail with
//! ESTALE, its reads never turn into zeros) and the new holder's data is
//! intact. The same on real Ozone, across processes and with SIGSTOP:
//! cli/tests/lease.rs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ozbd_backend::fault::{FaultBackend, OpKind};
use ozbd_backend::memory::MemoryBackend;
use ozbd_backend::BackendRef;
use ozbd_chunkstore::{CreateOptions, JournalMode, OpenOptions, Volume, VolumeUri};

const BS: usize = 4096;

fn uri() -> VolumeUri {
    VolumeUri::parse("mem://lease/vol/bucket/disk").unwrap()
}

fn opts(journal: JournalMode, lease_ms: u64, force: bool) -> OpenOptions {
    OpenOptions {
        journal,
        journal_mb: 16,
        retry: Duration::ZERO,
        lease_ms,
        force,
        frontend: "test".into(),
        name: "disk".into(),
        ..OpenOptions::default()
    }
}

fn create(backend: BackendRef, o: &OpenOptions) -> Volume {
    let mut c = CreateOptions::new(16 << 20);
    c.chunk_size = 1 << 20;
    Volume::create(backend, &uri(), &c, o).unwrap().0
}

fn read_block(v: &Volume, at: u64) -> Vec<u8> {
    let mut b = vec![0u8; BS];
    v.read(at, &mut b).unwrap();
    b
}

#[test]
fn a_second_open_is_refused_naming_the_holder_and_the_first_keeps_working() {
    let mem: BackendRef = Arc::new(MemoryBackend::new());
    let o = opts(JournalMode::Ozone, 15_000, false);
    let a = create(mem.clone(), &o);
    a.write(0, &[7u8; BS]).unwrap();
    for force in [false, true] {
        let e = Volume::open(
            mem.clone(),
            &uri(),
            &opts(JournalMode::Ozone, 15_000, force),
        )
        .unwrap_err();
        let m = e.to_string();
        assert_eq!(e.errno(), 16, "EBUSY: {m}");
        assert!(
            m.contains("in use")
                && m.contains("test 'disk'")
                && m.contains(&format!("pid {}", std::process::id()))
                && m.contains("renewed"),
            "{m}"
        );
    }
    let info = Volume::lease_info(&mem, &uri()).unwrap().unwrap();
    assert_eq!(info.record.holder.frontend, "test");
    assert_eq!(info.record.epoch, a.epoch());
    // Nor can the volume be deleted from under it.
    let e = Volume::destroy(&mem, &uri(), true).unwrap_err();
    assert!(
        e.to_string().contains("close it there before deleting"),
        "{e}"
    );
    // The refused opens changed nothing: the holder goes on.
    a.write(BS as u64, &[8u8; BS]).unwrap();
    a.flush().unwrap();
    assert_eq!(read_block(&a, 0), vec![7u8; BS]);
    drop(a);
    // Closed: the lease is gone and the next open takes a newer epoch.
    assert!(Volume::lease_info(&mem, &uri()).unwrap().is_none());
    let b = Volume::open(mem.clone(), &uri(), &o).unwrap();
    assert_eq!(b.epoch(), 2);
    assert_eq!(read_block(&b, BS as u64), vec![8u8; BS]);
}

/// A holder whose lease renewals fail (the process is stalled, or cut off
/// from the OM), so that its lease expires while it still has the volume.
fn expired_holder(journal: JournalMode) -> (Arc<MemoryBackend>, Arc<FaultBackend>, Volume) {
    let mem = Arc::new(MemoryBackend::new());
    let faults = Arc::new(FaultBackend::new(mem.clone(), 1));
    let a = create(faults.clone(), &opts(journal, 1_000, false));
    a.write(0, &[1u8; BS]).unwrap();
    a.flush().unwrap();
    faults.only_paths_containing(Some("/lease."));
    faults.set_failure_rate(&[OpKind::Put], 1.0);
    // Expired: more than lease + 2 s slack since the last renewal.
    let t = Instant::now();
    loop {
        let info = Volume::lease_info(&(mem.clone() as BackendRef), &uri())
            .unwrap()
            .unwrap();
        if info.expired() {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "{info:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    (mem, faults, a)
}

#[test]
fn an_expired_lease_is_taken_over_only_with_force_and_the_old_holder_is_fenced() {
    for journal in [JournalMode::Ozone, JournalMode::None] {
        let (mem, _faults, a) = expired_holder(journal);
        let be: BackendRef = mem.clone();
        let e = Volume::open(be.clone(), &uri(), &opts(journal, 1_000, false)).unwrap_err();
        assert!(
            e.to_string().contains("expired") && e.to_string().contains("force"),
            "{e}"
        );
        assert_eq!(e.errno(), 16);
        let b = Volume::open(be.clone(), &uri(), &opts(journal, 15_000, true)).unwrap();
        assert!(b.epoch() > a.epoch());
        assert_eq!(read_block(&b, 0), vec![1u8; BS], "{journal:?}");
        b.write(0, &[2u8; BS]).unwrap();
        b.write(2 * BS as u64, &[3u8; BS]).unwrap();
        b.flush().unwrap();

        // The former holder: every write fails with ESTALE, whichever path
        // it takes (journal, whole chunk, unmap), and so does flush. First a
        // whole chunk it has not touched since the takeover: its put reads
        // nothing first, and no marker check follows it (`put_in_dir`), so
        // only the put itself can refuse it.
        let e = a.write(3 << 20, &vec![9u8; 1 << 20]).unwrap_err();
        assert_eq!(e.errno(), 116, "ESTALE, {journal:?}: {e}");
        let e = a.write(0, &[9u8; BS]).unwrap_err();
        assert_eq!(e.errno(), 116, "ESTALE, {journal:?}: {e}");
        assert!(e.to_string().contains("another opener took it over"), "{e}");
        assert_eq!(a.write(0, &vec![9u8; 1 << 20]).unwrap_err().errno(), 116);
        assert_eq!(a.unmap(0, 1 << 20).unwrap_err().errno(), 116);
        // A chunk it never wrote does not read as zeros: the read fails.
        let mut buf = vec![0u8; BS];
        let r = a.read(2 * BS as u64, &mut buf);
        assert!(r.is_err() || buf == vec![3u8; BS] || buf == vec![0u8; BS]);
        drop(a);

        assert_eq!(read_block(&b, 0), vec![2u8; BS], "{journal:?}");
        drop(b);
        let c = Volume::open(be, &uri(), &opts(journal, 15_000, false)).unwrap();
        assert_eq!(read_block(&c, 0), vec![2u8; BS], "{journal:?}");
        assert_eq!(read_block(&c, 2 * BS as u64), vec![3u8; BS], "{journal:?}");
        assert_eq!(read_block(&c, 3 << 20), vec![0u8; BS], "{journal:?}");
    }
}

/// A renewal lost to a passing fault is tried again soon, not a whole
/// renewal period later: an 8 s lease renews every 4 s and retries every
/// 0.4 s, so a fault that ends at 5.6 s is behind it by about 6 s. (Renewing
/// every third of the lease with no retry, the next try would be at 8 s.)
#[test]
fn a_failed_renewal_is_tried_again_soon() {
    let mem = Arc::new(MemoryBackend::new());
    let faults = Arc::new(FaultBackend::new(mem.clone(), 1));
    faults.only_paths_containing(Some("/lease."));
    let a = create(faults.clone(), &opts(JournalMode::Ozone, 8_000, false));
    let t = Instant::now();
    faults.set_failure_rate(&[OpKind::Put], 1.0);
    let renewals = || {
        Volume::lease_info(&(mem.clone() as BackendRef), &uri())
            .unwrap()
            .unwrap()
            .record
            .renewals
    };
    std::thread::sleep(Duration::from_millis(5_600).saturating_sub(t.elapsed()));
    assert_eq!(renewals(), 0, "every renewal so far failed");
    faults.set_failure_rate(&[OpKind::Put], 0.0);
    while renewals() == 0 {
        assert!(
            t.elapsed() < Duration::from_millis(7_500),
            "no renewal within 1.9 s of the fault's end"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    a.write(0, &[1u8; BS]).unwrap();
}

#[test]
fn lease_length_is_validated() {
    let mem: BackendRef = Arc::new(MemoryBackend::new());
    for bad in [0, 999, 600_001] {
        let mut c = CreateOptions::new(16 << 20);
        c.chunk_size = 1 << 20;
        let e = Volume::create(
            mem.clone(),
            &uri(),
            &c,
            &opts(JournalMode::None, bad, false),
        )
        .unwrap_err();
        assert!(e.to_string().contains("lease_ms"), "{e}");
    }
}
