//! Workers: several processes serving the same deployments on one store, on SQLite and on a
//! PostgreSQL that the benchmark starts (tests/support/postgres.rs, as `benches/store.rs` does:
//! Unix socket only, `fsync = on`).
//!
//! `CARGO_INCREMENTAL=0 cargo bench --bench workers` (about 25 minutes); one part alone with
//! its name as the filter (`-- claims`, `-- tasks`, `-- online`, `-- tick_to_running`,
//! `-- takeover`), one
//! backend with `-- sqlite` or `-- postgres`, or both (`-- takeover_postgres`).
//!
//! Every worker is a process of its own: this benchmark binary run again with
//! `FLOWCORE_BENCH_WORKER` set to the store's target (`worker_main`), which opens the store as
//! a worker program would, says `READY`, and serves its deployment from the moment it reads
//! `go` on its stdin until it reads `stop` (or its stdin closes). Separate processes, not
//! tasks on separate `Store` handles, because a worker is judged alive by its pid and killed
//! as a process, and because workers on one machine share its two cores as real ones do.
//! Logging is off in the workers (no subscriber is installed).
//!
//! - `claims_{sqlite,postgres}/{allow,default}/K`: 1,000 runs of a one-task flow requested
//!   with `Store::request_run` (the store has no call that requests many at once, so 1,000
//!   transactions, made while the K workers are up but not yet serving), then the workers
//!   told to go; timed from `go` to the last run's `Completed` state as the store recorded it.
//!   Criterion reports runs claimed and completed per second (`elem/s`). `allow` serves the
//!   deployment with `Overlap::Allow` (every claimed run starts at once); `default` with the
//!   default overlap, under which runs requested by hand wait for the run in flight: one at a
//!   time per worker.
//! - `tasks_{sqlite,postgres}/K`: 1,000 runs of a background task that does nothing, delayed
//!   from the benchmark in one transaction (`map(…).on_workers()`) while K workers (each
//!   `serve_tasks` with `task_limit(100)`) are up but not serving, then the workers told to go;
//!   timed from `go` to the last run's `Completed` as the store recorded it: delayed task runs
//!   claimed and completed per second.
//! - `online` (printed): K workers already serving and polling, then 1,000 `request_run`s:
//!   from the first request to the last run's `Completed`, and from the last request.
//! - `tick_to_running` (printed): a deployment every second served by 1 and by 3 workers;
//!   for each run, its `Running` state's time minus its scheduled time, from the store.
//! - `takeover` (printed): a run held by a worker that is killed (SIGKILL), until it is
//!   `Running` again on the other worker, its next attempt: workers judged by their heartbeat
//!   (a host name of their own each, `FLOWCORE_HOST`) with `FLOWCORE_LEASE=3s` and with the
//!   default 30 s, and workers judged by their pid (one host).

use std::ffi::{OsStr, OsString};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use flowcore::{Deployment, Overlap, Store, flow, task};

// The tests' helpers: their PostgreSQL harness, their stores on both backends, and their
// child processes watched line by line.
#[path = "../tests/support/mod.rs"]
mod support;

use support::backends::{Kind, TestStore};
use support::{Postgres, PostgresOptions, Running};

/// Set in a worker process: the store it serves on.
const WORKER: &str = "FLOWCORE_BENCH_WORKER";

/// Runs requested per sample of `claims`.
const RUNS: u64 = 1_000;

/// Worker counts of `claims`.
const WORKERS: [usize; 3] = [1, 4, 8];

/// Scheduled runs measured per worker count of `tick_to_running`.
const TICKS: usize = 20;

/// How long anything the benchmark waits for may take before it gives up.
const PATIENCE: Duration = Duration::from_secs(300);

#[task]
async fn step() -> u32 {
    1
}

#[flow]
async fn trivial() -> u32 {
    step().await
}

/// Holds its worker until the `BENCH_GO` file exists, so that the worker can be killed while
/// it runs.
#[task]
async fn long_step() -> u32 {
    let go = PathBuf::from(std::env::var_os("BENCH_GO").expect("BENCH_GO"));
    while !go.exists() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    2
}

/// A background task that does nothing: what `tasks` claims and completes.
#[task(background)]
async fn noop(n: u64) -> u64 {
    n
}

/// Delayed runs a `tasks` worker runs at once.
const TASK_LIMIT: usize = 250;

