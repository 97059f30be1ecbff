//! A store in a SQL database, SQLite or PostgreSQL: one implementation of the store over a
//! [`Driver`], with its statements written once for both (see [`driver`]; each driver turns
//! them into its dialect as it runs them). The drivers keep only what differs: connecting,
//! transactions, locks, and reading a row.
//!
//! A store opened for reading (the CLI, the dashboard) never writes unless asked to (a requested
//! run, a cleared cache), and shows the unfinished runs of processes that died as Crashed
//! without writing that down: a writer marks them.

pub(crate) mod batch;
pub(crate) mod cancel;
pub(crate) mod crash;
mod delete;
pub(crate) mod driver;
pub(crate) mod rows;
pub(crate) mod task_requests;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::clock::Timestamp;
use crate::crash_hooks::CrashedRun;
use crate::state::{State, StateKind};
use crate::store::StoreError;
use crate::store::backend::Backend;
use crate::store::delete::{Deleted, Prune};
use crate::store::deployments::{
    CLAIM_BATCH, Change, DeploymentInfo, DeploymentRow, DeploymentRun, LAST_RUNS, REQUESTED,
    RequestedRun, ServedBy, Tick, WorkerInfo,
};
use crate::store::event::{Event, FlowRow, TaskRow};
use crate::store::limits::{LimitInfo, Slot};
use crate::store::process::ProcessInfo;
use crate::store::query::{CacheEntry, LogLine, RunFilter};
use crate::store::task_requests::{ClaimedTask, DelayRequest, TaskResult};
use crash::{CrashView, DeadSet, RUNS_PER_TRANSACTION, Table};
use driver::{Conn, Driver, Param, Value};
use rows::{
    FLOW_COLUMNS, TASK_COLUMNS, flow_row, int_at, key, kind_at, opt_ts, task_row, text_at, ts,
    uuid_at,
};

/// How long a reader trusts its judgement of which processes died before looking again: a
/// dashboard page makes dozens of reads.
const DEAD_PROCESSES_FOR: Duration = Duration::from_secs(1);

pub(crate) struct SqlBackend<D> {
    driver: D,
    /// For a store opened for reading: the processes found dead, and when.
    dead: Mutex<Option<(Instant, DeadSet)>>,
    /// This process, as readers leave it out of the dead.
    me: ProcessInfo,
    /// Whether this process took what the store ties to it besides its runs: deployments or
    /// tasks it serves, runs it claimed, slots of limits. Retiring it frees those; a process
    /// that took none (most programs) is retired with one statement.
    tied: AtomicBool,
}

impl<D: Driver> SqlBackend<D> {
    pub(crate) fn new(driver: D, me: &ProcessInfo) -> Self {
        SqlBackend {
            driver,
            dead: Mutex::new(None),
            me: me.clone(),
            tied: AtomicBool::new(false),
        }
    }

    #[cfg(all(test, feature = "sqlite"))]
    pub(crate) fn driver(&self) -> &D {
        &self.driver
    }

    /// A read of runs, given how to show the runs of dead processes: as Crashed for a reader,
    /// as stored for a writer (which marks them itself).
    fn read_runs<T>(
        &self,
        mut f: impl FnMut(&mut dyn Conn, &CrashView) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let view = if self.driver.opened_for_reading() {
            CrashView::new(self.dead_processes()?, Timestamp::wall_now())
        } else {
            CrashView::none()
        };
        self.driver.read(&mut |c| f(c, &view))
    }

    fn dead_processes(&self) -> Result<DeadSet, StoreError> {
        let mut dead = self.dead.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, set)) = &*dead
            && at.elapsed() < DEAD_PROCESSES_FOR
        {
            return Ok(Arc::clone(set));
        }
        let set: DeadSet = Arc::new(
            self.driver
                .read(&mut |c| crash::dead_processes(c, &self.me, Timestamp::wall_now()))?,
        );
        *dead = Some((Instant::now(), Arc::clone(&set)));
        Ok(set)
    }

    /// Records that `me` serves `rows`, in one transaction, beside any other worker: the
    /// deployment's row is the last starter's, and `me` is one of its workers. Returns the
    /// names of those paused: the upsert leaves `paused_at` alone, so a deployment paused stays
    /// paused when its workers restart with its definition.
    fn serve_deployments_in(
        conn: &mut dyn Conn,
        rows: &[DeploymentRow],
        me: &ProcessInfo,
    ) -> Result<Vec<String>, StoreError> {
        let mut paused = Vec::new();
        for row in rows {
            let parameters = row.parameters.to_string();
            conn.execute(
                "INSERT INTO deployments (name, flow, schedule, parameters, overlap, process_id,
                     next_run_at, updated_at, crash_retries)
                 VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::bytea, NULL,
                     $7::bigint, $8::bigint)
                 ON CONFLICT (name) DO UPDATE SET flow = excluded.flow,
                     schedule = excluded.schedule, parameters = excluded.parameters,
                     overlap = excluded.overlap, process_id = excluded.process_id,
                     updated_at = excluded.updated_at, crash_retries = excluded.crash_retries",
                &[
                    Param::Text(&row.name),
                    Param::Text(&row.flow),
                    row.schedule.as_deref().into(),
                    Param::Text(&parameters),
                    Param::Text(row.overlap),
                    Param::Bytes(key(&me.id)),
                    Param::Int(Timestamp::wall_now().as_micros()),
                    Param::Int(i64::from(row.crash_retries)),
                ],
            )?;
            conn.execute(
                "INSERT INTO deployment_workers (deployment, process_id)
                 VALUES ($1::text, $2::bytea) ON CONFLICT DO NOTHING",
                &[Param::Text(&row.name), Param::Bytes(key(&me.id))],
            )?;
            if is_paused(conn, &row.name)? {
                paused.push(row.name.clone());
            }
        }
        Ok(paused)
    }
}

