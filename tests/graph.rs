//! The task graph: data edges found from the values passed between tasks, `wait_for` edges,
//! Skipped propagation and `allow_failure`, `submit` handles, `map` (order, per-element retries,
//! limit), concurrency limits by tag, and a 100,000-task fan-out and fan-in.

mod support;

use std::collections::HashMap;
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flowcore::StateKind::{self, *};
use flowcore::{
    EdgeKind, FlowRunRecord, TaskRunRecord, Upstream, UpstreamFailed, allow_failure, flow, task,
};
use serde::{Deserialize, Serialize};

fn memory_store() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| flowcore::Store::memory().install().unwrap());
}

/// The only run of `task` in `run`.
fn only<'a>(run: &'a FlowRunRecord, task: &'a str) -> &'a TaskRunRecord {
    let mut runs = run.task_runs_of(task);
    let found = runs.next().unwrap_or_else(|| panic!("no run of {task}"));
    assert!(runs.next().is_none(), "more than one run of {task}");
    found
}

/// `run`'s upstream edges as (task name, kind, allow_failure), sorted.
fn edges_into(flow: &FlowRunRecord, run: &TaskRunRecord) -> Vec<(String, EdgeKind, bool)> {
    let by_id: HashMap<_, _> = flow.task_runs.iter().map(|r| (r.id, r)).collect();
    let mut edges: Vec<_> = run
        .upstream
        .iter()
        .map(|u| {
            let task = by_id
                .get(&u.id)
                .map_or_else(|| format!("? {}", u.id), |r| r.task.to_string());
            (task, u.kind, u.allow_failure)
        })
        .collect();
    edges.sort();
    edges
}

fn data(task: &str) -> (String, EdgeKind, bool) {
    (task.to_owned(), EdgeKind::Data, false)
}

fn waits(task: &str) -> (String, EdgeKind, bool) {
    (task.to_owned(), EdgeKind::WaitFor, false)
}

// ---------------------------------------------------------------------------------------------
// Data edges and wait_for, in the shape of the ETL example.

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Complaint {
    id: u32,
    product: String,
}

#[task(retries = 1)]
async fn extract(source: &str) -> Result<Vec<Complaint>, String> {
    Ok((0..3)
        .map(|i| Complaint {
            id: 1000 + i,
            product: format!("{source} product {i}"),
        })
        .collect())
}

#[task]
async fn transform(complaints: Vec<Complaint>) -> Vec<String> {
    complaints.into_iter().map(|c| c.product).collect()
}

static TABLE_FAILS: AtomicUsize = AtomicUsize::new(0);

#[task]
async fn create_table(name: String) -> Result<(), String> {
    tokio::time::sleep(Duration::from_millis(5)).await;
    if TABLE_FAILS.load(Ordering::SeqCst) > 0 {
        return Err(format!("cannot create {name}: disk full"));
    }
    Ok(())
}

#[task]
async fn load(rows: Vec<String>, table: &str) -> Result<usize, String> {
    assert!(!table.is_empty());
    Ok(rows.len())
}

#[task]
async fn count_rows(rows: &[String]) -> usize {
    rows.len()
}

#[flow]
async fn etl(source: String) -> Result<usize, String> {
    let table = create_table("complaints".into()).submit();
    let complaints = extract(&source).await?;
    let rows = transform(complaints).await;
    // `rows` goes to two tasks: both depend on `transform`.
    count_rows(&rows).await;
    load(rows, "complaints").wait_for(&table).await
}

#[tokio::test]
async fn data_edges_follow_the_values_and_wait_for_adds_its_own() {
    memory_store();
    let (out, run) = etl("cfpb".into()).with_run().await;
    assert_eq!(out, Ok(3));
    assert_eq!(edges_into(&run, only(&run, "extract")), []);
    assert_eq!(edges_into(&run, only(&run, "create_table")), []);
    assert_eq!(edges_into(&run, only(&run, "transform")), [data("extract")]);
    assert_eq!(
        edges_into(&run, only(&run, "count_rows")),
        [data("transform")]
    );
    assert_eq!(
        edges_into(&run, only(&run, "load")),
        [waits("create_table"), data("transform")]
    );

    // The memory store keeps the same edges.
    let mut stored = flowcore::Store::current()
        .flow_run(run.id)
        .unwrap()
        .unwrap();
    let mut run = run;
    stored.task_runs.sort_by_key(|t| t.id);
    run.task_runs.sort_by_key(|t| t.id);
    assert_eq!(stored.task_runs, run.task_runs);
}