#[flow]
async fn long_job() -> u32 {
    step().await + long_step().await
}

// ---------------------------------------------------------------------------------------------
// The worker process.

fn worker_main(target: OsString) {
    let role = std::env::var("BENCH_ROLE").expect("BENCH_ROLE");
    let name = std::env::var("BENCH_DEPLOYMENT").expect("BENCH_DEPLOYMENT");
    Store::open(&target)
        .and_then(Store::install)
        .unwrap_or_else(|e| panic!("worker: {e}"));
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    // Stdin is read on a thread of its own: tokio's stdin would hold a blocking-pool thread
    // that shutdown then waits for.
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    println!("READY");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async move {
        if lines.recv().await.as_deref() != Some("go") {
            return;
        }
        let stop_on_line = async move {
            lines.recv().await;
        };
        if role == "tasks" {
            match flowcore::serve_tasks([flowcore::background(noop)])
                .task_limit(TASK_LIMIT)
                .grace_period(Duration::ZERO)
                .with_shutdown(stop_on_line)
                .await
            {
                Ok(()) => println!("STOPPED"),
                Err(e) => println!("FAILED {e}"),
            }
            return;
        }
        let deployment = match role.as_str() {
            "allow" => Deployment::new(name, trivial).overlap(Overlap::Allow),
            "default" => Deployment::new(name, trivial),
            "tick" => Deployment::new(name, trivial).every("1s"),
            "long" => Deployment::new(name, long_job),
            other => panic!("worker: no role {other}"),
        };
        let stop = stop_on_line;
        // Told to stop once its runs have ended; one still going then is the benchmark's
        // mistake, not worth the default 30 s of grace.
        match flowcore::serve([deployment])
            .grace_period(Duration::ZERO)
            .with_shutdown(stop)
            .await
        {
            Ok(()) => println!("STOPPED"),
            Err(e) => println!("FAILED {e}"),
        }
    });
}

/// A worker process, started and `READY`, not yet serving.
struct Worker {
    running: Running,
}

impl Worker {
    fn spawn(target: &OsStr, role: &str, deployment: &str, envs: &[(&str, &OsStr)]) -> Worker {
        let exe = std::env::current_exe().expect("the benchmark's path");
        let mut cmd = Command::new(exe);
        cmd.env(WORKER, target)
            .env("BENCH_ROLE", role)
            .env("BENCH_DEPLOYMENT", deployment)
            .env_remove("RUST_LOG")
            .envs(envs.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut running = Running::spawn(&mut cmd);
        running.wait_for_line("READY");
        Worker { running }
    }

    fn pid(&self) -> u32 {
        self.running.child.id()
    }

    fn say(&mut self, line: &str) {
        let stdin = self.running.child.stdin.as_mut().expect("a piped stdin");
        writeln!(stdin, "{line}").expect("write to the worker");
    }

    /// Stops it gracefully and waits for it to exit, failing unless it served to the end.
    fn stop(mut self) {
        self.say("stop");
        let out = self.running.finish();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("STOPPED"),
            "{}",
            support::show(&out)
        );
    }

    /// SIGKILL; returns the wall time of the kill.
    fn kill(self) -> i64 {
        let mut running = self.running;
        running.child.kill().expect("kill the worker");
        let at = wall_micros();
        running.finish_unchecked();
        at
    }
}

// ---------------------------------------------------------------------------------------------
// Raw reads of the store's tables, past the store's own reads: what the store recorded, with
// its timestamps (microseconds since the epoch).

enum Db {
    Sqlite(rusqlite::Connection),
    Postgres(postgres::Client),
}

impl Db {
    fn open(ts: &TestStore) -> Db {
        match ts.kind() {
            Kind::Sqlite => Db::Sqlite(support::raw(Path::new(ts.target()))),
            Kind::Postgres => {
                let url = ts.target().to_str().expect("a URL is UTF-8");
                Db::Postgres(
                    postgres::Client::connect(url, postgres::NoTls)
                        .unwrap_or_else(|e| panic!("connect to {url}: {e}")),
                )
            }
        }
    }

