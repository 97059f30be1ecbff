//! Deleting flow runs (`Store::delete_runs`, `Store::prune`, `flowcore runs delete | prune`):
//! a flow run goes with its subflow runs, their task runs, every state, log line and artifact of
//! each, and a delayed run's arguments, in one transaction; every other row of every table stays, and
//! no row is left pointing at a run that is gone. A run going in a live process is refused; one
//! whose process died is not. On SQLite and PostgreSQL, counting the rows of every table; on
//! the memory store through its reads.

#[macro_use]
mod support;

use std::collections::BTreeMap;

use flowcore::store::{Deleted, Prune, RunFilter};
use flowcore::{FlowRunRecord, StateKind, Store, StoreError, Timestamp, Uuid, flow, task};
use support::backends::TestStore;

store_tests!(
    a_deleted_flow_run_takes_its_subflow_runs_and_everything_under_them_and_nothing_else,
    a_run_going_in_a_live_process_is_refused_and_one_of_a_dead_process_is_deleted,
    prune_deletes_the_runs_created_before_a_time_that_ended_in_the_states_asked_for,
    a_retention_deletes_the_runs_older_than_it_in_passes_and_keeps_the_rest,
);

#[task]
async fn step(i: u32) -> u32 {
    tracing::info!("step {i}");
    flowcore::artifact::markdown("step", &format!("step {i}")).unwrap();
    i + 1
}

#[task(retries = 1, retry_delay = "1ms")]
async fn flaky() -> Result<u32, String> {
    Err("down".to_owned())
}

#[flow(name = "child-flow")]
async fn child_flow(n: u32) -> u32 {
    tracing::info!("child {n}");
    step(n).await + step(n + 1).await
}

#[flow(name = "parent-flow")]
async fn parent_flow() -> u32 {
    let a = step(1).await;
    let b = child_flow(10).await;
    let c = child_flow(20).await;
    a + b + c + flaky().await.unwrap_or(0)
}

#[flow(name = "kept-flow")]
async fn kept_flow() -> u32 {
    step(100).await
}

#[flow(name = "failing-flow")]
async fn failing_flow() -> Result<u32, String> {
    step(7).await;
    Err("no data".to_owned())
}

/// Every table of the store, and how many rows it has.
const TABLES: [&str; 15] = [
    "flow_runs",
    "task_runs",
    "states",
    "logs",
    "cache",
    "processes",
    "deployments",
    "deployment_workers",
    "schedule_ticks",
    "limits",
    "limit_slots",
    "task_workers",
    "task_requests",
    "artifacts",
    "run_inputs",
];

fn rows(ts: &TestStore) -> BTreeMap<&'static str, i64> {
    TABLES
        .iter()
        .map(|t| (*t, ts.count(&format!("SELECT COUNT(*) FROM {t}"), &[])))
        .collect()
}

/// Rows left pointing at a run that is not there, by what they are.
fn orphans(ts: &TestStore) -> BTreeMap<&'static str, i64> {
    [
        (
            "subflow runs",
            "SELECT COUNT(*) FROM flow_runs c WHERE c.parent_id IS NOT NULL
                 AND NOT EXISTS (SELECT 1 FROM flow_runs p WHERE p.id = c.parent_id)",
        ),
        (
            "task runs",
            "SELECT COUNT(*) FROM task_runs t WHERE t.flow_run_id IS NOT NULL
                 AND NOT EXISTS (SELECT 1 FROM flow_runs f WHERE f.id = t.flow_run_id)",
        ),
        (
            "states",
            "SELECT COUNT(*) FROM states s
             WHERE NOT EXISTS (SELECT 1 FROM flow_runs f WHERE f.id = s.run_id)
                 AND NOT EXISTS (SELECT 1 FROM task_runs t WHERE t.id = s.run_id)",
        ),
        (
            "logs",
            "SELECT COUNT(*) FROM logs l
             WHERE NOT EXISTS (SELECT 1 FROM flow_runs f WHERE f.id = l.run_id)
                 AND NOT EXISTS (SELECT 1 FROM task_runs t WHERE t.id = l.run_id)",
        ),
        (
            "task requests",
            "SELECT COUNT(*) FROM task_requests r
             WHERE NOT EXISTS (SELECT 1 FROM task_runs t WHERE t.id = r.run_id)",
        ),
        (
            "artifacts",
            "SELECT COUNT(*) FROM artifacts a
             WHERE NOT EXISTS (SELECT 1 FROM flow_runs f WHERE f.id = a.flow_run_id)",
        ),
    ]
    .into_iter()
    .map(|(what, sql)| (what, ts.count(sql, &[])))
    .collect()
}

