//! The PostgreSQL run store when things go wrong around it: a server restarted in the middle of
//! a flow, a server away for less or for longer than the store's write timeout, a login the
//! server refuses, a database that is not a store (missing, somebody else's, a newer
//! flowcore's), a role that may only read, and a process killed while its runs were running.
//! Nothing a run recorded is lost or written twice, a run that could not be recorded says so,
//! and a refusal is one line naming the database by its URL, never with the password, leaving
//! the database as it was.
//!
//! Children are this test binary again (see tests/support). Every test skips where no
//! PostgreSQL can be started (tests/support/postgres.rs), unless
//! `FLOWCORE_POSTGRES_TEST=required`.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use flowcore::StateKind::*;
use flowcore::{Store, StoreError, Timestamp, Uuid, flow, task};
use support::{
    DEADLINE, PgDb, Postgres, PostgresOptions, Running, Shutdown, child, env_path, marker, run_ok,
    show, wait_until,
};

/// One integer that `sql` selects, read with psql: it works on any thread, and sees what is
/// committed, past the store's own reads.
fn int(db: &PgDb, sql: &str) -> i64 {
    let out = db.psql(sql);
    out.trim()
        .parse()
        .unwrap_or_else(|e| panic!("`{sql}` gave {out:?}: {e}"))
}

/// `id` as a literal for psql.
fn bytea(id: Uuid) -> String {
    format!("'\\x{}'::bytea", id.simple())
}

/// Everything the database holds: its tables, each one's rows (a digest of them, in a fixed
/// order), and where its identity sequences stand, which an insert moves even when it is
/// rolled back.
fn contents(db: &PgDb) -> String {
    let tables =
        db.psql("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1");
    let mut out = format!("tables: {}\n", tables.replace('\n', ", "));
    for table in tables.lines() {
        out += &db.psql(&format!(
            "SELECT '{table}: ' || COUNT(*) || ' rows, '
                 || md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))
             FROM {table} t"
        ));
        out.push('\n');
    }
    out += &db.psql(
        "SELECT sequencename || ' at ' || coalesce(last_value::text, 'start')
         FROM pg_sequences WHERE schemaname = current_schema() ORDER BY 1",
    );
    out
}

/// `db`'s URL with `user_info` (`name` or `name:password`) before the host, instead of the
/// harness's `user=postgres`.
fn url_with(db: &PgDb, user_info: &str) -> String {
    format!("postgres://{user_info}@/{}?{}", db.name(), socket_query(db))
}

/// The query of `db`'s URL without its user: `host=…` (and `port=…`).
fn socket_query(db: &PgDb) -> String {
    let (_, query) = db.url().split_once('?').expect("a socket URL has a query");
    query
        .split('&')
        .filter(|pair| !pair.starts_with("user="))
        .collect::<Vec<_>>()
        .join("&")
}

type Open = fn(&str) -> Result<Store, StoreError>;

/// The three ways a program opens a store at a URL.
const OPENS: [(&str, Open); 3] = [
    ("Store::postgres", Store::postgres),
    ("Store::open", |url| Store::open(url)),
    ("Store::open_existing", |url| Store::open_existing(url)),
];

