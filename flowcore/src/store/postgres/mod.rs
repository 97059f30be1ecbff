//! The PostgreSQL driver: one history for processes on many machines, with no server of
//! flowcore's in between. One connection for the writer thread's group commits (and one-off
//! writes), a few for reads; a lost connection is made again at the next attempt, so the
//! writer's retries carry batches over a server restart. The store itself (its statements,
//! crash marking, reads) is [`crate::store::sql`]'s.
//!
//! It uses `tokio-postgres`, its connections' I/O on a thread of their own (`io.rs`): the
//! store's calls block, and may come from any thread, a tokio worker included.
//!
//! The pool is this file's few lines (one writer connection, a handful of idle readers) rather
//! than `deadpool-postgres`: the writer thread owns its connection and the readers need no
//! async checkout, so a pool crate would add an async layer to block on and nothing more.

pub(crate) mod error;
mod io;
mod schema;

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bytes::BytesMut;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, Config, Statement};

use crate::store::StoreError;
use crate::store::process::ProcessInfo;
use crate::store::sql::SqlBackend;
use crate::store::sql::driver::{Access, Conn, Dialect, Driver, Param, Row, Value};
use error::Errors;

/// How long opening a connection may take before the server counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Idle read connections kept.
const IDLE_READERS: usize = 4;

/// Prepared statements kept per connection: the batches' multi-row statements come in a few
/// dozen lengths.
const STATEMENTS: usize = 256;

/// A store in a PostgreSQL database.
pub(crate) type PostgresBackend = SqlBackend<PostgresDriver>;

impl SqlBackend<PostgresDriver> {
    /// Connects to the database at `url` (`postgres://user@host/db`, or
    /// `postgres:///db?host=/run/postgresql` over a Unix socket). For [`Access::Write`] the
    /// database gets flowcore's tables if it has none, and is upgraded to this build's schema;
    /// one holding somebody else's tables or a newer flowcore's is refused, untouched. For
    /// [`Access::Read`] it must hold a store of this build's schema, and nothing is written.
    pub(crate) fn connect(url: &str, access: Access, me: &ProcessInfo) -> Result<Self, StoreError> {
        Ok(SqlBackend::new(PostgresDriver::connect(url, access)?, me))
    }
}

pub(crate) struct PostgresDriver {
    config: Config,
    errors: Errors,
    access: Access,
    /// The writer's connection; `None` until made, or again once lost.
    writer: Mutex<Option<Connection>>,
    readers: Mutex<Vec<Connection>>,
}

/// A connection and the statements prepared on it.
struct Connection {
    client: Client,
    statements: HashMap<String, Statement>,
}

impl PostgresDriver {
    fn connect(url: &str, access: Access) -> Result<Self, StoreError> {
        let errors = Errors::new(crate::store::location::redact(url));
        let mut config: Config = url.parse().map_err(|e: tokio_postgres::Error| StoreError::Open {
            path: std::path::PathBuf::from(errors.store()),
            detail: format!(
                "not a PostgreSQL URL ({e}); write it like postgres://user@host/database or postgres:///database?host=/run/postgresql"
            ),
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.application_name("flowcore");
        let driver = PostgresDriver {
            config,
            errors,
            access,
            writer: Mutex::new(None),
            readers: Mutex::new(Vec::new()),
        };
        let first = driver.open_connection()?;
        match access {
            Access::Write => {
                schema::check(&first.client, &driver.errors, true)?;
                schema::migrate(&first.client, &driver.errors)?;
                *driver.writer.lock().unwrap_or_else(|e| e.into_inner()) = Some(first);
            }
            Access::Read => {
                schema::check(&first.client, &driver.errors, false)?;
                driver.give_back(first);
            }
        }
        Ok(driver)
    }

    fn open_connection(&self) -> Result<Connection, StoreError> {
        let client = io::connect(&self.config)
            .map_err(|detail| StoreError::Unreachable {
                store: self.errors.store().to_owned(),
                detail,
            })?
            .map_err(|e| self.errors.map(e))?;
        Ok(Connection {
            client,
            statements: HashMap::new(),
        })
    }

    fn writer(&self) -> MutexGuard<'_, Option<Connection>> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take_reader(&self) -> Result<Connection, StoreError> {
        let idle = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(conn) if !conn.client.is_closed() => Ok(conn),
            _ => self.open_connection(),
        }
    }

    fn give_back(&self, conn: Connection) {
        let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if readers.len() < IDLE_READERS && !conn.client.is_closed() {
            readers.push(conn);
        }
    }

    /// Runs `f` in a transaction on `conn`, committed if `f` succeeds.
    fn in_transaction<T>(
        &self,
        conn: &mut Connection,
        f: &mut dyn FnMut(&mut dyn Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let Connection { client, statements } = conn;
        io::wait(client.batch_execute("BEGIN")).map_err(|e| self.errors.map(e))?;
        let out = f(&mut PostgresConn {
            client,
            statements,
            errors: &self.errors,
        });
        match out {
            Ok(out) => {
                io::wait(client.batch_execute("COMMIT")).map_err(|e| self.errors.map(e))?;
                Ok(out)
            }
            Err(e) => {
                // A lost connection has rolled back already; the error is the one to report.
                let _ = io::wait(client.batch_execute("ROLLBACK"));
                Err(e)
            }
        }
    }
}

impl Driver for PostgresDriver {
    fn describe(&self) -> String {
        self.errors.store().to_owned()
    }

    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn opened_for_reading(&self) -> bool {
        self.access == Access::Read
    }