fn no_orphans() -> BTreeMap<&'static str, i64> {
    [
        "artifacts",
        "logs",
        "states",
        "subflow runs",
        "task requests",
        "task runs",
    ]
    .into_iter()
    .map(|what| (what, 0))
    .collect()
}

/// The flow runs of a record's tree: itself and its subflow runs, all the way down.
fn tree(run: &FlowRunRecord) -> Vec<&FlowRunRecord> {
    let mut all = vec![run];
    for sub in &run.subflow_runs {
        all.extend(tree(sub));
    }
    all
}

/// What deleting `run` must remove: its flow runs, task runs, states and log lines.
fn expected_loss(store: &Store, run: &FlowRunRecord) -> BTreeMap<&'static str, i64> {
    let flows = tree(run);
    let tasks: Vec<_> = flows.iter().flat_map(|f| &f.task_runs).collect();
    let states = flows.iter().map(|f| f.history.len()).sum::<usize>()
        + tasks.iter().map(|t| t.history.len()).sum::<usize>();
    // A flow run's log lines, and those of its task runs.
    let logs: usize = flows.iter().map(|f| store.logs(f.id).unwrap().len()).sum();
    let artifacts: usize = flows
        .iter()
        .map(|f| store.artifacts_of(f.id).unwrap().len())
        .sum();
    BTreeMap::from([
        ("flow_runs", flows.len() as i64),
        ("task_runs", tasks.len() as i64),
        ("states", states as i64),
        ("logs", logs as i64),
        ("artifacts", artifacts as i64),
    ])
}

/// `before` less `loss`, table by table.
fn less(
    before: &BTreeMap<&'static str, i64>,
    loss: &BTreeMap<&'static str, i64>,
) -> BTreeMap<&'static str, i64> {
    before
        .iter()
        .map(|(t, n)| (*t, n - loss.get(t).copied().unwrap_or(0)))
        .collect()
}

/// Keeps log lines in the store: the test process's subscriber, with flowcore's recorder.
fn record_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use tracing_subscriber::layer::SubscriberExt as _;
        let subscriber =
            tracing_subscriber::registry().with(flowcore::logging::layer_to(std::io::sink, false));
        tracing::subscriber::set_global_default(subscriber).unwrap();
    });
}

async fn a_deleted_flow_run_takes_its_subflow_runs_and_everything_under_them_and_nothing_else(
    ts: &TestStore,
) {
    record_logs();
    let store = ts.store();
    let (_, doomed) = store.scope(parent_flow().with_run()).await;
    let (_, kept) = store.scope(kept_flow().with_run()).await;
    store.flush().await.unwrap();
    let doomed = store.flow_run(doomed.id).unwrap().unwrap();
    let kept_before = store.flow_run(kept.id).unwrap().unwrap();
    let kept_logs = store.logs(kept.id).unwrap();
    let loss = expected_loss(store, &doomed);
    assert_eq!(loss["flow_runs"], 3, "the run and its two subflow runs");
    assert_eq!(loss["task_runs"], 6);
    assert!(loss["logs"] >= 7, "{loss:?}");
    let before = rows(ts);
    assert_eq!(orphans(ts), no_orphans());

    let deleted = store.delete_runs(&[doomed.id]).unwrap();
    assert_eq!((deleted.flow_runs, deleted.task_runs), (3, 6));
    assert_eq!(rows(ts), less(&before, &loss), "every other row stays");
    assert_eq!(orphans(ts), no_orphans());
    for run in tree(&doomed) {
        assert_eq!(store.flow_run(run.id).unwrap(), None);
    }
    assert_eq!(store.flow_run(kept.id).unwrap().unwrap(), kept_before);
    assert_eq!(store.logs(kept.id).unwrap(), kept_logs);

    // Unknown: nothing deleted, the id named.
    let unknown = Uuid::from_u128(0x0123_4567_89ab_7def_8123_4567_89ab_cdef);
    let before = rows(ts);
    match store.delete_runs(&[kept.id, unknown]) {
        Err(e @ StoreError::UnknownRun { .. }) => {
            assert!(e.to_string().contains(&unknown.to_string()), "{e}")
        }
        other => panic!("expected an unknown run, got {other:?}"),
    }
    assert_eq!(rows(ts), before, "all or nothing");
}