/// The error opening `url` with `open`, which must refuse it.
fn refusal(how: &str, open: Open, url: &str) -> StoreError {
    match open(url) {
        Ok(store) => panic!("{how} accepted {url}: {store:?}"),
        Err(e) => e,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// The children.

const RESTART_TASKS: u32 = 3_000;

#[task]
async fn through_a_restart(i: u32) -> u32 {
    tracing::info!("step {i}");
    let go = env_path("GO").expect("GO");
    if i + 1 == RESTART_TASKS {
        // The flow cannot end before the test has restarted the server: the restart happens
        // mid-run, whatever the timing.
        while !go.exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    } else if !go.exists() {
        // Task runs keep coming, to be written, however long the restart takes; once it is
        // over, the rest run at full speed.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    i
}

#[flow]
async fn across_a_restart() -> u64 {
    let mut sum = 0;
    for i in 0..RESTART_TASKS {
        sum += u64::from(through_a_restart(i).await);
    }
    sum
}

#[task]
async fn pg_first_step() -> u32 {
    1
}

#[task]
async fn pg_hanging_step(x: u32) -> u32 {
    println!("HANGING");
    std::future::pending::<()>().await;
    x
}

#[flow]
async fn hangs_on_postgres() -> u32 {
    let x = pg_first_step().await;
    pg_hanging_step(x).await
}

#[task]
async fn recorded_step(i: u32) -> u32 {
    i * 2
}

#[flow]
async fn recorded_flow(n: u32) -> u32 {
    let mut sum = 0;
    for i in 0..n {
        sum += recorded_step(i).await;
    }
    sum
}

/// The child of these tests: installs the store at the URL `STORE` and runs what `PG_CHILD`
/// says: `restart` runs `across_a_restart` (recording its log lines too) and prints what its
/// record says; `hang` runs `hangs_on_postgres`, which never ends; `record` runs
/// `recorded_flow(3)`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by the tests of tests/postgres_store.rs"]
async fn child_pg() {
    let Ok(role) = std::env::var("PG_CHILD") else {
        return;
    };
    let url = std::env::var("STORE").expect("STORE");
    Store::open(&url).unwrap().install().unwrap();
    match role.as_str() {
        "restart" => {
            use tracing_subscriber::layer::SubscriberExt as _;
            // The store first: the log layer sends lines to the installed store.
            let subscriber = tracing_subscriber::registry()
                .with(flowcore::logging::layer_to(std::io::sink, false));
            tracing::subscriber::set_global_default(subscriber).unwrap();
            println!("STORE_OPEN");
            let (sum, run) = across_a_restart().with_run().await;
            println!("OUTPUT {sum}");
            println!("FLOW_RUN {}", run.id);
            println!("STATE {}", run.state().kind);
            println!("TASKS {}", run.task_runs.len());
            println!(
                "NOT_RECORDED {}",
                run.not_recorded.as_deref().unwrap_or("-")
            );
            println!("HEADLINE {}", run.summary().headline());
        }
        "hang" => {
            hangs_on_postgres().await;
            unreachable!("the second step never returns");
        }
        "record" => {
            let (out, run) = recorded_flow(3).with_run().await;
            assert_eq!(out, 6);
            println!("FLOW_RUN {}", run.id);
        }
        other => panic!("no child role {other:?}"),
    }
}

fn pg_child(role: &str, url: &str) -> std::process::Command {
    child("child_pg", [("PG_CHILD", role), ("STORE", url)])
}

// ---------------------------------------------------------------------------------------------
// A server restarted mid-run.

#[test]
fn a_server_restart_mid_run_loses_nothing_and_writes_nothing_twice() {
    // fsync on: what the server said it committed has to be on disk to survive the restart.
    let Some(mut pg) = Postgres::with_options(PostgresOptions::default().durable()) else {
        return;
    };
    let db = pg.database("restart_mid_run");
    let url = db.url().to_owned();
    let dir = support::tempdir();
    let go = dir.path().join("go");
    let mut running = Running::spawn(pg_child("restart", &url).env("GO", &go));
    running.wait_for_line("STORE_OPEN");
    wait_until("200 task runs committed", Some(&mut running.child), || {
        (int(&db, "SELECT COUNT(*) FROM task_runs") >= 200).then_some(())
    });
    pg.restart(Shutdown::Fast);
    std::fs::write(&go, "").unwrap();
    let out = running.finish();

    let n = i64::from(RESTART_TASKS);
    assert_eq!(marker(&out, "STATE"), "Completed", "{}", show(&out));
    assert_eq!(marker(&out, "TASKS"), RESTART_TASKS.to_string());
    assert_eq!(marker(&out, "NOT_RECORDED"), "-");
    assert_eq!(marker(&out, "HEADLINE"), "Completed");
    assert_eq!(marker(&out, "OUTPUT"), (n * (n - 1) / 2).to_string());

    // The writer lost its connection while it wrote, said so, and said that it recovered
    // with nothing lost; nothing else is printed: no run went unrecorded, no error.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lost = format!("flowcore: could not record runs (cannot reach the run store {url}: ");
    let back = format!("flowcore: the run store {url} records again, after ");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines.iter().any(|l| l.starts_with(&lost)),
        "the restart cut the writer off mid-write: {}",
        show(&out)
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&back) && l.ends_with("s; nothing was lost")),
        "{}",
        show(&out)
    );
    for line in &lines {
        assert!(
            (line.starts_with(&lost) && line.ends_with("); keeping them and trying again"))
                || (line.starts_with(&back) && line.ends_with("s; nothing was lost")),
            "unexpected line on stderr: {line:?}\n{}",
            show(&out)
        );
    }

    let flow_run: Uuid = marker(&out, "FLOW_RUN").parse().unwrap();
    let id = bytea(flow_run);
    assert_eq!(int(&db, "SELECT COUNT(*) FROM flow_runs"), 1);
    assert_eq!(
        int(
            &db,
            &format!(
                "SELECT COUNT(*) FROM flow_runs
                 WHERE id = {id} AND state = 'Completed' AND ended_at IS NOT NULL"
            )
        ),
        1
    );
    // Every task run once, each with exactly its three states, Pending, Running, Completed.
    assert_eq!(int(&db, "SELECT COUNT(*) FROM task_runs"), n);
    assert_eq!(int(&db, "SELECT COUNT(DISTINCT id) FROM task_runs"), n);
    assert_eq!(
        int(
            &db,
            &format!(
                "SELECT COUNT(*) FROM task_runs
                 WHERE flow_run_id = {id} AND state = 'Completed' AND attempts = 1
                     AND ended_at IS NOT NULL"
            )
        ),
        n
    );
    assert_eq!(int(&db, "SELECT COUNT(*) FROM states"), 3 * n + 3);
    assert_eq!(
        int(
            &db,
            "SELECT COUNT(*) FROM states s JOIN task_runs t ON s.run_id = t.id
             WHERE (s.seq, s.kind) IN (VALUES (0::bigint, 'Pending'), (1, 'Running'),
                 (2, 'Completed'))"
        ),
        3 * n
    );
    assert_eq!(
        int(
            &db,
            &format!(
                "SELECT COUNT(*) FROM states WHERE run_id = {id}
                 AND (seq, kind) IN (VALUES (0::bigint, 'Pending'), (1, 'Running'),
                     (2, 'Completed'))"
            )
        ),
        3
    );
    // Each task's own log line once.
    assert_eq!(
        int(&db, "SELECT COUNT(*) FROM logs WHERE message LIKE 'step %'"),
        n
    );
    assert_eq!(
        int(
            &db,
            "SELECT COUNT(DISTINCT message) FROM logs WHERE message LIKE 'step %'"
        ),
        n
    );
    assert_eq!(
        int(
            &db,
            "SELECT COUNT(*) FROM (SELECT run_id, message FROM logs
                 GROUP BY run_id, message HAVING COUNT(*) > 1) twice"
        ),
        0,
        "no log line twice"
    );
    assert_eq!(
        int(
            &db,
            "SELECT COUNT(*) FROM logs WHERE level IN ('ERROR', 'WARN')"
        ),
        0
    );

    // As the store reads it back.
    let stored = Store::open_existing(&url)
        .unwrap()
        .flow_run(flow_run)
        .unwrap()
        .expect("the flow run is stored");
    assert_eq!(stored.history.kinds(), [Pending, Running, Completed]);
    assert_eq!(stored.task_runs.len(), RESTART_TASKS as usize);
    assert!(
        stored
            .task_runs
            .iter()
            .all(|t| t.history.kinds() == [Pending, Running, Completed])
    );
}

