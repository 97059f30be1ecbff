//! A store in a SQLite file: WAL mode, one writer connection for the group commits, a few
//! reader connections, and a busy timeout so that several processes can share the file.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params};
use uuid::Uuid;

use crate::clock::Timestamp;
use crate::hooks::RunKind;
use crate::record::CacheStatus;
use crate::state::{State, StateKind};
use crate::store::StoreError;
use crate::store::backend::Backend;
use crate::store::deployments::{
    DeploymentInfo, DeploymentRow, DeploymentRun, LAST_RUNS, REQUESTED, RequestedRun, ServedBy,
};
use crate::store::event::{Event, FlowRow, RowUpdate, TaskRow, cache_name, parse_cache};
use crate::store::process::{self, ProcessInfo};
use crate::store::query::{CacheEntry, LogLine, RunFilter};
use crate::store::schema::{APPLICATION_ID, MIGRATIONS, TABLES, VERSION};

/// How long a statement waits for another process's write lock before reporting busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Pages of write-ahead log (4 KiB each) after which the writer copies it into the file.
const WAL_CHECKPOINT_PAGES: i64 = 10_000;

pub(crate) struct SqliteBackend {
    path: PathBuf,
    writer: Mutex<Connection>,
    /// Idle reader connections; a read takes one or opens another.
    readers: Mutex<Vec<Connection>>,
    /// The connection of cache lookups made on the runtime's threads: it never waits for a
    /// lock (busy timeout zero), and is only taken if no other thread holds it.
    quick_reader: Mutex<Option<Connection>>,
}

impl SqliteBackend {
    /// Opens the store at `path`, creating it (and its directory) if there is no file there.
    /// An existing file is checked before anything is written to it: somebody else's file, a
    /// newer schema or a damaged file is refused, untouched.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let path = path.to_path_buf();
        if path.is_dir() {
            return Err(StoreError::Open {
                path,
                detail: "it is a directory; give the path of a file".to_owned(),
            });
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: dir.to_path_buf(),
                detail: e.to_string(),
            })?;
        }
        let conn = connect(&path)?;
        check(&conn, &path)?;
        let err = |e| StoreError::sqlite(&path, e);
        // Only now, with the file known to be ours or empty, does anything change on disk.
        enable_wal(&conn, &path)?;
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
        migrate(&conn, &path)?;
        Ok(SqliteBackend {
            path,
            writer: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
            quick_reader: Mutex::new(None),
        })
    }

    /// Creates a store at `path` with only the first `version` migrations: for testing the
    /// migrations themselves.
    #[doc(hidden)]
    pub fn create_at_version(path: &Path, version: usize) -> Result<(), StoreError> {
        let conn = connect(path)?;
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

    fn writer(&self) -> MutexGuard<'_, Connection> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let idle = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => connect(&self.path)?,
        };
        let result = f(&conn).map_err(|e| self.err(e));
        self.readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
        result
    }
}

fn cache_lookup(c: &Connection, key: &str, now: Timestamp) -> rusqlite::Result<Option<String>> {
    c.prepare_cached("SELECT value FROM cache WHERE key = ?1 AND expires_at > ?2")?
        .query_row(params![key, now.as_micros()], |r| r.get(0))
        .optional()
}

fn connect(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| StoreError::sqlite(path, e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| StoreError::sqlite(path, e))?;
    // Multi-row inserts of every length up to ROWS_PER_INSERT, for four tables, stay prepared.
    conn.set_prepared_statement_cache_capacity(512);
    Ok(conn)
}

/// Puts the file in WAL mode. Switching a new file to WAL needs it to itself, and SQLite
/// answers busy at once, without waiting, while another process holds it (another process
/// creating the same store at the same moment): so this waits, up to the busy timeout.
fn enable_wal(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let start = std::time::Instant::now();
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(())) {
            Err(e)
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                    && start.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            result => return result.map_err(|e| StoreError::sqlite(path, e)),
        }
    }
}

