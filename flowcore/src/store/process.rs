//! Which process runs what, and whether it is still alive: the basis of crash detection.

use std::time::Duration;

use uuid::Uuid;

use crate::clock::Timestamp;
use crate::names::new_run_id;

/// How often a process using a store records that it is alive.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(5);

/// A process whose last heartbeat is older than this is taken for dead, when its death cannot
/// be seen directly (it ran on another host).
pub(crate) const STALE: Duration = Duration::from_secs(30);

/// This process, as the store records it.
#[derive(Clone, Debug)]
pub(crate) struct ProcessInfo {
    pub id: Uuid,
    pub pid: u32,
    pub host: String,
    /// The kernel's start time of the process, so a reused pid is not taken for it.
    pub start_ticks: Option<u64>,
    pub started_at: Timestamp,
}

impl ProcessInfo {
    pub(crate) fn current() -> Self {
        let pid = std::process::id();
        ProcessInfo {
            id: new_run_id(),
            pid,
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            start_ticks: start_ticks(pid),
            started_at: Timestamp::wall_now(),
        }
    }
}

/// Whether the process `pid` that started at `ticks` still runs on this host: `None` when
/// this system cannot tell (no /proc).
pub(crate) fn alive(pid: u32, ticks: Option<u64>) -> Option<bool> {
    if !std::path::Path::new("/proc/self/stat").exists() {
        return None;
    }
    match (stat(pid), ticks) {
        (None, _) => Some(false),
        // Killed or exited, but not yet waited for by its parent: dead all the same.
        (Some(('Z' | 'X' | 'x', _)), _) => Some(false),
        (Some((_, now)), Some(then)) => Some(now == then),
        (Some(_), None) => Some(true),
    }
}

/// Field 22 of /proc/PID/stat: when the process started, in clock ticks after boot.
fn start_ticks(pid: u32) -> Option<u64> {
    stat(pid).map(|(_, ticks)| ticks)
}

/// Fields 3 and 22 of /proc/PID/stat: the process's state (`R`, `S`, `Z` for a zombie, …)
/// and when it started, in clock ticks after boot.
fn stat(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ticks = fields.nth(18)?.parse().ok()?;
    Some((state, ticks))
}

/// What a crashed run's message says about its process.
pub(crate) fn crash_message(pid: i64, host: &str, heartbeat: Timestamp) -> String {
    format!(
        "the process running it (pid {pid} on {host}) stopped; its last heartbeat was at {heartbeat}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not() {
        let me = ProcessInfo::current();
        if alive(me.pid, me.start_ticks).is_none() {
            return; // no /proc on this system
        }
        assert_eq!(alive(me.pid, me.start_ticks), Some(true));
        assert_eq!(alive(me.pid, me.start_ticks.map(|t| t + 1)), Some(false));
        assert_eq!(alive(u32::MAX - 1, None), Some(false));
    }
}
