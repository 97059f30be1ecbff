//! Runs whose process is gone: finding those processes, marking their unfinished runs Crashed
//! in short transactions, showing them Crashed to a reader that may not write, and ending this
//! process's own runs when it is interrupted.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use crate::clock::Timestamp;
use crate::crash_hooks::CrashedRun;
use crate::hooks::RunKind;
use crate::state::{State, StateKind};
use crate::store::StoreError;
use crate::store::event::{FlowRow, TaskRow};
use crate::store::process::{self, ProcessInfo};
use crate::store::sql::driver::{Conn, Dialect, Param, Value};
use crate::store::sql::rows::{int_at, key, kind_at, opt_uuid_at, text_at, ts};

/// Runs ended per transaction while marking a dead process's runs: a few milliseconds of
/// holding the write lock, so that other processes' commits go on in between (marking 400,000
/// runs in one transaction held it 7.8 s, and a flow program started meanwhile gave up).
pub(crate) const RUNS_PER_TRANSACTION: usize = 1_000;

/// The states a flow run is unfinished in, and may be left in by a process that died: a
/// condition on `state`, written with `OR`s, as SQLite's partial index `flow_runs_unfinished`
/// has it (with `OR state = 'Scheduled'` after it: [`HELD_FLOW`]).
///
/// SQLite uses a partial index only for a query whose `WHERE` holds the index's own
/// condition, word for word or as one side of its `OR`; and it checks an `IN` list of three or
/// more against a table it builds of the list, which for an index's condition it builds anew
/// for each row it writes (a tenth of SQLite's writer's work was that, for task runs).
/// `=`s joined by `OR` it compares in place. PostgreSQL's indexes keep their `IN` lists: its
/// planner matches either form.
macro_rules! unfinished_flow_runs {
    () => {
        "state = 'Late' OR state = 'Pending' OR state = 'Running' OR state = 'Retrying' \
         OR state = 'Paused' OR state = 'Cancelling'"
    };
}
// SQLite's schema names it in its migration; PostgreSQL's does not.
#[cfg_attr(not(feature = "sqlite"), allow(unused_imports))]
pub(crate) use unfinished_flow_runs;

/// The states a task run is unfinished in, as SQLite's partial index `task_runs_unfinished`
/// has them (see [`unfinished_flow_runs`]).
macro_rules! unfinished_task_runs {
    () => {
        "state = 'Pending' OR state = 'Running' OR state = 'Retrying'"
    };
}
#[cfg_attr(not(feature = "sqlite"), allow(unused_imports))]
pub(crate) use unfinished_task_runs;

/// A flow run is unfinished, as a term of a `WHERE`.
pub(crate) const UNFINISHED_FLOW: &str = concat!("(", unfinished_flow_runs!(), ")");

/// A task run is unfinished, as a term of a `WHERE`.
pub(crate) const UNFINISHED_TASK: &str = concat!("(", unfinished_task_runs!(), ")");

/// A flow run is held by a process (unfinished, or scheduled and claimed): the whole condition
/// of SQLite's `flow_runs_unfinished`.
pub(crate) const HELD_FLOW: &str =
    concat!("(", unfinished_flow_runs!(), " OR state = 'Scheduled')");

/// A task run is unfinished or scheduled.
pub(crate) const HELD_TASK: &str =
    concat!("(", unfinished_task_runs!(), " OR state = 'Scheduled')");

/// Whether a run in `state` has not finished, as the store's partial indexes see it.
pub(crate) fn unfinished(state: StateKind, table: Table) -> bool {
    match state {
        StateKind::Pending | StateKind::Running | StateKind::Retrying => true,
        StateKind::Late | StateKind::Paused | StateKind::Cancelling => table == Table::Flow,
        _ => false,
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Table {
    Flow,
    Task,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Flow => "flow_runs",
            Table::Task => "task_runs",
        }
    }

    fn unfinished(self) -> &'static str {
        match self {
            Table::Flow => UNFINISHED_FLOW,
            Table::Task => UNFINISHED_TASK,
        }
    }
}

