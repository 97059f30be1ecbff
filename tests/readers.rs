//! Reading the run store never writes to it: `flowcore` commands and the dashboard read a
//! read-only store, refuse an empty, damaged or outdated file untouched, and show the runs of a
//! process that died as Crashed without writing that down (the next program that records runs
//! does).
//!
//! Children are this test binary again (see tests/support).

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use flowcore::{Store, flow, task};
use support::{
    Dashboard, Running, Tmpfs, child, companions, count, env_path, flowcore_cli, raw, run_ok, show,
    start_dashboard, tempdir,
};

#[task]
async fn step(i: u32) -> u32 {
    i * 2
}

#[task]
async fn stuck() {
    std::future::pending::<()>().await;
}

#[flow(name = "readable")]
async fn readable(n: u32) -> u32 {
    let mut total = 0;
    for i in 0..n {
        total += step(i).await;
    }
    total
}

#[flow(name = "stuck-flow")]
async fn stuck_flow() {
    step(1).await;
    println!("STUCK");
    stuck().await;
}

/// Records `readable(TASKS)` in the store at `READERS_STORE`, or with `STUCK` runs a flow that
/// never ends.
#[tokio::test]
#[ignore = "run as a child process by the tests of tests/readers.rs"]
async fn child_records() {
    let Some(path) = env_path("READERS_STORE") else {
        return;
    };
    Store::sqlite(path).unwrap().install().unwrap();
    if std::env::var_os("STUCK").is_some() {
        stuck_flow().await;
        return;
    }
    let tasks: u32 = std::env::var("TASKS").unwrap().parse().unwrap();
    let (_, run) = readable(tasks).with_run().await;
    println!("FLOW_RUN {} {}", run.id, run.name);
}

/// A store holding one run of `readable(tasks)`, all of it in the file itself (the log
/// checkpointed into it); returns the run's name.
fn record(path: &Path, tasks: u32) -> String {
    let tasks = tasks.to_string();
    let out = run_ok(&mut child(
        "child_records",
        [
            ("READERS_STORE", path.as_os_str()),
            ("TASKS", tasks.as_ref()),
        ],
    ));
    let marker = support::marker(&out, "FLOW_RUN");
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    marker.split_whitespace().nth(1).unwrap().to_owned()
}

