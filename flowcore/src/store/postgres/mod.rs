//! The PostgreSQL driver: one history for processes on many machines, with no server of
//! flowcore's in between. One connection for the writer thread's group commits (and one-off
//! writes), a few for reads; a lost connection is made again at the next attempt, so the
//! writer's retries carry batches over a server restart. The store itself (its statements,
//! crash marking, reads) is [`crate::store::sql`]'s.
//!
//! It uses `tokio-postgres`, its connections' I/O on a thread of their own (`io.rs`): the
//! store's calls block, and may come from any thread, a tokio worker included.
//!
//! The writer's batches are pipelined: a batch's statements are sent as they are made, without
//! waiting for each answer, and its transaction begins with the first and ends with one wait
//! for all the answers and the commit's, a round trip per batch instead of one per statement
//! (a round trip goes through the I/O thread and back: four thread wake-ups).
//!
//! The pool is this file's few lines (one writer connection, a handful of idle readers) rather
//! than `deadpool-postgres`: the writer thread owns its connection and the readers need no
//! async checkout, so a pool crate would add an async layer to block on and nothing more.

pub(crate) mod error;
mod io;
mod schema;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::BytesMut;
use futures_util::future::MaybeDone;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, Config, Statement};

use crate::store::StoreError;
use crate::store::process::ProcessInfo;
use crate::store::sql::SqlBackend;
use crate::store::sql::driver::{Access, Column, Conn, Dialect, Driver, Param, Row, Value};
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
            pipeline: None,
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

    /// Runs `f` in a transaction on the writer's connection, pipelined or not. A connection lost
    /// on the way (the server restarted, the network went down) is dropped, and the next
    /// attempt makes a new one.
    fn write_on_writer<T>(
        &self,
        f: &mut dyn FnMut(&mut dyn Conn) -> Result<T, StoreError>,
        pipelined: bool,
    ) -> Result<T, StoreError> {
        let mut writer = self.writer();
        if writer.as_ref().is_none_or(|c| c.client.is_closed()) {
            *writer = Some(self.open_connection()?);
        }
        let conn = writer.as_mut().expect("made above");
        let result = if pipelined {
            self.in_pipelined_transaction(conn, f)
        } else {
            self.in_transaction(conn, f)
        };
        if matches!(result, Err(StoreError::Unreachable { .. })) || conn.client.is_closed() {
            *writer = None;
        }
        result
    }

    /// [`PostgresDriver::in_transaction`] for a batch, pipelined (see the module's doc): `f`'s
    /// statements are answered only at the end, with the commit. A transaction in which `f`
    /// runs nothing is never begun: a batch of flushes alone costs no round trip.
    fn in_pipelined_transaction<T>(
        &self,
        conn: &mut Connection,
        f: &mut dyn FnMut(&mut dyn Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let Connection { client, statements } = conn;
        let mut conn = PostgresConn {
            client: &*client,
            statements,
            errors: &self.errors,
            pipeline: Some(Pipeline::default()),
        };
        let out = f(&mut conn);
        if !conn.pipeline.as_ref().is_some_and(|p| p.began) {
            return out;
        }
        match out {
            Ok(out) => {
                // A statement that failed aborted the transaction, whose COMMIT then answers
                // ROLLBACK without an error: the statements' answers say whether it committed.
                conn.send_simple("COMMIT");
                conn.answers()?;
                Ok(out)
            }
            Err(e) => {
                conn.send_simple("ROLLBACK");
                let _ = conn.answers();
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

    /// The writer thread's batches, pipelined: `f`'s statements are answered with the commit,
    /// and [`Conn::execute`] says 0 rows (a batch needs no counts).
    fn write_once<T>(
        &self,
        f: &mut dyn FnMut(&mut dyn Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.write_on_writer(f, true)
    }

    /// Conflicts between transactions are tried again at once; a server that is away is the
    /// caller's to wait for.
    fn write<T>(
        &self,
        f: &mut dyn FnMut(&mut dyn Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        loop {
            match self.write_on_writer(f, false) {
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
    /// For a pipelined transaction: `None` for one whose statements are answered one by one.
    pipeline: Option<Pipeline<'t>>,
}

#[derive(Default)]
struct Pipeline<'t> {
    /// Whether its `BEGIN` was sent.
    began: bool,
    /// What was sent and not yet answered, in order.
    sent: Vec<MaybeDone<Answer<'t>>>,
}

/// The answer to a statement sent in a pipeline: how many rows it changed.
type Answer<'t> = Pin<Box<dyn Future<Output = Result<u64, tokio_postgres::Error>> + 't>>;

impl<'t> PostgresConn<'t> {
    /// Sends the transaction's `BEGIN`, unless it was sent.
    fn begin(&mut self) {
        if self.pipeline.as_ref().is_some_and(|p| !p.began) {
            self.push(Self::simple(self.client, "BEGIN"));
            if let Some(p) = &mut self.pipeline {
                p.began = true;
            }
        }
    }

    /// Sends `answer`'s request now, after the transaction's `BEGIN`.
    fn send(&mut self, answer: Answer<'t>) {
        self.begin();
        self.push(answer);
    }

    /// Sends `sql`, a command without parameters, now.
    fn send_simple(&mut self, sql: &'static str) {
        self.push(Self::simple(self.client, sql));
    }

    fn simple(client: &'t Client, sql: &'static str) -> Answer<'t> {
        Box::pin(async move { client.batch_execute(sql).await.map(|()| 0) })
    }

    /// A request goes out when its future is first polled, in the order polled; its answer is
    /// read when it is polled again.
    fn push(&mut self, answer: Answer<'t>) {
        let Some(pipeline) = &mut self.pipeline else {
            return;
        };
        let mut cx = Context::from_waker(Waker::noop());
        // The answers already come are read, which drops their requests' parameters.
        for earlier in &mut pipeline.sent {
            let _ = Pin::new(earlier).poll(&mut cx);
        }
        let mut answer = MaybeDone::Future(answer);
        let _ = Pin::new(&mut answer).poll(&mut cx);
        pipeline.sent.push(answer);
    }

    /// Waits for the answers to everything sent; the first error, if any. Before anything else
    /// is waited for (a statement to prepare, a query's rows): until they are all read, their
    /// answers may hold up the connection's.
    fn answers(&mut self) -> Result<(), StoreError> {
        let Some(Pipeline { sent, .. }) = &mut self.pipeline else {
            return Ok(());
        };
        io::wait(std::future::poll_fn(|cx| {
            let mut done = true;
            for answer in sent.iter_mut() {
                done &= Pin::new(answer).poll(cx).is_ready();
            }
            if done { Poll::Ready(()) } else { Poll::Pending }
        }));
        let mut first_error = None;
        for mut answer in sent.drain(..) {
            if let Some(Err(e)) = Pin::new(&mut answer).take_output() {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(self.errors.map(e)),
            None => Ok(()),
        }
    }

    fn statement(&mut self, sql: &str) -> Result<Statement, StoreError> {
        let sql = Dialect::Postgres.adapt(sql);
        if let Some(statement) = self.statements.get(sql.as_ref()) {
            return Ok(statement.clone());
        }
        // Preparing waits for an answer, which may wait behind those not read yet.
        self.answers()?;
        let statement = io::wait(self.client.prepare(&sql)).map_err(|e| self.errors.map(e))?;
        if self.statements.len() >= STATEMENTS {
            self.statements.clear();
        }
        self.statements.insert(sql.into_owned(), statement.clone());
        Ok(statement)
    }
}

impl Conn for PostgresConn<'_> {
    /// In a pipeline, returns before the statement's answer, with 0 rows: a batch's statements
    /// need no counts, and their errors come with the commit.
    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<usize, StoreError> {
        if self.pipeline.is_some() {
            let statement = self.statement(sql)?;
            // Owned: the request is encoded when first polled, but its future borrows them
            // until it is answered.
            let params: Vec<Value> = params.iter().map(owned).collect();
            let client = self.client;
            self.send(Box::pin(async move {
                let params: Vec<Param<'_>> = params.iter().map(Value::param).collect();
                let params: Vec<&(dyn ToSql + Sync)> =
                    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
                client.execute(&statement, &params).await
            }));
            return Ok(0);
        }
        let statement = self.statement(sql)?;
        let params: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        io::wait(self.client.execute(&statement, &params))
            .map(|n| n as usize)
            .map_err(|e| self.errors.map(e))
    }

    fn execute_columns(&mut self, sql: &str, columns: Vec<Column>) -> Result<usize, StoreError> {
        let statement = self.statement(sql)?;
        if self.pipeline.is_some() {
            let client = self.client;
            self.send(Box::pin(async move {
                let params: Vec<&(dyn ToSql + Sync)> =
                    columns.iter().map(|c| c as &(dyn ToSql + Sync)).collect();
                client.execute(&statement, &params).await
            }));
            return Ok(0);
        }
        let params: Vec<&(dyn ToSql + Sync)> =
            columns.iter().map(|c| c as &(dyn ToSql + Sync)).collect();
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
        if self.pipeline.is_some() {
            // In the transaction, after what was sent before.
            self.begin();
            self.answers()?;
        }
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

fn owned(param: &Param<'_>) -> Value {
    match *param {
        Param::Null => Value::Null,
        Param::Int(v) => Value::Int(v),
        Param::Text(v) => Value::Text(v.to_owned()),
        Param::Bytes(v) => Value::Bytes(v.to_vec()),
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

impl ToSql for Column {
    /// An array of the column's values (`$1::bigint[]` and the like).
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Column::Ints(v) => v.to_sql(ty, out),
            Column::Texts(v) => v.to_sql(ty, out),
            Column::Bytes(v) => v.to_sql(ty, out),
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
