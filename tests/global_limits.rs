//! Concurrency limits held in the store: with `db` limited to 2, three processes running 20
//! task runs tagged `db` each never have more than 2 running at once, counted from the Running
//! intervals they recorded; a process killed while holding a slot does not keep it. On SQLite
//! and on PostgreSQL (see `support::backends`).

#[macro_use]
mod support;

use std::time::Duration;

use flowcore::{StateKind, Store, Timestamp, Uuid, flow, task};
use support::backends::TestStore;
use support::{Running, child, env_path, marker, wait_until};

store_tests!(
    three_processes_never_run_more_task_runs_of_a_limited_tag_than_the_limit,
    a_killed_process_gives_its_slots_back,
);

const TASKS: u32 = 20;

#[task(tags = ["db"])]
async fn db_step(i: u32) -> u32 {
    tokio::time::sleep(Duration::from_millis(40)).await;
    i
}

#[flow]
async fn db_load() -> u32 {
    let runs: Vec<_> = (0..TASKS).map(|i| db_step(i).submit()).collect();
    let mut sum = 0;
    for run in runs {
        sum += run.await;
    }
    sum
}

/// Hangs in a task tagged `db`, holding its slot, until killed.
#[task(tags = ["db"])]
async fn db_hang() {
    println!("HOLDING");
    std::future::pending::<()>().await;
}

#[flow]
async fn db_hanging() {
    db_hang().await;
}

/// A process of the tests: `LIMITS_CHILD=load` runs `db_load` once the `GO` file is there,
/// `hang` runs `db_hanging`; on the `STORE` given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by the tests of tests/global_limits.rs"]
async fn child_limited() {
    let Some(role) = std::env::var("LIMITS_CHILD").ok() else {
        return;
    };
    let target = std::env::var_os("STORE").unwrap();
    Store::open(target).unwrap().install().unwrap();
    if role == "hang" {
        db_hanging().await;
        return;
    }
    println!("READY");
    let go = env_path("GO").unwrap();
    wait_until("the GO file", None, || go.exists().then_some(()));
    let (sum, run) = db_load().with_run().await;
    assert_eq!(sum, (0..TASKS).sum::<u32>());
    println!("FLOW_RUN {}", run.id);
}

/// The most intervals `[from, to)` open at once.
fn most_at_once(intervals: &[(Timestamp, Timestamp)]) -> usize {
    let mut edges: Vec<(Timestamp, i32)> = intervals
        .iter()
        .flat_map(|&(from, to)| [(from, 1), (to, -1)])
        .collect();
    // An interval that ends when another begins does not overlap it.
    edges.sort_by_key(|&(at, step)| (at, step));
    let (mut now, mut most) = (0i32, 0i32);
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    most as usize
}

async fn three_processes_never_run_more_task_runs_of_a_limited_tag_than_the_limit(ts: &TestStore) {
    ts.store().set_limit("db", 2).unwrap();
    let dir = support::tempdir();
    let go = dir.path().join("go");
    let mut children: Vec<Running> = (0..3)
        .map(|_| {
            Running::spawn(&mut child(
                "child_limited",
                [
                    ("LIMITS_CHILD", "load".as_ref()),
                    ("STORE", ts.target()),
                    ("GO", go.as_os_str()),
                ],
            ))
        })
        .collect();
    for c in &mut children {
        c.wait_for_line("READY");
    }
    std::fs::write(&go, "go").unwrap();
    let ids: Vec<Uuid> = children
        .into_iter()
        .map(|c| marker(&c.finish(), "FLOW_RUN").parse().unwrap())
        .collect();

    let store = ts.reopen();
    let mut intervals = Vec::new();
    for id in ids {
        let run = store.flow_run(id).unwrap().unwrap();
        assert_eq!(run.task_runs.len(), TASKS as usize);
        for task_run in &run.task_runs {
            let history = &task_run.history;
            assert_eq!(
                history.kinds(),
                [StateKind::Pending, StateKind::Running, StateKind::Completed]
            );
            intervals.push((history[1].at, history[2].at));
        }
    }
    assert_eq!(intervals.len(), 3 * TASKS as usize);
    assert_eq!(
        most_at_once(&intervals),
        2,
        "never more than the limit, and the limit reached"
    );
    assert_eq!(
        ts.count("SELECT COUNT(*) FROM limit_slots", &[]),
        0,
        "every slot given back"
    );
    let limits = ts.store().limits().unwrap();
    assert_eq!(limits.len(), 1);
    assert_eq!(
        (limits[0].tag.as_str(), limits[0].max, limits[0].running),
        ("db", 2, 0)
    );
}

async fn a_killed_process_gives_its_slots_back(ts: &TestStore) {
    ts.store().set_limit("db", 1).unwrap();
    let mut hanging = Running::spawn(&mut child(
        "child_limited",
        [("LIMITS_CHILD", "hang".as_ref()), ("STORE", ts.target())],
    ));
    hanging.wait_for_line("HOLDING");
    // The slot is committed when it is taken; the task run's Running state, with a commit of
    // the writer's own, which is waited for before the kill.
    wait_until("the task run to be Running in the store", None, || {
        (ts.count(
            "SELECT COUNT(*) FROM task_runs WHERE state = 'Running'",
            &[],
        ) == 1)
            .then_some(())
    });
    assert_eq!(ts.count("SELECT COUNT(*) FROM limit_slots", &[]), 1);
    hanging.kill();
    // The next process to open the store for writing finds it dead, and frees its slot.
    drop(Store::open(ts.target()).unwrap());
    assert_eq!(
        ts.count(
            "SELECT COUNT(*) FROM task_runs WHERE state = 'Crashed'",
            &[]
        ),
        1,
        "its task run is Crashed"
    );
    assert_eq!(ts.count("SELECT COUNT(*) FROM limit_slots", &[]), 0);
    assert_eq!(ts.store().limits().unwrap()[0].running, 0);
}
