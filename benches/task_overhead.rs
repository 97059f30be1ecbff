//! What tracking costs: a tracked task call inside a flow against the same plain `async fn`.
//!
//! `cargo bench --bench task_overhead`. Logging is off (no subscriber is installed), as in the
//! issue's target: under 1 µs of overhead per task call. Each sample runs one flow that calls
//! the task `iters` times, so the time includes creating, recording and dropping every task
//! run's record; the flow's own start and summary are spread over thousands of calls.
//!
//! The memory store is installed, so these numbers leave the disk out: `benches/store.rs`
//! measures the SQLite store. The group `store_memory` measures task-run throughput with the
//! memory store exactly as `store_sqlite` does there (`cargo bench --bench task_overhead --
//! store_memory`): flows of `n` task runs, sequential and with `join_all`, and cache hits,
//! reported in task runs per second.
//!
//! The group `task_call_logging` measures the same task call with logging on, printing to a
//! file (`cargo bench --bench task_overhead -- task_call_logging`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group};
use flowcore::{Store, flow, task};
use futures::future::join_all;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;

async fn plain_add(a: u64, b: u64) -> u64 {
    a.wrapping_add(b)
}

#[task]
async fn tracked_add(a: u64, b: u64) -> u64 {
    a.wrapping_add(b)
}

#[task]
async fn tracked_fallible(a: u64) -> Result<u64, String> {
    Ok(a)
}

#[flow]
async fn tracked_loop(iters: u64) -> u64 {
    let mut acc = 0;
    for i in 0..iters {
        acc = tracked_add(black_box(acc), black_box(i)).await;
    }
    acc
}

#[flow]
async fn fallible_loop(iters: u64) -> Result<u64, String> {
    let mut acc = 0;
    for i in 0..iters {
        acc += tracked_fallible(black_box(i)).await?;
    }
    Ok(acc)
}

async fn plain_loop(iters: u64) -> u64 {
    let mut acc = 0;
    for i in 0..iters {
        acc = plain_add(black_box(acc), black_box(i)).await;
    }
    acc
}

fn task_call(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut group = c.benchmark_group("task_call");
    group.measurement_time(Duration::from_secs(5));

    group.bench_function("plain_async_fn", |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            let start = Instant::now();
            black_box(plain_loop(iters).await);
            start.elapsed()
        })
    });
    group.bench_function("tracked_task_in_flow", |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            let start = Instant::now();
            black_box(tracked_loop(iters).await);
            start.elapsed()
        })
    });
    group.bench_function("tracked_result_task_in_flow", |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            let start = Instant::now();
            let _ = black_box(fallible_loop(iters).await);
            start.elapsed()
        })
    });
    group.bench_function("standalone_task", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(tracked_add(black_box(1), black_box(2)).await) })
    });
    group.finish();
}

#[task]
async fn trivial(i: u64) -> u64 {
    i
}

#[task(cache_for = "1d")]
async fn cached(x: u64) -> u64 {
    x
}

#[flow]
async fn sequential(n: u64) -> u64 {
    let mut acc = 0u64;
    for i in 0..n {
        acc = acc.wrapping_add(trivial(black_box(i)).await);
    }
    acc
}

#[flow]
async fn concurrent(n: u64) -> u64 {
    join_all((0..n).map(|i| trivial(black_box(i))))
        .await
        .into_iter()
        .fold(0, u64::wrapping_add)
}

/// `n` task runs submitted (`.submit()`, each a tokio task of its own), then awaited.
#[flow]
async fn submitted(n: u64) -> u64 {
    let handles: Vec<_> = (0..n).map(|i| trivial(black_box(i)).submit()).collect();
    let mut acc = 0u64;
    for handle in handles {
        acc = acc.wrapping_add(handle.await);
    }
    acc
}

#[flow]
async fn cache_hits(n: u64) -> u64 {
    let mut acc = 0u64;
    for _ in 0..n {
        acc = acc.wrapping_add(cached(black_box(7)).await);
    }
    acc
}

/// The same workloads as `store_sqlite` in `benches/store.rs`, with the memory store.
fn store_memory(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(cached(7)); // every later call hits

    let mut group = c.benchmark_group("store_memory");
    // A sample is whole flows of up to 10,000 task runs: few samples, each of equal size.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    for n in [1_000u64, 10_000] {
        group.throughput(Throughput::Elements(n));
        group.bench_with_input(BenchmarkId::new("sequential", n), &n, |b, &n| {
            b.to_async(&rt).iter_custom(|iters| async move {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(sequential(n).await);
                }
                start.elapsed()
            })
        });
        group.bench_with_input(BenchmarkId::new("join_all", n), &n, |b, &n| {
            b.to_async(&rt).iter_custom(|iters| async move {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(concurrent(n).await);
                }
                start.elapsed()
            })
        });
        group.bench_with_input(BenchmarkId::new("submit", n), &n, |b, &n| {
            b.to_async(&rt).iter_custom(|iters| async move {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(submitted(n).await);
                }
                start.elapsed()
            })
        });
        group.bench_with_input(BenchmarkId::new("cache_hit", n), &n, |b, &n| {
            b.to_async(&rt).iter_custom(|iters| async move {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(cache_hits(n).await);
                }
                start.elapsed()
            })
        });
    }
    group.finish();
}

/// `tracked_task_in_flow` with flowcore's logging on as `init_logging()` sets it up (its format,
/// the recorder keeping each run's lines in the store, `info` for every target, runs without
/// spans, and stdout's writer, `non_blocking`), printing to a file instead of a terminal, as when stdout is
/// redirected to a file or a pipe: one line per task run ("Finished
/// in state Completed()"). A group of its own, run last: a subscriber changes what tracing
/// caches about every callsite.
fn task_call_logging(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = std::fs::File::create(dir.path().join("flowcore.log")).expect("a log file");
    let subscriber = tracing_subscriber::registry()
        .with(Targets::new().with_default(Level::INFO))
        .with(flowcore::logging::layer_to(
            flowcore::logging::non_blocking(file),
            false,
        ))
        .with(flowcore::logging::runs_without_spans());
    let guard = tracing::subscriber::set_default(subscriber);

    let mut group = c.benchmark_group("task_call_logging");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("logged_task_in_flow", |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            let start = Instant::now();
            black_box(tracked_loop(iters).await);
            start.elapsed()
        })
    });
    group.finish();
    drop(guard);
    tracing::callsite::rebuild_interest_cache();
}

criterion_group!(benches, task_call, store_memory, task_call_logging);

fn main() {
    Store::memory()
        .install()
        .expect("installed before the first run");
    benches();
    Criterion::default().configure_from_args().final_summary();
}
