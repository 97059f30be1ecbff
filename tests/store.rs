//! The run store keeps what it promises, on SQLite and on PostgreSQL alike (each test body runs
//! on both, see `support::backends`): every run, state, attempt, parameter and log line reaches
//! the tables; a flow call returns only once its final state is committed; cached results are
//! shared between processes and expire; several processes can write at once; and nothing is
//! dropped under load.
//!
//! The in-process tests record to the test's own store, in scope. The others run children:
//! this test binary again, with `--exact <child>`, where the child is an ignored test that does
//! nothing unless its environment variable is set. A child installs its store from the `STORE`
//! target (a path or a URL) it is given and prints `KEY value` lines for the parent.

#[macro_use]
mod support;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use flowcore::StateKind::*;
use flowcore::{FlowRunRecord, StateKind, Store, Uuid, flow, task};
use support::backends::{Kind, TestStore};
use support::{append_line, child, env_path, lines, marker, run_ok, wait_until};

store_tests!(
    every_task_run_state_and_attempt_reaches_the_store,
    a_flow_run_is_committed_when_its_call_returns,
    a_flow_run_is_durable_even_if_the_process_exits_right_after_the_call,
    parameters_and_log_lines_are_recorded,
    cached_results_are_shared_between_processes,
    several_processes_write_to_one_store_at_once,
    processes_creating_one_store_at_once_all_open_it,
    fifty_thousand_task_runs_all_reach_the_store,
    edges_and_map_positions_are_stored_with_each_task_run,
);

/// A child's store: the `STORE` target (a path or a URL) it was given, installed, or `None` if
/// this process is not that child.
fn child_store(role_var: &str) -> Option<Store> {
    std::env::var_os(role_var)?;
    let target = std::env::var_os("STORE").expect("a child is given STORE");
    let store = Store::open(&target).unwrap();
    store.clone().install().unwrap();
    Some(store)
}

/// The record with its task runs and subflow runs sorted by id: the record a flow call
/// returns lists them in the order they finished, the store in the order they were created.
fn by_id(mut run: FlowRunRecord) -> FlowRunRecord {
    run.task_runs.sort_by_key(|t| t.id);
    run.subflow_runs = run.subflow_runs.into_iter().map(by_id).collect();
    run.subflow_runs.sort_by_key(|f| f.id);
    run
}

fn state_rows(ts: &TestStore, run: Uuid) -> i64 {
    ts.count(
        "SELECT COUNT(*) FROM states WHERE run_id = $1",
        &[run.as_bytes()],
    )
}

// ---------------------------------------------------------------------------------------------
// Everything reaches the store.

#[task]
async fn plain_step(i: u32) -> u32 {
    i + 1
}

static FLAKY_ATTEMPTS: Mutex<BTreeMap<(u32, u32), u32>> = Mutex::new(BTreeMap::new());

/// Fails the first attempt of each `i` of each `round` (one per backend, which run at once);
/// succeeds on the second.
#[task(retries = 2)]
async fn flaky_step(round: u32, i: u32) -> Result<u32, String> {
    let attempt = {
        let mut attempts = FLAKY_ATTEMPTS.lock().unwrap();
        let n = attempts.entry((round, i)).or_insert(0);
        *n += 1;
        *n
    };
    if attempt == 1 {
        Err(format!("step {i} flaked"))
    } else {
        Ok(i)
    }
}

#[task(retries = 1, tags = ["doomed"])]
async fn doomed_step() -> Result<u32, String> {
    Err("the source is gone".to_owned())
}

#[flow]
async fn inner_flow(n: u32) -> u32 {
    let mut sum = 0;
    for i in 0..n {
        sum += plain_step(i).await;
    }
    sum
}

const PLAIN: u32 = 1_850;
const FLAKY: u32 = 140;
const INNER: u32 = 9;

#[flow]
async fn two_thousand_runs(round: u32) -> u32 {
    let mut sum = 0;
    for i in 0..PLAIN {
        sum += plain_step(i).await;
    }
    // Concurrently, so that they finish in another order than they were created.
    let flaky = futures::future::join_all((0..FLAKY).map(|i| flaky_step(round, i))).await;
    sum += flaky.into_iter().map(Result::unwrap).sum::<u32>();
    assert!(doomed_step().await.is_err());
    sum + inner_flow(INNER).await
}

