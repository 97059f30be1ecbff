//! The SQLite driver: a file in WAL mode, one writer connection for the group commits, a few
//! reader connections, and a busy timeout so that several processes can share the file. The
//! store itself (its statements, crash marking, reads) is [`crate::store::sql`]'s.

mod open;
pub(crate) mod schema;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, TransactionBehavior};

use crate::store::StoreError;
use crate::store::process::ProcessInfo;
use crate::store::sql::SqlBackend;
use crate::store::sql::driver::{Access, Conn, Dialect, Driver, Param, Row, Value};
use crate::store::sqlite::schema::{APPLICATION_ID, MIGRATIONS};
use open::{BUSY_TIMEOUT, connect, patiently};

/// Pages of write-ahead log (4 KiB each) after which the writer copies it into the file.
const WAL_CHECKPOINT_PAGES: i64 = 10_000;

/// How long the checkpoint of a store closing waits for other connections' reads and writes
/// to let it empty the log: theirs take milliseconds; a process exiting must not wait on a
/// dashboard's for long.
const CLOSING_CHECKPOINT_WAIT: Duration = Duration::from_secs(1);

/// A store in a SQLite file.
pub(crate) type SqliteBackend = SqlBackend<SqliteDriver>;

pub(crate) struct SqliteDriver {
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
}

impl SqlBackend<SqliteDriver> {
    /// Opens the store at `path`. For [`Access::Write`] it is created (with its directory) if
    /// there is no file there, and upgraded to this build's schema; an existing file is checked
    /// before anything is written to it: somebody else's file, a newer schema or a damaged file
    /// is refused, untouched. For [`Access::Read`] the file must exist and be a flowcore store
    /// of a schema this build reads as it is (`READS_FROM` on) with no damaged page, and is
    /// never written to.
    pub(crate) fn open(path: &Path, access: Access, me: &ProcessInfo) -> Result<Self, StoreError> {
        Ok(SqlBackend::new(SqliteDriver::open(path, access)?, me))
    }

    /// Creates a store at `path` with only the first `version` migrations: for testing the
    /// migrations themselves.
    pub(crate) fn create_at_version(path: &Path, version: usize) -> Result<(), StoreError> {
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
}

impl SqliteDriver {
    fn open(path: &Path, access: Access) -> Result<Self, StoreError> {
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
        Ok(SqliteDriver {
            path,
            access,
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
            quick_reader: Mutex::new(None),
        })
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        StoreError::sqlite(&self.path, e)
    }

    fn writer(&self) -> Result<MutexGuard<'_, Option<Connection>>, StoreError> {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if writer.is_none() {
            *writer = Some(self.connect_to_write()?);
        }
        Ok(writer)
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

    fn in_transaction<T>(
        &self,
        conn: &mut Connection,
        behaviour: TransactionBehavior,
        f: &mut dyn FnMut(&mut dyn Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let tx = conn
            .transaction_with_behavior(behaviour)
            .map_err(|e| self.err(e))?;
        let out = f(&mut SqliteConn {
            conn: &tx,
            path: &self.path,
        })?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(out)
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

impl Driver for SqliteDriver {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn opened_for_reading(&self) -> bool {
        self.access == Access::Read
    }

    fn write_once<T>(
        &self,
        f: &mut dyn FnMut(&mut dyn Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut writer = self.writer()?;
        let conn = writer.as_mut().expect("opened by writer()");
        self.in_transaction(conn, TransactionBehavior::Immediate, f)
    }

    fn write<T>(
        &self,
        f: &mut dyn FnMut(&mut dyn Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        patiently(&self.path, || self.write_once(f))
    }

    fn read<T>(
        &self,
        f: &mut dyn FnMut(&mut dyn Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let idle = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => connect(&self.path, self.access)?,
        };
        // One snapshot for all the queries of the read; it writes nothing.
        let result = self.in_transaction(&mut conn, TransactionBehavior::Deferred, f);
        self.readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
        result
    }

    /// `wal_checkpoint(TRUNCATE)`: copies the whole log into the file and empties it. Busy when
    /// another connection kept it from finishing (its read of an older snapshot, another
    /// process's write): then what was copied stays copied, and the rest waits in the log.
    fn checkpoint(&self) -> Result<(), StoreError> {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        // A store opened for reading that never wrote has no log of its making.
        let Some(conn) = writer.as_mut() else {
            return Ok(());
        };
        conn.busy_timeout(CLOSING_CHECKPOINT_WAIT)
            .map_err(|e| self.err(e))?;
        let busy = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            r.get::<_, i64>(0)
        });
        conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| self.err(e))?;
        match busy.map_err(|e| self.err(e))? {
            0 => Ok(()),
            _ => Err(StoreError::Busy {
                path: self.path.clone(),
            }),
        }
    }

    /// A cache hit is one primary-key read, which in WAL mode never waits for the writer: a
    /// few microseconds when the page is cached, against some 20 µs of thread switches to
    /// make it on the blocking pool and come back (`perf` on the cache-hit benchmark: both
    /// threads mostly in the scheduler). So it is made here, unless it would wait: the quick
    /// connection is busy on another thread, or SQLite answers busy (another process
    /// recovering or truncating the log).
    fn read_without_waiting<T>(
        &self,
        f: &mut dyn FnMut(&mut dyn Conn) -> Result<T, StoreError>,
    ) -> Option<Result<T, StoreError>> {
        let mut quick = self.quick_reader.try_lock().ok()?;
        if quick.is_none() {
            let conn = connect(&self.path, self.access).ok()?;
            conn.busy_timeout(Duration::ZERO).ok()?;
            *quick = Some(conn);
        }
        let conn = quick.as_ref()?;
        match f(&mut SqliteConn {
            conn,
            path: &self.path,
        }) {
            Err(StoreError::Busy { .. }) => None,
            result => Some(result),
        }
    }
}

/// A connection, in a transaction or not, running the store's statements in SQLite's words.
struct SqliteConn<'c> {
    conn: &'c Connection,
    path: &'c Path,
}

impl SqliteConn<'_> {
    fn err(&self, e: rusqlite::Error) -> StoreError {
        StoreError::sqlite(self.path, e)
    }