// ---------------------------------------------------------------------------------------------
// A server that is away.

const AWAY_TASKS: u32 = 5;

#[task]
async fn while_away(i: u32) -> u32 {
    i + 10
}

#[flow]
async fn away_flow() -> u32 {
    let mut sum = 0;
    for i in 0..AWAY_TASKS {
        sum += while_away(i).await;
    }
    sum
}

/// Checks that the flow run `id` is stored whole: Completed, with its `tasks` task runs, each
/// Completed, and every run's three states.
fn assert_recorded_whole(db: &PgDb, id: Uuid, tasks: u32) {
    let n = i64::from(tasks);
    let id = bytea(id);
    assert_eq!(int(db, "SELECT COUNT(*) FROM flow_runs"), 1);
    assert_eq!(
        int(
            db,
            &format!("SELECT COUNT(*) FROM flow_runs WHERE id = {id} AND state = 'Completed'")
        ),
        1
    );
    assert_eq!(
        int(
            db,
            &format!(
                "SELECT COUNT(*) FROM task_runs WHERE flow_run_id = {id} AND state = 'Completed'"
            )
        ),
        n
    );
    assert_eq!(int(db, "SELECT COUNT(*) FROM task_runs"), n);
    assert_eq!(int(db, "SELECT COUNT(*) FROM states"), 3 * n + 3);
    assert_eq!(
        int(
            db,
            "SELECT COUNT(*) FROM states
             WHERE (seq, kind) IN (VALUES (0::bigint, 'Pending'), (1, 'Running'),
                 (2, 'Completed'))"
        ),
        3 * n + 3
    );
}

