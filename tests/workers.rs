//! Several processes serving the same deployments, on one store: its workers. Each scheduled
//! time runs once, however many workers see it; the run of a worker that is killed is `Crashed`
//! and taken over by another as its next attempt; and a worker that was only cut off (here:
//! stopped with SIGSTOP past its lease, as a paused VM or a network partition leaves it) finds
//! its runs taken over and its late writes refused. Each test runs on SQLite (processes of one
//! machine) and on PostgreSQL (see `support::backends`).
//!
//! Workers are this test binary again (`child_worker`), each given a host name of its own
//! (`FLOWCORE_HOST`) where a test needs them judged by their heartbeat rather than their pid,
//! and a short lease (`FLOWCORE_LEASE`) so that takeovers come in seconds.

#[macro_use]
mod support;

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use flowcore::StateKind::*;
use flowcore::{Deployment, Store, Uuid, background, flow, task};
use support::backends::TestStore;
use support::netns::{Host, Network};
use support::{
    PgDb, Postgres, PostgresOptions, Running, Shutdown, child, env_path, show, wait_until,
};

store_tests!(
    three_workers_run_each_scheduled_time_once,
    three_workers_skip_a_time_while_any_of_them_runs_the_deployment,
    a_thousand_delayed_runs_over_three_workers_one_killed_each_run_once,
    a_killed_workers_run_is_taken_over_by_another_as_its_next_attempt,
    a_worker_cut_off_past_its_lease_loses_its_run_and_its_late_writes_are_refused,
);

/// The lease the workers of these tests are given: a worker judged by its heartbeat is taken
/// for dead this long after its last one.
const LEASE: &str = "3s";

#[task]
async fn tick_step() -> u32 {
    1
}

#[flow]
async fn tick() -> u32 {
    tick_step().await
}

/// Takes two and a half scheduled periods: with `Overlap::Skip` (the default), the times due
/// meanwhile are skipped, whichever worker would take them.
#[flow]
async fn slow_tick() -> u32 {
    tokio::time::sleep(Duration::from_millis(2500)).await;
    tick_step().await
}

#[task]
async fn first_step() -> u32 {
    1
}

/// Waits for the `GO` file, so that the test can kill or stop its worker while it runs.
#[task]
async fn long_step() -> u32 {
    println!("LONG_STEP_RUNNING");
    let go = env_path("GO").expect("GO");
    while !go.exists() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    2
}

#[flow]
async fn long_job() -> u32 {
    first_step().await + long_step().await
}

/// Records that this process ran it for `n` (a line in a file of the process's own in
/// `EFFECTS`), then takes a while: a worker killed meanwhile has done the side effect but not
/// finished the run.
#[task(background)]
async fn side_effect_square(n: u64) -> u64 {
    use std::io::Write as _;
    let effects = env_path("EFFECTS").expect("EFFECTS");
    // One write of the whole line: the worker's runs append to its file at once.
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(effects.join(std::process::id().to_string()))
        .and_then(|mut f| f.write_all(format!("{n}\n").as_bytes()))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    n * n
}

