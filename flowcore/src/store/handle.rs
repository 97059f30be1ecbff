//! The run store's handle: where runs are recorded and read back, and the process's store.

use std::future::Future;
#[cfg(feature = "sqlite")]
use std::path::Path;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use crossbeam_channel::Sender;
use tokio::sync::Notify;
use tokio::sync::futures::OwnedNotified;
use uuid::Uuid;

use crate::clock::Timestamp;
use crate::record::FlowRunRecord;
use crate::store::backend::Backend;
use crate::store::delete::{Deleted, Prune};
use crate::store::deployments::{
    self, Change, DeploymentInfo, DeploymentRow, RequestedRun, Tick, WorkerInfo,
};
use crate::store::error::StoreError;
use crate::store::event::{Committed, Event};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use crate::store::exit::{self, AtExit};
use crate::store::limits::{LimitInfo, Slot};
use crate::store::memory::MemoryBackend;
#[cfg(feature = "postgres")]
use crate::store::postgres::PostgresBackend;
use crate::store::process::ProcessInfo;
use crate::store::query::{self, CacheEntry, FlowRunSummary, LogLine, ResumePoint, RunFilter};
use crate::store::retention::Retention;
use crate::store::scope::RunStore;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use crate::store::sql::driver::Access;
#[cfg(feature = "sqlite")]
use crate::store::sqlite::SqliteBackend;
use crate::store::task_requests::{ClaimedTask, DelayRequest, TaskResult};
use crate::store::writer::{Health, Writer};

/// Events waiting for the writer beyond which new runs wait before they start.
const BACKLOG: usize = 100_000;

/// A run store. Cloning is cheap: clones share the store and its writer.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Arc<dyn Backend>,
    /// To the writer thread; `None` for a backend that writes directly.
    events: Option<Sender<Event>>,
    /// Notified after each commit, for runs waiting on a backlog.
    committed: Arc<Notify>,
    /// Whether the writer commits, or has been failing (and for how long).
    health: Arc<Health>,
    /// Why runs are not recorded where the user expects them, for a memory store that stands in
    /// for a store that could not be used.
    stand_in_for: Option<String>,
    process: ProcessInfo,
    /// Counts the runs this process requested, so that its serving loops pick them up at
    /// once (runs other processes request are found by polling).
    requested: tokio::sync::watch::Sender<u64>,
    /// The tags with a store-wide limit, as last read, and when: task runs with tags look here
    /// rather than in the store.
    limited_tags: std::sync::Mutex<Option<(std::time::Instant, Arc<[String]>)>>,
    /// How long the store keeps runs that ended, which the writer applies.
    retention: Arc<Retention>,
}

/// How long the process's exit waits for a store's writer to commit what is queued, record the
/// process ended and (SQLite) move its log into its file: milliseconds as a rule; the wait is
/// for a lock held by another process, or a database server that is slow to answer.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
const EXIT_WAIT: Duration = Duration::from_secs(5);

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl AtExit for Inner {
    fn at_exit(&self) {
        let Some(events) = &self.events else {
            return;
        };
        // A writer that cannot commit is trying again with its batch: there is no log to tidy
        // until it can, and the process's exit does not wait for it.
        if self.health.is_failing() {
            return;
        }
        let (done, checkpointed) = std::sync::mpsc::sync_channel(1);
        if events
            .send(Event::Checkpoint(Committed::Blocking(done)))
            .is_ok()
        {
            let _ = checkpointed.recv_timeout(EXIT_WAIT);
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.describe())
    }
}

static GLOBAL: OnceLock<Store> = OnceLock::new();

impl Store {
    /// A store in this process's memory.
    pub fn memory() -> Store {
        Store::start(
            Arc::new(MemoryBackend::default()),
            ProcessInfo::current(),
            None,
        )
        .expect("a memory store cannot fail to start")
    }

    /// The store in the SQLite file at `path`, created if there is none, for recording runs.
    /// A file that is not a flowcore store, was written by a newer flowcore, or is damaged is
    /// refused with an error naming it, and left untouched; one of an older flowcore is
    /// upgraded. Opening marks Crashed the unfinished runs of processes that died, a thousand
    /// runs per transaction so that other processes' commits go on meanwhile; a file locked by
    /// another process is waited for, never given up. As the store closes or the process
    /// exits normally, the process is recorded as ended, unless it leaves a run unfinished.
    #[cfg(feature = "sqlite")]
    pub fn sqlite(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let process = ProcessInfo::current();
        let backend = SqliteBackend::open(path.as_ref(), Access::Write, &process)?;
        let store = Store::started(Arc::new(backend), process)?;
        let inner: std::sync::Weak<Inner> = Arc::downgrade(&store.inner);
        exit::checkpoint_at_exit(inner);
        Ok(store)
    }

    /// The store in the PostgreSQL database at `url`, for recording runs: one history for
    /// processes on many machines. `postgres://user:password@host:5432/db`, or over a Unix
    /// socket `postgres:///db?host=/run/postgresql`; the password never appears in a message
    /// or in [`Store::describe`]. An empty database gets flowcore's tables (ten processes
    /// starting at once make them once); one holding somebody else's tables or a newer
    /// flowcore's store is refused, untouched. Opening marks Crashed the unfinished runs of
    /// processes that died (on other hosts: whose heartbeat stopped 30 s ago).
    ///
    /// While the server is away (restarting, the network down), runs wait and the writer tries
    /// its batch again, up to the [write timeout](Store::write_timeout); nothing is lost or
    /// written twice. As the process exits normally, what is queued is committed (waiting up to
    /// 5 s) and the process recorded as ended, unless it leaves a run unfinished.
    #[cfg(feature = "postgres")]
    pub fn postgres(url: &str) -> Result<Store, StoreError> {
        let process = ProcessInfo::current();
        let backend = PostgresBackend::connect(url, Access::Write, &process)?;
        let store = Store::started(Arc::new(backend), process)?;
        let inner: std::sync::Weak<Inner> = Arc::downgrade(&store.inner);
        exit::checkpoint_at_exit(inner);
        Ok(store)
    }

    /// The store at `target`, for recording runs: `Store::postgres` (feature `postgres`) for a
    /// `postgres://` URL, [`Store::sqlite`] for a path. What `FLOWCORE_STORE` may hold.
    pub fn open(target: impl AsRef<std::ffi::OsStr>) -> Result<Store, StoreError> {
        let target = target.as_ref();
        #[cfg(feature = "postgres")]
        if let Some(url) = postgres_url(target) {
            return Store::postgres(url);
        }
        #[cfg(not(feature = "postgres"))]
        if let Some(url) = postgres_url(target) {
            return Err(without_postgres(url));
        }
        #[cfg(feature = "sqlite")]
        return Store::sqlite(Path::new(target));
        #[cfg(not(feature = "sqlite"))]
        return Err(StoreError::Open {
            path: PathBuf::from(target),
            detail: "this flowcore was built without the `sqlite` feature, so it keeps no file"
                .to_owned(),
        });
    }

