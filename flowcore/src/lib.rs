//! Prefect-style workflow orchestration for Rust.
//!
//! Put `#[task]` and `#[flow]` on plain `async fn`s and every call becomes a tracked run with
//! states, retries, timeouts, caching, state hooks, Prefect-style logs and an end-of-run
//! summary. Misuse of the attributes is a compile error that points at the bad token.
//!
//! ```
//! use flowcore::{flow, task, StateKind};
//!
//! #[task(retries = 3, retry_delay = "15s")]
//! async fn fetch(attempt_ok: u32) -> Result<u32, String> {
//!     static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
//!     let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
//!     if n < attempt_ok { Err(format!("flaky ({n})")) } else { Ok(n) }
//! }
//!
//! #[flow(name = "demo")]
//! async fn demo() -> Result<u32, String> {
//!     fetch(3).await
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! flowcore::init_logging();
//! let (out, run) = demo().with_run().await;
//! assert_eq!(out, Ok(3));
//! let fetch_run = &run.task_runs[0];
//! assert_eq!(fetch_run.attempts, 3);
//! assert_eq!(fetch_run.history.kinds(), [
//!     StateKind::Pending, StateKind::Running, StateKind::Retrying, StateKind::Running,
//!     StateKind::Retrying, StateKind::Running, StateKind::Completed,
//! ]);
//! # }
//! ```
//!
//! See the `task` and `flow` attributes for every setting, [`TaskCall`] and [`FlowCall`] for
//! what a call returns, and [`FlowRunRecord`] for what a run records.

#![warn(missing_docs)]
// The writer thread, its batches and the crash bookkeeping serve the SQLite store only: a build
// without it (`default-features = false`, memory only) compiles them unused rather than
// scattering cfgs through the store. The default build still reports dead code.
#![cfg_attr(not(feature = "sqlite"), allow(dead_code))]

mod attempt;
pub mod cache;
mod call;
mod clock;
mod codec;
mod context;
mod error;
mod fingerprint;
mod flow;
pub mod graph;
mod hooks;
mod interrupt;
mod launch;
pub mod limits;
pub mod logging;
mod map;
mod names;
mod outcome;
mod panic;
mod record;
mod resume;
mod retry;
pub mod runtime;
pub mod schedule;
mod sealed;
mod serve;
mod state;
pub mod store;
mod submit;
pub mod summary;
mod task;
pub mod terminal;
pub mod testing;
mod upstream;

pub use flowmacros::{flow, task};
pub use uuid::Uuid;

pub use call::WithRun;
pub use clock::Timestamp;
pub use context::spawn;
pub use error::TimeoutError;
pub use flow::{FlowBody, FlowCall};
pub use hooks::{Hook, RunInfo, RunKind, StateHook};
pub use logging::init::init_logging;
pub use map::{Map, MapFuture, map};
pub use names::TaskRunName;
pub use outcome::TaskError;
pub use record::{CacheStatus, EdgeKind, FlowRunRecord, History, TaskRunRecord, Upstream};
pub use resume::resume;
pub use retry::RetryPolicy;
pub use serve::{
    Deployment, DeploymentFlow, GRACE_PERIOD, IntoSchedule, LATE_AFTER, Overlap, Serve, ServeError,
    serve,
};
pub use state::{State, StateKind};
pub use store::error::StoreError;
pub use store::handle::Store;
pub use submit::TaskHandle;
pub use task::{TaskBody, TaskCall};
pub use upstream::{AllowFailure, Skippable, UpstreamFailed, WaitFor, allow_failure};

/// The names most flows need: `use flowcore::prelude::*;`.
pub mod prelude {
    pub use crate::{
        FlowRunRecord, RunInfo, State, StateKind, TaskRunRecord, TimeoutError, UpstreamFailed,
        allow_failure, flow, map, task,
    };
}

/// The README's Rust blocks, compiled (and, unless marked `no_run`, run) as doc tests, so that
/// what it shows keeps working.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// What the macros' generated code uses. Not a public API: it changes without notice.
#[doc(hidden)]
pub mod __private;
