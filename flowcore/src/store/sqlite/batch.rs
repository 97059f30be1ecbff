//! One group commit: a batch of events turned into as few statements as possible.

use std::collections::HashMap;

use rusqlite::params;
use uuid::Uuid;

use crate::clock::Timestamp;
use crate::hooks::RunKind;
use crate::record::CacheStatus;
use crate::state::State;
use crate::store::event::{Event, RowUpdate, cache_name};
use crate::store::process::ProcessInfo;
use crate::store::sqlite::rows::key;

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
pub(super) fn write_batch(
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