/// A worker: serves `tick` every second (with `TICK`), `long_job` (on request) and the
/// background task `side_effect_square` (with `TASKS`) on the `STORE` it is given, until the
/// `STOP` file appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by the tests of tests/workers.rs"]
async fn child_worker() {
    let Some(target) = std::env::var_os("WORKER_STORE") else {
        return;
    };
    Store::open(target).unwrap().install().unwrap();
    flowcore::init_logging();
    let stop = env_path("STOP").expect("STOP");
    let mut deployments = vec![Deployment::new("long-job", long_job)];
    if std::env::var_os("TICK").is_some() {
        deployments.push(Deployment::new("tick", tick).every("1s"));
    }
    if std::env::var_os("SLOW_TICK").is_some() {
        deployments.push(Deployment::new("slow-tick", slow_tick).every("1s"));
    }
    let stopped = async move {
        while !stop.exists() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let mut serve = flowcore::serve(deployments);
    if std::env::var_os("TASKS").is_some() {
        serve = serve.tasks([background(side_effect_square)]).task_limit(8);
    }
    println!("WORKER_READY");
    let served = serve.with_shutdown(stopped).await;
    match served {
        Ok(()) => println!("WORKER_STOPPED"),
        Err(e) => println!("WORKER_FAILED {e}"),
    }
}

fn worker(ts: &TestStore, dir: &Path, host: &str, serves: Serves) -> Running {
    worker_on(None, ts.target(), LEASE, dir, host, serves)
}

/// A worker on `store`, in the namespace of `netns` if given (else this host), known as
/// `host`, with this `lease`.
fn worker_on(
    netns: Option<&Host>,
    store: &OsStr,
    lease: &str,
    dir: &Path,
    host: &str,
    serves: Serves,
) -> Running {
    let envs = [
        ("WORKER_STORE", store),
        ("STOP", dir.join("stop").as_os_str()),
        ("GO", dir.join("go").as_os_str()),
        ("EFFECTS", dir.as_os_str()),
        ("FLOWCORE_HOST", OsStr::new(host)),
        ("FLOWCORE_LEASE", OsStr::new(lease)),
        ("NO_COLOR", OsStr::new("1")),
    ]
    .map(|(k, v)| (k, v.to_owned()));
    let mut cmd = match netns {
        Some(netns) => netns.child("child_worker", envs),
        None => child("child_worker", envs),
    };
    match serves {
        Serves::LongJob => {}
        Serves::Tick => {
            cmd.env("TICK", "1");
        }
        Serves::SlowTick => {
            cmd.env("SLOW_TICK", "1");
        }
        Serves::Tasks => {
            cmd.env("TASKS", "1");
        }
    }
    let mut running = Running::spawn(&mut cmd);
    running.wait_for_line("WORKER_READY");
    running
}

/// What a worker serves besides `long-job`.
#[derive(Clone, Copy)]
enum Serves {
    LongJob,
    /// `tick`, every second.
    Tick,
    /// `slow-tick`, every second, each run taking 2.5 s.
    SlowTick,
    /// The background task `side_effect_square`.
    Tasks,
}

fn signal(running: &Running, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &running.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Each of the `runs` runs of `tick` has its own scheduled time (its `Scheduled` state names it)
/// and ended `Completed`, once, with its one task run Completed.
fn assert_each_tick_completed_once(ts: &TestStore, runs: i64) {
    let of_tick = "(SELECT id FROM flow_runs WHERE deployment = 'tick')";
    let count = |sql: String| ts.count(&sql, &[]);
    assert_eq!(
        count(format!(
            "SELECT COUNT(DISTINCT message) FROM states WHERE kind = 'Scheduled' AND run_id IN {of_tick}"
        )),
        runs,
        "no scheduled time twice"
    );
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM flow_runs WHERE deployment = 'tick' AND state = 'Completed'"
                .to_owned()
        ),
        runs
    );
    assert_eq!(
        count(format!(
            "SELECT COUNT(*) FROM states WHERE kind = 'Completed' AND run_id IN {of_tick}"
        )),
        runs,
        "Completed once"
    );
    assert_eq!(
        count(format!(
            "SELECT COUNT(*) FROM task_runs WHERE state = 'Completed' AND flow_run_id IN {of_tick}"
        )),
        runs
    );
}

/// Waits until the run `id` runs again, claimed a second time, after its worker was lost.
fn wait_for_second_attempt(ts: &TestStore, id: Uuid) {
    wait_until("the run to be Running again, attempt 2", None, || {
        (ts.count(
            "SELECT COUNT(*) FROM flow_runs WHERE id = $1 AND state = 'Running' AND claims = 2",
            &[id.as_bytes()],
        ) == 1)
            .then_some(())
    });
}

/// Waits until the run `id` ends, and reads it back as a reader does.
fn wait_for_end(ts: &TestStore, id: Uuid) -> flowcore::FlowRunRecord {
    wait_until("the run to end", None, || {
        Store::open_existing(ts.target())
            .unwrap()
            .flow_run(id)
            .unwrap()
            .filter(|r| r.state().is_final())
    })
}

