//! Memory kept per finished task run (under 500 bytes; a flow awaited without its record keeps
//! none of its own), and taken by each task run submitted and not started yet (under 1 KB:
//! issue 17's target for `.submit()`).
//!
//! A counting allocator measures the bytes allocated between two points of a flow. This binary
//! holds only these tests, and they take turns (`ONE_AT_A_TIME`), so nothing else allocates
//! meanwhile.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use flowcore::{flow, task};

struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: the caller's contract for `realloc` is passed on as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const RUNS: usize = 10_000;

/// The tests of this binary measure one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Waits for this test's turn to measure; returns it (held until dropped) and a runtime.
fn my_turn() -> (std::sync::MutexGuard<'static, ()>, tokio::runtime::Runtime) {
    let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    (turn, rt)
}

#[task]
async fn measured_step(i: usize) -> usize {
    i + 1
}

#[task(retries = 2, tags = ["db"])]
async fn measured_fallible(i: usize) -> Result<usize, String> {
    Ok(i)
}

#[flow]
async fn many_steps() -> usize {
    let mut total = 0;
    for i in 0..RUNS / 2 {
        total += measured_step(i).await;
        total += measured_fallible(i).await.unwrap_or(0);
    }
    total
}

#[test]
fn a_finished_task_run_keeps_under_500_bytes() {
    let (_turn, rt) = my_turn();
    // Warm up lazily initialised statics (clock anchor, tokio's task-local, tracing callsites).
    rt.block_on(many_steps());

    let before = LIVE_BYTES.load(Ordering::SeqCst);
    let (_, run) = rt.block_on(many_steps().with_run());
    let after = LIVE_BYTES.load(Ordering::SeqCst);

    assert_eq!(run.task_runs.len(), RUNS);
    let per_run = (after - before) as f64 / RUNS as f64;
    println!("memory kept per finished task run: {per_run:.0} bytes");
    assert!(
        per_run < 500.0,
        "{per_run:.0} bytes kept per finished task run"
    );
    drop(run);
}

/// Returns the bytes its task runs left allocated, measured inside the flow run at its start
/// and at its last statement.
#[flow]
async fn steps_measured() -> isize {
    let before = LIVE_BYTES.load(Ordering::SeqCst);
    for i in 0..RUNS {
        measured_step(i).await;
    }
    LIVE_BYTES.load(Ordering::SeqCst) - before
}

#[test]
fn a_flow_awaited_without_its_record_holds_only_what_its_store_keeps() {
    let (_turn, rt) = my_turn();
    rt.block_on(flowcore::testing::isolated(steps_measured()));

    // Logging is off in this binary, so no summary needs the records either.
    let (held, store) = rt.block_on(flowcore::testing::isolated(steps_measured()));
    let ((held_with_record, run), _) =
        rt.block_on(flowcore::testing::isolated(steps_measured().with_run()));
    let per_run = held as f64 / RUNS as f64;
    let per_run_with_record = held_with_record as f64 / RUNS as f64;
    println!(
        "memory held per task run until its flow run ends: {per_run:.0} bytes awaited \
         plainly, {per_run_with_record:.0} bytes with its record asked for"
    );
    // The memory store's 128 bytes a task run in a list with room to grow, and the latest
    // outputs' producers (for data edges): 271 bytes when written. A record is 248 bytes, in
    // a list with room to grow too.
    assert!(per_run < 400.0, "{per_run:.0} bytes per task run");
    assert!(
        per_run_with_record > per_run + 300.0,
        "{per_run_with_record:.0} against {per_run:.0} bytes per task run"
    );
    assert_eq!(run.task_runs.len(), RUNS);
    // Dropped from the flow run's record, not from the store.
    let stored = flowcore::testing::only_flow_run(&store);
    assert_eq!(stored.task_runs.len(), RUNS);
    assert!(
        stored
            .task_runs
            .iter()
            .all(|r| r.state().kind == flowcore::StateKind::Completed)
    );
}

#[test]
fn a_flow_logging_its_summary_holds_what_the_summary_shows_not_every_record() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let (_turn, rt) = my_turn();
    // Logging at `info`, as `init_logging()` does, into nowhere: each run's lines are written
    // and freed; the summary at the end needs its counts and first 100 rows.
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO))
        .with(flowcore::logging::layer_to(std::io::sink, false));
    let held = tracing::subscriber::with_default(subscriber, || {
        rt.block_on(flowcore::testing::isolated(steps_measured()));
        rt.block_on(flowcore::testing::isolated(steps_measured())).0
    });
    let per_run = held as f64 / RUNS as f64;
    println!("memory held per task run until its flow run ends, logging on: {per_run:.0} bytes");
    // 378 bytes when written (the store keeps each run's log lines too); every record as well
    // would be 400 more.
    assert!(per_run < 550.0, "{per_run:.0} bytes per task run");
}

/// Submits `RUNS` task runs and measures the bytes they take before any has started (on a
/// current-thread runtime, none starts until the flow awaits), then awaits them all.
#[flow]
async fn submit_many() -> (isize, usize) {
    let before = LIVE_BYTES.load(Ordering::SeqCst);
    let handles: Vec<_> = (0..RUNS).map(|i| measured_step(i).submit()).collect();
    let pending = LIVE_BYTES.load(Ordering::SeqCst) - before;
    let mut total = 0;
    for handle in handles {
        total += handle.await;
    }
    (pending, total)
}

#[test]
fn a_submitted_task_run_waiting_for_its_turn_takes_under_1_kb() {
    let (_turn, rt) = my_turn();
    rt.block_on(submit_many());
    let (pending, total) = rt.block_on(submit_many());
    assert_eq!(total, RUNS * (RUNS + 1) / 2);
    let per_run = pending as f64 / RUNS as f64;
    println!("memory taken per submitted task run not started yet: {per_run:.0} bytes");
    assert!(
        per_run < 1024.0,
        "{per_run:.0} bytes per submitted task run not started yet"
    );
}