/// Whether the deployment `name` is paused.
fn is_paused(c: &mut dyn Conn, name: &str) -> Result<bool, StoreError> {
    let paused = c.first(
        "SELECT 1 FROM deployments WHERE name = $1::text AND paused_at IS NOT NULL",
        &[Param::Text(name)],
        |_| Ok(()),
    )?;
    Ok(paused.is_some())
}

fn cache_lookup(c: &mut dyn Conn, key: &str, now: Timestamp) -> Result<Option<String>, StoreError> {
    c.first(
        "SELECT value FROM cache WHERE key = $1::text AND expires_at > $2::bigint",
        &[Param::Text(key), Param::Int(now.as_micros())],
        |r| text_at(r, 0),
    )
}

impl<D: Driver> Backend for SqlBackend<D> {
    fn describe(&self) -> String {
        self.driver.describe()
    }

    /// One attempt: the writer thread tries again, and waits out locks itself (so that it can
    /// say how long it has waited).
    fn write(&self, batch: &[Event], process: &ProcessInfo) -> Result<(), StoreError> {
        // A batch of flushes alone has nothing to write: what came before it is committed, by
        // the batches before it. (A transaction for it would lock the process's row for the
        // fencing check, and so wait for a WAL flush.)
        if batch
            .iter()
            .all(|e| matches!(e, Event::Flush(_) | Event::Checkpoint(_)))
        {
            return Ok(());
        }
        let dialect = self.driver.dialect();
        self.driver.write_once(&mut |c| {
            crash::check_not_fenced(c, dialect, process, &self.driver.describe())?;
            batch::write_batch(c, dialect, batch, process)
        })
    }

    fn checkpoint(&self) -> Result<(), StoreError> {
        self.driver.checkpoint()
    }

    /// A reader runs nothing, so it is not recorded: it has no runs to be marked Crashed.
    fn register_process(&self, p: &ProcessInfo) -> Result<bool, StoreError> {
        if self.driver.opened_for_reading() {
            return Ok(false);
        }
        self.driver.write(&mut |c| {
            c.execute(
                "INSERT INTO processes (id, pid, host, start_ticks, started_at, heartbeat_at, lease)
                 VALUES ($1::bytea, $2::bigint, $3::text, $4::bigint, $5::bigint, $5::bigint,
                     $6::bigint)",
                &[
                    Param::Bytes(key(&p.id)),
                    Param::Int(i64::from(p.pid)),
                    Param::Text(&p.host),
                    p.start_ticks.map(|t| t as i64).into(),
                    Param::Int(p.started_at.as_micros()),
                    Param::Int(crate::store::process::lease().as_micros() as i64),
                ],
            )?;
            let others_unended = crash::others_unended(c, p)?;
            // With another process unended, `mark_crashed` looks at it first: one that died
            // long ago may have left runs unfinished.
            if !others_unended {
                crash::forget_old_processes(c, p, p.started_at)?;
            }
            Ok(others_unended)
        })
    }

    fn retire(&self, me: &ProcessInfo, now: Timestamp) -> Result<bool, StoreError> {
        if self.driver.opened_for_reading() {
            return Ok(false);
        }
        let id = Value::Bytes(key(&me.id).to_vec());
        let tied = self.tied.load(Ordering::Acquire);
        self.driver
            .write(&mut |c| crash::retire_if_idle(c, &id, now, tied))
    }

    fn unretire(&self, me: &ProcessInfo) -> Result<(), StoreError> {
        let id = Value::Bytes(key(&me.id).to_vec());
        self.driver.write(&mut |c| crash::unretire(c, &id))
    }

    /// In transactions of at most [`RUNS_PER_TRANSACTION`] runs each, so that other processes
    /// commit in between: which processes died is judged without the write lock, and each
    /// transaction ends only runs still unfinished, so two processes marking at once mark each
    /// run once.
    fn mark_crashed(
        &self,
        me: &ProcessInfo,
        now: Timestamp,
    ) -> Result<Vec<CrashedRun>, StoreError> {
        let dead = self
            .driver
            .read(&mut |c| crash::dead_processes(c, me, now))?;
        let mut marked = Vec::new();
        for process in dead.values() {
            if !self.driver.write(&mut |c| crash::fence(c, process))? {
                continue;
            }
            for table in [Table::Flow, Table::Task] {
                loop {
                    let ended = self.driver.write(&mut |c| {
                        crash::end_runs(
                            c,
                            table,
                            &process.id,
                            StateKind::Crashed,
                            &process.message,
                            now,
                            RUNS_PER_TRANSACTION,
                        )
                    })?;
                    let done = ended.len() < RUNS_PER_TRANSACTION;
                    marked.extend(ended);
                    if done {
                        break;
                    }
                }
            }
            self.driver
                .write(&mut |c| crash::retire_process(c, &process.id, now))?;
        }
        self.driver
            .write(&mut |c| crash::forget_old_processes(c, me, now))?;
        Ok(marked)
    }

    fn end_process(
        &self,
        me: &ProcessInfo,
        kind: StateKind,
        message: &str,
        now: Timestamp,
    ) -> Result<usize, StoreError> {
        let id = Value::Bytes(key(&me.id).to_vec());
        // One transaction: the process is about to exit, and nothing of it may be left half
        // ended.
        self.driver.write(&mut |c| {
            let mut ended = 0;
            for table in [Table::Flow, Table::Task] {
                ended += crash::end_runs(c, table, &id, kind, message, now, usize::MAX >> 1)?.len();
            }
            crash::retire_process(c, &id, now)?;
            Ok(ended)
        })
    }

    fn reads_block(&self) -> bool {
        true
    }

    fn opened_for_reading(&self) -> bool {
        self.driver.opened_for_reading()
    }

