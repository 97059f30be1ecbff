//! State hooks: which fire, in what order, with what arguments; a panicking hook is ignored.
//!
//! Every hook writes into one log; each test reads the entries of its own task or flow name.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use flowcore::StateKind::{self, *};
use flowcore::{RunInfo, RunKind, State, TimeoutError, Uuid, flow, task};

#[derive(Clone, Debug, PartialEq)]
struct Event {
    hook: &'static str,
    label: String,
    run_name: String,
    kind: RunKind,
    id: Uuid,
    flow_run_id: Option<Uuid>,
    attempt: u32,
    /// `None` for on_failure / on_completion, which get no old state.
    old: Option<StateKind>,
    new: StateKind,
    message: String,
    history_len: usize,
    tags: Vec<String>,
}

static LOG: Mutex<Vec<Event>> = Mutex::new(Vec::new());

fn log(hook: &'static str, run: &RunInfo, old: Option<&State>, new: &State) {
    // The hook's history ends with the new state.
    assert_eq!(run.history().last(), Some(new));
    LOG.lock().unwrap().push(Event {
        hook,
        label: run.task_or_flow_name().to_owned(),
        run_name: run.name().to_string(),
        kind: run.kind(),
        id: run.id(),
        flow_run_id: run.flow_run_id(),
        attempt: run.attempt(),
        old: old.map(|s| s.kind),
        new: new.kind,
        message: new.message().to_owned(),
        history_len: run.history().len(),
        tags: run.tags().iter().map(|t| t.to_string()).collect(),
    });
}

fn events(label: &str) -> Vec<Event> {
    LOG.lock()
        .unwrap()
        .iter()
        .filter(|e| e.label == label)
        .cloned()
        .collect()
}

/// `(hook, old, new)` of each event, the shape most tests compare.
fn transitions(label: &str) -> Vec<(&'static str, Option<StateKind>, StateKind)> {
    events(label)
        .into_iter()
        .map(|e| (e.hook, e.old, e.new))
        .collect()
}

fn on_state(run: &RunInfo, old: &State, new: &State) {
    log("state", run, Some(old), new);
}

fn second_on_state(run: &RunInfo, old: &State, new: &State) {
    log("state2", run, Some(old), new);
}

fn on_failure(run: &RunInfo, state: &State) {
    log("failure", run, None, state);
}

fn on_completion(run: &RunInfo, state: &State) {
    log("completion", run, None, state);
}

fn panicking_state_hook(_: &RunInfo, _: &State, new: &State) {
    panic!("state hook broke on {}", new.kind);
}

fn panicking_hook(_: &RunInfo, state: &State) {
    panic!("final hook broke on {}", state.kind);
}

static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);

#[task(
    retries = 1,
    tags = ["http", "critical"],
    on_state = on_state,
    on_failure = on_failure,
    on_completion = on_completion
)]
async fn hooked_flaky() -> Result<u32, String> {
    if FLAKY_CALLS.fetch_add(1, Ordering::SeqCst) == 0 {
        Err("first try fails".into())
    } else {
        Ok(5)
    }
}

#[tokio::test]
async fn on_state_sees_every_transition_then_on_completion_once() {
    let (out, run) = hooked_flaky().with_run().await;
    assert_eq!(out, Ok(5));
    assert_eq!(
        transitions("hooked_flaky"),
        [
            ("state", Some(Pending), Running),
            ("state", Some(Running), Retrying),
            ("state", Some(Retrying), Running),
            ("state", Some(Running), Completed),
            ("completion", None, Completed),
        ]
    );
    let events = events("hooked_flaky");
    let name = run.name().to_string();
    for e in &events {
        assert_eq!(e.run_name, name);
        assert_eq!(e.kind, RunKind::Task);
        assert_eq!(e.id, run.id);
        assert_eq!(e.flow_run_id, None);
        assert_eq!(e.tags, ["http", "critical"]);
    }
    let attempts: Vec<u32> = events.iter().map(|e| e.attempt).collect();
    assert_eq!(attempts, [1, 1, 2, 2, 2]);
    let lengths: Vec<usize> = events.iter().map(|e| e.history_len).collect();
    assert_eq!(lengths, [2, 3, 4, 5, 5]);
    assert_eq!(
        events[1].message,
        "attempt 1/2 failed: first try fails; retrying now"
    );
    assert_eq!(events[2].message, "attempt 2/2");
}

