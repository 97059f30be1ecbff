//! Opening a store file: for running flows (created if missing, upgraded, put in WAL mode) or
//! for reading (never created, never changed, checked for damage first), and waiting out other
//! processes' locks meanwhile.

use std::ffi::{c_int, c_void};
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use crate::store::StoreError;
use crate::store::sql::driver::Access;
use crate::store::sqlite::schema::{APPLICATION_ID, MIGRATIONS, READS_FROM, TABLES, VERSION};

/// How long a statement waits for another process's write lock before reporting busy.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to the file at `path`. A reading connection is opened read-only, so that not
/// even SQLite's own bookkeeping writes to the file; on a read-only file system, where SQLite
/// cannot make the shared-memory file a WAL reader needs, the file is read as immutable.
pub(super) fn connect(path: &Path, access: Access) -> Result<Connection, StoreError> {
    let flags = match access {
        Access::Write => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        Access::Read => OpenFlags::SQLITE_OPEN_READ_ONLY,
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| StoreError::sqlite(path, e))?;
    if access == Access::Write {
        widen_lookaside(&conn);
    }
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| StoreError::sqlite(path, e))?;
    // Multi-row inserts of every length up to ROWS_PER_INSERT, for four tables, stay prepared.
    conn.set_prepared_statement_cache_capacity(512);
    if access == Access::Read && !can_read_wal(&conn) {
        return connect_immutable(path);
    }
    Ok(conn)
}

/// Each slot of a writing connection's lookaside: room for a run's id, name, state or short
/// output (SQLite's own small allocations take slots of 128 bytes out of the same memory).
const LOOKASIDE_SLOT: c_int = 400;

/// Slots of [`LOOKASIDE_SLOT`] bytes: 200 KB in all, of which SQLite makes about 260 slots of
/// 400 bytes and 780 of 128.
const LOOKASIDE_SLOTS: c_int = 512;

/// Gives a writing connection a larger lookaside, SQLite's per-connection pool of small
/// allocations (120 KB by default).
///
/// A multi-row statement binds a run's id, names, state and output, each copied by SQLite; its
/// rows of 64 task runs outgrow the default pool, and each copy past it is a `malloc` and a
/// `free` under SQLite's global memory mutex: a fifth of the writer's instructions per task run
/// (18,400 → 14,700 with logging off, 25,100 → 20,150 with the final-state line; callgrind).
fn widen_lookaside(conn: &Connection) {
    // SAFETY: `handle` is this open connection's, used on this thread alone; no statement
    // has run on it, so no lookaside memory is in use, which is what SQLite requires of
    // SQLITE_DBCONFIG_LOOKASIDE (it answers SQLITE_BUSY otherwise, and changes nothing). A
    // null buffer makes SQLite allocate the pool itself and free it with the connection.
    // Only speed depends on it: a connection SQLite refused it to keeps the default pool.
    let _ = unsafe {
        rusqlite::ffi::sqlite3_db_config(
            conn.handle(),
            rusqlite::ffi::SQLITE_DBCONFIG_LOOKASIDE,
            std::ptr::null_mut::<c_void>(),
            LOOKASIDE_SLOT,
            LOOKASIDE_SLOTS,
        )
    };
}

/// Whether a read-only connection can read: in WAL mode it needs the `-shm` file, which it
/// cannot make where nothing may be written.
fn can_read_wal(conn: &Connection) -> bool {
    match conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |_| Ok(())) {
        Ok(()) => true,
        Err(e) => !matches!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::ReadOnly)
        ),
    }
}

fn connect_immutable(path: &Path) -> Result<Connection, StoreError> {
    let err = |e| StoreError::sqlite(path, e);
    let mut uri = String::from("file:");
    for byte in path.to_string_lossy().bytes() {
        match byte {
            b'%' | b'?' | b'#' => uri.push_str(&format!("%{byte:02X}")),
            _ => uri.push(byte as char),
        }
    }
    uri.push_str("?immutable=1");
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(&uri, flags).map_err(err)?;
    conn.set_prepared_statement_cache_capacity(512);
    Ok(conn)
}

