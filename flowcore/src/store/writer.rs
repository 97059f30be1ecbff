//! The writer thread of a store that commits in batches (SQLite), and what it tells runs about
//! how the store is doing.
//!
//! The writer takes everything that arrived since its last commit and commits it in one
//! transaction (group commit). A batch that fails to commit (disk full, a lock held by another
//! process, a file gone read-only) is never dropped: the writer keeps it and tries again with
//! backoff, taking nothing new meanwhile, so the backlog grows and new task runs wait
//! (backpressure). Only once the store has failed for longer than its write timeout do runs stop
//! waiting: they go on, their records wait in memory, and every flow run that ends says in its
//! record and summary that it was not recorded. Dropping a batch would leave orphans and gaps
//! in the file (a task run without its flow run, a history starting at seq 2); keeping it
//! keeps the file consistent, whatever the order in which space comes back.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use tokio::sync::Notify;

use crate::clock::Timestamp;
use crate::store::StoreError;
use crate::store::backend::Backend;
use crate::store::event::Event;
use crate::store::process::{self, ProcessInfo};
use crate::store::retention::{Pruner, Retention};

/// Events the writer commits in one transaction at most.
const MAX_BATCH: usize = 50_000;

/// The room the writer keeps for a batch between commits.
const BATCH_CAPACITY: usize = 1024;

/// How long a lock held by another process is waited out before the wait is logged: other
/// processes' commits take milliseconds, a long crash marking or a backup seconds.
const BUSY_QUIET: Duration = Duration::from_secs(10);

/// How long runs wait for a store that cannot commit before they go on without it, unless
/// [`Store::write_timeout`](crate::Store::write_timeout) says otherwise.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether the store's writer is committing, for the runs that wait on it.
pub(crate) struct Health {
    /// Since when, and why, nothing commits; `None` while commits succeed.
    failing: Mutex<Option<(Instant, StoreError)>>,
    /// Set once the store has failed for longer than `patience`: runs stop waiting for it.
    unavailable: AtomicBool,
    /// The write timeout, in milliseconds.
    patience: AtomicU64,
    /// Notified when the store becomes unavailable, for flushes waiting on a commit.
    gave_up: Notify,
    /// Set once another process took this one for dead: its writes are refused for good.
    fenced: AtomicBool,
    /// Notified then, for a serving process, which gives up its runs.
    on_fenced: Notify,
}

impl Health {
    pub(crate) fn new() -> Self {
        Health {
            failing: Mutex::new(None),
            unavailable: AtomicBool::new(false),
            patience: AtomicU64::new(WRITE_TIMEOUT.as_millis() as u64),
            gave_up: Notify::new(),
            fenced: AtomicBool::new(false),
            on_fenced: Notify::new(),
        }
    }

    /// Whether another process took this one for dead.
    pub(crate) fn is_fenced(&self) -> bool {
        self.fenced.load(Ordering::Acquire)
    }