/// Refuses a file that is not a flowcore store, is newer than this build, or is damaged.
fn check(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let err = |e| StoreError::sqlite(path, e);
    // One read transaction, so that all three come from one snapshot: another process may be
    // creating the store right now, and its tables must not be seen without its application
    // id. Dropped, the transaction ends; it wrote nothing.
    let snapshot = conn.unchecked_transaction().map_err(err)?;
    let app_id: i64 = snapshot
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(err)?;
    let version: i64 = snapshot
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(err)?;
    let tables: Vec<String> = snapshot
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .and_then(|mut stmt| stmt.query_map([], |r| r.get(0))?.collect())
        .map_err(err)?;
    drop(snapshot);
    if app_id == APPLICATION_ID {
        if version > VERSION {
            return Err(StoreError::NewerSchema {
                path: path.to_path_buf(),
                found: version,
                known: VERSION,
            });
        }
        return Ok(());
    }
    if app_id == 0 && version == 0 && tables.is_empty() {
        return Ok(()); // a new, empty file
    }
    let reason = if app_id != 0 {
        format!("its SQLite application id is {app_id:#x}")
    } else if tables.is_empty() {
        format!("it has no tables but a schema version, {version}, that flowcore did not set")
    } else {
        let foreign: Vec<&str> = tables
            .iter()
            .map(String::as_str)
            .filter(|t| !TABLES.contains(t))
            .collect();
        format!(
            "it holds tables flowcore did not create: {}",
            if foreign.is_empty() {
                tables.join(", ")
            } else {
                foreign.join(", ")
            }
        )
    };
    Err(StoreError::NotAStore {
        path: path.to_path_buf(),
        reason,
    })
}

/// Applies the migrations the file lacks, in one transaction; another process may be doing
/// the same, so the version is read again once the write lock is held.
fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let err = |e| StoreError::sqlite(path, e);
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(err)?;
    if version == VERSION {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE").map_err(err)?;
    let result = (|| {
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for sql in &MIGRATIONS[version.clamp(0, VERSION) as usize..] {
            conn.execute_batch(sql)?;
        }
        conn.pragma_update(None, "application_id", APPLICATION_ID)?;
        conn.pragma_update(None, "user_version", VERSION)?;
        conn.execute_batch("COMMIT")
    })();
    if result.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result.map_err(err)
}

/// Ids are stored as their 16 bytes: less than half the size of their text, in every row and
/// index that holds one.
fn key(id: &Uuid) -> &[u8] {
    id.as_bytes()
}

fn uuid_at(row: &Row<'_>, i: usize) -> rusqlite::Result<Uuid> {
    opt_uuid_at(row, i)?.ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Blob,
            "not a run id".into(),
        )
    })
}

fn opt_uuid_at(row: &Row<'_>, i: usize) -> rusqlite::Result<Option<Uuid>> {
    use rusqlite::types::ValueRef;
    Ok(match row.get_ref(i)? {
        ValueRef::Blob(bytes) => Uuid::from_slice(bytes).ok(),
        ValueRef::Text(text) => std::str::from_utf8(text)
            .ok()
            .and_then(|t| Uuid::parse_str(t).ok()),
        _ => None,
    })
}

fn kind_at(row: &Row<'_>, i: usize) -> rusqlite::Result<StateKind> {
    let s: String = row.get(i)?;
    s.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    })
}

fn ts(row: &Row<'_>, i: usize) -> rusqlite::Result<Timestamp> {
    Ok(Timestamp::from_micros(row.get(i)?))
}

fn opt_ts(row: &Row<'_>, i: usize) -> rusqlite::Result<Option<Timestamp>> {
    Ok(row.get::<_, Option<i64>>(i)?.map(Timestamp::from_micros))
}

const FLOW_COLUMNS: &str = "id, name, flow, parent_id, parameters, state, attempts, created_at, started_at, ended_at, error, call_seq, output, deployment";