async fn every_task_run_state_and_attempt_reaches_the_store(ts: &TestStore) {
    let store = ts.store();
    let round = ts.kind() as u32;
    let (_, run) = store.scope(two_thousand_runs(round).with_run()).await;
    assert_eq!(run.state().kind, Completed);
    assert_eq!(
        run.task_runs.len() + run.subflow_runs[0].task_runs.len(),
        2_000
    );
    let counts = run.task_run_counts();
    assert_eq!(counts[&Completed], (PLAIN + FLAKY) as usize);
    assert_eq!(counts[&Failed], 1);

    let stored = store
        .flow_run(run.id)
        .unwrap()
        .expect("the flow run is stored");
    assert_eq!(stored.task_runs.len(), run.task_runs.len());
    assert_eq!(stored.subflow_runs.len(), 1);
    assert_eq!(by_id(stored), by_id(run.clone()));

    // Spot checks of what the comparison above covers, so a failure reads plainly.
    let flaky = run.task_runs_of("flaky_step").next().unwrap();
    assert_eq!(flaky.attempts, 2);
    assert_eq!(
        flaky.history.kinds(),
        [Pending, Running, Retrying, Running, Completed]
    );
    let doomed = run.task_runs_of("doomed_step").next().unwrap();
    assert_eq!(doomed.attempts, 2);
    assert_eq!(doomed.error(), Some("the source is gone"));
    assert_eq!(doomed.tags.as_ref(), ["doomed"]);

    // One row per state in the tables, no more and no fewer.
    let subflow = &run.subflow_runs[0];
    let histories: usize = run.history.len()
        + subflow.history.len()
        + run
            .task_runs
            .iter()
            .chain(&subflow.task_runs)
            .map(|t| t.history.len())
            .sum::<usize>();
    let rows = ts.count(
        "SELECT COUNT(*) FROM states WHERE run_id IN ($1, $2)
            OR run_id IN (SELECT id FROM task_runs WHERE flow_run_id IN ($1, $2))",
        &[run.id.as_bytes(), subflow.id.as_bytes()],
    );
    assert_eq!(rows as usize, histories);
    let task_rows = ts.count(
        "SELECT COUNT(*) FROM task_runs WHERE flow_run_id IN ($1, $2)",
        &[run.id.as_bytes(), subflow.id.as_bytes()],
    );
    assert_eq!(task_rows, 2_000);
}

// ---------------------------------------------------------------------------------------------
// Durable before the call returns.

#[task]
async fn quick_step(i: u32) -> u32 {
    i * 3
}

#[flow]
async fn quick_flow(n: u32) -> u32 {
    let mut sum = 0;
    for i in 0..n {
        sum += quick_step(i).await;
    }
    sum
}

async fn a_flow_run_is_committed_when_its_call_returns(ts: &TestStore) {
    for _ in 0..20 {
        let (out, run) = ts.store().scope(quick_flow(5).with_run()).await;
        assert_eq!(out, 30);
        // No flush, no wait: another connection sees the final state at once.
        let completed = ts.count(
            "SELECT COUNT(*) FROM flow_runs WHERE id = $1 AND state = 'Completed'",
            &[run.id.as_bytes()],
        );
        assert_eq!(completed, 1);
        assert_eq!(state_rows(ts, run.id), 3);
        let completed_tasks = ts.count(
            "SELECT COUNT(*) FROM task_runs WHERE flow_run_id = $1 AND state = 'Completed'",
            &[run.id.as_bytes()],
        );
        assert_eq!(completed_tasks, 5);
    }
}