#[task(retries = 2, on_state = on_state, on_failure = on_failure, on_completion = on_completion)]
async fn hooked_failing() -> Result<(), String> {
    Err("still broken".into())
}

#[tokio::test]
async fn on_failure_fires_once_after_the_on_state_hooks() {
    let (out, run) = hooked_failing().with_run().await;
    assert_eq!(out, Err("still broken".to_owned()));
    let t = transitions("hooked_failing");
    assert_eq!(t.len(), 7);
    assert_eq!(
        &t[5..],
        [("state", Some(Running), Failed), ("failure", None, Failed),]
    );
    assert_eq!(t.iter().filter(|e| e.0 == "failure").count(), 1);
    assert_eq!(t.iter().filter(|e| e.0 == "completion").count(), 0);
    let failure = events("hooked_failing").pop().unwrap();
    assert_eq!(failure.message, "still broken");
    assert_eq!(failure.run_name, run.name().to_string());
    assert_eq!(failure.attempt, 3);
}

#[task(timeout = "1s", on_state = on_state, on_failure = on_failure, on_completion = on_completion)]
async fn hooked_slow() -> Result<(), TimeoutError> {
    tokio::time::sleep(Duration::from_secs(5)).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_timeout_counts_as_a_failure_for_the_hooks() {
    let _ = hooked_slow().await;
    assert_eq!(
        transitions("hooked_slow"),
        [
            ("state", Some(Pending), Running),
            ("state", Some(Running), TimedOut),
            ("failure", None, TimedOut),
        ]
    );
    assert_eq!(events("hooked_slow")[2].message, "timed out after 1s");
}

static CACHED_CALLS: AtomicU32 = AtomicU32::new(0);

#[task(cache_for = "1h", on_state = on_state, on_completion = on_completion)]
async fn hooked_cached(x: u32) -> u32 {
    CACHED_CALLS.fetch_add(1, Ordering::SeqCst);
    x * 3
}

#[tokio::test]
async fn a_cache_hit_is_a_completion() {
    // The cache persists in the run store between test runs: start from none.
    flowcore::cache::clear_task("hooked_cached").unwrap();
    assert_eq!(hooked_cached(914).await, 2742);
    assert_eq!(hooked_cached(914).await, 2742);
    assert_eq!(CACHED_CALLS.load(Ordering::SeqCst), 1);
    let events = events("hooked_cached");
    let t: Vec<_> = events.iter().map(|e| (e.hook, e.old, e.new)).collect();
    assert_eq!(
        t,
        [
            ("state", Some(Pending), Running),
            ("state", Some(Running), Completed),
            ("completion", None, Completed),
            ("state", Some(Pending), Cached),
            ("completion", None, Cached),
        ]
    );
    assert_eq!(events[3].message, "cache hit");
    assert_eq!(events[3].attempt, 0);
    assert_ne!(events[0].id, events[3].id);
}

#[task(on_state = on_state)]
async fn hooked_in_flow(x: u32) -> u32 {
    x + 1
}

#[flow(name = "hooked-child", on_state = on_state, on_completion = on_completion)]
async fn hooked_child() -> u32 {
    hooked_in_flow(1).await
}

#[flow(name = "hooked-parent", on_state = on_state, on_failure = on_failure)]
async fn hooked_parent() -> Result<u32, String> {
    let x = hooked_child().await;
    Err(format!("parent gave up at {x}"))
}

#[tokio::test]
async fn flow_hooks_get_the_flow_run_name_and_the_parent_id() {
    let (_, parent) = hooked_parent().with_run().await;
    let child = &parent.subflow_runs[0];

    let parent_events = events("hooked-parent");
    assert_eq!(
        parent_events
            .iter()
            .map(|e| (e.hook, e.old, e.new))
            .collect::<Vec<_>>(),
        [
            ("state", Some(Pending), Running),
            ("state", Some(Running), Failed),
            ("failure", None, Failed),
        ]
    );
    for e in &parent_events {
        assert_eq!(e.kind, RunKind::Flow);
        assert_eq!(e.run_name, parent.name);
        assert_eq!(e.id, parent.id);
        assert_eq!(e.flow_run_id, None);
        assert!(e.tags.is_empty());
    }
    assert_eq!(parent_events[2].message, "parent gave up at 2");

    let child_events = events("hooked-child");
    assert_eq!(
        child_events
            .iter()
            .map(|e| (e.hook, e.old, e.new))
            .collect::<Vec<_>>(),
        [
            ("state", Some(Pending), Running),
            ("state", Some(Running), Completed),
            ("completion", None, Completed),
        ]
    );
    for e in &child_events {
        assert_eq!(e.run_name, child.name);
        assert_eq!(e.id, child.id);
        assert_eq!(e.flow_run_id, Some(parent.id));
    }

    let task_events = events("hooked_in_flow");
    assert_eq!(task_events.len(), 2);
    for e in &task_events {
        assert_eq!(e.kind, RunKind::Task);
        assert_eq!(e.flow_run_id, Some(child.id));
        assert_eq!(e.run_name, child.task_runs[0].name().to_string());
    }
}

#[task(
    on_state = [panicking_state_hook, on_state, second_on_state],
    on_failure = [panicking_hook, on_failure],
    on_completion = [panicking_hook, on_completion]
)]
async fn hooked_with_broken_hooks(fail: bool) -> Result<&'static str, String> {
    if fail {
        Err("real error".into())
    } else {
        Ok("fine")
    }
}

