//! Ctrl-C (SIGINT) or SIGTERM to a plain flow program: its unfinished runs end `Cancelled` in
//! the store, naming the signal, and it exits 130 or 143, as the shell reports those signals.
//! A program that handles the signals itself says so with `handle_interrupts(false)`, and
//! flowcore then leaves them alone.
//!
//! Children are this test binary again (see tests/support).

mod support;

use std::process::Command;

use flowcore::{Store, flow, task};
use support::{Running, child, count, env_path, show, tempdir};

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

/// Runs `interrupted` on the store at `INTERRUPT_STORE`; with `OWN_HANDLER`, the program
/// handles Ctrl-C itself (printing `OWN_HANDLER` and exiting 0) and turns flowcore's off.
#[tokio::test]
#[ignore = "run as a child process by the tests of tests/interrupt.rs"]
async fn child_interrupted() {
    let Some(path) = env_path("INTERRUPT_STORE") else {
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
    Store::sqlite(path).unwrap().install().unwrap();
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

/// Starts the child, waits until its task run hangs with its states committed, and sends it
/// `name`; returns what it printed and the store's path.
fn interrupt(name: &str, own_handler: bool) -> (std::process::Output, tempfile::TempDir) {
    let dir = tempdir();
    let path = dir.path().join("flowcore.db");
    let mut cmd = child("child_interrupted", [("INTERRUPT_STORE", path.as_os_str())]);
    if own_handler {
        cmd.env("OWN_HANDLER", "1");
    }
    let mut running = Running::spawn(&mut cmd);
    running.wait_for_line("WAITING");
    support::wait_until(
        "the hanging task run to be Running in the file",
        None,
        || {
            (count(
                &path,
                "SELECT COUNT(*) FROM task_runs WHERE state = 'Running'",
                [],
            ) == 1)
                .then_some(())
        },
    );
    signal(&running, name);
    (running.finish_unchecked(), dir)
}

/// Each run of the store, `(flow or task, state, message of the last state)`, oldest first.
fn runs(path: &std::path::Path) -> Vec<(String, String, Option<String>)> {
    let conn = support::raw(path);
    let mut stmt = conn
        .prepare(
            "SELECT r.name, r.state, (SELECT message FROM states s WHERE s.run_id = r.id
                 ORDER BY seq DESC LIMIT 1)
             FROM (SELECT id, flow AS name, state, created_at FROM flow_runs
                   UNION ALL SELECT id, task, state, created_at FROM task_runs) r
             ORDER BY r.created_at",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn cancelled_by(signal: &str) -> Vec<(String, String, Option<String>)> {
    let message = Some(format!("the process received {signal}"));
    vec![
        ("interrupted".into(), "Cancelled".into(), message.clone()),
        ("quick".into(), "Completed".into(), None),
        ("forever".into(), "Cancelled".into(), message),
    ]
}

#[test]
fn ctrl_c_ends_the_programs_runs_cancelled_and_exits_130() {
    let (out, dir) = interrupt("INT", false);
    assert_eq!(out.status.code(), Some(130), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "flowcore: received SIGINT: ending this process's unfinished runs as Cancelled"
        ),
        "{}",
        show(&out)
    );
    let path = dir.path().join("flowcore.db");
    assert_eq!(runs(&path), cancelled_by("SIGINT"));
    assert_eq!(
        count(
            &path,
            "SELECT COUNT(*) FROM processes WHERE ended_at IS NULL",
            []
        ),
        0,
        "the process is recorded as ended"
    );
}

#[test]
fn sigterm_ends_the_programs_runs_cancelled_and_exits_143() {
    let (out, dir) = interrupt("TERM", false);
    assert_eq!(out.status.code(), Some(143), "{}", show(&out));
    assert_eq!(
        runs(&dir.path().join("flowcore.db")),
        cancelled_by("SIGTERM")
    );
}

#[test]
fn a_program_that_handles_ctrl_c_itself_is_left_to_do_so() {
    let (out, dir) = interrupt("INT", true);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("OWN_HANDLER"));
    let path = dir.path().join("flowcore.db");
    // Its runs stay as the program left them; whoever opens the store next sees them Crashed.
    let states: Vec<String> = runs(&path).into_iter().map(|r| r.1).collect();
    assert_eq!(states, ["Running", "Completed", "Running"]);
    let store = Store::open_existing(&path).unwrap();
    let listed = store.flow_runs(&Default::default()).unwrap();
    assert_eq!(listed[0].state, flowcore::StateKind::Crashed);
}