    /// Waits until another process takes this one for dead (registered before `is_fenced` is
    /// looked at again).
    pub(crate) fn fenced(&self) -> tokio::sync::futures::Notified<'_> {
        self.on_fenced.notified()
    }

    /// The store refused a write because another process took this one for dead: runs stop
    /// waiting for it at once, and say they were not recorded. Returns whether this is the
    /// first time.
    fn fence(&self, error: StoreError) -> bool {
        *self.failing.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), error));
        self.unavailable.store(true, Ordering::Release);
        let first = !self.fenced.swap(true, Ordering::AcqRel);
        if first {
            self.gave_up.notify_waiters();
            self.on_fenced.notify_waiters();
        }
        first
    }

    pub(crate) fn set_patience(&self, patience: Duration) {
        let millis = u64::try_from(patience.as_millis()).unwrap_or(u64::MAX);
        self.patience.store(millis, Ordering::Relaxed);
    }

    /// Whether the last commit failed (or another process took this one for dead).
    pub(crate) fn is_failing(&self) -> bool {
        self.failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Whether runs have stopped waiting for the store: one atomic load, for the task-call
    /// path.
    pub(crate) fn is_unavailable(&self) -> bool {
        self.unavailable.load(Ordering::Acquire)
    }

    /// The error a flush gets once the store is unavailable; `store` names the store, asked
    /// only then (it is asked at every flow run's end, nearly always of a healthy store).
    pub(crate) fn unavailable(&self, store: impl FnOnce() -> String) -> Option<StoreError> {
        if !self.is_unavailable() {
            return None;
        }
        let failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        let (since, cause) = failing.as_ref()?;
        Some(StoreError::Unavailable {
            store: store(),
            seconds: since.elapsed().as_secs(),
            cause: Box::new(cause.clone()),
        })
    }

    /// Waits until the store becomes unavailable (registered before `is_unavailable` is
    /// looked at again, so that the change is not missed).
    pub(crate) fn gave_up(&self) -> tokio::sync::futures::Notified<'_> {
        self.gave_up.notified()
    }

    /// A commit failed with `error`; returns how long the store has been failing and whether
    /// this failure made it unavailable.
    fn failed(&self, error: StoreError) -> (Duration, bool) {
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        let since = match &*failing {
            Some((since, _)) => *since,
            None => Instant::now(),
        };
        *failing = Some((since, error));
        drop(failing);
        let failed_for = since.elapsed();
        let patience = Duration::from_millis(self.patience.load(Ordering::Relaxed));
        let gave_up = failed_for >= patience && !self.unavailable.swap(true, Ordering::AcqRel);
        if gave_up {
            self.gave_up.notify_waiters();
        }
        (failed_for, gave_up)
    }

    /// A commit succeeded; returns how long the store had been failing, if it had.
    fn recovered(&self) -> Option<Duration> {
        if self.is_fenced() {
            return None;
        }
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        let (since, _) = failing.take()?;
        self.unavailable.store(false, Ordering::Release);
        Some(since.elapsed())
    }
}

/// The writer thread: takes everything that arrived, commits it in one transaction, answers
/// the flushes, and records a heartbeat every few seconds.
pub(crate) struct Writer {
    pub backend: Arc<dyn Backend>,
    pub receiver: Receiver<Event>,
    /// Notified after each commit, and when the store becomes unavailable: for runs waiting
    /// on a backlog.
    pub committed: Arc<Notify>,
    pub health: Arc<Health>,
    pub process: ProcessInfo,
    /// How long the store keeps runs that ended: passes of deletions between batches.
    pub retention: Arc<Retention>,
}

impl Writer {
    pub(crate) fn run(self) {
        let mut batch = Vec::with_capacity(BATCH_CAPACITY);
        let mut last_heartbeat = Instant::now();
        let mut pruner = Pruner::default();
        let mut retired = false;
        loop {
            match self.receiver.recv_timeout(process::heartbeat()) {
                Ok(event) => batch.push(event),
                Err(RecvTimeoutError::Timeout) => {}
                // Every handle of the store was dropped, and everything they sent is committed:
                // the store closes.
                Err(RecvTimeoutError::Disconnected) => {
                    self.retire();
                    self.checkpoint();
                    return;
                }
            }
            while batch.len() < MAX_BATCH {
                match self.receiver.try_recv() {
                    Ok(event) => batch.push(event),
                    Err(_) => break,
                }
            }
            if last_heartbeat.elapsed() >= process::heartbeat() {
                batch.push(Event::Heartbeat(Timestamp::wall_now()));
                last_heartbeat = Instant::now();
            }
            // The process exits, but another of its threads started a run meanwhile: until it
            // ends, the process is not, and a next process must be able to take it for dead.
            if retired
                && batch.iter().any(|e| {
                    matches!(
                        e,
                        Event::FlowRunCreated { .. } | Event::TaskRunCreated { .. }
                    )
                })
            {
                retired = !self.unretire();
            }
            self.commit(&batch);
            let mut checkpoint = false;
            let flushes: Vec<_> = batch
                .drain(..)
                .filter_map(|event| match event {
                    Event::Flush(done) => Some(done),
                    Event::Checkpoint(done) => {
                        checkpoint = true;
                        Some(done)
                    }
                    _ => None,
                })
                .collect();
            // Only the process's exit asks for a checkpoint: the process ends with it.
            if checkpoint {
                retired = self.retire();
                self.checkpoint();
            }
            // A burst may have grown the batch to MAX_BATCH events (megabytes): that memory is
            // given back before a flow run waiting on a flush returns.
            batch.shrink_to(BATCH_CAPACITY);
            for done in flushes {
                done.send(Ok(()));
            }
            self.committed.notify_waiters();
            // After the batch's waiters are answered: a pass holds the write lock a while.
            if !self.health.is_failing() {
                pruner.tick(&self.retention, &*self.backend, &self.process);
            }
        }
    }