fn flow_row(row: &Row<'_>) -> rusqlite::Result<FlowRow> {
    Ok(FlowRow {
        id: uuid_at(row, 0)?,
        name: row.get(1)?,
        flow: row.get(2)?,
        parent_id: opt_uuid_at(row, 3)?,
        parameters: row.get(4)?,
        state: kind_at(row, 5)?,
        attempts: row.get(6)?,
        created_at: ts(row, 7)?,
        started_at: opt_ts(row, 8)?,
        ended_at: opt_ts(row, 9)?,
        error: row.get(10)?,
        call_seq: row.get(11)?,
        output: row.get(12)?,
        deployment: row.get(13)?,
    })
}

const TASK_COLUMNS: &str = "id, flow_run_id, task, tags, state, attempts, cache, created_at, call_seq, output, upstream, map_index";

fn task_row(row: &Row<'_>) -> rusqlite::Result<TaskRow> {
    let tags: String = row.get(3)?;
    let cache: String = row.get(6)?;
    Ok(TaskRow {
        id: uuid_at(row, 0)?,
        flow_run_id: opt_uuid_at(row, 1)?,
        task: row.get(2)?,
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        state: kind_at(row, 4)?,
        attempts: row.get(5)?,
        cache: parse_cache(&cache),
        created_at: ts(row, 7)?,
        call_seq: row.get(8)?,
        output: row.get(9)?,
        upstream: row
            .get::<_, Option<String>>(10)?
            .and_then(|json| serde_json::from_str(&json).ok())
            .unwrap_or_default(),
        map_index: row.get(11)?,
    })
}