#[test]
fn a_server_away_past_the_write_timeout_leaves_the_run_saying_it_was_not_recorded() {
    let Some(mut pg) = Postgres::with_options(PostgresOptions::default()) else {
        return;
    };
    let db = pg.database("away_long");
    let url = db.url().to_owned();
    let timeout = Duration::from_secs(2);
    let store = Store::postgres(&url).unwrap().write_timeout(timeout);
    pg.stop(Shutdown::Fast);

    let rt = runtime();
    let started = Instant::now();
    let (out, run) = rt.block_on(store.scope(away_flow().with_run()));
    let took = started.elapsed();
    assert_eq!(out, 10 + 11 + 12 + 13 + 14);
    assert_eq!(run.state().kind, Completed);
    assert_eq!(run.task_runs.len(), AWAY_TASKS as usize);
    assert_eq!(
        run.not_recorded.as_deref(),
        Some("the database is unreachable")
    );
    assert_eq!(
        run.summary().headline(),
        "Completed · not recorded: the database is unreachable"
    );
    assert!(
        took >= timeout,
        "the run waited for the store up to its write timeout, then went on: {took:?}"
    );

    let e = rt
        .block_on(store.flush())
        .expect_err("nothing can be committed");
    match &e {
        StoreError::Unavailable { store, cause, .. } => {
            assert_eq!(store, &url);
            assert!(
                matches!(&**cause, StoreError::Unreachable { store, .. } if *store == url),
                "{cause:?}"
            );
        }
        other => panic!("expected the store to be unavailable, got {other:?}"),
    }
    let message = e.to_string();
    assert!(
        message.starts_with(&format!("run store {url} has committed nothing for "))
            && message.contains(&format!("s (cannot reach the run store {url}: "))
            && message
                .ends_with("); runs go on, and their records wait in memory until it recovers")
            && !message.contains('\n'),
        "{message}"
    );
    // The server is back while the process lives: what waited in memory is committed.
    pg.start();
    let deadline = Instant::now() + DEADLINE;
    while rt.block_on(store.flush()).is_err() {
        assert!(Instant::now() < deadline, "the store never recovered");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_recorded_whole(&db, run.id, AWAY_TASKS);
    let stored = store.flow_run(run.id).unwrap().unwrap();
    assert_eq!(stored.history.kinds(), [Pending, Running, Completed]);
    assert_eq!(stored.not_recorded, None);
}

static BRIEF_BODY_STARTED: AtomicBool = AtomicBool::new(false);
static BRIEF_TASK_BODIES: AtomicU32 = AtomicU32::new(0);

#[task]
async fn brief_step(i: u32) -> u32 {
    BRIEF_TASK_BODIES.fetch_add(1, Ordering::SeqCst);
    i + 10
}

#[flow]
async fn brief_flow() -> u32 {
    BRIEF_BODY_STARTED.store(true, Ordering::SeqCst);
    let mut sum = 0;
    for i in 0..AWAY_TASKS {
        sum += brief_step(i).await;
    }
    sum
}

#[test]
fn a_server_away_briefly_is_waited_for_and_the_run_is_recorded_whole() {
    let Some(mut pg) = Postgres::with_options(PostgresOptions::default()) else {
        return;
    };
    let db = pg.database("away_briefly");
    let store = Store::postgres(db.url())
        .unwrap()
        .write_timeout(Duration::from_secs(30));
    pg.stop(Shutdown::Fast);

    let rt = runtime();
    let started = Instant::now();
    let scoped = store.clone();
    let call = rt.spawn(async move { scoped.scope(brief_flow().with_run()).await });
    let away = Duration::from_millis(1_500);
    std::thread::sleep(away);
    assert!(!call.is_finished(), "the run waits for the server");
    assert!(
        !BRIEF_BODY_STARTED.load(Ordering::SeqCst),
        "the flow's body waits until its start is committed"
    );
    assert_eq!(BRIEF_TASK_BODIES.load(Ordering::SeqCst), 0);
    pg.start();

    let (out, run) = rt.block_on(call).unwrap();
    assert!(started.elapsed() >= away);
    assert_eq!(out, 10 + 11 + 12 + 13 + 14);
    assert_eq!(run.state().kind, Completed);
    assert_eq!(run.not_recorded, None);
    assert_eq!(run.summary().headline(), "Completed");
    assert_eq!(BRIEF_TASK_BODIES.load(Ordering::SeqCst), AWAY_TASKS);
    // Committed when the call returned, with no flush.
    assert_recorded_whole(&db, run.id, AWAY_TASKS);
    rt.block_on(store.flush()).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Refusals: one line, naming the URL without its password, leaving the database as it was.

#[test]
fn a_refused_login_names_the_url_without_its_password() {
    let Some(mut pg) = Postgres::with_options(PostgresOptions::default()) else {
        return;
    };
    let db = pg.database("login");
    let name = db.name().to_owned();
    pg.psql(
        "postgres",
        &format!(
            "CREATE ROLE flow_login LOGIN PASSWORD 'right-horse';
             ALTER DATABASE {name} OWNER TO flow_login"
        ),
    );
    // This role must give its password; the others keep initdb's trust.
    let hba = pg.data_dir().join("pg_hba.conf");
    let rules = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(&hba, format!("local all flow_login scram-sha-256\n{rules}")).unwrap();
    pg.restart(Shutdown::Fast);
    let query = socket_query(&db);

    let refused = [
        (
            url_with(&db, "flow_login:s3cret"),
            format!("postgres://flow_login@/{name}?{query}"),
            "password authentication failed for user \"flow_login\"",
        ),
        (
            format!("postgres:///{name}?{query}&user=flow_login&password=s3cret"),
            format!("postgres:///{name}?{query}&user=flow_login"),
            "password authentication failed for user \"flow_login\"",
        ),
        (
            url_with(&db, "nobody:s3cret"),
            format!("postgres://nobody@/{name}?{query}"),
            "role \"nobody\" does not exist",
        ),
    ];
    for (url, shown, why) in &refused {
        for (how, open) in OPENS {
            let e = refusal(how, open, url);
            assert!(matches!(e, StoreError::Open { .. }), "{how}: {e:?}");
            assert_eq!(
                e.to_string(),
                format!("cannot open {shown}: the server refused the login: {why}"),
                "{how}"
            );
            assert!(!format!("{e} {e:?}").contains("s3cret"), "{how}: {e:?}");
        }
    }
    // No password at all, where the server asks for one: a login problem, said so.
    let bare = format!("postgres://flow_login@/{name}?{query}");
    for (how, open) in OPENS {
        let e = refusal(how, open, &bare);
        assert!(matches!(e, StoreError::Open { .. }), "{how}: {e:?}");
        assert_eq!(
            e.to_string(),
            format!(
                "cannot open {bare}: the server asks for a password and the URL gives none: write it as postgres://USER:PASSWORD@HOST/DATABASE"
            ),
            "{how}"
        );
    }
    assert_eq!(
        db.psql("SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'"),
        "0",
        "a refused login made nothing"
    );

    // The right password opens it; the store never shows it.
    let store = Store::postgres(&url_with(&db, "flow_login:right-horse")).unwrap();
    assert_eq!(
        store.describe(),
        format!("postgres://flow_login@/{name}?{query}")
    );
    assert_eq!(
        db.psql("SELECT tableowner FROM pg_tables WHERE tablename = 'flow_runs'"),
        "flow_login"
    );
}

#[test]
fn an_unknown_database_is_refused_saying_to_create_it_first() {
    let Some(pg) = Postgres::shared() else {
        return;
    };
    let url = pg.url("no_such_store");
    for (how, open) in OPENS {
        let e = refusal(how, open, &url);
        assert!(matches!(e, StoreError::Open { .. }), "{how}: {e:?}");
        assert_eq!(
            e.to_string(),
            format!(
                "cannot open {url}: database \"no_such_store\" does not exist; create it first (createdb)"
            ),
            "{how}"
        );
    }
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT COUNT(*) FROM pg_database WHERE datname = 'no_such_store'"
        ),
        "0"
    );
}

