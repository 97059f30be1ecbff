//! Background tasks: task runs delayed with `.delay()` (or `map(…).on_workers()`), claimed and
//! run by workers serving the task (`flowcore::serve_tasks`), their values read back by the
//! caller. In one process here, on SQLite and on PostgreSQL; across processes and hosts, with a
//! worker killed, in `tests/workers.rs`.

#[macro_use]
mod support;

use std::future::IntoFuture as _;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use flowcore::StateKind::{self, *};
use flowcore::{DelayedError, ServeError, Store, background, flow, task};
use support::backends::TestStore;

store_tests!(
    a_delayed_run_is_run_by_a_worker_with_its_retries_and_its_states,
    a_failed_delayed_run_gives_its_final_state_and_message,
    on_workers_gathers_every_value_in_input_order,
    a_delayed_run_of_a_cached_task_reuses_the_cached_value,
    a_task_worker_is_listed_with_its_tasks_while_it_serves,
);

static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);

/// Fails its first attempt.
#[task(background, retries = 2, retry_delay = "10ms")]
async fn flaky(x: u64) -> Result<u64, String> {
    if FLAKY_CALLS.fetch_add(1, Ordering::SeqCst) == 0 {
        return Err("first attempt fails".into());
    }
    Ok(x + 1)
}

#[task(background)]
async fn broken(reason: String) -> Result<u64, String> {
    Err(reason)
}

#[task(background)]
async fn square(n: u64) -> u64 {
    n * n
}

static CACHED_CALLS: AtomicU32 = AtomicU32::new(0);

#[task(background, cache_for = "1h")]
async fn cached_double(n: u64) -> u64 {
    CACHED_CALLS.fetch_add(1, Ordering::SeqCst);
    n * 2
}

#[flow]
async fn delays_flaky() -> Result<u64, DelayedError> {
    flaky(41).delay().await?.await
}

/// Runs `body` with a worker serving every task of this file, in this process, on `store`.
async fn with_worker<T>(store: &Store, body: impl Future<Output = T>) -> T {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let tasks = [
        background(flaky),
        background(broken),
        background(square),
        background(cached_double),
    ];
    let serving = flowcore::serve_tasks(tasks)
        .task_limit(4)
        .with_shutdown(async {
            stopped.await.ok();
        });
    let worker_store = store.clone();
    let worker = tokio::spawn(async move { worker_store.scope(serving.into_future()).await });
    let out = store.scope(body).await;
    stop.send(()).unwrap();
    worker.await.unwrap().unwrap();
    out
}

async fn a_delayed_run_is_run_by_a_worker_with_its_retries_and_its_states(ts: &TestStore) {
    FLAKY_CALLS.store(0, Ordering::SeqCst);
    let store = ts.store();
    let (out, flow_run) = with_worker(store, delays_flaky().with_run()).await;
    assert_eq!(out.unwrap(), 42);
    assert_eq!(FLAKY_CALLS.load(Ordering::SeqCst), 2, "one retry");

    // Delayed in the flow run, it is listed among its task runs, with every state.
    let stored = store.flow_run(flow_run.id).unwrap().unwrap();
    assert_eq!(stored.task_runs.len(), 1);
    let run = &stored.task_runs[0];
    assert_eq!(run.task, "flaky");
    assert_eq!(
        run.history.kinds(),
        [Scheduled, Pending, Running, Retrying, Running, Completed]
    );
    assert_eq!(
        run.history[0].message.as_deref(),
        Some("delayed: waiting for a worker serving the task")
    );
    assert_eq!(run.attempts, 2);
    assert_eq!(
        ts.count(
            "SELECT claims FROM task_requests WHERE run_id = $1",
            &[run.id.as_bytes()]
        ),
        1,
        "claimed once"
    );
    assert_eq!(
        ts.count(
            "SELECT COUNT(*) FROM task_runs WHERE id = $1 AND process_id IS NOT NULL",
            &[run.id.as_bytes()]
        ),
        1,
        "the worker that claimed it is recorded"
    );
}