    fn flow_rows(&self, filter: &RunFilter) -> Result<Vec<FlowRow>, StoreError> {
        let dialect = self.driver.dialect();
        self.read_runs(|c, view| {
            let state = view.state_sql(Table::Flow, dialect);
            let contains = match dialect {
                driver::Dialect::Sqlite => "instr",
                driver::Dialect::Postgres => "strpos",
            };
            let sql = format!(
                "SELECT {FLOW_COLUMNS} FROM flow_runs
                 WHERE ($1::text IS NULL OR flow = $1::text)
                     AND ($2::text IS NULL OR {state} = $2::text)
                     AND ($4::bigint IS NULL OR created_at >= $4::bigint)
                     AND ($6::text IS NULL OR {contains}(tags, $6::text) > 0)
                 ORDER BY created_at DESC LIMIT $3::bigint OFFSET $5::bigint"
            );
            // The tag as JSON writes it, quotes included: `db` does not match `db2`. Case
            // matters, which rules out SQLite's `LIKE`.
            let tag = filter
                .tag
                .as_deref()
                .map(|t| serde_json::to_string(t).unwrap_or_default());
            c.collect(
                &sql,
                &[
                    filter.flow.as_deref().into(),
                    filter.state.map(|s| s.as_str()).into(),
                    Param::Int(i64::try_from(filter.limit).unwrap_or(i64::MAX)),
                    filter.since.map(Timestamp::as_micros).into(),
                    Param::Int(i64::try_from(filter.offset).unwrap_or(i64::MAX)),
                    tag.as_deref().into(),
                ],
                |r| flow_row(r, view),
            )
        })
    }

    fn flow_states_since(
        &self,
        since: Timestamp,
    ) -> Result<Vec<(Timestamp, StateKind)>, StoreError> {
        let dialect = self.driver.dialect();
        self.read_runs(|c, view| {
            let state = view.state_sql(Table::Flow, dialect);
            let sql = format!(
                "SELECT created_at, {state} FROM flow_runs WHERE created_at >= $1::bigint
                 ORDER BY created_at"
            );
            c.collect(&sql, &[Param::Int(since.as_micros())], |r| {
                Ok((ts(r, 0)?, kind_at(r, 1)?))
            })
        })
    }

    fn flow_row(&self, id: Uuid) -> Result<Option<FlowRow>, StoreError> {
        self.read_runs(|c, view| {
            let sql = format!("SELECT {FLOW_COLUMNS} FROM flow_runs WHERE id = $1::bytea");
            c.first(&sql, &[Param::Bytes(key(&id))], |r| flow_row(r, view))
        })
    }

    fn flow_row_named(&self, name: &str) -> Result<Option<FlowRow>, StoreError> {
        self.read_runs(|c, view| {
            let sql = format!(
                "SELECT {FLOW_COLUMNS} FROM flow_runs WHERE name = $1::text
                 ORDER BY created_at DESC LIMIT 1"
            );
            c.first(&sql, &[Param::Text(name)], |r| flow_row(r, view))
        })
    }

    fn child_flows(&self, parent: Uuid) -> Result<Vec<FlowRow>, StoreError> {
        self.read_runs(|c, view| {
            let sql = format!(
                "SELECT {FLOW_COLUMNS} FROM flow_runs WHERE parent_id = $1::bytea
                 ORDER BY created_at"
            );
            c.collect(&sql, &[Param::Bytes(key(&parent))], |r| flow_row(r, view))
        })
    }

    fn task_rows(&self, flow_run: Uuid) -> Result<Vec<TaskRow>, StoreError> {
        self.read_runs(|c, view| {
            let sql = format!(
                "SELECT {TASK_COLUMNS} FROM task_runs WHERE flow_run_id = $1::bytea
                 ORDER BY created_at, {{order}}"
            );
            c.collect(&sql, &[Param::Bytes(key(&flow_run))], |r| task_row(r, view))
        })
    }

    fn task_counts(&self, flow_run: Uuid) -> Result<BTreeMap<StateKind, usize>, StoreError> {
        let dialect = self.driver.dialect();
        self.read_runs(|c, view| {
            let state = view.state_sql(Table::Task, dialect);
            let sql = format!(
                "SELECT {state}, COUNT(*) FROM task_runs WHERE flow_run_id = $1::bytea GROUP BY 1"
            );
            let counts = c.collect(&sql, &[Param::Bytes(key(&flow_run))], |r| {
                Ok((kind_at(r, 0)?, int_at(r, 1)? as usize))
            })?;
            Ok(counts.into_iter().collect())
        })
    }

    fn states(&self, run: Uuid) -> Result<Vec<State>, StoreError> {
        self.read_runs(|c, view| {
            let mut states = c.collect(
                "SELECT kind, at, message FROM states WHERE run_id = $1::bytea ORDER BY seq",
                &[Param::Bytes(key(&run))],
                |r| Ok(State::new(kind_at(r, 0)?, ts(r, 1)?, r.text(2)?)),
            )?;
            // The state a writer will record for a run its dead process left unfinished.
            if let Some(last) = states.last()
                && !last.is_final()
                && view.shows_crashes()
            {
                let owner = c.first(
                    "SELECT 'flow', process_id, deployment FROM flow_runs WHERE id = $1::bytea
                         UNION ALL SELECT 'task', process_id, NULL FROM task_runs
                         WHERE id = $1::bytea",
                    &[Param::Bytes(key(&run))],
                    |r| Ok((text_at(r, 0)?, r.bytes(1)?, r.text(2)?)),
                )?;
                if let Some((table, process, deployment)) = owner {
                    let table = if table == "flow" {
                        Table::Flow
                    } else {
                        Table::Task
                    };
                    if let Some(dead) =
                        view.crashed_by(table, last.kind, deployment.as_deref(), process.as_deref())
                    {
                        states.push(view.crashed_state(dead));
                    }
                }
            }
            Ok(states)
        })
    }

    fn logs(&self, runs: &[Uuid]) -> Result<Vec<LogLine>, StoreError> {
        self.driver.read(&mut |c| {
            let sql = "SELECT run_id, at, level, message FROM logs WHERE run_id = $1::bytea
                 ORDER BY at, {order}";
            let mut lines = Vec::new();
            for run in runs {
                c.query(sql, &[Param::Bytes(key(run))], &mut |r| {
                    lines.push(LogLine {
                        run_id: uuid_at(r, 0)?,
                        at: ts(r, 1)?,
                        level: text_at(r, 2)?,
                        message: text_at(r, 3)?,
                    });
                    Ok(())
                })?;
            }
            lines.sort_by_key(|l| l.at);
            Ok(lines)
        })
    }