#[flow]
async fn etl_table_fails() -> Result<usize, String> {
    let table = create_table("complaints".into()).submit();
    let rows = transform(extract("cfpb").await?).await;
    let loaded = load(rows.clone(), "complaints").wait_for(&table).await;
    // A run that waits for a skipped one is skipped too, naming the run it waited for.
    let (_, load_run) = load(rows.clone(), "again")
        .wait_for(&table)
        .with_run()
        .await;
    let after_skipped = count_rows_checked(rows).wait_for(&load_run).await;
    assert!(
        after_skipped
            .unwrap_err()
            .starts_with("upstream failed: load-")
    );
    loaded
}

#[task]
async fn count_rows_checked(rows: Vec<String>) -> Result<usize, String> {
    Ok(rows.len())
}

#[tokio::test]
async fn a_failed_upstream_skips_what_waits_for_it_and_the_skip_propagates() {
    memory_store();
    TABLE_FAILS.fetch_add(1, Ordering::SeqCst);
    let (out, run) = etl_table_fails().with_run().await;
    TABLE_FAILS.fetch_sub(1, Ordering::SeqCst);

    let table = only(&run, "create_table");
    assert_eq!(table.state().kind, Failed);
    let expected = format!("upstream failed: {}", table.name());
    assert_eq!(out, Err(expected.clone()));

    let loads: Vec<_> = run.task_runs_of("load").collect();
    assert_eq!(loads.len(), 2);
    for load in &loads {
        assert_eq!(load.history.kinds(), [Pending, Skipped]);
        assert_eq!(load.state().message(), expected);
        assert_eq!(load.attempts, 0, "a skipped run never ran");
    }
    let checked = only(&run, "count_rows_checked");
    assert_eq!(checked.history.kinds(), [Pending, Skipped]);
    assert!(
        loads
            .iter()
            .any(|l| checked.state().message() == format!("upstream failed: {}", l.name()))
    );
    assert_eq!(
        edges_into(&run, checked),
        [waits("load"), data("transform")]
    );
}

#[task]
async fn report(rows: usize) -> Result<String, UpstreamFailed> {
    Ok(format!("{rows} rows"))
}

#[flow]
async fn with_allowed_failure() -> Result<String, UpstreamFailed> {
    let table = create_table("t".into()).submit();
    report(5000).wait_for(allow_failure(&table)).await
}

#[tokio::test]
async fn allow_failure_runs_the_downstream_anyway_and_marks_the_edge() {
    memory_store();
    TABLE_FAILS.fetch_add(1, Ordering::SeqCst);
    let (out, run) = with_allowed_failure().with_run().await;
    TABLE_FAILS.fetch_sub(1, Ordering::SeqCst);
    assert_eq!(out, Ok("5000 rows".to_owned()));
    assert_eq!(only(&run, "create_table").state().kind, Failed);
    let report = only(&run, "report");
    assert_eq!(report.history.kinds(), [Pending, Running, Completed]);
    assert_eq!(
        edges_into(&run, report),
        [("create_table".to_owned(), EdgeKind::WaitFor, true)]
    );
}

#[task]
async fn slow_square(x: u64) -> u64 {
    tokio::time::sleep(Duration::from_secs(x)).await;
    x * x
}

#[flow]
async fn submits_and_forgets() -> u64 {
    let kept = slow_square(2).submit();
    assert_eq!(kept.state(), None, "still going");
    let id = kept.id();
    // The handle is dropped: the run goes on, and the flow run waits for it.
    drop(slow_square(30).submit());
    let out = kept.await;
    assert_eq!(id.get_version_num(), 7);
    out
}

#[tokio::test(start_paused = true)]
async fn a_flow_run_waits_for_the_task_runs_submitted_in_it() {
    memory_store();
    let started = tokio::time::Instant::now();
    let (out, run) = submits_and_forgets().with_run().await;
    assert_eq!(out, 4);
    assert_eq!(started.elapsed(), Duration::from_secs(30));
    assert_eq!(run.task_runs.len(), 2);
    assert!(run.task_runs.iter().all(|r| r.state().kind == Completed));
    let last = run
        .task_runs
        .iter()
        .map(|r| r.history.ended_at().unwrap())
        .max();
    assert!(
        run.history.ended_at() >= last,
        "the flow run ends after its task runs"
    );
}

#[task]
async fn checked_square(x: u64) -> u64 {
    x * x
}

#[flow]
async fn handle_states() -> (u64, String) {
    let handle = checked_square(12).submit();
    let name = handle.name();
    let out = (&handle).await_output().await;
    (out, name)
}

trait AwaitOutput {
    async fn await_output(self) -> u64;
}