#[test]
fn a_database_with_somebody_elses_tables_is_refused_and_left_untouched() {
    let Some(pg) = Postgres::shared() else {
        return;
    };
    let db = pg.database("someone_elses");
    db.psql(
        "CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL);
         INSERT INTO orders VALUES (1, 'tea'), (2, 'cups')",
    );
    let before = contents(&db);
    for (how, open) in OPENS {
        let e = refusal(how, open, db.url());
        assert!(matches!(e, StoreError::NotAStore { .. }), "{how}: {e:?}");
        let message = e.to_string();
        assert!(
            message.starts_with(&format!(
                "{} is not a flowcore run store (it holds tables flowcore did not create: orders); flowcore leaves it untouched",
                db.url()
            )) && !message.contains('\n'),
            "{how}: {message}"
        );
        assert_eq!(contents(&db), before, "{how} changed the database");
    }
    assert_eq!(
        db.psql("SELECT string_agg(id || ' ' || item, ', ' ORDER BY id) FROM orders"),
        "1 tea, 2 cups"
    );
}

#[test]
fn a_newer_flowcores_store_is_refused_and_left_untouched() {
    let Some(pg) = Postgres::shared() else {
        return;
    };
    let db = pg.database("newer_schema");
    // Made by another process, which has exited: nothing of it writes on (its heartbeats).
    run_ok(&mut pg_child("record", db.url()));
    db.psql("UPDATE flowcore_schema SET version = 99");
    let before = contents(&db);
    for (how, open) in OPENS {
        let e = refusal(how, open, db.url());
        let StoreError::NewerSchema { found, known, .. } = &e else {
            panic!("{how}: {e:?}");
        };
        assert_eq!(*found, 99, "{how}");
        assert!(*known < 99, "{how}");
        assert_eq!(
            e.to_string(),
            format!(
                "{} was written by a newer flowcore (schema version 99; this build knows up to {known}); upgrade flowcore to read it",
                db.url()
            ),
            "{how}"
        );
        assert_eq!(contents(&db), before, "{how} changed the database");
    }
    assert_eq!(int(&db, "SELECT version FROM flowcore_schema"), 99);
}

