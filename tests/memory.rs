//! Memory kept per finished task run: the target is under 500 bytes.
//!
//! A counting allocator measures the bytes still allocated once a flow of 10,000 task runs has
//! returned its record, against the bytes allocated before it started. This binary holds only
//! this test, so no other test allocates at the same time.

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
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
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