    /// Records this process as ended, unless a run of it is unfinished, as the store closes or
    /// the process exits: the next process to open the store then has no dead process to look
    /// for ([`Backend::retire`]). A failure is only a cost for that next process, which marks
    /// what needs marking, so it is not said. Returns whether the process was recorded ended.
    fn retire(&self) -> bool {
        if self.health.is_failing() {
            return false;
        }
        self.backend
            .retire(&self.process, Timestamp::wall_now())
            .unwrap_or(false)
    }

    /// Takes back [`Writer::retire`]; returns whether it did.
    fn unretire(&self) -> bool {
        self.backend.unretire(&self.process).is_ok()
    }

    /// Moves the store's log into its file as the store closes or the process exits, so that the
    /// file alone holds every run: a copy of `flowcore.db` without its `-wal` misses none. A
    /// failure loses nothing (the runs are committed, in the log, which the next process to
    /// open the store reads), so it is said, not fatal; another process using the store at that
    /// moment is no failure at all, and is left quiet.
    fn checkpoint(&self) {
        // A store that cannot commit cannot copy its log either.
        if self.health.is_failing() {
            return;
        }
        match self.backend.checkpoint() {
            Ok(()) => {}
            Err(StoreError::Busy { .. }) => tracing::debug!(
                target: "flowcore",
                "The run store's log stays beside it: another process was using the store"
            ),
            Err(e) => eprintln!(
                "flowcore: could not move the run store's log into {} ({e}); its runs are committed, in the -wal file beside it",
                self.backend.describe()
            ),
        }
    }

