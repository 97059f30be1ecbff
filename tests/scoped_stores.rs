//! Stores in scope: each test (or embedded runtime) gives its runs a store of its own with
//! `Store::scope`, over whatever store the process has; `flowcore::testing::isolated` does it
//! with a fresh memory store. Everything a flow run makes records where it does: its task runs,
//! those submitted to other threads, its subflow runs, its log lines.

use std::time::Duration;

use flowcore::StateKind::*;
use flowcore::{Store, flow, task, testing};

#[task]
async fn add_one(x: u32) -> u32 {
    x + 1
}

#[flow(name = "counting")]
async fn counting(n: u32) -> u32 {
    let mut x = 0;
    for _ in 0..n {
        x = add_one(x).await;
    }
    x
}

#[flow(name = "fanning-out")]
async fn fanning_out() -> u32 {
    let handles: Vec<_> = (0..8).map(add_one).map(|call| call.submit()).collect();
    let spawned = flowcore::spawn(async { add_one(100).await });
    let mut total = spawned.await.unwrap();
    for handle in handles {
        total += handle.await;
    }
    total + counting(2).await
}

/// Top-level flow runs in `store`, oldest first: `(flow, state, task runs)`.
fn listed(store: &Store) -> Vec<(String, flowcore::StateKind, usize)> {
    let mut runs = store.flow_runs(&Default::default()).unwrap();
    runs.reverse();
    runs.into_iter()
        .filter(|r| r.parent_id.is_none())
        .map(|r| (r.flow, r.state, r.task_runs.values().sum()))
        .collect()
}

#[tokio::test]
async fn tests_running_at_once_each_see_only_their_own_runs() {
    let (a, b) = tokio::join!(
        testing::isolated(counting(3).with_run()),
        testing::isolated(counting(5).with_run()),
    );
    let ((out_a, run_a), store_a) = a;
    let ((out_b, run_b), store_b) = b;
    assert_eq!((out_a, out_b), (3, 5));
    assert_eq!(testing::only_flow_run(&store_a).id, run_a.id);
    assert_eq!(testing::only_flow_run(&store_b).id, run_b.id);
    assert_eq!(listed(&store_a), [("counting".to_owned(), Completed, 3)]);
    assert_eq!(listed(&store_b), [("counting".to_owned(), Completed, 5)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitted_spawned_and_subflow_runs_record_where_their_flow_run_does() {
    let ((out, run), store) = testing::isolated(fanning_out().with_run()).await;
    assert_eq!(out, (1..=8).sum::<u32>() + 101 + 2);
    let stored = testing::only_flow_run(&store);
    assert_eq!(stored.id, run.id);
    assert_eq!(
        stored.task_runs.len(),
        9,
        "8 submitted and 1 in a spawned block"
    );
    assert!(stored.task_runs.iter().all(|t| t.state().kind == Completed));
    assert_eq!(stored.subflow_runs.len(), 1);
    assert_eq!(stored.subflow_runs[0].task_runs.len(), 2);
    // The process's own store saw none of it.
    let process = Store::current();
    assert!(
        process.flow_run(run.id).unwrap().is_none(),
        "not in {}",
        process.describe()
    );
}

#[tokio::test]
async fn a_call_made_before_the_scope_records_where_it_is_first_polled() {
    let mine = Store::memory();
    let call = counting(1);
    let (out, run) = mine.scope(call.with_run()).await;
    assert_eq!(out, 1);
    assert_eq!(testing::only_flow_run(&mine).id, run.id);
}

#[tokio::test]
async fn the_innermost_scope_wins() {
    let outer = Store::memory();
    let inner = Store::memory();
    outer
        .scope(async {
            counting(1).await;
            inner.scope(counting(2)).await;
            counting(3).await;
        })
        .await;
    assert_eq!(
        listed(&outer),
        [
            ("counting".to_owned(), Completed, 1),
            ("counting".to_owned(), Completed, 3)
        ]
    );
    assert_eq!(listed(&inner), [("counting".to_owned(), Completed, 2)]);
}

#[tokio::test]
async fn a_task_run_outside_any_flow_records_to_the_store_in_scope() {
    let dir = tempfile::tempdir().unwrap();
    let file = Store::sqlite(dir.path().join("flowcore.db")).unwrap();
    let (out, run) = file.scope(add_one(41).with_run()).await;
    assert_eq!(out, 42);
    // A task run outside a flow returns once its final state is committed: it is in the file.
    let conn = rusqlite::Connection::open(dir.path().join("flowcore.db")).unwrap();
    let state: String = conn
        .query_row(
            "SELECT state FROM task_runs WHERE id = ?1",
            [run.id.as_bytes()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(state, "Completed");
}

#[tokio::test(start_paused = true)]
async fn a_scoped_test_runs_on_the_paused_clock() {
    #[task(retries = 2, retry_delay = "15s")]
    async fn always_fails() -> Result<(), String> {
        Err("no".to_owned())
    }
    let started = tokio::time::Instant::now();
    let ((out, run), store) = testing::isolated(always_fails().with_run()).await;
    assert_eq!(out, Err("no".to_owned()));
    assert_eq!(run.attempts, 3);
    assert_eq!(started.elapsed(), Duration::from_secs(30));
    assert!(store.flow_runs(&Default::default()).unwrap().is_empty());
}

#[tokio::test]
async fn a_memory_store_keeps_a_flow_run_s_name_parameters_and_states() {
    let ((out, run), store) = testing::isolated(counting(2).with_run()).await;
    assert_eq!(out, 2);
    let kept = store.flow_run(run.id).unwrap().expect("the flow run");
    assert_eq!(kept.name, run.name);
    assert_eq!(kept.flow, "counting");
    assert_eq!(kept.history.kinds(), [Pending, Running, Completed]);
    assert_eq!(kept.task_runs.len(), 2);
    assert_eq!(
        store.parameters(run.id).unwrap(),
        Some(serde_json::json!({ "n": 2 }))
    );
}
