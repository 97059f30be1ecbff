//! Cancelling a deployment's flow run from outside (`Store::cancel_run`, which `flowcore runs
//! cancel` and the dashboard call): dropped in this process at once, in another process within
//! its next poll, ended at once when nobody runs it, and refused with the reason when it cannot
//! be dropped. On SQLite and PostgreSQL; across processes on SQLite.

#[macro_use]
mod support;

use std::future::IntoFuture as _;
use std::time::{Duration, Instant};

use flowcore::StateKind::*;
use flowcore::{CancelOutcome, Deployment, FlowRunRecord, Store, StoreError, Uuid, flow, task};
use support::backends::TestStore;
use support::{Running, child, env_path};

store_tests!(
    a_running_served_run_is_dropped_and_ends_cancelled_with_who_asked,
    a_run_nobody_has_started_is_cancelled_at_once_and_never_starts,
    runs_that_cannot_be_dropped_are_refused_with_the_reason,
    a_run_cancelling_when_its_process_died_ends_cancelled_not_crashed,
);

#[task]
async fn sleepy_step() -> u32 {
    println!("SLEEPING");
    tokio::time::sleep(Duration::from_secs(3600)).await;
    1
}

#[flow]
async fn sleepy() -> u32 {
    sleepy_step().await
}

/// Serves `sleeper` on `store` until the returned sender is dropped or sent to.
fn serve_sleeper(
    store: &Store,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = flowcore::serve([Deployment::new("sleeper", sleepy)]).with_shutdown(async {
        let _ = stopped.await;
    });
    let store = store.clone();
    let handle = tokio::spawn(async move {
        store.scope(serving.into_future()).await.unwrap();
    });
    (stop, handle)
}

