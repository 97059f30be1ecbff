//! A store in a SQLite file: WAL mode, one writer connection for the group commits, a few
//! reader connections, and a busy timeout so that several processes can share the file.
//!
//! A store opened for reading ([`Access::Read`]: the CLI, the dashboard) never writes to the
//! file unless asked to (a requested run, a cleared cache), and shows the unfinished runs of
//! processes that died as Crashed without writing that down: a writer marks them.

mod batch;
mod crash;
mod open;
mod rows;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use uuid::Uuid;

use crate::clock::Timestamp;
use crate::state::{State, StateKind};
use crate::store::StoreError;
use crate::store::backend::Backend;
use crate::store::deployments::{
    DeploymentInfo, DeploymentRow, DeploymentRun, LAST_RUNS, REQUESTED, RequestedRun, ServedBy,
};
use crate::store::event::{Event, FlowRow, TaskRow};
use crate::store::process::ProcessInfo;
use crate::store::query::{CacheEntry, LogLine, RunFilter};
use crate::store::schema::{APPLICATION_ID, MIGRATIONS};
use batch::write_batch;
use crash::{CrashView, DeadSet, RUNS_PER_TRANSACTION, Table};
use open::{BUSY_TIMEOUT, connect, patiently};
use rows::{FLOW_COLUMNS, TASK_COLUMNS, flow_row, key, kind_at, opt_ts, task_row, ts, uuid_at};

pub(crate) use open::Access;

/// Pages of write-ahead log (4 KiB each) after which the writer copies it into the file.
const WAL_CHECKPOINT_PAGES: i64 = 10_000;

/// How long a reader trusts its judgement of which processes died before looking again: a
/// dashboard page makes dozens of reads.
const DEAD_PROCESSES_FOR: Duration = Duration::from_secs(1);

pub(crate) struct SqliteBackend {
    path: PathBuf,
    access: Access,
    /// The connection every write goes through: opened with the store for [`Access::Write`],
    /// at the first write asked for otherwise.
    writer: Mutex<Option<Connection>>,
    /// Idle reader connections; a read takes one or opens another.
    readers: Mutex<Vec<Connection>>,
    /// The connection of cache lookups made on the runtime's threads: it never waits for a
    /// lock (busy timeout zero), and is only taken if no other thread holds it.
    quick_reader: Mutex<Option<Connection>>,
    /// For [`Access::Read`]: the processes found dead, and when.
    dead: Mutex<Option<(Instant, DeadSet)>>,
    /// This process, as readers leave it out of the dead.
    me: ProcessInfo,
}

impl SqliteBackend {
    /// Opens the store at `path`. For [`Access::Write`] it is created (with its directory) if
    /// there is no file there, and upgraded to this build's schema; an existing file is checked
    /// before anything is written to it: somebody else's file, a newer schema or a damaged file
    /// is refused, untouched. For [`Access::Read`] the file must exist and be a flowcore store
    /// of this build's schema with no damaged page, and is never written to.
    pub(crate) fn open(path: &Path, access: Access, me: &ProcessInfo) -> Result<Self, StoreError> {
        let path = path.to_path_buf();
        if path.is_dir() {
            return Err(StoreError::Open {
                path,
                detail: "it is a directory; give the path of a file".to_owned(),
            });
        }
        let writer = match access {
            Access::Write => Some(open_for_writing(&path)?),
            Access::Read => {
                if !path.try_exists().unwrap_or(true) {
                    return Err(StoreError::NoStore { path });
                }
                let conn = connect(&path, Access::Read)?;
                open::check(&conn, &path, Access::Read)?;
                open::quick_check(&conn, &path)?;
                None
            }
        };
        Ok(SqliteBackend {
            path,
            access,
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            quick_reader: Mutex::new(None),
            dead: Mutex::new(None),
            me: me.clone(),
        })
    }

    /// Creates a store at `path` with only the first `version` migrations: for testing the
    /// migrations themselves.
    #[doc(hidden)]
    pub fn create_at_version(path: &Path, version: usize) -> Result<(), StoreError> {
        let conn = connect(path, Access::Write)?;
        let err = |e| StoreError::sqlite(path, e);
        for sql in &MIGRATIONS[..version] {
            conn.execute_batch(sql).map_err(err)?;
        }
        conn.pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(err)?;
        conn.pragma_update(None, "user_version", version as i64)
            .map_err(err)
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        StoreError::sqlite(&self.path, e)
    }