/// The file and its write-ahead log, as they are now.
fn contents(path: &Path) -> (Vec<u8>, Vec<u8>) {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    (
        std::fs::read(path).unwrap(),
        std::fs::read(PathBuf::from(wal)).unwrap_or_default(),
    )
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "{}", show(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The one line a failing command prints, and its exit code.
fn failure(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{}", show(out));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr.trim_end().to_owned()
}

/// The reading commands, each of which must leave the store as it found it.
const READS: &[&[&str]] = &[
    &["runs", "ls"],
    &["runs", "ls", "--json"],
    &["cache", "ls"],
    &["deployment", "ls"],
];

#[test]
fn reading_commands_leave_the_file_byte_for_byte_as_it_was() {
    let dir = tempdir();
    let path = dir.path().join("flowcore.db");
    let name = record(&path, 3);
    let before = contents(&path);
    for args in READS.iter().copied().chain([
        &["runs", "show", name.as_str()][..],
        &["runs", "summary", name.as_str()][..],
        &["runs", "graph", name.as_str()][..],
    ]) {
        let out = flowcore_cli(&path, args);
        assert!(out.status.success(), "{args:?}: {}", show(&out));
        assert!(contents(&path) == before, "{args:?} changed the file");
    }
    assert!(stdout(&flowcore_cli(&path, &["runs", "ls"])).contains(&name));
}

#[test]
fn a_store_on_a_read_only_file_system_can_be_read() {
    let Some(disk) = Tmpfs::mount("16m") else {
        return;
    };
    let path = disk.path().join("flowcore.db");
    let name = record(&path, 3);
    disk.remount("ro");
    for args in READS {
        let out = flowcore_cli(&path, args);
        assert!(out.status.success(), "{args:?}: {}", show(&out));
    }
    let ls = stdout(&flowcore_cli(&path, &["runs", "ls"]));
    assert!(ls.contains(&name), "{ls}");
    let shown = stdout(&flowcore_cli(&path, &["runs", "show", &name]));
    assert!(shown.contains("Completed"), "{shown}");
    // Writing is what fails, and it says why.
    let clear = failure(&flowcore_cli(&path, &["cache", "clear"]));
    assert!(clear.contains("is read-only"), "{clear}");
}

#[test]
fn an_empty_file_is_refused_and_stays_empty() {
    let dir = tempdir();
    let path = dir.path().join("empty.db");
    std::fs::write(&path, "").unwrap();
    let line = failure(&flowcore_cli(&path, &["runs", "ls"]));
    assert_eq!(
        line,
        format!(
            "flowcore: {} is not a flowcore run store (it is empty; a flow run makes a store, reading never does); flowcore leaves it untouched: point FLOWCORE_HOME or --store at another file",
            path.display()
        )
    );
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    assert_eq!(companions(&path), Vec::<PathBuf>::new());
}

#[test]
fn a_store_with_a_damaged_page_is_refused_by_readers_untouched() {
    let dir = tempdir();
    let path = dir.path().join("flowcore.db");
    record(&path, 2_000);
    // The root page of the table of states: the header and the schema are sound, and listing runs
    // does not read it, so without a check the listing would come out, wrong, with exit 0.
    let root: i64 = raw(&path)
        .query_row(
            "SELECT rootpage FROM sqlite_master WHERE name = 'state_rows'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let root = usize::try_from(root).unwrap();
    assert!(root > 1 && root * 4096 <= bytes.len(), "page {root}");
    let at = (root - 1) * 4096;
    for (i, b) in bytes[at..at + 4096].iter_mut().enumerate() {
        *b = (i * 31 + 7) as u8;
    }
    std::fs::write(&path, &bytes).unwrap();

    let line = failure(&flowcore_cli(&path, &["runs", "ls"]));
    assert!(
        line.starts_with(&format!("flowcore: {} is damaged (", path.display())),
        "{line}"
    );
    assert!(
        line.ends_with("flowcore leaves it untouched: restore it from a backup or move it aside"),
        "{line}"
    );
    assert!(std::fs::read(&path).unwrap() == bytes, "left untouched");
}

#[test]
fn a_store_of_an_older_flowcore_is_refused_by_readers_until_upgraded() {
    let dir = tempdir();
    let path = dir.path().join("old.db");
    Store::create_sqlite_at_schema_version(&path, 4).unwrap();
    let line = failure(&flowcore_cli(&path, &["runs", "ls"]));
    assert_eq!(
        line,
        format!(
            "flowcore: {} was written by an older flowcore (schema version 4; this build reads 13); upgrade it with `flowcore store upgrade`, or run a flow with it",
            path.display()
        )
    );
    let version = |p: &Path| -> i64 {
        raw(p)
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    };
    assert_eq!(version(&path), 4, "reading did not upgrade it");

    let upgraded = stdout(&flowcore_cli(&path, &["store", "upgrade"]));
    assert_eq!(
        upgraded,
        format!(
            "{} is ready for this flowcore; its runs are kept\n",
            path.display()
        )
    );
    assert_eq!(version(&path), 13);
    assert!(stdout(&flowcore_cli(&path, &["runs", "ls"])).contains("No flow runs yet"));
}

#[test]
fn a_store_of_schema_12_is_read_as_it_is() {
    // Schema 13 changed indexes only: a reader reads a store of 12 without upgrading it.
    let dir = tempdir();
    let path = dir.path().join("twelve.db");
    Store::create_sqlite_at_schema_version(&path, 12).unwrap();
    let before = std::fs::read(&path).unwrap();
    assert!(stdout(&flowcore_cli(&path, &["runs", "ls"])).contains("No flow runs yet"));
    let version: i64 = raw(&path)
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 12, "reading did not upgrade it");
    assert!(std::fs::read(&path).unwrap() == before, "left untouched");
}

#[test]
fn the_runs_of_a_killed_process_read_as_crashed_at_once_without_a_write() {
    let dir = tempdir();
    let path = dir.path().join("flowcore.db");
    let mut running = Running::spawn(&mut child(
        "child_records",
        [("READERS_STORE", path.as_os_str()), ("STUCK", "1".as_ref())],
    ));
    running.wait_for_line("STUCK");
    let pid = running.child.id();
    // Its states reach the file within a commit or two.
    support::wait_until("the stuck task run to be Running", None, || {
        (count(
            &path,
            "SELECT COUNT(*) FROM task_runs WHERE state = 'Running'",
            [],
        ) == 1)
            .then_some(())
    });
    let dashboard = start_dashboard(&path);
    let ls: serde_json::Value =
        serde_json::from_str(&stdout(&flowcore_cli(&path, &["runs", "ls", "--json"]))).unwrap();
    assert_eq!(ls[0]["state"], "Running", "alive, it is running");
    let id = ls[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(state_of(&dashboard, &id), "Running");

    running.kill();
    let killed = std::time::Instant::now();
    let before = contents(&path);
    let ls: serde_json::Value =
        serde_json::from_str(&stdout(&flowcore_cli(&path, &["runs", "ls", "--json"]))).unwrap();
    assert_eq!(ls[0]["state"], "Crashed");
    let error = ls[0]["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!("the process running it (pid {pid} on ")),
        "{error}"
    );
    let shown = stdout(&flowcore_cli(&path, &["runs", "show", &id, "--json"]));
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    let kinds: Vec<&str> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["Pending", "Running", "Crashed"]);
    // The dashboard that was open all along sees it too: it looks at which processes died at
    // most once a second.
    support::wait_until("the dashboard to show the run Crashed", None, || {
        (state_of(&dashboard, &id) == "Crashed").then_some(())
    });
    // Within two heartbeat periods (5 s each) of the kill, as issue 12 asks.
    let took = killed.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "the dashboard showed the run Crashed {took:?} after the kill"
    );
    drop(dashboard);

    // Nothing was written: the file still says Running; a program that records runs marks it.
    assert!(contents(&path) == before);
    assert_eq!(
        count(
            &path,
            "SELECT COUNT(*) FROM flow_runs WHERE state = 'Running'",
            []
        ),
        1
    );
    drop(Store::sqlite(&path).unwrap());
    assert_eq!(
        count(
            &path,
            "SELECT COUNT(*) FROM flow_runs WHERE state = 'Crashed'",
            []
        ),
        1
    );
}

/// `GET /api/runs/<id>/state`'s state.
fn state_of(dashboard: &Dashboard, id: &str) -> String {
    let body: serde_json::Value = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
        .get(format!("{}/api/runs/{id}/state", dashboard.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    body["state"].as_str().unwrap().to_owned()
}