impl Backend for SqliteBackend {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn write(&self, batch: &[Event], process: &ProcessInfo) -> Result<(), StoreError> {
        let mut conn = self.writer();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        write_batch(&tx, batch, process).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    fn register_process(&self, p: &ProcessInfo) -> Result<(), StoreError> {
        self.writer()
            .execute(
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
            .map(drop)
            .map_err(|e| self.err(e))
    }

    fn mark_crashed(&self, me: &ProcessInfo, now: Timestamp) -> Result<usize, StoreError> {
        let mut conn = self.writer();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let marked = mark_crashed(&tx, me, now).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(marked)
    }

    fn reads_block(&self) -> bool {
        true
    }

    fn flow_rows(&self, filter: &RunFilter) -> Result<Vec<FlowRow>, StoreError> {
        self.read(|c| {
            let sql = format!(
                "SELECT {FLOW_COLUMNS} FROM flow_runs
                 WHERE (?1 IS NULL OR flow = ?1) AND (?2 IS NULL OR state = ?2)
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
                flow_row,
            )?;
            rows.collect()
        })
    }

    fn flow_states_since(
        &self,
        since: Timestamp,
    ) -> Result<Vec<(Timestamp, StateKind)>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT created_at, state FROM flow_runs WHERE created_at >= ?1 ORDER BY created_at",
            )?;
            let rows = stmt.query_map([since.as_micros()], |r| Ok((ts(r, 0)?, kind_at(r, 1)?)))?;
            rows.collect()
        })
    }

    fn flow_row(&self, id: Uuid) -> Result<Option<FlowRow>, StoreError> {
        self.read(|c| {
            let sql = format!("SELECT {FLOW_COLUMNS} FROM flow_runs WHERE id = ?1");
            c.prepare_cached(&sql)?
                .query_row([key(&id)], flow_row)
                .optional()
        })
    }

    fn flow_row_named(&self, name: &str) -> Result<Option<FlowRow>, StoreError> {
        self.read(|c| {
            let sql = format!(
                "SELECT {FLOW_COLUMNS} FROM flow_runs WHERE name = ?1 ORDER BY created_at DESC LIMIT 1"
            );
            c.prepare_cached(&sql)?.query_row([name], flow_row).optional()
        })
    }

    fn child_flows(&self, parent: Uuid) -> Result<Vec<FlowRow>, StoreError> {
        self.read(|c| {
            let sql = format!(
                "SELECT {FLOW_COLUMNS} FROM flow_runs WHERE parent_id = ?1 ORDER BY created_at"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map([key(&parent)], flow_row)?;
            rows.collect()
        })
    }

    fn task_rows(&self, flow_run: Uuid) -> Result<Vec<TaskRow>, StoreError> {
        self.read(|c| {
            let sql = format!(
                "SELECT {TASK_COLUMNS} FROM task_runs WHERE flow_run_id = ?1 ORDER BY created_at, rowid"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map([key(&flow_run)], task_row)?;
            rows.collect()
        })
    }

    fn task_counts(&self, flow_run: Uuid) -> Result<BTreeMap<StateKind, usize>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT state, COUNT(*) FROM task_runs WHERE flow_run_id = ?1 GROUP BY state",
            )?;
            let rows = stmt.query_map([key(&flow_run)], |r| {
                Ok((kind_at(r, 0)?, r.get::<_, i64>(1)? as usize))
            })?;
            rows.collect()
        })
    }

    fn states(&self, run: Uuid) -> Result<Vec<State>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT kind, at, message FROM states WHERE run_id = ?1 ORDER BY seq",
            )?;
            let rows = stmt.query_map([key(&run)], |r| {
                Ok(State::new(kind_at(r, 0)?, ts(r, 1)?, r.get(2)?))
            })?;
            rows.collect()
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
            let conn = connect(&self.path).ok()?;
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
        self.writer()
            .execute("DELETE FROM cache WHERE ?1 IS NULL OR task = ?1", [task])
            .map_err(|e| self.err(e))
    }

    fn serve_deployments(
        &self,
        rows: &[DeploymentRow],
        me: &ProcessInfo,
    ) -> Result<(), StoreError> {
        let mut conn = self.writer();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
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
                .map_err(|e| self.err(e))?;
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
            .map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    fn unserve_deployments(&self, names: &[String], me: &ProcessInfo) -> Result<(), StoreError> {
        let mut conn = self.writer();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        for name in names {
            tx.execute(
                "UPDATE deployments SET process_id = NULL, next_run_at = NULL
                 WHERE name = ?1 AND process_id = ?2",
                params![name, key(&me.id)],
            )
            .map_err(|e| self.err(e))?;
        }
        tx.execute(
            "UPDATE flow_runs SET process_id = NULL WHERE process_id = ?1 AND state = 'Scheduled'",
            [key(&me.id)],
        )
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    fn deployments(&self) -> Result<Vec<DeploymentInfo>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT d.name, d.flow, d.schedule, d.parameters, d.overlap, p.pid, p.host,
                     d.next_run_at
                 FROM deployments d LEFT JOIN processes p
                     ON p.id = d.process_id AND p.ended_at IS NULL
                 ORDER BY d.name",
            )?;
            let rows = stmt.query_map([], |r| {
                let parameters: String = r.get(3)?;
                let pid: Option<i64> = r.get(5)?;
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
                    next_run_at: opt_ts(r, 7)?,
                    last_runs: Vec::new(),
                })
            })?;
            let mut all: Vec<DeploymentInfo> = rows.collect::<rusqlite::Result<_>>()?;
            let mut last = c.prepare_cached(
                "SELECT id, name, state, created_at FROM flow_runs WHERE deployment = ?1
                 ORDER BY created_at DESC LIMIT ?2",
            )?;
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
        let mut conn = self.writer();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let at = run.requested_at.as_micros();
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
        )
        .map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT INTO states (run_id, seq, kind, at, message) VALUES (?1, 0, 'Scheduled', ?2, ?3)",
            params![key(&run.id), at, REQUESTED],
        )
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
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
        let mut conn = self.writer();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let mut claimed = Vec::new();
        for deployment in deployments {
            let runs: Vec<RequestedRun> = {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT id, name, flow, parameters, created_at FROM flow_runs
                         WHERE deployment = ?1 AND state = 'Scheduled' AND process_id IS NULL
                         ORDER BY created_at",
                    )
                    .map_err(|e| self.err(e))?;
                let rows = stmt
                    .query_map([deployment], |r| {
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
                    })
                    .map_err(|e| self.err(e))?;
                rows.collect::<rusqlite::Result<_>>()
                    .map_err(|e| self.err(e))?
            };
            for run in &runs {
                tx.prepare_cached("UPDATE flow_runs SET process_id = ?2 WHERE id = ?1")
                    .and_then(|mut stmt| stmt.execute(params![key(&run.id), key(&me.id)]))
                    .map_err(|e| self.err(e))?;
            }
            claimed.extend(runs);
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(claimed)
    }
}