    fn artifacts(
        &self,
        of: crate::artifact::ArtifactsOf<'_>,
    ) -> Result<Vec<crate::artifact::Artifact>, StoreError> {
        use crate::artifact::ArtifactsOf;
        const COLUMNS: &str = "id, key, kind, body, flow_run_id, task_run_id, created_at";
        self.driver.read(&mut |c| {
            let read = |r: &dyn driver::Row| artifact_row(r);
            match of {
                ArtifactsOf::FlowRun(run) => c.collect(
                    &format!(
                        "SELECT {COLUMNS} FROM artifacts WHERE flow_run_id = $1::bytea
                         ORDER BY created_at, id"
                    ),
                    &[Param::Bytes(key(&run))],
                    read,
                ),
                ArtifactsOf::Key(k) => c.collect(
                    &format!(
                        "SELECT {COLUMNS} FROM artifacts WHERE key = $1::text
                         ORDER BY created_at, id"
                    ),
                    &[Param::Text(k)],
                    read,
                ),
                ArtifactsOf::LatestOfEachKey => c.collect(
                    &format!(
                        "SELECT {COLUMNS} FROM artifacts a
                         WHERE NOT EXISTS (SELECT 1 FROM artifacts b WHERE b.key = a.key
                             AND (b.created_at > a.created_at
                                 OR (b.created_at = a.created_at AND b.id > a.id)))
                         ORDER BY key"
                    ),
                    &[],
                    read,
                ),
            }
        })
    }

    fn input_request(
        &self,
        run: Uuid,
        pause: Option<u32>,
    ) -> Result<Option<crate::pause::InputRequest>, StoreError> {
        self.driver.read(&mut |c| {
            c.first(
                "SELECT question, schema, asked_at, input, given_by, refused, answered_at, pause
                 FROM run_inputs WHERE flow_run_id = $1::bytea
                     AND ($2::bigint IS NULL OR pause = $2::bigint)
                 ORDER BY pause DESC LIMIT 1",
                &[Param::Bytes(key(&run)), pause.map(i64::from).into()],
                |r| {
                    Ok(crate::pause::InputRequest {
                        pause: u32::try_from(int_at(r, 7)?).unwrap_or(0),
                        question: text_at(r, 0)?,
                        schema: text_at(r, 1)?,
                        asked_at: ts(r, 2)?,
                        input: r.text(3)?,
                        given_by: r.text(4)?,
                        refused: r.text(5)?,
                        answered_at: rows::opt_ts(r, 6)?,
                    })
                },
            )
        })
    }

    fn give_input(&self, run: Uuid, input: &str, by: &str) -> Result<bool, StoreError> {
        self.driver.write(&mut |c| {
            let changed = c.execute(
                "UPDATE run_inputs SET input = $2::text, given_by = $3::text, refused = NULL
                 WHERE flow_run_id = $1::bytea AND answered_at IS NULL AND pause = (
                     SELECT MAX(pause) FROM run_inputs WHERE flow_run_id = $1::bytea)",
                &[Param::Bytes(key(&run)), Param::Text(input), Param::Text(by)],
            )?;
            Ok(changed > 0)
        })
    }

    fn answer_input(
        &self,
        run: Uuid,
        pause: u32,
        refused: Option<&str>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let pause = Param::Int(i64::from(pause));
        self.driver.write(&mut |c| {
            match refused {
                Some(reason) => c.execute(
                    "UPDATE run_inputs SET refused = $2::text, input = NULL
                     WHERE flow_run_id = $1::bytea AND pause = $3::bigint",
                    &[Param::Bytes(key(&run)), Param::Text(reason), pause],
                )?,
                None => c.execute(
                    "UPDATE run_inputs SET answered_at = $2::bigint
                     WHERE flow_run_id = $1::bytea AND pause = $3::bigint",
                    &[Param::Bytes(key(&run)), Param::Int(now.as_micros()), pause],
                )?,
            };
            Ok(())
        })
    }

    fn delete_runs(&self, ids: &[Uuid], me: &ProcessInfo) -> Result<Deleted, StoreError> {
        let mut ids = ids.to_vec();
        ids.sort();
        ids.dedup();
        let store = self.driver.describe();
        self.driver.write(&mut |c| {
            let mut roots = Vec::with_capacity(ids.len());
            for id in &ids {
                let row = c.first(
                    "SELECT id FROM flow_runs WHERE id = $1::bytea {share}",
                    &[Param::Bytes(key(id))],
                    |r| r.value(0),
                )?;
                roots.push(row.ok_or_else(|| StoreError::UnknownRun {
                    run: id.to_string(),
                    store: store.clone(),
                })?);
            }
            let runs = delete::gather(c, roots)?;
            if let Some(going) = delete::first_going(c, &runs, me)? {
                return Err(going.into());
            }
            delete::delete(c, &runs)
        })
    }

