//! The states a run passes through: exact sequences, messages and the history's helpers, one
//! final state at a time.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use flowcore::StateKind::{self, *};
use flowcore::{CacheStatus, State, TimeoutError, flow, task};

fn messages(history: &[State]) -> Vec<Option<&str>> {
    history.iter().map(|s| s.message.as_deref()).collect()
}

#[task]
async fn add_numbers(a: u32, b: u32) -> u32 {
    a + b
}

#[tokio::test]
async fn a_plain_task_runs_pending_running_completed() {
    let (sum, run) = add_numbers(2, 3).with_run().await;
    assert_eq!(sum, 5);
    assert_eq!(run.history.kinds(), [Pending, Running, Completed]);
    assert_eq!(messages(&run.history), [None, None, None]);
    assert_eq!(run.task, "add_numbers");
    assert_eq!(run.attempts, 1);
    assert_eq!(run.cache, CacheStatus::Off);
    assert_eq!(run.flow_run_id, None);
    assert_eq!(run.error(), None);
    assert_eq!(run.state().to_string(), "Completed()");
}

#[tokio::test]
async fn awaiting_a_call_gives_exactly_the_declared_output() {
    let sum: u32 = add_numbers(40, 2).await;
    assert_eq!(sum, 42);
}

#[task(name = "checked-divide")]
async fn checked_divide(a: u32, b: u32) -> Result<u32, String> {
    a.checked_div(b)
        .ok_or_else(|| format!("cannot divide {a} by zero"))
}

#[tokio::test]
async fn an_ok_result_completes() {
    let (out, run) = checked_divide(12, 4).with_run().await;
    assert_eq!(out, Ok(3));
    assert_eq!(run.task, "checked-divide");
    assert_eq!(run.history.kinds(), [Pending, Running, Completed]);
    assert_eq!(run.attempts, 1);
    assert_eq!(run.error(), None);
}

#[tokio::test]
async fn an_err_without_retries_fails_once_with_the_error_text() {
    let (out, run) = checked_divide(7, 0).with_run().await;
    assert_eq!(out, Err("cannot divide 7 by zero".to_owned()));
    assert_eq!(run.history.kinds(), [Pending, Running, Failed]);
    assert_eq!(
        messages(&run.history),
        [None, None, Some("cannot divide 7 by zero")]
    );
    assert_eq!(run.attempts, 1);
    assert_eq!(run.error(), Some("cannot divide 7 by zero"));
    assert!(run.state().is_failed());
    assert_eq!(run.state().to_string(), "Failed('cannot divide 7 by zero')");
}

#[tokio::test]
async fn the_question_mark_works_on_an_awaited_task() {
    async fn caller() -> Result<u32, String> {
        let x = checked_divide(10, 2).await?;
        let y = checked_divide(x, 0).await?;
        Ok(y + 1000)
    }
    assert_eq!(caller().await, Err("cannot divide 5 by zero".to_owned()));
}

#[task]
async fn io_result_task(fail: bool) -> std::io::Result<u8> {
    if fail {
        Err(std::io::Error::other("disk full"))
    } else {
        Ok(1)
    }
}

#[tokio::test]
async fn an_io_result_alias_is_judged_as_a_result() {
    let (out, run) = io_result_task(true).with_run().await;
    assert_eq!(out.unwrap_err().to_string(), "disk full");
    assert_eq!(run.history.kinds(), [Pending, Running, Failed]);
    assert_eq!(run.error(), Some("disk full"));
}

#[task]
async fn anyhow_chain() -> anyhow::Result<()> {
    Err(anyhow::anyhow!("connection refused").context("loading the config"))
}

#[tokio::test]
async fn an_anyhow_error_records_its_whole_context_chain() {
    let (out, run) = anyhow_chain().with_run().await;
    assert_eq!(out.unwrap_err().to_string(), "loading the config");
    assert_eq!(run.error(), Some("loading the config: connection refused"));
}

#[task]
async fn maybe_find(x: u32) -> Option<u32> {
    (x > 10).then_some(x)
}

#[tokio::test]
async fn a_non_result_output_never_fails_by_its_value() {
    let (out, run) = maybe_find(3).with_run().await;
    assert_eq!(out, None);
    assert_eq!(run.history.kinds(), [Pending, Running, Completed]);
}

static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);