    /// The rows of `sql` (parameters `$1`, … bound to byte strings), every column an integer
    /// or NULL.
    fn rows(&mut self, sql: &str, params: &[&[u8]]) -> Vec<Vec<Option<i64>>> {
        match self {
            Db::Sqlite(conn) => {
                let mut stmt = conn
                    .prepare_cached(sql)
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                let columns = stmt.column_count();
                stmt.query_map(rusqlite::params_from_iter(params), |r| {
                    (0..columns).map(|i| r.get::<_, Option<i64>>(i)).collect()
                })
                .and_then(Iterator::collect)
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
            Db::Postgres(client) => {
                let params: Vec<&(dyn postgres::types::ToSql + Sync)> = params
                    .iter()
                    .map(|p| p as &(dyn postgres::types::ToSql + Sync))
                    .collect();
                client
                    .query(sql, &params)
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
                    .iter()
                    .map(|row| {
                        (0..row.len())
                            .map(|i| {
                                row.try_get::<_, Option<i64>>(i)
                                    .or_else(|_| {
                                        row.try_get::<_, Option<i32>>(i).map(|v| v.map(i64::from))
                                    })
                                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
                            })
                            .collect()
                    })
                    .collect()
            }
        }
    }

    fn int(&mut self, sql: &str, params: &[&[u8]]) -> Option<i64> {
        self.rows(sql, params).first().and_then(|r| r[0])
    }

    fn wait_for(&mut self, what: &str, sql: &str, params: &[&[u8]], done: impl Fn(i64) -> bool) {
        let start = Instant::now();
        while !done(self.int(sql, params).unwrap_or(0)) {
            assert!(
                start.elapsed() < PATIENCE,
                "gave up after {PATIENCE:?} waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn wall_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_micros() as i64
}

fn ms(us: i64) -> f64 {
    us as f64 / 1000.0
}

/// The store of one backend, with what the benchmark needs beside it.
struct Backend {
    label: &'static str,
    ts: TestStore,
    /// The files of the takeover's `BENCH_GO`.
    dir: tempfile::TempDir,
}

impl Backend {
    fn target(&self) -> &OsStr {
        self.ts.target()
    }

    /// Makes the deployment known to the store, as a worker that served it once leaves it, so
    /// that runs of it can be requested before any worker serves it.
    fn register(&self, role: &str, deployment: &str) {
        let mut w = Worker::spawn(self.target(), role, deployment, &[]);
        w.say("go");
        let mut db = Db::open(&self.ts);
        db.wait_for(
            "the deployment to be served",
            &format!("SELECT COUNT(*) FROM deployments WHERE name = '{deployment}'"),
            &[],
            |n| n == 1,
        );
        w.stop();
    }
}

// ---------------------------------------------------------------------------------------------
// claims: criterion.

/// What one sample of `claims` saw besides its time.
struct ClaimSample {
    /// `request_run` × RUNS, before the workers go.
    insert: Duration,
    /// From `go` to the first run's `Pending`.
    first_pending_ms: f64,
    /// From `go` to the last run's `Pending`: when the last run started.
    last_pending_ms: f64,
    /// A run's own time, from its `Pending` to its `Completed`: the median of the batch.
    run_ms: f64,
    /// How many of the workers ran some of the runs.
    workers_used: i64,
}

fn claims_once(b: &Backend, role: &str, k: usize, notes: &mut Vec<ClaimSample>) -> Duration {
    let deployment = format!("claims-{role}");
    let mut workers: Vec<Worker> = (0..k)
        .map(|_| Worker::spawn(b.target(), role, &deployment, &[]))
        .collect();
    let mut db = Db::open(&b.ts);
    let since = wall_micros();
    let inserting = Instant::now();
    for _ in 0..RUNS {
        b.ts.store()
            .request_run(&deployment, &[])
            .expect("request a run");
    }
    let insert = inserting.elapsed();
    let go = wall_micros();
    for w in &mut workers {
        w.say("go");
    }
    let batch =
        format!("FROM flow_runs f WHERE f.deployment = '{deployment}' AND f.created_at >= {since}");
    db.wait_for(
        "the requested runs to complete",
        &format!("SELECT COUNT(*) {batch} AND f.state = 'Completed'"),
        &[],
        |n| n == RUNS as i64,
    );
    let row = &db.rows(
        &format!(
            "SELECT
                 (SELECT MAX(s.at) FROM states s WHERE s.kind = 'Completed'
                     AND s.run_id IN (SELECT f.id {batch})),
                 (SELECT MIN(s.at) FROM states s WHERE s.kind = 'Pending'
                     AND s.run_id IN (SELECT f.id {batch})),
                 (SELECT MAX(s.at) FROM states s WHERE s.kind = 'Pending'
                     AND s.run_id IN (SELECT f.id {batch})),
                 (SELECT COUNT(DISTINCT f.process_id) {batch})"
        ),
        &[],
    )[0];
    let mut runs: Vec<i64> = db
        .rows(
            &format!(
                "SELECT c.at - p.at FROM states p JOIN states c ON c.run_id = p.run_id
                 WHERE p.kind = 'Pending' AND c.kind = 'Completed'
                     AND p.run_id IN (SELECT f.id {batch})"
            ),
            &[],
        )
        .into_iter()
        .filter_map(|r| r[0])
        .collect();
    runs.sort_unstable();
    for w in workers {
        w.stop();
    }
    let [Some(done), Some(first), Some(last), Some(used)] = row[..] else {
        panic!("the runs' states are missing: {row:?}");
    };
    notes.push(ClaimSample {
        insert,
        first_pending_ms: ms(first - go),
        last_pending_ms: ms(last - go),
        run_ms: ms(runs[runs.len() / 2]),
        workers_used: used,
    });
    Duration::from_micros((done - go) as u64)
}

fn claims(c: &mut Criterion, b: &Backend) {
    for role in ["allow", "default"] {
        b.register(role, &format!("claims-{role}"));
    }
    let mut group = c.benchmark_group(format!("claims_{}", b.label));
    // A sample is a whole batch of runs and several processes started: few samples, one batch
    // each.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(1));
    group.measurement_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(RUNS));
    let mut summary = Vec::new();
    for role in ["allow", "default"] {
        for k in WORKERS {
            let mut notes = Vec::new();
            group.bench_with_input(BenchmarkId::new(role, k), &k, |bench, &k| {
                bench.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| claims_once(b, role, k, &mut notes))
                        .sum()
                })
            });
            if !notes.is_empty() {
                summary.push((role, k, notes));
            }
        }
    }
    group.finish();
    for (role, k, notes) in summary {
        let median = |f: &dyn Fn(&ClaimSample) -> f64| {
            let mut v: Vec<f64> = notes.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let used: Vec<i64> = notes.iter().map(|n| n.workers_used).collect();
        println!(
            "claims_{}/{role}/{k}: {} batches; median: {RUNS} request_run calls {:.0} ms ({:.0}/s), go → first run Pending {:.1} ms, go → last run Pending {:.1} ms, a run's Pending → Completed {:.1} ms; workers that ran some: {used:?}",
            b.label,
            notes.len(),
            median(&|n| n.insert.as_secs_f64() * 1e3),
            median(&|n| RUNS as f64 / n.insert.as_secs_f64()),
            median(&|n| n.first_pending_ms),
            median(&|n| n.last_pending_ms),
            median(&|n| n.run_ms),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// tasks: delayed task runs claimed and completed, criterion.

/// One sample of `tasks`: RUNS runs of `noop` delayed from this process in one transaction
/// (`map(…).on_workers()`) while the K workers are up but not serving, then the workers told to
/// go; from `go` to the last run's `Completed` as the store recorded it. Returns that time, and
/// how many workers ran some.
fn tasks_once(b: &Backend, k: usize, rt: &tokio::runtime::Runtime) -> (Duration, i64) {
    let mut workers: Vec<Worker> = (0..k)
        .map(|_| Worker::spawn(b.target(), "tasks", "-", &[]))
        .collect();
    let mut db = Db::open(&b.ts);
    let since = wall_micros();
    let store = b.ts.store().clone();
    let gathered = rt.spawn(async move {
        store
            .scope(flowcore::map(0..RUNS, noop).on_workers())
            .await
            .expect("delay the runs")
    });
    let batch = format!("FROM task_runs t WHERE t.task = 'noop' AND t.created_at >= {since}");
    db.wait_for(
        "the runs to be delayed",
        &format!("SELECT COUNT(*) {batch}"),
        &[],
        |n| n == RUNS as i64,
    );
    let go = wall_micros();
    for w in &mut workers {
        w.say("go");
    }
    db.wait_for(
        "the delayed runs to complete",
        &format!("SELECT COUNT(*) {batch} AND t.state = 'Completed'"),
        &[],
        |n| n == RUNS as i64,
    );
    let row = &db.rows(
        &format!(
            "SELECT
                 (SELECT MAX(s.at) FROM states s WHERE s.kind = 'Completed'
                     AND s.run_id IN (SELECT t.id {batch})),
                 (SELECT COUNT(DISTINCT t.process_id) {batch})"
        ),
        &[],
    )[0];
    let values = rt.block_on(gathered).expect("the caller");
    assert!(values.iter().all(Result::is_ok), "every value gathered");
    for w in workers {
        w.stop();
    }
    let [Some(done), Some(used)] = row[..] else {
        panic!("the runs' states are missing: {row:?}");
    };
    (Duration::from_micros((done - go) as u64), used)
}

fn tasks(c: &mut Criterion, b: &Backend) {
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let mut group = c.benchmark_group(format!("tasks_{}", b.label));
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(1));
    group.measurement_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(RUNS));
    let mut used = Vec::new();
    for k in WORKERS {
        let mut seen = Vec::new();
        group.bench_with_input(BenchmarkId::from_parameter(k), &k, |bench, &k| {
            bench.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let (took, by) = tasks_once(b, k, &rt);
                        seen.push(by);
                        took
                    })
                    .sum()
            })
        });
        used.push((k, seen));
    }
    group.finish();
    for (k, seen) in used {
        println!(
            "tasks_{}/{k}: workers that ran some of each batch: {seen:?}",
            b.label
        );
    }
}

