//! Delayed task runs in SQL: recording them `Scheduled`, claiming them in batches (one short
//! transaction of four statements however many are claimed, `FOR UPDATE SKIP LOCKED` in
//! PostgreSQL so that workers claiming at once take different runs), and reading back where
//! they are.

use std::collections::HashMap;

use uuid::Uuid;

use crate::state::State;
use crate::store::StoreError;
use crate::store::sql::batch::in_chunks;
use crate::store::sql::driver::{Conn, Dialect, Param};
use crate::store::sql::rows::{int_at, key, kind_at, opt_uuid_at, text_at, ts, uuid_at};
use crate::store::task_requests::{
    ClaimedTask, DELAYED, DelayRequest, TASK_CRASH_RETRIES, TaskResult,
};

/// Ids bound in one `IN (…)` list: well under SQLite's 32,766 parameters.
const IDS_PER_STATEMENT: usize = 512;

/// `$first::type, $first+1::type, …`: `n` placeholders.
fn placeholders(first: usize, n: usize, ty: &str) -> String {
    (first..first + n)
        .map(|i| format!("${i}::{ty}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn delay(
    conn: &mut dyn Conn,
    dialect: Dialect,
    runs: &[DelayRequest],
) -> Result<(), StoreError> {
    let tags: Vec<String> = runs
        .iter()
        .map(|r| serde_json::to_string(&r.tags).unwrap_or_else(|_| "[]".to_owned()))
        .collect();
    let rows: Vec<(&DelayRequest, &String)> = runs.iter().zip(&tags).collect();
    in_chunks(
        conn,
        dialect,
        "INSERT INTO task_runs (id, flow_run_id, task, tags, state, attempts, cache, created_at,
             name) VALUES ",
        &[
            "bytea", "bytea", "text", "text", "text", "bigint", "text", "bigint", "text",
        ],
        "",
        &rows,
        |(r, tags), row| {
            row.extend([
                Param::Bytes(key(&r.id)),
                r.flow_run_id.as_ref().map(key).into(),
                Param::Text(r.task),
                Param::Text(tags),
                Param::Text("Scheduled"),
                Param::Int(0),
                Param::Text("off"),
                Param::Int(r.at.as_micros()),
                r.name.as_deref().into(),
            ]);
        },
    )?;
    in_chunks(
        conn,
        dialect,
        "INSERT INTO state_rows (run_id, seq, kind, at, message) VALUES ",
        &["bytea", "bigint", "text", "bigint", "text"],
        "",
        runs,
        |r, row| {
            row.extend([
                Param::Bytes(key(&r.id)),
                Param::Int(0),
                Param::Text("Scheduled"),
                Param::Int(r.at.as_micros()),
                Param::Text(DELAYED),
            ]);
        },
    )?;
    in_chunks(
        conn,
        dialect,
        "INSERT INTO task_requests (run_id, args, claims, crash_retries) VALUES ",
        &["bytea", "text", "bigint", "bigint"],
        "",
        runs,
        |r, row| {
            row.extend([
                Param::Bytes(key(&r.id)),
                Param::Text(&r.args),
                Param::Int(0),
                Param::Int(i64::from(TASK_CRASH_RETRIES)),
            ]);
        },
    )
}

/// Whether any delayed run of `tasks` waits for a worker: asked without the write lock.
pub(crate) fn any_waiting(conn: &mut dyn Conn, tasks: &[&str]) -> Result<bool, StoreError> {
    let sql = format!(
        "SELECT 1 FROM task_runs
         WHERE task IN ({}) AND state = 'Scheduled' AND process_id IS NULL LIMIT 1",
        placeholders(1, tasks.len(), "text")
    );
    let params: Vec<Param<'_>> = tasks.iter().map(|t| Param::Text(t)).collect();
    Ok(conn.first(&sql, &params, |_| Ok(()))?.is_some())
}

/// Claims up to `limit` waiting runs of `tasks` for the process `me`, oldest first.
pub(crate) fn claim(
    conn: &mut dyn Conn,
    tasks: &[&str],
    limit: usize,
    me: &Uuid,
) -> Result<Vec<ClaimedTask>, StoreError> {
    let n = tasks.len();
    let sql = format!(
        "SELECT id, task, flow_run_id FROM task_runs
         WHERE task IN ({}) AND state = 'Scheduled' AND process_id IS NULL
         ORDER BY created_at LIMIT ${}::bigint {{lock}}",
        placeholders(1, n, "text"),
        n + 1
    );
    let mut params: Vec<Param<'_>> = tasks.iter().map(|t| Param::Text(t)).collect();
    params.push(Param::Int(
        i64::try_from(limit.min(IDS_PER_STATEMENT)).unwrap_or(1),
    ));
    let found = conn.collect(&sql, &params, |r| {
        Ok((uuid_at(r, 0)?, text_at(r, 1)?, opt_uuid_at(r, 2)?))
    })?;
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = found.iter().map(|(id, ..)| *id).collect();
    let list = placeholders(2, ids.len(), "bytea");
    let mut params = vec![Param::Bytes(key(me))];
    params.extend(ids.iter().map(|id| Param::Bytes(key(id))));
    conn.execute(
        &format!("UPDATE task_runs SET process_id = $1::bytea WHERE id IN ({list})"),
        &params,
    )?;
    let list = placeholders(1, ids.len(), "bytea");
    let params: Vec<Param<'_>> = ids.iter().map(|id| Param::Bytes(key(id))).collect();
    let mut requests: HashMap<Uuid, (String, i64)> = conn
        .collect(
            &format!(
                "UPDATE task_requests SET claims = claims + 1 WHERE run_id IN ({list})
                 RETURNING run_id, args, claims"
            ),
            &params,
            |r| Ok((uuid_at(r, 0)?, (text_at(r, 1)?, int_at(r, 2)?))),
        )?
        .into_iter()
        .collect();
    let mut histories: HashMap<Uuid, Vec<State>> = HashMap::new();
    for (id, state) in conn.collect(
        &format!(
            "SELECT run_id, kind, at, message FROM states WHERE run_id IN ({list})
             ORDER BY run_id, seq"
        ),
        &params,
        |r| {
            Ok((
                uuid_at(r, 0)?,
                State::new(kind_at(r, 1)?, ts(r, 2)?, r.text(3)?),
            ))
        },
    )? {
        histories.entry(id).or_default().push(state);
    }
    Ok(found
        .into_iter()
        .filter_map(|(id, task, flow_run_id)| {
            // A task run without its request was not delayed: nothing to run it from.
            let (args, claims) = requests.remove(&id)?;
            Some(ClaimedTask {
                id,
                task,
                args,
                flow_run_id,
                attempt: u32::try_from(claims).unwrap_or(u32::MAX),
                history: histories.remove(&id).unwrap_or_default(),
            })
        })
        .collect())
}

pub(crate) fn results(conn: &mut dyn Conn, ids: &[Uuid]) -> Result<Vec<TaskResult>, StoreError> {
    let mut all = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(IDS_PER_STATEMENT) {
        let params: Vec<Param<'_>> = chunk.iter().map(|id| Param::Bytes(key(id))).collect();
        all.extend(conn.collect(
            &format!(
                "SELECT id, state, output, error FROM task_runs WHERE id IN ({})",
                placeholders(1, chunk.len(), "bytea")
            ),
            &params,
            |r| {
                Ok(TaskResult {
                    id: uuid_at(r, 0)?,
                    state: kind_at(r, 1)?,
                    output: r.text(2)?,
                    message: r.text(3)?,
                })
            },
        )?);
    }
    Ok(all)
}
