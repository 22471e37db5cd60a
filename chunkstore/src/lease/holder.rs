// SPDX-License-Identifier: Apache-2.0
//! Who holds a volume: the identity written into its lease, and whether a
//! holder on this machine is provably gone.
//!
//! Owns: reading this process's identity (host, boot id, pid namespace, pid,
//! start time) from /proc, and the "dead on this host" test.
//! Must never: call a holder dead unless the proof is local and certain (same
//! boot, same pid namespace, and no process with that pid and start time); a
//! holder on another machine is never judged here, only by its lease's age.

use serde::{Deserialize, Serialize};

/// The identity of a lease holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub host: String,
    /// /proc/sys/kernel/random/boot_id: tells a reboot from a live host.
    #[serde(default)]
    pub boot_id: String,
    /// The pid namespace (e.g. "pid:[4026531836]"): pids compare only within one.
    #[serde(default)]
    pub pidns: String,
    pub pid: u32,
    /// The process start time in clock ticks since boot (/proc/PID/stat field 22):
    /// tells a reused pid from the holder.
    #[serde(default)]
    pub start_ticks: u64,
    /// "spdk", "nbdkit", "ozbd", ...
    #[serde(default)]
    pub frontend: String,
    /// The front end's name for the volume (the bdev name, an export name).
    #[serde(default)]
    pub name: String,
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Field 22 (starttime) of /proc/PID/stat; None when there is no such process.
fn start_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

impl Holder {
    /// This process, opening a volume for `frontend` under `name`.
    pub fn me(frontend: &str, name: &str) -> Holder {
        Holder {
            host: read_trim("/proc/sys/kernel/hostname"),
            boot_id: read_trim("/proc/sys/kernel/random/boot_id"),
            pidns: std::fs::read_link("/proc/self/ns/pid")
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
            pid: std::process::id(),
            start_ticks: start_ticks("self").unwrap_or(0),
            frontend: frontend.to_string(),
            name: name.to_string(),
        }
    }

    /// Whether this holder is provably not running: it ran on this boot of
    /// this machine, in our pid namespace, and its process is gone (or its
    /// pid now belongs to a process that started at another time).
    pub fn is_dead_here(&self) -> bool {
        let me = Holder::me("", "");
        if self.boot_id.is_empty()
            || self.boot_id != me.boot_id
            || self.pidns.is_empty()
            || self.pidns != me.pidns
            || self.start_ticks == 0
        {
            return false;
        }
        match start_ticks(&self.pid.to_string()) {
            None => true,
            Some(t) => t != self.start_ticks,
        }
    }

    /// "spdk bdev 'ozone0', pid 1234 on host-a".
    pub fn describe(&self) -> String {
        let what = match (self.frontend.is_empty(), self.name.is_empty()) {
            (true, _) => "a process".to_string(),
            (false, true) => self.frontend.clone(),
            (false, false) => format!("{} '{}'", self.frontend, self.name),
        };
        format!("{what}, pid {} on {}", self.pid, self.host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_gone_pid_is_dead() {
        let me = Holder::me("test", "v");
        assert!(me.start_ticks > 0 && !me.boot_id.is_empty(), "{me:?}");
        assert!(!me.is_dead_here());
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let ticks = start_ticks(&pid.to_string());
        child.wait().unwrap();
        let gone = Holder {
            pid,
            start_ticks: ticks.unwrap_or(1),
            ..me.clone()
        };
        assert!(gone.is_dead_here());
        let elsewhere = Holder {
            boot_id: "another-boot".into(),
            ..gone.clone()
        };
        assert!(!elsewhere.is_dead_here(), "another boot is never judged");
        let reused = Holder {
            start_ticks: me.start_ticks + 1,
            ..me
        };
        assert!(reused.is_dead_here(), "same pid, other start time");
    }
}
