//! Cancelling a flow run from outside, in the store: the checks, the `Cancelling` mark its
//! process looks for, and the `Cancelled` end of a run that nobody runs.

use uuid::Uuid;

use crate::cancel::{CancelOutcome, cancelled_message, cancelling_message, refusal};
use crate::clock::Timestamp;
use crate::state::{State, StateKind};
use crate::store::StoreError;
use crate::store::process::ProcessInfo;
use crate::store::sql::crash;
use crate::store::sql::driver::{Conn, Param};
use crate::store::sql::rows::{int_at, key, kind_at, opt_uuid_at, text_at, ts, uuid_at};

/// Asks for flow run `id` to be cancelled, by `by`: ended `Cancelled` at once if nobody runs it
/// (not started, or its process is gone), else marked `Cancelling` for its process to drop.
pub(crate) fn cancel_run(
    conn: &mut dyn Conn,
    me: &ProcessInfo,
    id: Uuid,
    by: &str,
    now: Timestamp,
    store: &str,
) -> Result<CancelOutcome, StoreError> {
    let Some((name, state, process, deployment, parent)) = conn.first(
        "SELECT name, state, process_id, deployment, parent_id FROM flow_runs
         WHERE id = $1::bytea",
        &[Param::Bytes(key(&id))],
        |r| {
            Ok((
                text_at(r, 0)?,
                kind_at(r, 1)?,
                r.bytes(2)?,
                r.text(3)?.is_some(),
                opt_uuid_at(r, 4)?,
            ))
        },
    )?
    else {
        return Err(StoreError::UnknownRun {
            run: id.to_string(),
            store: store.to_owned(),
        });
    };
    if let Some(reason) = refusal(state, deployment, parent) {
        return Err(StoreError::CannotCancel { name, reason });
    }
    if state == StateKind::Cancelling {
        return Ok(CancelOutcome::Cancelling);
    }
    let gone = match &process {
        None => true,
        Some(process) => {
            process.as_slice() != key(&me.id)
                && crash::dead_processes(conn, me, now)?.contains_key(process)
        }
    };
    if gone {
        let why = if state == StateKind::Scheduled {
            "before it started"
        } else {
            "after its process had stopped"
        };
        end_cancelled(conn, id, &format!("{} {why}", cancelled_message(by)), now)?;
        return Ok(CancelOutcome::Cancelled);
    }
    let seq = next_seq(conn, id)?;
    conn.execute(
        "INSERT INTO state_rows (run_id, seq, kind, at, message)
         VALUES ($1::bytea, $2::bigint, 'Cancelling', $3::bigint, $4::text)
         ON CONFLICT (run_id, seq) DO NOTHING",
        &[
            Param::Bytes(key(&id)),
            Param::Int(seq),
            Param::Int(now.as_micros()),
            Param::Text(&cancelling_message(by)),
        ],
    )?;
    conn.execute(
        "UPDATE flow_runs SET state = 'Cancelling' WHERE id = $1::bytea",
        &[Param::Bytes(key(&id))],
    )?;
    Ok(CancelOutcome::Cancelling)
}

fn next_seq(conn: &mut dyn Conn, id: Uuid) -> Result<i64, StoreError> {
    Ok(conn
        .first(
            "SELECT COALESCE(MAX(seq) + 1, 0) FROM states WHERE run_id = $1::bytea",
            &[Param::Bytes(key(&id))],
            |r| int_at(r, 0),
        )?
        .unwrap_or(0))
}

/// Ends flow run `id` `Cancelled` with `message`, and its unfinished task runs with it: a
/// run that no process will end itself.
pub(crate) fn end_cancelled(
    conn: &mut dyn Conn,
    id: Uuid,
    message: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    let tasks: Vec<Uuid> = conn.collect(
        &format!(
            "SELECT id FROM task_runs WHERE flow_run_id = $1::bytea AND {}",
            crash::UNFINISHED_TASK
        ),
        &[Param::Bytes(key(&id))],
        |r| uuid_at(r, 0),
    )?;
    for (table, run) in tasks
        .iter()
        .map(|t| ("task_runs", *t))
        .chain([("flow_runs", id)])
    {
        let seq = next_seq(conn, run)?;
        conn.execute(
            "INSERT INTO state_rows (run_id, seq, kind, at, message)
             VALUES ($1::bytea, $2::bigint, 'Cancelled', $3::bigint, $4::text)",
            &[
                Param::Bytes(key(&run)),
                Param::Int(seq),
                Param::Int(now.as_micros()),
                Param::Text(message),
            ],
        )?;
        conn.execute(
            &format!(
                "UPDATE {table} SET state = 'Cancelled', ended_at = $2::bigint WHERE id = $1::bytea"
            ),
            &[Param::Bytes(key(&run)), Param::Int(now.as_micros())],
        )?;
    }
    Ok(())
}

/// The runs of this process that were asked to be cancelled, with their `Cancelling` state.
pub(crate) fn cancel_requests(
    conn: &mut dyn Conn,
    me: &ProcessInfo,
) -> Result<Vec<(Uuid, State)>, StoreError> {
    conn.collect(
        "SELECT r.id, s.at, s.message FROM flow_runs r JOIN states s ON s.run_id = r.id
         WHERE r.process_id = $1::bytea AND r.state = 'Cancelling' AND s.kind = 'Cancelling'
         ORDER BY s.seq",
        &[Param::Bytes(key(&me.id))],
        |r| {
            Ok((
                uuid_at(r, 0)?,
                State::new(StateKind::Cancelling, ts(r, 1)?, r.text(2)?),
            ))
        },
    )
}