#[test]
fn a_dead_or_retiring_process_s_unfinished_flow_runs_are_found_by_their_index() {
    let Some(pg) = Postgres::shared() else {
        return;
    };
    let db = pg.database("unfinished_index");
    run_ok(&mut pg_child("record", db.url()));
    // As crash marking and a retiring process ask (store/sql/crash.rs); the planner is told
    // not to read the whole table where it has a choice: without the index it has none.
    let plan = db.psql(
        "SET enable_seqscan = off; EXPLAIN SELECT 1 FROM flow_runs WHERE process_id = '\\x00'
         AND (state = 'Late' OR state = 'Pending' OR state = 'Running' OR state = 'Retrying'
             OR state = 'Paused' OR state = 'Cancelling')",
    );
    assert!(plan.contains("flow_runs_unfinished"), "{plan}");
}

#[test]
fn a_read_only_role_reads_the_store_and_reading_writes_nothing() {
    let Some(pg) = Postgres::shared() else {
        return;
    };
    let db = pg.database("read_only_role");
    let out = run_ok(&mut pg_child("record", db.url()));
    let recorded: Uuid = marker(&out, "FLOW_RUN").parse().unwrap();

    // A run left Running by a process that is gone: a reader shows it Crashed, and leaves
    // marking it to a writer.
    let host = db.psql("SELECT host FROM processes LIMIT 1");
    let gone = {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        c.wait().unwrap();
        c.id()
    };
    let (dead, left) = (Uuid::from_bytes([7; 16]), Uuid::from_bytes([8; 16]));
    db.psql(&format!(
        "INSERT INTO processes (id, pid, host, start_ticks, started_at, heartbeat_at)
             VALUES ({dead}, {gone}, '{host}', 1, 0, 0);
         INSERT INTO flow_runs (id, name, flow, state, created_at, process_id)
             VALUES ({left}, 'left-behind', 'planted', 'Running', 0, {dead});
         INSERT INTO state_rows (run_id, seq, kind, at)
             VALUES ({left}, 0, 'Pending', 0), ({left}, 1, 'Running', 0)",
        dead = bytea(dead),
        left = bytea(left),
    ));
    db.psql(
        "CREATE ROLE flowcore_reader LOGIN;
         GRANT SELECT ON ALL TABLES IN SCHEMA public TO flowcore_reader",
    );
    let reader_url = url_with(&db, "flowcore_reader");
    let crash_message = format!(
        "the process running it (pid {gone} on {host}) stopped; its last heartbeat was at {}",
        Timestamp::from_micros(0)
    );

    let before = contents(&db);
    // Whatever it tried to write, the role could not: it reads, or fails.
    for url in [reader_url.as_str(), db.url()] {
        let reader = Store::open_existing(url).unwrap();
        let runs = reader.flow_runs(&Default::default()).unwrap();
        let mut listed: Vec<_> = runs.iter().map(|r| (r.id, r.state)).collect();
        listed.sort();
        let mut want = vec![(recorded, Completed), (left, Crashed)];
        want.sort();
        assert_eq!(listed, want, "{url}");
        let run = reader.flow_run(recorded).unwrap().unwrap();
        assert_eq!(run.history.kinds(), [Pending, Running, Completed]);
        assert_eq!(run.task_runs.len(), 3);
        let planted = reader.flow_run(left).unwrap().unwrap();
        assert_eq!(planted.history.kinds(), [Pending, Running, Crashed]);
        assert_eq!(planted.state().message(), crash_message);
        drop(reader);
        assert_eq!(contents(&db), before, "reading through {url} wrote");
    }
    assert_eq!(
        db.psql(&format!(
            "SELECT state FROM flow_runs WHERE id = {}",
            bytea(left)
        )),
        "Running"
    );

    // Recording runs needs more than reading: refused, and nothing written.
    let e = refusal("Store::postgres", Store::postgres, &reader_url);
    let message = e.to_string();
    assert!(
        message.starts_with(&format!(
            "run store postgres://flowcore_reader@/{}?{}: permission denied for table ",
            db.name(),
            socket_query(&db)
        )) && !message.contains('\n'),
        "{message}"
    );
    assert_eq!(contents(&db), before, "a refused writer wrote");
}