async fn a_failed_delayed_run_gives_its_final_state_and_message(ts: &TestStore) {
    let store = ts.store();
    let err = with_worker(store, async {
        broken("no such image".into()).delay().await?.await
    })
    .await
    .unwrap_err();
    match &err {
        DelayedError::Ended { state, message, .. } => {
            assert_eq!(*state, StateKind::Failed);
            assert_eq!(message.as_deref(), Some("no such image"));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string().ends_with("ended Failed: no such image"),
        "{err}"
    );
}

async fn on_workers_gathers_every_value_in_input_order(ts: &TestStore) {
    let store = ts.store();
    let out = with_worker(store, flowcore::map(0..50u64, square).on_workers())
        .await
        .unwrap();
    let values: Vec<u64> = out.into_iter().map(Result::unwrap).collect();
    assert_eq!(values, (0..50u64).map(|n| n * n).collect::<Vec<_>>());
    assert_eq!(
        ts.count(
            "SELECT COUNT(*) FROM task_runs WHERE task = 'square' AND state = 'Completed'",
            &[]
        ),
        50
    );
    assert_eq!(
        ts.count(
            "SELECT COUNT(*) FROM states WHERE kind = 'Completed'
             AND run_id IN (SELECT id FROM task_runs WHERE task = 'square')",
            &[]
        ),
        50,
        "each Completed once"
    );
}

async fn a_delayed_run_of_a_cached_task_reuses_the_cached_value(ts: &TestStore) {
    CACHED_CALLS.store(0, Ordering::SeqCst);
    let store = ts.store();
    let (first, second) = with_worker(store, async {
        let first = cached_double(21).delay().await.unwrap().await.unwrap();
        let second = cached_double(21).delay().await.unwrap();
        let id = second.id();
        (first, (second.await.unwrap(), id))
    })
    .await;
    assert_eq!((first, second.0), (42, 42));
    assert_eq!(
        CACHED_CALLS.load(Ordering::SeqCst),
        1,
        "the second was a hit"
    );
    assert_eq!(
        ts.count(
            "SELECT COUNT(*) FROM task_runs WHERE id = $1 AND state = 'Cached'",
            &[second.1.as_bytes()]
        ),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn on_a_memory_store_a_worker_in_the_process_runs_delayed_runs_at_once() {
    let store = Store::memory();
    let out = with_worker(&store, async {
        let a = square(3).delay().await.unwrap();
        let b = square(4).delay().await.unwrap();
        (a.await.unwrap(), b.await.unwrap())
    })
    .await;
    assert_eq!(out, (9, 16));
}

#[tokio::test]
async fn serving_nothing_or_two_tasks_of_one_name_is_refused() {
    let store = Store::memory();
    let nothing = store
        .scope(flowcore::serve_tasks([]).into_future())
        .await
        .unwrap_err();
    assert!(matches!(nothing, ServeError::NothingToServe), "{nothing}");

    #[task(background, name = "square")]
    async fn another_square(n: u64) -> u64 {
        n * n
    }
    let twice = store
        .scope(
            flowcore::serve_tasks([background(square), background(another_square)]).into_future(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        twice.to_string(),
        "two background tasks are named 'square': a delayed run names its task, so give each its own (`#[task(background, name = \"…\")]`)"
    );
    // The same task twice is served once.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving =
        flowcore::serve_tasks([background(square), background(square)]).with_shutdown(async {
            stopped.await.ok();
        });
    let worker_store = store.clone();
    let worker = tokio::spawn(async move { worker_store.scope(serving.into_future()).await });
    let value = store
        .scope(async { square(5).delay().await.unwrap().await.unwrap() })
        .await;
    assert_eq!(value, 25);
    stop.send(()).unwrap();
    worker.await.unwrap().unwrap();
}

async fn a_task_worker_is_listed_with_its_tasks_while_it_serves(ts: &TestStore) {
    let store = ts.store();
    let listed = with_worker(store, async {
        let run = square(2).delay().await.unwrap();
        // The worker records what it serves as it starts, on a tokio task of its own.
        let workers = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let workers = store.workers().unwrap();
                if !workers.is_empty() {
                    return workers;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the worker is listed within 10 s");
        run.await.unwrap();
        workers
    })
    .await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let me = &listed[0];
    assert_eq!(me.pid, std::process::id());
    assert_eq!(me.tasks, ["broken", "cached_double", "flaky", "square"]);
    assert!(me.deployments.is_empty());
    assert!(me.task_runs_held <= 1);
    assert!(
        store.workers().unwrap().is_empty(),
        "no longer once stopped"
    );
}
