//! What a SQL database must give the store: transactions that run statements and queries, rows
//! read by position, and the few words its dialect says differently.
//!
//! The store's statements are written once, for both SQLite and PostgreSQL: with PostgreSQL's
//! numbered parameters and casts (`$1::bytea`), which SQLite reads without the casts, and a few
//! words in braces that differ: `{order}`, the column that orders rows as they were inserted,
//! `{lock}`, how a claim locks the rows it takes from other writers, `{share}`, how a writer
//! keeps a row from changing until it commits, and `{now}`, the database's clock in
//! microseconds (the server's, for PostgreSQL: one clock for every host's processes).
//! [`Dialect::adapt`] turns a statement into the dialect's own.

use std::borrow::Cow;

use crate::store::StoreError;

/// How a store's database is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// By a program that runs flows: the store is made if there is none, and upgraded to this
    /// build's schema.
    Write,
    /// By a tool that reads runs (the CLI, the dashboard): it must be a flowcore store of this
    /// build's schema, and nothing is written to it unless a write is asked for.
    Read,
}

/// A value bound to a statement's parameter, borrowed from the caller: binding copies nothing.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Param<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    Bytes(&'a [u8]),
}

impl<'a> From<i64> for Param<'a> {
    fn from(v: i64) -> Self {
        Param::Int(v)
    }
}

impl<'a> From<u32> for Param<'a> {
    fn from(v: u32) -> Self {
        Param::Int(i64::from(v))
    }
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(v: &'a str) -> Self {
        Param::Text(v)
    }
}

impl<'a> From<&'a String> for Param<'a> {
    fn from(v: &'a String) -> Self {
        Param::Text(v)
    }
}

impl<'a> From<&'a [u8]> for Param<'a> {
    fn from(v: &'a [u8]) -> Self {
        Param::Bytes(v)
    }
}

impl<'a, T: Into<Param<'a>>> From<Option<T>> for Param<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Param::Null, Into::into)
    }
}

/// A value read from a row, owned, as the database holds it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

/// A column of rows' values, bound as one array parameter: a multi-row statement of PostgreSQL
/// as `unnest($1::bytea[], $2::text[], …)` has as many parameters as columns, whatever its
/// number of rows, so that the server plans it once and does not build an expression per
/// value (which took most of its time with `VALUES` lists of thousands of parameters).
#[derive(Debug)]
pub(crate) enum Column {
    Ints(Vec<Option<i64>>),
    Texts(Vec<Option<String>>),
    Bytes(Vec<Option<Vec<u8>>>),
}

impl Column {
    /// An empty column of the SQL type `ty` (`bigint`, `text`, `bytea`), for `rows` rows.
    pub(crate) fn of_type(ty: &str, rows: usize) -> Column {
        match ty {
            "bigint" => Column::Ints(Vec::with_capacity(rows)),
            "bytea" => Column::Bytes(Vec::with_capacity(rows)),
            _ => Column::Texts(Vec::with_capacity(rows)),
        }
    }

    /// Appends one row's value, as the column's type takes it.
    pub(crate) fn push(&mut self, value: &Param<'_>) {
        match (self, *value) {
            (Column::Ints(v), Param::Int(i)) => v.push(Some(i)),
            (Column::Ints(v), Param::Text(s)) => v.push(s.parse().ok()),
            (Column::Ints(v), _) => v.push(None),
            (Column::Texts(v), Param::Text(s)) => v.push(Some(s.to_owned())),
            (Column::Texts(v), Param::Int(i)) => v.push(Some(i.to_string())),
            (Column::Texts(v), Param::Bytes(b)) => {
                v.push(Some(String::from_utf8_lossy(b).into_owned()))
            }
            (Column::Texts(v), Param::Null) => v.push(None),
            (Column::Bytes(v), Param::Bytes(b)) => v.push(Some(b.to_vec())),
            (Column::Bytes(v), Param::Text(s)) => v.push(Some(s.as_bytes().to_vec())),
            (Column::Bytes(v), _) => v.push(None),
        }
    }
}

impl Value {
    /// The value bound back as it was read: an id is written to as it is stored, whatever its
    /// type (the earliest SQLite stores kept ids as text).
    pub(crate) fn param(&self) -> Param<'_> {
        match self {
            Value::Null => Param::Null,
            Value::Int(v) => Param::Int(*v),
            Value::Text(v) => Param::Text(v),
            Value::Bytes(v) => Param::Bytes(v),
        }
    }

    /// A blob's bytes, or a text's.
    pub(crate) fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Text(v) => Some(v.as_bytes()),
            Value::Bytes(v) => Some(v),
            _ => None,
        }
    }
}

/// A row of a query's result, read by column position.
pub(crate) trait Row {
    fn value(&self, i: usize) -> Result<Value, StoreError>;