#[tokio::test]
async fn a_panicking_hook_is_skipped_and_the_others_still_run_in_order() {
    let (out, run) = hooked_with_broken_hooks(false).with_run().await;
    assert_eq!(out, Ok("fine"));
    assert_eq!(run.history.kinds(), [Pending, Running, Completed]);
    let (out, run) = hooked_with_broken_hooks(true).with_run().await;
    assert_eq!(out, Err("real error".to_owned()));
    assert_eq!(run.history.kinds(), [Pending, Running, Failed]);
    assert_eq!(run.error(), Some("real error"));

    assert_eq!(
        transitions("hooked_with_broken_hooks"),
        [
            ("state", Some(Pending), Running),
            ("state2", Some(Pending), Running),
            ("state", Some(Running), Completed),
            ("state2", Some(Running), Completed),
            ("completion", None, Completed),
            ("state", Some(Pending), Running),
            ("state2", Some(Pending), Running),
            ("state", Some(Running), Failed),
            ("state2", Some(Running), Failed),
            ("failure", None, Failed),
        ]
    );
}

#[task(on_state = on_state, on_failure = on_failure, on_completion = on_completion)]
async fn hooked_forever() {
    std::future::pending::<()>().await;
}

#[tokio::test(start_paused = true)]
async fn a_dropped_run_fires_on_state_with_cancelled_and_no_final_hook() {
    let out = tokio::time::timeout(Duration::from_secs(1), hooked_forever()).await;
    assert!(out.is_err());
    let events = events("hooked_forever");
    assert_eq!(
        events
            .iter()
            .map(|e| (e.hook, e.old, e.new))
            .collect::<Vec<_>>(),
        [
            ("state", Some(Pending), Running),
            ("state", Some(Running), Cancelled),
        ]
    );
    assert_eq!(
        events[1].message,
        "the task run was dropped before it finished"
    );
}

#[task]
async fn unhooked_forever() {
    std::future::pending::<()>().await;
}

#[flow(name = "hooked-dropped-flow", on_state = on_state, on_failure = on_failure, on_completion = on_completion)]
async fn hooked_dropped_flow() {
    unhooked_forever().await;
}

#[tokio::test(start_paused = true)]
async fn a_dropped_flow_fires_on_state_with_cancelled() {
    let out = tokio::time::timeout(Duration::from_secs(1), hooked_dropped_flow()).await;
    assert!(out.is_err());
    let events = events("hooked-dropped-flow");
    assert_eq!(
        events
            .iter()
            .map(|e| (e.hook, e.old, e.new))
            .collect::<Vec<_>>(),
        [
            ("state", Some(Pending), Running),
            ("state", Some(Running), Cancelled),
        ]
    );
    assert_eq!(
        events[1].message,
        "the flow run was dropped before it finished"
    );
    assert_eq!(events[1].kind, RunKind::Flow);
}