/// Runs `step` until the file is not locked by another process: a store that is busy is not
/// broken (another process may be marking thousands of crashed runs, or checkpointing), so the
/// wait is said on stderr every ten seconds, never given up.
pub(super) fn patiently<T>(
    path: &Path,
    mut step: impl FnMut() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let start = Instant::now();
    let mut next_notice = Duration::from_secs(10);
    loop {
        match step() {
            Err(StoreError::Busy { .. }) => {
                if start.elapsed() >= next_notice {
                    eprintln!(
                        "flowcore: waiting for the run store {}, locked by another process for {}s",
                        path.display(),
                        start.elapsed().as_secs()
                    );
                    next_notice += Duration::from_secs(10);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// Puts the file in WAL mode. Switching a new file to WAL needs it to itself, and SQLite
/// answers busy at once, without waiting, while another process holds it (another process
/// creating the same store at the same moment): so this is retried while busy.
pub(super) fn enable_wal(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    patiently(path, || {
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .map_err(|e| StoreError::sqlite(path, e))
    })
}

/// Refuses, untouched, a file that is not a flowcore store or is newer than this build; for
/// reading, also an empty file (reading never makes a store) and one of an older schema
/// (upgrading it is a write).
pub(super) fn check(conn: &Connection, path: &Path, access: Access) -> Result<(), StoreError> {
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
        if version < READS_FROM && access == Access::Read {
            return Err(StoreError::OlderSchema {
                path: path.to_path_buf(),
                found: version,
                known: VERSION,
            });
        }
        return Ok(());
    }
    if app_id == 0 && version == 0 && tables.is_empty() {
        return match access {
            Access::Write => Ok(()), // a new, empty file
            Access::Read => Err(StoreError::NotAStore {
                path: path.to_path_buf(),
                reason: "it is empty; a flow run makes a store, reading never does".to_owned(),
            }),
        };
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

/// Refuses a damaged file before a reader trusts it: SQLite's `quick_check` reads every page
/// once, where a damaged page would otherwise give wrong runs and exit 0. It costs about 29 ms
/// for a 14 MB store of 100,000 task runs, warm (of 56 ms for all of `flowcore runs ls`, release
/// build): paid once per command, and once per dashboard start.
pub(super) fn quick_check(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let found: String = conn
        .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
        .map_err(|e| StoreError::sqlite(path, e))?;
    if found == "ok" {
        return Ok(());
    }
    Err(StoreError::Corrupt {
        path: path.to_path_buf(),
        detail: found,
    })
}

/// Applies the migrations the file lacks, in one transaction; another process may be doing
/// the same, so the version is read again once the write lock is held.
pub(super) fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The lookaside allocations that found the pool full since the connection opened.
    fn lookaside_misses(conn: &Connection) -> c_int {
        let (mut now, mut most) = (0, 0);
        // SAFETY: an open connection of this thread; SQLite writes the two counters only.
        let rc = unsafe {
            rusqlite::ffi::sqlite3_db_status(
                conn.handle(),
                rusqlite::ffi::SQLITE_DBSTATUS_LOOKASIDE_MISS_FULL,
                &mut now,
                &mut most,
                0,
            )
        };
        assert_eq!(rc, rusqlite::ffi::SQLITE_OK);
        most
    }

    #[test]
    fn a_writing_connection_keeps_a_batch_s_copies_in_its_lookaside() {
        let dir = tempfile::tempdir().unwrap();
        let conn = connect(&dir.path().join("flowcore.db"), Access::Write).unwrap();
        conn.execute_batch(
            "CREATE TABLE runs (a BLOB, b BLOB, c TEXT, d TEXT, e TEXT, f BLOB, g TEXT, h TEXT)",
        )
        .unwrap();
        // As the writer's statements are: 64 rows, each with eight texts and blobs to copy.
        let rows = vec!["(?, ?, ?, ?, ?, ?, ?, ?)"; 64].join(", ");
        let mut insert = conn
            .prepare_cached(&format!("INSERT INTO runs VALUES {rows}"))
            .unwrap();
        let id = [7u8; 16];
        let values = (0..64).flat_map(|i| {
            [
                rusqlite::types::Value::Blob(id.to_vec()),
                rusqlite::types::Value::Blob(id.to_vec()),
                rusqlite::types::Value::Text("extract".into()),
                rusqlite::types::Value::Text("Completed".into()),
                rusqlite::types::Value::Text("off".into()),
                rusqlite::types::Value::Blob(id.to_vec()),
                rusqlite::types::Value::Text(format!("{{\"rows\": {i}}}")),
                rusqlite::types::Value::Text("[\"db\"]".into()),
            ]
        });
        insert.execute(rusqlite::params_from_iter(values)).unwrap();
        assert_eq!(lookaside_misses(&conn), 0);
    }
}
