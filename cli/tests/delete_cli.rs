//! `flowcore runs delete RUN…` and `flowcore runs prune --older-than D [--state S …]`, run as
//! a real process: what each prints (and `--json`), what `runs ls` lists after, and the
//! refusals, one line on stderr. On SQLite and on PostgreSQL. That nothing is left behind in
//! any table is `tests/delete_runs.rs`'s to check.

#[macro_use]
#[path = "../../tests/support/mod.rs"]
mod support;

use std::ffi::OsStr;

use flowcore::{Store, flow, task};
use serde_json::Value;
use support::backends::TestStore;
use support::cli::{fails, ok};

store_tests!(runs_delete_and_prune_say_how_many_runs_went);

#[task]
async fn add_one(x: u32) -> u32 {
    x + 1
}

#[flow(name = "cli-del-child")]
async fn child(x: u32) -> u32 {
    add_one(x).await
}

#[flow(name = "cli-del-parent")]
async fn parent() -> u32 {
    add_one(1).await + add_one(2).await + child(3).await
}

#[flow(name = "cli-del-failing")]
async fn failing() -> Result<u32, String> {
    add_one(1).await;
    Err("no rows".to_owned())
}

/// The flows of the runs `runs ls` lists, newest first.
fn listed_flows(target: &OsStr) -> Vec<String> {
    ok(target, &["runs", "ls"])
        .lines()
        .skip(1)
        // A subflow run's line starts with a mark under its parent's.
        .map(|l| {
            let flow = l.split_whitespace().find(|w| w.starts_with("cli-del-"));
            flow.unwrap_or_else(|| panic!("no flow in {l:?}"))
                .to_owned()
        })
        .collect()
}

async fn runs_delete_and_prune_say_how_many_runs_went(ts: &TestStore) {
    let (target, store) = (ts.target(), ts.store());
    let (_, done) = store.scope(parent().with_run()).await;
    let (out, _) = store.scope(failing().with_run()).await;
    assert_eq!(out, Err("no rows".to_owned()));
    store.flush().await.unwrap();
    assert_eq!(
        listed_flows(target),
        ["cli-del-failing", "cli-del-parent", "cli-del-child"]
    );

    // By name: the run, its subflow run, their task runs.
    assert_eq!(
        ok(target, &["runs", "delete", &done.name]),
        "Deleted 2 flow runs and 3 task runs, with their states and log lines.\n"
    );
    assert_eq!(listed_flows(target), ["cli-del-failing"]);
    assert_eq!(store.flow_run(done.id).unwrap(), None);
    assert_eq!(
        fails(target, &["runs", "delete", &done.name], 1),
        format!(
            "flowcore: no flow run named or with id \"{}\" in the run store {}",
            done.name,
            Store::describe_location(target)
        )
    );

    // Nothing that old.
    let none = ok(target, &["runs", "prune", "--older-than", "1h"]);
    assert!(
        none.starts_with("No flow run created before 2")
            && none.ends_with(" that ended: nothing deleted.\n"),
        "{none}"
    );
    let completed = ok(
        target,
        &[
            "runs",
            "prune",
            "--older-than",
            "0s",
            "--state",
            "Completed",
            "--state",
            "Cached",
        ],
    );
    assert!(
        completed.ends_with(" that ended Completed or Cached: nothing deleted.\n"),
        "{completed}"
    );
    assert_eq!(listed_flows(target), ["cli-del-failing"]);
    let pruned: Value = serde_json::from_str(&ok(
        target,
        &[
            "runs",
            "prune",
            "--older-than",
            "0s",
            "--state",
            "Failed",
            "--json",
        ],
    ))
    .unwrap();
    assert_eq!(pruned, serde_json::json!({"flow_runs": 1, "task_runs": 1}));
    assert_eq!(ok(target, &["runs", "ls"]), "No flow runs yet.\n");

    // A bad command line: clap's one line, exit code 2.
    assert_eq!(
        fails(
            target,
            &["runs", "prune", "--older-than", "1d", "--state", "Running"],
            2
        ),
        "flowcore: invalid value 'Running' for '--state <STATE>': Running is not a state runs \
         end in; a prune deletes runs that ended: Completed, Cached, Failed, TimedOut, \
         Cancelled, Crashed, Skipped"
    );
    let soon = fails(target, &["runs", "prune", "--older-than", "soon"], 2);
    assert!(
        soon.starts_with("flowcore: invalid value 'soon' for '--older-than <DURATION>': ")
            && soon.ends_with("; write a duration like 30d, 12h or 1h 30m"),
        "{soon}"
    );
    assert_eq!(
        fails(target, &["runs", "prune"], 2),
        "flowcore: the following required arguments were not provided: \
         --older-than <DURATION> (see 'flowcore runs prune --help')"
    );
    assert_eq!(
        fails(target, &["runs", "delete"], 2),
        "flowcore: the following required arguments were not provided: <RUN>... \
         (see 'flowcore runs delete --help')"
    );
}
