//! A deployment's flow run paused for input outlives its process (`flowcore::pause`): killed
//! or stopped while it waits, the run stays `Paused` (not `Crashed`, not `Cancelled`), input
//! can be given meanwhile, and the next process serving the deployment takes it up where it
//! was: its completed task runs' outputs are reused, the pauses it passed keep their answers,
//! and the pause it waited at takes the input given. On SQLite and PostgreSQL.
//!
//! Workers are this test binary again (`child_worker`), serving one deployment, `approve-load`.

#[macro_use]
mod support;

use std::ffi::OsStr;
use std::path::Path;

use flowcore::StateKind::*;
use flowcore::pause::{self, PauseError};
use flowcore::{Deployment, FlowRunRecord, Store, Uuid, flow, task};
use support::backends::TestStore;
use support::{Running, child, env_path, wait_until};

store_tests!(
    a_killed_workers_paused_run_stays_paused_and_the_next_worker_takes_it_up,
    a_stopped_workers_paused_run_is_let_go_at_once_and_taken_up_by_the_next,
);

/// Appends a line to the `EFFECTS` file: how often it ran, across processes.
#[task]
async fn extract() -> u32 {
    support::append_line(&env_path("EFFECTS").expect("EFFECTS"), "extract");
    7
}

#[task]
async fn load(rows: u32, table: String) -> String {
    format!("{rows} rows into {table}")
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Approval {
    ok: bool,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Table {
    name: String,
}

#[flow]
async fn approve_load() -> Result<String, PauseError> {
    let rows = extract().await;
    let approval: Approval = pause::pause("approve the load?").await?;
    if !approval.ok {
        return Ok("skipped".to_owned());
    }
    let table: Table = pause::pause("which table?").await?;
    Ok(load(rows, table.name).await)
}

/// A worker: serves `approve-load` on the `WORKER_STORE` it is given until the `STOP` file
/// appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by the tests of tests/pause_restart.rs"]
async fn child_worker() {
    let Some(target) = std::env::var_os("WORKER_STORE") else {
        return;
    };
    Store::open(target).unwrap().install().unwrap();
    flowcore::init_logging();
    let stop = env_path("STOP").expect("STOP");
    let stopped = async move {
        while !stop.exists() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    println!("WORKER_READY");
    let served = flowcore::serve([Deployment::new("approve-load", approve_load)])
        .with_shutdown(stopped)
        .await;
    match served {
        Ok(()) => println!("WORKER_STOPPED"),
        Err(e) => println!("WORKER_FAILED {e}"),
    }
}

fn worker(ts: &TestStore, dir: &Path) -> Running {
    let envs = [
        ("WORKER_STORE", ts.target()),
        ("STOP", dir.join("stop").as_os_str()),
        ("EFFECTS", dir.join("effects").as_os_str()),
        ("NO_COLOR", OsStr::new("1")),
    ]
    .map(|(k, v)| (k, v.to_owned()));
    let mut running = Running::spawn(&mut child("child_worker", envs));
    running.wait_for_line("WORKER_READY");
    running
}

/// Waits until run `id` asks `question` and is `Paused` (with a process of its own, or let go:
/// `held`); returns how its history reads then.
fn wait_for_pause(ts: &TestStore, id: Uuid, question: &str, held: bool) -> FlowRunRecord {
    wait_until(&format!("the run to pause at {question:?}"), None, || {
        let store = Store::open_existing(ts.target()).unwrap();
        let asked = store.input_request(&id.to_string()).unwrap()?;
        let run = store.flow_run(id).unwrap()?;
        let owned = ts.count(
            "SELECT COUNT(*) FROM flow_runs WHERE id = $1 AND process_id IS NOT NULL",
            &[id.as_bytes()],
        ) == 1;
        (asked.question == question && run.state().kind == Paused && owned == held).then_some(run)
    })
}

/// Requests a run of `approve-load` once the worker has registered it.
fn request(ts: &TestStore) -> Uuid {
    wait_until("the deployment to be served", None, || {
        ts.store().request_run("approve-load", &[]).ok()
    })
    .id
}

fn wait_for_end(ts: &TestStore, id: Uuid) -> FlowRunRecord {
    wait_until("the run to end", None, || {
        Store::open_existing(ts.target())
            .unwrap()
            .flow_run(id)
            .unwrap()
            .filter(|r| r.state().is_final())
    })
}

fn effects(dir: &Path) -> Vec<String> {
    support::lines(&dir.join("effects"))
}

/// What the run's task runs ended in, in call order.
fn task_states(record: &FlowRunRecord) -> Vec<(String, flowcore::StateKind)> {
    record
        .task_runs
        .iter()
        .map(|t| (t.task.to_string(), t.state().kind))
        .collect()
}

async fn a_killed_workers_paused_run_stays_paused_and_the_next_worker_takes_it_up(ts: &TestStore) {
    let dir = support::tempdir();
    let first = worker(ts, dir.path());
    let id = request(ts);
    wait_for_pause(ts, id, "approve the load?", true);
    ts.store()
        .give_input(&id.to_string(), r#"{"ok": true}"#, "ada")
        .unwrap();
    wait_for_pause(ts, id, "which table?", true);
    first.kill();

    // A reader, which never writes, shows the dead worker's paused run Paused, not Crashed.
    let seen = Store::open_existing(ts.target())
        .unwrap()
        .flow_run(id)
        .unwrap()
        .unwrap();
    assert_eq!(seen.state().kind, Paused, "{:#?}", seen.history);
    // A process that writes finds the worker gone: the run stays Paused, its own no more.
    ts.store().mark_crashed().unwrap();
    let paused = wait_for_pause(ts, id, "which table?", false);
    assert_eq!(
        paused.history.kinds(),
        [Scheduled, Pending, Running, Paused, Running, Paused, Paused],
        "{:#?}",
        paused.history
    );
    let let_go = paused.state().message();
    assert!(
        let_go.contains("stopped") && let_go.contains("deployment 'approve-load' to take up"),
        "{let_go}"
    );
    // Input given while no process serves the deployment waits for the next one.
    ts.reopen()
        .give_input(&id.to_string(), r#"{"name": "sales"}"#, "grace")
        .unwrap();

    let second = worker(ts, dir.path());
    let record = wait_for_end(ts, id);
    std::fs::write(dir.path().join("stop"), "stop").unwrap();
    let out = second.finish();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("paused for input when its process stopped"),
        "{stdout}"
    );

    assert_eq!(record.state().kind, Completed, "{:#?}", record.history);
    assert_eq!(
        record.history.kinds(),
        [
            Scheduled, Pending, Running, Paused, Running, Paused, Paused, Pending, Running, Paused,
            Running, Completed
        ],
        "{:#?}",
        record.history
    );
    assert_eq!(
        record.history[7].message.as_deref(),
        Some("resumed after Paused, in this process")
    );
    assert_eq!(
        record.history[10].message.as_deref(),
        Some("resumed with input from grace")
    );
    // The first pause kept its answer (it was not asked again); extract ran once, its output
    // reused by the second process.
    assert_eq!(effects(dir.path()), ["extract"]);
    assert_eq!(
        task_states(&record),
        [
            ("extract".to_owned(), Completed),
            ("extract".to_owned(), Cached),
            ("load".to_owned(), Completed),
        ]
    );
    assert_eq!(
        ts.count(
            "SELECT COUNT(*) FROM flow_runs WHERE id = $1 AND output = '\"7 rows into sales\"'",
            &[id.as_bytes()],
        ),
        1,
        "the flow's output is the load's"
    );
    assert_eq!(
        ts.count(
            "SELECT COUNT(*) FROM run_inputs WHERE flow_run_id = $1 AND answered_at IS NOT NULL",
            &[id.as_bytes()],
        ),
        2,
        "both pauses answered, each once"
    );
}

async fn a_stopped_workers_paused_run_is_let_go_at_once_and_taken_up_by_the_next(ts: &TestStore) {
    let dir = support::tempdir();
    let first = worker(ts, dir.path());
    let id = request(ts);
    wait_for_pause(ts, id, "approve the load?", true);
    // Stopped, the worker does not wait out its grace period (30 s) for a run that waits for
    // input: it lets the run go at once, Paused.
    let stopped_at = std::time::Instant::now();
    std::fs::write(dir.path().join("stop"), "stop").unwrap();
    let out = first.finish();
    let took = stopped_at.elapsed();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("WORKER_STOPPED"),
        "{}",
        support::show(&out)
    );
    assert!(
        took < std::time::Duration::from_secs(25),
        "stopping took {took:?}"
    );
    let paused = wait_for_pause(ts, id, "approve the load?", false);
    assert_eq!(
        paused.history.kinds(),
        [Scheduled, Pending, Running, Paused, Paused],
        "{:#?}",
        paused.history
    );
    assert!(
        paused
            .state()
            .message()
            .starts_with("its server stopped while it waited for input"),
        "{:?}",
        paused.state()
    );

    // The next worker takes it up and waits at the same pause, its question unchanged; the
    // answer given then goes to it.
    std::fs::remove_file(dir.path().join("stop")).unwrap();
    let second = worker(ts, dir.path());
    // Taken up: the run goes Pending, Running, and Paused again at the same question (input
    // given in between is refused, "it is Pending, not Paused", and can be given again).
    wait_until("the run to pause again in the second worker", None, || {
        let run = Store::open_existing(ts.target())
            .ok()?
            .flow_run(id)
            .ok()??;
        (run.history.kinds().len() == 8 && run.state().kind == Paused).then_some(())
    });
    ts.store()
        .give_input(&id.to_string(), r#"{"ok": false}"#, "ada")
        .unwrap();
    let record = wait_for_end(ts, id);
    std::fs::write(dir.path().join("stop"), "stop").unwrap();
    second.finish();
    assert_eq!(record.state().kind, Completed, "{:#?}", record.history);
    assert_eq!(
        record.history.kinds(),
        [
            Scheduled, Pending, Running, Paused, Paused, Pending, Running, Paused, Running,
            Completed
        ],
        "{:#?}",
        record.history
    );
    assert_eq!(effects(dir.path()), ["extract"]);
    assert_eq!(
        ts.count(
            "SELECT COUNT(*) FROM run_inputs WHERE flow_run_id = $1",
            &[id.as_bytes()],
        ),
        1,
        "one pause, asked once"
    );
}