    fn int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        match self.value(i)? {
            Value::Int(v) => Ok(Some(v)),
            Value::Null => Ok(None),
            other => Err(wrong_type(i, "a number", &other)),
        }
    }

    fn text(&self, i: usize) -> Result<Option<String>, StoreError> {
        match self.value(i)? {
            Value::Text(v) => Ok(Some(v)),
            Value::Null => Ok(None),
            other => Err(wrong_type(i, "text", &other)),
        }
    }

    /// A blob, or the bytes of a text (ids of the earliest SQLite stores are text).
    fn bytes(&self, i: usize) -> Result<Option<Vec<u8>>, StoreError> {
        match self.value(i)? {
            Value::Bytes(v) => Ok(Some(v)),
            Value::Text(v) => Ok(Some(v.into_bytes())),
            Value::Null => Ok(None),
            other => Err(wrong_type(i, "bytes", &other)),
        }
    }
}

fn wrong_type(i: usize, wanted: &str, found: &Value) -> StoreError {
    StoreError::Database {
        path: std::path::PathBuf::from("column"),
        detail: format!("column {i} should hold {wanted}, and holds {found:?}"),
    }
}

/// A connection inside a transaction.
pub(crate) trait Conn {
    /// Runs a statement; returns how many rows it changed.
    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<usize, StoreError>;
    /// Runs a statement whose parameters are whole columns, one array each (PostgreSQL's
    /// `unnest`; see [`Column`]). Only PostgreSQL's connections are given such statements.
    fn execute_columns(&mut self, sql: &str, columns: Vec<Column>) -> Result<usize, StoreError> {
        let _ = columns;
        Err(StoreError::BadParameter(format!(
            "this store takes no column parameters: {sql}"
        )))
    }
    /// Runs a query, handing each row to `row` in order.
    fn query(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        row: &mut dyn FnMut(&dyn Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
}

impl dyn Conn + '_ {
    /// The rows of a query, each made by `f`.
    pub(crate) fn collect<T>(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        mut f: impl FnMut(&dyn Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        self.query(sql, params, &mut |row| {
            out.push(f(row)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// The first row of a query, made by `f`, if there is one.
    pub(crate) fn first<T>(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        mut f: impl FnMut(&dyn Row) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let mut out = None;
        self.query(sql, params, &mut |row| {
            if out.is_none() {
                out = Some(f(row)?);
            }
            Ok(())
        })?;
        Ok(out)
    }
}

/// A database a store keeps its runs in: how to run a transaction on it.
pub(crate) trait Driver: Send + Sync + 'static {
    /// Where it keeps runs, for messages: a path, or a URL without its password.
    fn describe(&self) -> String;

    fn dialect(&self) -> Dialect;

    /// Whether it was opened for reading: then nothing is written unless asked for.
    fn opened_for_reading(&self) -> bool;

    /// Runs `f` in one write transaction, committed if `f` succeeds: once, for the writer
    /// thread, which tries a batch again itself.
    fn write_once<T>(
        &self,
        f: &mut dyn FnMut(&mut dyn Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError>;

    /// [`Driver::write_once`], waiting out other processes' locks: for one-off writes.
    fn write<T>(
        &self,
        f: &mut dyn FnMut(&mut dyn Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError>;

    /// Runs `f` on a connection that reads one consistent snapshot.
    fn read<T>(
        &self,
        f: &mut dyn FnMut(&mut dyn Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError>;

    /// [`Driver::read`] if it can answer without waiting for a lock, another thread or
    /// another process; `None` if it would have to wait.
    fn read_without_waiting<T>(
        &self,
        _f: &mut dyn FnMut(&mut dyn Conn) -> Result<T, StoreError>,
    ) -> Option<Result<T, StoreError>> {
        None
    }

    /// Moves what sits in a log beside the database into the database itself, for a store
    /// closing: nothing to do for a server.
    fn checkpoint(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The two dialects the store's statements are written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(not(all(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// `sql`, written for both, in this dialect: borrowed when it has nothing to change.
    pub(crate) fn adapt(self, sql: &str) -> Cow<'_, str> {
        // A byte scan, not `str::contains` with a set of chars, which decodes each one: a
        // multi-row statement of SQLite's is some 10 KB, and it comes each batch.
        let changes = match self {
            Dialect::Sqlite => scan::any_of3(b'$', b'{', b':', sql.as_bytes()),
            Dialect::Postgres => scan::any_of1(b'{', sql.as_bytes()),
        };
        if !changes {
            return Cow::Borrowed(sql);
        }
        let (order, lock, share, now) = match self {
            // SQLite's write lock is the whole database's: a writer's rows cannot change
            // under it.
            Dialect::Sqlite => (
                "rowid",
                "",
                "",
                "CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)",
            ),
            Dialect::Postgres => (
                "row_order",
                "FOR UPDATE SKIP LOCKED",
                "FOR SHARE",
                "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::bigint",
            ),
        };
        let sql = sql
            .replace("{order}", order)
            .replace("{lock}", lock)
            .replace("{share}", share)
            .replace("{now}", now);
        if self == Dialect::Postgres {
            return Cow::Owned(sql);
        }
        // SQLite takes no casts (`::bytea` and the like go), and reads `$3` as a parameter
        // *named* "$3", numbered in the order names first appear: `?3` is its third parameter
        // wherever it appears, as `$3` is PostgreSQL's.
        let mut out = String::with_capacity(sql.len());
        let mut rest = sql.as_str();
        while let Some(at) = rest.find(['$', ':']) {
            out.push_str(&rest[..at]);
            rest = &rest[at..];
            if let Some(after) = rest.strip_prefix("::") {
                rest = after.trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_');
            } else if rest.starts_with('$') && rest[1..].starts_with(|c: char| c.is_ascii_digit()) {
                out.push('?');
                rest = &rest[1..];
            } else {
                out.push_str(&rest[..1]);
                rest = &rest[1..];
            }
        }
        out.push_str(rest);
        Cow::Owned(out)
    }

    /// A blob literal of `bytes`, as a query's text may hold it: ids of dead processes, which
    /// are hex digits only, never text from the database.
    pub(crate) fn blob_literal(self, bytes: &[u8], stored_as_text: bool) -> String {
        use std::fmt::Write as _;
        let mut hex = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            let _ = write!(hex, "{b:02x}");
        }
        match (self, stored_as_text) {
            (Dialect::Sqlite, false) => format!("X'{hex}'"),
            (Dialect::Sqlite, true) => format!("CAST(X'{hex}' AS TEXT)"),
            (Dialect::Postgres, _) => format!("'\\x{hex}'::bytea"),
        }
    }

    /// How many rows one multi-row `INSERT` of `columns` columns may carry: SQLite allows 32,766
    /// parameters a statement, PostgreSQL 65,535; fewer, longer statements cost PostgreSQL fewer
    /// round trips, while SQLite gains nothing past a few dozen rows.
    pub(crate) fn rows_per_insert(self, columns: usize) -> usize {
        match self {
            Dialect::Sqlite => 64,
            Dialect::Postgres => (60_000 / columns).min(2_000),
        }
    }
}

/// `($1::bytea,$2::bigint,…),(…)`: the `VALUES` of `rows` rows of these column types,
/// numbered from `$1`, in the dialect's own words (for SQLite `(?,?,…)`), handed to `use_it`:
/// a statement of thousands of parameters is built once, not built and then rewritten.
///
/// The text for fewer rows is the start of the text for more, so each thread keeps, per column
/// types, the text of the most rows it was asked for and hands out its start: a group commit
/// writes its statements without formatting a number (that was a tenth of the writer's time).
pub(crate) fn values<R>(
    dialect: Dialect,
    types: &'static [&'static str],
    rows: usize,
    use_it: impl FnOnce(&str) -> R,
) -> R {
    use std::cell::RefCell;
    use std::collections::HashMap;

    /// A `VALUES` text and where each of its rows ends.
    #[derive(Default)]
    struct Built {
        text: String,
        ends: Vec<usize>,
    }

    thread_local! {
        /// By the address of the column types (static, so an address is one list for the
        /// program's life) and the dialect.
        static BUILT: RefCell<HashMap<(usize, usize, Dialect), Built>> =
            RefCell::new(HashMap::new());
    }

    if rows == 0 {
        return use_it("");
    }
    BUILT.with(|built| {
        let mut built = built.borrow_mut();
        let key = (types.as_ptr() as usize, types.len(), dialect);
        let entry = built.entry(key).or_default();
        while entry.ends.len() < rows {
            extend(&mut entry.text, dialect, types, entry.ends.len());
            entry.ends.push(entry.text.len());
        }
        use_it(&entry.text[..entry.ends[rows - 1]])
    })
}

/// Appends the row after the first `done` rows to a `VALUES` text.
///
/// SQLite's parameters are plain `?`s, which it numbers in order as `$1` on are numbered: the
/// text is a third as long, and SQLite's statement cache hashes and compares the whole text
/// at every statement it runs.
fn extend(out: &mut String, dialect: Dialect, types: &[&str], done: usize) {
    use std::fmt::Write as _;
    if done > 0 {
        out.push(',');
    }
    out.push('(');
    for (i, ty) in types.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match dialect {
            Dialect::Sqlite => out.push('?'),
            Dialect::Postgres => {
                let n = done * types.len() + i + 1;
                let _ = write!(out, "${n}::{ty}");
            }
        }
    }
    out.push(')');
}

/// Byte scans of statements without asking the processor what it has.
///
/// `memchr`'s functions pick their instructions at the first call by asking the processor
/// (`CPUID`), which a virtual machine answers in its hypervisor: 70 µs once per process here,
/// over 1 % of a one-task flow's whole process. On x86_64 the SSE2 version needs no asking
/// (every x86_64 processor has SSE2) and is as fast for statements of a few KB.
mod scan {
    #[cfg(target_arch = "x86_64")]
    pub(super) fn any_of3(a: u8, b: u8, c: u8, haystack: &[u8]) -> bool {
        match memchr::arch::x86_64::sse2::memchr::Three::new(a, b, c) {
            Some(scan) => scan.find(haystack).is_some(),
            None => memchr::memchr3(a, b, c, haystack).is_some(),
        }
    }

    #[cfg(target_arch = "x86_64")]
    pub(super) fn any_of1(a: u8, haystack: &[u8]) -> bool {
        match memchr::arch::x86_64::sse2::memchr::One::new(a) {
            Some(scan) => scan.find(haystack).is_some(),
            None => memchr::memchr(a, haystack).is_some(),
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub(super) fn any_of3(a: u8, b: u8, c: u8, haystack: &[u8]) -> bool {
        memchr::memchr3(a, b, c, haystack).is_some()
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub(super) fn any_of1(a: u8, haystack: &[u8]) -> bool {
        memchr::memchr(a, haystack).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_drops_the_casts_and_each_dialect_says_its_words() {
        let sql = "SELECT id FROM task_runs WHERE process_id = $1::bytea AND n > $2::bigint ORDER BY {order} {lock}";
        assert_eq!(
            Dialect::Sqlite.adapt(sql),
            "SELECT id FROM task_runs WHERE process_id = ?1 AND n > ?2 ORDER BY rowid "
        );
        assert_eq!(
            Dialect::Postgres.adapt(sql),
            "SELECT id FROM task_runs WHERE process_id = $1::bytea AND n > $2::bigint ORDER BY row_order FOR UPDATE SKIP LOCKED"
        );
        let plain = "SELECT 1";
        assert!(matches!(Dialect::Sqlite.adapt(plain), Cow::Borrowed(_)));
        // Parameters keep their numbers wherever they appear, as in PostgreSQL.
        assert_eq!(
            Dialect::Sqlite.adapt("WHERE ($2::text IS NULL OR s = $2::text) LIMIT $1::bigint"),
            "WHERE (?2 IS NULL OR s = ?2) LIMIT ?1"
        );
    }

    /// The scans look at every byte: at the start, in the middle and at the end of long and
    /// short statements (the SSE2 scan reads 16 bytes at a time, with a tail).
    #[test]
    fn a_statement_with_a_word_to_change_anywhere_is_changed() {
        for len in [0, 1, 15, 16, 17, 100, 10_000] {
            let plain = "x".repeat(len);
            assert!(matches!(Dialect::Sqlite.adapt(&plain), Cow::Borrowed(_)));
            assert!(matches!(Dialect::Postgres.adapt(&plain), Cow::Borrowed(_)));
            for at in [0, len / 2, len] {
                let with = |word: &str| format!("{}{word}{}", &plain[..at], &plain[at..]);
                for (dialect, word) in [
                    (Dialect::Sqlite, "$1"),
                    (Dialect::Sqlite, "{order}"),
                    (Dialect::Sqlite, "$1::bigint"),
                    (Dialect::Postgres, "{order}"),
                ] {
                    let sql = with(word);
                    assert!(
                        matches!(dialect.adapt(&sql), Cow::Owned(_)),
                        "{word} at {at} of {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn values_are_numbered_across_rows() {
        const TYPES: &[&str] = &["bytea", "bigint"];
        let text = |dialect, rows| values(dialect, TYPES, rows, str::to_owned);
        assert_eq!(
            text(Dialect::Postgres, 2),
            "($1::bytea,$2::bigint),($3::bytea,$4::bigint)"
        );
        // SQLite numbers plain `?`s in order: the same as `?1, ?2, ?3, ?4`.
        assert_eq!(text(Dialect::Sqlite, 2), "(?,?),(?,?)");
        // Fewer rows after more, from the text kept for more; more again after fewer.
        assert_eq!(text(Dialect::Sqlite, 3), "(?,?),(?,?),(?,?)");
        assert_eq!(text(Dialect::Sqlite, 1), "(?,?)");
        assert_eq!(text(Dialect::Postgres, 1), "($1::bytea,$2::bigint)");
        assert_eq!(text(Dialect::Sqlite, 0), "");
    }
}
