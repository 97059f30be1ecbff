//! The SQLite store's schema, as forward migrations.
//!
//! Migration N brings a store from schema version N - 1 to N (`PRAGMA user_version`). A store is
//! only ever migrated forward, inside one transaction, and a store of a newer version is
//! refused. The SQL keeps to what SQLite and PostgreSQL share where that costs nothing: BIGINT
//! microsecond timestamps, `ON CONFLICT` upserts, partial indexes. Ids are UUIDs stored as
//! their 16 bytes (`BLOB`; PostgreSQL has `uuid`), and `states` is `WITHOUT ROWID`: both
//! halve what each task run writes, which is what limits the store's throughput.

/// `PRAGMA application_id` of a flowcore store: "flow" in ASCII. A SQLite file without it is
/// somebody else's and is never written to.
pub(crate) const APPLICATION_ID: i64 = 0x666c_6f77;

/// Each migration's SQL, in order; the schema version is the number applied.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: runs, their states and the cache.
    "CREATE TABLE flow_runs (
        id BLOB PRIMARY KEY,
        name TEXT NOT NULL,
        flow TEXT NOT NULL,
        parent_id BLOB,
        parameters TEXT,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at BIGINT NOT NULL,
        started_at BIGINT,
        ended_at BIGINT,
        error TEXT
    );
    CREATE INDEX flow_runs_by_created ON flow_runs (created_at);
    CREATE INDEX flow_runs_by_name ON flow_runs (name);
    CREATE INDEX flow_runs_by_parent ON flow_runs (parent_id);
    CREATE TABLE task_runs (
        id BLOB PRIMARY KEY,
        flow_run_id BLOB,
        task TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '[]',
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        cache TEXT NOT NULL DEFAULT 'off',
        created_at BIGINT NOT NULL,
        started_at BIGINT,
        ended_at BIGINT,
        error TEXT
    );
    CREATE INDEX task_runs_by_flow_run ON task_runs (flow_run_id);
    CREATE TABLE states (
        run_id BLOB NOT NULL,
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        at BIGINT NOT NULL,
        message TEXT,
        PRIMARY KEY (run_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE cache (
        key TEXT PRIMARY KEY,
        task TEXT NOT NULL,
        value TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
    );
    CREATE INDEX cache_by_task ON cache (task);
    CREATE INDEX cache_by_expiry ON cache (expires_at);",
    // 2: crash detection (which process runs what, and its heartbeat) and log lines.
    "CREATE TABLE processes (
        id BLOB PRIMARY KEY,
        pid BIGINT NOT NULL,
        host TEXT NOT NULL,
        start_ticks BIGINT,
        started_at BIGINT NOT NULL,
        heartbeat_at BIGINT NOT NULL,
        ended_at BIGINT
    );
    ALTER TABLE flow_runs ADD COLUMN process_id BLOB;
    ALTER TABLE task_runs ADD COLUMN process_id BLOB;
    CREATE INDEX flow_runs_unfinished ON flow_runs (process_id)
        WHERE state IN ('Pending', 'Running', 'Retrying');
    CREATE INDEX task_runs_unfinished ON task_runs (process_id)
        WHERE state IN ('Pending', 'Running', 'Retrying');
    CREATE TABLE logs (
        run_id BLOB NOT NULL,
        at BIGINT NOT NULL,
        level TEXT NOT NULL,
        message TEXT NOT NULL
    );
    CREATE INDEX logs_by_run ON logs (run_id, at);",
    // 3: resuming: each run's position among its flow run's calls, and its output.
    "ALTER TABLE flow_runs ADD COLUMN call_seq INTEGER;
    ALTER TABLE flow_runs ADD COLUMN output TEXT;
    ALTER TABLE task_runs ADD COLUMN call_seq INTEGER;
    ALTER TABLE task_runs ADD COLUMN output TEXT;",
    // 4: the task graph: each task run's upstream task runs (a JSON array of
    // `{"id", "kind", "allow_failure"}`, NULL for none) and its position in a `map`.
    "ALTER TABLE task_runs ADD COLUMN upstream TEXT;
    ALTER TABLE task_runs ADD COLUMN map_index INTEGER;",
    // 5: deployments, the process serving each and its next run; flow runs of a deployment
    // (scheduled, or requested by hand: `Scheduled` with no process until one claims them).
    "CREATE TABLE deployments (
        name TEXT PRIMARY KEY,
        flow TEXT NOT NULL,
        schedule TEXT,
        parameters TEXT NOT NULL,
        overlap TEXT NOT NULL,
        process_id BLOB,
        next_run_at BIGINT,
        updated_at BIGINT NOT NULL
    );
    ALTER TABLE flow_runs ADD COLUMN deployment TEXT;
    CREATE INDEX flow_runs_by_deployment ON flow_runs (deployment, created_at)
        WHERE deployment IS NOT NULL;
    CREATE INDEX flow_runs_requested ON flow_runs (deployment, created_at)
        WHERE state = 'Scheduled' AND process_id IS NULL;
    DROP INDEX flow_runs_unfinished;
    CREATE INDEX flow_runs_unfinished ON flow_runs (process_id)
        WHERE state IN ('Scheduled', 'Late', 'Pending', 'Running', 'Retrying');",
    // 6: workers. Every process serving a deployment (any number of them); each scheduled
    // time of a deployment, taken by the one worker that runs it; how many times a flow run
    // was claimed (its attempt: a run whose worker died is claimed again); how many times a
    // deployment's run is taken over after its worker died; when a process was taken for dead
    // by another, after which its writes are refused (fencing); and each process's lease (in
    // microseconds), how long it may go without a heartbeat. Concurrency limits by tag for
    // every process of the store, and their slots: a row per task run holding one.
    "CREATE TABLE deployment_workers (
        deployment TEXT NOT NULL,
        process_id BLOB NOT NULL,
        PRIMARY KEY (deployment, process_id)
    );
    CREATE TABLE schedule_ticks (
        deployment TEXT NOT NULL,
        at BIGINT NOT NULL,
        process_id BLOB NOT NULL,
        PRIMARY KEY (deployment, at)
    );
    ALTER TABLE flow_runs ADD COLUMN claims INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE deployments ADD COLUMN crash_retries INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE processes ADD COLUMN fenced_at BIGINT;
    ALTER TABLE processes ADD COLUMN lease BIGINT;
    CREATE TABLE limits (
        tag TEXT PRIMARY KEY,
        max_running BIGINT NOT NULL
    );
    CREATE TABLE limit_slots (
        tag TEXT NOT NULL,
        slot BIGINT NOT NULL,
        task_run_id BLOB NOT NULL,
        process_id BLOB NOT NULL,
        PRIMARY KEY (tag, slot)
    );
    CREATE INDEX limit_slots_by_task_run ON limit_slots (task_run_id);
    CREATE INDEX limit_slots_by_process ON limit_slots (process_id);",
    // 7: delayed task runs (`.delay()`): the task run is `Scheduled` with no process until a
    // worker claims it; its arguments, how many times it was claimed (its attempt: a run whose
    // worker died is claimed again) and how many times it may be taken over. Every process
    // serving a background task, as `deployment_workers` for deployments.
    "CREATE TABLE task_workers (
        task TEXT NOT NULL,
        process_id BLOB NOT NULL,
        PRIMARY KEY (task, process_id)
    );
    CREATE TABLE task_requests (
        run_id BLOB PRIMARY KEY,
        args TEXT NOT NULL,
        claims INTEGER NOT NULL DEFAULT 0,
        crash_retries INTEGER NOT NULL
    );
    CREATE INDEX task_runs_requested ON task_runs (task, created_at)
        WHERE state = 'Scheduled';",
    // 8: a task run's own name (`task_run_name`; NULL: the default, task name and call
    // number), a flow run's tags, when a deployment's schedule was paused (NULL: it runs), and
    // flow runs being cancelled from outside count as unfinished.
    "ALTER TABLE task_runs ADD COLUMN name TEXT;
    ALTER TABLE flow_runs ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE deployments ADD COLUMN paused_at BIGINT;
    DROP INDEX flow_runs_unfinished;
    CREATE INDEX flow_runs_unfinished ON flow_runs (process_id)
        WHERE state IN ('Scheduled', 'Late', 'Pending', 'Running', 'Retrying', 'Cancelling');",
    // 9: artifacts, what runs made for people to read (`flowcore::artifact`): by key, the
    // latest first, and by the flow run that made them.
    "CREATE TABLE artifacts (
        id BLOB PRIMARY KEY,
        key TEXT NOT NULL,
        kind TEXT NOT NULL,
        body TEXT NOT NULL,
        flow_run_id BLOB,
        task_run_id BLOB,
        created_at BIGINT NOT NULL
    );
    CREATE INDEX artifacts_by_key ON artifacts (key, created_at);
    CREATE INDEX artifacts_by_flow_run ON artifacts (flow_run_id, created_at);",
    // 10: input a paused flow run waits for (`flowcore::pause`): its question, the JSON schema
    // of the answer, the input given and by whom, why it was refused, when it was taken.
    "CREATE TABLE run_inputs (
        flow_run_id BLOB PRIMARY KEY,
        question TEXT NOT NULL,
        schema TEXT NOT NULL,
        asked_at BIGINT NOT NULL,
        input TEXT,
        given_by TEXT,
        refused TEXT,
        answered_at BIGINT
    );",
    // 11: one row per pause of a flow run, by its position among the run's pauses: a run
    // picked up again after its process stopped finds the answers its earlier pauses took.
    "CREATE TABLE run_inputs_by_pause (
        flow_run_id BLOB NOT NULL,
        pause BIGINT NOT NULL,
        question TEXT NOT NULL,
        schema TEXT NOT NULL,
        asked_at BIGINT NOT NULL,
        input TEXT,
        given_by TEXT,
        refused TEXT,
        answered_at BIGINT,
        PRIMARY KEY (flow_run_id, pause)
    );
    INSERT INTO run_inputs_by_pause (flow_run_id, pause, question, schema, asked_at, input,
            given_by, refused, answered_at)
        SELECT flow_run_id, 0, question, schema, asked_at, input, given_by, refused, answered_at
        FROM run_inputs;
    DROP TABLE run_inputs;
    ALTER TABLE run_inputs_by_pause RENAME TO run_inputs;
    CREATE INDEX flow_runs_let_go ON flow_runs (deployment, created_at)
        WHERE state = 'Paused' AND process_id IS NULL;",
    // 12: a task run's usual states (Pending, Running, Completed, without messages) kept in
    // its row, as the memory store keeps them: `usual_states` says how many of its first
    // states its row's times stand for (`created_at`, `started_at`, `ended_at`), and only the
    // others are rows of their own, in `state_rows`. A task run recorded at once was four rows
    // written, and is one. The view `states` reads both as one table, as before.
    concat!(
        "ALTER TABLE task_runs ADD COLUMN usual_states INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE states RENAME TO state_rows;",
        crate::store::sql::batch::states_view!()
    ),
    // 13: the partial indexes of unfinished runs say their states with `OR`s, not `IN`
    // lists, which SQLite checked by building a table of the list for each row written (see
    // `unfinished_flow_runs!`); the flow runs' index takes `Paused` in, as the queries asking
    // for unfinished flow runs do. Only indexes change: a reader of this build reads a store
    // of schema 12 as it is.
    concat!(
        "DROP INDEX task_runs_unfinished;
        CREATE INDEX task_runs_unfinished ON task_runs (process_id) WHERE ",
        crate::store::sql::crash::unfinished_task_runs!(),
        ";
        DROP INDEX flow_runs_unfinished;
        CREATE INDEX flow_runs_unfinished ON flow_runs (process_id) WHERE ",
        crate::store::sql::crash::unfinished_flow_runs!(),
        " OR state = 'Scheduled';"
    ),
];

