//! The run store when things go wrong around it: a disk that fills up, a lock another process
//! holds for seconds, many crashed runs to mark, a process killed before its first commit.
//! Nothing a run recorded is dropped, the file stays consistent (no task run without its flow
//! run, no history with a gap), and a run whose records could not be committed does not pass
//! for recorded.
//!
//! Children are this test binary again (see tests/support); the disk is a small tmpfs, which
//! needs root: CI runs these as root with `FLOWCORE_MOUNT_TEST=required`.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use flowcore::StateKind::*;
use flowcore::{Store, flow, task};
use support::{Running, Tmpfs, child, count, env_path, flowcore_cli, raw, show, tempdir};

#[task]
async fn tiny(i: u32) -> u32 {
    i
}

#[flow(name = "many-tiny")]
async fn many_tiny(n: u32) -> u32 {
    let mut last = 0;
    for i in 0..n {
        last = tiny(i).await;
    }
    last
}

#[task]
async fn hang_here() {
    std::future::pending::<()>().await;
}

#[flow(name = "hangs")]
async fn hangs() {
    println!("BODY_STARTED");
    hang_here().await;
}

/// The child of these tests. With `FAULTS_STORE` it installs that store, with a write timeout of
/// `WRITE_TIMEOUT_MS`; otherwise it uses the default store of `FLOWCORE_HOME`. It runs
/// `many_tiny(TASKS)` and prints what its record says, then, with `WAIT_FOR_SPACE`, waits until
/// everything is committed. With `HANG`, it waits for the file `GO` and runs `hangs` instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by the tests of tests/store_faults.rs"]
async fn child_flow() {
    if std::env::var_os("FAULTS_CHILD").is_none() {
        return;
    }
    if let Some(path) = env_path("FAULTS_STORE") {
        let ms: u64 = std::env::var("WRITE_TIMEOUT_MS").map_or(60_000, |v| v.parse().unwrap());
        Store::sqlite(path)
            .unwrap()
            .write_timeout(Duration::from_millis(ms))
            .install()
            .unwrap();
    }
    if let Some(go) = env_path("GO") {
        println!("STORE_OPEN");
        while !go.exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        hangs().await;
        return;
    }
    let tasks: u32 = std::env::var("TASKS").unwrap().parse().unwrap();
    let (last, run) = many_tiny(tasks).with_run().await;
    assert_eq!(last, tasks - 1);
    assert_eq!(run.task_runs.len(), tasks as usize);
    println!("FLOW_RUN {}", run.id);
    println!(
        "NOT_RECORDED {}",
        run.not_recorded.as_deref().unwrap_or("-")
    );
    println!("HEADLINE {}", run.summary().headline());
    if std::env::var_os("WAIT_FOR_SPACE").is_some() {
        let start = Instant::now();
        while Store::current().flush().await.is_err() {
            assert!(
                start.elapsed() < support::DEADLINE,
                "the store never recovered"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!("FLUSHED");
    }
}

fn flow_child<'a>(envs: impl IntoIterator<Item = (&'a str, &'a std::ffi::OsStr)>) -> Command {
    child(
        "child_flow",
        [("FAULTS_CHILD", "1".as_ref())].into_iter().chain(envs),
    )
}

/// A flow of this many task runs writes several times what a 2 MB disk holds.
const MANY: u32 = 30_000;

/// Task runs whose parent flow run is not in the file.
fn orphans(path: &Path) -> i64 {
    count(
        path,
        "SELECT COUNT(*) FROM task_runs WHERE flow_run_id NOT IN (SELECT id FROM flow_runs)",
        [],
    )
}

/// Runs whose states are not numbered 0, 1, 2, … without a gap.
fn histories_with_gaps(path: &Path) -> i64 {
    count(
        path,
        "SELECT COUNT(*) FROM (SELECT run_id, MIN(seq) AS lo, MAX(seq) AS hi, COUNT(*) AS n
             FROM states GROUP BY run_id) WHERE lo != 0 OR hi + 1 != n",
        [],
    )
}