/// What a run taken over after its worker was lost shows: its history through the crash and
/// the second attempt, Completed once, and its task runs of both attempts, none unfinished.
fn assert_taken_over(ts: &TestStore, record: &flowcore::FlowRunRecord) {
    assert_eq!(
        record.history.kinds(),
        [
            Scheduled, Pending, Running, Crashed, Scheduled, Pending, Running, Completed
        ],
        "{:#?}",
        record.history
    );
    assert_eq!(
        record.history[4].message.as_deref(),
        Some("to be taken over by another worker: attempt 2 of 2")
    );
    assert_eq!(
        ts.count(
            "SELECT COUNT(*) FROM states WHERE run_id = $1 AND kind = 'Completed'",
            &[record.id.as_bytes()],
        ),
        1,
        "Completed once"
    );
    assert_eq!(
        ts.count(
            "SELECT COUNT(*) FROM task_runs
             WHERE flow_run_id = $1 AND state IN ('Pending', 'Running', 'Retrying')",
            &[record.id.as_bytes()],
        ),
        0,
        "no task run left unfinished"
    );
    let steps: Vec<_> = record
        .task_runs
        .iter()
        .map(|t| (t.task.to_string(), t.state().kind))
        .collect();
    assert_eq!(
        steps,
        [
            ("first_step".to_owned(), Completed),
            ("long_step".to_owned(), Crashed),
            ("first_step".to_owned(), Completed),
            ("long_step".to_owned(), Completed),
        ]
    );
}

// ---------------------------------------------------------------------------------------------

async fn three_workers_run_each_scheduled_time_once(ts: &TestStore) {
    let dir = support::tempdir();
    let workers: Vec<Running> = ["host-a", "host-b", "host-c"]
        .iter()
        .map(|host| worker(ts, dir.path(), host, Serves::Tick))
        .collect();
    // Eight scheduled times, at least, for all three.
    std::thread::sleep(Duration::from_secs(8));
    std::fs::write(dir.path().join("stop"), "stop").unwrap();
    for w in workers {
        let out = w.finish();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("WORKER_STOPPED"),
            "{}",
            show(&out)
        );
    }

    let runs = ts.count(
        "SELECT COUNT(*) FROM flow_runs WHERE deployment = 'tick'",
        &[],
    );
    let times = ts.count(
        "SELECT COUNT(*) FROM schedule_ticks WHERE deployment = 'tick'",
        &[],
    );
    assert!(
        runs >= 6,
        "{runs} runs in 8 s of a schedule of every second"
    );
    assert_eq!(runs, times, "one run per scheduled time");
    assert_each_tick_completed_once(ts, runs);
    assert_eq!(
        ts.count(
            "SELECT COUNT(*) FROM task_runs
             WHERE flow_run_id IN (SELECT id FROM flow_runs WHERE deployment = 'tick')",
            &[],
        ),
        runs,
        "one task run per flow run"
    );
    // Which worker ran each time is whichever asked first: they share the work.
    let by = ts.count(
        "SELECT COUNT(DISTINCT process_id) FROM flow_runs WHERE deployment = 'tick'",
        &[],
    );
    println!("{runs} scheduled runs, run by {by} of the 3 workers");
}

// ---------------------------------------------------------------------------------------------

