//! Which process runs what, and whether it is still alive: the basis of crash detection.

use std::sync::OnceLock;
use std::time::Duration;

use uuid::Uuid;

use crate::clock::Timestamp;
use crate::names::new_run_id;

/// [`lease`]'s default.
pub(crate) const LEASE: Duration = Duration::from_secs(30);

/// How long a process may go without a heartbeat reaching the store before another process
/// takes it for dead, when its death cannot be seen directly (it ran on another host): a
/// worker's lease on its runs. 30 s, or `FLOWCORE_LEASE` ("10s", at least 1 s), which every
/// process sharing a store should be given alike.
pub(crate) fn lease() -> Duration {
    static LEASE_SET: OnceLock<Duration> = OnceLock::new();
    *LEASE_SET.get_or_init(|| {
        let Some(text) = std::env::var_os("FLOWCORE_LEASE").filter(|t| !t.is_empty()) else {
            return LEASE;
        };
        match humantime::parse_duration(&text.to_string_lossy()) {
            Ok(lease) => lease.max(Duration::from_secs(1)),
            Err(e) => {
                eprintln!(
                    "flowcore: FLOWCORE_LEASE={} is not a duration ({e}); using {}",
                    text.to_string_lossy(),
                    humantime::format_duration(LEASE)
                );
                LEASE
            }
        }
    })
}

/// How often a process using a store records that it is alive: six times per [`lease`] (every
/// 5 s by default), so that a few late heartbeats never cost a live process its runs.
pub(crate) fn heartbeat() -> Duration {
    lease() / 6
}

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
            host: host_name(),
            start_ticks: start_ticks(pid),
            started_at: Timestamp::wall_now(),
        }
    }
}

/// The name this process records as its host: `FLOWCORE_HOST` if set (for hosts whose
/// containers share one hostname), else the hostname. Processes of one host name are judged
/// alive or dead by their pid; of another, by their heartbeat.
fn host_name() -> String {
    match std::env::var_os("FLOWCORE_HOST").filter(|h| !h.is_empty()) {
        Some(host) => host.to_string_lossy().into_owned(),
        None => gethostname::gethostname().to_string_lossy().into_owned(),
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