    /// A connection lost on the way (the server restarted, the network went down) is dropped,
    /// and the next attempt makes a new one.
    fn write_once<T>(
        &self,
        f: &mut dyn FnMut(&mut dyn Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut writer = self.writer();
        if writer.as_ref().is_none_or(|c| c.client.is_closed()) {
            *writer = Some(self.open_connection()?);
        }
        let conn = writer.as_mut().expect("made above");
        let result = self.in_transaction(conn, f);
        if matches!(result, Err(StoreError::Unreachable { .. })) || conn.client.is_closed() {
            *writer = None;
        }
        result
    }

    /// Conflicts between transactions are tried again at once; a server that is away is the
    /// caller's to wait for.
    fn write<T>(
        &self,
        f: &mut dyn FnMut(&mut dyn Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        loop {
            match self.write_once(f) {
                Err(StoreError::Busy { .. }) => std::thread::sleep(Duration::from_millis(10)),
                other => return other,
            }
        }
    }

    /// A read on a connection found lost is made again once on a new one.
    fn read<T>(
        &self,
        f: &mut dyn FnMut(&mut dyn Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.take_reader()?;
        let mut result = self.in_transaction(&mut conn, f);
        if matches!(result, Err(StoreError::Unreachable { .. })) {
            conn = self.open_connection()?;
            result = self.in_transaction(&mut conn, f);
        }
        self.give_back(conn);
        result
    }
}

/// A transaction running the store's statements, prepared once per connection.
struct PostgresConn<'t> {
    client: &'t Client,
    statements: &'t mut HashMap<String, Statement>,
    errors: &'t Errors,
}

impl PostgresConn<'_> {
    fn statement(&mut self, sql: &str) -> Result<Statement, StoreError> {
        let sql = Dialect::Postgres.adapt(sql);
        if let Some(statement) = self.statements.get(sql.as_ref()) {
            return Ok(statement.clone());
        }
        let statement = io::wait(self.client.prepare(&sql)).map_err(|e| self.errors.map(e))?;
        if self.statements.len() >= STATEMENTS {
            self.statements.clear();
        }
        self.statements.insert(sql.into_owned(), statement.clone());
        Ok(statement)
    }
}

impl Conn for PostgresConn<'_> {
    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<usize, StoreError> {
        let statement = self.statement(sql)?;
        let params: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        io::wait(self.client.execute(&statement, &params))
            .map(|n| n as usize)
            .map_err(|e| self.errors.map(e))
    }

    fn query(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        row: &mut dyn FnMut(&dyn Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let statement = self.statement(sql)?;
        let params: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let rows =
            io::wait(self.client.query(&statement, &params)).map_err(|e| self.errors.map(e))?;
        for r in &rows {
            row(&PostgresRow {
                row: r,
                errors: self.errors,
            })?;
        }
        Ok(())
    }
}

impl ToSql for Param<'_> {
    /// Written as the statement's parameter type asks: the store's statements give every
    /// parameter a type (`$1::bigint`), and integers of any width take an `i64`.
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match *self {
            Param::Null => Ok(IsNull::Yes),
            Param::Int(v) => match *ty {
                Type::INT4 => i32::try_from(v)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(v)?.to_sql(ty, out),
                _ => v.to_sql(ty, out),
            },
            Param::Text(v) => v.to_sql(ty, out),
            Param::Bytes(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

struct PostgresRow<'r> {
    row: &'r tokio_postgres::Row,
    errors: &'r Errors,
}

impl Row for PostgresRow<'_> {
    fn value(&self, i: usize) -> Result<Value, StoreError> {
        let ty = self
            .row
            .columns()
            .get(i)
            .map(|c| c.type_().clone())
            .ok_or_else(|| StoreError::Database {
                path: std::path::PathBuf::from(self.errors.store()),
                detail: format!("a query has no column {i}"),
            })?;
        let value = match ty {
            Type::INT8 => self
                .row
                .try_get::<_, Option<i64>>(i)
                .map(|v| v.map(Value::Int)),
            Type::INT4 => self
                .row
                .try_get::<_, Option<i32>>(i)
                .map(|v| v.map(|v| Value::Int(v.into()))),
            Type::INT2 => self
                .row
                .try_get::<_, Option<i16>>(i)
                .map(|v| v.map(|v| Value::Int(v.into()))),
            Type::BOOL => self
                .row
                .try_get::<_, Option<bool>>(i)
                .map(|v| v.map(|v| Value::Int(v.into()))),
            Type::BYTEA => self
                .row
                .try_get::<_, Option<Vec<u8>>>(i)
                .map(|v| v.map(Value::Bytes)),
            _ => self
                .row
                .try_get::<_, Option<String>>(i)
                .map(|v| v.map(Value::Text)),
        };
        value
            .map(|v| v.unwrap_or(Value::Null))
            .map_err(|e| self.errors.map(e))
    }
}
