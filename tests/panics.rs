//! Panics: the run is recorded `Failed` with the panic message, is not retried, and the panic
//! itself goes on to the caller unchanged.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use flowcore::StateKind::*;
use flowcore::{RunInfo, State, flow, task};
use futures::FutureExt as _;

fn message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .expect("a string payload")
}

#[task]
async fn explode(n: u32) -> u32 {
    if n > 0 {
        panic!("boom {n}");
    }
    n
}

#[tokio::test]
async fn a_task_panic_reaches_the_caller_through_tokio_spawn() {
    let err = tokio::spawn(explode(7)).await.unwrap_err();
    assert!(err.is_panic());
    assert_eq!(message(&*err.into_panic()), "boom 7");
}

#[tokio::test]
async fn a_task_panic_reaches_the_caller_through_catch_unwind() {
    let caught = AssertUnwindSafe(explode(3).with_run()).catch_unwind().await;
    let payload = caught.expect_err("the panic goes on to the caller");
    assert_eq!(message(&*payload), "boom 3");
    // No panic, no problem: the same task completes normally.
    let (out, run) = explode(0).with_run().await;
    assert_eq!(out, 0);
    assert_eq!(run.history.kinds(), [Pending, Running, Completed]);
}

static RETRIED_PANIC_CALLS: AtomicU32 = AtomicU32::new(0);

#[task(retries = 5, retry_delay = "1s")]
async fn panics_with_retries(n: u32) -> Result<u32, String> {
    RETRIED_PANIC_CALLS.fetch_add(1, Ordering::SeqCst);
    if n == 13 {
        panic!("unlucky {n}");
    }
    Ok(n)
}

#[flow]
async fn handles_a_panicking_task() -> String {
    let caught = tokio::spawn(panics_with_retries(13)).await;
    match caught {
        Err(e) if e.is_panic() => format!("caught: {}", message(&*e.into_panic())),
        other => format!("unexpected: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_task_is_recorded_failed_and_not_retried() {
    let (out, run) = handles_a_panicking_task().with_run().await;
    assert_eq!(out, "caught: unlucky 13");
    assert_eq!(RETRIED_PANIC_CALLS.load(Ordering::SeqCst), 1);

    assert_eq!(run.task_runs.len(), 1);
    let task_run = &run.task_runs[0];
    assert_eq!(task_run.task, "panics_with_retries");
    assert_eq!(task_run.flow_run_id, Some(run.id));
    assert_eq!(task_run.attempts, 1);
    assert_eq!(task_run.history.kinds(), [Pending, Running, Failed]);
    assert_eq!(task_run.history[1].message(), "attempt 1/6");
    assert_eq!(task_run.error(), Some("unlucky 13"));

    // The flow caught the panic, so the flow itself completed.
    assert_eq!(run.history.kinds(), [Pending, Running, Completed]);
    assert_eq!(
        run.summary().headline(),
        "Completed — 1 task run failed and was handled"
    );
}

#[task]
async fn odd_payload() {
    std::panic::panic_any(42_u8);
}

#[flow]
async fn catches_odd_payload() -> Option<u8> {
    let caught = AssertUnwindSafe(odd_payload()).catch_unwind().await;
    caught.err().and_then(|p| p.downcast_ref::<u8>().copied())
}

#[tokio::test]
async fn a_non_string_payload_reaches_the_caller_unchanged() {
    let (payload, run) = catches_odd_payload().with_run().await;
    assert_eq!(payload, Some(42));
    assert_eq!(
        run.task_runs[0].error(),
        Some("panic with a non-string payload")
    );
    assert_eq!(run.task_runs[0].state().kind, Failed);
}

#[task]
async fn fine_step() -> u32 {
    1
}

static PANICKING_FLOW_CALLS: AtomicU32 = AtomicU32::new(0);

#[flow(retries = 3)]
async fn panicking_subflow() -> Result<u32, String> {
    PANICKING_FLOW_CALLS.fetch_add(1, Ordering::SeqCst);
    let one = fine_step().await;
    if one == 1 {
        panic!("subflow exploded after {one} step");
    }
    Ok(one)
}

#[flow]
async fn parent_catches_subflow_panic() -> String {
    match AssertUnwindSafe(panicking_subflow()).catch_unwind().await {
        Ok(out) => format!("no panic: {out:?}"),
        Err(payload) => message(&*payload).to_owned(),
    }
}

#[tokio::test]
async fn a_panicking_subflow_is_recorded_failed_in_its_parent() {
    let (out, parent) = parent_catches_subflow_panic().with_run().await;
    assert_eq!(out, "subflow exploded after 1 step");
    assert_eq!(PANICKING_FLOW_CALLS.load(Ordering::SeqCst), 1);
    assert_eq!(parent.state().kind, Completed);
    assert!(parent.task_runs.is_empty());

    assert_eq!(parent.subflow_runs.len(), 1);
    let sub = &parent.subflow_runs[0];
    assert_eq!(sub.flow, "panicking_subflow");
    assert_eq!(sub.parent_id, Some(parent.id));
    assert_eq!(sub.attempts, 1);
    assert_eq!(sub.history.kinds(), [Pending, Running, Failed]);
    assert_eq!(sub.error(), Some("subflow exploded after 1 step"));
    // What the subflow did before it panicked is kept.
    assert_eq!(sub.task_runs.len(), 1);
    assert_eq!(sub.task_runs[0].task, "fine_step");
    assert_eq!(sub.task_runs[0].flow_run_id, Some(sub.id));
    assert_eq!(sub.task_runs[0].state().kind, Completed);
}

#[flow]
async fn lets_a_task_panic_through() -> u32 {
    explode(5).await + 1
}

#[flow]
async fn outer_of_uncaught() -> bool {
    AssertUnwindSafe(lets_a_task_panic_through())
        .catch_unwind()
        .await
        .is_err()
}

#[tokio::test]
async fn a_task_panic_not_caught_by_the_flow_fails_the_flow_too() {
    let (panicked, outer) = outer_of_uncaught().with_run().await;
    assert!(panicked);
    let sub = &outer.subflow_runs[0];
    assert_eq!(sub.history.kinds(), [Pending, Running, Failed]);
    assert_eq!(sub.error(), Some("boom 5"));
    assert_eq!(sub.task_runs.len(), 1);
    assert_eq!(sub.task_runs[0].history.kinds(), [Pending, Running, Failed]);
    assert_eq!(sub.task_runs[0].error(), Some("boom 5"));
}

static FAILURES: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

fn note_failure(run: &RunInfo, state: &State) {
    FAILURES
        .lock()
        .unwrap()
        .push((run.task_or_flow_name().to_owned(), state.to_string()));
}

#[flow(on_failure = note_failure)]
async fn top_level_panic() {
    panic!("top level gone");
}

#[tokio::test]
async fn a_top_level_flow_panic_reaches_the_caller_after_its_failure_hook() {
    let err = tokio::spawn(top_level_panic()).await.unwrap_err();
    assert!(err.is_panic());
    assert_eq!(message(&*err.into_panic()), "top level gone");
    assert_eq!(
        *FAILURES.lock().unwrap(),
        [(
            "top_level_panic".to_owned(),
            "Failed('top level gone')".to_owned()
        )]
    );
}
