//! The PostgreSQL store's schema, as forward migrations, and the checks made before a database
//! is used: somebody else's tables, or a newer flowcore's, are refused and left untouched.
//!
//! The tables are SQLite's (see `store/sqlite/schema.rs`), in PostgreSQL's types: ids as `BYTEA` (16
//! bytes), times as `BIGINT` microseconds, counts as `BIGINT`. Task runs and log lines carry a
//! `row_order` identity, which orders rows made in the same microsecond as SQLite's `rowid`
//! does, and log lines a key of their own, so that a batch written twice adds none twice. No
//! extension is needed.

use tokio_postgres::Client;

use crate::store::StoreError;
use crate::store::postgres::error::Errors;
use crate::store::postgres::io::wait;

/// Each migration's SQL, in order; the schema version is the number applied.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: everything SQLite's five versions hold.
    "CREATE TABLE flowcore_schema (version BIGINT NOT NULL);
    INSERT INTO flowcore_schema (version) VALUES (0);
    CREATE TABLE flow_runs (
        id BYTEA PRIMARY KEY,
        name TEXT NOT NULL,
        flow TEXT NOT NULL,
        parent_id BYTEA,
        parameters TEXT,
        state TEXT NOT NULL,
        attempts BIGINT NOT NULL DEFAULT 0,
        created_at BIGINT NOT NULL,
        started_at BIGINT,
        ended_at BIGINT,
        error TEXT,
        process_id BYTEA,
        call_seq BIGINT,
        output TEXT,
        deployment TEXT
    );
    CREATE INDEX flow_runs_by_created ON flow_runs (created_at);
    CREATE INDEX flow_runs_by_name ON flow_runs (name, created_at);
    CREATE INDEX flow_runs_by_parent ON flow_runs (parent_id);
    CREATE INDEX flow_runs_unfinished ON flow_runs (process_id)
        WHERE state IN ('Scheduled', 'Late', 'Pending', 'Running', 'Retrying');
    CREATE INDEX flow_runs_by_deployment ON flow_runs (deployment, created_at)
        WHERE deployment IS NOT NULL;
    CREATE INDEX flow_runs_requested ON flow_runs (deployment, created_at)
        WHERE state = 'Scheduled' AND process_id IS NULL;
    CREATE TABLE task_runs (
        id BYTEA PRIMARY KEY,
        row_order BIGINT GENERATED ALWAYS AS IDENTITY,
        flow_run_id BYTEA,
        task TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '[]',
        state TEXT NOT NULL,
        attempts BIGINT NOT NULL DEFAULT 0,
        cache TEXT NOT NULL DEFAULT 'off',
        created_at BIGINT NOT NULL,
        started_at BIGINT,
        ended_at BIGINT,
        error TEXT,
        process_id BYTEA,
        call_seq BIGINT,
        output TEXT,
        upstream TEXT,
        map_index BIGINT
    );
    CREATE INDEX task_runs_by_flow_run ON task_runs (flow_run_id, created_at, row_order);
    CREATE INDEX task_runs_unfinished ON task_runs (process_id)
        WHERE state IN ('Pending', 'Running', 'Retrying');
    CREATE TABLE states (
        run_id BYTEA NOT NULL,
        seq BIGINT NOT NULL,
        kind TEXT NOT NULL,
        at BIGINT NOT NULL,
        message TEXT,
        PRIMARY KEY (run_id, seq)
    );
    CREATE TABLE cache (
        key TEXT PRIMARY KEY,
        task TEXT NOT NULL,
        value TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
    );
    CREATE INDEX cache_by_task ON cache (task);
    CREATE INDEX cache_by_expiry ON cache (expires_at);
    CREATE TABLE processes (
        id BYTEA PRIMARY KEY,
        pid BIGINT NOT NULL,
        host TEXT NOT NULL,
        start_ticks BIGINT,
        started_at BIGINT NOT NULL,
        heartbeat_at BIGINT NOT NULL,
        ended_at BIGINT
    );
    CREATE TABLE logs (
        id BYTEA PRIMARY KEY,
        row_order BIGINT GENERATED ALWAYS AS IDENTITY,
        run_id BYTEA NOT NULL,
        at BIGINT NOT NULL,
        level TEXT NOT NULL,
        message TEXT NOT NULL
    );
    CREATE INDEX logs_by_run ON logs (run_id, at, row_order);
    CREATE TABLE deployments (
        name TEXT PRIMARY KEY,
        flow TEXT NOT NULL,
        schedule TEXT,
        parameters TEXT NOT NULL,
        overlap TEXT NOT NULL,
        process_id BYTEA,
        next_run_at BIGINT,
        updated_at BIGINT NOT NULL
    );",
    // 2: workers, as SQLite's 6.
    "CREATE TABLE deployment_workers (
        deployment TEXT NOT NULL,
        process_id BYTEA NOT NULL,
        PRIMARY KEY (deployment, process_id)
    );
    CREATE TABLE schedule_ticks (
        deployment TEXT NOT NULL,
        at BIGINT NOT NULL,
        process_id BYTEA NOT NULL,
        PRIMARY KEY (deployment, at)
    );
    ALTER TABLE flow_runs ADD COLUMN claims BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE deployments ADD COLUMN crash_retries BIGINT NOT NULL DEFAULT 1;
    ALTER TABLE processes ADD COLUMN fenced_at BIGINT;
    ALTER TABLE processes ADD COLUMN lease BIGINT;
    CREATE TABLE limits (
        tag TEXT PRIMARY KEY,
        max_running BIGINT NOT NULL
    );
    CREATE TABLE limit_slots (
        tag TEXT NOT NULL,
        slot BIGINT NOT NULL,
        task_run_id BYTEA NOT NULL,
        process_id BYTEA NOT NULL,
        PRIMARY KEY (tag, slot)
    );
    CREATE INDEX limit_slots_by_task_run ON limit_slots (task_run_id);
    CREATE INDEX limit_slots_by_process ON limit_slots (process_id);",
    // 3: delayed task runs and task workers, as SQLite's 7.
    "CREATE TABLE task_workers (
        task TEXT NOT NULL,
        process_id BYTEA NOT NULL,
        PRIMARY KEY (task, process_id)
    );
    CREATE TABLE task_requests (
        run_id BYTEA PRIMARY KEY,
        args TEXT NOT NULL,
        claims BIGINT NOT NULL DEFAULT 0,
        crash_retries BIGINT NOT NULL
    );
    CREATE INDEX task_runs_requested ON task_runs (task, created_at)
        WHERE state = 'Scheduled';",
    // 4: run names, flow run tags, paused deployments, as SQLite's 8.
    "ALTER TABLE task_runs ADD COLUMN name TEXT;
    ALTER TABLE flow_runs ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE deployments ADD COLUMN paused_at BIGINT;
    DROP INDEX flow_runs_unfinished;
    CREATE INDEX flow_runs_unfinished ON flow_runs (process_id)
        WHERE state IN ('Scheduled', 'Late', 'Pending', 'Running', 'Retrying', 'Cancelling');",
    // 5: artifacts, as SQLite's 9.
    "CREATE TABLE artifacts (
        id BYTEA PRIMARY KEY,
        key TEXT NOT NULL,
        kind TEXT NOT NULL,
        body TEXT NOT NULL,
        flow_run_id BYTEA,
        task_run_id BYTEA,
        created_at BIGINT NOT NULL
    );
    CREATE INDEX artifacts_by_key ON artifacts (key, created_at);
    CREATE INDEX artifacts_by_flow_run ON artifacts (flow_run_id, created_at);",
    // 6: input for paused flow runs, as SQLite's 10.
    "CREATE TABLE run_inputs (
        flow_run_id BYTEA PRIMARY KEY,
        question TEXT NOT NULL,
        schema TEXT NOT NULL,
        asked_at BIGINT NOT NULL,
        input TEXT,
        given_by TEXT,
        refused TEXT,
        answered_at BIGINT
    );",
    // 7: one row per pause of a flow run, as SQLite's 11.
    "ALTER TABLE run_inputs ADD COLUMN pause BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE run_inputs DROP CONSTRAINT run_inputs_pkey;
    ALTER TABLE run_inputs ADD PRIMARY KEY (flow_run_id, pause);
    CREATE INDEX flow_runs_let_go ON flow_runs (deployment, created_at)
        WHERE state = 'Paused' AND process_id IS NULL;",
    // 8: task runs' usual states in their rows, as SQLite's 12.
    concat!(
        "ALTER TABLE task_runs ADD COLUMN usual_states SMALLINT NOT NULL DEFAULT 0;
        ALTER TABLE states RENAME TO state_rows;",
        crate::store::sql::batch::states_view!()
    ),
    // 9: the partial index of unfinished flow runs takes `Paused` in, as the queries asking
    // for unfinished flow runs (a dead process's, a retiring one's) always did: without it
    // they read the whole table. SQLite's 13 did the same. Only an index changes: a reader of
    // this build reads a store of schema 8 as it is.
    "DROP INDEX flow_runs_unfinished;
    CREATE INDEX flow_runs_unfinished ON flow_runs (process_id)
        WHERE state IN ('Scheduled', 'Late', 'Pending', 'Running', 'Retrying', 'Paused',
            'Cancelling');",
];

