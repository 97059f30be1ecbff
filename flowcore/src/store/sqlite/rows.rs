//! How runs are laid out in rows: ids as 16 bytes, times as microseconds, states by name.

use rusqlite::Row;
use uuid::Uuid;

use crate::clock::Timestamp;
use crate::state::StateKind;
use crate::store::event::{FlowRow, TaskRow, parse_cache};
use crate::store::sqlite::crash::CrashView;

/// Ids are stored as their 16 bytes: less than half the size of their text, in every row and
/// index that holds one.
pub(super) fn key(id: &Uuid) -> &[u8] {
    id.as_bytes()
}

pub(super) fn uuid_at(row: &Row<'_>, i: usize) -> rusqlite::Result<Uuid> {
    opt_uuid_at(row, i)?.ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Blob,
            "not a run id".into(),
        )
    })
}

pub(super) fn opt_uuid_at(row: &Row<'_>, i: usize) -> rusqlite::Result<Option<Uuid>> {
    use rusqlite::types::ValueRef;
    Ok(match row.get_ref(i)? {
        ValueRef::Blob(bytes) => Uuid::from_slice(bytes).ok(),
        ValueRef::Text(text) => std::str::from_utf8(text)
            .ok()
            .and_then(|t| Uuid::parse_str(t).ok()),
        _ => None,
    })
}

pub(super) fn kind_at(row: &Row<'_>, i: usize) -> rusqlite::Result<StateKind> {
    let s: String = row.get(i)?;
    s.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    })
}

pub(super) fn ts(row: &Row<'_>, i: usize) -> rusqlite::Result<Timestamp> {
    Ok(Timestamp::from_micros(row.get(i)?))
}

pub(super) fn opt_ts(row: &Row<'_>, i: usize) -> rusqlite::Result<Option<Timestamp>> {
    Ok(row.get::<_, Option<i64>>(i)?.map(Timestamp::from_micros))
}

pub(super) const FLOW_COLUMNS: &str = "id, name, flow, parent_id, parameters, state, attempts, created_at, started_at, ended_at, error, call_seq, output, deployment, process_id";

/// The process that ran a run, as stored; `None` for a run no process has claimed.
pub(super) fn process_at<'r>(row: &'r Row<'_>, i: usize) -> rusqlite::Result<Option<&'r [u8]>> {
    Ok(crate::store::sqlite::crash::id_bytes(row.get_ref(i)?))
}

/// A flow run's row (selected with [`FLOW_COLUMNS`]), as `view` shows it.
pub(super) fn flow_row(row: &Row<'_>, view: &CrashView) -> rusqlite::Result<FlowRow> {
    let mut flow = FlowRow {
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
    };
    view.flow(&mut flow, process_at(row, 14)?);
    Ok(flow)
}

pub(super) const TASK_COLUMNS: &str = "id, flow_run_id, task, tags, state, attempts, cache, created_at, call_seq, output, upstream, map_index, process_id";

/// A task run's row (selected with [`TASK_COLUMNS`]), as `view` shows it.
pub(super) fn task_row(row: &Row<'_>, view: &CrashView) -> rusqlite::Result<TaskRow> {
    let tags: String = row.get(3)?;
    let cache: String = row.get(6)?;
    let mut task = TaskRow {
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
    };
    view.task(&mut task, process_at(row, 12)?);
    Ok(task)
}