// ---------------------------------------------------------------------------------------------
// online: the runs requested while the workers poll.

fn online(b: &Backend, k: usize) {
    let deployment = "online";
    let mut workers: Vec<Worker> = (0..k)
        .map(|_| Worker::spawn(b.target(), "allow", deployment, &[]))
        .collect();
    for w in &mut workers {
        w.say("go");
    }
    let mut db = Db::open(&b.ts);
    db.wait_for(
        "the workers to serve",
        &format!("SELECT COUNT(*) FROM deployment_workers WHERE deployment = '{deployment}'"),
        &[],
        |n| n == k as i64,
    );
    // Past the first poll of each, which a new worker makes at once.
    std::thread::sleep(Duration::from_secs(1));
    let first = wall_micros();
    for _ in 0..RUNS {
        b.ts.store()
            .request_run(deployment, &[])
            .expect("request a run");
    }
    let last = wall_micros();
    let batch =
        format!("FROM flow_runs f WHERE f.deployment = '{deployment}' AND f.created_at >= {first}");
    db.wait_for(
        "the requested runs to complete",
        &format!("SELECT COUNT(*) {batch} AND f.state = 'Completed'"),
        &[],
        |n| n == RUNS as i64,
    );
    let row = &db.rows(
        &format!(
            "SELECT
                 (SELECT MAX(s.at) FROM states s WHERE s.kind = 'Completed'
                     AND s.run_id IN (SELECT f.id {batch})),
                 (SELECT COUNT(DISTINCT f.process_id) {batch})"
        ),
        &[],
    )[0];
    // The claim's own delay: each run's Pending after its request.
    let mut waits: Vec<i64> = db
        .rows(
            &format!(
                "SELECT s.at - f.created_at FROM states s JOIN flow_runs f ON f.id = s.run_id
                 WHERE s.kind = 'Pending' AND f.deployment = '{deployment}'
                     AND f.created_at >= {first}"
            ),
            &[],
        )
        .into_iter()
        .filter_map(|r| r[0])
        .collect();
    waits.sort_unstable();
    for w in workers {
        w.stop();
    }
    let [Some(done), Some(used)] = row[..] else {
        panic!("the runs' states are missing: {row:?}");
    };
    println!(
        "online_{}/{k}: {RUNS} request_run calls over {:.0} ms ({:.0}/s); first request → last Completed {:.0} ms ({:.0} runs/s); last request → last Completed {:.0} ms; request → Pending median {:.0} ms, max {:.0} ms; runs spread over {used} of {k} workers",
        b.label,
        ms(last - first),
        RUNS as f64 / (ms(last - first) / 1e3),
        ms(done - first),
        RUNS as f64 / (ms(done - first) / 1e3),
        ms(done - last),
        ms(waits[waits.len() / 2]),
        ms(*waits.last().expect("runs")),
    );
}