    /// Runs `f` with the writer connection, opening it for a reader's first write.
    fn with_writer<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let conn = match &mut *writer {
            Some(conn) => conn,
            none => none.insert(self.connect_to_write()?),
        };
        f(conn)
    }

    /// A connection that may write to a store opened for reading: the file exists and was
    /// checked, so it is neither created nor upgraded here.
    fn connect_to_write(&self) -> Result<Connection, StoreError> {
        // Opening for appending writes nothing; it fails where SQLite would only say it cannot
        // open the file (its shared-memory file cannot be made on a read-only file system).
        if let Err(e) = std::fs::OpenOptions::new().append(true).open(&self.path)
            && matches!(
                e.kind(),
                std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
            )
        {
            return Err(StoreError::ReadOnly {
                path: self.path.clone(),
            });
        }
        let conn = Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| self.err(e))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| self.err(e))?;
        Ok(conn)
    }

    /// Runs `f` in one write transaction, committed if `f` succeeds; a lock held by another
    /// process is waited out.
    fn transaction<T>(
        &self,
        mut f: impl FnMut(&Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        patiently(&self.path, || {
            self.with_writer(|conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(|e| self.err(e))?;
                let out = f(&tx).map_err(|e| self.err(e))?;
                tx.commit().map_err(|e| self.err(e))?;
                Ok(out)
            })
        })
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let idle = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => connect(&self.path, self.access)?,
        };
        let result = f(&conn).map_err(|e| self.err(e));
        self.readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
        result
    }

    /// A read of runs, given how to show the runs of dead processes: as Crashed for a reader,
    /// as stored for a writer (which marks them itself).
    fn read_runs<T>(
        &self,
        f: impl FnOnce(&Connection, &CrashView) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let view = match self.access {
            Access::Write => CrashView::none(),
            Access::Read => CrashView::new(self.dead_processes()?, Timestamp::wall_now()),
        };
        self.read(|c| f(c, &view))
    }

    fn dead_processes(&self) -> Result<DeadSet, StoreError> {
        let mut dead = self.dead.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, set)) = &*dead
            && at.elapsed() < DEAD_PROCESSES_FOR
        {
            return Ok(Arc::clone(set));
        }
        let set: DeadSet =
            Arc::new(self.read(|c| crash::dead_processes(c, &self.me, Timestamp::wall_now()))?);
        *dead = Some((Instant::now(), Arc::clone(&set)));
        Ok(set)
    }
}

impl SqliteBackend {
    /// Records that `me` serves `rows`, in one transaction, refusing any another live process
    /// serves.
    fn serve_deployments_in(
        &self,
        conn: &mut Connection,
        rows: &[DeploymentRow],
        me: &ProcessInfo,
    ) -> Result<(), StoreError> {
        let err = |e| self.err(e);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        for row in rows {
            // A process that died without saying so was marked ended when the store opened.
            let serving: Option<(i64, String)> = tx
                .query_row(
                    "SELECT p.pid, p.host FROM deployments d JOIN processes p ON p.id = d.process_id
                     WHERE d.name = ?1 AND p.ended_at IS NULL AND p.id != ?2",
                    params![row.name, key(&me.id)],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(err)?;
            if let Some((pid, host)) = serving {
                return Err(StoreError::AlreadyServed {
                    name: row.name.clone(),
                    pid: pid as u32,
                    host,
                });
            }
            tx.execute(
                "INSERT INTO deployments (name, flow, schedule, parameters, overlap, process_id,
                     next_run_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7)
                 ON CONFLICT (name) DO UPDATE SET flow = excluded.flow,
                     schedule = excluded.schedule, parameters = excluded.parameters,
                     overlap = excluded.overlap, process_id = excluded.process_id,
                     next_run_at = NULL, updated_at = excluded.updated_at",
                params![
                    row.name,
                    row.flow,
                    row.schedule,
                    row.parameters.to_string(),
                    row.overlap,
                    key(&me.id),
                    Timestamp::wall_now().as_micros()
                ],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)
    }
}

/// Opens (or creates) the file for a program that runs flows: WAL mode, its settings, and this
/// build's schema.
fn open_for_writing(path: &Path) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
            path: dir.to_path_buf(),
            detail: e.to_string(),
        })?;
    }
    let conn = connect(path, Access::Write)?;
    open::check(&conn, path, Access::Write)?;
    let err = |e| StoreError::sqlite(path, e);
    // Only now, with the file known to be ours or empty, does anything change on disk.
    open::enable_wal(&conn, path)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(err)?;
    // The log would otherwise keep the size of the largest batch ever written.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
        .map_err(err)?;
    // Copying the log into the file every 40 MB rather than SQLite's 4 MB writes the pages
    // every commit touches (the tables' last leaves, their parents) once per 40 MB instead
    // of ten times: a fifth less time per task run (12.0 -> 9.5 us, 100,000 task runs).
    conn.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)
        .map_err(err)?;
    patiently(path, || open::migrate(&conn, path))?;
    Ok(conn)
}