/// Rows bound per multi-row `INSERT`: one statement for many rows costs far less than one
/// each.
const ROWS_PER_INSERT: usize = 64;

/// A run row as it will be inserted: a run created in this batch is inserted once, with the
/// state its later events in the batch left it in.
struct NewRun<'a> {
    kind: RunKind,
    id: Uuid,
    parent: Option<Uuid>,
    name: &'a str,
    flow_or_task: &'a str,
    deployment: Option<&'a str>,
    tags: Option<String>,
    parameters: Option<&'a str>,
    call_seq: Option<u32>,
    created_at: i64,
    update: RowUpdate,
    output: Option<&'a str>,
    upstream: Option<String>,
    map_index: Option<u32>,
}

/// One group commit. Each run's row is written once: inserted if the run began in this batch,
/// otherwise updated; states, log lines and cached values go in with multi-row inserts.
fn write_batch(
    tx: &rusqlite::Transaction<'_>,
    batch: &[Event],
    process: &ProcessInfo,
) -> rusqlite::Result<()> {
    let process_id = key(&process.id);
    let mut new_runs: Vec<NewRun<'_>> = Vec::new();
    let mut new_index: HashMap<Uuid, usize> = HashMap::new();
    let mut updates: HashMap<(RunKind, Uuid), RowUpdate> = HashMap::new();
    let mut outputs: Vec<(RunKind, Uuid, &str)> = Vec::new();
    let mut resumed: Vec<Uuid> = Vec::new();
    let mut states: Vec<(Uuid, u32, &State)> = Vec::new();
    let mut logs = Vec::new();
    let mut cache = Vec::new();
    let mut heartbeat = None;
    let mut next_runs = HashMap::new();

    for event in batch {
        match event {
            Event::FlowRunCreated {
                id,
                name,
                flow,
                parent_id,
                parameters,
                call_seq,
                seq,
                state,
                resumed: was_resumed,
                deployment,
            } => {
                states.push((*id, *seq, state));
                let update = RowUpdate::from_state(state, 0, CacheStatus::Off);
                if *was_resumed {
                    resumed.push(*id);
                    merge(&mut updates, RunKind::Flow, *id, update);
                } else {
                    new_index.insert(*id, new_runs.len());
                    new_runs.push(NewRun {
                        kind: RunKind::Flow,
                        id: *id,
                        parent: *parent_id,
                        name,
                        flow_or_task: flow,
                        deployment: deployment.as_deref(),
                        tags: None,
                        parameters: parameters.as_deref(),
                        call_seq: *call_seq,
                        created_at: state.at.as_micros(),
                        update,
                        output: None,
                        upstream: None,
                        map_index: None,
                    });
                }
            }
            Event::TaskRunCreated {
                id,
                flow_run_id,
                task,
                tags,
                call_seq,
                state,
                upstream,
                map_index,
            } => {
                states.push((*id, 0, state));
                new_index.insert(*id, new_runs.len());
                new_runs.push(NewRun {
                    kind: RunKind::Task,
                    id: *id,
                    parent: *flow_run_id,
                    name: "",
                    flow_or_task: task,
                    deployment: None,
                    tags: Some(serde_json::to_string(&**tags).unwrap_or_else(|_| "[]".to_owned())),
                    parameters: None,
                    call_seq: *call_seq,
                    created_at: state.at.as_micros(),
                    update: RowUpdate::from_state(state, 0, CacheStatus::Off),
                    output: None,
                    upstream: (!upstream.is_empty())
                        .then(|| serde_json::to_string(upstream).unwrap_or_default()),
                    map_index: *map_index,
                });
            }
            Event::Transition {
                kind,
                id,
                position: _,
                seq,
                state,
                attempts,
                cache: status,
            } => {
                states.push((*id, *seq, state));
                let update = RowUpdate::from_state(state, *attempts, *status);
                match new_index.get(id) {
                    Some(&i) => new_runs[i].update.merge(update),
                    None => merge(&mut updates, *kind, *id, update),
                }
            }
            Event::Output { kind, id, json, .. } => match new_index.get(id) {
                Some(&i) => new_runs[i].output = Some(json),
                None => outputs.push((*kind, *id, json)),
            },
            Event::Log {
                run_id,
                at,
                level,
                message,
            } => logs.push((*run_id, at.as_micros(), *level, message.as_str())),
            Event::CachePut {
                key,
                task,
                json,
                created_at,
                expires_at,
            } => cache.push((key, task, json, *created_at, *expires_at)),
            Event::Heartbeat(at) => heartbeat = Some(*at),
            Event::NextRun { deployment, at } => {
                next_runs.insert(deployment.as_str(), *at);
            }
            Event::Flush(_) => {}
        }
    }

    let (flows, tasks): (Vec<&NewRun<'_>>, Vec<&NewRun<'_>>) =
        new_runs.iter().partition(|r| r.kind == RunKind::Flow);
    insert_rows(
        tx,
        "INSERT INTO flow_runs (id, name, flow, parent_id, parameters, state, attempts, created_at,
             started_at, ended_at, error, process_id, call_seq, output, deployment) VALUES ",
        15,
        &flows,
        |r, row| {
            let u = &r.update;
            row.id(&r.id)?
                .bind(r.name)?
                .bind(r.flow_or_task)?
                .bind(r.parent.as_ref().map(key))?
                .bind(r.parameters)?
                .bind(u.state.as_str())?
                .bind(u.attempts)?
                .bind(r.created_at)?
                .bind(u.started_at.map(Timestamp::as_micros))?
                .bind(u.ended_at.map(Timestamp::as_micros))?
                .bind(u.error.as_deref())?
                .bind(process_id)?
                .bind(r.call_seq)?
                .bind(r.output)?
                .bind(r.deployment)?;
            Ok(())
        },
    )?;
    insert_rows(
        tx,
        "INSERT INTO task_runs (id, flow_run_id, task, tags, state, attempts, cache, created_at,
             started_at, ended_at, error, process_id, call_seq, output, upstream, map_index) VALUES ",
        16,
        &tasks,
        |r, row| {
            let u = &r.update;
            row.id(&r.id)?;
            row.bind(r.parent.as_ref().map(key))?
                .bind(r.flow_or_task)?
                .bind(r.tags.as_deref())?
                .bind(u.state.as_str())?
                .bind(u.attempts)?
                .bind(cache_name(u.cache))?
                .bind(r.created_at)?
                .bind(u.started_at.map(Timestamp::as_micros))?
                .bind(u.ended_at.map(Timestamp::as_micros))?
                .bind(u.error.as_deref())?
                .bind(process_id)?
                .bind(r.call_seq)?
                .bind(r.output)?
                .bind(r.upstream.as_deref())?
                .bind(r.map_index)?;
            Ok(())
        },
    )?;
    insert_rows(
        tx,
        "INSERT OR REPLACE INTO states (run_id, seq, kind, at, message) VALUES ",
        5,
        &states,
        |(id, seq, state), row| {
            row.id(id)?
                .bind(*seq)?
                .bind(state.kind.as_str())?
                .bind(state.at.as_micros())?
                .bind(state.message.as_deref())?;
            Ok(())
        },
    )?;
    insert_rows(
        tx,
        "INSERT INTO logs (run_id, at, level, message) VALUES ",
        4,
        &logs,
        |(id, at, level, message), row| {
            row.id(id)?.bind(*at)?.bind(*level)?.bind(*message)?;
            Ok(())
        },
    )?;
    for (key, task, json, created_at, expires_at) in cache {
        tx.prepare_cached(
            "INSERT INTO cache (key, task, value, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (key) DO UPDATE SET task = excluded.task, value = excluded.value,
                 created_at = excluded.created_at, expires_at = excluded.expires_at",
        )?
        .execute(params![
            key,
            task,
            json,
            created_at.as_micros(),
            expires_at.as_micros()
        ])?;
    }
    for id in resumed {
        tx.prepare_cached("UPDATE flow_runs SET process_id = ?2 WHERE id = ?1")?
            .execute(params![key(&id), process_id])?;
    }
    for ((kind, id), u) in updates {
        let started = u.started_at.map(Timestamp::as_micros);
        let ended = u.ended_at.map(Timestamp::as_micros);
        match kind {
            RunKind::Flow => tx
                .prepare_cached(
                    "UPDATE flow_runs SET state = ?2, attempts = MAX(attempts, ?3),
                         started_at = COALESCE(started_at, ?4), ended_at = ?5, error = ?6
                     WHERE id = ?1",
                )?
                .execute(params![
                    key(&id),
                    u.state.as_str(),
                    u.attempts,
                    started,
                    ended,
                    u.error
                ])?,
            RunKind::Task => tx
                .prepare_cached(
                    "UPDATE task_runs SET state = ?2, attempts = ?3,
                         started_at = COALESCE(started_at, ?4), ended_at = ?5, error = ?6,
                         cache = ?7
                     WHERE id = ?1",
                )?
                .execute(params![
                    key(&id),
                    u.state.as_str(),
                    u.attempts,
                    started,
                    ended,
                    u.error,
                    cache_name(u.cache)
                ])?,
        };
    }
    for (kind, id, json) in outputs {
        let sql = match kind {
            RunKind::Flow => "UPDATE flow_runs SET output = ?2 WHERE id = ?1",
            RunKind::Task => "UPDATE task_runs SET output = ?2 WHERE id = ?1",
        };
        tx.prepare_cached(sql)?.execute(params![key(&id), json])?;
    }
    for (deployment, at) in next_runs {
        tx.prepare_cached(
            "UPDATE deployments SET next_run_at = ?2 WHERE name = ?1 AND process_id = ?3",
        )?
        .execute(params![
            deployment,
            at.map(Timestamp::as_micros),
            process_id
        ])?;
    }
    if let Some(at) = heartbeat {
        tx.prepare_cached("UPDATE processes SET heartbeat_at = ?2 WHERE id = ?1")?
            .execute(params![process_id, at.as_micros()])?;
        // Expired cached values are removed here too, whether or not their key comes back.
        tx.prepare_cached("DELETE FROM cache WHERE expires_at <= ?1")?
            .execute([at.as_micros()])?;
    }
    Ok(())
}

