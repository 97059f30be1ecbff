//! Crash detection and resuming, across real processes.
//!
//! A child runs a five-step flow whose third step never returns; the parent waits until the
//! store shows steps one and two Completed, kills the child with SIGKILL, and opens the store:
//! the flow run and step three are Crashed, naming the child's pid. A second child resumes
//! the run: same id, steps one and two reused (their bodies do not run again), the rest run.
//!
//! Children are this test binary again, run with `--exact <child>`; see tests/support.

mod support;

use flowcore::StateKind::*;
use flowcore::{CacheStatus, StateKind, Store, StoreError, Uuid, flow, task};
use support::{Running, append_line, child, count, env_path, lines, raw, wait_until};

/// Records that a step's body ran, in the `MARKER` file when the test gives one; then, if the
/// step is `HANG_AT`, never returns.
async fn ran(step: &str) {
    if let Some(marker) = env_path("MARKER") {
        append_line(&marker, step);
    }
    if std::env::var("HANG_AT").as_deref() == Ok(step) {
        println!("HANGING {step}");
        std::future::pending::<()>().await;
    }
}

#[task]
async fn step_one(x: u32) -> u32 {
    ran("step_one").await;
    x + 1
}

#[task]
async fn step_two(x: u32) -> u32 {
    ran("step_two").await;
    x * 2
}

#[task]
async fn step_three(x: u32) -> u32 {
    ran("step_three").await;
    x + 3
}

#[task]
async fn step_four(x: u32) -> u32 {
    ran("step_four").await;
    x * 10
}

#[task]
async fn step_five(x: u32) -> u32 {
    ran("step_five").await;
    x - 1
}

#[flow]
async fn five_steps(x: u32) -> u32 {
    let x = step_one(x).await;
    let x = step_two(x).await;
    let x = step_three(x).await;
    let x = step_four(x).await;
    step_five(x).await
}

/// ((4 + 1) * 2 + 3) * 10 - 1
const FIVE_STEPS_OF_4: u32 = 129;

#[flow]
async fn other_flow(x: u32) -> u32 {
    step_one(x).await
}

/// Child of `a_killed_process_runs_are_marked_crashed_and_resumed`. `CRASH_CHILD=first` runs
/// the flow (and hangs in step three: `HANG_AT`); `CRASH_CHILD=resume` resumes the run named
/// `RUN`.
#[tokio::test]
#[ignore = "run as a child process by a_killed_process_runs_are_marked_crashed_and_resumed"]
async fn child_five_steps() {
    let Ok(role) = std::env::var("CRASH_CHILD") else {
        return;
    };
    let path = env_path("STORE").unwrap();
    Store::sqlite(&path).unwrap().install().unwrap();
    if role == "first" {
        println!("STARTING");
        five_steps(4).await;
        unreachable!("step three never returns in the first child");
    }
    let name = std::env::var("RUN").unwrap();
    let (out, run) = flowcore::resume(&name, || five_steps(4))
        .unwrap()
        .with_run()
        .await;
    assert_eq!(out, FIVE_STEPS_OF_4);
    assert_eq!(run.name, name);
    assert_eq!(run.state().kind, Completed);
    let tasks: Vec<_> = run.task_runs.iter().map(|t| t.task.as_ref()).collect();
    assert_eq!(
        tasks,
        [
            "step_one",
            "step_two",
            "step_three",
            "step_four",
            "step_five"
        ]
    );
    for reused in &run.task_runs[..2] {
        assert_eq!(reused.history.kinds(), [Pending, Cached], "{reused:#?}");
        assert_eq!(reused.cache, CacheStatus::Resumed);
        assert_eq!(reused.attempts, 0);
        let message = reused.state().message();
        assert!(
            message.starts_with(&format!("output reused from task run '{}-", reused.task))
                && message.ends_with("' of the resumed flow run"),
            "{message}"
        );
    }
    for ran in &run.task_runs[2..] {
        assert_eq!(ran.history.kinds(), [Pending, Running, Completed]);
        assert_eq!(ran.cache, CacheStatus::Off);
    }
    println!("FLOW_RUN {}", run.id);
}

#[task]
async fn exits_the_program() -> u32 {
    std::process::exit(0)
}

#[flow]
async fn cut_short() -> u32 {
    step_one(1).await + exits_the_program().await
}