/// The schema version this build writes.
pub(crate) const VERSION: i64 = MIGRATIONS.len() as i64;

/// The oldest schema this build reads without upgrading it: the migrations after it change
/// indexes only, which make a query faster, never its answer.
const READS_FROM: i64 = 8;

/// The key of the advisory lock migrations take: "flow" in ASCII, as SQLite's application id.
const MIGRATION_LOCK: i64 = 0x666c_6f77;

/// What the database holds, as far as flowcore is concerned.
enum Found {
    /// No table at all in its schema: a store can be made there.
    Empty,
    /// A flowcore store of this schema version.
    Store(i64),
    /// Tables that are not a flowcore store's.
    Foreign(Vec<String>),
}

fn look(client: &Client, errors: &Errors) -> Result<Found, StoreError> {
    // The tables in one statement, one snapshot: a marker looked up apart from the list could
    // miss tables that another process's migration committed in between.
    let tables: Vec<String> = wait(client.query(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()
         ORDER BY tablename",
        &[],
    ))
    .map_err(|e| errors.map(e))?
    .iter()
    .map(|row| row.get(0))
    .collect();
    if tables.iter().any(|t| t == "flowcore_schema") {
        let version = wait(client.query_opt("SELECT version FROM flowcore_schema LIMIT 1", &[]))
            .map_err(|e| errors.map(e))?
            .map_or(0, |row| row.get::<_, i64>(0));
        return Ok(Found::Store(version));
    }
    Ok(if tables.is_empty() {
        Found::Empty
    } else {
        Found::Foreign(tables)
    })
}

