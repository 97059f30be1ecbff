//! Automatic retention: a process that records runs deletes, now and then, the top-level flow
//! runs that ended longer ago than the store's retention ([`Store::retention`] or
//! `FLOWCORE_RETENTION=30d`), as `flowcore runs prune --older-than 30d` does by hand.
//!
//! The writer thread does it between batches, a pass of at most [`PER_PASS`] flow runs at a time
//! so that the write lock is never held long (issue 12's rule for crash marking), passes
//! following each other until nothing is left to delete and then once an hour. Several
//! processes may do it on one store: each deletion is a transaction of its own, and two that
//! meet are tried again by the store as any conflict is.
//!
//! [`Store::retention`]: crate::Store::retention

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::clock::Timestamp;
use crate::store::backend::Backend;
use crate::store::delete::Prune;
use crate::store::process::ProcessInfo;

/// Flow runs deleted in one pass at most (with everything under them).
pub(crate) const PER_PASS: usize = 100;

/// How long after a pass that left nothing to delete the next one comes.
const EVERY: Duration = Duration::from_secs(3600);

/// The environment variable that sets a process's retention: a duration (`30d`, `12h`), or
/// `off`.
pub(crate) const ENV: &str = "FLOWCORE_RETENTION";

/// How long a store keeps the runs that ended, shared by a store's handles and its writer.
#[derive(Debug, Default)]
pub(crate) struct Retention {
    /// In microseconds; 0 keeps every run.
    keep: AtomicU64,
}

impl Retention {
    /// The retention `FLOWCORE_RETENTION` asks for: none when unset or `off`; a value that is
    /// not a duration is said on stderr, with the fix, and keeps every run.
    pub(crate) fn from_env() -> Retention {
        let retention = Retention::default();
        let Some(text) = std::env::var_os(ENV).filter(|t| !t.is_empty()) else {
            return retention;
        };
        let text = text.to_string_lossy();
        if text.trim() == "off" {
            return retention;
        }
        match humantime::parse_duration(text.trim()) {
            Ok(keep) => retention.set(keep),
            Err(e) => eprintln!(
                "flowcore: {ENV}={} is not a duration ({e}); give one such as 30d or 12h, or \
                 off; runs are kept until deleted",
                crate::terminal::escape_controls(&text)
            ),
        }
        retention
    }

    /// Keeps the runs that ended for `keep`; zero keeps every run.
    pub(crate) fn set(&self, keep: Duration) {
        let micros = u64::try_from(keep.as_micros()).unwrap_or(u64::MAX);
        self.keep.store(micros, Ordering::Relaxed);
    }

    /// The retention set; zero keeps every run.
    pub(crate) fn keep(&self) -> Duration {
        Duration::from_micros(self.keep_micros())
    }

    fn keep_micros(&self) -> u64 {
        self.keep.load(Ordering::Relaxed)
    }
}

/// The writer's side: when the next pass is due.
#[derive(Debug)]
pub(crate) struct Pruner {
    /// The retention the last pass used: a new one is applied at once.
    applied: u64,
    next: Instant,
}

impl Default for Pruner {
    fn default() -> Self {
        Pruner {
            applied: 0,
            next: Instant::now(),
        }
    }
}

impl Pruner {
    /// Deletes a pass of runs past `retention` if one is due.
    pub(crate) fn tick(&mut self, retention: &Retention, backend: &dyn Backend, me: &ProcessInfo) {
        let keep = retention.keep_micros();
        if keep == 0 {
            self.applied = 0;
            return;
        }
        let now = Instant::now();
        if keep != self.applied {
            self.applied = keep;
            self.next = now;
        }
        if now < self.next {
            return;
        }
        let cut = Timestamp::wall_now()
            .as_micros()
            .saturating_sub(i64::try_from(keep).unwrap_or(i64::MAX));
        let prune = Prune::created_before(Timestamp::from_micros(cut)).at_most(PER_PASS);
        let shown = humantime::format_duration(Duration::from_micros(keep));
        match backend.prune(&prune, me) {
            Ok(deleted) => {
                if deleted.flow_runs > 0 {
                    tracing::info!(
                        target: "flowcore::store",
                        "retention: deleted {} flow runs and {} task runs that ended, created more than {shown} ago",
                        deleted.flow_runs,
                        deleted.task_runs
                    );
                }
                // A full pass may have left more: the next one comes after the next batch.
                self.next = if deleted.flow_runs >= PER_PASS {
                    now
                } else {
                    now + EVERY
                };
            }
            Err(e) => {
                eprintln!(
                    "flowcore: retention: could not delete the runs created more than {shown} ago \
                     ({e}); trying again in an hour"
                );
                self.next = now + EVERY;
            }
        }
    }
}
