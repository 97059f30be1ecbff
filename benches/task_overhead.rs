//! What tracking costs: a tracked task call inside a flow against the same plain `async fn`.
//!
//! `cargo bench --bench task_overhead`. Logging is off (no subscriber is installed), as in the
//! issue's target: under 1 µs of overhead per task call. Each sample runs one flow that calls
//! the task `iters` times, so the time includes creating, recording and dropping every task
//! run's record; the flow's own start and summary are spread over thousands of calls.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use flowcore::{flow, task};

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

criterion_group!(benches, task_call);
criterion_main!(benches);