/// `Overlap::Skip` across workers: a time due while a run of the deployment is going on any
/// worker is skipped, so the runs' `Running` spans never overlap, whichever worker ran them.
async fn three_workers_skip_a_time_while_any_of_them_runs_the_deployment(ts: &TestStore) {
    let dir = support::tempdir();
    let workers: Vec<Running> = ["host-a", "host-b", "host-c"]
        .iter()
        .map(|host| worker(ts, dir.path(), host, Serves::SlowTick))
        .collect();
    std::thread::sleep(Duration::from_secs(9));
    std::fs::write(dir.path().join("stop"), "stop").unwrap();
    let mut skipped = 0;
    for w in workers {
        let out = w.finish();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("WORKER_STOPPED"), "{}", show(&out));
        skipped += stdout.matches("an earlier run is still going").count();
    }

    let store = ts.reopen();
    let filter = flowcore::store::RunFilter {
        flow: Some("slow_tick".to_owned()),
        ..Default::default()
    };
    let mut spans: Vec<(flowcore::Timestamp, flowcore::Timestamp, String)> = store
        .flow_runs(&filter)
        .unwrap()
        .into_iter()
        .map(|summary| {
            let run = store.flow_run(summary.id).unwrap().unwrap();
            let running = run
                .history
                .iter()
                .find(|s| s.kind == Running)
                .unwrap_or_else(|| panic!("{} never ran: {:?}", run.name, run.history.kinds()));
            let end = run.state();
            assert!(end.is_final(), "{} is {:?}", run.name, end.kind);
            (running.at, end.at, run.name.clone())
        })
        .collect();
    spans.sort();
    assert!(
        spans.len() >= 2,
        "{} runs in 9 s of a schedule of every second, each 2.5 s",
        spans.len()
    );
    for pair in spans.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0,
            "{} ran until {} and {} started at {}: runs overlapped",
            pair[0].2,
            pair[0].1,
            pair[1].2,
            pair[1].0
        );
    }
    assert!(skipped > 0, "no time was skipped");
    println!(
        "{} runs of slow-tick, {skipped} times skipped by the 3 workers",
        spans.len()
    );
}

async fn a_thousand_delayed_runs_over_three_workers_one_killed_each_run_once(ts: &TestStore) {
    let dir = support::tempdir();
    let workers: Vec<Running> = ["host-a", "host-b", "host-c"]
        .iter()
        .map(|host| worker(ts, dir.path(), host, Serves::Tasks))
        .collect();
    delay_a_thousand_and_kill_one(ts, dir.path(), workers).await;
}