#[test]
fn reading_an_empty_database_refuses_and_creates_nothing() {
    let Some(pg) = Postgres::shared() else {
        return;
    };
    let db = pg.database("empty_read");
    let e = refusal("Store::open_existing", OPENS[2].1, db.url());
    assert!(matches!(e, StoreError::NotAStore { .. }), "{e:?}");
    let message = e.to_string();
    assert!(
        message.starts_with(&format!(
            "{} is not a flowcore run store (it holds no tables; a flow run makes a store, reading never does); flowcore leaves it untouched",
            db.url()
        )) && !message.contains('\n'),
        "{message}"
    );
    assert_eq!(
        db.psql("SELECT COUNT(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'"),
        "0",
        "no table, sequence or index made"
    );
}

// ---------------------------------------------------------------------------------------------
// A process killed mid-run.

#[test]
fn a_killed_process_runs_are_marked_crashed_on_postgres() {
    let Some(pg) = Postgres::shared() else {
        return;
    };
    let db = pg.database("crash_marking");
    let mut running = Running::spawn(&mut pg_child("hang", db.url()));
    running.wait_for_line("HANGING");
    let pid = running.child.id();
    wait_until(
        "the first step Completed and the hanging step Running in the store",
        Some(&mut running.child),
        || {
            let rows = db.psql("SELECT task || ' ' || state FROM task_runs ORDER BY row_order");
            (rows == "pg_first_step Completed\npg_hanging_step Running").then_some(())
        },
    );
    let id: Uuid = db
        .psql("SELECT encode(id, 'hex') FROM flow_runs")
        .parse()
        .unwrap();
    let out = running.kill();
    assert!(!out.status.success(), "{}", show(&out));
    let host = db.psql(&format!("SELECT host FROM processes WHERE pid = {pid}"));

    // A reader shows the runs Crashed without writing it down.
    let reader = Store::open_existing(db.url()).unwrap();
    let shown = reader.flow_run(id).unwrap().unwrap();
    assert_eq!(shown.history.kinds(), [Pending, Running, Crashed]);
    assert_eq!(
        db.psql("SELECT state FROM flow_runs UNION ALL SELECT state FROM task_runs ORDER BY 1"),
        "Completed\nRunning\nRunning"
    );
    drop(reader);

    // A program that records runs marks them.
    let store = Store::open(db.url()).unwrap();
    let crashed = store.flow_run(id).unwrap().unwrap();
    assert_eq!(crashed.history.kinds(), [Pending, Running, Crashed]);
    let message = crashed.state().message().to_owned();
    assert!(
        message.starts_with(&format!(
            "the process running it (pid {pid} on {host}) stopped; its last heartbeat was at "
        )),
        "{message}"
    );
    assert_eq!(crashed.error(), Some(message.as_str()));
    assert_eq!(
        shown.state().message(),
        message,
        "the reader showed the same"
    );
    let tasks: Vec<_> = crashed
        .task_runs
        .iter()
        .map(|t| (t.task.as_ref(), t.state().kind))
        .collect();
    assert_eq!(
        tasks,
        [("pg_first_step", Completed), ("pg_hanging_step", Crashed)]
    );
    let hanging = &crashed.task_runs[1];
    assert_eq!(hanging.history.kinds(), [Pending, Running, Crashed]);
    assert_eq!(hanging.state().message(), message);
    let summary = store.flow_run_summary(id).unwrap().unwrap();
    assert_eq!(summary.state, Crashed);
    assert_eq!(summary.error.as_deref(), Some(message.as_str()));
    assert!(summary.ended_at.is_some());
    assert_eq!(
        int(
            &db,
            &format!(
                "SELECT COUNT(*) FROM states WHERE seq = 2 AND kind = 'Crashed' AND message = '{}'
                 AND run_id IN (SELECT id FROM flow_runs UNION ALL
                     SELECT id FROM task_runs WHERE task = 'pg_hanging_step')",
                message.replace('\'', "''")
            )
        ),
        2
    );

    // Marking again, or opening again, marks nothing more.
    let states = int(&db, "SELECT COUNT(*) FROM states");
    assert_eq!(store.mark_crashed().unwrap(), 0);
    let again = Store::open(db.url()).unwrap();
    assert_eq!(again.mark_crashed().unwrap(), 0);
    assert_eq!(int(&db, "SELECT COUNT(*) FROM states"), states);
    assert_eq!(again.flow_run(id).unwrap().unwrap(), crashed);
}

/// No server behind the socket: the error says why, not only that connecting failed.
#[test]
fn a_server_that_is_not_there_is_unreachable_with_the_reason() {
    let dir = support::tempdir();
    let url = format!(
        "postgres://flow:s3cret@/runs?host={}&user=flow",
        dir.path().display()
    );
    let e = Store::postgres(&url).unwrap_err();
    assert!(matches!(e, StoreError::Unreachable { .. }), "{e:?}");
    let shown = format!(
        "postgres://flow@/runs?host={}&user=flow",
        dir.path().display()
    );
    assert_eq!(
        e.to_string(),
        format!(
            "cannot reach the run store {shown}: error connecting to server: No such file or directory (os error 2)"
        )
    );
}
