//! How runs are laid out in rows: ids as 16 bytes, times as microseconds, states by name.

use uuid::Uuid;

use crate::clock::Timestamp;
use crate::state::StateKind;
use crate::store::StoreError;
use crate::store::event::{FlowRow, TaskRow, parse_cache};
use crate::store::sql::crash::CrashView;
use crate::store::sql::driver::Row;

/// Ids are stored as their 16 bytes: less than half the size of their text, in every row and
/// index that holds one.
pub(crate) fn key(id: &Uuid) -> &[u8] {
    id.as_bytes()
}

/// A value the store did not write, or a newer flowcore wrote: said with what it was.
fn unreadable(what: &str, i: usize, detail: &str) -> StoreError {
    StoreError::Database {
        path: std::path::PathBuf::from("column"),
        detail: format!("column {i} holds {what} that cannot be read: {detail}"),
    }
}

pub(crate) fn opt_uuid_at(row: &dyn Row, i: usize) -> Result<Option<Uuid>, StoreError> {
    Ok(row.bytes(i)?.and_then(|bytes| match bytes.len() {
        16 => Uuid::from_slice(&bytes).ok(),
        // The earliest stores kept ids as text.
        _ => std::str::from_utf8(&bytes)
            .ok()
            .and_then(|t| Uuid::parse_str(t).ok()),
    }))
}

pub(crate) fn uuid_at(row: &dyn Row, i: usize) -> Result<Uuid, StoreError> {
    opt_uuid_at(row, i)?.ok_or_else(|| unreadable("a run id", i, "not 16 bytes or a UUID"))
}

pub(crate) fn text_at(row: &dyn Row, i: usize) -> Result<String, StoreError> {
    row.text(i)?
        .ok_or_else(|| unreadable("text", i, "it is empty (NULL)"))
}

pub(crate) fn int_at(row: &dyn Row, i: usize) -> Result<i64, StoreError> {
    row.int(i)?
        .ok_or_else(|| unreadable("a number", i, "it is empty (NULL)"))
}

/// A count or position that the store keeps small.
pub(crate) fn u32_at(row: &dyn Row, i: usize) -> Result<u32, StoreError> {
    let n = int_at(row, i)?;
    u32::try_from(n).map_err(|_| unreadable("a count", i, &n.to_string()))
}

pub(crate) fn opt_u32_at(row: &dyn Row, i: usize) -> Result<Option<u32>, StoreError> {
    row.int(i)?
        .map(|n| u32::try_from(n).map_err(|_| unreadable("a count", i, &n.to_string())))
        .transpose()
}

pub(crate) fn kind_at(row: &dyn Row, i: usize) -> Result<StateKind, StoreError> {
    text_at(row, i)?
        .parse()
        .map_err(|e: String| unreadable("a state", i, &e))
}

pub(crate) fn ts(row: &dyn Row, i: usize) -> Result<Timestamp, StoreError> {
    Ok(Timestamp::from_micros(int_at(row, i)?))
}

pub(crate) fn opt_ts(row: &dyn Row, i: usize) -> Result<Option<Timestamp>, StoreError> {
    Ok(row.int(i)?.map(Timestamp::from_micros))
}

pub(crate) const FLOW_COLUMNS: &str = "id, name, flow, parent_id, parameters, state, attempts, created_at, started_at, ended_at, error, call_seq, output, deployment, process_id, tags";

/// A flow run's row (selected with [`FLOW_COLUMNS`]), as `view` shows it.
pub(crate) fn flow_row(row: &dyn Row, view: &CrashView) -> Result<FlowRow, StoreError> {
    let mut flow = FlowRow {
        id: uuid_at(row, 0)?,
        name: text_at(row, 1)?,
        tags: tags_at(row, 15)?,
        flow: text_at(row, 2)?,
        parent_id: opt_uuid_at(row, 3)?,
        parameters: row.text(4)?,
        state: kind_at(row, 5)?,
        attempts: u32_at(row, 6)?,
        created_at: ts(row, 7)?,
        started_at: opt_ts(row, 8)?,
        ended_at: opt_ts(row, 9)?,
        error: row.text(10)?,
        call_seq: opt_u32_at(row, 11)?,
        output: row.text(12)?,
        deployment: row.text(13)?,
    };
    view.flow(&mut flow, row.bytes(14)?.as_deref());
    Ok(flow)
}

/// Tags, stored as a JSON array of strings.
fn tags_at(row: &dyn Row, i: usize) -> Result<Vec<String>, StoreError> {
    let tags = row.text(i)?.unwrap_or_default();
    Ok(serde_json::from_str(&tags).unwrap_or_default())
}

pub(crate) const TASK_COLUMNS: &str = "id, flow_run_id, task, tags, state, attempts, cache, created_at, call_seq, output, upstream, map_index, process_id, name";

/// A task run's row (selected with [`TASK_COLUMNS`]), as `view` shows it.
pub(crate) fn task_row(row: &dyn Row, view: &CrashView) -> Result<TaskRow, StoreError> {
    let cache = row.text(6)?.unwrap_or_default();
    let mut task = TaskRow {
        id: uuid_at(row, 0)?,
        flow_run_id: opt_uuid_at(row, 1)?,
        task: text_at(row, 2)?,
        name: row.text(13)?,
        tags: tags_at(row, 3)?,
        state: kind_at(row, 4)?,
        attempts: u32_at(row, 5)?,
        cache: parse_cache(&cache),
        created_at: ts(row, 7)?,
        call_seq: opt_u32_at(row, 8)?,
        output: row.text(9)?,
        upstream: row
            .text(10)?
            .and_then(|json| serde_json::from_str(&json).ok())
            .unwrap_or_default(),
        map_index: opt_u32_at(row, 11)?,
    };
    view.task(&mut task, row.bytes(12)?.as_deref());
    Ok(task)
}