/// Child of `a_process_that_exits_is_recorded_ended_unless_it_leaves_a_run_unfinished`:
/// `EXIT_CHILD=done` runs a flow to its end and returns; `EXIT_CHILD=mid_flow` exits the
/// program from a task.
#[tokio::test]
#[ignore = "run as a child process by a_process_that_exits_is_recorded_ended_unless_it_leaves_a_run_unfinished"]
async fn child_exits() {
    let Ok(role) = std::env::var("EXIT_CHILD") else {
        return;
    };
    Store::sqlite(env_path("STORE").unwrap())
        .unwrap()
        .install()
        .unwrap();
    match role.as_str() {
        "done" => assert_eq!(other_flow(1).await, 2),
        _ => {
            cut_short().await;
            unreachable!("the task exits the program");
        }
    }
}

/// A program that exits normally records its process as ended, so the next one has no dead
/// process to look for; one that exits in the middle of a flow run is left unended, and the
/// next process to open the store marks the run it left Crashed.
#[test]
fn a_process_that_exits_is_recorded_ended_unless_it_leaves_a_run_unfinished() {
    let dir = support::tempdir();
    let path = dir.path().join("flowcore.db");
    // Runs the child to its end; returns its pid.
    let run = |role: &str| {
        let mut cmd = child(
            "child_exits",
            [("EXIT_CHILD", role.as_ref()), ("STORE", path.as_os_str())],
        );
        let running = cmd.spawn().unwrap();
        let pid = running.id();
        let out = running.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", support::show(&out));
        pid
    };
    let ended_at = |pid: u32| -> Option<i64> {
        raw(&path)
            .query_row(
                "SELECT ended_at FROM processes WHERE pid = ?1",
                [pid],
                |r| r.get(0),
            )
            .unwrap()
    };

    let done = run("done");
    assert!(ended_at(done).is_some(), "the process that ended normally");
    let mid_flow = run("mid_flow");
    assert_eq!(ended_at(mid_flow), None, "it left a run unfinished");

    let store = Store::sqlite(&path).unwrap();
    let runs = store
        .flow_runs(&flowcore::store::RunFilter::default())
        .unwrap();
    let states: Vec<_> = runs.iter().map(|r| (r.flow.as_str(), r.state)).collect();
    assert_eq!(states, [("cut_short", Crashed), ("other_flow", Completed)]);
    let cut_short = store.flow_run(runs[0].id).unwrap().unwrap();
    let message = cut_short.state().message();
    assert!(
        message.starts_with(&format!("the process running it (pid {mid_flow} on ")),
        "{message}"
    );
    let tasks: Vec<_> = cut_short
        .task_runs
        .iter()
        .map(|t| (t.task.as_ref(), t.state().kind))
        .collect();
    assert_eq!(
        tasks,
        [("step_one", Completed), ("exits_the_program", Crashed)]
    );
    assert!(
        ended_at(mid_flow).is_some(),
        "ended once its runs were marked"
    );
}