/// Child of `a_flow_run_is_durable_even_if_the_process_exits_right_after_the_call`.
#[tokio::test]
#[ignore = "run as a child process by a_flow_run_is_durable_even_if_the_process_exits_right_after_the_call"]
async fn child_exit_after_flow() {
    if child_store("EXIT_AFTER_FLOW").is_none() {
        return;
    }
    let (out, run) = quick_flow(4).with_run().await;
    println!("FLOW_RUN {}", run.id);
    println!("OUTPUT {out}");
    // A task run called outside any flow makes the same promise.
    let (out, task_run) = quick_step(7).with_run().await;
    assert_eq!(out, 21);
    println!("TASK_RUN {}", task_run.id);
    // Exits at once: no destructor, no flush, the writer thread dies mid-whatever.
    std::process::exit(0);
}

async fn a_flow_run_is_durable_even_if_the_process_exits_right_after_the_call(ts: &TestStore) {
    for _ in 0..3 {
        let out = support::run(&mut child(
            "child_exit_after_flow",
            [("EXIT_AFTER_FLOW", "1".as_ref()), ("STORE", ts.target())],
        ));
        assert!(out.status.success(), "{}", support::show(&out));
        assert_eq!(marker(&out, "OUTPUT"), "18");
        let id: Uuid = marker(&out, "FLOW_RUN").parse().unwrap();
        let ended = ts.count(
            "SELECT COUNT(*) FROM flow_runs
             WHERE id = $1 AND state = 'Completed' AND ended_at IS NOT NULL",
            &[id.as_bytes()],
        );
        assert_eq!(ended, 1);
        let tasks = ts.count(
            "SELECT COUNT(*) FROM task_runs WHERE flow_run_id = $1 AND state = 'Completed'",
            &[id.as_bytes()],
        );
        assert_eq!(tasks, 4);
        let task_run: Uuid = marker(&out, "TASK_RUN").parse().unwrap();
        let alone = ts.count(
            "SELECT COUNT(*) FROM task_runs
             WHERE id = $1 AND state = 'Completed' AND flow_run_id IS NULL",
            &[task_run.as_bytes()],
        );
        assert_eq!(
            alone, 1,
            "the task run called outside a flow is stored, alone"
        );
        assert_eq!(state_rows(ts, task_run), 3);
        // And through the store's own reads, which also check that the dead child's run was
        // not taken for a crashed one.
        let stored = ts.reopen().flow_run(id).unwrap().unwrap();
        assert_eq!(stored.history.kinds(), [Pending, Running, Completed]);
        assert_eq!(stored.task_runs.len(), 4);
    }
}

// ---------------------------------------------------------------------------------------------
// Parameters and log lines.

#[derive(serde::Serialize, Clone, Debug)]
struct Source {
    table: String,
    limit: u32,
}

#[task]
async fn fetch_rows(source: Source) -> u32 {
    tracing::info!("fetched {} rows", source.limit);
    tracing::warn!(table = %source.table, "slow source");
    source.limit
}

#[flow]
async fn report(source: Source, title: String) -> String {
    tracing::info!("building the report");
    let rows = fetch_rows(source).await;
    format!("{title}: {rows} rows")
}

/// Child of `parameters_and_log_lines_are_recorded`: a process of its own, so that its
/// subscriber is the process's, set before any run (a subscriber set for one thread, beside
/// tests running on others, can miss events whose callsites those tests registered first).
#[tokio::test]
#[ignore = "run as a child process by parameters_and_log_lines_are_recorded"]
async fn child_logs() {
    use tracing_subscriber::layer::SubscriberExt as _;
    if std::env::var_os("LOGS_CHILD").is_none() {
        return;
    }
    // The store first: the log layer sends lines to the installed store.
    child_store("LOGS_CHILD").unwrap();
    let subscriber =
        tracing_subscriber::registry().with(flowcore::logging::layer_to(std::io::sink, false));
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let source = Source {
        table: "orders".to_owned(),
        limit: 10,
    };
    let (out, run) = report(source, "Weekly".to_owned()).with_run().await;
    assert_eq!(out, "Weekly: 10 rows");
    println!("FLOW_RUN {}", run.id);
    println!("TASK_RUN {}", run.task_runs[0].id);
}

