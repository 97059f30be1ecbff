//! Flow calls and flow runs.

use std::borrow::Cow;
use std::future::Future;
use std::panic::resume_unwind;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;
use tracing::Instrument as _;

use crate::attempt::{Attempts, Behaviour, Ending, LiveRun, attempt_loop};
use crate::call::{Finished, RunFuture, WithRun, poll_output};
use crate::clock::Timestamp;
use crate::context::FlowContext;
use crate::hooks::{Hooks, RunInfo, RunKind};
use crate::names::{flow_run_name, new_run_id};
use crate::outcome::Outcome;
use crate::record::{FlowRunRecord, History};
use crate::retry::RetryPolicy;
use crate::state::{State, StateKind};

/// A flow's settings from `#[flow(...)]`, fixed at compile time.
#[doc(hidden)]
#[derive(Debug)]
pub struct FlowSpec {
    pub name: &'static str,
    pub retry: RetryPolicy,
    pub hooks: Hooks,
}

/// The future of a flow run, as `#[flow]` builds it; its `Output` is the flow function's
/// declared return type.
pub trait FlowBody: RunFuture<Record = FlowRunRecord> {}

impl<B: RunFuture<Record = FlowRunRecord>> FlowBody for B {}

pin_project! {
    /// A call of a `#[flow]` function. Await it to run the flow and get the function's declared
    /// output; use [`with_run`](FlowCall::with_run) to get the run's whole record as well.
    ///
    /// Called inside another flow run, it is a subflow: a child run of that flow run.
    ///
    /// ```
    /// use flowcore::{flow, task, StateKind};
    ///
    /// #[task]
    /// async fn say_hello(name: &str) -> String {
    ///     format!("Hello, {name}!")
    /// }
    ///
    /// #[flow(name = "hello")]
    /// async fn hello_flow() -> String {
    ///     say_hello("world").await
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let (greeting, run) = hello_flow().with_run().await;
    /// assert_eq!(greeting, "Hello, world!");
    /// assert_eq!(run.flow, "hello");
    /// assert_eq!(run.state().kind, StateKind::Completed);
    /// assert_eq!(run.task_runs[0].state().kind, StateKind::Completed);
    /// # }
    /// ```
    #[must_use = "a flow call does nothing until it is awaited"]
    pub struct FlowCall<B> {
        #[pin]
        body: B,
    }
}

impl<B: FlowBody> FlowCall<B> {
    #[doc(hidden)]
    pub fn new(body: B) -> Self {
        FlowCall { body }
    }

    /// Runs the flow and returns its output together with the flow run's record: its state
    /// history, and every task run and subflow run with theirs.
    pub fn with_run(self) -> WithRun<B> {
        WithRun::new(self.body)
    }
}

impl<B: FlowBody> Future for FlowCall<B> {
    type Output = B::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<B::Output> {
        poll_output(self.project().body, cx)
    }
}

/// Starts a flow call: what a `#[flow]` function's body calls. The parent flow run and the
/// Pending time are read now, at the call; the run begins at the first poll.
#[doc(hidden)]
pub fn run_flow<K, R, A>(
    spec: &'static FlowSpec,
    attempts: A,
    behaviour: Behaviour<R, K::Error>,
) -> impl Future<Output = Finished<R, FlowRunRecord>>
where
    K: Outcome<R>,
    A: Attempts<Output = R>,
{
    let parent = FlowContext::current();
    let called_at = Timestamp::now();
    async move {
        let context = Arc::new(FlowContext::new(new_run_id(), flow_run_name()));
        let span = tracing::info_span!(target: "flowcore", "flow_run", run = %context.name);
        let run = LiveFlowRun {
            spec,
            parent,
            history: History::starting_at(called_at),
            attempts: 0,
            finished: false,
            context: Arc::clone(&context),
        };
        let attempts = InFlow {
            context,
            inner: attempts,
        };
        drive::<K, R, _>(run, attempts, behaviour)
            .instrument(span)
            .await
    }
}

async fn drive<K, R, A>(
    mut run: LiveFlowRun,
    mut attempts: A,
    behaviour: Behaviour<R, K::Error>,
) -> Finished<R, FlowRunRecord>
where
    K: Outcome<R>,
    A: Attempts<Output = R>,
{
    let spec = run.spec;
    tracing::info!(
        target: "flowcore",
        "Beginning flow run '{}' for flow '{}'",
        run.context.name,
        spec.name
    );
    match attempt_loop::<K, R, A>(&mut run, &spec.retry, &mut attempts, &behaviour).await {
        Ending::Output(out) => run.finish(out),
        Ending::Panicked(panic) => {
            run.abandon();
            resume_unwind(panic)
        }
    }
}

/// Runs each attempt of the flow's body inside the flow run's context.
struct InFlow<A> {
    context: Arc<FlowContext>,
    inner: A,
}

impl<A: Attempts> Attempts for InFlow<A> {
    type Output = A::Output;
    type Future = TaskLocalFuture<Arc<FlowContext>, A::Future>;

    fn attempt(&mut self, last: bool) -> Self::Future {
        self.context.scope(self.inner.attempt(last))
    }
}

/// A flow run in progress. Dropped before it finishes, it records `Cancelled`.
struct LiveFlowRun {
    spec: &'static FlowSpec,
    parent: Option<Arc<FlowContext>>,
    context: Arc<FlowContext>,
    history: History,
    attempts: u32,
    finished: bool,
}

impl LiveFlowRun {
    /// The run ended normally: gathers its task runs and subflow runs into the record and
    /// logs the summary; the call hands the record on.
    fn finish<R>(&mut self, output: R) -> Finished<R, FlowRunRecord> {
        Finished {
            output,
            record: self.record(),
            parent: self.parent.take(),
        }
    }

    /// The run ended by a panic or by being dropped: no call will hand the record on.
    fn abandon(&mut self) {
        let record = self.record();
        if let Some(parent) = &self.parent {
            parent.add_subflow_run(record);
        }
    }

    fn record(&mut self) -> FlowRunRecord {
        self.finished = true;
        let (task_runs, subflow_runs) = self.context.take_finished();
        let record = FlowRunRecord {
            id: self.context.id,
            name: self.context.name.clone(),
            flow: Cow::Borrowed(self.spec.name),
            parent_id: self.parent.as_ref().map(|p| p.id),
            history: std::mem::take(&mut self.history),
            attempts: self.attempts,
            task_runs,
            subflow_runs,
        };
        if tracing::enabled!(target: "flowcore", tracing::Level::INFO) {
            tracing::info!(target: "flowcore", "Summary\n{}", record.summary());
        }
        record
    }
}

impl LiveRun for LiveFlowRun {
    fn history(&self) -> &History {
        &self.history
    }

    fn push(&mut self, state: State) {
        self.history.push(state);
    }

    fn set_attempts(&mut self, attempts: u32) {
        self.attempts = attempts;
    }

    fn hooks(&self) -> &'static Hooks {
        &self.spec.hooks
    }

    fn info(&self) -> RunInfo<'_> {
        RunInfo {
            kind: RunKind::Flow,
            id: self.context.id,
            label: self.spec.name,
            flow_run_name: Some(&self.context.name),
            flow_run_id: self.parent.as_ref().map(|p| p.id),
            attempt: self.attempts,
            history: &self.history,
            tags: &[],
        }
    }
}

impl Drop for LiveFlowRun {
    fn drop(&mut self) {
        if !self.finished {
            self.transition(
                StateKind::Cancelled,
                Some("the flow run was dropped before it finished".to_owned()),
            );
            self.abandon();
        }
    }
}