    /// The store at `target` (a SQLite file's path, or a `postgres://` URL), for reading runs:
    /// what `flowcore` commands and the dashboard use. It never writes unless asked to
    /// ([`Store::request_run`], [`Store::pause_deployment`], [`Store::clear_cache`],
    /// [`Store::mark_crashed`], …), so a read-only file (or file system, or database role) can
    /// be read. The unfinished runs of processes that died are shown `Crashed`, as a writer will
    /// record them, without being written.
    ///
    /// Refused, untouched: a missing file ([`StoreError::NoStore`]: a mistyped path must not
    /// leave an empty store behind), an empty file or database, somebody else's, one of another
    /// flowcore's schema, and a damaged file (SQLite's `quick_check` at open).
    pub fn open_existing(target: impl AsRef<std::ffi::OsStr>) -> Result<Store, StoreError> {
        let target = target.as_ref();
        let process = ProcessInfo::current();
        #[cfg(feature = "postgres")]
        if let Some(url) = postgres_url(target) {
            let backend = PostgresBackend::connect(url, Access::Read, &process)?;
            return Store::start(Arc::new(backend), process, None);
        }
        #[cfg(not(feature = "postgres"))]
        if let Some(url) = postgres_url(target) {
            return Err(without_postgres(url));
        }
        #[cfg(feature = "sqlite")]
        {
            let backend = SqliteBackend::open(Path::new(target), Access::Read, &process)?;
            Store::start(Arc::new(backend), process, None)
        }
        #[cfg(not(feature = "sqlite"))]
        {
            let _ = process;
            Err(StoreError::NoStore {
                path: PathBuf::from(target),
            })
        }
    }

    /// The default store: [`Store::default_location`], opened for recording runs; in a build
    /// without the `sqlite` feature and no `FLOWCORE_STORE`, a memory store.
    pub fn open_default() -> Result<Store, StoreError> {
        if let Some(target) = std::env::var_os("FLOWCORE_STORE").filter(|t| !t.is_empty()) {
            return Store::open(target);
        }
        #[cfg(feature = "sqlite")]
        return Store::sqlite(Store::default_path()?);
        #[cfg(not(feature = "sqlite"))]
        return Ok(Store::memory());
    }

    /// Where the default store is: `FLOWCORE_STORE` when set (a `postgres://` URL or a SQLite
    /// file's path), else [`Store::default_path`]. What `flowcore` commands read without
    /// `--store`.
    pub fn default_location() -> Result<std::ffi::OsString, StoreError> {
        match std::env::var_os("FLOWCORE_STORE").filter(|t| !t.is_empty()) {
            Some(target) => Ok(target),
            None => Ok(Store::default_path()?.into_os_string()),
        }
    }