/// Delays 1,000 runs of `side_effect_square` from this process (`map(…).on_workers()`), kills
/// the first of `workers` once 300 have completed, and checks what the issue asks: every value
/// gathered in order, each run `Completed` exactly once, each side effect done once by the
/// worker that completed the run (the killed worker's runs in flight were taken over and done
/// again elsewhere, as their second attempt), and the killed worker's runs changed nothing but
/// timing.
async fn delay_a_thousand_and_kill_one(ts: &TestStore, dir: &Path, mut workers: Vec<Running>) {
    const RUNS: u64 = 1_000;
    let victim = workers.remove(0);
    let victim_pid = victim.child.id();
    let completed = || {
        ts.count(
            "SELECT COUNT(*) FROM task_runs WHERE task = 'side_effect_square' AND state = 'Completed'",
            &[],
        )
    };
    // Midway, and while it holds runs.
    let victims_running = || {
        ts.count(
            &format!(
                "SELECT COUNT(*) FROM task_runs t JOIN processes p ON p.id = t.process_id
                 WHERE t.task = 'side_effect_square' AND t.state = 'Running'
                     AND p.pid = {victim_pid}"
            ),
            &[],
        )
    };
    let kill = async {
        while completed() < 300 || victims_running() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        victim.kill();
    };
    let started = Instant::now();
    let gather = ts
        .store()
        .scope(flowcore::map(0..RUNS, side_effect_square).on_workers());
    let (values, _) = tokio::join!(gather, kill);
    let values = values.unwrap();
    let took = started.elapsed();
    std::fs::write(dir.join("stop"), "stop").unwrap();
    for w in workers {
        w.finish();
    }

    let values: Vec<u64> = values.into_iter().map(Result::unwrap).collect();
    assert_eq!(
        values,
        (0..RUNS).map(|n| n * n).collect::<Vec<_>>(),
        "in order"
    );
    let of_task = "(SELECT id FROM task_runs WHERE task = 'side_effect_square')";
    assert_eq!(completed(), RUNS as i64);
    assert_eq!(
        ts.count(
            &format!(
                "SELECT COUNT(*) FROM states WHERE kind = 'Completed' AND run_id IN {of_task}"
            ),
            &[]
        ),
        RUNS as i64,
        "each run Completed once"
    );
    // Side effects, by the process that did them.
    let mut done_by: std::collections::HashMap<u32, Vec<u64>> = Default::default();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let Some(pid) = path
            .file_name()
            .and_then(|n| n.to_str()?.parse::<u32>().ok())
        else {
            continue;
        };
        let lines = support::lines(&path);
        done_by.insert(pid, lines.iter().map(|l| l.parse().unwrap()).collect());
    }
    let completed_by_victim = ts.count(
        &format!(
            "SELECT COUNT(*) FROM task_runs t JOIN processes p ON p.id = t.process_id
             WHERE t.task = 'side_effect_square' AND t.state = 'Completed' AND p.pid = {victim_pid}"
        ),
        &[],
    );
    let mut by_survivors: Vec<u64> = done_by
        .iter()
        .filter(|(pid, _)| **pid != victim_pid)
        .flat_map(|(_, done)| done.iter().copied())
        .collect();
    by_survivors.sort_unstable();
    let before = by_survivors.len();
    by_survivors.dedup();
    assert_eq!(
        before,
        by_survivors.len(),
        "no side effect twice among the survivors"
    );
    assert_eq!(
        by_survivors.len() as i64,
        RUNS as i64 - completed_by_victim,
        "every run the survivors completed, done once"
    );
    let by_victim = done_by.get(&victim_pid).map_or(0, Vec::len) as i64;
    let taken_over = ts.count("SELECT COUNT(*) FROM task_requests WHERE claims = 2", &[]);
    assert!(
        by_victim >= completed_by_victim && taken_over >= by_victim - completed_by_victim,
        "the killed worker's unfinished runs ({}) were taken over ({taken_over})",
        by_victim - completed_by_victim
    );
    assert!(taken_over >= 1, "the worker was killed with runs in flight");
    println!(
        "{RUNS} delayed runs in {took:?}; the killed worker had completed {completed_by_victim}, {taken_over} were taken over"
    );
}

// ---------------------------------------------------------------------------------------------

/// Requests a run of `long-job` and waits until its long step runs on one of the workers;
/// returns the run's id and the host of the worker running it.
fn start_long_job(ts: &TestStore) -> (Uuid, String) {
    let requested = ts.store().request_run("long-job", &[]).unwrap();
    let id = requested.id;
    wait_until("the long step to run", None, || {
        let running = ts.count(
            "SELECT COUNT(*) FROM task_runs
             WHERE flow_run_id = $1 AND task = 'long_step' AND state = 'Running'",
            &[id.as_bytes()],
        );
        (running == 1).then_some(())
    });
    let store = Store::open_existing(ts.target()).unwrap();
    let holder = store
        .workers()
        .unwrap()
        .into_iter()
        .find(|w| w.runs_held == 1)
        .expect("a worker holds the run");
    (id, holder.host)
}

async fn a_killed_workers_run_is_taken_over_by_another_as_its_next_attempt(ts: &TestStore) {
    let dir = support::tempdir();
    let mut workers: Vec<(String, Running)> = ["host-a", "host-b"]
        .iter()
        .map(|host| {
            (
                host.to_string(),
                worker(ts, dir.path(), host, Serves::LongJob),
            )
        })
        .collect();
    let (id, holder) = start_long_job(ts);
    let at = workers.iter().position(|(h, _)| *h == holder).unwrap();
    let (_, killed) = workers.remove(at);
    killed.kill();
    let killed_at = Instant::now();

    // The other worker finds it dead (by its heartbeat: another host), and claims the run as
    // its second attempt; the long step runs again there, and ends once GO is there.
    wait_for_second_attempt(ts, id);
    let takeover = killed_at.elapsed();
    std::fs::write(dir.path().join("go"), "go").unwrap();
    let record = wait_for_end(ts, id);
    std::fs::write(dir.path().join("stop"), "stop").unwrap();
    for (_, w) in workers {
        w.finish();
    }

    println!("taken over {takeover:?} after the kill (lease {LEASE})");
    assert!(
        takeover < Duration::from_secs(15),
        "taken over {takeover:?} after the kill"
    );
    assert_taken_over(ts, &record);
    let crashed = &record.history[3];
    assert!(
        crashed
            .message
            .as_deref()
            .is_some_and(|m| m.contains(&format!(" on {holder}) stopped"))),
        "{crashed:?}"
    );
}