#[test]
fn a_full_disk_holds_records_back_and_loses_none_once_space_is_back() {
    let Some(disk) = Tmpfs::mount("2m") else {
        return;
    };
    let path = disk.path().join("flowcore.db");
    let tasks = MANY.to_string();
    let mut run = Running::spawn(&mut flow_child([
        ("FAULTS_STORE", path.as_os_str()),
        ("WRITE_TIMEOUT_MS", "2000".as_ref()),
        ("TASKS", tasks.as_ref()),
        ("WAIT_FOR_SPACE", "1".as_ref()),
    ]));
    // The disk filled up: the run ended, and says it was not recorded.
    assert_eq!(run.wait_for_line("NOT_RECORDED"), "disk full");
    assert_eq!(
        run.wait_for_line("HEADLINE"),
        "Completed · not recorded: disk full"
    );
    let flow_run: flowcore::Uuid = run.wait_for_line("FLOW_RUN").parse().unwrap();

    // Space comes back while the process lives: everything it kept is committed.
    disk.remount("size=512m");
    run.wait_for_line("FLUSHED");
    let out = run.finish();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "could not record runs (the disk holding {} is full); keeping them and trying again",
            path.display()
        )),
        "the failure was said: {}",
        show(&out)
    );

    assert_eq!(count(&path, "SELECT COUNT(*) FROM flow_runs", []), 1);
    let state: String = raw(&path)
        .query_row("SELECT state FROM flow_runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(state, "Completed");
    assert_eq!(
        count(
            &path,
            "SELECT COUNT(*) FROM task_runs WHERE state = 'Completed' AND flow_run_id = ?1",
            [flow_run.as_bytes()]
        ),
        i64::from(MANY)
    );
    assert_eq!(
        count(&path, "SELECT COUNT(*) FROM states", []),
        3 * i64::from(MANY) + 3,
        "Pending, Running, Completed of every run"
    );
    assert_eq!(orphans(&path), 0);
    assert_eq!(histories_with_gaps(&path), 0);
}

#[test]
fn a_process_that_ends_while_the_disk_is_full_leaves_a_consistent_readable_store() {
    let Some(disk) = Tmpfs::mount("2m") else {
        return;
    };
    let path = disk.path().join("flowcore.db");
    let tasks = MANY.to_string();
    let out = support::run_ok(&mut flow_child([
        ("FAULTS_STORE", path.as_os_str()),
        ("WRITE_TIMEOUT_MS", "2000".as_ref()),
        ("TASKS", tasks.as_ref()),
    ]));
    assert_eq!(support::marker(&out, "NOT_RECORDED"), "disk full");
    let flow_run = support::marker(&out, "FLOW_RUN");

    // Readable while the disk is still full, and what it holds is whole: the flow run (its start
    // was committed before its body ran), shown Crashed since its process is gone.
    for _ in ["disk full", "space back"] {
        assert_eq!(orphans(&path), 0);
        assert_eq!(histories_with_gaps(&path), 0);
        let ls = flowcore_cli(&path, &["runs", "ls", "--json"]);
        assert!(ls.status.success(), "{}", show(&ls));
        let runs: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
        assert_eq!(runs[0]["id"], flow_run.as_str());
        assert_eq!(runs[0]["state"], "Crashed");
        disk.remount("size=512m");
    }
    // The next program that records runs marks it Crashed for good.
    drop(Store::sqlite(&path).unwrap());
    let state: String = raw(&path)
        .query_row("SELECT state FROM flow_runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(state, "Crashed");
}

#[test]
fn a_store_locked_for_seconds_is_waited_for_not_replaced_by_memory() {
    let home = tempdir();
    let path = home.path().join("flowcore.db");
    drop(Store::sqlite(&path).unwrap());
    // Longer than SQLite's busy timeout (5 s), as a process marking thousands of crashed runs
    // in one transaction once held it.
    let locker = rusqlite::Connection::open(&path).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let mut run = Running::spawn(&mut flow_child([
        ("FLOWCORE_HOME", home.path().as_os_str()),
        ("TASKS", "3".as_ref()),
    ]));
    std::thread::sleep(Duration::from_secs(7));
    assert!(
        run.child.try_wait().unwrap().is_none(),
        "the program waits for the store"
    );
    locker.execute_batch("COMMIT").unwrap();

    let out = run.finish();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("in memory only"), "{}", show(&out));
    assert_eq!(support::marker(&out, "NOT_RECORDED"), "-");
    let id: flowcore::Uuid = support::marker(&out, "FLOW_RUN").parse().unwrap();
    let stored = Store::open_existing(&path)
        .unwrap()
        .flow_run(id)
        .unwrap()
        .expect("the run is in the file");
    assert_eq!(stored.history.kinds(), [Pending, Running, Completed]);
    assert_eq!(stored.task_runs.len(), 3);
}

