// The crate's front page is the README (its first sections say what flowcore is and how to use
// it in a project); every Rust block in it is compiled, and run unless marked `no_run`, as a doc
// test, so that what it shows keeps working.
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
// The writer thread, its batches and the crash bookkeeping serve the SQLite store only: a build
// without it (`default-features = false`, memory only) compiles them unused rather than
// scattering cfgs through the store. The default build still reports dead code.
#![cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]

pub mod artifact;
mod attempt;
mod background;
pub mod cache;
mod call;
mod cancel;
mod clock;
mod codec;
mod context;
mod crash_hooks;
mod error;
mod exit;
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
pub mod pause;
mod producers;
mod record;
mod resume;
mod retry;
mod run_hooks;
mod run_id_hasher;
pub mod runtime;
pub mod schedule;
mod scratch;
mod sealed;
mod serve;
mod span;
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

pub use background::{Background, BackgroundFn, BackgroundTask, Delayed, DelayedError, background};
pub use call::WithRun;
pub use cancel::CancelOutcome;
pub use clock::Timestamp;
pub use context::spawn;
pub use error::TimeoutError;
pub use flow::{FlowBody, FlowCall};
pub use hooks::{Hook, RunInfo, RunKind, StateHook};
pub use logging::init::init_logging;
pub use map::{Map, MapFuture, map};
pub use names::TaskRunName;
pub use outcome::TaskError;
pub use record::{
    CacheStatus, EdgeKind, FlowRunRecord, History, TaskRunRecord, Upstream, Upstreams,
};
pub use resume::resume;
pub use retry::RetryPolicy;
pub use run_hooks::RunHooks;
pub use serve::{
    Deployment, DeploymentFlow, GRACE_PERIOD, IntoSchedule, LATE_AFTER, Overlap, Serve, ServeError,
    TASK_LIMIT, serve, serve_tasks,
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

/// What the macros' generated code uses. Not a public API: it changes without notice.
#[doc(hidden)]
pub mod __private;