async fn parameters_and_log_lines_are_recorded(ts: &TestStore) {
    let out = run_ok(&mut child(
        "child_logs",
        [("LOGS_CHILD", "1".as_ref()), ("STORE", ts.target())],
    ));
    let flow_id: Uuid = marker(&out, "FLOW_RUN").parse().unwrap();
    let task_id: Uuid = marker(&out, "TASK_RUN").parse().unwrap();

    let store = ts.reopen();
    assert_eq!(
        store.parameters(flow_id).unwrap(),
        Some(serde_json::json!({
            "source": {"table": "orders", "limit": 10},
            "title": "Weekly",
        }))
    );
    let logs = store.logs(flow_id).unwrap();
    let find = |text: &str| {
        logs.iter()
            .find(|l| l.message == text)
            .unwrap_or_else(|| panic!("no log line {text:?} in {logs:#?}"))
    };
    let fetched = find("fetched 10 rows");
    assert_eq!(fetched.level, "INFO");
    assert_eq!(fetched.run_id, task_id);
    let slow = find("slow source table=orders");
    assert_eq!(slow.level, "WARN");
    assert_eq!(slow.run_id, task_id);
    let building = find("building the report");
    assert_eq!(building.level, "INFO");
    assert_eq!(building.run_id, flow_id);
    assert!(
        logs.windows(2).all(|w| w[0].at <= w[1].at),
        "log lines come in order: {logs:#?}"
    );
    // flowcore's own lines are kept too.
    assert!(
        logs.iter()
            .any(|l| l.run_id == task_id && l.message == "Finished in state Completed()"),
        "{logs:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The cache is shared between processes.

#[task(cache_for = "1d")]
async fn cached_report(region: String, year: u32) -> String {
    let marker = env_path("MARKER").expect("MARKER");
    append_line(&marker, &format!("{region} {year}"));
    format!("{region}-{year}-total")
}

/// Child of `cached_results_are_shared_between_processes`. `CACHE_CHILD` says what it does:
/// `call` (on the real clock), `expire` (a paused clock moved a day and a minute ahead first)
/// or `clear`.
#[test]
#[ignore = "run as a child process by cached_results_are_shared_between_processes"]
fn child_cache() {
    let Some(role) = std::env::var("CACHE_CHILD").ok() else {
        return;
    };
    child_store("CACHE_CHILD").unwrap();
    if role == "clear" {
        let removed = flowcore::cache::clear_task("cached_report").unwrap();
        println!("CLEARED {removed}");
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(role == "expire")
        .build()
        .unwrap();
    rt.block_on(async {
        if role == "expire" {
            tokio::time::advance(Duration::from_secs(86_400 + 60)).await;
        }
        let (out, run) = cached_report("emea".to_owned(), 2025).with_run().await;
        assert_eq!(out, "emea-2025-total");
        println!("CACHE {}", run.cache.as_str());
        println!("STATE {}", run.state().kind);
    });
}

async fn cached_results_are_shared_between_processes(ts: &TestStore) {
    let dir = support::tempdir();
    let marker_file = dir.path().join("bodies-ran.txt");
    let step = |role: &str| {
        let out = run_ok(&mut child(
            "child_cache",
            [
                ("CACHE_CHILD", role.as_ref()),
                ("STORE", ts.target()),
                ("MARKER", marker_file.as_os_str()),
            ],
        ));
        if role == "clear" {
            return marker(&out, "CLEARED");
        }
        format!("{} {}", marker(&out, "CACHE"), marker(&out, "STATE"))
    };

    assert_eq!(step("call"), "miss Completed", "A: a first call runs");
    assert_eq!(lines(&marker_file).len(), 1);

    assert_eq!(step("call"), "hit Cached", "B: another process hits");
    assert_eq!(lines(&marker_file).len(), 1, "B did not run the body");

    assert_eq!(step("clear"), "1", "C: clears the entry A stored");
    assert_eq!(step("call"), "miss Completed", "D: misses after the clear");
    assert_eq!(lines(&marker_file).len(), 2);

    assert_eq!(step("expire"), "miss Completed", "E: a day later, expired");
    assert_eq!(lines(&marker_file).len(), 3);

    // E stored a fresh entry, a day ahead of the wall clock: it is still live for the next.
    assert_eq!(step("call"), "hit Cached", "F: hits E's entry");
    assert_eq!(lines(&marker_file).len(), 3);

    let entries = ts.reopen().cache_entries().unwrap();
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(entries[0].task, "cached_report");
    assert_eq!(
        entries[0].expires_at.duration_since(entries[0].created_at),
        Duration::from_secs(86_400)
    );
}

// ---------------------------------------------------------------------------------------------
// Several processes writing at once.

const WRITERS: u32 = 3;
const WRITER_FLOWS: u32 = 20;
const WRITER_TASKS: u32 = 200;

#[task]
async fn writer_step(writer: u32, flow: u32, i: u32) -> u32 {
    writer + flow + i
}

#[flow]
async fn writer_flow(writer: u32, flow: u32) -> u32 {
    let mut sum = 0;
    for i in 0..WRITER_TASKS {
        sum += writer_step(writer, flow, i).await;
    }
    sum
}

/// Child of `several_processes_write_to_one_store_at_once`: opens the store, says `READY`,
/// waits for the `GO` file, then runs its flows.
#[tokio::test]
#[ignore = "run as a child process by several_processes_write_to_one_store_at_once"]
async fn child_writer() {
    let Some(writer) = std::env::var("WRITER_CHILD").ok() else {
        return;
    };
    let writer: u32 = writer.parse().unwrap();
    child_store("WRITER_CHILD").unwrap();
    println!("READY");
    let go = env_path("GO").unwrap();
    wait_until("the GO file", None, || go.exists().then_some(()));
    for flow in 0..WRITER_FLOWS {
        let (_, run) = writer_flow(writer, flow).with_run().await;
        assert_eq!(run.state().kind, Completed);
        assert_eq!(run.task_runs.len(), WRITER_TASKS as usize);
    }
    println!("DONE");
}

/// Child of `several_processes_write_to_one_store_at_once`: while the writers write, opens the
/// store again and again and reads it, as `flowcore runs ls` would, until the `STOP` file.
#[test]
#[ignore = "run as a child process by several_processes_write_to_one_store_at_once"]
fn child_reader() {
    if std::env::var_os("READER_CHILD").is_none() {
        return;
    }
    let target = std::env::var_os("STORE").unwrap();
    let stop = env_path("STOP").unwrap();
    let go = env_path("GO").unwrap();
    wait_until("the GO file", None, || go.exists().then_some(()));
    let (mut opens, mut reads) = (0, 0);
    while !stop.exists() {
        opens += 1;
        let store = Store::open_existing(&target).unwrap();
        for summary in store.flow_runs(&Default::default()).unwrap() {
            let run = store.flow_run(summary.id).unwrap().unwrap();
            assert!(run.task_runs.len() <= WRITER_TASKS as usize);
            reads += 1;
        }
        drop(store);
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("READS {reads} flow runs in {opens} opens");
}

async fn several_processes_write_to_one_store_at_once(ts: &TestStore) {
    let dir = support::tempdir();
    // A fresh SQLite store is made at once by the writers, which then write together.
    let (_fresh, target) = match ts.kind() {
        Kind::Sqlite => {
            let fresh = support::tempdir();
            let path = fresh.path().join("flowcore.db");
            (Some(fresh), path.into_os_string())
        }
        Kind::Postgres => (None, ts.target().to_owned()),
    };
    let go = dir.path().join("go");
    let mut children: Vec<_> = (1..=WRITERS)
        .map(|writer| {
            support::Running::spawn(&mut child(
                "child_writer",
                [
                    ("WRITER_CHILD", writer.to_string().as_ref()),
                    ("STORE", target.as_os_str()),
                    ("GO", go.as_os_str()),
                ],
            ))
        })
        .collect();
    for c in &mut children {
        c.wait_for_line("READY");
    }
    let stop = dir.path().join("stop");
    let reader = support::Running::spawn(&mut child(
        "child_reader",
        [
            ("READER_CHILD", "1".as_ref()),
            ("STORE", target.as_os_str()),
            ("GO", go.as_os_str()),
            ("STOP", stop.as_os_str()),
        ],
    ));
    std::fs::write(&go, "go").unwrap();
    for c in children {
        let out = c.finish();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("DONE"),
            "{}",
            support::show(&out)
        );
        for bad in [
            "locked",
            "busy",
            "serialize",
            "deadlock",
            "flowcore",
            "rror",
        ] {
            assert!(
                !stderr.contains(bad),
                "a writer printed {bad:?}:\n{}",
                support::show(&out)
            );
        }
    }

    std::fs::write(&stop, "stop").unwrap();
    let out = reader.finish();
    assert!(
        out.stderr.is_empty(),
        "the reader printed on stderr:\n{}",
        support::show(&out)
    );
    println!("the reader read {} flow runs", marker(&out, "READS"));

    let made_by_writers;
    let ts = match ts.kind() {
        Kind::Sqlite => {
            made_by_writers = TestStore::at_path(target.as_ref());
            &made_by_writers
        }
        Kind::Postgres => ts,
    };
    let flows = i64::from(WRITERS * WRITER_FLOWS);
    let tasks = flows * i64::from(WRITER_TASKS);
    assert_eq!(ts.count("SELECT COUNT(*) FROM flow_runs", &[]), flows);
    assert_eq!(
        ts.count(
            "SELECT COUNT(*) FROM flow_runs WHERE state = 'Completed' AND ended_at IS NOT NULL",
            &[]
        ),
        flows
    );
    assert_eq!(
        ts.count("SELECT COUNT(DISTINCT process_id) FROM flow_runs", &[]),
        i64::from(WRITERS)
    );
    assert_eq!(ts.count("SELECT COUNT(*) FROM task_runs", &[]), tasks);
    assert_eq!(
        ts.count(
            "SELECT COUNT(*) FROM task_runs WHERE state = 'Completed' AND attempts = 1
                AND flow_run_id IN (SELECT id FROM flow_runs)",
            &[]
        ),
        tasks
    );
    // Every run has exactly its three states, Pending, Running, Completed, in order.
    assert_eq!(
        ts.count("SELECT COUNT(*) FROM states", &[]),
        3 * (flows + tasks)
    );
    assert_eq!(
        ts.count(
            "SELECT COUNT(*) FROM states s JOIN (
                 SELECT id FROM flow_runs UNION ALL SELECT id FROM task_runs
             ) r ON s.run_id = r.id
             WHERE (s.seq, s.kind) IN (VALUES (0, 'Pending'), (1, 'Running'), (2, 'Completed'))",
            &[]
        ),
        3 * (flows + tasks)
    );
}

/// Child of `processes_creating_one_store_at_once_all_open_it`: waits for the `GO` file, then
/// opens the store and runs a small flow.
#[tokio::test]
#[ignore = "run as a child process by processes_creating_one_store_at_once_all_open_it"]
async fn child_creator() {
    if std::env::var_os("CREATOR_CHILD").is_none() {
        return;
    }
    let go = env_path("GO").unwrap();
    println!("READY");
    wait_until("the GO file", None, || go.exists().then_some(()));
    child_store("CREATOR_CHILD").unwrap();
    let (out, run) = quick_flow(3).with_run().await;
    assert_eq!(out, 9);
    println!("FLOW_RUN {}", run.id);
}

/// Processes that find no store (no file, or an empty database) make it together: the schema
/// is made once, and each of them opens it and writes.
async fn processes_creating_one_store_at_once_all_open_it(ts: &TestStore) {
    const PROCESSES: usize = 4;
    for round in 0..4 {
        let dir = support::tempdir();
        let (db, target) = match ts.kind() {
            Kind::Sqlite => (None, dir.path().join("flowcore.db").into_os_string()),
            Kind::Postgres => {
                let db = support::postgres_db(&format!("creating_{round}")).unwrap();
                let url = db.url().into();
                (Some(db), url)
            }
        };
        let go = dir.path().join("go");
        let mut children: Vec<_> = (0..PROCESSES)
            .map(|_| {
                support::Running::spawn(&mut child(
                    "child_creator",
                    [
                        ("CREATOR_CHILD", "1".as_ref()),
                        ("STORE", target.as_os_str()),
                        ("GO", go.as_os_str()),
                    ],
                ))
            })
            .collect();
        for c in &mut children {
            c.wait_for_line("READY");
        }
        std::fs::write(&go, "go").unwrap();
        let ids: Vec<Uuid> = children
            .into_iter()
            .map(|c| marker(&c.finish(), "FLOW_RUN").parse().unwrap())
            .collect();
        let store = Store::open_existing(&target).unwrap();
        for id in ids {
            let run = store.flow_run(id).unwrap().unwrap();
            assert_eq!(run.history.kinds(), [Pending, Running, Completed]);
        }
        drop(store);
        match db {
            None => {
                let version = support::count(target.as_ref(), "PRAGMA user_version", []);
                assert_eq!(version, 13);
            }
            Some(db) => {
                let ts = TestStore::on_database(db);
                let rows = ts.count("SELECT COUNT(*) FROM flowcore_schema", &[]);
                assert_eq!(rows, 1, "one version row: the schema was made once");
                let version = ts.count("SELECT MAX(version) FROM flowcore_schema", &[]);
                assert_eq!(version, 9);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// No record dropped under load.

const BULK: u32 = 50_000;

#[task]
async fn bulk_step(i: u32) -> u32 {
    i
}

#[flow]
async fn bulk_flow() -> u64 {
    let mut sum = 0;
    for i in 0..BULK {
        sum += u64::from(bulk_step(i).await);
    }
    sum
}

async fn fifty_thousand_task_runs_all_reach_the_store(ts: &TestStore) {
    let (out, run) = ts.store().scope(bulk_flow().with_run()).await;
    assert_eq!(out, u64::from(BULK) * u64::from(BULK - 1) / 2);
    assert_eq!(run.task_runs.len(), BULK as usize);
    let id = run.id;
    let bulk = i64::from(BULK);
    assert_eq!(
        ts.count(
            "SELECT COUNT(*) FROM task_runs WHERE flow_run_id = $1",
            &[id.as_bytes()]
        ),
        bulk
    );
    assert_eq!(
        ts.count(
            "SELECT COUNT(*) FROM task_runs WHERE flow_run_id = $1 AND state = 'Completed'",
            &[id.as_bytes()]
        ),
        bulk
    );
    assert_eq!(
        ts.count(
            "SELECT COUNT(*) FROM states WHERE run_id IN
                 (SELECT id FROM task_runs WHERE flow_run_id = $1)",
            &[id.as_bytes()]
        ),
        3 * bulk
    );
    assert_eq!(state_rows(ts, id), 3);
    let summary = &ts.reopen().flow_runs(&Default::default()).unwrap()[0];
    assert_eq!(summary.state, StateKind::Completed);
    assert_eq!(summary.task_runs[&Completed], BULK as usize);
}

// ---------------------------------------------------------------------------------------------
// The task graph reaches the store: each task run's upstream edges and map position.

#[task]
async fn graph_source() -> Vec<String> {
    (0..4).map(|i| format!("item {i}")).collect()
}

#[task]
async fn graph_item(item: String) -> String {
    item.to_uppercase()
}

#[task]
async fn graph_setup() -> Result<(), String> {
    Ok(())
}

#[task]
async fn graph_sink(items: Vec<String>) -> Result<usize, String> {
    Ok(items.len())
}

#[flow]
async fn graph_flow() -> Result<usize, String> {
    let setup = graph_setup().submit();
    let items = graph_source().await;
    let upper = flowcore::map(items, graph_item).limit(2).await;
    graph_sink(upper).wait_for(&setup).await
}

async fn edges_and_map_positions_are_stored_with_each_task_run(ts: &TestStore) {
    let (out, run) = ts.store().scope(graph_flow().with_run()).await;
    assert_eq!(out, Ok(4));
    let sink = run.task_runs_of("graph_sink").next().unwrap();
    assert_eq!(
        sink.upstream.len(),
        5,
        "four mapped runs and the setup it waited for"
    );
    assert_eq!(
        run.task_runs
            .iter()
            .filter(|t| t.map_index.is_some())
            .count(),
        4
    );

    let stored = ts.reopen().flow_run(run.id).unwrap().unwrap();
    assert_eq!(by_id(stored), by_id(run));
}