async fn request(store: &Store) -> flowcore::store::RequestedRun {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store.request_run("sleeper", &[]) {
            Ok(run) => return run,
            Err(StoreError::UnknownDeployment { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
}

async fn wait_for(
    store: &Store,
    id: Uuid,
    what: &str,
    done: impl Fn(&FlowRunRecord) -> bool,
) -> FlowRunRecord {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(run) = store.flow_run(id).unwrap()
            && done(&run)
        {
            return run;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_running_served_run_is_dropped_and_ends_cancelled_with_who_asked(ts: &TestStore) {
    let store = ts.store();
    let (stop, serving) = serve_sleeper(store);
    let requested = request(store).await;
    // Its task run is in the store once the flow run's record lists it: read the rows.
    wait_for(store, requested.id, "the flow run Running", |r| {
        r.state().kind == Running
    })
    .await;
    wait_for_task_running(ts, requested.id).await;

    let outcome = store.cancel_run(&requested.name, "ada@build").unwrap();
    assert_eq!(outcome, CancelOutcome::Cancelling);
    let run = wait_for(store, requested.id, "Cancelled", |r| r.state().is_final()).await;
    assert_eq!(
        run.history.kinds(),
        [Scheduled, Pending, Running, Cancelling, Cancelled]
    );
    assert_eq!(run.history[3].message(), "cancel requested by ada@build");
    assert_eq!(run.state().message(), "cancelled by ada@build");
    let task = ts
        .reopen()
        .flow_run(requested.id)
        .unwrap()
        .unwrap()
        .task_runs;
    assert_eq!(task.len(), 1);
    assert_eq!(task[0].history.kinds(), [Pending, Running, Cancelled]);

    // Once it ended, a second cancel is refused with its state.
    let again = store.cancel_run(&requested.name, "ada@build").unwrap_err();
    assert!(
        again.to_string().contains("it already ended: Cancelled"),
        "{again}"
    );
    let _ = stop.send(());
    serving.await.unwrap();
}

/// The flow run's task run is `Running` in the store.
async fn wait_for_task_running(ts: &TestStore, id: Uuid) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let run = ts.reopen().flow_run(id).unwrap();
        if let Some(run) = run
            && run.task_runs.iter().any(|t| t.state().kind == Running)
        {
            return;
        }
        assert!(Instant::now() < deadline, "the task run never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_run_nobody_has_started_is_cancelled_at_once_and_never_starts(ts: &TestStore) {
    let store = ts.store();
    // Served once, so the deployment is known; then no process serves it.
    let (stop, serving) = serve_sleeper(store);
    let first = request(store).await;
    store.cancel_run(&first.name, "setup").unwrap();
    let _ = stop.send(());
    serving.await.unwrap();

    let requested = store.request_run("sleeper", &[]).unwrap();
    let outcome = store
        .cancel_run(&requested.id.to_string(), "ada@build")
        .unwrap();
    assert_eq!(outcome, CancelOutcome::Cancelled);
    let run = store.flow_run(requested.id).unwrap().unwrap();
    assert_eq!(run.history.kinds(), [Scheduled, Cancelled]);
    assert_eq!(
        run.state().message(),
        "cancelled by ada@build before it started"
    );

    // A process serving the deployment now does not start it.
    let (stop, serving) = serve_sleeper(store);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let run = store.flow_run(requested.id).unwrap().unwrap();
    assert_eq!(run.history.kinds(), [Scheduled, Cancelled]);
    let _ = stop.send(());
    serving.await.unwrap();
}

#[flow]
async fn plain() -> u32 {
    1
}

#[flow]
async fn parent() -> u32 {
    plain().await
}

async fn runs_that_cannot_be_dropped_are_refused_with_the_reason(ts: &TestStore) {
    let store = ts.store();
    let (_, run) = store.scope(parent().with_run()).await;
    let refused = |run: &str| match store.cancel_run(run, "ada") {
        Err(StoreError::CannotCancel { reason, .. }) => reason,
        other => panic!("{other:?}"),
    };
    assert_eq!(refused(&run.name), "it already ended: Completed");
    assert!(refused(&run.subflow_runs[0].id.to_string()).starts_with("it is a subflow run"),);
    match store.cancel_run("no-such-run", "ada") {
        Err(StoreError::UnknownRun { .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_run_a_program_awaits_itself_is_refused() {
    let store = Store::memory();
    let id = std::sync::Arc::new(std::sync::Mutex::new(None));
    let seen = std::sync::Arc::clone(&id);
    let hooks = flowcore::RunHooks::new().on_state(move |run, _, new| {
        if new.kind == Running && run.kind() == flowcore::RunKind::Flow {
            *seen.lock().unwrap() = Some(run.id());
        }
    });
    let scoped = store.clone();
    let handle = tokio::spawn(async move { scoped.scope(hooks.scope(sleepy())).await });
    while id.lock().unwrap().is_none() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let id = id.lock().unwrap().unwrap();
    match store.cancel_run(&id.to_string(), "ada") {
        Err(StoreError::CannotCancel { reason, .. }) => {
            assert!(
                reason.starts_with("it is not a deployment's run"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    handle.abort();
}

// ---------------------------------------------------------------------------------------------
// Across processes: the run is served by a child; this process asks, the child's poll drops it.

#[tokio::test]
#[ignore = "run as a child process by the tests of tests/cancel.rs"]
async fn child_serves_sleeper() {
    let Some(path) = env_path("CANCEL_STORE") else {
        return;
    };
    Store::sqlite(&path).unwrap().install().unwrap();
    println!("SERVING");
    flowcore::serve([Deployment::new("sleeper", sleepy)])
        .into_future()
        .await
        .unwrap();
}

/// A run asked to cancel whose process died before its poll dropped it: the process that finds
/// the dead one ends it `Cancelled`, as asked, not `Crashed`. The dead process is made by hand
/// (on another host, its heartbeat stopped at the epoch), its run `Cancelling`.
async fn a_run_cancelling_when_its_process_died_ends_cancelled_not_crashed(ts: &TestStore) {
    let store = ts.store();
    store.flush().await.unwrap();
    let process = Uuid::from_u128(0x0199_0000_0000_7000_8000_0000_0000_00c1);
    let run = Uuid::from_u128(0x0199_0000_0000_7000_8000_0000_0000_00c2);
    ts.long_dead_process(process);
    ts.execute(
        "INSERT INTO flow_runs (id, name, flow, state, attempts, created_at, process_id, deployment)
         VALUES ($1, 'asked-to-stop', 'sleepy', 'Cancelling', 1, 1, $2, 'sleeper')",
        &[run.as_bytes(), process.as_bytes()],
    );
    ts.execute(
        "INSERT INTO state_rows (run_id, seq, kind, at) VALUES ($1, 0, 'Running', 1)",
        &[run.as_bytes()],
    );
    ts.execute(
        "INSERT INTO state_rows (run_id, seq, kind, at, message)
         VALUES ($1, 1, 'Cancelling', 2, 'cancel requested by ada@build')",
        &[run.as_bytes()],
    );
    // A process that opens the store to write marks the dead process's runs.
    let opened = ts.reopen();
    let ended = opened.flow_run(run).unwrap().unwrap();
    assert_eq!(ended.history.kinds(), [Running, Cancelling, Cancelled]);
    assert_eq!(
        ended.state().message(),
        "cancelled by ada@build (its process stopped before it could drop the run)"
    );
    assert_eq!(
        ts.count(
            "SELECT COUNT(*) FROM state_rows WHERE run_id = $1 AND kind = 'Cancelled'",
            &[run.as_bytes()]
        ),
        1,
        "written, not only shown"
    );
}

/// A child process serving `sleeper` on a SQLite store in `dir`, and a run of it requested by
/// hand whose task run is `Running` there.
fn sleeper_running_in_a_child(
    dir: &std::path::Path,
    rt: &tokio::runtime::Runtime,
) -> (Running, Store, flowcore::store::RequestedRun) {
    let path = dir.join("flowcore.db");
    let mut serving = Running::spawn(&mut child(
        "child_serves_sleeper",
        [("CANCEL_STORE", path.as_os_str())],
    ));
    serving.wait_for_line("SERVING");
    let store = Store::sqlite(&path).unwrap();
    let ts = TestStore::at_path(&path);
    let requested = rt.block_on(async {
        let requested = request(&store).await;
        serving.wait_for_line("SLEEPING");
        wait_for_task_running(&ts, requested.id).await;
        requested
    });
    (serving, store, requested)
}

/// A run going in a process that was killed: cancelling it ends it `Cancelled` at once (its
/// process cannot drop it), with who asked, and none of its task runs is left going.
#[test]
fn a_run_whose_process_was_killed_is_cancelled_at_once() {
    let dir = support::tempdir();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (serving, store, requested) = sleeper_running_in_a_child(dir.path(), &rt);
    let _ = serving.kill();
    {
        let outcome = store.cancel_run(&requested.name, "ada@build").unwrap();
        assert_eq!(outcome, CancelOutcome::Cancelled);
        let run = store.flow_run(requested.id).unwrap().unwrap();
        assert_eq!(
            run.history.kinds(),
            [Scheduled, Pending, Running, Cancelled]
        );
        assert_eq!(
            run.state().message(),
            "cancelled by ada@build after its process had stopped"
        );
        assert_eq!(run.task_runs.len(), 1);
        assert!(
            run.task_runs[0].state().is_final(),
            "{:?}",
            run.task_runs[0].history.kinds()
        );
    }
}

#[test]
fn a_run_served_by_another_process_is_dropped_within_its_poll() {
    let dir = support::tempdir();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (serving, store, requested) = sleeper_running_in_a_child(dir.path(), &rt);
    rt.block_on(async {
        let asked = Instant::now();
        let outcome = store.cancel_run(&requested.name, "ada@build").unwrap();
        assert_eq!(outcome, CancelOutcome::Cancelling);
        assert_eq!(
            store.flow_run(requested.id).unwrap().unwrap().state().kind,
            Cancelling
        );
        let run = wait_for(&store, requested.id, "Cancelled", |r| r.state().is_final()).await;
        let took = asked.elapsed();
        // Noticed by the serving process's poll (twice a second), not by chance later.
        assert!(took < Duration::from_secs(3), "dropped after {took:?}");
        assert_eq!(
            run.history.kinds(),
            [Scheduled, Pending, Running, Cancelling, Cancelled]
        );
        assert_eq!(run.state().message(), "cancelled by ada@build");
        assert_eq!(
            run.task_runs[0].history.kinds(),
            [Pending, Running, Cancelled]
        );
    });
    let _ = serving.kill();
}