/// Refuses, untouched, a database that holds somebody else's tables or a newer flowcore's
/// store; for reading, also one with no store (reading never makes one) and an older
/// flowcore's (upgrading it is a write).
pub(crate) fn check(client: &Client, errors: &Errors, write: bool) -> Result<(), StoreError> {
    let store = || std::path::PathBuf::from(errors.store());
    match look(client, errors)? {
        Found::Store(version) if version > VERSION => Err(StoreError::NewerSchema {
            path: store(),
            found: version,
            known: VERSION,
        }),
        Found::Store(version) if version < READS_FROM && !write => Err(StoreError::OlderSchema {
            path: store(),
            found: version,
            known: VERSION,
        }),
        Found::Store(_) => Ok(()),
        Found::Empty if write => Ok(()),
        Found::Empty => Err(StoreError::NotAStore {
            path: store(),
            reason: "it holds no tables; a flow run makes a store, reading never does".to_owned(),
        }),
        Found::Foreign(tables) => Err(StoreError::NotAStore {
            path: store(),
            reason: format!(
                "it holds tables flowcore did not create: {}",
                tables.join(", ")
            ),
        }),
    }
}

/// Applies the migrations the database lacks, in one transaction holding an advisory lock: ten
/// processes starting at once migrate it once, the others find it done.
pub(crate) fn migrate(client: &Client, errors: &Errors) -> Result<(), StoreError> {
    if matches!(look(client, errors)?, Found::Store(VERSION)) {
        return Ok(());
    }
    wait(client.batch_execute("BEGIN")).map_err(|e| errors.map(e))?;
    let migrated = migrate_in_transaction(client, errors)
        .and_then(|()| wait(client.batch_execute("COMMIT")).map_err(|e| errors.map(e)));
    if migrated.is_err() {
        let _ = wait(client.batch_execute("ROLLBACK"));
    }
    migrated
}

fn migrate_in_transaction(client: &Client, errors: &Errors) -> Result<(), StoreError> {
    wait(client.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]))
        .map_err(|e| errors.map(e))?;
    let version = match look(client, errors)? {
        Found::Store(version) if version > VERSION => {
            return Err(StoreError::NewerSchema {
                path: std::path::PathBuf::from(errors.store()),
                found: version,
                known: VERSION,
            });
        }
        Found::Store(version) => version,
        Found::Empty => 0,
        Found::Foreign(tables) => {
            return Err(StoreError::NotAStore {
                path: std::path::PathBuf::from(errors.store()),
                reason: format!(
                    "it holds tables flowcore did not create: {}",
                    tables.join(", ")
                ),
            });
        }
    };
    for sql in &MIGRATIONS[version.clamp(0, VERSION) as usize..] {
        wait(client.batch_execute(sql)).map_err(|e| errors.map(e))?;
    }
    wait(client.execute("UPDATE flowcore_schema SET version = $1", &[&VERSION]))
        .map_err(|e| errors.map(e))?;
    Ok(())
}
