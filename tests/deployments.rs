//! A deployment served by one process and driven from others, as a user does it: the
//! `monitor` example serves, and `flowcore deployment ls | run` in other processes list it,
//! request runs (picked up within a second), follow them with `--watch`, and are refused bad
//! parameters; SIGTERM stops the server with nothing left running.
//!
//! The first test runs on SQLite and on PostgreSQL (`FLOWCORE_STORE` names the store for the
//! server and the commands alike; see `support::backends`).
//!
//! Needs the example binaries: `cargo test` builds them; with `--test deployments` run
//! `cargo build --examples` first.

#[macro_use]
mod support;

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use flowcore::{StateKind, Store};
use support::backends::TestStore;
use support::{Running, example_binary, show, wait_until};

store_tests!(a_served_deployment_is_listed_run_by_hand_from_another_process_and_stopped_by_sigterm);

/// The `monitor` example serving, recording to `store` (a path or a URL).
fn serve_monitor(home: &Path, store: &OsStr, every: &str) -> Running {
    Running::spawn(
        Command::new(example_binary("monitor"))
            .args(["--every", every])
            .env("FLOWCORE_HOME", home)
            .env("FLOWCORE_STORE", store)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
}

fn flowcore(home: &Path, store: &OsStr, args: &[&str]) -> Output {
    Command::new(support::flowcore_bin())
        .args(args)
        .env("FLOWCORE_HOME", home)
        .env("FLOWCORE_STORE", store)
        .env("NO_COLOR", "1")
        .output()
        .expect("run flowcore")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The run name in `Created flow run 'NAME' of deployment …`.
fn created_run(out: &Output) -> String {
    let text = stdout(out);
    let line = text
        .lines()
        .find(|l| l.starts_with("Created flow run '"))
        .unwrap_or_else(|| panic!("no `Created flow run` line:\n{}", show(out)));
    line["Created flow run '".len()..]
        .split('\'')
        .next()
        .unwrap()
        .to_owned()
}

async fn a_served_deployment_is_listed_run_by_hand_from_another_process_and_stopped_by_sigterm(
    ts: &TestStore,
) {
    let home = tempfile::tempdir().unwrap();
    let store = ts.target();
    // Every hour: the only runs in this test are the ones requested by hand (a scheduled one
    // may come if the test crosses an hour; nothing below counts on there being none).
    let mut server = serve_monitor(home.path(), store, "1h");
    server.wait_for_line("Your flow 'monitor' is being served and polling for scheduled runs!");
    let pid = server.child.id();

    let ls = flowcore(home.path(), store, &["deployment", "ls"]);
    assert!(ls.status.success(), "{}", show(&ls));
    let text = stdout(&ls);
    let row = text
        .lines()
        .find(|l| l.starts_with("monitor "))
        .unwrap_or_else(|| panic!("no monitor row:\n{text}"));
    assert!(row.contains("every 1h"), "{row}");
    assert!(row.contains(&format!("pid {pid} on ")), "{row}");
    let json = flowcore(home.path(), store, &["deployment", "ls", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(listed[0]["name"], "monitor");
    assert_eq!(listed[0]["flow"], "monitor");
    assert_eq!(listed[0]["overlap"], "skip");
    assert_eq!(listed[0]["parameters"]["timeout_secs"], 10);
    assert!(listed[0]["next_run_at"].is_string(), "{listed}");

    // Run it now and follow it: the status page answers 200 to this first check.
    let run = flowcore(
        home.path(),
        store,
        &["deployment", "run", "monitor", "--watch"],
    );
    assert!(run.status.success(), "{}", show(&run));
    let name = created_run(&run);
    let text = stdout(&run);
    let states: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    assert_eq!(
        states,
        ["Scheduled", "Pending", "Running", "Completed"],
        "{text}"
    );
    assert!(text.contains("Scheduled  requested by hand"), "{text}");
    assert!(
        text.ends_with(&format!("Flow run '{name}' finished in state Completed\n")),
        "{text}"
    );

    let shown = stdout(&flowcore(home.path(), store, &["runs", "show", &name]));
    assert!(shown.contains("\n  Deployment  monitor\n"), "{shown}");

    let history = Store::open_existing(store).unwrap();
    let id = history.find_flow_run(&name).unwrap();
    let record = history.flow_run(id).unwrap().unwrap();
    let picked_up = record.history[1].at.duration_since(record.history[0].at);
    assert!(
        picked_up < Duration::from_secs(1),
        "picked up {picked_up:?} after the request"
    );
    assert_eq!(record.task_runs[0].state().kind, StateKind::Completed);

    // The second check meets a 503: the task run fails, the flow run handles it.
    let second = flowcore(
        home.path(),
        store,
        &["deployment", "run", "monitor", "--watch"],
    );
    assert!(second.status.success(), "{}", show(&second));
    let record = history
        .flow_run(history.find_flow_run(&created_run(&second)).unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(record.state().kind, StateKind::Completed);
    let check = record.task_runs[0].state();
    assert_eq!(
        (check.kind, check.message.as_deref()),
        (StateKind::Failed, Some("status code 503"))
    );

    // A parameter replaces the deployment's, read as its type.
    let other = flowcore(
        home.path(),
        store,
        &[
            "deployment",
            "run",
            "monitor",
            "--param",
            "url=http://127.0.0.1:1/status",
            "--param",
            "timeout_secs=2",
        ],
    );
    assert!(other.status.success(), "{}", show(&other));
    let other_id = history.find_flow_run(&created_run(&other)).unwrap();
    let parameters = history.parameters(other_id).unwrap().unwrap();
    assert_eq!(parameters["url"], "http://127.0.0.1:1/status");
    assert_eq!(parameters["timeout_secs"], 2);
    let record = wait_until("the third run to end", Some(&mut server.child), || {
        history
            .flow_run(other_id)
            .unwrap()
            .filter(|r| r.state().is_final())
    });
    assert_eq!(record.state().kind, StateKind::Completed);
    assert_eq!(record.task_runs[0].state().kind, StateKind::Failed);

    // Refusals: one line on stderr, exit code 1 (2 for a malformed command line).
    for (args, expected, code) in [
        (
            vec!["deployment", "run", "monitor", "--param", "timeout_secs=soon"],
            "flowcore: parameter 'timeout_secs' of deployment 'monitor' takes a whole number of 0 or more (its default is 10), not \"soon\"\n".to_owned(),
            1,
        ),
        (
            vec!["deployment", "run", "monitor", "--param", "retries=3"],
            "flowcore: deployment 'monitor' has no parameter 'retries'; its parameters are: timeout_secs, url\n".to_owned(),
            1,
        ),
        (
            vec!["deployment", "run", "nope"],
            format!(
                "flowcore: no deployment named \"nope\" in the run store {}; deployments: monitor, restart-service\n",
                Store::describe_location(store)
            ),
            1,
        ),
    ] {
        let out = flowcore(home.path(), store, &args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", show(&out));
        assert_eq!(stderr(&out), expected, "{args:?}");
        assert_eq!(stdout(&out), "", "{args:?}");
    }
    let malformed = flowcore(
        home.path(),
        store,
        &["deployment", "run", "monitor", "--param", "url"],
    );
    assert_eq!(malformed.status.code(), Some(2), "{}", show(&malformed));
    assert!(
        stderr(&malformed).contains("expected KEY=VALUE"),
        "{}",
        show(&malformed)
    );
    assert_eq!(stderr(&malformed).lines().count(), 1);

    // SIGTERM: the server stops cleanly, and says so.
    let kill = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = server.finish();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Stopping (the serving process received SIGTERM): no new runs start"),
        "{text}"
    );
    assert!(text.contains("Stopped serving; "), "{text}");

    let ls = stdout(&flowcore(home.path(), store, &["deployment", "ls"]));
    let row = ls.lines().find(|l| l.starts_with("monitor ")).unwrap();
    assert!(row.contains("not served"), "{row}");
    assert!(row.contains("Completed"), "{row}");
    let filter = flowcore::store::RunFilter {
        limit: 1000,
        ..Default::default()
    };
    let unfinished: Vec<_> = history
        .flow_runs(&filter)
        .unwrap()
        .into_iter()
        .filter(|r| !r.state.is_final())
        .collect();
    assert!(unfinished.is_empty(), "{unfinished:?}");

    // With no process serving it, a request waits, Scheduled, and the CLI says why.
    let waiting = flowcore(home.path(), store, &["deployment", "run", "monitor"]);
    assert!(waiting.status.success(), "{}", show(&waiting));
    assert!(
        stdout(&waiting)
            .contains("No process serves 'monitor' now: the run stays Scheduled until one does."),
        "{}",
        show(&waiting)
    );
    let waiting_id = history.find_flow_run(&created_run(&waiting)).unwrap();
    assert_eq!(
        history.flow_run_summary(waiting_id).unwrap().unwrap().state,
        StateKind::Scheduled
    );

    // The next process to serve it picks it up.
    let mut again = serve_monitor(home.path(), store, "1h");
    let record = wait_until(
        "the waiting run to be picked up and end",
        Some(&mut again.child),
        || {
            history
                .flow_run(waiting_id)
                .unwrap()
                .filter(|r| r.state().is_final())
        },
    );
    assert_eq!(record.state().kind, StateKind::Completed);

    // Killed, it cannot say it stopped: the next command notices, and it serves no more.
    again.kill();
    let ls = stdout(&flowcore(home.path(), store, &["deployment", "ls"]));
    let row = ls.lines().find(|l| l.starts_with("monitor ")).unwrap();
    assert!(row.contains("not served"), "{row}");
}

#[test]
fn the_monitor_example_runs_on_its_schedule_and_records_failed_checks() {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(example_binary("monitor"))
        .args(["--every", "1s", "--runs", "3"])
        .env("FLOWCORE_HOME", home.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let count = |part: &str| text.lines().filter(|l| l.contains(part)).count();
    assert_eq!(
        count("Your flow 'monitor' is being served and polling for scheduled runs!"),
        1
    );
    assert!(count("Waiting for next scheduled run at ") >= 3, "{text}");
    assert_eq!(count("Beginning flow run '"), 3, "{text}");
    // 200, 503, 200: the second check fails, and its flow run handles it.
    assert_eq!(
        count("Finished in state Failed('status code 503')"),
        1,
        "{text}"
    );
    assert_eq!(
        count("for flow 'monitor': Completed — 1 task run failed and was handled"),
        1,
        "{text}"
    );
    assert!(text.contains("Stopped serving; 3 runs finished"), "{text}");

    let store = Store::open_existing(home.path().join("flowcore.db")).unwrap();
    let runs = store.flow_runs(&Default::default()).unwrap();
    assert_eq!(runs.len(), 3);
    for run in &runs {
        assert_eq!(run.state, StateKind::Completed);
        assert_eq!(run.deployment.as_deref(), Some("monitor"));
        let record = store.flow_run(run.id).unwrap().unwrap();
        assert_eq!(record.history[0].kind, StateKind::Scheduled);
        // Due on a whole second; a scheduled run starts at its time.
        assert_eq!(record.history[0].at.as_micros() % 1_000_000, 0);
        let delay = record.history[1].at.duration_since(record.history[0].at);
        assert!(delay < Duration::from_millis(500), "{delay:?}");
    }
}

/// Waits until the flow run `name` of `store` is in `state`; returns its record.
fn wait_for_state(store: &Path, name: &str, state: StateKind) -> flowcore::FlowRunRecord {
    wait_until(&format!("run {name} to be {state}"), None, || {
        let history = Store::open_existing(store).ok()?;
        let id = history.find_flow_run(name).ok()?;
        history
            .flow_run(id)
            .ok()
            .flatten()
            .filter(|r| r.state().kind == state)
    })
}

#[test]
fn the_monitor_examples_restart_waits_for_approval_and_can_be_cancelled() {
    let home = tempfile::tempdir().unwrap();
    let db = home.path().join("flowcore.db");
    let store = db.as_os_str();
    let mut server = serve_monitor(home.path(), store, "1h");
    server.wait_for_line(
        "Your flow 'restart-service' is being served and polling for scheduled runs!",
    );

    // Asked first: the run waits, Paused, with its question; the answer restarts the service.
    let run = flowcore(
        home.path(),
        store,
        &["deployment", "run", "restart-service"],
    );
    assert!(run.status.success(), "{}", show(&run));
    let name = created_run(&run);
    let paused = wait_for_state(&db, &name, StateKind::Paused);
    let question = paused.state().message().to_owned();
    assert!(
        question.starts_with("http://127.0.0.1:")
            && question.ends_with("is up: restart it anyway?"),
        "{question}"
    );
    let shown = stdout(&flowcore(home.path(), store, &["runs", "show", &name]));
    assert!(shown.contains(&question), "{shown}");
    let wrong = flowcore(
        home.path(),
        store,
        &["runs", "resume", &name, "--input", r#"{"ok": "yes"}"#],
    );
    assert!(!wrong.status.success(), "{}", show(&wrong));
    assert!(
        stderr(&wrong).contains("invalid type: string \"yes\", expected a boolean"),
        "{}",
        show(&wrong)
    );
    let answer = flowcore(
        home.path(),
        store,
        &["runs", "resume", &name, "--input", r#"{"ok": true}"#],
    );
    assert!(answer.status.success(), "{}", show(&answer));
    let done = wait_for_state(&db, &name, StateKind::Completed);
    assert_eq!(
        done.history.kinds(),
        [
            StateKind::Scheduled,
            StateKind::Pending,
            StateKind::Running,
            StateKind::Paused,
            StateKind::Running,
            StateKind::Completed
        ]
    );
    let tasks: Vec<_> = done
        .task_runs
        .iter()
        .map(|t| (t.task.to_string(), t.state().kind))
        .collect();
    assert_eq!(
        tasks,
        [
            ("check_status".to_owned(), StateKind::Completed),
            ("restart".to_owned(), StateKind::Completed)
        ]
    );

    // A second run, cancelled while it waits: it ends Cancelled, saying who asked.
    let run = flowcore(
        home.path(),
        store,
        &["deployment", "run", "restart-service"],
    );
    let name = created_run(&run);
    wait_for_state(&db, &name, StateKind::Paused);
    let cancel = flowcore(home.path(), store, &["runs", "cancel", &name]);
    assert!(cancel.status.success(), "{}", show(&cancel));
    let cancelled = wait_for_state(&db, &name, StateKind::Cancelled);
    assert!(
        cancelled.state().message().starts_with("cancelled by "),
        "{:?}",
        cancelled.state()
    );
    server.kill();
}
