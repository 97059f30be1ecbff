//! apalis (1.0, its in-memory backend `MemoryStorage`) as a peer of `examples/bench_workloads.rs`,
//! for `bench/compare.sh`.
//!
//! ```sh
//! cargo run --release --manifest-path bench/peers/Cargo.toml --target-dir target/bench-peers \
//!     --bin apalis_workloads -- --all
//! ```
//!
//! apalis runs jobs: a worker pulls tasks from a backend and calls a handler through a tower
//! service stack. Here one worker per workload, built and started before the timing (as flowcore's
//! store is installed once), is driven as a stream of its events on the same Tokio task that
//! pushes its tasks, as flowcore's task runs are awaited on the flow's task; a task is done when
//! the worker yields its `Success` event, the handler's output, after the whole service stack.
//!
//! - `sequential_{10,100,1000}` (µs per task): n tasks pushed one at a time, each pushed once
//!   the previous one is done (apalis has no dependencies between tasks). Timed: the n pushes and
//!   waits. Median of 5 runs (1 for 1000), after a warm-up of 10 tasks.
//! - `map_1000` (ms): 1000 tasks pushed at once, then their 1000 results summed. The worker has
//!   no concurrency limit (apalis's default), so it runs them concurrently on the worker's task,
//!   as `flowcore::map` does on the flow's.
//! - `retries` (ms): one task whose handler fails twice, then succeeds, on a worker with apalis's
//!   retry layer, `RetryPolicy::retries(2)` (retries at once, no backoff). Median of 5.
//! - `cache_hit`: not printed. apalis has no result cache (its idempotency keys drop a duplicate
//!   push; they do not return an earlier result).
//! - No DAG: the in-memory backend does not support apalis-workflow, so tasks are independent.
//!
//! What apalis tracks per task: a random task id, an attempt counter and a status (pending,
//! running, done) in the task's in-memory context, and the worker's count of running tasks.
//! Nothing is persisted: `MemoryStorage` is a channel. Logging: apalis logs through `tracing`
//! and no subscriber is installed, so it is off, as for flowcore's in-process rows.

use std::error::Error;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use apalis::prelude::*;
use flowcore_bench_peers::{FLOW_REPS, MAP_REPS, SEQUENTIAL_REPS, emit_ms, emit_sequential};
use futures_channel::mpsc;
use futures_util::lock::Mutex;
use futures_util::{SinkExt, Stream, StreamExt};

type Result<T> = std::result::Result<T, Box<dyn Error>>;
type Events = Pin<Box<dyn Stream<Item = std::result::Result<Event, WorkerError>>>>;

async fn noop(i: u32) -> u32 {
    i
}

static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);

/// Fails on its first two attempts of each task, succeeds on the third.
async fn flaky(_: u32) -> std::result::Result<u32, BoxDynError> {
    let n = FLAKY_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    if n <= 2 {
        Err(format!("flaky ({n})").into())
    } else {
        Ok(n)
    }
}

/// A `MemoryStorage` and a sink that pushes to it once it is moved into its worker.
/// `MemoryStorage::new()` keeps its sender to itself, so it is built from the same parts
/// (an unbounded channel behind a `MemorySink`) with `MemoryStorage::new_with`.
fn memory_storage() -> (MemorySink<u32>, MemoryStorage<u32>) {
    let (sender, receiver) = mpsc::unbounded::<Task<u32>>();
    let sender: Box<
        dyn futures_util::Sink<Task<u32>, Error = MemoryStorageError> + Send + Sync + Unpin,
    > = Box::new(sender.sink_map_err(MemoryStorageError::from));
    let sink = MemorySink::new(Arc::new(Mutex::new(sender)));
    (
        sink.clone(),
        MemoryStorage::new_with(sink, receiver.boxed()),
    )
}

/// Pushes a task as `TaskSink::push` does.
async fn push(sink: &mut MemorySink<u32>, i: u32) -> Result<()> {
    sink.send(TaskBuilder::new(i).build()).await?;
    Ok(())
}

/// Waits for the worker's next task result.
async fn next_result(events: &mut Events) -> Result<u32> {
    loop {
        match events.next().await.ok_or("the worker stopped")?? {
            Event::Success(out) => return Ok(*out.downcast::<u32>().map_err(|_| "not a u32")?),
            Event::Error(e) => return Err(format!("task failed: {e}").into()),
            _ => {} // start, heartbeat
        }
    }
}

/// Runs `n` tasks, each pushed once the previous one is done; returns how long that took.
async fn sequential(sink: &mut MemorySink<u32>, events: &mut Events, n: u32) -> Result<Duration> {
    let start = Instant::now();
    for i in 0..n {
        push(sink, black_box(i)).await?;
        black_box(next_result(events).await?);
    }
    Ok(start.elapsed())
}

/// Pushes `n` tasks at once and sums their results.
async fn mapped(sink: &mut MemorySink<u32>, events: &mut Events, n: u32) -> Result<u32> {
    for i in 0..n {
        push(sink, i).await?;
    }
    let mut sum = 0;
    for _ in 0..n {
        sum += next_result(events).await?;
    }
    Ok(sum)
}

async fn retrying(sink: &mut MemorySink<u32>, events: &mut Events) -> Result<u32> {
    FLAKY_CALLS.store(0, Ordering::SeqCst);
    push(sink, 0).await?;
    next_result(events).await
}

#[tokio::main]
async fn main() -> Result<()> {
    flowcore_bench_peers::require_all_flag("usage: apalis_workloads --all");

    let (mut sink, storage) = memory_storage();
    let mut events: Events = Box::pin(
        WorkerBuilder::new("noop")
            .backend(storage)
            .build(noop)
            .stream(),
    );
    for (n, reps) in SEQUENTIAL_REPS {
        sequential(&mut sink, &mut events, 10).await?; // warm-up
        let mut samples = Vec::with_capacity(reps);
        for _ in 0..reps {
            samples.push(sequential(&mut sink, &mut events, n).await?);
        }
        emit_sequential(n, samples);
    }

    mapped(&mut sink, &mut events, 10).await?;
    let mut samples = Vec::with_capacity(MAP_REPS);
    for _ in 0..MAP_REPS {
        let start = Instant::now();
        let sum = mapped(&mut sink, &mut events, 1000).await?;
        samples.push(start.elapsed());
        assert_eq!(
            sum,
            999 * 1000 / 2,
            "every task should have returned its input"
        );
    }
    emit_ms("map_1000", samples);

    let (mut sink, storage) = memory_storage();
    let worker = WorkerBuilder::new("flaky")
        .backend(storage)
        .retry(RetryPolicy::retries(2));
    let mut events: Events = Box::pin(worker.build(flaky).stream());
    assert_eq!(
        retrying(&mut sink, &mut events).await?,
        3,
        "the flaky task should succeed on attempt 3"
    );
    let mut samples = Vec::with_capacity(FLOW_REPS);
    for _ in 0..FLOW_REPS {
        let start = Instant::now();
        black_box(retrying(&mut sink, &mut events).await?);
        samples.push(start.elapsed());
    }
    emit_ms("retries", samples);
    Ok(())
}
