//! Ctrl-C (SIGINT) or SIGTERM to a plain flow program: its unfinished runs end `Cancelled` in
//! the store, naming the signal, and it exits 130 or 143, as the shell reports those signals.
//! A program that handles the signals itself says so with `handle_interrupts(false)`, and
//! flowcore then leaves them alone. A program that ends by itself records that its process
//! ended, as one interrupted does.
//!
//! Children are this test binary again (see tests/support). The tests of flowcore's own
//! handler run on SQLite and on PostgreSQL (see `support::backends`).

#[macro_use]
mod support;

use std::ffi::OsStr;
use std::process::Command;

use flowcore::{Store, flow, task};
use support::backends::{Kind, TestStore};
use support::{Running, child, show};

store_tests!(
    ctrl_c_ends_the_programs_runs_cancelled_and_exits_130,
    sigterm_ends_the_programs_runs_cancelled_and_exits_143,
    a_program_that_returns_records_that_its_process_ended,
);

#[task]
async fn forever() {
    std::future::pending::<()>().await;
}

#[task]
async fn quick(i: u32) -> u32 {
    i
}

#[flow(name = "interrupted")]
async fn interrupted() {
    quick(1).await;
    println!("WAITING");
    forever().await;
}

/// Runs `interrupted` on the store at `INTERRUPT_STORE` (a path or a URL); with
/// `OWN_HANDLER`, the program handles Ctrl-C itself (printing `OWN_HANDLER` and exiting 0) and
/// turns flowcore's off.
#[tokio::test]
#[ignore = "run as a child process by the tests of tests/interrupt.rs"]
async fn child_interrupted() {
    let Some(target) = std::env::var_os("INTERRUPT_STORE") else {
        return;
    };
    if std::env::var_os("OWN_HANDLER").is_some() {
        assert!(flowcore::runtime::handle_interrupts(false));
        tokio::spawn(async {
            tokio::signal::ctrl_c().await.unwrap();
            println!("OWN_HANDLER");
            std::process::exit(0);
        });
    }
    Store::open(target).unwrap().install().unwrap();
    if std::env::var_os("RETURN").is_some() {
        assert_eq!(quick(7).await, 7);
        return;
    }
    interrupted().await;
}

