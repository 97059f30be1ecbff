//! The flowcore side of `bench/compare.sh`: the workloads of `bench/prefect_workloads.py`,
//! written the same way, each printing one JSON line `{"workload", "value", "unit"}`.
//!
//! ```sh
//! cargo run --release --example bench_workloads -- --all
//! cargo run --release --example bench_workloads -- --all --logged
//! cargo run --release --example bench_workloads -- --workload one_task_flow
//! ```
//!
//! `--all` runs the in-process workloads with the memory store and logging off: sequential task
//! runs in one flow (time per task run, measured inside the flow), 1000 mapped task runs, a
//! task failing twice then succeeding with `retries = 2`, and a cache hit (the time of the
//! flow). Each is the median of a few repetitions after one warm-up flow. With `--logged`, the
//! same with logging on as `init_logging()` sets it up, its lines going where stdout goes (a
//! file, in `compare.sh`), each workload's name followed by `_logged`.
//! `--workload one_task_flow` runs one flow of one task with logging on and the default SQLite
//! store (`$FLOWCORE_HOME/flowcore.db`), then exits. `compare.sh` times the whole process of
//! the same flow built as a user's project builds it (`bench/process`): this example carries
//! the workspace's dev-dependencies' features, about 1 MB more code mapped in.

use std::hint::black_box;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use flowcore::{Store, flow, task};

/// Repetitions of each in-process workload, as in `prefect_workloads.py`.
const SEQUENTIAL_REPS: [(u32, usize); 3] = [(10, 5), (100, 5), (1000, 1)];
const MAP_REPS: usize = 1;
const FLOW_REPS: usize = 5;

const USAGE: &str = "usage: bench_workloads --all [--logged] | --workload one_task_flow";

/// Follows each workload's name: `""` or `"_logged"`.
static SUFFIX: std::sync::OnceLock<&str> = std::sync::OnceLock::new();

#[task]
async fn noop(i: u32) -> u32 {
    i
}

#[flow(name = "one-task")]
async fn one_task_flow() -> u32 {
    noop(1).await
}

/// Returns how long its `n` sequential task runs took, measured inside the flow.
#[flow(name = "sequential")]
async fn sequential(n: u32) -> Duration {
    let start = Instant::now();
    for i in 0..n {
        black_box(noop(black_box(i)).await);
    }
    start.elapsed()
}

#[flow(name = "mapped")]
async fn mapped(n: u32) -> u32 {
    flowcore::map(0..n, noop).await.into_iter().sum()
}

static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);

/// Fails on its first two attempts of each flow run, succeeds on the third.
#[task(retries = 2, retry_delay = "0s")]
async fn flaky() -> Result<u32, String> {
    let n = FLAKY_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    if n <= 2 {
        Err(format!("flaky ({n})"))
    } else {
        Ok(n)
    }
}

#[flow(name = "retries")]
async fn retrying() -> Result<u32, String> {
    FLAKY_CALLS.store(0, Ordering::SeqCst);
    flaky().await
}

#[task(cache_for = "1d")]
async fn cached(x: u32) -> u32 {
    x
}

#[flow(name = "cache-hit")]
async fn cache_hit() -> u32 {
    cached(7).await
}

fn emit(workload: &str, value: f64, unit: &str) {
    let workload = format!("{workload}{}", SUFFIX.get().copied().unwrap_or(""));
    let line = serde_json::json!({ "workload": workload, "value": value, "unit": unit });
    println!("{line}");
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Awaits `reps` fresh futures from `make`, returning the median time of one.
async fn median_time<F: Future>(reps: usize, mut make: impl FnMut() -> F) -> Duration {
    let mut samples = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = Instant::now();
        black_box(make().await);
        samples.push(start.elapsed());
    }
    median(samples)
}

async fn run_all() -> anyhow::Result<()> {
    Store::memory().install()?;
    one_task_flow().await;

    for (n, reps) in SEQUENTIAL_REPS {
        sequential(10).await; // warm-up flow
        let mut samples = Vec::with_capacity(reps);
        for _ in 0..reps {
            samples.push(sequential(n).await);
        }
        let per_task = median(samples).as_secs_f64() / f64::from(n);
        emit(&format!("sequential_{n}"), per_task * 1e6, "us/task");
    }

    mapped(10).await;
    let time = median_time(MAP_REPS, || mapped(1000)).await;
    emit("map_1000", time.as_secs_f64() * 1e3, "ms");

    anyhow::ensure!(
        retrying().await == Ok(3),
        "the flaky task should succeed on attempt 3"
    );
    let time = median_time(FLOW_REPS, retrying).await;
    emit("retries", time.as_secs_f64() * 1e3, "ms");

    cache_hit().await; // fills the cache
    let time = median_time(FLOW_REPS, cache_hit).await;
    emit("cache_hit", time.as_secs_f64() * 1e3, "ms");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["--all"] => run_all().await,
        ["--all", "--logged"] => {
            flowcore::init_logging();
            let _ = SUFFIX.set("_logged");
            let ran = run_all().await;
            flowcore::logging::flush();
            ran
        }
        ["--workload", "one_task_flow"] => {
            flowcore::init_logging();
            one_task_flow().await;
            Ok(())
        }
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    }
}