    /// In groups of roots: a group with nothing going (the rule) is deleted at once; in one
    /// with something going, each root is looked at alone.
    fn prune(&self, prune: &Prune, me: &ProcessInfo) -> Result<Deleted, StoreError> {
        const ROOTS_PER_LOOK: usize = 200;
        let states = prune.final_states();
        let list = (0..states.len())
            .map(|i| format!("${}::text", i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT id FROM flow_runs
             WHERE parent_id IS NULL AND created_at < $1::bigint AND state IN ({list})
             ORDER BY created_at {{share}}"
        );
        let mut params = vec![Param::Int(prune.created_before.as_micros())];
        params.extend(states.iter().map(|s| Param::Text(s.as_str())));
        self.driver.write(&mut |c| {
            let mut roots = c.collect(&sql, &params, |r| r.value(0))?;
            if let Some(n) = prune.at_most {
                roots.truncate(n);
            }
            let mut deleted = Deleted::default();
            for group in roots.chunks(ROOTS_PER_LOOK) {
                let runs = delete::gather(c, group.to_vec())?;
                if delete::first_going(c, &runs, me)?.is_none() {
                    deleted += delete::delete(c, &runs)?;
                    continue;
                }
                for root in group {
                    let runs = delete::gather(c, vec![root.clone()])?;
                    if delete::first_going(c, &runs, me)?.is_none() {
                        deleted += delete::delete(c, &runs)?;
                    }
                }
            }
            Ok(deleted)
        })
    }

    fn cache_get(&self, key: &str, now: Timestamp) -> Result<Option<String>, StoreError> {
        self.driver.read(&mut |c| cache_lookup(c, key, now))
    }

    fn cache_get_without_waiting(
        &self,
        key: &str,
        now: Timestamp,
    ) -> Option<Result<Option<String>, StoreError>> {
        self.driver
            .read_without_waiting(&mut |c| cache_lookup(c, key, now))
    }

    fn cache_entries(&self) -> Result<Vec<CacheEntry>, StoreError> {
        self.driver.read(&mut |c| {
            c.collect(
                "SELECT task, key, created_at, expires_at, LENGTH(value) FROM cache
                 ORDER BY task, created_at",
                &[],
                |r| {
                    Ok(CacheEntry {
                        task: text_at(r, 0)?,
                        key: text_at(r, 1)?,
                        created_at: ts(r, 2)?,
                        expires_at: ts(r, 3)?,
                        size: int_at(r, 4)? as usize,
                    })
                },
            )
        })
    }

    fn cache_clear(&self, task: Option<&str>) -> Result<usize, StoreError> {
        self.driver.write(&mut |c| {
            c.execute(
                "DELETE FROM cache WHERE $1::text IS NULL OR task = $1::text",
                &[task.into()],
            )
        })
    }

    fn serve_deployments(
        &self,
        rows: &[DeploymentRow],
        me: &ProcessInfo,
    ) -> Result<Vec<String>, StoreError> {
        self.tied.store(true, Ordering::Release);
        self.driver
            .write(&mut |c| Self::serve_deployments_in(c, rows, me))
    }

    /// One statement that changes the row only if its state differs, so that two processes
    /// pausing at once cannot both think they paused it; a second look tells "already" from
    /// "no such deployment".
    fn set_paused(&self, name: &str, at: Option<Timestamp>) -> Result<Option<Change>, StoreError> {
        let sql = match at {
            Some(_) => {
                "UPDATE deployments SET paused_at = $2::bigint
                 WHERE name = $1::text AND paused_at IS NULL"
            }
            None => {
                "UPDATE deployments SET paused_at = $2::bigint
                 WHERE name = $1::text AND paused_at IS NOT NULL"
            }
        };
        self.driver.write(&mut |c| {
            let changed = c.execute(
                sql,
                &[Param::Text(name), at.map(Timestamp::as_micros).into()],
            )?;
            if changed > 0 {
                return Ok(Some(Change::Changed));
            }
            let exists = c.first(
                "SELECT 1 FROM deployments WHERE name = $1::text",
                &[Param::Text(name)],
                |_| Ok(()),
            )?;
            Ok(exists.map(|()| Change::Already))
        })
    }

    fn unserve_deployments(&self, names: &[String], me: &ProcessInfo) -> Result<(), StoreError> {
        self.driver.write(&mut |c| {
            for name in names {
                c.execute(
                    "DELETE FROM deployment_workers
                     WHERE deployment = $1::text AND process_id = $2::bytea",
                    &[Param::Text(name), Param::Bytes(key(&me.id))],
                )?;
                // Another worker, if one is left, serves it now.
                c.execute(
                    "UPDATE deployments SET next_run_at = NULL, process_id = (
                         SELECT w.process_id FROM deployment_workers w
                             JOIN processes p ON p.id = w.process_id
                         WHERE w.deployment = $1::text ORDER BY p.started_at DESC LIMIT 1)
                     WHERE name = $1::text AND process_id = $2::bytea",
                    &[Param::Text(name), Param::Bytes(key(&me.id))],
                )?;
            }
            c.execute(
                "UPDATE flow_runs SET process_id = NULL
                 WHERE process_id = $1::bytea AND state = 'Scheduled'",
                &[Param::Bytes(key(&me.id))],
            )?;
            Ok(())
        })
    }

    fn deployment_definitions(&self) -> Result<Vec<DeploymentInfo>, StoreError> {
        self.driver.read(&mut |c| {
            c.collect(
                "SELECT name, flow, schedule, parameters, overlap, paused_at FROM deployments
                 ORDER BY name",
                &[],
                |r| {
                    let parameters = text_at(r, 3)?;
                    Ok(DeploymentInfo {
                        name: text_at(r, 0)?,
                        flow: text_at(r, 1)?,
                        schedule: r.text(2)?,
                        parameters: serde_json::from_str(&parameters).unwrap_or_default(),
                        overlap: text_at(r, 4)?,
                        served_by: None,
                        next_run_at: None,
                        paused_at: opt_ts(r, 5)?,
                        workers: Vec::new(),
                        last_runs: Vec::new(),
                    })
                },
            )
        })
    }

