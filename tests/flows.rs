//! Flows: final states, task runs collected in the record, flow retries, flow timeouts that
//! cancel task runs in flight, dropped flows, subflows and their ids.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use flowcore::StateKind::{self, *};
use flowcore::{FlowRunRecord, State, TimeoutError, flow, task};
use tokio::time::{Instant, sleep};

fn task_states(run: &FlowRunRecord) -> Vec<(&str, StateKind)> {
    run.task_runs
        .iter()
        .map(|r| (&*r.task, r.state().kind))
        .collect()
}

#[task]
async fn double(x: u32) -> u32 {
    x * 2
}

#[task]
async fn parse_number(text: &str) -> Result<u32, String> {
    text.parse()
        .map_err(|e| format!("cannot parse {text:?}: {e}"))
}

#[flow]
async fn sums_doubles(xs: Vec<u32>) -> u32 {
    let mut total = 0;
    for x in xs {
        total += double(x).await;
    }
    total
}

#[tokio::test]
async fn a_flow_collects_its_task_runs_in_the_order_they_finished() {
    let (out, run) = sums_doubles(vec![1, 2, 3]).with_run().await;
    assert_eq!(out, 12);
    assert_eq!(run.flow, "sums_doubles");
    assert_eq!(run.parent_id, None);
    assert_eq!(run.history.kinds(), [Pending, Running, Completed]);
    assert_eq!(run.attempts, 1);
    assert!(run.subflow_runs.is_empty());
    assert_eq!(
        task_states(&run),
        [
            ("double", Completed),
            ("double", Completed),
            ("double", Completed)
        ]
    );
    for task_run in &run.task_runs {
        assert_eq!(task_run.flow_run_id, Some(run.id));
    }
    let mut ids: Vec<_> = run.task_runs.iter().map(|r| r.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    assert_eq!(run.task_runs_of("double").count(), 3);
    assert_eq!(run.task_runs_of("other").count(), 0);
}

#[flow(name = "strict-import")]
async fn strict_import(texts: Vec<&'static str>) -> Result<u32, String> {
    let mut total = 0;
    for t in texts {
        total += parse_number(t).await?;
    }
    Ok(total)
}

#[tokio::test]
async fn a_flow_whose_body_returns_err_fails_with_that_error() {
    let (out, run) = strict_import(vec!["4", "x", "5"]).with_run().await;
    let expected = "cannot parse \"x\": invalid digit found in string";
    assert_eq!(out, Err(expected.to_owned()));
    assert_eq!(run.flow, "strict-import");
    assert_eq!(run.history.kinds(), [Pending, Running, Failed]);
    assert_eq!(run.error(), Some(expected));
    assert_eq!(
        task_states(&run),
        [("parse_number", Completed), ("parse_number", Failed)]
    );
    assert_eq!(run.summary().headline(), format!("Failed: {expected}"));
}

#[flow]
async fn lenient_import(texts: Vec<&'static str>) -> u32 {
    let mut total = 0;
    for t in texts {
        total += parse_number(t).await.unwrap_or(0);
    }
    total
}

#[tokio::test]
async fn a_flow_that_handles_failed_task_runs_completes() {
    let (out, run) = lenient_import(vec!["4", "x", "5", "?"]).with_run().await;
    assert_eq!(out, 9);
    assert_eq!(run.history.kinds(), [Pending, Running, Completed]);
    assert_eq!(run.error(), None);
    assert_eq!(
        task_states(&run),
        [
            ("parse_number", Completed),
            ("parse_number", Failed),
            ("parse_number", Completed),
            ("parse_number", Failed)
        ]
    );
    assert_eq!(
        run.summary().headline(),
        "Completed — 2 task runs failed and were handled"
    );
    let counts: Vec<(StateKind, usize)> = run.task_run_counts().into_iter().collect();
    assert_eq!(counts, [(Completed, 2), (Failed, 2)]);
}

static FLOW_ATTEMPTS: AtomicU32 = AtomicU32::new(0);

#[flow(retries = 2, retry_delay = "1m")]
async fn retried_flow() -> Result<u32, String> {
    let n = FLOW_ATTEMPTS.fetch_add(1, Ordering::SeqCst) + 1;
    let doubled = double(n).await;
    if n < 3 {
        Err(format!("attempt {n} not good enough"))
    } else {
        Ok(doubled)
    }
}

#[tokio::test(start_paused = true)]
async fn a_flow_is_retried_and_keeps_the_task_runs_of_every_attempt() {
    let start = Instant::now();
    let (out, run) = retried_flow().with_run().await;
    assert_eq!(out, Ok(6));
    assert_eq!(start.elapsed(), Duration::from_secs(120));
    assert_eq!(run.attempts, 3);
    assert_eq!(
        run.history.kinds(),
        [
            Pending, Running, Retrying, Running, Retrying, Running, Completed
        ]
    );
    let messages: Vec<&str> = run.history.iter().map(State::message).collect();
    assert_eq!(
        messages,
        [
            "",
            "attempt 1/3",
            "attempt 1/3 failed: attempt 1 not good enough; retrying in 1m",
            "attempt 2/3",
            "attempt 2/3 failed: attempt 2 not good enough; retrying in 1m",
            "attempt 3/3",
            "",
        ]
    );
    assert_eq!(task_states(&run).len(), 3);
    assert!(run.task_runs.iter().all(|r| r.flow_run_id == Some(run.id)));
}

static RETRY_IF_FLOW_ATTEMPTS: AtomicU32 = AtomicU32::new(0);

#[flow(retries = 5, retry_if = |e: &String| !e.starts_with("fatal"))]
async fn flow_with_retry_if() -> Result<(), String> {
    let n = RETRY_IF_FLOW_ATTEMPTS.fetch_add(1, Ordering::SeqCst) + 1;
    if n < 2 {
        Err("transient".into())
    } else {
        Err(format!("fatal on attempt {n}"))
    }
}

#[tokio::test]
async fn retry_if_stops_a_flows_retries() {
    let (out, run) = flow_with_retry_if().with_run().await;
    assert_eq!(out, Err("fatal on attempt 2".to_owned()));
    assert_eq!(run.attempts, 2);
    assert_eq!(
        run.history.kinds(),
        [Pending, Running, Retrying, Running, Failed]
    );
}

#[task]
async fn sleepy(secs: u64) -> u64 {
    sleep(Duration::from_secs(secs)).await;
    secs
}

#[flow(timeout = "10s")]
async fn slow_flow() -> Result<u64, TimeoutError> {
    let quick = sleepy(2).await;
    let (a, b) = tokio::join!(sleepy(100), sleepy(200));
    Ok(quick + a + b)
}

#[tokio::test(start_paused = true)]
async fn a_flow_timeout_cancels_its_task_runs_in_flight() {
    let start = Instant::now();
    let (out, run) = slow_flow().with_run().await;
    assert_eq!(out, Err(TimeoutError::new(Duration::from_secs(10))));
    assert_eq!(start.elapsed(), Duration::from_secs(10));
    assert_eq!(run.history.kinds(), [Pending, Running, TimedOut]);
    assert_eq!(run.error(), Some("timed out after 10s"));
    assert_eq!(run.summary().headline(), "TimedOut: timed out after 10s");

    assert_eq!(run.task_runs.len(), 3);
    let quick = &run.task_runs[0];
    assert_eq!(quick.history.kinds(), [Pending, Running, Completed]);
    let timed_out_at = run.state().at;
    for cancelled in &run.task_runs[1..] {
        assert_eq!(cancelled.task, "sleepy");
        assert_eq!(cancelled.history.kinds(), [Pending, Running, Cancelled]);
        assert_eq!(
            cancelled.state().message(),
            "the task run was dropped before it finished"
        );
        assert_eq!(cancelled.state().at, timed_out_at);
        assert_eq!(cancelled.flow_run_id, Some(run.id));
    }
}

#[flow(retries = 1, retry_delay = "5s", timeout = "3s")]
async fn slow_flow_retried() -> anyhow::Result<u64> {
    Ok(sleepy(60).await)
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_flow_attempt_is_retried() {
    let start = Instant::now();
    let (out, run) = slow_flow_retried().with_run().await;
    assert_eq!(
        out.unwrap_err().downcast_ref::<TimeoutError>(),
        Some(&TimeoutError::new(Duration::from_secs(3)))
    );
    assert_eq!(start.elapsed(), Duration::from_secs(11));
    assert_eq!(run.attempts, 2);
    assert_eq!(
        run.history.kinds(),
        [Pending, Running, Retrying, Running, TimedOut]
    );
    assert_eq!(
        task_states(&run),
        [("sleepy", Cancelled), ("sleepy", Cancelled)]
    );
}

#[flow(name = "child-etl")]
async fn child_flow(x: u32) -> u32 {
    double(x).await + double(x + 1).await
}

#[flow(name = "grandchild")]
async fn grandchild_flow() -> u32 {
    double(100).await
}

#[flow(name = "child-with-grandchild")]
async fn child_with_grandchild() -> u32 {
    grandchild_flow().await + 1
}

#[flow(name = "parent-etl")]
async fn parent_flow() -> u32 {
    let a = child_flow(1).await;
    let b = double(10).await;
    let c = child_with_grandchild().await;
    a + b + c
}

#[tokio::test]
async fn subflows_are_child_runs_with_their_own_task_runs() {
    let (out, parent) = parent_flow().with_run().await;
    assert_eq!(out, 6 + 20 + 201);
    assert_eq!(parent.parent_id, None);
    assert_eq!(task_states(&parent), [("double", Completed)]);
    assert_eq!(parent.task_runs[0].flow_run_id, Some(parent.id));

    let names: Vec<&str> = parent.subflow_runs.iter().map(|s| &*s.flow).collect();
    assert_eq!(names, ["child-etl", "child-with-grandchild"]);

    let child = &parent.subflow_runs[0];
    assert_eq!(child.parent_id, Some(parent.id));
    assert_ne!(child.id, parent.id);
    assert_eq!(child.history.kinds(), [Pending, Running, Completed]);
    assert_eq!(
        task_states(child),
        [("double", Completed), ("double", Completed)]
    );
    assert!(
        child
            .task_runs
            .iter()
            .all(|r| r.flow_run_id == Some(child.id))
    );

    let middle = &parent.subflow_runs[1];
    assert_eq!(middle.parent_id, Some(parent.id));
    assert!(middle.task_runs.is_empty());
    let grandchild = &middle.subflow_runs[0];
    assert_eq!(grandchild.flow, "grandchild");
    assert_eq!(grandchild.parent_id, Some(middle.id));
    assert_eq!(grandchild.task_runs[0].flow_run_id, Some(grandchild.id));
}

#[tokio::test]
async fn a_subflow_called_with_with_run_is_still_recorded_in_its_parent() {
    #[flow(name = "observing-parent")]
    async fn observing_parent() -> (u32, FlowRunRecord) {
        child_flow(5).with_run().await
    }
    let ((out, child), parent) = observing_parent().with_run().await;
    assert_eq!(out, 22);
    assert_eq!(parent.subflow_runs, std::slice::from_ref(&child));
    assert_eq!(child.parent_id, Some(parent.id));
}

#[tokio::test]
async fn a_subflow_called_with_with_run_in_a_flow_awaited_plainly_gives_its_whole_record() {
    // The parent's record is read by no one, so it drops its task runs' records as they end;
    // the subflow's caller asked for the subflow's, with its task runs and its own subflow's.
    #[flow(name = "plain-parent")]
    async fn plain_parent() -> (u32, FlowRunRecord, FlowRunRecord) {
        let before = double(1).await;
        let (a, child) = child_flow(5).with_run().await;
        let (b, middle) = child_with_grandchild().with_run().await;
        (before + a + b, child, middle)
    }
    let ((out, child, middle), store) = flowcore::testing::isolated(plain_parent()).await;
    assert_eq!(out, 2 + 22 + 201);
    assert_eq!(
        task_states(&child),
        [("double", Completed), ("double", Completed)]
    );
    assert_eq!(
        task_states(&middle.subflow_runs[0]),
        [("double", Completed)]
    );
    // A task run the parent's caller did not ask about is in the store all the same.
    let stored = flowcore::testing::only_flow_run(&store);
    assert_eq!(stored.flow, "plain-parent");
    assert_eq!(task_states(&stored), [("double", Completed)]);
    assert_eq!(stored.subflow_runs.len(), 2);
    assert_eq!(stored.subflow_runs[0].task_runs.len(), 2);
}

#[flow]
async fn observes_its_task_run() -> flowcore::TaskRunRecord {
    let (out, record) = double(8).with_run().await;
    assert_eq!(out, 16);
    record
}

#[tokio::test]
async fn a_task_run_taken_with_with_run_is_still_recorded_in_its_flow() {
    let (task_run, run) = observes_its_task_run().with_run().await;
    assert_eq!(run.task_runs, std::slice::from_ref(&task_run));
    assert_eq!(task_run.flow_run_id, Some(run.id));
}

#[task]
async fn forever(label: &'static str) -> &'static str {
    std::future::pending::<()>().await;
    label
}

#[flow(name = "abandoned-child")]
async fn abandoned_child() -> u32 {
    let done = double(4).await;
    forever("stuck").await;
    done
}

#[flow(name = "impatient-parent")]
async fn impatient_parent() -> bool {
    let waited = tokio::time::timeout(Duration::from_secs(30), abandoned_child()).await;
    waited.is_err()
}

#[tokio::test(start_paused = true)]
async fn a_dropped_subflow_is_cancelled_with_its_task_runs_in_flight() {
    let (gave_up, parent) = impatient_parent().with_run().await;
    assert!(gave_up);
    assert_eq!(parent.history.kinds(), [Pending, Running, Completed]);
    let child = &parent.subflow_runs[0];
    assert_eq!(child.flow, "abandoned-child");
    assert_eq!(child.history.kinds(), [Pending, Running, Cancelled]);
    assert_eq!(
        child.state().message(),
        "the flow run was dropped before it finished"
    );
    assert_eq!(
        child.summary().headline(),
        "Cancelled: the flow run was dropped before it finished"
    );
    assert_eq!(
        task_states(child),
        [("double", Completed), ("forever", Cancelled)]
    );
    assert_eq!(child.duration(), Some(Duration::from_secs(30)));
}

static SUBMITTED_FINISHED: AtomicU32 = AtomicU32::new(0);

#[task]
async fn hour_long(i: u32) -> u32 {
    sleep(Duration::from_secs(3600)).await;
    SUBMITTED_FINISHED.fetch_add(1, Ordering::SeqCst);
    i
}

#[flow(name = "submits-a-hundred")]
async fn submits_a_hundred() -> u32 {
    let handles: Vec<_> = (0..100).map(|i| hour_long(i).submit()).collect();
    let mut total = 0;
    for handle in handles {
        total += handle.await;
    }
    total
}

#[flow(name = "gives-up-on-submitted")]
async fn gives_up_on_submitted() -> bool {
    let waited = tokio::time::timeout(Duration::from_secs(30), submits_a_hundred()).await;
    // Long enough for every hour-long run to finish, had it not been cancelled.
    sleep(Duration::from_secs(2 * 3600)).await;
    waited.is_err()
}

#[tokio::test(start_paused = true)]
async fn a_dropped_flow_run_cancels_the_task_runs_it_submitted() {
    let (gave_up, parent) = gives_up_on_submitted().with_run().await;
    assert!(gave_up);
    let child = &parent.subflow_runs[0];
    assert_eq!(child.history.kinds(), [Pending, Running, Cancelled]);
    assert_eq!(child.task_runs.len(), 100);
    for task_run in &child.task_runs {
        assert_eq!(task_run.history.kinds(), [Pending, Running, Cancelled]);
        assert!(
            task_run.state().at <= child.state().at,
            "a submitted run ends before its flow run"
        );
    }
    assert_eq!(SUBMITTED_FINISHED.load(Ordering::SeqCst), 0, "none ran on");

    // The store holds the same: every task run Cancelled, none Completed later.
    flowcore::Store::current().flush().await.unwrap();
    let stored = flowcore::Store::current()
        .flow_run(child.id)
        .unwrap()
        .unwrap();
    assert_eq!(stored.state().kind, Cancelled);
    assert_eq!(stored.task_run_counts().get(&Cancelled), Some(&100));
    assert_eq!(stored.task_runs.len(), 100);
}

#[flow(name = "select-parent")]
async fn select_parent() -> &'static str {
    tokio::select! {
        winner = forever("never") => winner,
        () = sleep(Duration::from_secs(5)) => "timer",
    }
}

#[tokio::test(start_paused = true)]
async fn a_task_run_losing_a_select_is_cancelled() {
    let (out, run) = select_parent().with_run().await;
    assert_eq!(out, "timer");
    assert_eq!(task_states(&run), [("forever", Cancelled)]);
    let task_run = &run.task_runs[0];
    assert_eq!(task_run.duration(), Some(Duration::from_secs(5)));
}

#[task(retries = 3, retry_delay = "1m")]
async fn always_failing_slowly() -> Result<(), String> {
    Err("down".into())
}

#[flow]
async fn gives_up_while_retrying() -> bool {
    tokio::time::timeout(Duration::from_secs(90), always_failing_slowly())
        .await
        .is_err()
}

#[tokio::test(start_paused = true)]
async fn a_task_run_dropped_while_waiting_to_retry_is_cancelled() {
    let (gave_up, run) = gives_up_while_retrying().with_run().await;
    assert!(gave_up);
    let task_run = &run.task_runs[0];
    assert_eq!(
        task_run.history.kinds(),
        [Pending, Running, Retrying, Running, Retrying, Cancelled]
    );
    assert_eq!(task_run.attempts, 2);
}

#[tokio::test]
async fn a_task_called_outside_any_flow_is_standalone() {
    let (out, run) = double(21).with_run().await;
    assert_eq!(out, 42);
    assert_eq!(run.flow_run_id, None);
}

#[flow]
async fn spawns_blocks() -> (u32, u32) {
    // `flowcore::spawn` carries the flow run into the block; plain `tokio::spawn` of a block
    // that calls a task does not: that call is made where no flow run is current.
    let kept = flowcore::spawn(async { double(1).await + double(2).await });
    let detached = tokio::spawn(async { double(50).await });
    (kept.await.unwrap(), detached.await.unwrap())
}

#[tokio::test]
async fn flowcore_spawn_keeps_a_block_in_the_flow_and_tokio_spawn_does_not() {
    let (out, run) = spawns_blocks().with_run().await;
    assert_eq!(out, (6, 100));
    assert_eq!(run.task_runs.len(), 2);
    assert!(run.task_runs.iter().all(|r| r.flow_run_id == Some(run.id)));
}

#[flow]
async fn spawns_calls() -> u32 {
    // A call made in the flow and spawned belongs to the flow.
    let handles: Vec<_> = (1..=3).map(|x| tokio::spawn(double(x))).collect();
    let mut total = 0;
    for h in handles {
        total += h.await.unwrap();
    }
    total
}

#[tokio::test]
async fn a_spawned_task_call_stays_in_the_flow_that_made_it() {
    let (out, run) = spawns_calls().with_run().await;
    assert_eq!(out, 12);
    assert_eq!(task_states(&run).len(), 3);
    assert!(run.task_runs.iter().all(|r| r.flow_run_id == Some(run.id)));
}

#[flow(name = "strict-parent", timeout = "45s")]
async fn strict_parent() -> Result<u32, TimeoutError> {
    Ok(abandoned_child().await)
}

#[tokio::test(start_paused = true)]
async fn a_flow_timeout_cancels_a_subflow_in_flight() {
    let (out, parent) = strict_parent().with_run().await;
    assert_eq!(out, Err(TimeoutError::new(Duration::from_secs(45))));
    assert_eq!(parent.history.kinds(), [Pending, Running, TimedOut]);
    let child = &parent.subflow_runs[0];
    assert_eq!(child.parent_id, Some(parent.id));
    assert_eq!(child.history.kinds(), [Pending, Running, Cancelled]);
    assert_eq!(
        task_states(child),
        [("double", Completed), ("forever", Cancelled)]
    );
    assert!(parent.summary().to_string().contains(&format!(
        "Subflow run '{}' for flow 'abandoned-child': Cancelled: the flow run was dropped before it finished",
        child.name
    )));
}
