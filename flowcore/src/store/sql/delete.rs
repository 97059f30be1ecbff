//! Deleting flow runs from a SQL store, in the caller's transaction: the runs under each (its
//! subflow runs, their subflow runs, and all their task runs), a look for any of them still
//! going in a process that is alive, then every row of theirs, table by table, children
//! before parents.

use std::collections::HashSet;

use crate::clock::Timestamp;
use crate::store::StoreError;
use crate::store::delete::{Deleted, Going};
use crate::store::process::ProcessInfo;

use super::crash;
use super::driver::{Conn, Param, Value};
use super::rows::{int_at, kind_at, text_at};

/// Ids bound in one statement: far below SQLite's 32,766 parameters and PostgreSQL's 65,535,
/// and enough that a prune of 100,000 task runs takes 200 statements a table.
const IDS_PER_STATEMENT: usize = 500;

/// Flow runs and task runs to delete, their ids as stored.
#[derive(Default)]
pub(crate) struct Runs {
    flows: Vec<Value>,
    tasks: Vec<Value>,
}

/// `$first::bytea, …` for `n` ids.
fn placeholders(n: usize, first: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}::bytea"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs `sql`, whose `{ids}` is replaced by a list of ids, for every chunk of `ids`; collects
/// what `row` reads.
fn each_chunk<T>(
    c: &mut dyn Conn,
    sql: &str,
    ids: &[Value],
    mut row: impl FnMut(&dyn super::driver::Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    for chunk in ids.chunks(IDS_PER_STATEMENT) {
        let sql = sql.replace("{ids}", &placeholders(chunk.len(), 1));
        let params: Vec<Param<'_>> = chunk.iter().map(Value::param).collect();
        out.extend(c.collect(&sql, &params, &mut row)?);
    }
    Ok(out)
}

/// The flow runs `roots`, every flow run under them, and all their task runs.
pub(crate) fn gather(c: &mut dyn Conn, roots: Vec<Value>) -> Result<Runs, StoreError> {
    let mut seen: HashSet<Value> = roots.iter().cloned().collect();
    let mut flows = roots.clone();
    let mut level = roots;
    while !level.is_empty() {
        let children = each_chunk(
            c,
            "SELECT id FROM flow_runs WHERE parent_id IN ({ids})",
            &level,
            |r| r.value(0),
        )?;
        level = children
            .into_iter()
            .filter(|id| seen.insert(id.clone()))
            .collect();
        flows.extend(level.iter().cloned());
    }
    let tasks = each_chunk(
        c,
        "SELECT id FROM task_runs WHERE flow_run_id IN ({ids})",
        &flows,
        |r| r.value(0),
    )?;
    Ok(Runs { flows, tasks })
}

/// The first of `runs` still going (in a state that is not final) in a process that is alive:
/// not ended, and not found dead as readers find it (this process is alive).
pub(crate) fn first_going(
    c: &mut dyn Conn,
    runs: &Runs,
    me: &ProcessInfo,
) -> Result<Option<Going>, StoreError> {
    let dead = crash::dead_processes(c, me, Timestamp::wall_now())?;
    for (sql, ids, kind) in [
        (
            "SELECT r.name, r.state, p.pid, p.host, p.id FROM flow_runs r
                 JOIN processes p ON p.id = r.process_id
             WHERE r.id IN ({ids}) AND p.ended_at IS NULL",
            &runs.flows,
            "flow run",
        ),
        (
            "SELECT r.task, r.state, p.pid, p.host, p.id FROM task_runs r
                 JOIN processes p ON p.id = r.process_id
             WHERE r.id IN ({ids}) AND p.ended_at IS NULL",
            &runs.tasks,
            "task run of",
        ),
    ] {
        let held = each_chunk(c, sql, ids, |r| {
            Ok((
                text_at(r, 0)?,
                kind_at(r, 1)?,
                int_at(r, 2)?,
                text_at(r, 3)?,
                r.bytes(4)?.unwrap_or_default(),
            ))
        })?;
        let going = held
            .into_iter()
            .find(|(_, state, _, _, process)| !state.is_final() && !dead.contains_key(process));
        if let Some((name, state, pid, host, _)) = going {
            return Ok(Some(Going {
                name: format!("{kind} '{name}'"),
                state,
                pid: u32::try_from(pid).unwrap_or(0),
                host,
            }));
        }
    }
    Ok(None)
}

/// Deletes every row of `runs`: their states, log lines, artifacts, input asked for, a delayed
/// task run's arguments and any slot of a store-wide limit, then the task runs, then the flow
/// runs.
pub(crate) fn delete(c: &mut dyn Conn, runs: &Runs) -> Result<Deleted, StoreError> {
    for (sql, ids) in [
        (
            "DELETE FROM state_rows WHERE run_id IN ({ids})",
            &runs.tasks,
        ),
        (
            "DELETE FROM state_rows WHERE run_id IN ({ids})",
            &runs.flows,
        ),
        ("DELETE FROM logs WHERE run_id IN ({ids})", &runs.tasks),
        ("DELETE FROM logs WHERE run_id IN ({ids})", &runs.flows),
        (
            "DELETE FROM artifacts WHERE flow_run_id IN ({ids})",
            &runs.flows,
        ),
        (
            "DELETE FROM run_inputs WHERE flow_run_id IN ({ids})",
            &runs.flows,
        ),
        (
            "DELETE FROM task_requests WHERE run_id IN ({ids})",
            &runs.tasks,
        ),
        (
            "DELETE FROM limit_slots WHERE task_run_id IN ({ids})",
            &runs.tasks,
        ),
        ("DELETE FROM task_runs WHERE id IN ({ids})", &runs.tasks),
        ("DELETE FROM flow_runs WHERE id IN ({ids})", &runs.flows),
    ] {
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let sql = sql.replace("{ids}", &placeholders(chunk.len(), 1));
            let params: Vec<Param<'_>> = chunk.iter().map(Value::param).collect();
            c.execute(&sql, &params)?;
        }
    }
    Ok(Deleted {
        flow_runs: runs.flows.len(),
        task_runs: runs.tasks.len(),
    })
}