/// A process that stopped without ending its runs.
#[derive(Clone, Debug)]
pub(crate) struct DeadProcess {
    /// Its id as stored (16 bytes; text in stores of early versions), to be bound as it is.
    pub id: Value,
    /// What its runs' `Crashed` state says.
    pub message: String,
    /// For a process on another host, judged by its heartbeat: the heartbeats before this
    /// time (the database's clock, in microseconds) are too old. `None` for one this host's
    /// process table says is gone.
    pub stale_before: Option<i64>,
}

/// The processes that stopped without saying so, by stored id: on this host when the process
/// table no longer has them, on other hosts when their heartbeat is older than their lease
/// ([`process::lease`], recorded by each). Read without any lock: one small table and a
/// `/proc` read per process.
pub(crate) fn dead_processes(
    conn: &mut dyn Conn,
    me: &ProcessInfo,
    now: Timestamp,
) -> Result<HashMap<Vec<u8>, DeadProcess>, StoreError> {
    // Heartbeats are judged on the database's clock, which every host's processes share.
    let now = conn
        .first("SELECT {now}", &[], |r| int_at(r, 0))?
        .map_or(now, Timestamp::from_micros);
    let rows = conn.collect(
        "SELECT id, pid, host, start_ticks, heartbeat_at, lease FROM processes
         WHERE ended_at IS NULL AND id != $1::bytea",
        &[Param::Bytes(key(&me.id))],
        |r| {
            Ok((
                r.value(0)?,
                int_at(r, 1)?,
                text_at(r, 2)?,
                r.int(3)?,
                int_at(r, 4)?,
                r.int(5)?,
            ))
        },
    )?;
    let mut dead = HashMap::new();
    for (id, pid, host, ticks, heartbeat, lease) in rows {
        // Each process by the lease it was given (processes of older flowcores: the default).
        let lease = lease.unwrap_or(process::LEASE.as_micros() as i64);
        let stale_before = now.as_micros() - lease;
        // On this host the process table says; elsewhere only the heartbeat can.
        let alive = (host == me.host)
            .then(|| process::alive(pid as u32, ticks.map(|t| t as u64)))
            .flatten();
        if alive.map_or(heartbeat < stale_before, |alive| !alive) {
            let message = process::crash_message(pid, &host, Timestamp::from_micros(heartbeat));
            let Some(bytes) = id.as_bytes().map(<[u8]>::to_vec) else {
                continue;
            };
            let stale_before = alive.is_none().then_some(stale_before);
            dead.insert(
                bytes,
                DeadProcess {
                    id,
                    message,
                    stale_before,
                },
            );
        }
    }
    Ok(dead)
}

/// The dead processes as a reader judged them a moment ago: what it shows as Crashed.
pub(crate) type DeadSet = Arc<HashMap<Vec<u8>, DeadProcess>>;