// ---------------------------------------------------------------------------------------------
// tick_to_running

fn tick_to_running(b: &Backend, k: usize) {
    let deployment = format!("tick-{k}");
    let mut workers: Vec<Worker> = (0..k)
        .map(|_| Worker::spawn(b.target(), "tick", &deployment, &[]))
        .collect();
    for w in &mut workers {
        w.say("go");
    }
    let mut db = Db::open(&b.ts);
    // One more than measured: the first scheduled time may come before every worker serves.
    db.wait_for(
        "the scheduled runs to complete",
        &format!(
            "SELECT COUNT(*) FROM flow_runs WHERE deployment = '{deployment}' AND state = 'Completed'"
        ),
        &[],
        |n| n > TICKS as i64,
    );
    for w in workers {
        w.stop();
    }
    let rows = db.rows(
        &format!(
            "SELECT p.at - s.at, r.at - s.at FROM flow_runs f
                 JOIN states s ON s.run_id = f.id AND s.kind = 'Scheduled'
                 JOIN states p ON p.run_id = f.id AND p.kind = 'Pending'
                 JOIN states r ON r.run_id = f.id AND r.kind = 'Running'
             WHERE f.deployment = '{deployment}' ORDER BY s.at"
        ),
        &[],
    );
    let used = db
        .int(
            &format!(
                "SELECT COUNT(DISTINCT process_id) FROM flow_runs WHERE deployment = '{deployment}'"
            ),
            &[],
        )
        .unwrap_or(0);
    let late: Vec<(i64, i64)> = rows
        .iter()
        .skip(1)
        .take(TICKS)
        .map(|r| (r[0].expect("Pending"), r[1].expect("Running")))
        .collect();
    let stats = |mut v: Vec<i64>| {
        v.sort_unstable();
        format!(
            "median {:.2} ms, max {:.2} ms",
            ms(v[v.len() / 2]),
            ms(*v.last().expect("runs"))
        )
    };
    println!(
        "tick_to_running_{}/{k}: {} scheduled runs; scheduled time → Running {}; scheduled time → Pending {}; run by {used} of {k} workers",
        b.label,
        late.len(),
        stats(late.iter().map(|l| l.1).collect()),
        stats(late.iter().map(|l| l.0).collect()),
    );
}

