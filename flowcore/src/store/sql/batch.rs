//! One group commit: a batch of events turned into as few statements as possible, the same
//! statements for SQLite and PostgreSQL.
//!
//! Each run's row is written once a batch: inserted if the run began in it, with the state its
//! later events left it in, otherwise updated. Rows go in with multi-row `INSERT`s and
//! `UPDATE … FROM (VALUES …)`s, a statement for dozens to thousands of rows (a round trip each
//! to PostgreSQL). A batch applied twice changes nothing the second time (rows have keys, and a
//! row already there is left as it is): the writer may try a batch again after a commit whose
//! answer was lost with the connection.

use std::borrow::Cow;
use std::collections::HashMap;

use uuid::Uuid;

use crate::clock::Timestamp;
use crate::hooks::RunKind;
use crate::record::CacheStatus;
use crate::run_id_hasher::BuildRunIdHasher;
use crate::state::{State, StateKind};
use crate::store::StoreError;
use crate::store::event::{Event, RowUpdate, cache_name};
use crate::store::process::ProcessInfo;
use crate::store::sql::driver::{Column, Conn, Dialect, Param, values};
use crate::store::sql::rows::key;

/// A run row as it will be inserted: a run created in this batch is inserted once, with the
/// state its later events in the batch left it in.
struct NewRun<'a> {
    kind: RunKind,
    id: Uuid,
    parent: Option<Uuid>,
    /// A flow run's name; for a task run, the one `task_run_name` gave it.
    name: Option<&'a str>,
    flow_or_task: &'a str,
    deployment: Option<&'a str>,
    tags: Option<Cow<'static, str>>,
    parameters: Option<&'a str>,
    call_seq: Option<u32>,
    created_at: i64,
    update: RowUpdate,
    output: Option<&'a str>,
    upstream: Option<String>,
    map_index: Option<u32>,
    /// How many of a task run's first states are the usual ones, kept in its row.
    usual_states: u8,
    /// Whether a state that is not the next usual one came: the rest are rows of their own.
    unusual: bool,
}

/// A task run's usual states, in order: kept in its row (`usual_states`) rather than as rows of
/// their own, the times being its row's `created_at`, `started_at` and `ended_at`.
const USUAL_STATES: [StateKind; 3] = [StateKind::Pending, StateKind::Running, StateKind::Completed];

/// The view `states`, written once for both dialects' migrations (SQLite's 12, PostgreSQL's
/// 8): the rows of `state_rows`, and each task run's first `usual_states` of [`USUAL_STATES`]
/// at its row's times, read as one table.
macro_rules! states_view {
    () => {
        "
        CREATE VIEW states AS
            SELECT run_id, seq, kind, at, message FROM state_rows
            UNION ALL SELECT id, 0, 'Pending', created_at, NULL FROM task_runs
                WHERE usual_states >= 1
            UNION ALL SELECT id, 1, 'Running', started_at, NULL FROM task_runs
                WHERE usual_states >= 2
            UNION ALL SELECT id, 2, 'Completed', ended_at, NULL FROM task_runs
                WHERE usual_states >= 3;"
    };
}
pub(crate) use states_view;