#[task(retries = 2)]
async fn flaky_twice() -> Result<&'static str, String> {
    let n = FLAKY_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    if n < 3 {
        Err(format!("flaky {n}"))
    } else {
        Ok("done")
    }
}

#[tokio::test]
async fn retries_record_running_and_retrying_with_attempt_messages() {
    let (out, run) = flaky_twice().with_run().await;
    assert_eq!(out, Ok("done"));
    assert_eq!(
        run.history.kinds(),
        [
            Pending, Running, Retrying, Running, Retrying, Running, Completed
        ]
    );
    assert_eq!(
        messages(&run.history),
        [
            None,
            Some("attempt 1/3"),
            Some("attempt 1/3 failed: flaky 1; retrying now"),
            Some("attempt 2/3"),
            Some("attempt 2/3 failed: flaky 2; retrying now"),
            Some("attempt 3/3"),
            None,
        ]
    );
    assert_eq!(run.attempts, 3);
    assert_eq!(run.error(), None);
}

#[task(retries = 1)]
async fn always_wrong(code: u16) -> Result<(), String> {
    Err(format!("status code {code}"))
}

#[tokio::test]
async fn the_last_failure_is_the_final_state() {
    let (out, run) = always_wrong(503).with_run().await;
    assert_eq!(out, Err("status code 503".to_owned()));
    assert_eq!(
        run.history.kinds(),
        [Pending, Running, Retrying, Running, Failed]
    );
    assert_eq!(run.history[4].message(), "status code 503");
    assert_eq!(run.state().to_string(), "Failed('status code 503')");
    assert_eq!(run.attempts, 2);
}

/// An error whose `Display` writes part of its text, then fails.
#[derive(Debug)]
struct HalfWritten;

impl std::fmt::Display for HalfWritten {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("quota check")?;
        Err(std::fmt::Error)
    }
}

#[task(retries = 1)]
async fn half_written() -> Result<(), HalfWritten> {
    Err(HalfWritten)
}

#[tokio::test]
async fn an_error_whose_display_fails_keeps_what_it_wrote_and_panics_nothing() {
    let (out, run) = half_written().with_run().await;
    assert!(out.is_err());
    assert_eq!(
        run.history.kinds(),
        [Pending, Running, Retrying, Running, Failed]
    );
    assert_eq!(
        messages(&run.history),
        [
            None,
            Some("attempt 1/2"),
            Some("attempt 1/2 failed: quota check; retrying now"),
            Some("attempt 2/2"),
            Some("quota check"),
        ]
    );
}

#[task(retries = 1)]
async fn long_error(len: usize) -> Result<(), String> {
    Err("x".repeat(len))
}

#[tokio::test]
async fn long_error_messages_are_kept_whole_and_do_not_leak_into_the_next() {
    // Longer than the room each thread keeps for writing messages, then a short one after it.
    let (_, long) = long_error(5000).with_run().await;
    let (_, short) = long_error(3).with_run().await;
    let long_retrying = format!("attempt 1/2 failed: {}; retrying now", "x".repeat(5000));
    assert_eq!(long.history[2].message(), long_retrying);
    assert_eq!(long.history[4].message(), "x".repeat(5000));
    assert_eq!(
        messages(&short.history),
        [
            None,
            Some("attempt 1/2"),
            Some("attempt 1/2 failed: xxx; retrying now"),
            Some("attempt 2/2"),
            Some("xxx"),
        ]
    );
}

#[task(cache_for = "1h")]
async fn states_cached_lookup(key: &str) -> usize {
    key.len()
}

#[tokio::test]
async fn a_cache_hit_goes_straight_from_pending_to_cached() {
    // The cache persists in the run store between test runs: start from none.
    flowcore::cache::clear_task("states_cached_lookup").unwrap();
    let (first, miss) = states_cached_lookup("states-only-key").with_run().await;
    assert_eq!(miss.history.kinds(), [Pending, Running, Completed]);
    let (second, hit) = states_cached_lookup("states-only-key").with_run().await;
    assert_eq!((first, second), (15, 15));
    assert_eq!(hit.history.kinds(), [Pending, Cached]);
    assert_eq!(messages(&hit.history), [None, Some("cache hit")]);
    assert_eq!(hit.attempts, 0);
    assert!(hit.state().is_completed());
    assert_eq!(hit.history.started_at(), None);
    assert_eq!(hit.duration(), Some(Duration::ZERO));
}