/// Ends up to `limit` unfinished runs of `process` in `table`, in state `kind` with `message`:
/// a state row after the run's last, and the run's row. Returns the runs it ended; those it
/// marked `Crashed` with their names and states, for the `on_crashed` hooks.
pub(crate) fn end_runs(
    conn: &mut dyn Conn,
    table: Table,
    process_id: &Value,
    kind: StateKind,
    message: &str,
    now: Timestamp,
    limit: usize,
) -> Result<Vec<CrashedRun>, StoreError> {
    let (label, parent, deployment, run_kind) = match table {
        Table::Flow => ("flow", "parent_id", "deployment", RunKind::Flow),
        Table::Task => ("task", "flow_run_id", "NULL", RunKind::Task),
    };
    // Locked as they are taken (in PostgreSQL), so that two processes marking the same dead
    // process at once mark each run once; ids are bound back as they are stored.
    let runs: Vec<(Option<String>, Value, CrashedRun)> = conn.collect(
        &format!(
            "SELECT id, {label}, name, {parent}, tags, state, {deployment} FROM {}
             WHERE process_id = $1 AND {} LIMIT $2::bigint {{lock}}",
            table.name(),
            table.unfinished()
        ),
        &[
            process_id.param(),
            Param::Int(i64::try_from(limit).unwrap_or(i64::MAX)),
        ],
        |r| {
            let tags: Vec<String> =
                serde_json::from_str(&r.text(4)?.unwrap_or_default()).unwrap_or_default();
            let stays_paused = survives(kind_at(r, 5)?, r.text(6)?.as_deref());
            Ok((
                stays_paused.then(|| r.text(6)).transpose()?.flatten(),
                r.value(0)?,
                CrashedRun {
                    kind: run_kind,
                    // Ids the store did not write (a test's, a foreign tool's) are still ended.
                    id: opt_uuid_at(r, 0)?.unwrap_or_default(),
                    label: text_at(r, 1)?,
                    name: r.text(2)?,
                    parent: opt_uuid_at(r, 3)?,
                    tags: tags.into_iter().map(Cow::Owned).collect(),
                    history: Vec::new(),
                },
            ))
        },
    )?;
    let update = format!(
        "UPDATE {} SET state = $2::text, ended_at = $3::bigint, error = $4::text WHERE id = $1",
        table.name()
    );
    // A crash is an error to show; an interruption is not.
    let mut ended = Vec::with_capacity(runs.len());
    for (paused_of, run, mut crashed) in runs {
        let run = &run;
        if let Some(deployment) = paused_of {
            let_go_paused(conn, run, &deployment, message, now)?;
            continue;
        }
        let (mut kind, mut message) = (kind, Cow::Borrowed(message));
        let seq = if kind == StateKind::Crashed {
            // The whole history, for the hooks: a crash is rare, and hooks want to know what
            // the run was doing.
            let states = conn.collect(
                "SELECT seq, kind, at, message FROM states WHERE run_id = $1 ORDER BY seq",
                &[run.param()],
                |r| {
                    Ok((
                        int_at(r, 0)?,
                        State::new(kind_at(r, 1)?, ts(r, 2)?, r.text(3)?),
                    ))
                },
            )?;
            let next = states.last().map_or(0, |(seq, _)| seq + 1);
            // A run cancelled from outside whose process died before dropping it: cancelled,
            // as asked, not crashed.
            if let Some((_, last)) = states.last()
                && last.kind == StateKind::Cancelling
            {
                kind = StateKind::Cancelled;
                message = Cow::Owned(format!(
                    "{} (its process stopped before it could drop the run)",
                    crate::cancel::cancelled_message(&crate::cancel::requester(last))
                ));
            }
            crashed.history = states.into_iter().map(|(_, state)| state).collect();
            crashed
                .history
                .push(State::new(kind, now, Some(message.to_string())));
            next
        } else {
            conn.first(
                "SELECT COALESCE(MAX(seq) + 1, 0) FROM states WHERE run_id = $1",
                &[run.param()],
                |r| int_at(r, 0),
            )?
            .unwrap_or(0)
        };
        conn.execute(
            "INSERT INTO state_rows (run_id, seq, kind, at, message)
             VALUES ($1, $2::bigint, $3::text, $4::bigint, $5::text)",
            &[
                run.param(),
                Param::Int(seq),
                Param::Text(kind.as_str()),
                Param::Int(now.as_micros()),
                Param::Text(&message),
            ],
        )?;
        conn.execute(
            &update,
            &[
                run.param(),
                Param::Text(kind.as_str()),
                Param::Int(now.as_micros()),
                (kind == StateKind::Crashed).then_some(&*message).into(),
            ],
        )?;
        if kind == StateKind::Crashed {
            give_back(conn, table, run, seq + 1, now)?;
        }
        ended.push(crashed);
    }
    Ok(ended)
}

/// Whether a run of a dead process in `state` outlives it: a deployment's run paused for input
/// stays `Paused`, for the next process serving the deployment to take up (`flowcore::pause`).
pub(crate) fn survives(state: StateKind, deployment: Option<&str>) -> bool {
    state == StateKind::Paused && deployment.is_some()
}

/// Lets a dead process's paused run go: it stays `Paused`, with a state that says why, and
/// belongs to no process, for the next process serving `deployment` to take up.
fn let_go_paused(
    conn: &mut dyn Conn,
    run: &Value,
    deployment: &str,
    message: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    let seq = conn
        .first(
            "SELECT COALESCE(MAX(seq) + 1, 0) FROM states WHERE run_id = $1",
            &[run.param()],
            |r| int_at(r, 0),
        )?
        .unwrap_or(0);
    let message = format!(
        "{message}; the run stays paused for the next process serving deployment '{deployment}' to take up"
    );
    conn.execute(
        "INSERT INTO state_rows (run_id, seq, kind, at, message)
         VALUES ($1, $2::bigint, 'Paused', $3::bigint, $4::text)",
        &[
            run.param(),
            Param::Int(seq),
            Param::Int(now.as_micros()),
            Param::Text(&message),
        ],
    )?;
    conn.execute(
        "UPDATE flow_runs SET process_id = NULL WHERE id = $1",
        &[run.param()],
    )?;
    Ok(())
}

