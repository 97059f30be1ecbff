//! Issue 7's workloads beyond a single task call: a retry attempt's bookkeeping, `map` over
//! 10,000 inputs, a flow of a million task runs (time, and the process's peak memory after
//! it), and two threads driving task runs against one.
//!
//! `cargo bench --bench workloads` (memory store, logging off); one group:
//! `cargo bench --bench workloads -- million`. The million-task group takes about a minute:
//! criterion wants ten samples of a whole flow.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group};
use flowcore::{Store, flow, task};

#[task]
async fn double(x: u64) -> u64 {
    x.wrapping_mul(2)
}

/// Fails every other attempt: each call is one failed attempt, one retry with no delay, and
/// one successful attempt.
#[task(retries = 1, retry_delay = "0s")]
async fn flaky() -> Result<u64, String> {
    static ATTEMPTS: AtomicU64 = AtomicU64::new(0);
    match ATTEMPTS.fetch_add(1, Ordering::Relaxed) % 2 {
        0 => Err("flaky".to_owned()),
        n => Ok(n),
    }
}

#[task]
async fn step(i: u64) -> u64 {
    i
}

#[flow]
async fn retrying(n: u64) -> u64 {
    let mut acc = 0u64;
    for _ in 0..n {
        acc = acc.wrapping_add(flaky().await.unwrap_or(0));
    }
    acc
}

#[flow]
async fn mapped(n: u64) -> u64 {
    flowcore::map(0..n, double)
        .await
        .into_iter()
        .fold(0, u64::wrapping_add)
}

#[flow]
async fn sequential(n: u64) -> u64 {
    let mut acc = 0u64;
    for i in 0..n {
        acc = acc.wrapping_add(step(black_box(i)).await);
    }
    acc
}

fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Each sample is whole flows of `n` task runs; the throughput is task runs per second.
fn flows(
    c: &mut Criterion,
    group: &str,
    n: u64,
    body: fn(u64) -> std::pin::Pin<Box<dyn Future<Output = u64>>>,
) {
    let rt = current_thread_runtime();
    let mut g = c.benchmark_group(group);
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.throughput(Throughput::Elements(n));
    g.bench_function(n.to_string(), |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(body(n).await);
            }
            start.elapsed()
        })
    });
    g.finish();
}

fn retry(c: &mut Criterion) {
    flows(c, "retry_attempt", 10_000, |n| Box::pin(retrying(n)));
}

fn map(c: &mut Criterion) {
    flows(c, "map", 10_000, |n| Box::pin(mapped(n)));
}

fn million(c: &mut Criterion) {
    flows(c, "million_task_flow", 1_000_000, |n| {
        Box::pin(sequential(n))
    });
    eprintln!("peak RSS of this process so far: {}", peak_rss());
}

/// Task runs per second with flows on one thread, and on two threads at once, each thread
/// driving its own flows: what the two share is flowcore's (the store, the allocator, its
/// statics), so no lock all task runs take should keep the second from nearly doubling.
///
/// Each thread has its own current-thread runtime, not a worker of one multi-threaded runtime:
/// there, a flow that never yields can be queued behind the other on one worker, which measures
/// tokio's placement of two long tasks rather than flowcore (a two-worker runtime gave 1.52×
/// where these threads give 1.6–1.7×, the same code on the same machine).
fn threads(c: &mut Criterion) {
    const N: u64 = 10_000;
    let mut g = c.benchmark_group("threads");
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    for threads in [1usize, 2] {
        let runtimes: Vec<_> = (0..threads).map(|_| current_thread_runtime()).collect();
        g.throughput(Throughput::Elements(N * threads as u64));
        g.bench_function(format!("{threads}_threads"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                std::thread::scope(|scope| {
                    for rt in &runtimes {
                        scope.spawn(move || {
                            for _ in 0..iters {
                                black_box(rt.block_on(sequential(N)));
                            }
                        });
                    }
                });
                start.elapsed()
            })
        });
    }
    g.finish();
}

/// `VmHWM` of /proc/self/status: the most memory this process has held.
fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l["VmHWM:".len()..].trim().to_owned())
        })
        .unwrap_or_else(|| "unknown (no /proc)".to_owned())
}

criterion_group!(benches, retry, map, threads, million);

fn main() {
    Store::memory()
        .install()
        .expect("installed before the first run");
    benches();
    Criterion::default().configure_from_args().final_summary();
}