/// The schema version this build writes.
pub(crate) const VERSION: i64 = MIGRATIONS.len() as i64;

/// The oldest schema this build reads without upgrading it: the migrations after it change
/// indexes only, which make a query faster, never its answer.
pub(crate) const READS_FROM: i64 = 12;

/// The tables of a flowcore store, to tell an empty file from somebody else's.
pub(crate) const TABLES: &[&str] = &[
    "artifacts",
    "cache",
    "deployment_workers",
    "deployments",
    "flow_runs",
    "limit_slots",
    "limits",
    "logs",
    "processes",
    "run_inputs",
    "schedule_ticks",
    "state_rows",
    // A table until schema 12, a view since.
    "states",
    "task_requests",
    "task_runs",
    "task_workers",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sql::crash::{HELD_FLOW, UNFINISHED_FLOW, UNFINISHED_TASK};
    use rusqlite::Connection;

    fn store() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        for sql in MIGRATIONS {
            conn.execute_batch(sql).unwrap();
        }
        conn
    }

    /// The rows of `EXPLAIN QUERY PLAN` or the opcodes of `EXPLAIN`, in order.
    fn explain(conn: &Connection, sql: &str, column: usize) -> Vec<String> {
        let mut stmt = conn.prepare(sql).unwrap();
        let nulls = vec![rusqlite::types::Null; stmt.parameter_count()];
        stmt.query_map(rusqlite::params_from_iter(nulls), |r| {
            r.get::<_, String>(column)
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    #[test]
    fn the_queries_for_unfinished_runs_use_the_partial_indexes() {
        let conn = store();
        for (table, term, index) in [
            ("task_runs", UNFINISHED_TASK, "task_runs_unfinished"),
            ("flow_runs", UNFINISHED_FLOW, "flow_runs_unfinished"),
            ("flow_runs", HELD_FLOW, "flow_runs_unfinished"),
            ("flow_runs", "state = 'Scheduled'", "flow_runs_unfinished"),
        ] {
            let sql = format!(
                "EXPLAIN QUERY PLAN SELECT id FROM {table} WHERE process_id = x'01' AND {term}"
            );
            let plan = explain(&conn, &sql, 3);
            assert_eq!(
                plan,
                [format!("SEARCH {table} USING INDEX {index} (process_id=?)")],
                "{sql}"
            );
        }
    }

    #[test]
    fn writing_a_run_builds_no_table_of_its_index_s_states() {
        let conn = store();
        for sql in [
            "INSERT INTO task_runs (id, task, state, created_at) VALUES (?1, 't', ?2, 0)",
            "UPDATE task_runs SET state = ?2 WHERE id = ?1",
            "INSERT INTO flow_runs (id, name, flow, state, created_at) VALUES (?1, 'n', 'f', ?2, 0)",
            "UPDATE flow_runs SET state = ?2 WHERE id = ?1",
        ] {
            let ops = explain(&conn, &format!("EXPLAIN {sql}"), 1);
            assert!(ops.iter().any(|op| op == "IdxInsert"), "{sql}: {ops:?}");
            assert!(
                !ops.iter().any(|op| op == "OpenEphemeral"),
                "{sql}: {ops:?}"
            );
        }
    }
}