// ---------------------------------------------------------------------------------------------
// takeover

/// One takeover: two workers, a run requested, its worker killed while it runs. Returns the
/// times from the kill to the run's `Crashed` and to its next attempt's `Running`, in ms.
fn takeover_once(b: &Backend, hosts: bool, lease: Duration, go: &Path) -> (f64, f64) {
    let lease_text = format!("{}s", lease.as_secs());
    let _ = std::fs::remove_file(go);
    let deployment = "long-job";
    let mut workers: Vec<Worker> = ["host-a", "host-b"]
        .iter()
        .map(|host| {
            let mut envs = vec![
                ("FLOWCORE_LEASE", OsStr::new(&lease_text)),
                ("BENCH_GO", go.as_os_str()),
            ];
            if hosts {
                envs.push(("FLOWCORE_HOST", OsStr::new(host)));
            }
            Worker::spawn(b.target(), "long", deployment, &envs)
        })
        .collect();
    for w in &mut workers {
        w.say("go");
    }
    let mut db = Db::open(&b.ts);
    db.wait_for(
        "the workers to serve",
        &format!("SELECT COUNT(*) FROM deployment_workers WHERE deployment = '{deployment}'"),
        &[],
        |n| n == 2,
    );
    let id =
        b.ts.store()
            .request_run(deployment, &[])
            .expect("request a run")
            .id;
    let id = id.as_bytes().as_slice();
    db.wait_for(
        "the run to be Running",
        "SELECT COUNT(*) FROM flow_runs WHERE id = $1 AND state = 'Running'",
        &[id],
        |n| n == 1,
    );
    // At a moment spread over a heartbeat period (a sixth of the lease), as a crash comes:
    // the workers' heartbeats and looks for the dead began with them, so a kill at a fixed
    // delay after they start would always land at the same phase of both.
    let period = lease.as_millis() as u64 / 6;
    let nanos = u64::from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos(),
    );
    std::thread::sleep(Duration::from_millis(nanos % period));
    let pid = db
        .int(
            "SELECT p.pid FROM flow_runs f JOIN processes p ON p.id = f.process_id
             WHERE f.id = $1",
            &[id],
        )
        .expect("the run's worker");
    let at = workers
        .iter()
        .position(|w| i64::from(w.pid()) == pid)
        .expect("the run's worker is one of the two");
    let killed_at = workers.remove(at).kill();
    db.wait_for(
        "the run to be Running again, attempt 2",
        "SELECT COUNT(*) FROM flow_runs WHERE id = $1 AND state = 'Running' AND claims = 2",
        &[id],
        |n| n == 1,
    );
    let row = &db.rows(
        "SELECT (SELECT MAX(at) FROM states WHERE run_id = $1 AND kind = 'Crashed'),
                (SELECT MAX(at) FROM states WHERE run_id = $1 AND kind = 'Running')",
        &[id],
    )[0];
    std::fs::write(go, "go").expect("write the go file");
    db.wait_for(
        "the run to complete",
        "SELECT COUNT(*) FROM flow_runs WHERE id = $1 AND state = 'Completed'",
        &[id],
        |n| n == 1,
    );
    for w in workers {
        w.stop();
    }
    let [Some(crashed), Some(running)] = row[..] else {
        panic!("the run's states are missing: {row:?}");
    };
    (ms(crashed - killed_at), ms(running - killed_at))
}