    /// A statement with its parameters bound (statements stay prepared, by their text).
    fn bound(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<rusqlite::CachedStatement<'_>, StoreError> {
        let sql = Dialect::Sqlite.adapt(sql);
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        for (i, param) in params.iter().enumerate() {
            let bound = match *param {
                Param::Null => stmt.raw_bind_parameter(i + 1, rusqlite::types::Null),
                Param::Int(v) => stmt.raw_bind_parameter(i + 1, v),
                Param::Text(v) => stmt.raw_bind_parameter(i + 1, v),
                Param::Bytes(v) => stmt.raw_bind_parameter(i + 1, v),
            };
            bound.map_err(|e| self.err(e))?;
        }
        Ok(stmt)
    }
}

impl Conn for SqliteConn<'_> {
    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<usize, StoreError> {
        let mut stmt = self.bound(sql, params)?;
        stmt.raw_execute().map_err(|e| self.err(e))
    }

    fn query(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        row: &mut dyn FnMut(&dyn Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut stmt = self.bound(sql, params)?;
        let mut rows = stmt.raw_query();
        while let Some(r) = rows.next().map_err(|e| StoreError::sqlite(self.path, e))? {
            row(&SqliteRow {
                row: r,
                path: self.path,
            })?;
        }
        Ok(())
    }
}

struct SqliteRow<'r, 's> {
    row: &'r rusqlite::Row<'s>,
    path: &'r Path,
}

impl Row for SqliteRow<'_, '_> {
    fn value(&self, i: usize) -> Result<Value, StoreError> {
        let value = self
            .row
            .get_ref(i)
            .map_err(|e| StoreError::sqlite(self.path, e))?;
        Ok(match value {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(v) => Value::Int(v),
            ValueRef::Real(v) => Value::Int(v as i64),
            ValueRef::Text(v) => Value::Text(String::from_utf8_lossy(v).into_owned()),
            ValueRef::Blob(v) => Value::Bytes(v.to_vec()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::store::backend::Backend;
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
        let writer = backend.driver().writer().unwrap();
        let pages: i64 = writer
            .as_ref()
            .unwrap()
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
        let held = backend.driver().quick_reader.lock().unwrap();
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
        let backend = SqlBackend::new(
            SqliteDriver {
                path: path.clone(),
                access: Access::Write,
                writer: Mutex::new(Some(connect(&path, Access::Write).unwrap())),
                readers: Mutex::new(Vec::new()),
                quick_reader: Mutex::new(None),
            },
            &ProcessInfo::current(),
        );
        let start = std::time::Instant::now();
        assert_eq!(quick(&backend, "k", 500), None);
        assert!(
            start.elapsed() < BUSY_TIMEOUT,
            "it did not wait for the lock"
        );
        other.execute_batch("COMMIT").unwrap();
    }
}