fn cache_lookup(c: &Connection, key: &str, now: Timestamp) -> rusqlite::Result<Option<String>> {
    c.prepare_cached("SELECT value FROM cache WHERE key = ?1 AND expires_at > ?2")?
        .query_row(params![key, now.as_micros()], |r| r.get(0))
        .optional()
}

impl Backend for SqliteBackend {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    /// One attempt: the writer thread retries, and waits out locks itself (so that it can say
    /// how long it has waited).
    fn write(&self, batch: &[Event], process: &ProcessInfo) -> Result<(), StoreError> {
        self.with_writer(|conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| self.err(e))?;
            write_batch(&tx, batch, process).map_err(|e| self.err(e))?;
            tx.commit().map_err(|e| self.err(e))
        })
    }

    /// A reader runs nothing, so it is not recorded: it has no runs to be marked Crashed.
    fn register_process(&self, p: &ProcessInfo) -> Result<(), StoreError> {
        if self.access == Access::Read {
            return Ok(());
        }
        self.transaction(|tx| {
            tx.execute(
                "INSERT INTO processes (id, pid, host, start_ticks, started_at, heartbeat_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                params![
                    key(&p.id),
                    p.pid,
                    p.host,
                    p.start_ticks.map(|t| t as i64),
                    p.started_at.as_micros()
                ],
            )
        })
        .map(drop)
    }

    /// In transactions of at most [`RUNS_PER_TRANSACTION`] runs each, so that other processes
    /// commit in between: which processes died is judged without the write lock, and each
    /// transaction ends only runs still unfinished, so two processes marking at once mark each
    /// run once.
    fn mark_crashed(&self, me: &ProcessInfo, now: Timestamp) -> Result<usize, StoreError> {
        let dead = self.read(|c| crash::dead_processes(c, me, now))?;
        let mut marked = 0;
        for process in dead.values() {
            for table in [Table::Flow, Table::Task] {
                loop {
                    let ended = self.transaction(|tx| {
                        crash::end_runs(
                            tx,
                            table,
                            &process.id,
                            StateKind::Crashed,
                            &process.message,
                            now,
                            RUNS_PER_TRANSACTION,
                        )
                    })?;
                    marked += ended;
                    if ended < RUNS_PER_TRANSACTION {
                        break;
                    }
                }
            }
            self.transaction(|tx| crash::retire_process(tx, &process.id, now))?;
        }
        self.transaction(|tx| crash::forget_old_processes(tx, me, now))?;
        Ok(marked)
    }

    fn end_process(
        &self,
        me: &ProcessInfo,
        kind: StateKind,
        message: &str,
        now: Timestamp,
    ) -> Result<usize, StoreError> {
        // One transaction: the process is about to exit, and nothing of it may be left half
        // ended.
        let id = Value::Blob(key(&me.id).to_vec());
        self.transaction(|tx| {
            let mut ended = 0;
            for table in [Table::Flow, Table::Task] {
                ended += crash::end_runs(tx, table, &id, kind, message, now, usize::MAX >> 1)?;
            }
            crash::retire_process(tx, &id, now)?;
            Ok(ended)
        })
    }

    fn reads_block(&self) -> bool {
        true
    }

    fn opened_for_reading(&self) -> bool {
        self.access == Access::Read
    }

    fn flow_rows(&self, filter: &RunFilter) -> Result<Vec<FlowRow>, StoreError> {
        self.read_runs(|c, view| {
            let state = view.state_sql(Table::Flow);
            let sql = format!(
                "SELECT {FLOW_COLUMNS} FROM flow_runs
                 WHERE (?1 IS NULL OR flow = ?1) AND (?2 IS NULL OR {state} = ?2)
                     AND (?4 IS NULL OR created_at >= ?4)
                 ORDER BY created_at DESC LIMIT ?3 OFFSET ?5"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(
                params![
                    filter.flow,
                    filter.state.map(|s| s.as_str()),
                    i64::try_from(filter.limit).unwrap_or(i64::MAX),
                    filter.since.map(Timestamp::as_micros),
                    i64::try_from(filter.offset).unwrap_or(i64::MAX)
                ],
                |r| flow_row(r, view),
            )?;
            rows.collect()
        })
    }

    fn flow_states_since(
        &self,
        since: Timestamp,
    ) -> Result<Vec<(Timestamp, StateKind)>, StoreError> {
        self.read_runs(|c, view| {
            let state = view.state_sql(Table::Flow);
            let mut stmt = c.prepare_cached(&format!(
                "SELECT created_at, {state} FROM flow_runs WHERE created_at >= ?1 ORDER BY created_at"
            ))?;
            let rows = stmt.query_map([since.as_micros()], |r| Ok((ts(r, 0)?, kind_at(r, 1)?)))?;
            rows.collect()
        })
    }

    fn flow_row(&self, id: Uuid) -> Result<Option<FlowRow>, StoreError> {
        self.read_runs(|c, view| {
            let sql = format!("SELECT {FLOW_COLUMNS} FROM flow_runs WHERE id = ?1");
            c.prepare_cached(&sql)?
                .query_row([key(&id)], |r| flow_row(r, view))
                .optional()
        })
    }

    fn flow_row_named(&self, name: &str) -> Result<Option<FlowRow>, StoreError> {
        self.read_runs(|c, view| {
            let sql = format!(
                "SELECT {FLOW_COLUMNS} FROM flow_runs WHERE name = ?1 ORDER BY created_at DESC LIMIT 1"
            );
            c.prepare_cached(&sql)?
                .query_row([name], |r| flow_row(r, view))
                .optional()
        })
    }

    fn child_flows(&self, parent: Uuid) -> Result<Vec<FlowRow>, StoreError> {
        self.read_runs(|c, view| {
            let sql = format!(
                "SELECT {FLOW_COLUMNS} FROM flow_runs WHERE parent_id = ?1 ORDER BY created_at"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map([key(&parent)], |r| flow_row(r, view))?;
            rows.collect()
        })
    }

    fn task_rows(&self, flow_run: Uuid) -> Result<Vec<TaskRow>, StoreError> {
        self.read_runs(|c, view| {
            let sql = format!(
                "SELECT {TASK_COLUMNS} FROM task_runs WHERE flow_run_id = ?1 ORDER BY created_at, rowid"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map([key(&flow_run)], |r| task_row(r, view))?;
            rows.collect()
        })
    }

    fn task_counts(&self, flow_run: Uuid) -> Result<BTreeMap<StateKind, usize>, StoreError> {
        self.read_runs(|c, view| {
            let state = view.state_sql(Table::Task);
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {state}, COUNT(*) FROM task_runs WHERE flow_run_id = ?1 GROUP BY 1"
            ))?;
            let rows = stmt.query_map([key(&flow_run)], |r| {
                Ok((kind_at(r, 0)?, r.get::<_, i64>(1)? as usize))
            })?;
            rows.collect()
        })
    }

    fn states(&self, run: Uuid) -> Result<Vec<State>, StoreError> {
        self.read_runs(|c, view| {
            let mut stmt = c.prepare_cached(
                "SELECT kind, at, message FROM states WHERE run_id = ?1 ORDER BY seq",
            )?;
            let rows = stmt.query_map([key(&run)], |r| {
                Ok(State::new(kind_at(r, 0)?, ts(r, 1)?, r.get(2)?))
            })?;
            let mut states: Vec<State> = rows.collect::<rusqlite::Result<_>>()?;
            // The state a writer will record for a run its dead process left unfinished.
            if let Some(last) = states.last()
                && !last.is_final()
                && view.shows_crashes()
            {
                let mut stmt = c.prepare_cached(
                    "SELECT 'flow', process_id FROM flow_runs WHERE id = ?1
                     UNION ALL SELECT 'task', process_id FROM task_runs WHERE id = ?1",
                )?;
                let owner: Option<(String, Option<Vec<u8>>)> = stmt
                    .query_row([key(&run)], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                if let Some((table, process)) = owner {
                    let table = if table == "flow" {
                        Table::Flow
                    } else {
                        Table::Task
                    };
                    if let Some(dead) = view.crashed_by(table, last.kind, process.as_deref()) {
                        states.push(view.crashed_state(dead));
                    }
                }
            }
            Ok(states)
        })
    }

    fn logs(&self, runs: &[Uuid]) -> Result<Vec<LogLine>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT run_id, at, level, message FROM logs WHERE run_id = ?1 ORDER BY at, rowid",
            )?;
            let mut lines = Vec::new();
            for run in runs {
                let rows = stmt.query_map([key(run)], |r| {
                    Ok(LogLine {
                        run_id: uuid_at(r, 0)?,
                        at: ts(r, 1)?,
                        level: r.get(2)?,
                        message: r.get(3)?,
                    })
                })?;
                for line in rows {
                    lines.push(line?);
                }
            }
            lines.sort_by_key(|l| l.at);
            Ok(lines)
        })
    }

    fn cache_get(&self, key: &str, now: Timestamp) -> Result<Option<String>, StoreError> {
        self.read(|c| cache_lookup(c, key, now))
    }

    /// A cache hit is one primary-key read, which in WAL mode never waits for the writer: a
    /// few microseconds when the page is cached, against some 20 µs of thread switches to
    /// make it on the blocking pool and come back (`perf` on the cache-hit benchmark: both
    /// threads mostly in the scheduler). So it is made here, unless it would wait: the quick
    /// connection is busy on another thread, or SQLite answers busy (another process
    /// recovering or truncating the log).
    fn cache_get_without_waiting(
        &self,
        key: &str,
        now: Timestamp,
    ) -> Option<Result<Option<String>, StoreError>> {
        let mut quick = self.quick_reader.try_lock().ok()?;
        if quick.is_none() {
            let conn = connect(&self.path, self.access).ok()?;
            conn.busy_timeout(Duration::ZERO).ok()?;
            *quick = Some(conn);
        }
        match cache_lookup(quick.as_ref()?, key, now) {
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                ) =>
            {
                None
            }
            result => Some(result.map_err(|e| self.err(e))),
        }
    }

    fn cache_entries(&self) -> Result<Vec<CacheEntry>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT task, key, created_at, expires_at, LENGTH(value) FROM cache ORDER BY task, created_at",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(CacheEntry {
                    task: r.get(0)?,
                    key: r.get(1)?,
                    created_at: ts(r, 2)?,
                    expires_at: ts(r, 3)?,
                    size: r.get::<_, i64>(4)? as usize,
                })
            })?;
            rows.collect()
        })
    }

    fn cache_clear(&self, task: Option<&str>) -> Result<usize, StoreError> {
        self.transaction(|tx| tx.execute("DELETE FROM cache WHERE ?1 IS NULL OR task = ?1", [task]))
    }

    fn serve_deployments(
        &self,
        rows: &[DeploymentRow],
        me: &ProcessInfo,
    ) -> Result<(), StoreError> {
        patiently(&self.path, || {
            self.with_writer(|conn| self.serve_deployments_in(conn, rows, me))
        })
    }

    fn unserve_deployments(&self, names: &[String], me: &ProcessInfo) -> Result<(), StoreError> {
        self.transaction(|tx| {
            for name in names {
                tx.execute(
                    "UPDATE deployments SET process_id = NULL, next_run_at = NULL
                     WHERE name = ?1 AND process_id = ?2",
                    params![name, key(&me.id)],
                )?;
            }
            tx.execute(
                "UPDATE flow_runs SET process_id = NULL WHERE process_id = ?1 AND state = 'Scheduled'",
                [key(&me.id)],
            )?;
            Ok(())
        })
    }

    fn deployments(&self) -> Result<Vec<DeploymentInfo>, StoreError> {
        self.read_runs(|c, view| {
            let mut stmt = c.prepare_cached(
                "SELECT d.name, d.flow, d.schedule, d.parameters, d.overlap, p.pid, p.host,
                     d.next_run_at, p.id
                 FROM deployments d LEFT JOIN processes p
                     ON p.id = d.process_id AND p.ended_at IS NULL
                 ORDER BY d.name",
            )?;
            let rows = stmt.query_map([], |r| {
                let parameters: String = r.get(3)?;
                // A process that died serves nothing, whether or not a writer has said so.
                let alive = !view.died(rows::process_at(r, 8)?);
                let pid: Option<i64> = r.get::<_, Option<i64>>(5)?.filter(|_| alive);
                let host: Option<String> = r.get(6)?;
                Ok(DeploymentInfo {
                    name: r.get(0)?,
                    flow: r.get(1)?,
                    schedule: r.get(2)?,
                    parameters: serde_json::from_str(&parameters).unwrap_or_default(),
                    overlap: r.get(4)?,
                    served_by: pid.zip(host).map(|(pid, host)| ServedBy {
                        pid: pid as u32,
                        host,
                    }),
                    next_run_at: opt_ts(r, 7)?.filter(|_| alive),
                    last_runs: Vec::new(),
                })
            })?;
            let mut all: Vec<DeploymentInfo> = rows.collect::<rusqlite::Result<_>>()?;
            let state = view.state_sql(Table::Flow);
            let mut last = c.prepare_cached(&format!(
                "SELECT id, name, {state}, created_at FROM flow_runs WHERE deployment = ?1
                 ORDER BY created_at DESC LIMIT ?2"
            ))?;
            for d in &mut all {
                let runs = last.query_map(params![d.name, LAST_RUNS as i64], |r| {
                    Ok(DeploymentRun {
                        id: uuid_at(r, 0)?,
                        name: r.get(1)?,
                        state: kind_at(r, 2)?,
                        created_at: ts(r, 3)?,
                    })
                })?;
                d.last_runs = runs.collect::<rusqlite::Result<_>>()?;
            }
            Ok(all)
        })
    }

    fn request_run(&self, run: &RequestedRun) -> Result<(), StoreError> {
        let at = run.requested_at.as_micros();
        self.transaction(|tx| {
            tx.execute(
                "INSERT INTO flow_runs (id, name, flow, parameters, state, attempts, created_at,
                     deployment) VALUES (?1, ?2, ?3, ?4, 'Scheduled', 0, ?5, ?6)",
                params![
                    key(&run.id),
                    run.name,
                    run.flow,
                    run.parameters.to_string(),
                    at,
                    run.deployment
                ],
            )?;
            tx.execute(
                "INSERT INTO states (run_id, seq, kind, at, message) VALUES (?1, 0, 'Scheduled', ?2, ?3)",
                params![key(&run.id), at, REQUESTED],
            )?;
            Ok(())
        })
    }

    fn claim_requests(
        &self,
        deployments: &[String],
        me: &ProcessInfo,
    ) -> Result<Vec<RequestedRun>, StoreError> {
        // Looked for twice a second by every serving process: the write lock is taken only
        // when there is something to claim.
        let any = self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT 1 FROM flow_runs
                 WHERE deployment = ?1 AND state = 'Scheduled' AND process_id IS NULL LIMIT 1",
            )?;
            for deployment in deployments {
                if stmt.exists([deployment])? {
                    return Ok(true);
                }
            }
            Ok(false)
        })?;
        if !any {
            return Ok(Vec::new());
        }
        self.transaction(|tx| {
            let mut claimed = Vec::new();
            for deployment in deployments {
                let runs: Vec<RequestedRun> = {
                    let mut stmt = tx.prepare_cached(
                        "SELECT id, name, flow, parameters, created_at FROM flow_runs
                         WHERE deployment = ?1 AND state = 'Scheduled' AND process_id IS NULL
                         ORDER BY created_at",
                    )?;
                    let rows = stmt.query_map([deployment], |r| {
                        let parameters: Option<String> = r.get(3)?;
                        Ok(RequestedRun {
                            id: uuid_at(r, 0)?,
                            name: r.get(1)?,
                            deployment: deployment.clone(),
                            flow: r.get(2)?,
                            parameters: parameters
                                .and_then(|p| serde_json::from_str(&p).ok())
                                .unwrap_or_default(),
                            requested_at: ts(r, 4)?,
                        })
                    })?;
                    rows.collect::<rusqlite::Result<_>>()?
                };
                for run in &runs {
                    tx.prepare_cached("UPDATE flow_runs SET process_id = ?2 WHERE id = ?1")?
                        .execute(params![key(&run.id), key(&me.id)])?;
                }
                claimed.extend(runs);
            }
            Ok(claimed)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::event::Event;

    fn store_with_entry() -> (tempfile::TempDir, SqliteBackend) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flowcore.db");
        let backend = SqliteBackend::open(&path, Access::Write, &ProcessInfo::current()).unwrap();
        let event = Event::CachePut {
            key: "k".into(),
            task: "t".into(),
            json: "42".into(),
            created_at: Timestamp::from_micros(1),
            expires_at: Timestamp::from_micros(1_000),
        };
        backend.write(&[event], &ProcessInfo::current()).unwrap();
        (dir, backend)
    }

    fn quick(backend: &SqliteBackend, key: &str, at: i64) -> Option<Option<String>> {
        backend
            .cache_get_without_waiting(key, Timestamp::from_micros(at))
            .map(Result::unwrap)
    }

    #[test]
    fn the_writer_checkpoints_the_log_every_40_mb() {
        let (_dir, backend) = store_with_entry();
        let pages: i64 = backend
            .with_writer(|c| {
                c.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
                    .map_err(|e| backend.err(e))
            })
            .unwrap();
        assert_eq!(pages, WAL_CHECKPOINT_PAGES);
    }

    #[test]
    fn a_cache_lookup_on_the_runtime_thread_reads_what_the_store_holds() {
        let (_dir, backend) = store_with_entry();
        assert_eq!(quick(&backend, "k", 500), Some(Some("42".to_owned())));
        assert_eq!(quick(&backend, "k", 1_000), Some(None), "expired");
        assert_eq!(quick(&backend, "other", 500), Some(None));
    }

    #[test]
    fn a_cache_lookup_that_would_wait_is_left_to_the_blocking_pool() {
        let (dir, backend) = store_with_entry();
        // Another thread is using the quick connection.
        let held = backend.quick_reader.lock().unwrap();
        assert_eq!(quick(&backend, "k", 500), None);
        drop(held);
        assert_eq!(quick(&backend, "k", 500), Some(Some("42".to_owned())));
        drop(backend);

        // Another process holds the file exclusively: SQLite answers busy at once, where the
        // blocking pool's connections wait up to the busy timeout.
        let path = dir.path().join("flowcore.db");
        let other = Connection::open(&path).unwrap();
        other
            .execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;")
            .unwrap();
        let backend = SqliteBackend {
            path: path.clone(),
            access: Access::Write,
            writer: Mutex::new(Some(connect(&path, Access::Write).unwrap())),
            readers: Mutex::new(Vec::new()),
            quick_reader: Mutex::new(None),
            dead: Mutex::new(None),
            me: ProcessInfo::current(),
        };
        let start = std::time::Instant::now();
        assert_eq!(quick(&backend, "k", 500), None);
        assert!(
            start.elapsed() < BUSY_TIMEOUT,
            "it did not wait for the lock"
        );
        other.execute_batch("COMMIT").unwrap();
    }
}