/// A run just `Crashed` with its worker, if a worker had claimed it (a deployment's flow run,
/// a delayed task run): given back `Scheduled`, for a worker to claim as its next attempt, while
/// its crash retries last. Any other run stays `Crashed`.
fn give_back(
    conn: &mut dyn Conn,
    table: Table,
    run: &Value,
    seq: i64,
    now: Timestamp,
) -> Result<(), StoreError> {
    let (claims, give_back) = match table {
        Table::Flow => (
            "SELECT r.claims, d.crash_retries FROM flow_runs r JOIN deployments d
                 ON d.name = r.deployment
             WHERE r.id = $1",
            "UPDATE flow_runs SET state = 'Scheduled', process_id = NULL, ended_at = NULL,
                 error = NULL, claims = $2::bigint
             WHERE id = $1",
        ),
        // Claims are counted as they are made, in the request.
        Table::Task => (
            "SELECT claims, crash_retries FROM task_requests WHERE run_id = $1",
            "UPDATE task_runs SET state = 'Scheduled', process_id = NULL, ended_at = NULL,
                 error = NULL
             WHERE id = $1",
        ),
    };
    let Some((claims, retries)) = conn.first(claims, &[run.param()], |r| {
        Ok((int_at(r, 0)?, int_at(r, 1)?))
    })?
    else {
        return Ok(());
    };
    // A run its worker made from a scheduled time was never claimed: its first attempt.
    let attempt = claims.max(1);
    if attempt > retries {
        return Ok(());
    }
    conn.execute(
        "INSERT INTO state_rows (run_id, seq, kind, at, message)
         VALUES ($1, $2::bigint, 'Scheduled', $3::bigint, $4::text)",
        &[
            run.param(),
            Param::Int(seq),
            Param::Int(now.as_micros()),
            Param::Text(&format!(
                "to be taken over by another worker: attempt {} of {}",
                attempt + 1,
                retries + 1
            )),
        ],
    )?;
    match table {
        Table::Flow => conn.execute(give_back, &[run.param(), Param::Int(attempt)])?,
        Table::Task => conn.execute(give_back, &[run.param()])?,
    };
    Ok(())
}

/// Takes `process` for dead, before its runs are ended: from now on its writes are refused
/// ([`check_not_fenced`]), so that a process that was only cut off changes nothing once it is
/// back. Returns whether it is (still) taken for dead: a process judged by its heartbeat that
/// has beaten since it was judged is left alone.
pub(crate) fn fence(conn: &mut dyn Conn, process: &DeadProcess) -> Result<bool, StoreError> {
    let fenced = conn.first(
        "UPDATE processes SET fenced_at = COALESCE(fenced_at, {now})
         WHERE id = $1 AND ended_at IS NULL
             AND (fenced_at IS NOT NULL OR $2::bigint IS NULL OR heartbeat_at < $2::bigint)
         RETURNING id",
        &[process.id.param(), process.stale_before.into()],
        |_| Ok(()),
    )?;
    Ok(fenced.is_some())
}

/// What the PostgreSQL statement of [`check_not_fenced`] fails with when the process was taken
/// for dead: this text, then when, in microseconds (see `postgres::error`).
pub(crate) const FENCED_AT: &str = "flowcore-fenced-at:";