fn signal(running: &Running, name: &str) {
    let pid = running.child.id().to_string();
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Starts the child on `ts`, waits until its task run hangs with its states committed, and
/// sends it `name`; returns what it printed.
fn interrupt(ts: &TestStore, name: &str, own_handler: bool) -> std::process::Output {
    let mut cmd = child("child_interrupted", [("INTERRUPT_STORE", ts.target())]);
    if own_handler {
        cmd.env("OWN_HANDLER", "1");
    }
    let mut running = Running::spawn(&mut cmd);
    running.wait_for_line("WAITING");
    support::wait_until(
        "the hanging task run to be Running in the store",
        None,
        || {
            (ts.count(
                "SELECT COUNT(*) FROM task_runs WHERE state = 'Running'",
                &[],
            ) == 1)
                .then_some(())
        },
    );
    signal(&running, name);
    running.finish_unchecked()
}

/// Each run of the store, `(flow or task, state, message of the last state)`, the flow run
/// first and its task runs in the order they were made, as the store reads them back.
fn runs(target: &OsStr) -> Vec<(String, String, Option<String>)> {
    let store = Store::open_existing(target).unwrap();
    let listed = store.flow_runs(&Default::default()).unwrap();
    assert_eq!(listed.len(), 1, "{listed:#?}");
    let run = store.flow_run(listed[0].id).unwrap().unwrap();
    let last = |h: &flowcore::History| {
        let state = h.current();
        (
            state.kind.to_string(),
            state.message.as_deref().map(str::to_owned),
        )
    };
    let (state, message) = last(&run.history);
    let mut out = vec![(run.flow.to_string(), state, message)];
    for task_run in &run.task_runs {
        let (state, message) = last(&task_run.history);
        out.push((task_run.task.to_string(), state, message));
    }
    out
}

/// Each process the store knows, `(pid, ended)`.
fn processes(ts: &TestStore) -> Vec<(u32, bool)> {
    let listed = ts.count("SELECT COUNT(*) FROM processes", &[]);
    (0..listed)
        .map(|i| {
            let row = |column: &str| {
                ts.count(
                    &format!(
                        "SELECT {column} FROM processes ORDER BY started_at LIMIT 1 OFFSET {i}"
                    ),
                    &[],
                )
            };
            (
                row("pid") as u32,
                row("CASE WHEN ended_at IS NULL THEN 0 ELSE 1 END") == 1,
            )
        })
        .collect()
}

async fn a_program_that_returns_records_that_its_process_ended(ts: &TestStore) {
    let mut cmd = child("child_interrupted", [("INTERRUPT_STORE", ts.target())]);
    let child = cmd.env("RETURN", "1").spawn().unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", show(&out));
    // The test's own process, which made the store, is the other row, still open.
    assert_eq!(processes(ts), [(std::process::id(), false), (pid, true)]);
}

fn cancelled_by(signal: &str) -> Vec<(String, String, Option<String>)> {
    let message = Some(format!("the process received {signal}"));
    vec![
        ("interrupted".into(), "Cancelled".into(), message.clone()),
        ("quick".into(), "Completed".into(), None),
        ("forever".into(), "Cancelled".into(), message),
    ]
}

async fn ctrl_c_ends_the_programs_runs_cancelled_and_exits_130(ts: &TestStore) {
    let out = interrupt(ts, "INT", false);
    assert_eq!(out.status.code(), Some(130), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "flowcore: received SIGINT: ending this process's unfinished runs as Cancelled"
        ),
        "{}",
        show(&out)
    );
    assert_eq!(runs(ts.target()), cancelled_by("SIGINT"));
    if ts.kind() == Kind::Sqlite {
        // Its exit moved the store's log into the file: the file copied alone holds the runs.
        let dir = support::tempdir();
        let copy = dir.path().join("flowcore.db");
        std::fs::copy(ts.target(), &copy).unwrap();
        assert_eq!(runs(copy.as_os_str()), cancelled_by("SIGINT"));
    }
    assert_eq!(
        // The test's own process, which made the store, is the other row, still open.
        ts.count(
            "SELECT COUNT(*) FROM processes WHERE ended_at IS NOT NULL",
            &[]
        ),
        1,
        "the child's process is recorded as ended"
    );
}

async fn sigterm_ends_the_programs_runs_cancelled_and_exits_143(ts: &TestStore) {
    let out = interrupt(ts, "TERM", false);
    assert_eq!(out.status.code(), Some(143), "{}", show(&out));
    assert_eq!(runs(ts.target()), cancelled_by("SIGTERM"));
}

#[test]
fn a_program_that_handles_ctrl_c_itself_is_left_to_do_so() {
    let ts = TestStore::sqlite();
    assert_eq!(ts.kind(), Kind::Sqlite);
    let out = interrupt(&ts, "INT", true);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("OWN_HANDLER"));
    // Its runs stay as the program left them (in the tables: the store's reads show them
    // Crashed, as whoever opens the store next does).
    let running = ts.count(
        "SELECT COUNT(*) FROM flow_runs WHERE state = 'Running'",
        &[],
    ) + ts.count(
        "SELECT COUNT(*) FROM task_runs WHERE state = 'Running'",
        &[],
    );
    assert_eq!(running, 2, "the flow run and its hanging task run");
    let completed = ts.count(
        "SELECT COUNT(*) FROM task_runs WHERE state = 'Completed'",
        &[],
    );
    assert_eq!(completed, 1);
    let store = Store::open_existing(ts.target()).unwrap();
    let listed = store.flow_runs(&Default::default()).unwrap();
    assert_eq!(listed[0].state, flowcore::StateKind::Crashed);
}
