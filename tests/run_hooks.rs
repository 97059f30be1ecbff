//! Hooks beyond `on_state`/`on_failure`/`on_completion`: `on_cancellation`, `on_crashed` (fired
//! by the process that marks a dead process's runs, across real processes here), and
//! [`RunHooks`]: closures holding state built at run time, installed or scoped.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowcore::StateKind::*;
use flowcore::{RunHooks, RunInfo, RunKind, State, Store, flow, task};
use support::{Running, child, env_path};

static CANCELLED: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn note_cancelled(run: &RunInfo, state: &State) {
    CANCELLED.lock().unwrap().push(format!(
        "{} {} {}",
        run.task_or_flow_name(),
        state.kind,
        state.message()
    ));
}

#[task(on_cancellation = note_cancelled)]
async fn slow() -> Result<(), flowcore::TimeoutError> {
    tokio::time::sleep(Duration::from_secs(60)).await;
    Ok(())
}

#[flow(timeout = "1s", on_cancellation = note_cancelled)]
async fn impatient() -> Result<(), flowcore::TimeoutError> {
    slow().await
}

#[flow(on_cancellation = note_cancelled)]
async fn dropped() {
    let _ = slow().await;
}

#[tokio::test(start_paused = true)]
async fn on_cancellation_fires_once_for_a_run_whose_future_is_dropped() {
    let store = Store::memory();
    // The flow's timeout drops its task run: Cancelled; the flow run itself times out.
    let (out, run) = store.scope(impatient().with_run()).await;
    assert!(out.is_err());
    assert_eq!(run.state().kind, TimedOut);
    assert_eq!(
        run.task_runs[0].history.kinds(),
        [Pending, Running, Cancelled]
    );
    // Dropping the flow run's future cancels it and its task run.
    let call = store.scope(dropped());
    let _ = tokio::time::timeout(Duration::from_secs(1), call).await;
    let seen = CANCELLED.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen[0].starts_with("slow Cancelled"), "{seen:?}");
    assert!(seen[1].starts_with("slow Cancelled"), "{seen:?}");
    assert!(seen[2].starts_with("dropped Cancelled"), "{seen:?}");
}

#[task]
async fn flaky(fail: bool) -> Result<u32, String> {
    if fail { Err("boom".into()) } else { Ok(1) }
}

#[flow]
async fn mixed() -> Result<u32, String> {
    let ok = flaky(false).await?;
    Ok(ok + flaky(true).await.unwrap_or(0))
}

#[tokio::test]
async fn closures_with_captured_state_see_the_runs_of_their_scope_only() {
    let failures = Arc::new(Mutex::new(Vec::new()));
    let transitions = Arc::new(AtomicUsize::new(0));
    let (f, t) = (Arc::clone(&failures), Arc::clone(&transitions));
    let hooks = RunHooks::new()
        .on_failure(move |run, state| {
            f.lock()
                .unwrap()
                .push(format!("{} {}", run.task_or_flow_name(), state.message()));
        })
        .on_state(move |_, _, _| {
            t.fetch_add(1, Ordering::SeqCst);
        });
    let store = Store::memory();
    let (out, run) = store.scope(hooks.scope(mixed().with_run())).await;
    assert_eq!(out, Ok(1));
    assert_eq!(run.state().kind, Completed);
    assert_eq!(*failures.lock().unwrap(), ["flaky boom"]);
    // Flow: Running, Completed; each task: Running, its final state.
    assert_eq!(transitions.load(Ordering::SeqCst), 6);
    // Outside the scope, the hooks are not called.
    store.scope(mixed()).await.unwrap();
    assert_eq!(failures.lock().unwrap().len(), 1);
    assert_eq!(transitions.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn nested_scopes_add_their_hooks_to_the_outer_ones() {
    let outer = Arc::new(AtomicUsize::new(0));
    let inner = Arc::new(AtomicUsize::new(0));
    let (o, i) = (Arc::clone(&outer), Arc::clone(&inner));
    let outer_hooks = RunHooks::new().on_completion(move |run, _| {
        if run.kind() == RunKind::Flow {
            o.fetch_add(1, Ordering::SeqCst);
        }
    });
    let inner_hooks = RunHooks::new().on_completion(move |run, _| {
        if run.kind() == RunKind::Flow {
            i.fetch_add(1, Ordering::SeqCst);
        }
    });
    let store = Store::memory();
    store
        .scope(outer_hooks.scope(async {
            mixed().await.unwrap();
            inner_hooks.scope(mixed()).await.unwrap();
        }))
        .await;
    assert_eq!(outer.load(Ordering::SeqCst), 2);
    assert_eq!(inner.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------------------------------------
// on_crashed, across processes: a child hangs in a task and is killed; this process marks its
// runs Crashed on opening the store, and fires the hooks it knows.

static CRASHED: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn note_crashed(run: &RunInfo, state: &State) {
    CRASHED.lock().unwrap().push(format!(
        "static {:?} {} {} {:?}",
        run.kind(),
        run.task_or_flow_name(),
        state.kind,
        run.history().iter().map(|s| s.kind).collect::<Vec<_>>()
    ));
}

#[task(on_crashed = note_crashed, task_run_name = "stuck-{n}")]
async fn stuck(n: u32) {
    println!("STUCK {n}");
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

#[flow(on_crashed = note_crashed, tags = ["nightly"])]
async fn hangs() {
    stuck(7).await;
}

#[tokio::test]
#[ignore = "run as a child process by on_crashed_fires_in_the_process_that_marks_the_runs"]
async fn child_hangs() {
    let Some(path) = env_path("HOOKS_STORE") else {
        return;
    };
    Store::sqlite(&path).unwrap().install().unwrap();
    hangs().await;
}

#[test]
fn on_crashed_fires_in_the_process_that_marks_the_runs() {
    let dir = support::tempdir();
    let path = dir.path().join("flowcore.db");
    let mut running = Running::spawn(&mut child(
        "child_hangs",
        [("HOOKS_STORE", path.as_os_str())],
    ));
    running.wait_for_line("STUCK 7");
    // The task run's Running state is committed before its body runs.
    std::thread::sleep(Duration::from_millis(300));
    running.kill_leaving_a_zombie();

    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    RunHooks::new()
        .on_crashed(move |run, state| {
            s.lock().unwrap().push(format!(
                "closure {:?} {} {} {}",
                run.kind(),
                run.name(),
                state.kind,
                run.tags().join(",")
            ));
        })
        .install();
    // This process knows the static hooks of the flow and the task once it has called them.
    drop(hangs());
    drop(stuck(0));

    let store = Store::sqlite(&path).unwrap();
    let _ = running.finish_unchecked();
    assert_eq!(store.mark_crashed().unwrap(), 0, "marked once, on opening");
    let mut closure = seen.lock().unwrap().clone();
    closure.sort();
    assert_eq!(closure.len(), 2, "{closure:?}");
    assert!(closure[0].starts_with("closure Flow "), "{closure:?}");
    assert!(closure[0].ends_with(" Crashed nightly"), "{closure:?}");
    assert_eq!(closure[1], "closure Task stuck-7 Crashed nightly");
    let mut fns = CRASHED.lock().unwrap().clone();
    fns.sort();
    assert_eq!(
        fns,
        [
            "static Flow hangs Crashed [Pending, Running, Crashed]",
            "static Task stuck Crashed [Pending, Running, Crashed]",
        ]
    );
}