impl AwaitOutput for &flowcore::TaskHandle<u64> {
    async fn await_output(self) -> u64 {
        while self.state().is_none() {
            tokio::task::yield_now().await;
        }
        assert_eq!(self.state(), Some(Completed));
        144
    }
}

#[tokio::test]
async fn a_handle_knows_its_run_before_and_after_it_ends() {
    memory_store();
    let ((out, name), run) = handle_states().with_run().await;
    assert_eq!(out, 144);
    assert_eq!(name, only(&run, "checked_square").name().to_string());
}

// ---------------------------------------------------------------------------------------------
// map

static FLAKY_CALLS: AtomicUsize = AtomicUsize::new(0);
static RUNNING: AtomicUsize = AtomicUsize::new(0);
static MOST_RUNNING: AtomicUsize = AtomicUsize::new(0);

struct Busy;

impl Busy {
    fn start() -> Busy {
        let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
        MOST_RUNNING.fetch_max(now, Ordering::SeqCst);
        Busy
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Elements divisible by 3 fail their first attempt; element 7 always fails. Later elements
/// finish sooner, so the order of finishing is not the order of the inputs.
#[task(retries = 2, retry_delay = "10s")]
async fn flaky_double(x: u64) -> Result<u64, String> {
    let _running = Busy::start();
    let n = FLAKY_CALLS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100 - x)).await;
    if x == 7 {
        return Err("seven is never right".into());
    }
    static FAILED_ONCE: std::sync::Mutex<Vec<u64>> = std::sync::Mutex::new(Vec::new());
    let mut failed = FAILED_ONCE.lock().unwrap();
    if x.is_multiple_of(3) && !failed.contains(&x) {
        failed.push(x);
        return Err(format!("{x}: try again ({n})"));
    }
    Ok(x * 2)
}

#[flow]
async fn mapped(limit: usize) -> Vec<Result<u64, String>> {
    flowcore::map(1..=12, flaky_double).limit(limit).await
}

#[tokio::test(start_paused = true)]
async fn map_returns_outputs_in_input_order_with_retries_per_element_and_a_limit() {
    memory_store();
    let (out, run) = mapped(4).with_run().await;
    let expected: Vec<Result<u64, String>> = (1..=12)
        .map(|x| {
            if x == 7 {
                Err("seven is never right".to_owned())
            } else {
                Ok(x * 2)
            }
        })
        .collect();
    assert_eq!(out, expected);
    assert_eq!(
        MOST_RUNNING.load(Ordering::SeqCst),
        4,
        "at most 4 at once, and 4 reached"
    );

    let runs: Vec<_> = run.task_runs_of("flaky_double").collect();
    assert_eq!(runs.len(), 12, "one task run per element");
    let mut indexes: Vec<u32> = runs.iter().map(|r| r.map_index.unwrap()).collect();
    indexes.sort();
    assert_eq!(indexes, (0..12).collect::<Vec<u32>>());
    for r in &runs {
        let x = u64::from(r.map_index.unwrap()) + 1;
        let (attempts, state) = match x {
            7 => (3, Failed),
            x if x.is_multiple_of(3) => (2, Completed),
            _ => (1, Completed),
        };
        assert_eq!((x, r.attempts, r.state().kind), (x, attempts, state));
    }
    assert_eq!(FLAKY_CALLS.load(Ordering::SeqCst), 12 + 4 + 2);

    let summary = run.summary().to_string();
    assert!(
        summary.contains("flaky_double ×12  11 Completed, 1 Failed        18  "),
        "{summary}"
    );
}

// ---------------------------------------------------------------------------------------------
// Concurrency limits by tag.

static DB_RUNNING: AtomicUsize = AtomicUsize::new(0);
static DB_MOST: AtomicUsize = AtomicUsize::new(0);
static DB_DONE: AtomicUsize = AtomicUsize::new(0);

#[task(tags = ["db", "io"])]
async fn db_write(i: u32) -> u32 {
    let now = DB_RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
    DB_MOST.fetch_max(now, Ordering::SeqCst);
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_micros(200)).await;
    DB_RUNNING.fetch_sub(1, Ordering::SeqCst);
    DB_DONE.fetch_add(1, Ordering::SeqCst);
    i
}