/// Takes out of `states` those of new task runs that their rows keep: each one's first states
/// while they are the usual ones, without messages. Leaves the others, in order.
fn keep_usual_states_in_rows(
    states: &mut Vec<(Uuid, u32, &State)>,
    new_runs: &mut [NewRun<'_>],
    new_index: &RunIndex,
) {
    states.retain(|(id, seq, state)| {
        let Some(run) = new_index.get(id).map(|&i| &mut new_runs[i]) else {
            return true;
        };
        if run.kind != RunKind::Task || run.unusual {
            return true;
        }
        let next = usize::from(run.usual_states);
        if *seq as usize == next
            && USUAL_STATES.get(next) == Some(&state.kind)
            && state.message.is_none()
        {
            run.usual_states += 1;
            return false;
        }
        run.unusual = true;
        true
    });
}

/// Tags as stored: a JSON array of strings (most task runs have none: no JSON written).
fn json_tags(tags: &[Cow<'static, str>]) -> Cow<'static, str> {
    if tags.is_empty() {
        return Cow::Borrowed("[]");
    }
    Cow::Owned(serde_json::to_string(tags).unwrap_or_else(|_| "[]".to_owned()))
}

/// Where each run created in a batch is in its list of new runs. Keyed by run id with
/// [`BuildRunIdHasher`]: SipHash was a twentieth of a batch's writing.
type RunIndex = HashMap<Uuid, usize, BuildRunIdHasher>;

/// The row updates of runs a batch did not create, by run.
type Updates = HashMap<(RunKind, Uuid), RowUpdate, BuildRunIdHasher>;

/// One group commit. Each run's row is written once: inserted if the run began in this batch,
/// otherwise updated; states, log lines and cached values go in with multi-row inserts.
pub(crate) fn write_batch(
    conn: &mut dyn Conn,
    dialect: Dialect,
    batch: &[Event],
    process: &ProcessInfo,
) -> Result<(), StoreError> {
    let process_id = key(&process.id);
    let mut new_runs: Vec<NewRun<'_>> = Vec::new();
    // Sized for the batch at once: most of a batch's events create a run or update one.
    let mut new_index = RunIndex::with_capacity_and_hasher(batch.len() / 3, Default::default());
    let mut updates: Updates = HashMap::default();
    let mut outputs: Vec<(RunKind, Uuid, &str)> = Vec::new();
    let mut resumed: Vec<(Uuid, &str, Cow<'static, str>)> = Vec::new();
    let mut states: Vec<(Uuid, u32, &State)> = Vec::new();
    let mut logs = Vec::new();
    let mut artifacts = Vec::new();
    let mut inputs = Vec::new();
    let mut cache = Vec::new();
    let mut heartbeat = None;
    let mut released = Vec::new();
    let mut paused_released = Vec::new();
    let mut next_runs = HashMap::new();

    for event in batch {
        match event {
            Event::FlowRunCreated {
                id,
                name,
                tags,
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
                let tags = (!tags.is_empty()).then(|| json_tags(tags));
                if *was_resumed {
                    // A deployment's run is named and tagged when its flow is called.
                    resumed.push((*id, name, tags.unwrap_or(Cow::Borrowed("[]"))));
                    merge(&mut updates, RunKind::Flow, *id, update);
                } else {
                    new_index.insert(*id, new_runs.len());
                    new_runs.push(NewRun {
                        kind: RunKind::Flow,
                        id: *id,
                        parent: *parent_id,
                        name: Some(name),
                        flow_or_task: flow,
                        deployment: deployment.as_deref(),
                        tags,
                        parameters: parameters.as_deref(),
                        call_seq: *call_seq,
                        created_at: state.at.as_micros(),
                        update,
                        output: None,
                        upstream: None,
                        map_index: None,
                        usual_states: 0,
                        unusual: false,
                    });
                }
            }
            Event::TaskRunCreated {
                id,
                flow_run_id,
                task,
                name,
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
                    name: name.as_deref(),
                    flow_or_task: task,
                    deployment: None,
                    tags: Some(json_tags(tags)),
                    parameters: None,
                    call_seq: *call_seq,
                    created_at: state.at.as_micros(),
                    update: RowUpdate::from_state(state, 0, CacheStatus::Off),
                    output: None,
                    upstream: (!upstream.is_empty())
                        .then(|| serde_json::to_string(upstream.as_slice()).unwrap_or_default()),
                    map_index: *map_index,
                    usual_states: 0,
                    unusual: false,
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
                output,
            } => {
                states.push((*id, *seq, state));
                let update = RowUpdate::from_state(state, *attempts, *status);
                match new_index.get(id) {
                    Some(&i) => {
                        new_runs[i].update.merge(update);
                        if let Some(json) = output {
                            new_runs[i].output = Some(json.as_str());
                        }
                    }
                    None => {
                        merge(&mut updates, *kind, *id, update);
                        if let Some(json) = output {
                            outputs.push((*kind, *id, json.as_str()));
                        }
                    }
                }
            }
            Event::FlowOutput { id, json } => match new_index.get(id) {
                Some(&i) => new_runs[i].output = Some(json),
                None => outputs.push((RunKind::Flow, *id, json)),
            },
            Event::Log {
                id,
                run_id,
                at,
                level,
                message,
            } => logs.push((*id, *run_id, at.as_micros(), *level, &**message)),
            Event::Artifact(artifact) => artifacts.push(&**artifact),
            Event::InputAsked {
                flow_run_id,
                pause,
                question,
                schema,
                at,
            } => inputs.push((
                *flow_run_id,
                *pause,
                question.as_str(),
                schema.as_str(),
                *at,
            )),
            Event::ReleasePaused { flow_run_id } => paused_released.push(*flow_run_id),
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
            Event::ReleaseSlots { task_run } => released.push(*task_run),
            Event::Flush(_) | Event::Checkpoint(_) => {}
        }
    }

    keep_usual_states_in_rows(&mut states, &mut new_runs, &new_index);
    let (flows, tasks): (Vec<&NewRun<'_>>, Vec<&NewRun<'_>>) =
        new_runs.iter().partition(|r| r.kind == RunKind::Flow);
    in_chunks(
        conn,
        dialect,
        "INSERT INTO flow_runs (id, name, flow, parent_id, parameters, state, attempts, created_at,
             started_at, ended_at, error, process_id, call_seq, output, deployment, tags) VALUES ",
        &[
            "bytea", "text", "text", "bytea", "text", "text", "bigint", "bigint", "bigint",
            "bigint", "text", "bytea", "bigint", "text", "text", "text",
        ],
        " ON CONFLICT (id) DO NOTHING",
        &flows,
        |r, row| {
            let u = &r.update;
            row.extend([
                Param::Bytes(key(&r.id)),
                Param::Text(r.name.unwrap_or_default()),
                Param::Text(r.flow_or_task),
                r.parent.as_ref().map(key).into(),
                r.parameters.into(),
                Param::Text(u.state.as_str()),
                u.attempts.into(),
                r.created_at.into(),
                u.started_at.map(Timestamp::as_micros).into(),
                u.ended_at.map(Timestamp::as_micros).into(),
                u.error.as_deref().into(),
                Param::Bytes(process_id),
                r.call_seq.into(),
                r.output.into(),
                r.deployment.into(),
                Param::Text(r.tags.as_deref().unwrap_or("[]")),
            ]);
        },
    )?;
    in_chunks(
        conn,
        dialect,
        "INSERT INTO task_runs (id, flow_run_id, task, tags, state, attempts, cache, created_at,
             started_at, ended_at, error, process_id, call_seq, output, upstream, map_index, name,
             usual_states)
             VALUES ",
        &[
            "bytea", "bytea", "text", "text", "text", "bigint", "text", "bigint", "bigint",
            "bigint", "text", "bytea", "bigint", "text", "text", "bigint", "text", "bigint",
        ],
        " ON CONFLICT (id) DO NOTHING",
        &tasks,
        |r, row| {
            let u = &r.update;
            row.extend([
                Param::Bytes(key(&r.id)),
                r.parent.as_ref().map(key).into(),
                Param::Text(r.flow_or_task),
                r.tags.as_deref().into(),
                Param::Text(u.state.as_str()),
                u.attempts.into(),
                Param::Text(cache_name(u.cache)),
                r.created_at.into(),
                u.started_at.map(Timestamp::as_micros).into(),
                u.ended_at.map(Timestamp::as_micros).into(),
                u.error.as_deref().into(),
                Param::Bytes(process_id),
                r.call_seq.into(),
                r.output.into(),
                r.upstream.as_deref().into(),
                r.map_index.into(),
                r.name.into(),
                Param::Int(i64::from(r.usual_states)),
            ]);
        },
    )?;
    // A transition seen again (a run resumed at a state it had) replaces what was there.
    in_chunks(
        conn,
        dialect,
        "INSERT INTO state_rows (run_id, seq, kind, at, message) VALUES ",
        &["bytea", "bigint", "text", "bigint", "text"],
        " ON CONFLICT (run_id, seq) DO UPDATE SET kind = excluded.kind, at = excluded.at,
             message = excluded.message",
        &states,
        |(id, seq, state), row| {
            row.extend([
                Param::Bytes(key(id)),
                (*seq).into(),
                Param::Text(state.kind.as_str()),
                state.at.as_micros().into(),
                state.message.as_deref().into(),
            ]);
        },
    )?;
    // PostgreSQL's log lines have a key of their own, so that a batch tried again after a lost
    // answer adds none twice; SQLite answers every commit.
    match dialect {
        Dialect::Postgres => in_chunks(
            conn,
            dialect,
            "INSERT INTO logs (id, run_id, at, level, message) VALUES ",
            &["bytea", "bytea", "bigint", "text", "text"],
            " ON CONFLICT (id) DO NOTHING",
            &logs,
            |(line, id, at, level, message), row| {
                row.extend([
                    Param::Bytes(key(line)),
                    Param::Bytes(key(id)),
                    (*at).into(),
                    Param::Text(level),
                    Param::Text(message),
                ]);
            },
        )?,
        Dialect::Sqlite => in_chunks(
            conn,
            dialect,
            "INSERT INTO logs (run_id, at, level, message) VALUES ",
            &["bytea", "bigint", "text", "text"],
            "",
            &logs,
            |(_, id, at, level, message), row| {
                row.extend([
                    Param::Bytes(key(id)),
                    (*at).into(),
                    Param::Text(level),
                    Param::Text(message),
                ]);
            },
        )?,
    }
    for (run, pause, question, schema, at) in inputs {
        conn.execute(
            "INSERT INTO run_inputs (flow_run_id, pause, question, schema, asked_at)
             VALUES ($1::bytea, $5::bigint, $2::text, $3::text, $4::bigint)
             ON CONFLICT (flow_run_id, pause) DO UPDATE SET question = excluded.question,
                 schema = excluded.schema, asked_at = excluded.asked_at, input = NULL,
                 given_by = NULL, refused = NULL, answered_at = NULL",
            &[
                Param::Bytes(key(&run)),
                Param::Text(question),
                Param::Text(schema),
                at.as_micros().into(),
                Param::Int(i64::from(pause)),
            ],
        )?;
    }
    // An artifact tried again in a batch written twice is kept once.
    in_chunks(
        conn,
        dialect,
        "INSERT INTO artifacts (id, key, kind, body, flow_run_id, task_run_id, created_at) VALUES ",
        &["bytea", "text", "text", "text", "bytea", "bytea", "bigint"],
        " ON CONFLICT (id) DO NOTHING",
        &artifacts,
        |a, row| {
            row.extend([
                Param::Bytes(key(&a.id)),
                Param::Text(&a.key),
                Param::Text(a.kind.as_str()),
                Param::Text(&a.body),
                a.flow_run_id.as_ref().map(key).into(),
                a.task_run_id.as_ref().map(key).into(),
                a.created_at.as_micros().into(),
            ]);
        },
    )?;
    // Rows that other processes may write too are locked in one order, by key, so that two
    // batches never wait on each other crosswise (a deadlock, which would be tried again, but
    // costs the server a second to detect).
    cache.sort_by(|a, b| a.0.cmp(b.0));
    for (key_, task, json, created_at, expires_at) in cache {
        conn.execute(
            "INSERT INTO cache (key, task, value, created_at, expires_at)
             VALUES ($1::text, $2::text, $3::text, $4::bigint, $5::bigint)
             ON CONFLICT (key) DO UPDATE SET task = excluded.task, value = excluded.value,
                 created_at = excluded.created_at, expires_at = excluded.expires_at",
            &[
                Param::Text(key_),
                Param::Text(task),
                Param::Text(json),
                created_at.as_micros().into(),
                expires_at.as_micros().into(),
            ],
        )?;
    }
    for (id, name, tags) in &resumed {
        conn.execute(
            "UPDATE flow_runs SET process_id = $2::bytea, name = $3::text, tags = $4::text
             WHERE id = $1::bytea",
            &[
                Param::Bytes(key(id)),
                Param::Bytes(process_id),
                Param::Text(name),
                Param::Text(tags),
            ],
        )?;
    }
    let (mut flow_updates, mut task_updates): (Vec<_>, Vec<_>) = updates
        .iter()
        .partition(|((kind, _), _)| *kind == RunKind::Flow);
    flow_updates.sort_unstable_by_key(|((_, id), _)| *id);
    task_updates.sort_unstable_by_key(|((_, id), _)| *id);
    in_chunks(
        conn,
        dialect,
        "UPDATE flow_runs SET state = v.column2,
             attempts = CASE WHEN flow_runs.attempts > v.column3 THEN flow_runs.attempts
                 ELSE v.column3 END,
             started_at = COALESCE(flow_runs.started_at, v.column4), ended_at = v.column5,
             error = v.column6
         FROM (VALUES ",
        &["bytea", "text", "bigint", "bigint", "bigint", "text"],
        ") AS v WHERE flow_runs.id = v.column1",
        &flow_updates,
        |((_, id), u), row| {
            row.extend([
                Param::Bytes(key(id)),
                Param::Text(u.state.as_str()),
                u.attempts.into(),
                u.started_at.map(Timestamp::as_micros).into(),
                u.ended_at.map(Timestamp::as_micros).into(),
                u.error.as_deref().into(),
            ]);
        },
    )?;
    in_chunks(
        conn,
        dialect,
        "UPDATE task_runs SET state = v.column2, attempts = v.column3,
             started_at = COALESCE(task_runs.started_at, v.column4), ended_at = v.column5,
             error = v.column6, cache = v.column7
         FROM (VALUES ",
        &[
            "bytea", "text", "bigint", "bigint", "bigint", "text", "text",
        ],
        ") AS v WHERE task_runs.id = v.column1",
        &task_updates,
        |((_, id), u), row| {
            row.extend([
                Param::Bytes(key(id)),
                Param::Text(u.state.as_str()),
                u.attempts.into(),
                u.started_at.map(Timestamp::as_micros).into(),
                u.ended_at.map(Timestamp::as_micros).into(),
                u.error.as_deref().into(),
                Param::Text(cache_name(u.cache)),
            ]);
        },
    )?;
    let (flow_outputs, task_outputs): (Vec<_>, Vec<_>) = outputs
        .iter()
        .partition(|(kind, ..)| *kind == RunKind::Flow);
    for (head, tail, outputs) in [
        (
            "UPDATE flow_runs SET output = v.column2 FROM (VALUES ",
            ") AS v WHERE flow_runs.id = v.column1",
            flow_outputs,
        ),
        (
            "UPDATE task_runs SET output = v.column2 FROM (VALUES ",
            ") AS v WHERE task_runs.id = v.column1",
            task_outputs,
        ),
    ] {
        in_chunks(
            conn,
            dialect,
            head,
            &["bytea", "text"],
            tail,
            &outputs,
            |(_, id, json), row| row.extend([Param::Bytes(key(id)), Param::Text(json)]),
        )?;
    }
    for (deployment, at) in next_runs {
        conn.execute(
            "UPDATE deployments SET next_run_at = $2::bigint
             WHERE name = $1::text AND process_id = $3::bytea",
            &[
                Param::Text(deployment),
                at.map(Timestamp::as_micros).into(),
                Param::Bytes(process_id),
            ],
        )?;
    }
    // After the task runs' final states, in the same transaction.
    for task_run in &released {
        conn.execute(
            "DELETE FROM limit_slots WHERE task_run_id = $1::bytea",
            &[Param::Bytes(key(task_run))],
        )?;
    }
    // After the runs' `Paused` states: only a run still paused is let go.
    for run in &paused_released {
        conn.execute(
            "UPDATE flow_runs SET process_id = NULL
             WHERE id = $1::bytea AND state = 'Paused' AND process_id = $2::bytea",
            &[Param::Bytes(key(run)), Param::Bytes(process_id)],
        )?;
    }
    if let Some(at) = heartbeat {
        // On the database's clock, which judges every host's processes alike.
        conn.execute(
            "UPDATE processes SET heartbeat_at = {now} WHERE id = $1::bytea",
            &[Param::Bytes(process_id)],
        )?;
        // Expired cached values are removed here too, whether or not their key comes back.
        conn.execute(
            "DELETE FROM cache WHERE expires_at <= $1::bigint",
            &[at.as_micros().into()],
        )?;
    }
    Ok(())
}

/// Writes `rows` with statements of as many rows each as the dialect takes: `head`, then the
/// `VALUES` of their `types`, then `tail` (an `INSERT … VALUES` and its `ON CONFLICT`, or an
/// `UPDATE … FROM (VALUES` and its `) AS v WHERE … = v.column1`); `bind` gives one row's
/// values, in order, borrowed from the row.
pub(crate) fn in_chunks<'r, T>(
    conn: &mut dyn Conn,
    dialect: Dialect,
    head: &str,
    types: &'static [&'static str],
    tail: &str,
    rows: &'r [T],
    mut bind: impl FnMut(&'r T, &mut Vec<Param<'r>>),
) -> Result<(), StoreError> {
    if dialect == Dialect::Postgres && rows.len() >= UNNEST_FROM {
        return unnest(conn, head, types, tail, rows, bind);
    }
    let most = dialect.rows_per_insert(types.len());
    let mut params = Vec::new();
    let mut rest = rows;
    while !rest.is_empty() {
        // PostgreSQL prepares each statement's text once per connection, and parsing one of
        // thousands of rows costs as much as running it: its statements come in a few lengths
        // (the most, then powers of two), so that a batch's are prepared already.
        let n = match dialect {
            Dialect::Postgres if rest.len() < most => 1 << rest.len().ilog2(),
            _ => rest.len().min(most),
        };
        let (chunk, after) = rest.split_at(n);
        rest = after;
        let sql = values(dialect, types, chunk.len(), |values| {
            let mut sql = String::with_capacity(head.len() + values.len() + tail.len());
            sql.push_str(head);
            sql.push_str(values);
            sql.push_str(tail);
            sql
        });
        params.clear();
        for row in chunk {
            bind(row, &mut params);
        }
        conn.execute(&sql, &params)?;
    }
    Ok(())
}

/// From how many rows PostgreSQL's multi-row statements are `unnest`s: a short flow run's
/// statements of a row or two are `VALUES` lists still, which the server runs sooner (measured:
/// a one-task flow run's round trip took 4.2 ms with `unnest` and 1.8 ms without).
const UNNEST_FROM: usize = 64;

/// [`in_chunks`] for PostgreSQL: one statement for all `rows`, its `VALUES` list replaced by
/// `SELECT * FROM unnest($1::type[], …) AS u(column1, …)`, a parameter per column. The text is
/// the same for any number of rows: prepared once.
fn unnest<'r, T>(
    conn: &mut dyn Conn,
    head: &str,
    types: &'static [&'static str],
    tail: &str,
    rows: &'r [T],
    mut bind: impl FnMut(&'r T, &mut Vec<Param<'r>>),
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut columns: Vec<Column> = types
        .iter()
        .map(|ty| Column::of_type(ty, rows.len()))
        .collect();
    let mut params = Vec::with_capacity(types.len());
    for row in rows {
        params.clear();
        bind(row, &mut params);
        for (column, value) in columns.iter_mut().zip(&params) {
            column.push(value);
        }
    }
    let head = head.strip_suffix("VALUES ").unwrap_or(head);
    let arrays: Vec<String> = types
        .iter()
        .enumerate()
        .map(|(i, ty)| format!("${}::{ty}[]", i + 1))
        .collect();
    let names: Vec<String> = (1..=types.len()).map(|i| format!("column{i}")).collect();
    let sql = format!(
        "{head}SELECT * FROM unnest({}) AS u({}){tail}",
        arrays.join(", "),
        names.join(", ")
    );
    conn.execute_columns(&sql, columns)?;
    Ok(())
}

fn merge(updates: &mut Updates, kind: RunKind, id: Uuid, update: RowUpdate) {
    match updates.get_mut(&(kind, id)) {
        Some(earlier) => earlier.merge(update),
        None => {
            updates.insert((kind, id), update);
        }
    }
}
