//! Which flow run the code is running in.
//!
//! The current flow run lives in a tokio task-local, never a thread-local, so it follows the
//! future across threads. A task or flow call reads it when it is *called*, not when it is
//! first polled: `tokio::spawn(extract(url))` and `join_all` keep the run attached to the
//! flow that called it.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::task::futures::TaskLocalFuture;
use uuid::Uuid;

use crate::record::{FlowRunRecord, TaskRunRecord};
use crate::store::PriorRun;

tokio::task_local! {
    static CURRENT_FLOW: Arc<FlowContext>;
}

/// The shared part of a live flow run: what its task runs and subflows report into.
#[derive(Debug)]
#[doc(hidden)]
pub struct FlowContext {
    pub(crate) id: Uuid,
    pub(crate) name: String,
    /// Task and subflow calls made so far: each call's position, by which a resumed run
    /// finds what the crashed one did at the same point.
    calls: AtomicU32,
    /// For a resumed run: what the earlier attempt did at each call position.
    prior: BTreeMap<u32, PriorRun>,
    finished: Mutex<Finished>,
}

#[derive(Debug, Default)]
struct Finished {
    task_runs: Vec<TaskRunRecord>,
    subflow_runs: Vec<FlowRunRecord>,
}

impl FlowContext {
    pub(crate) fn new(id: Uuid, name: String, prior: BTreeMap<u32, PriorRun>) -> Self {
        FlowContext {
            id,
            name,
            calls: AtomicU32::new(0),
            prior,
            finished: Mutex::new(Finished::default()),
        }
    }

    /// The position of a new call in this flow run.
    pub(crate) fn next_call(&self) -> u32 {
        self.calls.fetch_add(1, Ordering::Relaxed)
    }

    /// What an earlier attempt of this flow run did at call position `seq`.
    pub(crate) fn prior(&self, seq: u32) -> Option<&PriorRun> {
        self.prior.get(&seq)
    }

    /// The flow run this code runs in, if any.
    pub(crate) fn current() -> Option<Arc<FlowContext>> {
        CURRENT_FLOW.try_with(Arc::clone).ok()
    }

    /// Runs `fut` inside this flow run.
    pub(crate) fn scope<F: Future>(self: &Arc<Self>, fut: F) -> TaskLocalFuture<Arc<Self>, F> {
        CURRENT_FLOW.scope(Arc::clone(self), fut)
    }

    fn finished(&self) -> MutexGuard<'_, Finished> {
        // Nothing panics while holding the lock, but a poisoned record is still a record.
        self.finished.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn add_task_run(&self, run: TaskRunRecord) {
        self.finished().task_runs.push(run);
    }

    pub(crate) fn add_subflow_run(&self, run: FlowRunRecord) {
        self.finished().subflow_runs.push(run);
    }

    /// Takes the runs reported so far.
    pub(crate) fn take_finished(&self) -> (Vec<TaskRunRecord>, Vec<FlowRunRecord>) {
        let mut finished = self.finished();
        (
            std::mem::take(&mut finished.task_runs),
            std::mem::take(&mut finished.subflow_runs),
        )
    }
}

/// Spawns `fut` on the tokio runtime inside the current flow run, so that tasks *called*
/// inside it (not only those called before spawning) belong to the flow.
///
/// `tokio::spawn(extract(url))` needs no help: the call already knows its flow. Use this for
/// an `async` block that calls tasks.
///
/// ```
/// use flowcore::{flow, task};
///
/// #[task]
/// async fn double(x: u32) -> u32 {
///     x * 2
/// }
///
/// #[flow]
/// async fn fan_out() -> u32 {
///     let handle = flowcore::spawn(async { double(1).await + double(2).await });
///     handle.await.unwrap()
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let (out, run) = fan_out().with_run().await;
/// assert_eq!(out, 6);
/// assert_eq!(run.task_runs.len(), 2);
/// # }
/// ```
pub fn spawn<F>(fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match FlowContext::current() {
        Some(flow) => tokio::spawn(CURRENT_FLOW.scope(flow, fut)),
        None => tokio::spawn(fut),
    }
}