#[flow]
async fn thousand_writes() -> u64 {
    let handles: Vec<_> = (0..1000).map(|i| db_write(i).submit()).collect();
    let mut total = 0u64;
    for h in handles {
        total += u64::from(h.await);
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tag_limit_holds_under_a_thousand_concurrent_submissions() {
    memory_store();
    flowcore::limits::set("db", 2).unwrap();
    let (total, run) = thousand_writes().with_run().await;
    flowcore::limits::remove("db");
    assert_eq!(total, (0..1000).sum::<u64>());
    assert_eq!(DB_DONE.load(Ordering::SeqCst), 1000);
    assert_eq!(
        DB_MOST.load(Ordering::SeqCst),
        2,
        "never more than 2, and 2 reached"
    );
    assert_eq!(run.task_runs.len(), 1000);
    assert!(run.task_runs.iter().all(|r| r.state().kind == Completed));
}

static ENV_RUNNING: AtomicUsize = AtomicUsize::new(0);
static ENV_MOST: AtomicUsize = AtomicUsize::new(0);

#[task(tags = ["reports"])]
async fn env_limited(i: u32) -> u32 {
    let now = ENV_RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
    ENV_MOST.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1)).await;
    ENV_RUNNING.fetch_sub(1, Ordering::SeqCst);
    i
}

#[flow]
async fn env_limited_flow() -> usize {
    flowcore::map(0..200, env_limited).await.len()
}

/// Child of `a_tag_limit_can_come_from_the_environment`: runs with `FLOWCORE_LIMIT_reports=3`
/// and a bad `FLOWCORE_LIMIT_broken`.
#[test]
#[ignore = "run as a child process by a_tag_limit_can_come_from_the_environment"]
fn child_env_limit() {
    if std::env::var_os("ENV_LIMIT_CHILD").is_none() {
        return;
    }
    flowcore::init_logging();
    memory_store();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(env_limited_flow()), 200);
    println!("LIMIT {:?}", flowcore::limits::get("reports"));
    println!("BROKEN {:?}", flowcore::limits::get("broken"));
    println!("MOST {}", ENV_MOST.load(Ordering::SeqCst));
}

#[test]
fn a_tag_limit_can_come_from_the_environment() {
    let out = support::run_ok(&mut support::child(
        "child_env_limit",
        [
            ("ENV_LIMIT_CHILD", "1"),
            ("FLOWCORE_LIMIT_reports", "3"),
            ("FLOWCORE_LIMIT_broken", "lots"),
        ],
    ));
    assert_eq!(support::marker(&out, "LIMIT"), "Some(3)");
    assert_eq!(support::marker(&out, "MOST"), "3");
    assert_eq!(support::marker(&out, "BROKEN"), "None");
    let printed = support::show(&out);
    assert!(
        printed.contains(
            "FLOWCORE_LIMIT_broken=\"lots\" is not a limit: expected a whole number of at least 1; no limit set for tag 'broken'"
        ),
        "{printed}"
    );
}

#[test]
fn a_limit_of_zero_is_refused_with_the_fix() {
    let err = flowcore::limits::set("nothing", 0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the limit for tag 'nothing' must be at least 1; to lift a limit, remove it"
    );
}

// ---------------------------------------------------------------------------------------------
// Scale: fan-out then fan-in over 100,000 task runs.

const FAN: u64 = 100_000;

#[task]
async fn source() -> Vec<u64> {
    (0..FAN).map(|i| 1_000 + i).collect()
}

#[task]
async fn work(item: u64) -> String {
    format!("done {item}")
}

#[task]
async fn gather(parts: Vec<String>) -> usize {
    parts.len()
}

#[flow]
async fn fan_out_fan_in() -> usize {
    let items = source().await;
    let parts = flowcore::map(items, work).await;
    gather(parts).await
}

#[tokio::test]
async fn a_hundred_thousand_task_fan_out_and_fan_in_has_every_edge() {
    memory_store();
    let (out, run) = fan_out_fan_in().with_run().await;
    assert_eq!(out, FAN as usize);
    assert_eq!(run.task_runs.len(), FAN as usize + 2);
    let source = only(&run, "source").id;
    let works: Vec<_> = run.task_runs_of("work").collect();
    assert_eq!(works.len(), FAN as usize);
    for w in &works {
        assert_eq!(
            w.upstream,
            [Upstream {
                id: source,
                kind: EdgeKind::Data,
                allow_failure: false
            }]
        );
    }
    let gather = only(&run, "gather");
    assert_eq!(gather.upstream.len(), FAN as usize);
    let mut from: Vec<_> = gather.upstream.iter().map(|u| u.id).collect();
    let mut expected: Vec<_> = works.iter().map(|w| w.id).collect();
    from.sort();
    expected.sort();
    assert_eq!(from, expected);
    assert!(
        run.task_runs
            .iter()
            .all(|r| r.state().kind == StateKind::Completed)
    );
}