/// Refuses a write of a process that another took for dead: see [`fence`]. Holds the
/// process's row until the write commits, so that it cannot be taken for dead halfway.
///
/// On PostgreSQL the check is a statement that fails when the process is fenced, sent with the
/// batch's statements rather than answered before them: a round trip fewer per commit. Its
/// error is read back as [`StoreError::Fenced`].
pub(crate) fn check_not_fenced(
    conn: &mut dyn Conn,
    dialect: Dialect,
    me: &ProcessInfo,
    store: &str,
) -> Result<(), StoreError> {
    if dialect == Dialect::Postgres {
        conn.execute(
            "SELECT CASE WHEN fenced_at IS NULL THEN 0
                 ELSE CAST($2::text || fenced_at AS bigint) END
             FROM processes WHERE id = $1::bytea FOR SHARE",
            &[Param::Bytes(key(&me.id)), Param::Text(FENCED_AT)],
        )?;
        return Ok(());
    }
    let fenced_at = conn.first(
        "SELECT fenced_at FROM processes WHERE id = $1::bytea {share}",
        &[Param::Bytes(key(&me.id))],
        |r| r.int(0),
    )?;
    match fenced_at.flatten() {
        None => Ok(()),
        Some(at) => Err(StoreError::Fenced {
            store: store.to_owned(),
            at: Timestamp::from_micros(at)
                .to_datetime()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }),
    }
}

/// What is left of a process once its runs are ended: runs it claimed but never started go back
/// to whichever process serves next, what it served is served no more, and it is recorded as
/// ended.
pub(crate) fn retire_process(
    conn: &mut dyn Conn,
    process_id: &Value,
    now: Timestamp,
) -> Result<(), StoreError> {
    for table in ["flow_runs", "task_runs"] {
        conn.execute(
            &format!(
                "UPDATE {table} SET process_id = NULL
                 WHERE process_id = $1 AND state = 'Scheduled'"
            ),
            &[process_id.param()],
        )?;
    }
    for table in ["deployment_workers", "task_workers"] {
        conn.execute(
            &format!("DELETE FROM {table} WHERE process_id = $1"),
            &[process_id.param()],
        )?;
    }
    // Its task runs ended with it: their slots of store-wide limits are free.
    conn.execute(
        "DELETE FROM limit_slots WHERE process_id = $1",
        &[process_id.param()],
    )?;
    conn.execute(
        "UPDATE deployments SET next_run_at = NULL, process_id = (
             SELECT w.process_id FROM deployment_workers w JOIN processes p ON p.id = w.process_id
             WHERE w.deployment = deployments.name ORDER BY p.started_at DESC LIMIT 1)
         WHERE process_id = $1",
        &[process_id.param()],
    )?;
    conn.execute(
        "UPDATE processes SET ended_at = $2::bigint WHERE id = $1",
        &[process_id.param(), Param::Int(now.as_micros())],
    )?;
    Ok(())
}

/// Processes that ended cleanly leave nothing unfinished: they are forgotten after a day.
/// Whether the store holds a process other than `me` not recorded as ended: one that may
/// have died with runs unfinished.
pub(crate) fn others_unended(conn: &mut dyn Conn, me: &ProcessInfo) -> Result<bool, StoreError> {
    let found = conn.first(
        "SELECT 1 FROM processes WHERE ended_at IS NULL AND id != $1::bytea LIMIT 1",
        &[Param::Bytes(key(&me.id))],
        |_| Ok(()),
    )?;
    Ok(found.is_some())
}

/// Records a process closing the store as ended, unless a run of it is unfinished: that run is
/// still going on, or was left by a program exiting in the middle of it, and is for the next
/// process to mark Crashed. With `tied`, also frees what the store ties to it
/// ([`retire_process`]). Returns whether it was recorded ended.
pub(crate) fn retire_if_idle(
    conn: &mut dyn Conn,
    process_id: &Value,
    now: Timestamp,
    tied: bool,
) -> Result<bool, StoreError> {
    // The states of the tables' partial indexes of unfinished runs, so that they answer.
    let ended = conn.first(
        &format!(
            "UPDATE processes SET ended_at = $2::bigint
             WHERE id = $1 AND ended_at IS NULL
                 AND NOT EXISTS (SELECT 1 FROM flow_runs
                     WHERE process_id = $1 AND {UNFINISHED_FLOW})
                 AND NOT EXISTS (SELECT 1 FROM task_runs
                     WHERE process_id = $1 AND {UNFINISHED_TASK})
             RETURNING id"
        ),
        &[process_id.param(), Param::Int(now.as_micros())],
        |_| Ok(()),
    )?;
    if ended.is_some() && tied {
        retire_process(conn, process_id, now)?;
    }
    Ok(ended.is_some())
}

/// Takes back [`retire_if_idle`]: the process created a run after it. A process another took
/// for dead stays ended.
pub(crate) fn unretire(conn: &mut dyn Conn, process_id: &Value) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE processes SET ended_at = NULL WHERE id = $1 AND fenced_at IS NULL",
        &[process_id.param()],
    )?;
    Ok(())
}