    fn deployments(&self) -> Result<Vec<DeploymentInfo>, StoreError> {
        let dialect = self.driver.dialect();
        self.read_runs(|c, view| {
            let mut all = c.collect(
                "SELECT d.name, d.flow, d.schedule, d.parameters, d.overlap, p.pid, p.host,
                     d.next_run_at, p.id, d.paused_at
                 FROM deployments d LEFT JOIN processes p
                     ON p.id = d.process_id AND p.ended_at IS NULL
                 ORDER BY d.name",
                &[],
                |r| {
                    let parameters = text_at(r, 3)?;
                    // A process that died serves nothing, whether or not a writer has said so.
                    let alive = !view.died(r.bytes(8)?.as_deref());
                    let pid = r.int(5)?.filter(|_| alive);
                    let host = r.text(6)?;
                    Ok(DeploymentInfo {
                        name: text_at(r, 0)?,
                        flow: text_at(r, 1)?,
                        schedule: r.text(2)?,
                        parameters: serde_json::from_str(&parameters).unwrap_or_default(),
                        overlap: text_at(r, 4)?,
                        served_by: pid.zip(host).map(|(pid, host)| ServedBy {
                            pid: pid as u32,
                            host,
                        }),
                        next_run_at: opt_ts(r, 7)?.filter(|_| alive),
                        paused_at: opt_ts(r, 9)?,
                        workers: Vec::new(),
                        last_runs: Vec::new(),
                    })
                },
            )?;
            for d in &mut all {
                let workers = c.collect(
                    "SELECT p.pid, p.host, p.id FROM deployment_workers w
                         JOIN processes p ON p.id = w.process_id
                     WHERE w.deployment = $1::text AND p.ended_at IS NULL
                     ORDER BY p.started_at",
                    &[Param::Text(&d.name)],
                    |r| Ok((int_at(r, 0)?, text_at(r, 1)?, r.bytes(2)?)),
                )?;
                d.workers = workers
                    .into_iter()
                    .filter(|(_, _, id)| !view.died(id.as_deref()))
                    .map(|(pid, host, _)| ServedBy {
                        pid: pid as u32,
                        host,
                    })
                    .collect();
                if d.served_by.is_none() {
                    d.served_by = d.workers.last().cloned();
                }
            }
            let state = view.state_sql(Table::Flow, dialect);
            let sql = format!(
                "SELECT id, name, {state}, created_at FROM flow_runs WHERE deployment = $1::text
                 ORDER BY created_at DESC LIMIT $2::bigint"
            );
            for d in &mut all {
                d.last_runs = c.collect(
                    &sql,
                    &[Param::Text(&d.name), Param::Int(LAST_RUNS as i64)],
                    |r| {
                        Ok(DeploymentRun {
                            id: uuid_at(r, 0)?,
                            name: text_at(r, 1)?,
                            state: kind_at(r, 2)?,
                            created_at: ts(r, 3)?,
                        })
                    },
                )?;
            }
            Ok(all)
        })
    }