#[flow(name = "hanging-flow")]
async fn hanging_flow(release: std::sync::Arc<tokio::sync::Notify>) -> u32 {
    let x = step(1).await;
    release.notified().await;
    x
}

/// `hanging_flow` on `store`, on a tokio task of its own, until `release` is notified.
fn spawn_hanging(
    store: &Store,
    release: &std::sync::Arc<tokio::sync::Notify>,
) -> tokio::task::JoinHandle<(u32, FlowRunRecord)> {
    let store = store.clone();
    let call = hanging_flow(release.clone()).with_run();
    tokio::spawn(async move { store.scope(call).await })
}

async fn a_run_going_in_a_live_process_is_refused_and_one_of_a_dead_process_is_deleted(
    ts: &TestStore,
) {
    let store = ts.store();
    let (_, done) = store.scope(kept_flow().with_run()).await;
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let going = spawn_hanging(store, &release);
    // Until its task run has ended and everything it sent is committed: then it only waits.
    let running = loop {
        store.flush().await.unwrap();
        let runs = store.flow_runs(&RunFilter::default()).unwrap();
        let waiting = runs.iter().find(|r| {
            r.flow == "hanging-flow" && r.task_runs.get(&StateKind::Completed) == Some(&1)
        });
        if let Some(run) = waiting {
            store.flush().await.unwrap();
            break run.id;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    let before = rows(ts);
    match store.delete_runs(&[done.id, running]) {
        Err(e @ StoreError::RunGoing { .. }) => {
            let message = e.to_string();
            assert!(
                message.starts_with("cannot delete: flow run '")
                    && message.contains(&format!(
                        "' is Running, in process {}",
                        std::process::id()
                    ))
                    && message.ends_with(
                        ", which is alive; let it end (or stop that process) first. Nothing was deleted"
                    ),
                "{message}"
            );
        }
        other => panic!("expected a run going, got {other:?}"),
    }
    assert_eq!(
        rows(ts),
        before,
        "nothing deleted, the finished run neither"
    );
    // A prune leaves it too, and takes the rest.
    let now = Timestamp::from_micros(Timestamp::wall_now().as_micros() + 1);
    let pruned = store.prune(&Prune::created_before(now)).unwrap();
    assert_eq!(
        (pruned.flow_runs, pruned.task_runs),
        (1, 1),
        "the finished run"
    );
    assert!(store.flow_run(running).unwrap().is_some());
    release.notify_one();
    let (_, ended) = going.await.unwrap();
    assert_eq!(ended.state().kind, StateKind::Completed);
    store.flush().await.unwrap();

    // A run left Running by a process that died long ago (on another host, its heartbeat
    // stopped at the epoch): shown Crashed to readers, and deleted.
    let process = Uuid::from_u128(0x0199_0000_0000_7000_8000_0000_0000_0001);
    let run = Uuid::from_u128(0x0199_0000_0000_7000_8000_0000_0000_0002);
    ts.long_dead_process(process);
    ts.execute(
        "INSERT INTO flow_runs (id, name, flow, state, attempts, created_at, process_id)
         VALUES ($1, 'left-running', 'lost', 'Running', 1, 1, $2)",
        &[run.as_bytes(), process.as_bytes()],
    );
    ts.execute(
        "INSERT INTO state_rows (run_id, seq, kind, at) VALUES ($1, 0, 'Running', 1)",
        &[run.as_bytes()],
    );
    let before = rows(ts);
    let deleted = store.delete_runs(&[run]).unwrap();
    assert_eq!((deleted.flow_runs, deleted.task_runs), (1, 0));
    let loss = BTreeMap::from([("flow_runs", 1), ("states", 1)]);
    assert_eq!(rows(ts), less(&before, &loss));
    assert_eq!(orphans(ts), no_orphans());

    // A run requested by hand that no worker claimed is held by nobody: it may go.
    let requested = requested_run(store).await;
    assert_eq!(
        store.delete_runs(&[requested]).unwrap(),
        store_deleted(1, 0)
    );
}

/// A run of a deployment requested by hand, with no worker serving it: `Scheduled`, claimed by
/// no process.
async fn requested_run(store: &Store) -> Uuid {
    let serving = flowcore::serve([flowcore::Deployment::new("on-demand", kept_flow)])
        .with_shutdown(async {});
    store
        .scope(std::future::IntoFuture::into_future(serving))
        .await
        .unwrap();
    let run = store.request_run("on-demand", &[]).unwrap();
    let summary = store.flow_run_summary(run.id).unwrap().unwrap();
    assert_eq!(summary.state, StateKind::Scheduled);
    run.id
}

async fn prune_deletes_the_runs_created_before_a_time_that_ended_in_the_states_asked_for(
    ts: &TestStore,
) {
    record_logs();
    let store = ts.store();
    let (_, old_done) = store.scope(parent_flow().with_run()).await;
    let (_, old_failed) = store.scope(failing_flow().with_run()).await;
    store.flush().await.unwrap();
    let cut = Timestamp::from_micros(Timestamp::wall_now().as_micros() + 1);
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    let (_, new_failed) = store.scope(failing_flow().with_run()).await;
    store.flush().await.unwrap();
    let old_done = store.flow_run(old_done.id).unwrap().unwrap();
    let old_failed = store.flow_run(old_failed.id).unwrap().unwrap();

    // Failed ones only: the old failed run, not the new one.
    let before = rows(ts);
    let loss = expected_loss(store, &old_failed);
    let deleted = store
        .prune(&Prune::created_before(cut).in_states([StateKind::Failed]))
        .unwrap();
    assert_eq!((deleted.flow_runs, deleted.task_runs), (1, 1));
    assert_eq!(rows(ts), less(&before, &loss));
    assert!(store.flow_run(new_failed.id).unwrap().is_some());
    assert!(store.flow_run(old_done.id).unwrap().is_some());

    // Every final state: the old completed run and its subflow runs, which the cut selects
    // through their parent (subflow runs are never pruned alone).
    let before = rows(ts);
    let loss = expected_loss(store, &old_done);
    let deleted = store.prune(&Prune::created_before(cut)).unwrap();
    assert_eq!(
        deleted,
        store_deleted(3, 6),
        "the parent, its two subflow runs, their task runs"
    );
    assert_eq!(rows(ts), less(&before, &loss));
    assert_eq!(orphans(ts), no_orphans());
    assert_eq!(
        store.prune(&Prune::created_before(cut)).unwrap(),
        store_deleted(0, 0),
        "nothing left before the cut"
    );

    // Only final states may be asked for.
    match store.prune(&Prune::created_before(cut).in_states([StateKind::Running])) {
        Err(StoreError::BadParameter(message)) => assert_eq!(
            message,
            "Running is not a final state: a prune deletes runs that ended \
             (Completed, Cached, Failed, TimedOut, Cancelled, Crashed, Skipped)"
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// `Store::retention`: the writer deletes the runs created before the retention that ended, in
/// passes of at most 100 flow runs, and keeps the newer ones and those still going.
async fn a_retention_deletes_the_runs_older_than_it_in_passes_and_keeps_the_rest(ts: &TestStore) {
    record_logs();
    let store = ts.store();
    for _ in 0..150 {
        store.scope(kept_flow()).await;
    }
    store.flush().await.unwrap();
    // Forty days old: more than a pass of top-level runs.
    ts.execute(
        "UPDATE flow_runs SET created_at = created_at - 3456000000000",
        &[],
    );
    let (_, new) = store.scope(kept_flow().with_run()).await;
    let (_, old_parent) = store.scope(parent_flow().with_run()).await;
    store.flush().await.unwrap();
    ts.execute(
        "UPDATE flow_runs SET created_at = created_at - 3456000000000 WHERE id = $1 OR parent_id = $1",
        &[old_parent.id.as_bytes()],
    );
    assert_eq!(ts.count("SELECT COUNT(*) FROM flow_runs", &[]), 154);

    let _ = store
        .clone()
        .retention(std::time::Duration::from_secs(30 * 86_400));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while ts.count("SELECT COUNT(*) FROM flow_runs", &[]) > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "still {} flow runs a minute after the retention was set",
            ts.count("SELECT COUNT(*) FROM flow_runs", &[])
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let left: Vec<_> = store
        .flow_runs(&RunFilter::default())
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left, [new.id], "the new run alone is left");
    assert_eq!(ts.count("SELECT COUNT(*) FROM task_runs", &[]), 1);
    assert_eq!(orphans(ts), no_orphans());
}

/// A `Deleted` of these counts.
fn store_deleted(flow_runs: usize, task_runs: usize) -> Deleted {
    let mut deleted = Deleted::default();
    deleted.flow_runs = flow_runs;
    deleted.task_runs = task_runs;
    deleted
}

/// The memory store, through its reads: the same deletions, the same refusals.
#[tokio::test]
async fn on_a_memory_store_runs_are_deleted_and_pruned_alike() {
    record_logs();
    let store = Store::memory();
    let (_, doomed) = store.scope(parent_flow().with_run()).await;
    let (_, kept) = store.scope(kept_flow().with_run()).await;
    let child = doomed.subflow_runs[0].id;
    assert!(!store.logs(child).unwrap().is_empty());

    let deleted = store.delete_runs(&[doomed.id]).unwrap();
    assert_eq!(deleted, store_deleted(3, 6));
    assert_eq!(store.flow_run(doomed.id).unwrap(), None);
    assert_eq!(store.flow_run(child).unwrap(), None);
    assert_eq!(store.logs(child).unwrap(), []);
    let all = RunFilter {
        limit: 100,
        ..RunFilter::default()
    };
    let left: Vec<Uuid> = store
        .flow_runs(&all)
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left, [kept.id]);
    assert!(matches!(
        store.delete_runs(&[doomed.id]),
        Err(StoreError::UnknownRun { .. })
    ));

    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let going = spawn_hanging(&store, &release);
    let running = loop {
        let runs = store.flow_runs(&all).unwrap();
        if let Some(run) = runs.iter().find(|r| r.flow == "hanging-flow") {
            break run.id;
        }
        tokio::task::yield_now().await;
    };
    assert!(matches!(
        store.delete_runs(&[running]),
        Err(StoreError::RunGoing { .. })
    ));
    let now = Timestamp::from_micros(Timestamp::wall_now().as_micros() + 1);
    assert_eq!(
        store.prune(&Prune::created_before(now)).unwrap(),
        store_deleted(1, 1),
        "the kept run; the one going stays"
    );
    release.notify_one();
    going.await.unwrap();
    let now = Timestamp::from_micros(Timestamp::wall_now().as_micros() + 1);
    assert_eq!(
        store.prune(&Prune::created_before(now)).unwrap(),
        store_deleted(1, 1)
    );
    assert_eq!(store.flow_runs(&all).unwrap(), []);

    let requested = requested_run(&store).await;
    assert_eq!(
        store.delete_runs(&[requested]).unwrap(),
        store_deleted(1, 0)
    );
}