    /// Commits the batch, trying again until it commits: a lock held by another process is
    /// waited out, and so is a full disk or a file that cannot be written, so that nothing a
    /// run recorded is lost while the process lives.
    fn commit(&self, batch: &[Event]) {
        let mut pause = Duration::from_millis(10);
        let mut next_warning = Duration::ZERO;
        loop {
            let error = match self.backend.write(batch, &self.process) {
                Ok(()) => {
                    if let Some(failed_for) = self.health.recovered() {
                        eprintln!(
                            "flowcore: the run store {} records again, after {}s; nothing was lost",
                            self.backend.describe(),
                            failed_for.as_secs()
                        );
                    }
                    return;
                }
                Err(e) => e,
            };
            // Refused for good: trying again would change nothing, and keeping the batch
            // would only hold up the runs.
            if let StoreError::Fenced { .. } = error {
                // Said before the runs and the serving loop are told: told, a process may end
                // at once, before this thread would have said why. Only this thread fences.
                if !self.health.is_fenced() {
                    eprintln!(
                        "flowcore: {error}; what this process records is dropped from now on"
                    );
                }
                if self.health.fence(error.clone()) {
                    self.committed.notify_waiters();
                }
                return;
            }
            let busy = matches!(error, StoreError::Busy { .. });
            let (failed_for, gave_up) = self.health.failed(error.clone());
            if gave_up {
                eprintln!(
                    "flowcore: {}",
                    self.health
                        .unavailable(|| self.backend.describe())
                        .unwrap_or(error)
                );
                self.committed.notify_waiters();
            } else if failed_for >= next_warning && !(busy && failed_for < BUSY_QUIET) {
                if busy {
                    tracing::warn!(target: "flowcore", "The run store has been locked by another process for {}s; still waiting", failed_for.as_secs());
                } else {
                    eprintln!(
                        "flowcore: could not record runs ({error}); keeping them and trying again"
                    );
                }
                next_warning = failed_for + Duration::from_secs(10);
            }
            std::thread::sleep(pause);
            let most = if busy { 500 } else { 2_000 };
            pause = (pause * 2).min(Duration::from_millis(most));
        }
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::state::{State, StateKind};
    use crate::store::event::Committed;
    use crate::store::sql::driver::Access;
    use crate::store::sqlite::SqliteBackend;

    /// The process's `ended_at`, read as another process would.
    fn ended_at(path: &std::path::Path, process: &ProcessInfo) -> Option<i64> {
        rusqlite::Connection::open(path)
            .unwrap()
            .query_row(
                "SELECT ended_at FROM processes WHERE id = ?1",
                [process.id.as_bytes().as_slice()],
                |r| r.get(0),
            )
            .unwrap()
    }

    /// Sends `event` with a flush after it, and waits for the commit.
    fn committed(events: &crossbeam_channel::Sender<Event>, event: Option<Event>) {
        events
            .send_timeout(
                event.unwrap_or(Event::Heartbeat(Timestamp::wall_now())),
                Duration::from_secs(5),
            )
            .unwrap();
        let (done, wait) = std::sync::mpsc::sync_channel(1);
        events
            .send(Event::Flush(Committed::Blocking(done)))
            .unwrap();
        wait.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
    }

    #[test]
    fn a_worker_that_retires_gives_up_what_it_served() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flowcore.db");
        let process = ProcessInfo::current();
        let backend = SqliteBackend::open(&path, Access::Write, &process).unwrap();
        backend.register_process(&process).unwrap();
        backend.serve_tasks(&["resize"], true, &process).unwrap();
        let workers = || -> i64 {
            rusqlite::Connection::open(&path)
                .unwrap()
                .query_row("SELECT COUNT(*) FROM task_workers", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(workers(), 1);
        assert!(backend.retire(&process, Timestamp::wall_now()).unwrap());
        assert!(ended_at(&path, &process).is_some());
        assert_eq!(workers(), 0, "no longer listed as serving `resize`");
    }

    #[test]
    fn a_process_is_recorded_ended_as_it_exits_and_not_ended_again_by_a_later_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flowcore.db");
        let process = ProcessInfo::current();
        let backend = Arc::new(SqliteBackend::open(&path, Access::Write, &process).unwrap());
        assert!(
            !backend.register_process(&process).unwrap(),
            "alone in the store"
        );
        let (events, receiver) = crossbeam_channel::unbounded();
        let writer = Writer {
            backend,
            receiver,
            committed: Arc::new(Notify::new()),
            health: Arc::new(Health::new()),
            process: process.clone(),
            retention: Arc::new(Retention::default()),
        };
        let thread = std::thread::spawn(move || writer.run());
        committed(&events, None);
        assert_eq!(ended_at(&path, &process), None, "running");

        // What the process's exit sends.
        let (done, wait) = std::sync::mpsc::sync_channel(1);
        events
            .send(Event::Checkpoint(Committed::Blocking(done)))
            .unwrap();
        wait.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
        assert!(ended_at(&path, &process).is_some(), "ended as it exits");

        // Another of its threads starts a flow run before the process is gone.
        let run = Event::FlowRunCreated {
            id: crate::names::new_run_id(),
            name: "late".into(),
            tags: Vec::new(),
            flow: Cow::Borrowed("f"),
            parent_id: None,
            parameters: None,
            call_seq: None,
            seq: 0,
            state: State::new(StateKind::Running, Timestamp::wall_now(), None),
            resumed: false,
            deployment: None,
        };
        committed(&events, Some(run));
        assert_eq!(
            ended_at(&path, &process),
            None,
            "a process with a run going on is not ended: if it dies, its run is marked Crashed"
        );

        // The store closes with that run unfinished: the process stays unended, for the next
        // process to mark the run Crashed.
        drop(events);
        thread.join().unwrap();
        assert_eq!(ended_at(&path, &process), None);
    }
}