    fn request_run(&self, run: &RequestedRun) -> Result<(), StoreError> {
        let at = run.requested_at.as_micros();
        let parameters = run.parameters.to_string();
        self.driver.write(&mut |c| {
            c.execute(
                "INSERT INTO flow_runs (id, name, flow, parameters, state, attempts, created_at,
                     deployment)
                 VALUES ($1::bytea, $2::text, $3::text, $4::text, 'Scheduled', 0, $5::bigint,
                     $6::text)",
                &[
                    Param::Bytes(key(&run.id)),
                    Param::Text(&run.name),
                    Param::Text(&run.flow),
                    Param::Text(&parameters),
                    Param::Int(at),
                    Param::Text(&run.deployment),
                ],
            )?;
            c.execute(
                "INSERT INTO state_rows (run_id, seq, kind, at, message)
                 VALUES ($1::bytea, 0, 'Scheduled', $2::bigint, $3::text)",
                &[
                    Param::Bytes(key(&run.id)),
                    Param::Int(at),
                    Param::Text(REQUESTED),
                ],
            )?;
            Ok(())
        })
    }

    fn cancel_run(
        &self,
        me: &ProcessInfo,
        id: Uuid,
        by: &str,
        now: Timestamp,
    ) -> Result<crate::cancel::CancelOutcome, StoreError> {
        self.driver
            .write(&mut |c| cancel::cancel_run(c, me, id, by, now, ""))
    }

    fn cancel_requests(
        &self,
        me: &ProcessInfo,
    ) -> Result<Vec<(Uuid, crate::state::State)>, StoreError> {
        self.driver.read(&mut |c| cancel::cancel_requests(c, me))
    }

    fn end_cancelled(&self, id: Uuid, message: &str, now: Timestamp) -> Result<(), StoreError> {
        self.driver
            .write(&mut |c| cancel::end_cancelled(c, id, message, now))
    }

    fn claim_requests(
        &self,
        deployments: &[String],
        me: &ProcessInfo,
    ) -> Result<Vec<RequestedRun>, StoreError> {
        self.tied.store(true, Ordering::Release);
        // Looked for twice a second by every serving process: the write lock is taken only
        // when there is something to claim.
        let any = self.driver.read(&mut |c| {
            for deployment in deployments {
                // The state written out, for the partial indexes to serve the query.
                for state in ["Scheduled", "Paused"] {
                    let found = c.first(
                        &format!(
                            "SELECT 1 FROM flow_runs
                             WHERE deployment = $1::text AND state = '{state}'
                                 AND process_id IS NULL
                             LIMIT 1"
                        ),
                        &[Param::Text(deployment)],
                        |_| Ok(()),
                    )?;
                    if found.is_some() {
                        return Ok(true);
                    }
                }
            }
            Ok(false)
        })?;
        if !any {
            return Ok(Vec::new());
        }
        // A batch per deployment and claim: a burst of requests is shared by the workers that
        // poll, each claiming again at once while its batches come back full.
        // Runs paused for input that their process let go are taken up too, as they are: not
        // a new attempt.
        let sql = |state: &str| {
            format!(
                "SELECT id, name, flow, parameters, created_at, claims FROM flow_runs
                 WHERE deployment = $1::text AND state = '{state}' AND process_id IS NULL
                 ORDER BY created_at LIMIT $2::bigint {{lock}}"
            )
        };
        let batch = i64::try_from(CLAIM_BATCH).unwrap_or(i64::MAX);
        self.driver.write(&mut |c| {
            let mut claimed = Vec::new();
            for (deployment, state) in deployments
                .iter()
                .flat_map(|d| [(d, "Scheduled"), (d, "Paused")])
            {
                let paused = state == "Paused";
                let mut runs = c.collect(
                    &sql(state),
                    &[Param::Text(deployment), Param::Int(batch)],
                    |r| {
                        let claims = u32::try_from(int_at(r, 5)?).unwrap_or(0);
                        Ok(RequestedRun {
                            id: uuid_at(r, 0)?,
                            name: text_at(r, 1)?,
                            deployment: deployment.clone(),
                            flow: text_at(r, 2)?,
                            parameters: r
                                .text(3)?
                                .and_then(|p| serde_json::from_str(&p).ok())
                                .unwrap_or_default(),
                            requested_at: ts(r, 4)?,
                            attempt: if paused {
                                claims.max(1)
                            } else {
                                claims.saturating_add(1)
                            },
                            history: Vec::new(),
                            paused,
                            prior: Default::default(),
                        })
                    },
                )?;
                if runs.is_empty() {
                    continue;
                }
                // One statement for the batch.
                let list = (0..runs.len())
                    .map(|i| format!("${}::bytea", i + 2))
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut params = vec![Param::Bytes(key(&me.id))];
                params.extend(runs.iter().map(|r| Param::Bytes(key(&r.id))));
                let counted = if paused { "" } else { ", claims = claims + 1" };
                c.execute(
                    &format!(
                        "UPDATE flow_runs SET process_id = $1::bytea{counted} WHERE id IN ({list})"
                    ),
                    &params,
                )?;
                for run in &mut runs {
                    // A run taken over or taken up goes on from its states; a first claim,
                    // from the request's `Scheduled`.
                    if run.attempt > 1 || run.paused {
                        run.history = c.collect(
                            "SELECT kind, at, message FROM states WHERE run_id = $1::bytea
                             ORDER BY seq",
                            &[Param::Bytes(key(&run.id))],
                            |r| Ok(State::new(kind_at(r, 0)?, ts(r, 1)?, r.text(2)?)),
                        )?;
                    }
                }
                claimed.extend(runs);
            }
            Ok(claimed)
        })
    }

    /// The first worker to insert the time's row takes it: the key is the deployment and the
    /// time, and an insert that finds it there changes nothing. A paused deployment's times
    /// are taken by nobody, and leave no row.
    fn claim_tick(
        &self,
        deployment: &str,
        at: Timestamp,
        me: &ProcessInfo,
    ) -> Result<Tick, StoreError> {
        self.tied.store(true, Ordering::Release);
        self.driver.write(&mut |c| {
            // Looked at in the claim's transaction: a pause committed before it holds.
            if is_paused(c, deployment)? {
                return Ok(Tick::Paused);
            }
            let taken = c.first(
                "INSERT INTO schedule_ticks (deployment, at, process_id)
                 VALUES ($1::text, $2::bigint, $3::bytea)
                 ON CONFLICT DO NOTHING RETURNING at",
                &[
                    Param::Text(deployment),
                    Param::Int(at.as_micros()),
                    Param::Bytes(key(&me.id)),
                ],
                |r| int_at(r, 0),
            )?;
            if taken.is_none() {
                return Ok(Tick::Taken);
            }
            let going = c
                .first(
                    &format!(
                        "SELECT COUNT(*) FROM flow_runs
                         WHERE deployment = $1::text AND {}",
                        crash::UNFINISHED_FLOW
                    ),
                    &[Param::Text(deployment)],
                    |r| int_at(r, 0),
                )?
                .unwrap_or(0);
            Ok(Tick::Mine {
                going: usize::try_from(going).unwrap_or(0),
            })
        })
    }

    fn serve_tasks(
        &self,
        tasks: &[&str],
        serving: bool,
        me: &ProcessInfo,
    ) -> Result<(), StoreError> {
        self.tied.store(true, Ordering::Release);
        let sql = if serving {
            "INSERT INTO task_workers (task, process_id) VALUES ($1::text, $2::bytea)
             ON CONFLICT DO NOTHING"
        } else {
            "DELETE FROM task_workers WHERE task = $1::text AND process_id = $2::bytea"
        };
        self.driver.write(&mut |c| {
            for task in tasks {
                c.execute(sql, &[Param::Text(task), Param::Bytes(key(&me.id))])?;
            }
            Ok(())
        })
    }

    fn delay_tasks(&self, runs: &[DelayRequest]) -> Result<(), StoreError> {
        let dialect = self.driver.dialect();
        self.driver
            .write(&mut |c| task_requests::delay(c, dialect, runs))
    }

    fn claim_tasks(
        &self,
        tasks: &[&str],
        limit: usize,
        me: &ProcessInfo,
    ) -> Result<Vec<ClaimedTask>, StoreError> {
        self.tied.store(true, Ordering::Release);
        // Looked for often by every worker: the write lock is taken only when there is
        // something to claim.
        if tasks.is_empty()
            || !self
                .driver
                .read(&mut |c| task_requests::any_waiting(c, tasks))?
        {
            return Ok(Vec::new());
        }
        let dialect = self.driver.dialect();
        self.driver.write(&mut |c| {
            crash::check_not_fenced(c, dialect, me, &self.driver.describe())?;
            task_requests::claim(c, tasks, limit, &me.id)
        })
    }

    fn task_results(&self, ids: &[Uuid]) -> Result<Vec<TaskResult>, StoreError> {
        self.driver.read(&mut |c| task_requests::results(c, ids))
    }

    fn limits(&self) -> Result<Vec<LimitInfo>, StoreError> {
        self.driver.read(&mut |c| {
            c.collect(
                "SELECT l.tag, l.max_running,
                     (SELECT COUNT(*) FROM limit_slots s WHERE s.tag = l.tag)
                 FROM limits l ORDER BY l.tag",
                &[],
                |r| {
                    Ok(LimitInfo {
                        tag: text_at(r, 0)?,
                        max: u32::try_from(int_at(r, 1)?).unwrap_or(u32::MAX),
                        running: usize::try_from(int_at(r, 2)?).unwrap_or(0),
                    })
                },
            )
        })
    }

    fn set_limit(&self, tag: &str, max: Option<u32>) -> Result<bool, StoreError> {
        self.driver.write(&mut |c| {
            let had = c
                .first(
                    "SELECT 1 FROM limits WHERE tag = $1::text",
                    &[Param::Text(tag)],
                    |_| Ok(()),
                )?
                .is_some();
            match max {
                Some(max) => c.execute(
                    "INSERT INTO limits (tag, max_running) VALUES ($1::text, $2::bigint)
                     ON CONFLICT (tag) DO UPDATE SET max_running = excluded.max_running",
                    &[Param::Text(tag), Param::Int(i64::from(max))],
                )?,
                // Runs holding slots keep them until they end; none is taken any more.
                None => c.execute(
                    "DELETE FROM limits WHERE tag = $1::text",
                    &[Param::Text(tag)],
                )?,
            };
            Ok(had)
        })
    }

    /// The lowest free slot below the limit, by inserting it: two processes that try the same
    /// number at once get it once. Slots left above a lowered limit count until they end.
    fn take_slot(&self, tag: &str, task_run: Uuid, me: &ProcessInfo) -> Result<Slot, StoreError> {
        self.tied.store(true, Ordering::Release);
        self.driver.write(&mut |c| {
            let Some(max) = c.first(
                "SELECT max_running FROM limits WHERE tag = $1::text",
                &[Param::Text(tag)],
                |r| int_at(r, 0),
            )?
            else {
                return Ok(Slot::Unlimited);
            };
            let held = c
                .first(
                    "SELECT COUNT(*) FROM limit_slots WHERE tag = $1::text",
                    &[Param::Text(tag)],
                    |r| int_at(r, 0),
                )?
                .unwrap_or(0);
            if held >= max {
                return Ok(Slot::Full);
            }
            for slot in 0..max {
                let taken = c.first(
                    "INSERT INTO limit_slots (tag, slot, task_run_id, process_id)
                     VALUES ($1::text, $2::bigint, $3::bytea, $4::bytea)
                     ON CONFLICT DO NOTHING RETURNING slot",
                    &[
                        Param::Text(tag),
                        Param::Int(slot),
                        Param::Bytes(key(&task_run)),
                        Param::Bytes(key(&me.id)),
                    ],
                    |r| int_at(r, 0),
                )?;
                if taken.is_some() {
                    return Ok(Slot::Taken);
                }
            }
            Ok(Slot::Full)
        })
    }

    fn workers(&self) -> Result<Vec<WorkerInfo>, StoreError> {
        self.read_runs(|c, view| {
            let workers = c.collect(
                "SELECT p.id, p.pid, p.host, p.started_at, p.heartbeat_at FROM processes p
                 WHERE p.ended_at IS NULL
                     AND (EXISTS (SELECT 1 FROM deployment_workers w WHERE w.process_id = p.id)
                         OR EXISTS (SELECT 1 FROM task_workers t WHERE t.process_id = p.id))
                 ORDER BY p.started_at",
                &[],
                |r| {
                    Ok((
                        r.bytes(0)?.unwrap_or_default(),
                        WorkerInfo {
                            id: uuid_at(r, 0)?,
                            pid: int_at(r, 1)? as u32,
                            host: text_at(r, 2)?,
                            started_at: ts(r, 3)?,
                            heartbeat_at: ts(r, 4)?,
                            deployments: Vec::new(),
                            runs_held: 0,
                            tasks: Vec::new(),
                            task_runs_held: 0,
                        },
                    ))
                },
            )?;
            let mut live = Vec::new();
            for (id, mut worker) in workers {
                if view.died(Some(&id)) {
                    continue;
                }
                worker.deployments = c.collect(
                    "SELECT deployment FROM deployment_workers WHERE process_id = $1::bytea
                     ORDER BY deployment",
                    &[Param::Bytes(&id)],
                    |r| text_at(r, 0),
                )?;
                let held = c
                    .first(
                        &format!(
                            "SELECT COUNT(*) FROM flow_runs
                             WHERE process_id = $1::bytea AND {}",
                            crash::HELD_FLOW
                        ),
                        &[Param::Bytes(&id)],
                        |r| int_at(r, 0),
                    )?
                    .unwrap_or(0);
                worker.runs_held = usize::try_from(held).unwrap_or(0);
                worker.tasks = c.collect(
                    "SELECT task FROM task_workers WHERE process_id = $1::bytea ORDER BY task",
                    &[Param::Bytes(&id)],
                    |r| text_at(r, 0),
                )?;
                if !worker.tasks.is_empty() {
                    let held = c
                        .first(
                            &format!(
                                "SELECT COUNT(*) FROM task_runs
                                 WHERE process_id = $1::bytea AND {}
                                     AND id IN (SELECT run_id FROM task_requests)",
                                crash::HELD_TASK
                            ),
                            &[Param::Bytes(&id)],
                            |r| int_at(r, 0),
                        )?
                        .unwrap_or(0);
                    worker.task_runs_held = usize::try_from(held).unwrap_or(0);
                }
                live.push(worker);
            }
            Ok(live)
        })
    }
}

/// An artifact's row, as `artifacts` selects it. A kind this build does not know (a newer
/// flowcore's) is shown as markdown, its body as text.
fn artifact_row(r: &dyn driver::Row) -> Result<crate::artifact::Artifact, StoreError> {
    let kind = text_at(r, 2)?;
    Ok(crate::artifact::Artifact {
        id: uuid_at(r, 0)?,
        key: text_at(r, 1)?,
        kind: crate::artifact::ArtifactKind::parse(&kind)
            .unwrap_or(crate::artifact::ArtifactKind::Markdown),
        body: text_at(r, 3)?,
        flow_run_id: rows::opt_uuid_at(r, 4)?,
        task_run_id: rows::opt_uuid_at(r, 5)?,
        created_at: ts(r, 6)?,
    })
}