#[test]
fn a_killed_process_runs_are_marked_crashed_and_resumed() {
    let dir = support::tempdir();
    let path = dir.path().join("flowcore.db");
    let marker = dir.path().join("bodies-ran.txt");
    let envs = |role: &str| {
        [
            ("CRASH_CHILD", role.as_ref()),
            ("STORE", path.as_os_str()),
            ("MARKER", marker.as_os_str()),
        ]
        .map(|(k, v): (&str, &std::ffi::OsStr)| (k.to_owned(), v.to_owned()))
    };

    // The first child gets as far as step three, and hangs there.
    let mut first =
        Running::spawn(child("child_five_steps", envs("first")).env("HANG_AT", "step_three"));
    first.wait_for_line("STARTING");
    let pid = first.child.id();
    let (id, name): (Vec<u8>, String) = wait_until(
        "steps one and two Completed and step three Running in the store",
        Some(&mut first.child),
        || {
            let conn = raw(&path);
            let (id, name): (Vec<u8>, String) = conn
                .query_row(
                    "SELECT id, name FROM flow_runs WHERE flow = 'five_steps'",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .ok()?;
            let states: Vec<(String, String)> = conn
                .prepare(
                    "SELECT task, state FROM task_runs WHERE flow_run_id = ?1 ORDER BY call_seq",
                )
                .ok()?
                .query_map([&id], |r| Ok((r.get(0)?, r.get(1)?)))
                .ok()?
                .collect::<Result<_, _>>()
                .ok()?;
            let want = [
                ("step_one", "Completed"),
                ("step_two", "Completed"),
                ("step_three", "Running"),
            ];
            let got: Vec<_> = states
                .iter()
                .map(|(t, s)| (t.as_str(), s.as_str()))
                .collect();
            (got == want).then_some((id, name))
        },
    );
    let id = Uuid::from_slice(&id).unwrap();
    // Killed, and not reaped yet: dead all the same.
    first.kill_leaving_a_zombie();

    // Opening the store marks what the dead child left unfinished.
    let store = Store::sqlite(&path).unwrap();
    let out = first.finish_unchecked();
    assert!(!out.status.success(), "{}", support::show(&out));
    assert_eq!(lines(&marker), ["step_one", "step_two", "step_three"]);
    let crashed = store.flow_run(id).unwrap().unwrap();
    assert_eq!(crashed.name, name);
    assert_eq!(crashed.history.kinds(), [Pending, Running, Crashed]);
    let message = crashed.state().message().to_owned();
    assert!(
        message.starts_with(&format!("the process running it (pid {pid} on "))
            && message.contains("stopped; its last heartbeat was at "),
        "{message}"
    );
    assert_eq!(crashed.error(), Some(message.as_str()));
    let tasks: Vec<_> = crashed
        .task_runs
        .iter()
        .map(|t| (t.task.as_ref(), t.state().kind))
        .collect();
    assert_eq!(
        tasks,
        [
            ("step_one", Completed),
            ("step_two", Completed),
            ("step_three", Crashed)
        ]
    );
    let three = &crashed.task_runs[2];
    assert_eq!(three.history.kinds(), [Pending, Running, Crashed]);
    assert_eq!(three.state().message(), message);
    let summary = store
        .flow_runs(&Default::default())
        .unwrap()
        .into_iter()
        .find(|s| s.id == id)
        .unwrap();
    assert_eq!(summary.state, Crashed);
    assert_eq!(summary.error.as_deref(), Some(message.as_str()));
    assert!(summary.ended_at.is_some());

    // Marking again, or opening again, marks nothing more.
    let states_before = count(&path, "SELECT COUNT(*) FROM states", []);
    assert_eq!(store.mark_crashed().unwrap(), 0);
    let again = Store::sqlite(&path).unwrap();
    assert_eq!(again.mark_crashed().unwrap(), 0);
    assert_eq!(
        count(&path, "SELECT COUNT(*) FROM states", []),
        states_before
    );
    assert_eq!(again.flow_run(id).unwrap().unwrap(), crashed);
    drop((store, again));

    // A second child resumes the run: steps one and two are not run again.
    let resumed = Running::spawn(&mut child(
        "child_five_steps",
        envs("resume")
            .into_iter()
            .chain([("RUN".to_owned(), name.clone().into())]),
    ))
    .finish();
    assert_eq!(support::marker(&resumed, "FLOW_RUN"), id.to_string());
    assert_eq!(
        lines(&marker),
        [
            "step_one",
            "step_two",
            "step_three",
            "step_three",
            "step_four",
            "step_five"
        ]
    );

    let store = Store::sqlite(&path).unwrap();
    let done = store.flow_run(id).unwrap().unwrap();
    assert_eq!(done.name, name);
    assert_eq!(
        done.history.kinds(),
        [Pending, Running, Crashed, Pending, Running, Completed]
    );
    assert_eq!(done.history[2].message(), message);
    assert_eq!(done.history[3].message(), "resumed after Crashed");
    assert_eq!(done.error(), None);
    assert_eq!(done.attempts, 2);
    // The crashed attempt's task runs stay as they were; the resumed attempt's follow.
    let tasks: Vec<_> = done
        .task_runs
        .iter()
        .map(|t| (t.task.as_ref(), t.state().kind, t.cache))
        .collect();
    assert_eq!(
        tasks,
        [
            ("step_one", Completed, CacheStatus::Off),
            ("step_two", Completed, CacheStatus::Off),
            ("step_three", Crashed, CacheStatus::Off),
            ("step_one", Cached, CacheStatus::Resumed),
            ("step_two", Cached, CacheStatus::Resumed),
            ("step_three", Completed, CacheStatus::Off),
            ("step_four", Completed, CacheStatus::Off),
            ("step_five", Completed, CacheStatus::Off),
        ]
    );
    assert_eq!(
        done.task_runs[3].state().message(),
        format!(
            "output reused from task run '{}' of the resumed flow run",
            done.task_runs[0].name()
        )
    );
    let summary = store
        .flow_runs(&Default::default())
        .unwrap()
        .into_iter()
        .find(|s| s.id == id)
        .unwrap();
    assert_eq!(summary.state, Completed);
    assert_eq!(summary.error, None);
    // Nothing left unfinished, nothing marked.
    assert_eq!(store.mark_crashed().unwrap(), 0);
    assert_eq!(
        count(
            &path,
            "SELECT COUNT(*) FROM task_runs WHERE state IN ('Pending', 'Running', 'Retrying')",
            []
        ),
        0
    );
}

// ---------------------------------------------------------------------------------------------
// A run that crashes again after being resumed, in a subflow and then in the flow, is resumed
// again, and what any earlier attempt completed (or reused) is still not run again.

#[flow]
async fn middle(x: u32) -> u32 {
    let x = step_two(x).await;
    step_three(x).await
}

#[flow]
async fn nested_steps(x: u32) -> u32 {
    let x = step_one(x).await;
    let x = middle(x).await;
    let x = step_four(x).await;
    step_five(x).await
}

/// Child of `a_run_that_crashes_again_is_resumed_again`: runs `nested_steps(4)`, or resumes
/// the run named `RUN`; hangs at the step `HANG_AT`, if given.
#[tokio::test]
#[ignore = "run as a child process by a_run_that_crashes_again_is_resumed_again"]
async fn child_nested() {
    let Ok(role) = std::env::var("NESTED_CHILD") else {
        return;
    };
    Store::sqlite(env_path("STORE").unwrap())
        .unwrap()
        .install()
        .unwrap();
    let (out, run) = if role == "first" {
        nested_steps(4).with_run().await
    } else {
        let name = std::env::var("RUN").unwrap();
        flowcore::resume(&name, || nested_steps(4))
            .unwrap()
            .with_run()
            .await
    };
    assert_eq!(out, FIVE_STEPS_OF_4);
    println!("FLOW_RUN {}", run.id);
}

#[test]
fn a_run_that_crashes_again_is_resumed_again() {
    let dir = support::tempdir();
    let path = dir.path().join("flowcore.db");
    let marker = dir.path().join("bodies-ran.txt");
    let mut name = String::new();
    // Each child hangs one step further on, and is killed there; the last one finishes.
    for hang_at in ["step_three", "step_four", "step_five", ""] {
        let mut cmd = child(
            "child_nested",
            [
                (
                    "NESTED_CHILD",
                    if name.is_empty() { "first" } else { "resume" },
                ),
                ("RUN", &name),
                ("HANG_AT", hang_at),
            ],
        );
        cmd.env("STORE", &path).env("MARKER", &marker);
        let mut running = Running::spawn(&mut cmd);
        if hang_at.is_empty() {
            running.finish();
            break;
        }
        running.wait_for_line(&format!("HANGING {hang_at}"));
        // Everything sent before the hanging step started is committed once it shows Running.
        wait_until(
            &format!("{hang_at} Running in the store"),
            Some(&mut running.child),
            || {
                let running = count(
                    &path,
                    "SELECT COUNT(*) FROM task_runs WHERE task = ?1 AND state = 'Running'",
                    [hang_at],
                );
                (running == 1).then_some(())
            },
        );
        running.kill();
        if name.is_empty() {
            name = raw(&path)
                .query_row(
                    "SELECT name FROM flow_runs WHERE flow = 'nested_steps'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
        }
    }

    assert_eq!(
        lines(&marker),
        [
            "step_one",
            "step_two",
            "step_three", // hung, killed
            "step_three", // second attempt: step_one and step_two reused
            "step_four",  // hung, killed
            "step_four",  // third attempt: step_one and the subflow reused
            "step_five",  // hung, killed
            "step_five",  // fourth attempt: all but step_five reused
        ]
    );

    let store = Store::sqlite(&path).unwrap();
    let id = store.find_flow_run(&name).unwrap();
    let run = store.flow_run(id).unwrap().unwrap();
    let crash_and_resume = [Pending, Running, Crashed];
    assert_eq!(
        run.history.kinds(),
        [crash_and_resume.as_slice(); 3]
            .concat()
            .into_iter()
            .chain([Pending, Running, Completed])
            .collect::<Vec<_>>()
    );
    // The subflow: crashed, resumed as the same run and completed, then reused twice.
    let subflows: Vec<_> = run
        .subflow_runs
        .iter()
        .map(|f| (f.history.kinds(), f.state().message().to_owned()))
        .collect();
    assert_eq!(subflows.len(), 3, "{subflows:#?}");
    assert_eq!(
        subflows[0].0,
        [Pending, Running, Crashed, Pending, Running, Completed]
    );
    for (kinds, message) in &subflows[1..] {
        assert_eq!(kinds, &[Pending, Cached]);
        assert!(
            message.starts_with("output reused from flow run '")
                && message.ends_with("' of the resumed flow run"),
            "{message}"
        );
    }
    assert_eq!(store.mark_crashed().unwrap(), 0);
}

// ---------------------------------------------------------------------------------------------
// Which processes count as dead: on this host, the process table says (a reused pid does not
// fool it); elsewhere, a heartbeat older than 30 s.

#[test]
fn heartbeats_and_pids_decide_which_processes_are_dead() {
    let dir = support::tempdir();
    let path = dir.path().join("flowcore.db");
    let store = Store::sqlite(&path).unwrap();
    let me = std::process::id();
    let (host, ticks): (String, i64) = raw(&path)
        .query_row(
            "SELECT host, start_ticks FROM processes WHERE pid = ?1",
            [me],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    drop(store);
    let gone = {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        c.wait().unwrap();
        c.id()
    };
    let now = flowcore::Timestamp::wall_now().as_micros();
    // (label, pid, host, start ticks, heartbeat age in seconds, dead?)
    type Planted<'a> = (&'a str, u32, &'a str, Option<i64>, i64, bool);
    let processes: [Planted<'_>; 6] = [
        ("elsewhere-stale", 4242, "far-away-host", None, 60, true),
        ("elsewhere-fresh", 4243, "far-away-host", None, 5, false),
        ("here-gone", gone, &host, Some(1), 0, true),
        ("here-reused-pid", me, &host, Some(ticks + 1), 0, true),
        ("here-alive", me, &host, Some(ticks), 600, false),
        ("here-alive-no-ticks", me, &host, None, 600, false),
    ];
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for (label, pid, host, ticks, age, _) in &processes {
            let heartbeat = now - age * 1_000_000;
            conn.execute(
                "INSERT INTO processes (id, pid, host, start_ticks, started_at, heartbeat_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                rusqlite::params![format!("process-{label}"), pid, host, ticks, heartbeat],
            )
            .unwrap();
            for (table, kind) in [("flow_runs", "flow"), ("task_runs", "task")] {
                let extra = if table == "flow_runs" {
                    "name, flow"
                } else {
                    "task, flow_run_id"
                };
                conn.execute(
                    &format!(
                        "INSERT INTO {table} (id, {extra}, state, created_at, process_id, call_seq)
                         VALUES (?1, ?2, ?3, 'Running', ?4, ?5, 0)"
                    ),
                    rusqlite::params![
                        format!("{kind}-{label}"),
                        format!("{kind}-{label}"),
                        if table == "flow_runs" { "planted" } else { "" },
                        now - 120_000_000,
                        format!("process-{label}")
                    ],
                )
                .unwrap();
                for (seq, state) in ["Pending", "Running"].iter().enumerate() {
                    conn.execute(
                        "INSERT INTO state_rows (run_id, seq, kind, at) VALUES (?1, ?2, ?3, ?4)",
                        rusqlite::params![
                            format!("{kind}-{label}"),
                            seq as i64,
                            state,
                            now - 120_000_000
                        ],
                    )
                    .unwrap();
                }
            }
        }
    }

    let store = Store::sqlite(&path).unwrap();
    let conn = raw(&path);
    for (label, pid, host, _, age, dead) in &processes {
        for kind in ["flow", "task"] {
            let table = format!("{kind}_runs");
            let (state, error): (String, Option<String>) = conn
                .query_row(
                    &format!("SELECT state, error FROM {table} WHERE id = ?1"),
                    [format!("{kind}-{label}")],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            let history: Vec<(i64, String)> = conn
                .prepare("SELECT seq, kind FROM states WHERE run_id = ?1 ORDER BY seq")
                .unwrap()
                .query_map([format!("{kind}-{label}")], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            if *dead {
                assert_eq!(state, "Crashed", "{kind} run of {label}");
                let heartbeat = flowcore::Timestamp::from_micros(now - age * 1_000_000);
                assert_eq!(
                    error.as_deref(),
                    Some(
                        format!(
                            "the process running it (pid {pid} on {host}) stopped; its last heartbeat was at {heartbeat}"
                        )
                        .as_str()
                    ),
                    "{kind} run of {label}"
                );
                assert_eq!(history.len(), 3, "{label}: {history:?}");
                assert_eq!(history[2], (2, "Crashed".to_owned()));
            } else {
                assert_eq!(state, "Running", "{kind} run of {label}");
                assert_eq!(error, None);
                assert_eq!(history.len(), 2, "{label}: {history:?}");
            }
        }
    }
    assert_eq!(store.mark_crashed().unwrap(), 0, "nothing more to mark");
}

// ---------------------------------------------------------------------------------------------
// Resume refuses what it cannot resume. These run in this process, on its installed store.

fn store() -> &'static Store {
    static STORE: std::sync::OnceLock<Store> = std::sync::OnceLock::new();
    STORE.get_or_init(|| {
        let store = Store::sqlite(support::process_store_path("crash")).unwrap();
        store.clone().install().unwrap();
        store
    })
}

fn refusal<B: flowcore::FlowBody>(result: Result<flowcore::FlowCall<B>, StoreError>) -> StoreError {
    match result {
        Ok(_) => panic!("resume accepted the run"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn resume_refuses_a_completed_run() {
    store();
    let (out, run) = five_steps(1).with_run().await;
    assert_eq!(out, 69);
    let e = refusal(flowcore::resume(&run.name, || five_steps(1)));
    assert!(
        matches!(&e, StoreError::CannotResume { name, .. } if *name == run.name),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "cannot resume flow run '{}': it completed; there is nothing to resume",
            run.name
        )
    );
    // By id as well as by name.
    let e = refusal(flowcore::resume(&run.id.to_string(), || five_steps(1)));
    assert!(matches!(e, StoreError::CannotResume { .. }), "{e:?}");
    // The run is as it was.
    let stored = store().flow_run(run.id).unwrap().unwrap();
    assert_eq!(stored.history.kinds(), [Pending, Running, Completed]);
}

#[tokio::test]
async fn resume_refuses_an_unknown_run() {
    store();
    let e = refusal(flowcore::resume("no-such-run", || five_steps(1)));
    assert!(
        matches!(&e, StoreError::UnknownRun { run, .. } if run == "no-such-run"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "no flow run named or with id \"no-such-run\" in the run store {}",
            store().describe()
        )
    );
    let e = refusal(flowcore::resume(&Uuid::nil().to_string(), || five_steps(1)));
    assert!(matches!(e, StoreError::UnknownRun { .. }), "{e:?}");
}

#[task]
async fn always_fails() -> Result<u32, String> {
    Err("no".to_owned())
}

#[flow]
async fn failing_flow() -> Result<u32, String> {
    always_fails().await
}

#[tokio::test]
async fn resume_refuses_a_call_of_another_flow() {
    store();
    let (out, run) = failing_flow().with_run().await;
    assert!(out.is_err());
    assert_eq!(run.state().kind, StateKind::Failed);
    let e = refusal(flowcore::resume(&run.name, || other_flow(1)));
    assert_eq!(
        e.to_string(),
        format!(
            "cannot resume flow run '{}': it is a run of flow 'failing_flow', not of 'other_flow'",
            run.name
        )
    );
    // Refused, it stays resumable by the right flow.
    let (out, again) = flowcore::resume(&run.name, failing_flow)
        .unwrap()
        .with_run()
        .await;
    assert!(out.is_err());
    assert_eq!(again.id, run.id);
    assert_eq!(
        again.history.kinds(),
        [Pending, Running, Failed, Pending, Running, Failed]
    );
}