/// Inserts `rows` with statements of up to [`ROWS_PER_INSERT`] rows each; `bind` binds one
/// row's `columns` values, in order, without copying them first.
fn insert_rows<T>(
    tx: &rusqlite::Transaction<'_>,
    head: &str,
    columns: usize,
    rows: &[T],
    mut bind: impl FnMut(&T, &mut Binder<'_, '_>) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    let placeholders = format!("({})", vec!["?"; columns].join(", "));
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "{head}{}",
            vec![placeholders.as_str(); chunk.len()].join(", ")
        );
        let mut stmt = tx.prepare_cached(&sql)?;
        let mut binder = Binder {
            stmt: &mut stmt,
            next: 0,
        };
        for row in chunk {
            bind(row, &mut binder)?;
        }
        stmt.raw_execute()?;
    }
    Ok(())
}

/// Binds values to a statement's parameters one after the other.
struct Binder<'s, 'c> {
    stmt: &'s mut rusqlite::Statement<'c>,
    next: usize,
}

impl Binder<'_, '_> {
    fn bind(&mut self, value: impl rusqlite::ToSql) -> rusqlite::Result<&mut Self> {
        self.next += 1;
        self.stmt.raw_bind_parameter(self.next, value)?;
        Ok(self)
    }

    fn id(&mut self, id: &Uuid) -> rusqlite::Result<&mut Self> {
        self.bind(key(id))
    }
}