    /// Where the default SQLite store lives: `$FLOWCORE_HOME/flowcore.db`, with
    /// `FLOWCORE_HOME` defaulting to `$HOME/.flowcore`.
    pub fn default_path() -> Result<PathBuf, StoreError> {
        let home = match std::env::var_os("FLOWCORE_HOME").filter(|h| !h.is_empty()) {
            Some(home) => PathBuf::from(home),
            None => std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".flowcore"))
                .ok_or(StoreError::NoHome)?,
        };
        Ok(home.join("flowcore.db"))
    }

    /// A store opened for recording runs, started: its runs' process recorded, and the
    /// unfinished runs of processes that died marked Crashed.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    fn started(backend: Arc<dyn Backend>, process: ProcessInfo) -> Result<Store, StoreError> {
        let (store, others_unended) = Store::start_registered(backend, process, None)?;
        // Most starts find every other process recorded as ended (each records that as it
        // exits normally): then there is nothing to look for, and no reading connection to
        // open for it.
        if others_unended {
            store.mark_crashed()?;
        }
        Ok(store)
    }

    /// Makes this the store every run of this process records to. Call it before the first
    /// run; afterwards the store in use stays, and this returns an error saying which it is.
    pub fn install(self) -> Result<(), StoreError> {
        if self.inner.backend.opened_for_reading() {
            return Err(StoreError::OpenedForReading {
                store: self.describe(),
            });
        }
        let mut mine = Some(self);
        let current = GLOBAL.get_or_init(|| mine.take().expect("taken once"));
        match mine {
            None => Ok(()),
            Some(_) => Err(StoreError::AlreadyInstalled {
                current: current.describe(),
            }),
        }
    }

    /// The store runs started here record to: the one [in scope](Store::scope), else the
    /// process's ([`Store::install`]), opening the default one on first use. If that cannot be
    /// used at all, the error is printed and runs are kept in memory (and each run's summary
    /// says so), so that a bad file stops no flow.
    pub fn current() -> Store {
        (*RunStore::current()).clone()
    }

    /// The process's store, opened on first use (see [`Store::current`]).
    pub(crate) fn process() -> &'static Store {
        GLOBAL.get_or_init(|| {
            Store::open_default().unwrap_or_else(|e| {
                eprintln!("flowcore: {e}");
                eprintln!("flowcore: runs of this process are kept in memory only");
                Store::stand_in(format!("{}; kept in memory only", e.reason()))
            })
        })
    }

    /// The process's store, if it has one yet.
    pub(crate) fn process_if_open() -> Option<&'static Store> {
        GLOBAL.get()
    }

    fn start(
        backend: Arc<dyn Backend>,
        process: ProcessInfo,
        stand_in_for: Option<String>,
    ) -> Result<Store, StoreError> {
        Store::start_registered(backend, process, stand_in_for).map(|(store, _)| store)
    }

    /// [`Store::start`], also saying whether the store holds other processes not recorded as
    /// ended ([`Backend::register_process`]).
    fn start_registered(
        backend: Arc<dyn Backend>,
        process: ProcessInfo,
        stand_in_for: Option<String>,
    ) -> Result<(Store, bool), StoreError> {
        let others_unended = backend.register_process(&process)?;
        let committed = Arc::new(Notify::new());
        let health = Arc::new(Health::new());
        let retention = Arc::new(Retention::default());
        let events = if backend.writes_directly() || backend.opened_for_reading() {
            None
        } else {
            let (events, receiver) = crossbeam_channel::unbounded();
            // Only a store this process writes through applies a retention: reading never
            // writes.
            let retention = Arc::clone(&retention);
            retention.set(Retention::from_env().keep());
            let writer = Writer {
                retention,
                backend: Arc::clone(&backend),
                receiver,
                committed: Arc::clone(&committed),
                health: Arc::clone(&health),
                process: process.clone(),
            };
            let name = backend.describe();
            std::thread::Builder::new()
                .name("flowcore-store".to_owned())
                .spawn(move || writer.run())
                .map_err(|e| StoreError::Open {
                    path: PathBuf::from(name),
                    detail: format!("cannot start the writer thread: {e}"),
                })?;
            Some(events)
        };
        let store = Store {
            inner: Arc::new(Inner {
                backend,
                events,
                committed,
                health,
                stand_in_for,
                process,
                requested: tokio::sync::watch::Sender::new(0),
                limited_tags: std::sync::Mutex::new(None),
                retention,
            }),
        };
        Ok((store, others_unended))
    }

    /// Deletes, now and then, the runs that ended and were created longer ago than `keep`
    /// (`Duration::ZERO` keeps every run, the default): what `flowcore runs prune
    /// --older-than` does by hand, done by the process that records runs, so that the store
    /// does not only grow. `FLOWCORE_RETENTION=30d` (or `off`) in the environment sets it for
    /// every store a process opens to record runs; this overrides it.
    ///
    /// The store's writer applies it between batches, deleting at most 100 top-level flow
    /// runs (with everything under them, as [`Store::prune`] does) per transaction, pass after
    /// pass until nothing is left, and then once an hour. A store opened only for reading (by
    /// `flowcore` commands and the dashboard) never deletes; a memory store keeps a bounded
    /// history of its own and ignores it.
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[cfg(not(feature = "sqlite"))] fn main() {}
    /// # #[cfg(feature = "sqlite")]
    /// # fn main() -> Result<(), flowcore::StoreError> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = flowcore::Store::sqlite(dir.path().join("flowcore.db"))?
    ///     .retention(Duration::from_secs(30 * 86_400));
    /// store.install()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn retention(self, keep: Duration) -> Store {
        self.inner.retention.set(keep);
        // Wakes the writer, which applies a new retention at once.
        if let Some(events) = &self.inner.events {
            let _ = events.send(Event::Heartbeat(Timestamp::wall_now()));
        }
        self
    }

    /// How long runs wait for this store when it cannot commit (a full disk, a lock held by
    /// another process, a file gone read-only) before they go on without it; 60 s unless set
    /// ([`WRITE_TIMEOUT`](crate::store::WRITE_TIMEOUT)). While it fails, nothing is dropped: the writer keeps what it could
    /// not commit and tries again, and new task runs wait. After the timeout, runs go on,
    /// their records wait in memory (committed if the store recovers before the process
    /// ends), and each flow run that ends says in its record
    /// ([`FlowRunRecord::not_recorded`](crate::FlowRunRecord::not_recorded)) and summary that
    /// it was not recorded.
    ///
    /// ```
    /// use std::time::Duration;
    /// # #[cfg(not(feature = "sqlite"))] fn main() {}
    /// # #[cfg(feature = "sqlite")]
    /// # fn main() -> Result<(), flowcore::StoreError> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = flowcore::Store::sqlite(dir.path().join("flowcore.db"))?
    ///     .write_timeout(Duration::from_secs(10));
    /// # Ok(())
    /// # }
    /// ```
    pub fn write_timeout(self, timeout: Duration) -> Store {
        self.inner.health.set_patience(timeout);
        self
    }

    /// A memory store used because the store meant for this process could not be used at all.
    fn stand_in(reason: String) -> Store {
        Store::start(
            Arc::new(MemoryBackend::default()),
            ProcessInfo::current(),
            Some(reason),
        )
        .expect("a memory store cannot fail to start")
    }

    /// Why the runs of this store will not be found where the user expects them, if they will
    /// not: the store could not be used and runs are kept in memory, or it has committed
    /// nothing for longer than its write timeout. What a flow run's record and summary say.
    pub(crate) fn not_recording(&self) -> Option<String> {
        if let Some(reason) = &self.inner.stand_in_for {
            return Some(reason.clone());
        }
        self.inner
            .health
            .unavailable(|| self.describe())
            .map(|e| e.reason())
    }

    /// Completes once another process takes this one for dead (its writes are refused from
    /// then on); never for a store that only this process uses.
    pub(crate) async fn fenced(&self) {
        loop {
            let fenced = self.inner.health.fenced();
            if self.inner.health.is_fenced() {
                return;
            }
            fenced.await;
        }
    }

    /// Creates a SQLite store at `path` with only the first `version` schema migrations, as
    /// an older flowcore left it: for testing the migrations.
    #[doc(hidden)]
    #[cfg(feature = "sqlite")]
    pub fn create_sqlite_at_schema_version(path: &Path, version: usize) -> Result<(), StoreError> {
        SqliteBackend::create_at_version(path, version)
    }

    /// Where this store keeps its runs: a file path, a PostgreSQL URL without its password, or
    /// `:memory:`.
    pub fn describe(&self) -> String {
        self.inner.backend.describe()
    }

    /// How `target` (what [`Store::open`] takes) is shown without opening it: a path as it is,
    /// a PostgreSQL URL without its password.
    ///
    /// ```
    /// use flowcore::Store;
    ///
    /// assert_eq!(
    ///     Store::describe_location("postgres://flow:s3cret@db.internal/runs"),
    ///     "postgres://flow@db.internal/runs"
    /// );
    /// assert_eq!(Store::describe_location("runs/flowcore.db"), "runs/flowcore.db");
    /// ```
    pub fn describe_location(target: impl AsRef<std::ffi::OsStr>) -> String {
        let target = target.as_ref();
        match postgres_url(target) {
            Some(url) => crate::store::location::redact(url),
            None => std::path::Path::new(target).display().to_string(),
        }
    }

    /// Whether `target` (what [`Store::open`] takes) names a PostgreSQL database, a
    /// `postgres://` or `postgresql://` URL, rather than a SQLite file.
    pub fn is_postgres_location(target: impl AsRef<std::ffi::OsStr>) -> bool {
        postgres_url(target.as_ref()).is_some()
    }

    #[inline]
    pub(crate) fn send(&self, mut event: Event) {
        match &self.inner.events {
            // The writer only stops with the process, so the channel never closes.
            Some(events) => {
                let _ = events.send(event);
            }
            None if matches!(event, Event::Flush(_) | Event::Checkpoint(_)) => {
                if let Event::Flush(done) | Event::Checkpoint(done) = event {
                    done.send(Ok(()));
                }
            }
            None => {
                if let Err(e) = self
                    .inner
                    .backend
                    .write_now(&mut event, &self.inner.process)
                {
                    eprintln!("flowcore: could not record runs: {e}");
                }
            }
        }
    }

    /// Waits while the writer is far behind: the backpressure that keeps a flow of a million
    /// task runs from queueing a million records in memory.
    pub(crate) async fn throttle(&self) {
        let mut waiting = None;
        std::future::poll_fn(|cx| self.poll_room(cx, &mut waiting)).await;
    }

    /// [`Store::throttle`] as a poll, for a task call to check before it creates its run:
    /// ready when the writer's backlog is small; otherwise `cx` is woken at the next commit,
    /// `waiting` holding the registration between polls (allocated only while waiting).
    pub(crate) fn poll_room(
        &self,
        cx: &mut Context<'_>,
        waiting: &mut Option<Pin<Box<OwnedNotified>>>,
    ) -> Poll<()> {
        let Some(events) = &self.inner.events else {
            return Poll::Ready(()); // written as sent: nothing waits in between
        };
        loop {
            if events.len() <= BACKLOG || self.inner.health.is_unavailable() {
                *waiting = None;
                return Poll::Ready(());
            }
            let committed = waiting.get_or_insert_with(|| {
                Box::pin(Arc::clone(&self.inner.committed).notified_owned())
            });
            // Registered before the second look, so that a commit in between is not missed.
            committed.as_mut().enable();
            if events.len() <= BACKLOG || self.inner.health.is_unavailable() {
                *waiting = None;
                return Poll::Ready(());
            }
            std::task::ready!(committed.as_mut().poll(cx));
            *waiting = None;
        }
    }

    /// Waits until everything sent so far is committed (at once for a memory store). A store
    /// that cannot commit is waited for up to its [write timeout](Store::write_timeout); then
    /// this returns [`StoreError::Unavailable`], and what was sent stays queued.
    pub async fn flush(&self) -> Result<(), StoreError> {
        if self.inner.events.is_none() {
            return Ok(());
        }
        let (done, committed) = tokio::sync::oneshot::channel();
        self.send(Event::Flush(Committed::Async(done)));
        let health = &self.inner.health;
        let gave_up = health.gave_up();
        tokio::pin!(committed, gave_up);
        // Registered before the look, so that the store giving up in between is not missed.
        gave_up.as_mut().enable();
        if let Some(e) = health.unavailable(|| self.describe()) {
            return Err(e);
        }
        tokio::select! {
            biased;
            result = &mut committed => result.unwrap_or(Err(StoreError::WriterStopped)),
            () = &mut gave_up => match health.unavailable(|| self.describe()) {
                Some(e) => Err(e),
                None => committed.await.unwrap_or(Err(StoreError::WriterStopped)),
            },
        }
    }

    /// Whether runs recorded here outlive the process (a file, not memory).
    pub(crate) fn persists(&self) -> bool {
        self.inner.events.is_some()
    }

    /// [`Store::flush`] for a thread that may block, waiting at most `wait` (and no longer
    /// than the store's write timeout when it cannot commit).
    pub(crate) fn flush_blocking(&self, wait: Duration) -> Result<(), StoreError> {
        if self.inner.events.is_none() {
            return Ok(());
        }
        let (done, committed) = std::sync::mpsc::sync_channel(1);
        self.send(Event::Flush(Committed::Blocking(done)));
        // `None`: no deadline but the store's own write timeout.
        let deadline = std::time::Instant::now().checked_add(wait);
        loop {
            // In slices, to notice the store giving up meanwhile.
            let slice = deadline
                .map_or(Duration::MAX, |d| {
                    d.saturating_duration_since(std::time::Instant::now())
                })
                .min(Duration::from_millis(100));
            match committed.recv_timeout(slice) {
                Ok(result) => return result,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(StoreError::WriterStopped);
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            }
            if let Some(e) = self.inner.health.unavailable(|| self.describe()) {
                return Err(e);
            }
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                return Err(StoreError::Busy {
                    path: PathBuf::from(self.describe()),
                });
            }
        }
    }

    /// Waits until everything sent so far is committed, on the blocking pool: while a blocking
    /// task runs, a paused tokio clock does not jump ahead, so a test's timeout around a flow
    /// call is not spent waiting for the writer thread.
    pub(crate) async fn flush_off_runtime(&self) -> Result<(), StoreError> {
        if self.inner.events.is_none() {
            return Ok(());
        }
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.flush_blocking(Duration::MAX))
            .await
            .unwrap_or(Err(StoreError::WriterStopped))
    }

    /// Ends every unfinished run of this process `Cancelled` with `message`, and records the
    /// process as ended: for a process about to exit on a signal. Returns how many it ended.
    pub(crate) fn end_process_runs(&self, message: &str) -> Result<usize, StoreError> {
        self.inner.backend.end_process(
            &self.inner.process,
            crate::state::StateKind::Cancelled,
            message,
            Timestamp::wall_now(),
        )
    }

    /// Marks Crashed the unfinished runs of processes that died; returns how many. Opening a
    /// store for recording runs does this; reading never does (a reader shows such runs
    /// Crashed without writing it).
    ///
    /// The `on_crashed` hooks this process knows fire for each run marked (see
    /// [`RunHooks::on_crashed`](crate::RunHooks::on_crashed)).
    pub fn mark_crashed(&self) -> Result<usize, StoreError> {
        let marked = self
            .inner
            .backend
            .mark_crashed(&self.inner.process, Timestamp::wall_now())?;
        crate::crash_hooks::fire(&marked);
        Ok(marked.len())
    }

    /// [`Store::mark_crashed`], off the runtime's threads when the store's calls block.
    pub(crate) async fn mark_crashed_off_thread(&self) -> Result<usize, StoreError> {
        if !self.inner.backend.reads_block() {
            return self.mark_crashed();
        }
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.mark_crashed())
            .await
            .unwrap_or(Err(StoreError::WriterStopped))
    }

    /// Cancels a deployment's flow run from outside, naming who asks (`by` goes into its
    /// states: "cancelled by ada@build"), like Prefect's `prefect flow-run cancel`.
    ///
    /// A run that has not started (`Scheduled`), or whose process is gone, ends `Cancelled`
    /// at once. A run going on is marked `Cancelling`: the process serving it notices within
    /// about a second (at once when it is this process), drops the run's future, so that its
    /// task runs end `Cancelled`, and the run ends `Cancelled` with who asked. A run that ended
    /// already, a subflow run (cancel its parent) and a run a program awaits itself (not a
    /// deployment's: it must produce the flow's output) are refused with the reason.
    ///
    /// `run` is a flow run's name (the newest of that name) or id.
    pub fn cancel_run(&self, run: &str, by: &str) -> Result<crate::CancelOutcome, StoreError> {
        let id = self.find_flow_run(run)?;
        let outcome =
            self.inner
                .backend
                .cancel_run(&self.inner.process, id, by, Timestamp::wall_now())?;
        if outcome == crate::CancelOutcome::Cancelling && crate::cancel::is_running_here(id) {
            let state = crate::State::new(
                crate::StateKind::Cancelling,
                Timestamp::now(),
                Some(crate::cancel::cancelling_message(by)),
            );
            crate::cancel::request(
                id,
                crate::cancel::CancelRequest {
                    state,
                    by: by.to_owned(),
                },
            );
        } else if outcome == crate::CancelOutcome::Cancelled {
            // Claimed here but not started yet: it must not start.
            crate::cancel::forbid_start(id);
        }
        Ok(outcome)
    }

    /// The runs of this process asked to be cancelled: each is dropped if it is going on here,
    /// else recorded `Cancelled` and kept from starting. Called by the poll of a serving
    /// process.
    pub(crate) async fn take_cancel_requests(&self) -> Result<(), StoreError> {
        let store = self.clone();
        let work = move || -> Result<(), StoreError> {
            let requests = store.inner.backend.cancel_requests(&store.inner.process)?;
            for (id, state) in requests {
                let by = crate::cancel::requester(&state);
                let request = crate::cancel::CancelRequest {
                    state,
                    by: by.clone(),
                };
                if !crate::cancel::request(id, request) {
                    let message = format!(
                        "{} before it started",
                        crate::cancel::cancelled_message(&by)
                    );
                    store
                        .inner
                        .backend
                        .end_cancelled(id, &message, Timestamp::wall_now())?;
                }
            }
            Ok(())
        };
        if !self.inner.backend.reads_block() {
            return work();
        }
        tokio::task::spawn_blocking(work)
            .await
            .unwrap_or(Err(StoreError::WriterStopped))
    }

    /// Gives input to the paused flow run `run` (a name or id), for its `pause::<T>` to take:
    /// JSON that must deserialize into `T`. The run's process takes it within a quarter of a
    /// second; if it does not fit `T`, it is refused with the reason ([`Store::input_request`]
    /// says it) and the run stays paused. `by` says who gave it, in the run's states.
    pub fn give_input(&self, run: &str, input: &str, by: &str) -> Result<Uuid, StoreError> {
        let id = self.find_flow_run(run)?;
        let row = self.inner.backend.flow_row(id)?;
        let name = row
            .as_ref()
            .map_or_else(|| run.to_owned(), |r| r.name.clone());
        let paused = row
            .as_ref()
            .is_some_and(|r| r.state == crate::StateKind::Paused);
        let not_paused = |reason: String| StoreError::NotPaused {
            name: name.clone(),
            reason,
        };
        if !paused {
            let state = row.map_or_else(|| "unknown".to_owned(), |r| r.state.to_string());
            return Err(not_paused(format!("it is {state}, not Paused")));
        }
        if let Err(e) = serde_json::from_str::<serde_json::Value>(input) {
            return Err(StoreError::BadParameter(format!(
                "the input is not JSON: {e}"
            )));
        }
        if !self.inner.backend.give_input(id, input, by)? {
            return Err(not_paused("it waits for no input".to_owned()));
        }
        Ok(id)
    }

    /// What paused flow run `run` asks (a name or id): its question, the answer's JSON schema,
    /// input given and not taken yet, and why the last was refused.
    pub fn input_request(
        &self,
        run: &str,
    ) -> Result<Option<crate::pause::InputRequest>, StoreError> {
        let id = self.find_flow_run(run)?;
        self.inner.backend.input_request(id, None)
    }

    /// What flow run `run` asked at its pause `pause`, with the input given so far.
    pub(crate) async fn input_at(
        &self,
        run: Uuid,
        pause: u32,
    ) -> Result<Option<crate::pause::InputRequest>, StoreError> {
        let store = self.clone();
        let read = move || store.inner.backend.input_request(run, Some(pause));
        if !self.inner.backend.reads_block() {
            return read();
        }
        tokio::task::spawn_blocking(read)
            .await
            .unwrap_or(Err(StoreError::WriterStopped))
    }

    /// The run took the input of its pause `pause`, or refused it with the reason.
    pub(crate) async fn answer_input(
        &self,
        run: Uuid,
        pause: u32,
        refused: Option<&str>,
    ) -> Result<(), StoreError> {
        let store = self.clone();
        let refused = refused.map(str::to_owned);
        let write = move || {
            store
                .inner
                .backend
                .answer_input(run, pause, refused.as_deref(), Timestamp::wall_now())
        };
        if !self.inner.backend.reads_block() {
            return write();
        }
        tokio::task::spawn_blocking(write)
            .await
            .unwrap_or(Err(StoreError::WriterStopped))
    }

    /// The artifacts flow run `flow_run` made (its task runs' included), oldest first.
    pub fn artifacts_of(
        &self,
        flow_run: Uuid,
    ) -> Result<Vec<crate::artifact::Artifact>, StoreError> {
        self.inner
            .backend
            .artifacts(crate::artifact::ArtifactsOf::FlowRun(flow_run))
    }

    /// The latest artifact of each key, by key.
    pub fn latest_artifacts(&self) -> Result<Vec<crate::artifact::Artifact>, StoreError> {
        self.inner
            .backend
            .artifacts(crate::artifact::ArtifactsOf::LatestOfEachKey)
    }

    /// Every artifact of `key`, newest first.
    pub fn artifact_history(
        &self,
        key: &str,
    ) -> Result<Vec<crate::artifact::Artifact>, StoreError> {
        let mut all = self
            .inner
            .backend
            .artifacts(crate::artifact::ArtifactsOf::Key(key))?;
        all.reverse();
        Ok(all)
    }

    /// Flow runs, newest first.
    pub fn flow_runs(&self, filter: &RunFilter) -> Result<Vec<FlowRunSummary>, StoreError> {
        let backend = &*self.inner.backend;
        backend
            .flow_rows(filter)?
            .into_iter()
            .map(|row| query::summary(backend, row))
            .collect()
    }

    /// When each flow run (subflow runs included) created at or after `since` was created,
    /// and its current state, oldest first: what a dashboard counts and charts.
    pub fn flow_states_since(
        &self,
        since: Timestamp,
    ) -> Result<Vec<(Timestamp, crate::state::StateKind)>, StoreError> {
        self.inner.backend.flow_states_since(since)
    }

    /// One flow run without its task runs, as [`Store::flow_runs`] lists it.
    pub fn flow_run_summary(&self, id: Uuid) -> Result<Option<FlowRunSummary>, StoreError> {
        let backend = &*self.inner.backend;
        backend
            .flow_row(id)?
            .map(|row| query::summary(backend, row))
            .transpose()
    }

    /// The whole record of a flow run, with its task runs and subflow runs.
    pub fn flow_run(&self, id: Uuid) -> Result<Option<FlowRunRecord>, StoreError> {
        let backend = &*self.inner.backend;
        backend
            .flow_row(id)?
            .map(|row| query::flow_record(backend, row))
            .transpose()
    }

    /// The id of the flow run with this name (the newest, if names repeat) or this id.
    pub fn find_flow_run(&self, name_or_id: &str) -> Result<Uuid, StoreError> {
        let backend = &*self.inner.backend;
        let row = match Uuid::parse_str(name_or_id.trim()) {
            Ok(id) => backend.flow_row(id)?,
            Err(_) => backend.flow_row_named(name_or_id.trim())?,
        };
        row.map(|r| r.id).ok_or_else(|| StoreError::UnknownRun {
            run: name_or_id.to_owned(),
            store: self.describe(),
        })
    }

    /// The parameters a flow run was called with, as JSON, where they were serializable.
    pub fn parameters(&self, flow_run: Uuid) -> Result<Option<serde_json::Value>, StoreError> {
        Ok(self
            .inner
            .backend
            .flow_row(flow_run)?
            .and_then(|r| r.parameters)
            .and_then(|p| serde_json::from_str(&p).ok()))
    }

    /// The log lines of a flow run and of its task runs, in order.
    pub fn logs(&self, flow_run: Uuid) -> Result<Vec<LogLine>, StoreError> {
        let backend = &*self.inner.backend;
        let mut runs = vec![flow_run];
        runs.extend(backend.task_rows(flow_run)?.into_iter().map(|t| t.id));
        backend.logs(&runs)
    }

    /// Deletes these flow runs (what `flowcore runs delete` does), each with everything under
    /// it: its subflow runs, all their task runs, every state and log line of each, in one
    /// transaction, so that no row is left pointing at a run that is gone. Cached results,
    /// which belong to tasks, stay.
    ///
    /// All or nothing: an unknown id is [`StoreError::UnknownRun`]; a run among them (a
    /// subflow run, a task run) still going in a process that is alive is
    /// [`StoreError::RunGoing`]. The runs of a process that died (shown `Crashed`) may be
    /// deleted.
    pub fn delete_runs(&self, ids: &[Uuid]) -> Result<Deleted, StoreError> {
        self.commit_sent()?;
        self.inner.backend.delete_runs(ids, &self.inner.process)
    }

    /// Deletes the top-level flow runs that `prune` selects (created before a time, ended in
    /// one of some states), each with everything under it, as [`Store::delete_runs`] does, in
    /// one transaction: what `flowcore runs prune --older-than 30d` does. A run with anything
    /// under it still going in a live process is left. A state that is not final is refused
    /// ([`StoreError::BadParameter`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use flowcore::store::Prune;
    /// use flowcore::{StateKind, Store, Timestamp};
    ///
    /// # fn main() -> Result<(), flowcore::StoreError> {
    /// let store = Store::memory();
    /// let month_ago = Timestamp::from_micros(
    ///     Timestamp::wall_now().as_micros() - Duration::from_secs(30 * 86_400).as_micros() as i64,
    /// );
    /// let deleted = store.prune(&Prune::created_before(month_ago).in_states([StateKind::Completed]))?;
    /// assert_eq!((deleted.flow_runs, deleted.task_runs), (0, 0));
    /// # Ok(())
    /// # }
    /// ```
    pub fn prune(&self, prune: &Prune) -> Result<Deleted, StoreError> {
        if let Some(state) = prune.states.iter().find(|s| !s.is_final()) {
            let finals: Vec<&str> = crate::state::StateKind::ALL
                .iter()
                .filter(|s| s.is_final())
                .map(|s| s.as_str())
                .collect();
            return Err(StoreError::BadParameter(format!(
                "{state} is not a final state: a prune deletes runs that ended ({})",
                finals.join(", ")
            )));
        }
        self.commit_sent()?;
        self.inner.backend.prune(prune, &self.inner.process)
    }

    /// Commits what this process sent before a deletion, so that none of it (a last log line
    /// of a run) lands after the rows are gone.
    fn commit_sent(&self) -> Result<(), StoreError> {
        if self.inner.events.is_some() {
            self.flush_blocking(Duration::MAX)?;
        }
        Ok(())
    }

    /// Every cached result, expired ones included until they are next looked up.
    pub fn cache_entries(&self) -> Result<Vec<CacheEntry>, StoreError> {
        self.inner.backend.cache_entries()
    }

    /// Removes the cached results of the task named `task`, or all of them; returns how many.
    pub fn clear_cache(&self, task: Option<&str>) -> Result<usize, StoreError> {
        self.inner.backend.cache_clear(task)
    }

    /// Every deployment a process has served with this store, by name, with the process
    /// serving it now (if any), its next scheduled run and its newest runs.
    pub fn deployments(&self) -> Result<Vec<DeploymentInfo>, StoreError> {
        self.inner.backend.deployments()
    }

    /// Requests a run of the deployment `name` (what `flowcore deployment run` does): writes a
    /// flow run in state `Scheduled`, which the process serving the deployment picks up within
    /// a second and runs under the name returned here. `parameters` are `(name, value)` pairs
    /// as typed on a command line, on top of the deployment's own; each value is read as the
    /// JSON type of the parameter's default (see the README's "Deployments").
    ///
    /// An unknown deployment, an unknown parameter or a value of the wrong type is refused
    /// with an error saying what the deployment takes; nothing is written then.
    pub fn request_run(
        &self,
        name: &str,
        parameters: &[(String, String)],
    ) -> Result<RequestedRun, StoreError> {
        let all = self.inner.backend.deployment_definitions()?;
        let Some(deployment) = all.iter().find(|d| d.name == name) else {
            return Err(self.unknown_deployment(name, &all));
        };
        let parameters = deployments::parameters_with(name, &deployment.parameters, parameters)
            .map_err(StoreError::BadParameter)?;
        let run = RequestedRun {
            id: crate::names::new_run_id(),
            name: crate::names::flow_run_name(),
            deployment: deployment.name.clone(),
            flow: deployment.flow.clone(),
            parameters,
            requested_at: Timestamp::wall_now(),
            attempt: 1,
            history: Vec::new(),
            paused: false,
            prior: Default::default(),
        };
        self.inner.backend.request_run(&run)?;
        self.inner.requested.send_modify(|n| *n += 1);
        Ok(run)
    }

    /// Pauses the schedule of the deployment `name` (what `flowcore deployment pause` does):
    /// from the next scheduled time on, the processes serving it start no scheduled run, until
    /// [`Store::resume_deployment`]. Runs requested by hand ([`Store::request_run`]) still run,
    /// and runs under way go on. The pause is kept in the store: a process that starts serving
    /// the deployment later, or again, keeps it paused.
    ///
    /// Returns `false` if it was paused already (it stays paused since its first pause). An
    /// unknown deployment is [`StoreError::UnknownDeployment`], naming it.
    pub fn pause_deployment(&self, name: &str) -> Result<bool, StoreError> {
        self.set_paused(name, Some(Timestamp::wall_now()))
    }

    /// Resumes the schedule of the paused deployment `name` (what `flowcore deployment resume`
    /// does). The times that passed while it was paused are not made up: its next scheduled
    /// run is the next time due from now, as if it had been running all along.
    ///
    /// Returns `false` if it was not paused. An unknown deployment is
    /// [`StoreError::UnknownDeployment`], naming it.
    pub fn resume_deployment(&self, name: &str) -> Result<bool, StoreError> {
        self.set_paused(name, None)
    }

    fn set_paused(&self, name: &str, at: Option<Timestamp>) -> Result<bool, StoreError> {
        match self.inner.backend.set_paused(name, at)? {
            Some(change) => Ok(change == Change::Changed),
            None => {
                let all = self.inner.backend.deployment_definitions()?;
                Err(self.unknown_deployment(name, &all))
            }
        }
    }

    /// The error for a deployment `name` that is not among `all`, with the names it may have
    /// meant.
    fn unknown_deployment(&self, name: &str, all: &[DeploymentInfo]) -> StoreError {
        let known = if all.is_empty() {
            "no process has served a deployment with this store yet".to_owned()
        } else {
            let names: Vec<&str> = all.iter().map(|d| d.name.as_str()).collect();
            format!("deployments: {}", names.join(", "))
        };
        StoreError::UnknownDeployment {
            name: name.to_owned(),
            store: self.describe(),
            known,
        }
    }

    /// The processes serving deployments with this store (their workers), oldest first: what
    /// `flowcore worker ls` lists. A process that died is left out as soon as it is known dead
    /// (at once on this host; on another, once its last heartbeat is older than its lease: 30 s, or
    /// `FLOWCORE_LEASE`).
    pub fn workers(&self) -> Result<Vec<WorkerInfo>, StoreError> {
        self.inner.backend.workers()
    }

    /// The store-wide concurrency limits, by tag: at most `max` task runs with the tag run at
    /// once in all the processes that share the store (`flowcore limit ls`).
    pub fn limits(&self) -> Result<Vec<LimitInfo>, StoreError> {
        self.inner.backend.limits()
    }

    /// Allows at most `max` task runs tagged `tag` at once in every process sharing this store
    /// (`flowcore limit set TAG MAX`), beside any limit of [`flowcore::limits`](crate::limits)
    /// in a process. A task run with the tag waits `Pending` for a slot, and gives it back when
    /// it ends; a slot of a process that died is given back when it is found dead. Runs
    /// holding slots when the limit is lowered keep them until they end.
    pub fn set_limit(&self, tag: &str, max: u32) -> Result<(), StoreError> {
        if max == 0 {
            return Err(StoreError::BadParameter(format!(
                "the limit for tag '{tag}' must be at least 1; to lift a limit, remove it"
            )));
        }
        self.inner.backend.set_limit(tag, Some(max))?;
        self.forget_limited_tags();
        Ok(())
    }

    /// Lifts the store-wide limit of `tag` (`flowcore limit rm TAG`); returns whether there
    /// was one. Runs holding slots keep them until they end; no run waits for one any more.
    pub fn remove_limit(&self, tag: &str) -> Result<bool, StoreError> {
        let had = self.inner.backend.set_limit(tag, None)?;
        self.forget_limited_tags();
        Ok(had)
    }

    fn forget_limited_tags(&self) {
        *self
            .inner
            .limited_tags
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Which of `tags` have a store-wide limit: read from the store at most once a second
    /// (a limit set meanwhile holds from the next read on).
    pub(crate) async fn store_limited(
        &self,
        tags: &[std::borrow::Cow<'static, str>],
    ) -> Vec<String> {
        const FOR: std::time::Duration = std::time::Duration::from_secs(1);
        if !self.inner.backend.reads_block() {
            return Vec::new();
        }
        let cached = self
            .inner
            .limited_tags
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|(at, _)| at.elapsed() < FOR)
            .map(|(_, tags)| Arc::clone(tags));
        let limited = match cached {
            Some(limited) => limited,
            None => {
                let backend = Arc::clone(&self.inner.backend);
                let read = tokio::task::spawn_blocking(move || backend.limits())
                    .await
                    .unwrap_or(Err(StoreError::WriterStopped));
                let limited: Arc<[String]> = match read {
                    Ok(limits) => limits.into_iter().map(|l| l.tag).collect(),
                    // Run without store-wide limits rather than stop: the store's own trouble
                    // is said elsewhere (a run it cannot record says so).
                    Err(_) => Arc::from(Vec::new()),
                };
                *self
                    .inner
                    .limited_tags
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) =
                    Some((std::time::Instant::now(), Arc::clone(&limited)));
                limited
            }
        };
        let mut mine: Vec<String> = tags
            .iter()
            .filter(|t| limited.iter().any(|l| l == t.as_ref()))
            .map(|t| t.to_string())
            .collect();
        // In one order everywhere, so that two runs never hold one each of the other's.
        mine.sort();
        mine.dedup();
        mine
    }

    /// Takes a slot of `tag`'s store-wide limit for `task_run`, off the runtime's threads.
    pub(crate) async fn take_slot(
        &self,
        tag: &str,
        task_run: uuid::Uuid,
    ) -> Result<Slot, StoreError> {
        let store = self.clone();
        let tag = tag.to_owned();
        tokio::task::spawn_blocking(move || {
            store
                .inner
                .backend
                .take_slot(&tag, task_run, &store.inner.process)
        })
        .await
        .unwrap_or(Err(StoreError::WriterStopped))
    }

    /// Takes the scheduled time `at` of `deployment` for this process, unless another worker
    /// took it; off the runtime's threads when the store's calls block.
    pub(crate) async fn claim_tick(
        &self,
        deployment: &str,
        at: Timestamp,
    ) -> Result<Tick, StoreError> {
        if !self.inner.backend.reads_block() {
            return self
                .inner
                .backend
                .claim_tick(deployment, at, &self.inner.process);
        }
        let store = self.clone();
        let deployment = deployment.to_owned();
        tokio::task::spawn_blocking(move || {
            store
                .inner
                .backend
                .claim_tick(&deployment, at, &store.inner.process)
        })
        .await
        .unwrap_or(Err(StoreError::WriterStopped))
    }

    /// Calls the backend with this process, off the runtime's threads when its calls block.
    async fn off_runtime<T: Send + 'static>(
        &self,
        call: impl FnOnce(&dyn Backend, &ProcessInfo) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        if !self.inner.backend.reads_block() {
            return call(&*self.inner.backend, &self.inner.process);
        }
        let store = self.clone();
        tokio::task::spawn_blocking(move || call(&*store.inner.backend, &store.inner.process))
            .await
            .unwrap_or(Err(StoreError::WriterStopped))
    }

    /// Records that this process serves these background tasks, or no longer does.
    pub(crate) fn serve_tasks(&self, tasks: &[&str], serving: bool) -> Result<(), StoreError> {
        self.inner
            .backend
            .serve_tasks(tasks, serving, &self.inner.process)
    }

    /// Records delayed task runs `Scheduled`, for workers to claim.
    pub(crate) async fn delay_tasks(&self, runs: Vec<DelayRequest>) -> Result<(), StoreError> {
        self.off_runtime(move |backend, _| backend.delay_tasks(&runs))
            .await?;
        self.inner.requested.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Claims up to `limit` delayed runs of `tasks` for this process.
    pub(crate) async fn claim_tasks(
        &self,
        tasks: Arc<[&'static str]>,
        limit: usize,
    ) -> Result<Vec<ClaimedTask>, StoreError> {
        self.off_runtime(move |backend, me| backend.claim_tasks(&tasks, limit, me))
            .await
    }

    /// Where these delayed task runs are.
    pub(crate) async fn task_results(
        &self,
        ids: Arc<[Uuid]>,
    ) -> Result<Vec<TaskResult>, StoreError> {
        self.off_runtime(move |backend, _| backend.task_results(&ids))
            .await
    }

    /// Changes each time this process requests a run or delays task runs.
    pub(crate) fn requests_here(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.requested.subscribe()
    }

    /// Whether other processes can request runs (then serving polls for them).
    pub(crate) fn shared_with_other_processes(&self) -> bool {
        self.inner.backend.reads_block()
    }

    /// Records that this process serves `rows`; returns the names of those paused.
    pub(crate) fn serve_deployments(
        &self,
        rows: &[DeploymentRow],
    ) -> Result<Vec<String>, StoreError> {
        self.inner
            .backend
            .serve_deployments(rows, &self.inner.process)
    }

    pub(crate) fn unserve_deployments(&self, names: &[String]) -> Result<(), StoreError> {
        self.inner
            .backend
            .unserve_deployments(names, &self.inner.process)
    }

    /// Claims the requested runs of these deployments, off the runtime's threads when the
    /// store's calls block.
    pub(crate) async fn claim_requests(
        &self,
        deployments: Arc<[String]>,
    ) -> Result<Vec<RequestedRun>, StoreError> {
        if !self.inner.backend.reads_block() {
            return self
                .inner
                .backend
                .claim_requests(&deployments, &self.inner.process);
        }
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            store
                .inner
                .backend
                .claim_requests(&deployments, &store.inner.process)
        })
        .await
        .unwrap_or(Err(StoreError::WriterStopped))
    }

    /// A live cached value, read off the runtime's threads when the read may block.
    pub(crate) async fn cache_get(&self, key: &str, now: Timestamp) -> Option<String> {
        let quick = self.inner.backend.cache_get_without_waiting(key, now);
        let result = if let Some(result) = quick {
            result
        } else if self.inner.backend.reads_block() {
            let backend = Arc::clone(&self.inner.backend);
            let key = key.to_owned();
            tokio::task::spawn_blocking(move || backend.cache_get(&key, now))
                .await
                .unwrap_or(Err(StoreError::WriterStopped))
        } else {
            self.inner.backend.cache_get(key, now)
        };
        result.unwrap_or_else(|e| {
            tracing::warn!(target: "flowcore", "Cache lookup failed, running the task: {e}");
            None
        })
    }

    /// The flow run `id` as a point to resume from, if it ended in a way that can be resumed.
    pub(crate) fn resume_point(&self, id: Uuid) -> Result<ResumePoint, StoreError> {
        query::resume_point(&*self.inner.backend, id)
    }

    /// What flow run `id` did, by call position, off the runtime's threads when reads block.
    pub(crate) async fn prior_runs_async(
        &self,
        id: Uuid,
    ) -> Result<std::collections::BTreeMap<u32, query::PriorRun>, StoreError> {
        let store = self.clone();
        let read = move || query::prior_runs(&*store.inner.backend, id);
        if !self.inner.backend.reads_block() {
            return read();
        }
        tokio::task::spawn_blocking(read)
            .await
            .unwrap_or(Err(StoreError::WriterStopped))
    }

    /// As [`Store::resume_point`], off the runtime's threads when reads block.
    pub(crate) async fn resume_point_async(&self, id: Uuid) -> Result<ResumePoint, StoreError> {
        if !self.inner.backend.reads_block() {
            return self.resume_point(id);
        }
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.resume_point(id))
            .await
            .unwrap_or(Err(StoreError::WriterStopped))
    }

    /// The name of the flow run `id`, if the store has it.
    pub(crate) fn flow_run_name(&self, id: Uuid) -> Option<String> {
        self.inner
            .backend
            .flow_row(id)
            .ok()
            .flatten()
            .map(|r| r.name)
    }
}