// ---------------------------------------------------------------------------------------------

async fn a_worker_cut_off_past_its_lease_loses_its_run_and_its_late_writes_are_refused(
    ts: &TestStore,
) {
    let dir = support::tempdir();
    let mut workers: Vec<(String, Running)> = ["host-a", "host-b"]
        .iter()
        .map(|host| {
            (
                host.to_string(),
                worker(ts, dir.path(), host, Serves::LongJob),
            )
        })
        .collect();
    let (id, holder) = start_long_job(ts);
    let at = workers.iter().position(|(h, _)| *h == holder).unwrap();
    let (_, paused) = workers.remove(at);
    signal(&paused, "STOP");

    // Past its lease, the other worker takes it for dead and takes over its run.
    wait_for_second_attempt(ts, id);
    // Back, with its long step able to finish: whatever it writes now must change nothing.
    std::fs::write(dir.path().join("go"), "go").unwrap();
    signal(&paused, "CONT");
    let out = paused.finish_unchecked();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("WORKER_FAILED another worker took this one for dead"),
        "{}",
        show(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refuses this process's writes"),
        "{}",
        show(&out)
    );

    let record = wait_for_end(ts, id);
    std::fs::write(dir.path().join("stop"), "stop").unwrap();
    for (_, w) in workers {
        w.finish();
    }
    // The first attempt's long step stays Crashed: its worker finished it, late, and was
    // refused.
    assert_taken_over(ts, &record);
}

// ---------------------------------------------------------------------------------------------
// Across hosts: each worker in a network namespace of its own, talking TCP to a PostgreSQL that
// listens on the bridge (tests/support/netns.rs).

/// A PostgreSQL for workers on `hosts` hosts. Fields drop in order: the server before the
/// network whose bridge address it listens on.
struct Hosts {
    ts: TestStore,
    /// What the workers connect to: the database over TCP, on the bridge's address.
    url: String,
    pg: Postgres,
    net: Network,
}

impl Hosts {
    fn new(hosts: usize, hint: &str) -> Option<Hosts> {
        let net = Network::new(hosts)?;
        let pg = Postgres::with_options(PostgresOptions::default().tcp(net.bridge_ip()))?;
        let db: PgDb = pg.database(hint);
        let url = db.tcp_url().expect("the server listens on TCP").to_owned();
        Some(Hosts {
            ts: TestStore::on_database(db),
            url,
            pg,
            net,
        })
    }

    fn worker(&self, i: usize, lease: &str, dir: &Path, serves: Serves) -> Running {
        let host = self.net.host(i);
        worker_on(
            Some(host),
            OsStr::new(&self.url),
            lease,
            dir,
            &format!("host-{i}"),
            serves,
        )
    }
}