fn merge(
    updates: &mut HashMap<(RunKind, Uuid), RowUpdate>,
    kind: RunKind,
    id: Uuid,
    update: RowUpdate,
) {
    match updates.get_mut(&(kind, id)) {
        Some(earlier) => earlier.merge(update),
        None => {
            updates.insert((kind, id), update);
        }
    }
}

/// Marks Crashed the unfinished runs of processes that stopped: on this host when the process
/// is gone, on other hosts when its heartbeat is older than [`process::STALE`].
fn mark_crashed(
    tx: &rusqlite::Transaction<'_>,
    me: &ProcessInfo,
    now: Timestamp,
) -> rusqlite::Result<usize> {
    let stale_before = now.as_micros() - process::STALE.as_micros() as i64;
    // Ids are read and written back as they are stored, whatever their type.
    let candidates: Vec<(Value, i64, String, Option<i64>, i64)> = {
        let mut stmt = tx.prepare_cached(
            "SELECT id, pid, host, start_ticks, heartbeat_at FROM processes
             WHERE ended_at IS NULL AND id != ?1",
        )?;
        let rows = stmt.query_map([key(&me.id)], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    let mut marked = 0;
    for (id, pid, host, ticks, heartbeat) in candidates {
        // On this host the process table says; elsewhere only the heartbeat can.
        let alive = (host == me.host)
            .then(|| process::alive(pid as u32, ticks.map(|t| t as u64)))
            .flatten();
        let dead = alive.map_or(heartbeat < stale_before, |alive| !alive);
        if !dead {
            continue;
        }
        let message = process::crash_message(pid, &host, Timestamp::from_micros(heartbeat));
        // Runs it claimed but never started go back to whichever process serves next; what
        // it served is served no more.
        tx.execute(
            "UPDATE flow_runs SET process_id = NULL WHERE process_id = ?1 AND state = 'Scheduled'",
            [&id],
        )?;
        tx.execute(
            "UPDATE deployments SET process_id = NULL, next_run_at = NULL WHERE process_id = ?1",
            [&id],
        )?;
        for (table, unfinished) in [
            ("flow_runs", "'Late', 'Pending', 'Running', 'Retrying'"),
            ("task_runs", "'Pending', 'Running', 'Retrying'"),
        ] {
            let runs: Vec<Value> = {
                let sql = format!(
                    "SELECT id FROM {table} WHERE process_id = ?1 AND state IN ({unfinished})"
                );
                let mut stmt = tx.prepare_cached(&sql)?;
                let rows = stmt.query_map([&id], |r| r.get(0))?;
                rows.collect::<Result<_, _>>()?
            };
            for run in runs {
                let seq: i64 = tx.query_row(
                    "SELECT COALESCE(MAX(seq) + 1, 0) FROM states WHERE run_id = ?1",
                    [&run],
                    |r| r.get(0),
                )?;
                tx.execute(
                    "INSERT INTO states (run_id, seq, kind, at, message) VALUES (?1, ?2, 'Crashed', ?3, ?4)",
                    params![run, seq, now.as_micros(), message],
                )?;
                let sql = format!(
                    "UPDATE {table} SET state = 'Crashed', ended_at = ?2, error = ?3 WHERE id = ?1"
                );
                tx.execute(&sql, params![run, now.as_micros(), message])?;
                marked += 1;
            }
        }
        tx.execute(
            "UPDATE processes SET ended_at = ?2 WHERE id = ?1",
            params![id, now.as_micros()],
        )?;
    }
    // Processes that ended cleanly leave nothing unfinished: forget them after a day.
    tx.execute(
        "DELETE FROM processes WHERE heartbeat_at < ?1 AND id != ?2",
        params![now.as_micros() - 86_400_000_000, key(&me.id)],
    )?;
    Ok(marked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::event::Event;

    fn store_with_entry() -> (tempfile::TempDir, SqliteBackend) {
        let dir = tempfile::tempdir().unwrap();
        let backend = SqliteBackend::open(&dir.path().join("flowcore.db")).unwrap();
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
            .writer()
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
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
            writer: Mutex::new(connect(&path).unwrap()),
            readers: Mutex::new(Vec::new()),
            quick_reader: Mutex::new(None),
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