#[test]
fn crashed_runs_are_marked_in_short_transactions_that_let_other_processes_commit() {
    const RUNS: i64 = 20_000;
    let dir = tempdir();
    let path = dir.path().join("flowcore.db");
    drop(Store::sqlite(&path).unwrap());
    let gone = {
        let mut c = Command::new("true").spawn().unwrap();
        c.wait().unwrap();
        c.id()
    };
    let dead_process = [7u8; 16];
    {
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        let host: String = conn
            .query_row("SELECT host FROM processes LIMIT 1", [], |r| r.get(0))
            .unwrap();
        let tx = conn.transaction().unwrap();
        tx.execute(
            "INSERT INTO processes (id, pid, host, start_ticks, started_at, heartbeat_at)
             VALUES (?1, ?2, ?3, 1, 0, 0)",
            rusqlite::params![&dead_process[..], gone, host],
        )
        .unwrap();
        let flow_run = [8u8; 16];
        tx.execute(
            "INSERT INTO flow_runs (id, name, flow, state, created_at, process_id)
             VALUES (?1, 'left-behind', 'planted', 'Running', 0, ?2)",
            rusqlite::params![&flow_run[..], &dead_process[..]],
        )
        .unwrap();
        for i in 0..RUNS {
            let id = flowcore::Uuid::from_u128(i as u128 + 1);
            tx.execute(
                "INSERT INTO task_runs (id, flow_run_id, task, state, created_at, process_id)
                 VALUES (?1, ?2, 'planted', 'Running', 0, ?3)",
                rusqlite::params![id.as_bytes(), &flow_run[..], &dead_process[..]],
            )
            .unwrap();
            for (seq, kind) in [(0, "Pending"), (1, "Running")] {
                tx.execute(
                    "INSERT INTO state_rows (run_id, seq, kind, at) VALUES (?1, ?2, ?3, 0)",
                    rusqlite::params![id.as_bytes(), seq, kind],
                )
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }

    // Another connection counts the commits it sees while the store is opened.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let path = path.clone();
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            let conn = raw(&path);
            let version = |c: &rusqlite::Connection| -> i64 {
                c.query_row("PRAGMA data_version", [], |r| r.get(0))
                    .unwrap()
            };
            let mut last = version(&conn);
            let mut changes = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let now = version(&conn);
                if now != last {
                    changes += 1;
                    last = now;
                }
            }
            changes
        })
    };
    let store = Store::sqlite(&path).unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let commits_seen = watcher.join().unwrap();
    drop(store);

    assert_eq!(
        count(
            &path,
            "SELECT COUNT(*) FROM states WHERE kind = 'Crashed' AND seq = 2",
            []
        ),
        RUNS,
        "every task run Crashed right after Running"
    );
    assert_eq!(
        count(
            &path,
            "SELECT COUNT(*) FROM flow_runs WHERE state = 'Crashed'",
            []
        ),
        1
    );
    assert_eq!(
        count(
            &path,
            "SELECT COUNT(*) FROM task_runs WHERE state = 'Crashed'",
            []
        ),
        RUNS
    );
    // 20,000 runs at 1,000 per transaction: twenty commits and more, where one transaction
    // held the lock for all of them before.
    assert!(
        commits_seen >= 5,
        "the lock was let go between batches: {commits_seen} commits seen"
    );
}

#[test]
fn a_flow_body_starts_only_once_its_run_is_committed_so_a_kill_leaves_it_crashed() {
    let dir = tempdir();
    let path = dir.path().join("flowcore.db");
    let go = dir.path().join("go");
    let mut run = Running::spawn(&mut flow_child([
        ("FAULTS_STORE", path.as_os_str()),
        ("GO", go.as_os_str()),
    ]));
    run.wait_for_line("STORE_OPEN");
    let locker = rusqlite::Connection::open(&path).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    std::fs::write(&go, "").unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !run.has_printed("BODY_STARTED"),
        "the body waits while the run's start cannot be committed"
    );
    locker.execute_batch("COMMIT").unwrap();
    run.wait_for_line("BODY_STARTED");
    let pid = run.child.id();
    run.kill();

    let ls = flowcore_cli(&path, &["runs", "ls", "--json"]);
    assert!(ls.status.success(), "{}", show(&ls));
    let runs: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1);
    assert_eq!(runs[0]["flow"], "hangs");
    assert_eq!(runs[0]["state"], "Crashed");
    let error = runs[0]["error"].as_str().unwrap();
    assert!(error.contains(&format!("pid {pid}")), "{error}");
}