pub(crate) fn forget_old_processes(
    conn: &mut dyn Conn,
    me: &ProcessInfo,
    now: Timestamp,
) -> Result<(), StoreError> {
    let day_ago = now.as_micros() - 86_400_000_000;
    conn.execute(
        "DELETE FROM processes WHERE heartbeat_at < $1::bigint AND id != $2::bytea",
        &[Param::Int(day_ago), Param::Bytes(key(&me.id))],
    )?;
    // Which worker took a scheduled time matters while the time is near.
    conn.execute(
        "DELETE FROM schedule_ticks WHERE at < $1::bigint",
        &[Param::Int(day_ago)],
    )?;
    Ok(())
}

/// How a reader that may not write shows runs whose process died: Crashed, with the message a
/// writer would record, as of the moment of reading. A writer's view shows runs as stored.
pub(crate) struct CrashView {
    dead: Option<DeadSet>,
    now: Timestamp,
}

impl CrashView {
    /// Runs as stored.
    pub(crate) fn none() -> Self {
        CrashView {
            dead: None,
            now: Timestamp::from_micros(0),
        }
    }

    pub(crate) fn new(dead: DeadSet, now: Timestamp) -> Self {
        CrashView {
            dead: (!dead.is_empty()).then_some(dead),
            now,
        }
    }

    /// Whether any process died: only then can a run be shown otherwise than stored.
    pub(crate) fn shows_crashes(&self) -> bool {
        self.dead.is_some()
    }

    /// Whether the process with this stored id died.
    pub(crate) fn died(&self, process_id: Option<&[u8]>) -> bool {
        match (&self.dead, process_id) {
            (Some(dead), Some(id)) => dead.contains_key(id),
            _ => false,
        }
    }

    /// The dead process that left a run of `table`, in `state`, unfinished, if one did (a
    /// run of `deployment` paused for input outlives its process: see [`survives`]).
    pub(crate) fn crashed_by(
        &self,
        table: Table,
        state: StateKind,
        deployment: Option<&str>,
        process_id: Option<&[u8]>,
    ) -> Option<&DeadProcess> {
        let dead = self.dead.as_ref()?;
        if !unfinished(state, table) || survives(state, deployment) {
            return None;
        }
        dead.get(process_id?)
    }

    /// SQL for a run's state as shown, in a query of `table`: the stored `state`, or
    /// `'Crashed'` for an unfinished run of a dead process. Ids are written as blob literals:
    /// hex digits only, never text from the database.
    pub(crate) fn state_sql(&self, table: Table, dialect: Dialect) -> Cow<'static, str> {
        let Some(dead) = &self.dead else {
            return Cow::Borrowed("state");
        };
        let ids: Vec<String> = dead
            .iter()
            .map(|(bytes, dead)| dialect.blob_literal(bytes, matches!(dead.id, Value::Text(_))))
            .collect();
        let ids = ids.join(", ");
        let outlives = match table {
            Table::Flow => " AND NOT (state = 'Paused' AND deployment IS NOT NULL)",
            Table::Task => "",
        };
        Cow::Owned(format!(
            "(CASE WHEN {} AND process_id IN ({ids}){outlives} THEN 'Crashed'
                  ELSE state END)",
            table.unfinished()
        ))
    }

    pub(crate) fn flow(&self, row: &mut FlowRow, process_id: Option<&[u8]>) {
        if let Some(dead) = self.crashed_by(
            Table::Flow,
            row.state,
            row.deployment.as_deref(),
            process_id,
        ) {
            row.state = StateKind::Crashed;
            row.ended_at = Some(self.now);
            row.error = Some(dead.message.clone());
        }
    }

    pub(crate) fn task(&self, row: &mut TaskRow, process_id: Option<&[u8]>) {
        if self
            .crashed_by(Table::Task, row.state, None, process_id)
            .is_some()
        {
            row.state = StateKind::Crashed;
        }
    }

    /// The state a dead process's unfinished run is shown to end in.
    pub(crate) fn crashed_state(&self, dead: &DeadProcess) -> State {
        State::new(StateKind::Crashed, self.now, Some(dead.message.clone()))
    }
}
