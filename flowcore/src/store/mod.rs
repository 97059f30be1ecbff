//! The run store: where flow runs, task runs, every state transition, log lines and cached
//! results are kept, so that they outlive the process.
//!
//! Two kinds: [`Store::sqlite`] (the default: a file, shared by every process on the machine)
//! and [`Store::memory`] (this process only, with a bounded history: every unfinished flow run
//! and the newest finished ones, up to 1,000 holding at most 100,000 task runs; task runs
//! called outside any flow are not kept). Unless a program installs one with
//! [`Store::install`], the first run opens the default store, `$FLOWCORE_HOME/flowcore.db`,
//! with `FLOWCORE_HOME` defaulting to `~/.flowcore`.
//!
//! Runs never wait for the disk. With SQLite they send what happens to a writer thread, which applies
//! everything that arrived since its last commit in one transaction (group commit). When the
//! writer falls behind, new task runs wait before starting (backpressure): nothing is dropped.
//! A flow run, or a task run called outside any flow, returns only once its final state is
//! committed. SQLite runs in WAL mode with `synchronous = NORMAL`: a committed run survives
//! the process being killed; a power cut may lose the last commits, never corrupt the file.
//!
//! ```
//! use flowcore::{flow, task, Store, StateKind};
//!
//! #[task]
//! async fn double(x: u32) -> u32 {
//!     x * 2
//! }
//!
//! #[flow]
//! async fn doubling() -> u32 {
//!     double(21).await
//! }
//!
//! # #[cfg(not(feature = "sqlite"))] fn main() {}
//! # #[cfg(feature = "sqlite")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), flowcore::StoreError> {
//! let dir = tempfile::tempdir().unwrap();
//! let store = Store::sqlite(dir.path().join("flowcore.db"))?;
//! store.clone().install()?;
//!
//! let (out, run) = doubling().with_run().await;
//! let stored = store.flow_run(run.id)?.expect("durable when the flow call returns");
//! assert_eq!(stored.state().kind, StateKind::Completed);
//! assert_eq!(stored.task_runs[0].history.kinds(), run.task_runs[0].history.kinds());
//! # Ok(())
//! # }
//! ```

mod backend;
mod delete;
mod deployments;
pub(crate) mod error;
mod event;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) mod exit;
pub(crate) mod handle;
mod limits;
pub(crate) mod location;
mod memory;
mod per_run;
#[cfg(feature = "postgres")]
mod postgres;
mod process;
mod query;
mod retention;
mod scope;
mod short_text;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;
pub(crate) mod task_requests;
mod task_states;
mod writer;

pub use delete::{Deleted, Prune};
pub use deployments::{DeploymentInfo, DeploymentRun, RequestedRun, ServedBy, WorkerInfo};
pub use limits::LimitInfo;
pub use query::{CacheEntry, FlowRunSummary, LogLine, RunFilter};
pub use writer::WRITE_TIMEOUT;

pub(crate) use deployments::{CLAIM_BATCH, DeploymentRow, REQUESTED, Tick};
pub(crate) use error::StoreError;
pub(crate) use event::{CallPosition, Event};
pub(crate) use handle::Store;
pub(crate) use limits::Slot;
pub(crate) use process::heartbeat;
pub(crate) use query::{PriorRun, ResumePoint};
pub(crate) use scope::RunStore;
pub(crate) use short_text::ShortText;
pub(crate) use task_requests::{ClaimedTask, DelayRequest, TaskResult};
