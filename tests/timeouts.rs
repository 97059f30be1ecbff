//! Task timeouts: the attempt is cut at exactly the limit on the paused clock, retried while
//! retries remain, and the last one ends `TimedOut` returning the `TimeoutError` as the
//! task's error type.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use flowcore::StateKind::*;
use flowcore::{State, TimeoutError, flow, task};
use tokio::time::{Instant, sleep};

#[derive(Debug, PartialEq, thiserror::Error)]
enum FetchError {
    #[error(transparent)]
    Timeout(#[from] TimeoutError),
    #[error("bad response {0}")]
    Bad(u16),
}

fn messages(history: &[State]) -> Vec<&str> {
    history.iter().map(State::message).collect()
}

#[task(timeout = "30s")]
async fn slow_fetch(secs: u64) -> Result<u64, FetchError> {
    sleep(Duration::from_secs(secs)).await;
    Ok(secs)
}

#[tokio::test(start_paused = true)]
async fn an_attempt_longer_than_the_timeout_ends_timed_out_at_the_limit() {
    let start = Instant::now();
    let (out, run) = slow_fetch(3600).with_run().await;
    assert_eq!(start.elapsed(), Duration::from_secs(30));
    assert_eq!(
        out,
        Err(FetchError::Timeout(TimeoutError::new(Duration::from_secs(
            30
        ))))
    );
    assert_eq!(run.history.kinds(), [Pending, Running, TimedOut]);
    assert_eq!(messages(&run.history), ["", "", "timed out after 30s"]);
    assert_eq!(run.attempts, 1);
    assert_eq!(run.error(), Some("timed out after 30s"));
    assert_eq!(run.duration(), Some(Duration::from_secs(30)));
    match out {
        Err(FetchError::Timeout(e)) => assert_eq!(e.after(), Duration::from_secs(30)),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn an_attempt_within_the_timeout_completes() {
    let start = Instant::now();
    let (out, run) = slow_fetch(29).with_run().await;
    assert_eq!(out, Ok(29));
    assert_eq!(start.elapsed(), Duration::from_secs(29));
    assert_eq!(run.history.kinds(), [Pending, Running, Completed]);
}

static ALWAYS_SLOW_CALLS: AtomicU32 = AtomicU32::new(0);

#[task(retries = 2, retry_delay = "5s", timeout = "30s")]
async fn always_slow() -> Result<(), FetchError> {
    ALWAYS_SLOW_CALLS.fetch_add(1, Ordering::SeqCst);
    sleep(Duration::from_secs(3600)).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn timed_out_attempts_are_retried_and_the_last_ends_timed_out() {
    let start = Instant::now();
    let (out, run) = always_slow().with_run().await;
    assert_eq!(start.elapsed(), Duration::from_secs(30 + 5 + 30 + 5 + 30));
    assert_eq!(
        out,
        Err(FetchError::Timeout(TimeoutError::new(Duration::from_secs(
            30
        ))))
    );
    assert_eq!(ALWAYS_SLOW_CALLS.load(Ordering::SeqCst), 3);
    assert_eq!(run.attempts, 3);
    assert_eq!(
        run.history.kinds(),
        [
            Pending, Running, Retrying, Running, Retrying, Running, TimedOut
        ]
    );
    assert_eq!(
        messages(&run.history),
        [
            "",
            "attempt 1/3",
            "attempt 1/3 failed: timed out after 30s; retrying in 5s",
            "attempt 2/3",
            "attempt 2/3 failed: timed out after 30s; retrying in 5s",
            "attempt 3/3",
            "timed out after 30s",
        ]
    );
    let gaps: Vec<Duration> = run
        .history
        .windows(2)
        .map(|w| w[1].at.duration_since(w[0].at))
        .collect();
    assert_eq!(
        gaps,
        [0, 30, 5, 30, 5, 30].map(Duration::from_secs).to_vec()
    );
}

static SLOW_ONCE_CALLS: AtomicU32 = AtomicU32::new(0);

#[task(retries = 2, retry_delay = "1s", timeout = "10s")]
async fn slow_only_once() -> Result<u32, FetchError> {
    let n = SLOW_ONCE_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    if n == 1 {
        sleep(Duration::from_secs(3600)).await;
    }
    Ok(n)
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_a_timeout_can_succeed() {
    let start = Instant::now();
    let (out, run) = slow_only_once().with_run().await;
    assert_eq!(out, Ok(2));
    assert_eq!(start.elapsed(), Duration::from_secs(11));
    assert_eq!(run.attempts, 2);
    assert_eq!(
        run.history.kinds(),
        [Pending, Running, Retrying, Running, Completed]
    );
    assert_eq!(
        run.history[2].message(),
        "attempt 1/3 failed: timed out after 10s; retrying in 1s"
    );
}

static MIXED_CALLS: AtomicU32 = AtomicU32::new(0);

#[task(retries = 1, timeout = "10s")]
async fn times_out_then_errs() -> Result<(), FetchError> {
    let n = MIXED_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    if n == 1 {
        sleep(Duration::from_secs(60)).await;
        Ok(())
    } else {
        Err(FetchError::Bad(503))
    }
}

#[tokio::test(start_paused = true)]
async fn an_error_after_a_timeout_ends_failed_not_timed_out() {
    let (out, run) = times_out_then_errs().with_run().await;
    assert_eq!(out, Err(FetchError::Bad(503)));
    assert_eq!(
        run.history.kinds(),
        [Pending, Running, Retrying, Running, Failed]
    );
    assert_eq!(run.error(), Some("bad response 503"));
}

static ERR_THEN_SLOW_CALLS: AtomicU32 = AtomicU32::new(0);

#[task(retries = 1, timeout = "10s")]
async fn errs_then_times_out() -> Result<(), FetchError> {
    let n = ERR_THEN_SLOW_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    if n == 1 {
        return Err(FetchError::Bad(502));
    }
    sleep(Duration::from_secs(60)).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_timeout_on_the_last_attempt_after_an_error_ends_timed_out() {
    let start = Instant::now();
    let (out, run) = errs_then_times_out().with_run().await;
    assert_eq!(
        out,
        Err(FetchError::Timeout(TimeoutError::new(Duration::from_secs(
            10
        ))))
    );
    assert_eq!(start.elapsed(), Duration::from_secs(10));
    assert_eq!(
        run.history.kinds(),
        [Pending, Running, Retrying, Running, TimedOut]
    );
    assert_eq!(
        run.history[2].message(),
        "attempt 1/2 failed: bad response 502; retrying now"
    );
}

#[task(timeout = "250ms")]
async fn anyhow_slow() -> anyhow::Result<()> {
    sleep(Duration::from_secs(1)).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn an_anyhow_task_returns_a_timeout_error_it_can_downcast() {
    let (out, run) = anyhow_slow().with_run().await;
    let err = out.unwrap_err();
    assert_eq!(
        err.downcast_ref::<TimeoutError>(),
        Some(&TimeoutError::new(Duration::from_millis(250)))
    );
    assert_eq!(err.to_string(), "timed out after 250ms");
    assert_eq!(run.state().kind, TimedOut);
}

#[task(timeout = "1m 30s")]
async fn boxed_slow() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    sleep(Duration::from_secs(600)).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_boxed_error_task_returns_the_timeout_too() {
    let start = Instant::now();
    let err = boxed_slow().await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_secs(90));
    assert_eq!(
        err.downcast_ref::<TimeoutError>().map(TimeoutError::after),
        Some(Duration::from_secs(90))
    );
    assert_eq!(err.to_string(), "timed out after 1m 30s");
}

static DROPPED_BODIES: AtomicU32 = AtomicU32::new(0);

struct CountDrop;

impl Drop for CountDrop {
    fn drop(&mut self) {
        DROPPED_BODIES.fetch_add(1, Ordering::SeqCst);
    }
}

#[task(retries = 1, timeout = "5s")]
async fn holds_a_guard() -> Result<(), FetchError> {
    let _guard = CountDrop;
    std::future::pending::<()>().await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_attempt_is_dropped_not_left_running() {
    let (_, run) = holds_a_guard().with_run().await;
    assert_eq!(run.attempts, 2);
    assert_eq!(DROPPED_BODIES.load(Ordering::SeqCst), 2);
}

#[task]
async fn inner_step(secs: u64) -> u64 {
    sleep(Duration::from_secs(secs)).await;
    secs
}

#[task(timeout = "10s")]
async fn outer_step() -> Result<u64, FetchError> {
    let quick = inner_step(2).await;
    let slow = inner_step(100).await;
    Ok(quick + slow)
}

#[flow]
async fn timeout_in_flow() -> Result<u64, FetchError> {
    outer_step().await
}

#[tokio::test(start_paused = true)]
async fn task_runs_in_flight_inside_a_timed_out_task_are_cancelled() {
    let (out, run) = timeout_in_flow().with_run().await;
    assert_eq!(
        out,
        Err(FetchError::Timeout(TimeoutError::new(Duration::from_secs(
            10
        ))))
    );
    // The flow handled nothing: it returned the task's error, so it failed with it.
    assert_eq!(run.state().kind, Failed);
    assert_eq!(run.error(), Some("timed out after 10s"));
    let summary: Vec<(&str, _)> = run
        .task_runs
        .iter()
        .map(|r| (&*r.task, r.history.kinds()))
        .collect();
    assert_eq!(
        summary,
        [
            ("inner_step", vec![Pending, Running, Completed]),
            ("inner_step", vec![Pending, Running, Cancelled]),
            ("outer_step", vec![Pending, Running, TimedOut]),
        ]
    );
    assert!(run.task_runs.iter().all(|r| r.flow_run_id == Some(run.id)));
    let cancelled = &run.task_runs[1];
    let timed_out = &run.task_runs[2];
    assert_eq!(cancelled.state().at, timed_out.state().at);
}

#[task(timeout = "50ms")]
async fn blocks_its_thread() -> Result<u32, FetchError> {
    // Code that never yields: tokio cannot stop it, so the attempt runs on past its limit.
    std::thread::sleep(Duration::from_millis(300));
    Ok(7)
}

// On the real clock: blocking code does not move tokio's paused one. The test cannot pass by
// luck of timing: 300 ms of blocking always outlasts a 50 ms limit.
#[tokio::test]
async fn blocking_code_past_its_timeout_is_recorded_timed_out_whatever_it_returned() {
    let (out, run) = blocks_its_thread().with_run().await;
    assert_eq!(
        out,
        Err(FetchError::Timeout(TimeoutError::new(
            Duration::from_millis(50)
        )))
    );
    assert_eq!(run.history.kinds(), [Pending, Running, TimedOut]);
    assert_eq!(run.error(), Some("timed out after 50ms"));
}
