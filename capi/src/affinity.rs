// SPDX-License-Identifier: Apache-2.0
//! CPU affinity of the engine's threads.
//!
//! Owns: parsing a CPU mask (`0x3`, `3`, `[0,1]`, `0-1,3`) and applying it to
//! the thread that opens a volume. Every engine thread (the I/O workers, the
//! timer, the connect thread) and every JVM thread started during the first
//! open is created from that thread and inherits its affinity, the way
//! bdev_rbd's `core_mask` places librbd's threads.
//! Must never: pin a thread to a CPU the process may not use (the mask is
//! checked against the process's allowed CPUs), or change the caller's own
//! thread's affinity (it is applied on a thread the engine creates).

use std::ffi::c_char;

use ozbd_chunkstore::Error;

/// A set of CPU numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CpuMask(Vec<usize>);

impl CpuMask {
    /// Parse a hex mask (`0x3`, `3`) or a list (`[0,1]`, `0-1,3`).
    pub(crate) fn parse(s: &str) -> Result<CpuMask, Error> {
        let bad = |why: &str| {
            Error::InvalidArgument(format!(
                "cpumask '{s}' {why}: give a hex mask such as 0x3, or a CPU list such as [0,1] or 0-1,3"
            ))
        };
        let t = s.trim();
        let mut cpus = Vec::new();
        let is_list = t.starts_with('[') || t.contains(',') || t.contains('-');
        if is_list {
            let inner = t.trim_start_matches('[').trim_end_matches(']');
            for part in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (a, b) = match part.split_once('-') {
                    Some((a, b)) => (a.trim(), b.trim()),
                    None => (part, part),
                };
                let a: usize = a.parse().map_err(|_| bad("is not a CPU list"))?;
                let b: usize = b.parse().map_err(|_| bad("is not a CPU list"))?;
                if a > b || b >= libc::CPU_SETSIZE as usize {
                    return Err(bad("has a CPU range out of order or beyond the CPU limit"));
                }
                cpus.extend(a..=b);
            }
        } else {
            let hex = t
                .strip_prefix("0x")
                .or_else(|| t.strip_prefix("0X"))
                .unwrap_or(t);
            if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(bad("is not a hex mask"));
            }
            for (i, c) in hex.chars().rev().enumerate() {
                let nibble = c.to_digit(16).unwrap_or(0) as usize;
                for bit in 0..4 {
                    if nibble & (1 << bit) != 0 {
                        let cpu = i * 4 + bit;
                        if cpu >= libc::CPU_SETSIZE as usize {
                            return Err(bad("names a CPU beyond the CPU limit"));
                        }
                        cpus.push(cpu);
                    }
                }
            }
        }
        cpus.sort_unstable();
        cpus.dedup();
        if cpus.is_empty() {
            return Err(bad("names no CPU"));
        }
        let allowed = allowed_cpus();
        if let Some(c) = cpus.iter().find(|c| !allowed.contains(c)) {
            return Err(bad(&format!(
                "names CPU {c}, which this process may not use (allowed: {allowed:?})"
            )));
        }
        Ok(CpuMask(cpus))
    }

    /// Parse a C string; NULL or empty means "no mask".
    pub(crate) fn from_c(p: *const c_char) -> Result<Option<CpuMask>, Error> {
        if p.is_null() {
            return Ok(None);
        }
        // SAFETY: non-NULL, and the caller promises a NUL-terminated string.
        let s = unsafe { std::ffi::CStr::from_ptr(p) }
            .to_str()
            .map_err(|_| Error::InvalidArgument("cpumask is not UTF-8".into()))?;
        if s.trim().is_empty() {
            return Ok(None);
        }
        CpuMask::parse(s).map(Some)
    }

    pub(crate) fn cpus(&self) -> &[usize] {
        &self.0
    }
}

/// The CPUs the process may use: the online CPUs, within the process's
/// cgroup cpuset when one is readable. Not the calling or main thread's own
/// affinity: in an SPDK app DPDK has pinned the main thread to the main lcore
/// long before the first open, and the engine's threads must not inherit that
/// (SPDK's own `spdk_unaffinitize_thread` also starts from every CPU).
pub(crate) fn allowed_cpus() -> Vec<usize> {
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|l| CpuMask::parse_list_unchecked(l.trim()))
        .unwrap_or_else(|| {
            // SAFETY: sysconf has no preconditions.
            let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
            (0..n.max(1) as usize).collect()
        });
    match cgroup_cpus() {
        Some(c) => {
            let both: Vec<usize> = online.iter().copied().filter(|x| c.contains(x)).collect();
            if both.is_empty() {
                online
            } else {
                both
            }
        }
        None => online,
    }
}

/// The effective cpuset of this process's cgroup (cgroup v2), if readable.
fn cgroup_cpus() -> Option<Vec<usize>> {
    let cg = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cg.lines().find_map(|l| l.strip_prefix("0::"))?;
    let f = format!("/sys/fs/cgroup{}/cpuset.cpus.effective", path.trim_end());
    let list = std::fs::read_to_string(f).ok()?;
    CpuMask::parse_list_unchecked(list.trim())
}

impl CpuMask {
    fn parse_list_unchecked(s: &str) -> Option<Vec<usize>> {
        let mut v = Vec::new();
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
            v.extend(a..=b.min(libc::CPU_SETSIZE as usize - 1));
        }
        (!v.is_empty()).then_some(v)
    }
}

/// Set the current thread's affinity: to `mask`, or to every CPU the process
/// may use when there is none.
pub(crate) fn apply_to_current_thread(mask: Option<&CpuMask>) -> Result<(), Error> {
    let cpus = match mask {
        Some(m) => m.cpus().to_vec(),
        None => allowed_cpus(),
    };
    // SAFETY: a zeroed cpu_set_t is valid; every CPU number is below CPU_SETSIZE.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in &cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(Error::InvalidArgument(format!(
                "cannot run the engine's threads on CPUs {cpus:?}: {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_cpus_do_not_follow_the_main_threads_pinning() {
        // An SPDK app pins its main thread to the main lcore before the first
        // open; the engine's idea of "every CPU" must not shrink with it.
        let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) } as usize;
        let size = std::mem::size_of::<libc::cpu_set_t>();
        unsafe {
            let pid = libc::getpid(); // the main thread's tid
            let mut saved: libc::cpu_set_t = std::mem::zeroed();
            assert_eq!(libc::sched_getaffinity(pid, size, &mut saved), 0);
            let mut one: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(0, &mut one);
            assert_eq!(libc::sched_setaffinity(pid, size, &one), 0);
            let got = allowed_cpus();
            libc::sched_setaffinity(pid, size, &saved);
            assert_eq!(got.len(), online, "{got:?}");
        }
    }

    #[test]
    fn masks_and_lists_parse() {
        assert_eq!(CpuMask::parse("0x1").unwrap().cpus(), &[0]);
        assert_eq!(CpuMask::parse("1").unwrap().cpus(), &[0]);
        assert_eq!(CpuMask::parse("[0]").unwrap().cpus(), &[0]);
        assert_eq!(CpuMask::parse("0-0").unwrap().cpus(), &[0]);
        for bad in ["", "0x", "zz", "[a]", "1-0", "0x0", "[]", "99999"] {
            let e = CpuMask::parse(bad).unwrap_err().to_string();
            assert!(e.contains("cpumask"), "{bad}: {e}");
        }
        // A CPU the process may not use.
        let e = CpuMask::parse("[1000]").unwrap_err().to_string();
        assert!(e.contains("may not use"), "{e}");
    }
}