#[test]
fn across_hosts_each_scheduled_time_runs_once_through_a_postgres_restart() {
    let Some(mut hosts) = Hosts::new(3, "across_ticks") else {
        return;
    };
    let dir = support::tempdir();
    // A lease longer than the restart: no worker is taken for dead while the server is away.
    let workers: Vec<Running> = (0..3)
        .map(|i| hosts.worker(i, "20s", dir.path(), Serves::Tick))
        .collect();
    // 30 s of a schedule of every second, with the server restarted halfway.
    std::thread::sleep(Duration::from_secs(15));
    hosts.pg.restart(Shutdown::Fast);
    std::thread::sleep(Duration::from_secs(15));
    std::fs::write(dir.path().join("stop"), "stop").unwrap();
    for w in workers {
        let out = w.finish();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("WORKER_STOPPED"),
            "{}",
            show(&out)
        );
    }

    let ts = &hosts.ts;
    let runs = ts.count(
        "SELECT COUNT(*) FROM flow_runs WHERE deployment = 'tick'",
        &[],
    );
    assert!(
        runs >= 27,
        "{runs} runs in 30 s of a schedule of every second"
    );
    // One run per second from the first to the last, the restart's seconds included.
    let span = ts.count(
        "SELECT (MAX(at) - MIN(at)) / 1000000 + 1 FROM schedule_ticks WHERE deployment = 'tick'",
        &[],
    );
    assert_eq!(runs, span, "a run for every second, none twice");
    assert_each_tick_completed_once(ts, runs);
    let by = ts.count(
        "SELECT COUNT(DISTINCT host) FROM processes
         WHERE id IN (SELECT process_id FROM flow_runs WHERE deployment = 'tick')",
        &[],
    );
    println!("{runs} scheduled runs across the restart, run on {by} of the 3 hosts");
}

#[test]
fn across_hosts_a_killed_worker_and_a_worker_cut_off_lose_their_runs_to_another() {
    let Some(hosts) = Hosts::new(3, "across_takeover") else {
        return;
    };
    let ts = &hosts.ts;
    let dir = support::tempdir();
    let mut workers: Vec<(String, Running)> = (0..3)
        .map(|i| {
            (
                format!("host-{i}"),
                hosts.worker(i, LEASE, dir.path(), Serves::LongJob),
            )
        })
        .collect();

    // Killed: its run is taken over, as its next attempt.
    let (first, holder) = start_long_job(ts);
    let at = workers.iter().position(|(h, _)| *h == holder).unwrap();
    workers.remove(at).1.kill();
    wait_for_second_attempt(ts, first);
    std::fs::write(dir.path().join("go"), "go").unwrap();
    let record = wait_for_end(ts, first);
    assert_taken_over(ts, &record);
    std::fs::remove_file(dir.path().join("go")).unwrap();

    // Cut off: its link down past its lease, then back. Its run was taken over meanwhile,
    // and what it writes once back is refused.
    let (second, holder) = start_long_job(ts);
    let at = workers.iter().position(|(h, _)| *h == holder).unwrap();
    let (_, cut) = workers.remove(at);
    let netns = hosts.net.host(holder["host-".len()..].parse().unwrap());
    netns.cut();
    wait_for_second_attempt(ts, second);
    std::fs::write(dir.path().join("go"), "go").unwrap();
    let record = wait_for_end(ts, second);
    let states_before = ts.count(
        "SELECT COUNT(*) FROM states WHERE run_id = $1
             OR run_id IN (SELECT id FROM task_runs WHERE flow_run_id = $1)",
        &[second.as_bytes()],
    );
    netns.restore();
    let out = cut.finish_unchecked();
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("WORKER_FAILED another worker took this one for dead"),
        "{}",
        show(&out)
    );
    assert_eq!(
        ts.count(
            "SELECT COUNT(*) FROM states WHERE run_id = $1
                 OR run_id IN (SELECT id FROM task_runs WHERE flow_run_id = $1)",
            &[second.as_bytes()],
        ),
        states_before,
        "the worker that was cut off wrote nothing once back"
    );
    assert_taken_over(ts, &record);
    std::fs::write(dir.path().join("stop"), "stop").unwrap();
    for (_, w) in workers {
        w.finish();
    }
}

#[test]
fn across_hosts_a_thousand_delayed_runs_over_three_workers_one_killed_each_run_once() {
    let Some(hosts) = Hosts::new(3, "across_delayed") else {
        return;
    };
    let dir = support::tempdir();
    let workers: Vec<Running> = (0..3)
        .map(|i| hosts.worker(i, LEASE, dir.path(), Serves::Tasks))
        .collect();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(delay_a_thousand_and_kill_one(
            &hosts.ts,
            dir.path(),
            workers,
        ));
}
