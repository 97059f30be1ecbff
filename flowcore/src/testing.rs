//! What a test of your flows needs: a store of the test's own, and the runs it recorded.
//!
//! Each test runs its flows inside [`isolated`], which gives it a fresh memory store in scope
//! (see [`Store::scope`]): nothing reaches `~/.flowcore`, tests running at once do not see each
//! other's runs, and there is nothing to install. The record of a flow run comes from the call
//! (`.with_run()`), or from the store, as any reader would see it. Retry delays, timeouts and
//! schedules run on tokio's clock, so `#[tokio::test(start_paused = true)]` steps through a
//! 10 × 15 s retry schedule in milliseconds; that needs tokio's `test-util` feature in your
//! dev-dependencies:
//!
//! ```toml
//! [dev-dependencies]
//! tokio = { version = "1", features = ["macros", "rt", "test-util"] }
//! ```
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use flowcore::{flow, task, StateKind};
//!
//! static CALLS: AtomicU32 = AtomicU32::new(0);
//!
//! #[task(retries = 10, retry_delay = "15s")]
//! async fn flaky(attempts_to_fail: u32) -> Result<u32, String> {
//!     let attempt = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
//!     if attempt <= attempts_to_fail { Err(format!("attempt {attempt} failed")) } else { Ok(attempt) }
//! }
//!
//! #[flow]
//! async fn pipeline() -> Result<u32, String> {
//!     flaky(3).await
//! }
//!
//! // In your tests: #[tokio::test(start_paused = true)]
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! async fn retries_until_the_fourth_attempt() {
//!     let started = tokio::time::Instant::now();
//!     let ((out, run), store) = flowcore::testing::isolated(pipeline().with_run()).await;
//!     assert_eq!(out, Ok(4));
//!     assert_eq!(run.task_runs[0].attempts, 4);
//!     // Three 15 s delays, on the paused clock.
//!     assert_eq!(started.elapsed(), std::time::Duration::from_secs(45));
//!     // The store of the test holds this run and no other.
//!     let stored = flowcore::testing::only_flow_run(&store);
//!     assert_eq!(stored.id, run.id);
//!     assert_eq!(stored.state().kind, StateKind::Completed);
//! }
//! # fn main() { retries_until_the_fourth_attempt() }
//! ```

use std::future::Future;

use crate::record::FlowRunRecord;
use crate::store::{RunFilter, Store};

/// Runs `test` with a fresh memory store in scope; returns what it returned and the store, whose
/// runs are the ones `test` made, and only those.
pub async fn isolated<F: Future>(test: F) -> (F::Output, Store) {
    let store = Store::memory();
    let out = store.scope(test).await;
    (out, store)
}

/// The whole record of the one top-level flow run in `store`, as a reader would see it; panics,
/// saying how many there are, if there is not exactly one.
pub fn only_flow_run(store: &Store) -> FlowRunRecord {
    // Every run, subflow runs too (the list has them, newest first): a flow with two subflows
    // is three runs, and the top-level one may be the last of them.
    let filter = RunFilter {
        limit: usize::MAX,
        ..RunFilter::default()
    };
    let runs: Vec<_> = store
        .flow_runs(&filter)
        .expect("a memory store reads without failing")
        .into_iter()
        .filter(|run| run.parent_id.is_none())
        .collect();
    match runs.as_slice() {
        [run] => store
            .flow_run(run.id)
            .expect("a memory store reads without failing")
            .expect("listed, so kept"),
        _ => panic!(
            "expected one top-level flow run in the store, found {}",
            runs.len()
        ),
    }
}
