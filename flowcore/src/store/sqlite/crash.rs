//! Runs whose process is gone: finding those processes, marking their unfinished runs Crashed
//! in short transactions, showing them Crashed to a reader that may not write, and ending this
//! process's own runs when it is interrupted.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, Transaction, params};

use crate::clock::Timestamp;
use crate::state::{State, StateKind};
use crate::store::event::{FlowRow, TaskRow};
use crate::store::process::{self, ProcessInfo};
use crate::store::sqlite::rows::key;

/// Runs ended per transaction while marking a dead process's runs: a few milliseconds of
/// holding the write lock, so that other processes' commits go on in between (marking 400,000
/// runs in one transaction held it 7.8 s, and a flow program started meanwhile gave up).
pub(super) const RUNS_PER_TRANSACTION: usize = 1_000;

/// The states a flow run is unfinished in, and may be left in by a process that died.
pub(super) const UNFINISHED_FLOW: &str = "'Late', 'Pending', 'Running', 'Retrying'";

/// The states a task run is unfinished in.
pub(super) const UNFINISHED_TASK: &str = "'Pending', 'Running', 'Retrying'";

/// Whether a run in `state` has not finished, as the store's partial indexes see it.
pub(super) fn unfinished(state: StateKind, table: Table) -> bool {
    match state {
        StateKind::Pending | StateKind::Running | StateKind::Retrying => true,
        StateKind::Late => table == Table::Flow,
        _ => false,
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Table {
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
pub(super) struct DeadProcess {
    /// Its id as stored (16 bytes; text in stores of early versions), to be bound as it is.
    pub id: Value,
    /// What its runs' `Crashed` state says.
    pub message: String,
}

/// The bytes of a stored process id, blob or text, to look it up by.
pub(super) fn id_bytes(id: ValueRef<'_>) -> Option<&[u8]> {
    match id {
        ValueRef::Blob(bytes) | ValueRef::Text(bytes) => Some(bytes),
        _ => None,
    }
}

/// The processes that stopped without saying so, by stored id: on this host when the process
/// table no longer has them, on other hosts when their heartbeat is older than
/// [`process::STALE`]. Read without any lock: one small table and a `/proc` read per process.
pub(super) fn dead_processes(
    conn: &Connection,
    me: &ProcessInfo,
    now: Timestamp,
) -> rusqlite::Result<HashMap<Vec<u8>, DeadProcess>> {
    let stale_before = now.as_micros() - process::STALE.as_micros() as i64;
    let mut stmt = conn.prepare_cached(
        "SELECT id, pid, host, start_ticks, heartbeat_at FROM processes
         WHERE ended_at IS NULL AND id != ?1",
    )?;
    let rows = stmt.query_map([key(&me.id)], |r| {
        Ok((
            r.get::<_, Value>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Option<i64>>(3)?,
            r.get::<_, i64>(4)?,
        ))
    })?;
    let mut dead = HashMap::new();
    for row in rows {
        let (id, pid, host, ticks, heartbeat) = row?;
        // On this host the process table says; elsewhere only the heartbeat can.
        let alive = (host == me.host)
            .then(|| process::alive(pid as u32, ticks.map(|t| t as u64)))
            .flatten();
        if alive.map_or(heartbeat < stale_before, |alive| !alive) {
            let message = process::crash_message(pid, &host, Timestamp::from_micros(heartbeat));
            let Some(bytes) = id_bytes(ValueRef::from(&id)).map(<[u8]>::to_vec) else {
                continue;
            };
            dead.insert(bytes, DeadProcess { id, message });
        }
    }
    Ok(dead)
}

/// The dead processes as a reader judged them a moment ago: what it shows as Crashed.
pub(super) type DeadSet = Arc<HashMap<Vec<u8>, DeadProcess>>;

/// Ends up to `limit` unfinished runs of `process` in `table`, in state `kind` with `message`:
/// a state row after the run's last, and the run's row. Returns how many it ended.
pub(super) fn end_runs(
    tx: &Transaction<'_>,
    table: Table,
    process_id: &Value,
    kind: StateKind,
    message: &str,
    now: Timestamp,
    limit: usize,
) -> rusqlite::Result<usize> {
    // Ids are read and bound back as they are stored, whatever their type.
    let runs: Vec<Value> = {
        let sql = format!(
            "SELECT id FROM {} WHERE process_id = ?1 AND state IN ({}) LIMIT ?2",
            table.name(),
            table.unfinished()
        );
        let mut stmt = tx.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![process_id, limit as i64], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    let update = format!(
        "UPDATE {} SET state = ?2, ended_at = ?3, error = ?4 WHERE id = ?1",
        table.name()
    );
    // A crash is an error to show; an interruption is not.
    let error = (kind == StateKind::Crashed).then_some(message);
    for run in &runs {
        let seq: i64 = tx
            .prepare_cached("SELECT COALESCE(MAX(seq) + 1, 0) FROM states WHERE run_id = ?1")?
            .query_row([run], |r| r.get(0))?;
        tx.prepare_cached(
            "INSERT INTO states (run_id, seq, kind, at, message) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![run, seq, kind.as_str(), now.as_micros(), message])?;
        tx.prepare_cached(&update)?
            .execute(params![run, kind.as_str(), now.as_micros(), error])?;
    }
    Ok(runs.len())
}

/// What is left of a process once its runs are ended: runs it claimed but never started go back
/// to whichever process serves next, what it served is served no more, and it is recorded as
/// ended.
pub(super) fn retire_process(
    tx: &Transaction<'_>,
    process_id: &Value,
    now: Timestamp,
) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE flow_runs SET process_id = NULL WHERE process_id = ?1 AND state = 'Scheduled'",
        [process_id],
    )?;
    tx.execute(
        "UPDATE deployments SET process_id = NULL, next_run_at = NULL WHERE process_id = ?1",
        [process_id],
    )?;
    tx.execute(
        "UPDATE processes SET ended_at = ?2 WHERE id = ?1",
        params![process_id, now.as_micros()],
    )?;
    Ok(())
}

/// Processes that ended cleanly leave nothing unfinished: they are forgotten after a day.
pub(super) fn forget_old_processes(
    tx: &Transaction<'_>,
    me: &ProcessInfo,
    now: Timestamp,
) -> rusqlite::Result<()> {
    tx.execute(
        "DELETE FROM processes WHERE heartbeat_at < ?1 AND id != ?2",
        params![now.as_micros() - 86_400_000_000, key(&me.id)],
    )?;
    Ok(())
}

/// How a reader that may not write shows runs whose process died: Crashed, with the message a
/// writer would record, as of the moment of reading. A writer's view shows runs as stored.
pub(super) struct CrashView {
    dead: Option<DeadSet>,
    now: Timestamp,
}

impl CrashView {
    /// Runs as stored.
    pub(super) fn none() -> Self {
        CrashView {
            dead: None,
            now: Timestamp::from_micros(0),
        }
    }

    pub(super) fn new(dead: DeadSet, now: Timestamp) -> Self {
        CrashView {
            dead: (!dead.is_empty()).then_some(dead),
            now,
        }
    }

    /// Whether any process died: only then can a run be shown otherwise than stored.
    pub(super) fn shows_crashes(&self) -> bool {
        self.dead.is_some()
    }

    /// Whether the process with this stored id died.
    pub(super) fn died(&self, process_id: Option<&[u8]>) -> bool {
        match (&self.dead, process_id) {
            (Some(dead), Some(id)) => dead.contains_key(id),
            _ => false,
        }
    }

    /// The dead process that left a run of `table`, in `state`, unfinished, if one did.
    pub(super) fn crashed_by(
        &self,
        table: Table,
        state: StateKind,
        process_id: Option<&[u8]>,
    ) -> Option<&DeadProcess> {
        let dead = self.dead.as_ref()?;
        if !unfinished(state, table) {
            return None;
        }
        dead.get(process_id?)
    }

    /// SQL for a run's state as shown, in a query of `table`: the stored `state`, or
    /// `'Crashed'` for an unfinished run of a dead process. Ids are written as blob literals:
    /// hex digits only, never text from the file.
    pub(super) fn state_sql(&self, table: Table) -> Cow<'static, str> {
        let Some(dead) = &self.dead else {
            return Cow::Borrowed("state");
        };
        let mut ids = String::new();
        for (bytes, dead) in dead.iter() {
            if !ids.is_empty() {
                ids.push_str(", ");
            }
            let text = matches!(dead.id, Value::Text(_));
            if text {
                ids.push_str("CAST(");
            }
            ids.push_str("X'");
            for byte in bytes {
                let _ = write!(ids, "{byte:02x}");
            }
            ids.push('\'');
            if text {
                ids.push_str(" AS TEXT)");
            }
        }
        Cow::Owned(format!(
            "(CASE WHEN state IN ({}) AND process_id IN ({ids}) THEN 'Crashed' ELSE state END)",
            table.unfinished()
        ))
    }

    pub(super) fn flow(&self, row: &mut FlowRow, process_id: Option<&[u8]>) {
        if let Some(dead) = self.crashed_by(Table::Flow, row.state, process_id) {
            row.state = StateKind::Crashed;
            row.ended_at = Some(self.now);
            row.error = Some(dead.message.clone());
        }
    }

    pub(super) fn task(&self, row: &mut TaskRow, process_id: Option<&[u8]>) {
        if self
            .crashed_by(Table::Task, row.state, process_id)
            .is_some()
        {
            row.state = StateKind::Crashed;
        }
    }

    /// The state a dead process's unfinished run is shown to end in.
    pub(super) fn crashed_state(&self, dead: &DeadProcess) -> State {
        State::new(StateKind::Crashed, self.now, Some(dead.message.clone()))
    }
}