fn takeover(b: &Backend, hosts: bool, lease: Duration, times: usize) {
    let go = b.dir.path().join("go");
    let seen: Vec<(f64, f64)> = (0..times)
        .map(|_| takeover_once(b, hosts, lease, &go))
        .collect();
    let show: Vec<String> = seen
        .iter()
        .map(|(c, r)| format!("{:.2} s (Crashed at {:.2} s)", r / 1e3, c / 1e3))
        .collect();
    println!(
        "takeover_{}/{}/lease {} s: kill → Running again: {}",
        b.label,
        if hosts {
            "by heartbeat"
        } else {
            "by pid (one host)"
        },
        lease.as_secs(),
        show.join(", ")
    );
}

// ---------------------------------------------------------------------------------------------

fn run_all(c: &mut Criterion, b: &Backend, wants: &dyn Fn(&str) -> bool) {
    let wants = |part: &str| wants(&format!("{part}_{}", b.label));
    if wants("claims") {
        claims(c, b);
    }
    if wants("tasks") {
        tasks(c, b);
    }
    if wants("online") {
        for k in [1, 4] {
            online(b, k);
        }
    }
    if wants("tick_to_running") {
        for k in [1, 3] {
            tick_to_running(b, k);
        }
    }
    if wants("takeover") {
        takeover(b, true, Duration::from_secs(3), 5);
        takeover(b, false, Duration::from_secs(30), 5);
        takeover(b, true, Duration::from_secs(30), 3);
    }
}

fn main() {
    if let Some(target) = std::env::var_os(WORKER) {
        return worker_main(target);
    }
    // Criterion's filter, which the printed parts follow too: `claims`, `postgres`,
    // `takeover_sqlite` and `claims_sqlite/allow/1` each pick their own.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wants = |part: &str| {
        filter
            .as_deref()
            .is_none_or(|f| part.contains(f) || f.contains(part))
    };
    let mut c = Criterion::default().configure_from_args();

    let sqlite = Backend {
        label: "sqlite",
        ts: TestStore::sqlite(),
        dir: support::tempdir(),
    };
    println!("SQLite store: {}", sqlite.target().to_string_lossy());
    run_all(&mut c, &sqlite, &wants);
    drop(sqlite);

    let parts = ["claims", "tasks", "online", "tick_to_running", "takeover"];
    if !parts.iter().any(|p| wants(&format!("{p}_postgres"))) {
        c.final_summary();
        return;
    }
    let Some(pg) = Postgres::with_options(PostgresOptions::default().durable()) else {
        println!("postgres: skipped, no PostgreSQL could be started (see above)");
        c.final_summary();
        return;
    };
    let postgres = Backend {
        label: "postgres",
        ts: TestStore::on_database(pg.database("bench_workers")),
        dir: support::tempdir(),
    };
    println!(
        "PostgreSQL store: {} (fsync on)",
        postgres.target().to_string_lossy()
    );
    run_all(&mut c, &postgres, &wants);
    // The store's writer and connections go before the server does.
    drop(postgres);
    drop(pg);
    c.final_summary();
}