#[task(timeout = "2s")]
async fn states_too_slow() -> Result<(), TimeoutError> {
    tokio::time::sleep(Duration::from_secs(60)).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_attempt_ends_timed_out() {
    let (out, run) = states_too_slow().with_run().await;
    assert_eq!(out, Err(TimeoutError::new(Duration::from_secs(2))));
    assert_eq!(run.history.kinds(), [Pending, Running, TimedOut]);
    assert_eq!(run.error(), Some("timed out after 2s"));
    assert!(run.state().is_failed());
}

#[task]
async fn states_never_ends() -> u32 {
    std::future::pending::<()>().await;
    unreachable!()
}

#[flow]
async fn states_drops_a_task() -> bool {
    tokio::time::timeout(Duration::from_secs(1), states_never_ends())
        .await
        .is_err()
}

#[tokio::test(start_paused = true)]
async fn a_dropped_run_ends_cancelled() {
    let (timed_out, flow_run) = states_drops_a_task().with_run().await;
    assert!(timed_out);
    let run = &flow_run.task_runs[0];
    assert_eq!(run.history.kinds(), [Pending, Running, Cancelled]);
    assert_eq!(
        run.state().message(),
        "the task run was dropped before it finished"
    );
    assert!(run.state().is_final());
    assert!(!run.state().is_failed());
    assert!(!run.state().is_completed());
    assert_eq!(run.error(), None);
}

#[task]
async fn states_sleeper(secs: u64) -> u64 {
    tokio::time::sleep(Duration::from_secs(secs)).await;
    secs
}

#[tokio::test(start_paused = true)]
async fn pending_is_stamped_when_called_running_when_first_polled() {
    let call = states_sleeper(3);
    tokio::time::advance(Duration::from_secs(5)).await;
    let (out, run) = call.with_run().await;
    assert_eq!(out, 3);
    let [pending, running, completed] = &run.history[..] else {
        panic!("unexpected history {:?}", run.history);
    };
    assert_eq!(
        running.at.duration_since(pending.at),
        Duration::from_secs(5)
    );
    assert_eq!(
        completed.at.duration_since(running.at),
        Duration::from_secs(3)
    );
    assert_eq!(run.history.started_at(), Some(running.at));
    assert_eq!(run.history.ended_at(), Some(completed.at));
    assert_eq!(run.duration(), Some(Duration::from_secs(3)));
}

#[flow]
async fn states_simple_flow() -> u32 {
    add_numbers(1, 1).await
}

#[flow]
async fn states_failing_flow() -> Result<(), String> {
    Err("bad input".to_owned())
}

#[tokio::test]
async fn a_flow_run_has_the_same_states() {
    let (out, run) = states_simple_flow().with_run().await;
    assert_eq!(out, 2);
    assert_eq!(run.history.kinds(), [Pending, Running, Completed]);
    assert_eq!(run.attempts, 1);

    let (out, run) = states_failing_flow().with_run().await;
    assert_eq!(out, Err("bad input".to_owned()));
    assert_eq!(run.history.kinds(), [Pending, Running, Failed]);
    assert_eq!(run.error(), Some("bad input"));
}

#[test]
fn state_kinds_classify_as_documented() {
    let finals: Vec<StateKind> = StateKind::ALL
        .into_iter()
        .filter(|k| k.is_final())
        .collect();
    assert_eq!(
        finals,
        [
            Completed, Cached, Failed, TimedOut, Cancelled, Crashed, Skipped
        ]
    );
    let failed: Vec<StateKind> = StateKind::ALL
        .into_iter()
        .filter(|k| k.is_failed())
        .collect();
    assert_eq!(failed, [Failed, TimedOut]);
    let completed: Vec<StateKind> = StateKind::ALL
        .into_iter()
        .filter(|k| k.is_completed())
        .collect();
    assert_eq!(completed, [Completed, Cached]);
    let names: Vec<String> = StateKind::ALL.iter().map(|k| k.to_string()).collect();
    assert_eq!(
        names,
        [
            "Scheduled",
            "Late",
            "Pending",
            "Running",
            "Retrying",
            "Paused",
            "Cancelling",
            "Completed",
            "Cached",
            "Failed",
            "TimedOut",
            "Cancelled",
            "Crashed",
            "Skipped"
        ]
    );
}