/// `target` as a PostgreSQL URL, if it is one.
fn postgres_url(target: &std::ffi::OsStr) -> Option<&str> {
    target
        .to_str()
        .filter(|t| crate::store::location::is_postgres(t))
}

#[cfg(not(feature = "postgres"))]
fn without_postgres(url: &str) -> StoreError {
    StoreError::Open {
        path: PathBuf::from(crate::store::location::redact(url)),
        detail: "this flowcore was built without the `postgres` feature; add it (features = [\"postgres\"])".to_owned(),
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;

    fn log_line() -> Event {
        Event::Log {
            id: crate::names::new_run_id(),
            run_id: Uuid::nil(),
            at: Timestamp::from_micros(1),
            level: "INFO",
            message: "x".into(),
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn count_logs(conn: &rusqlite::Connection) -> i64 {
        conn.query_row("SELECT COUNT(*) FROM logs", [], |r| r.get(0))
            .unwrap()
    }

    /// Makes every commit that writes a log line fail, as a full disk would, until dropped.
    const REFUSE_LOGS: &str = "CREATE TRIGGER refuse BEFORE INSERT ON logs
        BEGIN SELECT RAISE(ABORT, 'injected write failure'); END;";

    #[test]
    fn a_batch_that_fails_to_commit_is_kept_and_retried_until_it_commits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flowcore.db");
        let store: &'static Store = Box::leak(Box::new(Store::sqlite(&path).unwrap()));
        let other = rusqlite::Connection::open(&path).unwrap();
        other.execute_batch(REFUSE_LOGS).unwrap();
        for _ in 0..10 {
            store.send(log_line());
        }
        // The writer has failed several times by now, and kept the batch each time.
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert_eq!(count_logs(&other), 0);
        assert_eq!(store.not_recording(), None, "within the write timeout");

        other.execute_batch("DROP TRIGGER refuse").unwrap();
        runtime().block_on(store.flush()).unwrap();
        assert_eq!(count_logs(&other), 10, "nothing was dropped");
    }

    #[test]
    fn past_its_write_timeout_a_failing_store_stops_holding_runs_back_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flowcore.db");
        let store = Store::sqlite(&path)
            .unwrap()
            .write_timeout(std::time::Duration::from_millis(200));
        let store: &'static Store = Box::leak(Box::new(store));
        let other = rusqlite::Connection::open(&path).unwrap();
        other.execute_batch(REFUSE_LOGS).unwrap();
        for _ in 0..=BACKLOG + 1 {
            store.send(log_line());
        }
        let rt = runtime();
        match rt.block_on(store.flush()) {
            Err(StoreError::Unavailable { cause, .. }) => {
                assert!(
                    cause.to_string().contains("injected write failure"),
                    "{cause}"
                );
            }
            other => panic!("expected the store to be unavailable, got {other:?}"),
        }
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(
            store.poll_room(&mut cx, &mut None).is_ready(),
            "runs go on although the backlog is full"
        );
        assert!(
            store
                .not_recording()
                .is_some_and(|why| why.contains("injected write failure"))
        );

        // Once the store can be written again, everything that waited is committed. Until the
        // writer's next try (backoff of up to 2 s), a flush still answers at once that it is not.
        other.execute_batch("DROP TRIGGER refuse").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while rt.block_on(store.flush()).is_err() {
            assert!(std::time::Instant::now() < deadline, "the store recovers");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(count_logs(&other), BACKLOG as i64 + 2);
        assert_eq!(store.not_recording(), None);
    }

    #[test]
    fn task_calls_wait_for_room_while_the_writer_is_far_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flowcore.db");
        let store: &'static Store = Box::leak(Box::new(Store::sqlite(&path).unwrap()));
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut waiting = None;
        assert!(store.poll_room(&mut cx, &mut waiting).is_ready());

        // Another process holds the file, so the writer cannot commit: the events pile up.
        let other = rusqlite::Connection::open(&path).unwrap();
        other.execute_batch("BEGIN EXCLUSIVE").unwrap();
        store.send(log_line()); // the writer takes this one and waits on the lock
        std::thread::sleep(std::time::Duration::from_millis(100));
        for _ in 0..=BACKLOG {
            store.send(log_line());
        }
        assert!(store.poll_room(&mut cx, &mut waiting).is_pending());
        assert!(waiting.is_some(), "registered for the next commit");

        // Once the lock is gone the writer catches up, and the wait ends.
        other.execute_batch("COMMIT").unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(30), store.throttle())
                .await
                .expect("the backlog drains once the writer can commit");
        });
        rt.block_on(store.flush()).unwrap();
        let logs: i64 = other
            .query_row("SELECT COUNT(*) FROM logs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(logs, BACKLOG as i64 + 2, "every event reached the file");
    }
}
