//! Task calls and task runs.

use std::borrow::Cow;
use std::future::Future;
use std::panic::resume_unwind;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tracing::Instrument as _;

use crate::attempt::{Attempts, Behaviour, Ending, LiveRun, attempt_loop};
use crate::cache::Cache;
use crate::call::{Finished, RunFuture, WithRun, poll_output};
use crate::clock::Timestamp;
use crate::codec::Codec;
use crate::context::FlowContext;
use crate::hooks::{Hooks, RunInfo, RunKind};
use crate::names::{TaskRunName, new_run_id_at};
use crate::outcome::Outcome;
use crate::record::{CacheStatus, History, TaskRunRecord};
use crate::retry::RetryPolicy;
use crate::state::{State, StateKind};
use crate::store::{CallPosition, Event, Store};

/// A task's settings from `#[task(...)]`, fixed at compile time.
#[doc(hidden)]
#[derive(Debug)]
pub struct TaskSpec {
    pub name: &'static str,
    pub retry: RetryPolicy,
    pub refresh_cache: bool,
    pub tags: &'static [Cow<'static, str>],
    pub hooks: Hooks,
}

/// The future of a task run, as `#[task]` builds it; its `Output` is the task function's
/// declared return type.
pub trait TaskBody: RunFuture<Record = TaskRunRecord> {}

impl<B: RunFuture<Record = TaskRunRecord>> TaskBody for B {}

pin_project! {
    /// A call of a `#[task]` function. Await it to run the task and get exactly the function's
    /// declared output, so `?` works as for any `async fn`.
    ///
    /// The call belongs to the flow run it was made in. That is read when the function is
    /// *called*, so `tokio::spawn(task(x))` and `join_all` keep it attached to the flow.
    ///
    /// ```
    /// use flowcore::task;
    ///
    /// #[task(retries = 2)]
    /// async fn add(a: u32, b: u32) -> u32 {
    ///     a + b
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// assert_eq!(add(1, 2).await, 3);
    ///
    /// let (sum, run) = add(2, 2).with_run().await;
    /// assert_eq!(sum, 4);
    /// assert_eq!(run.state().kind, flowcore::StateKind::Completed);
    /// # }
    /// ```
    #[must_use = "a task call does nothing until it is awaited"]
    pub struct TaskCall<B> {
        #[pin]
        body: B,
    }
}

impl<B: TaskBody> TaskCall<B> {
    #[doc(hidden)]
    pub fn new(body: B) -> Self {
        TaskCall { body }
    }

    /// Runs the task and returns its output together with the task run's record.
    pub fn with_run(self) -> WithRun<B> {
        WithRun::new(self.body)
    }
}

impl<B: TaskBody> Future for TaskCall<B> {
    type Output = B::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<B::Output> {
        poll_output(self.project().body, cx)
    }
}

/// Starts a task call: what a `#[task]` function's body calls. The flow run it belongs to and
/// the Pending time are read now, at the call; the run begins at the first poll.
#[doc(hidden)]
pub fn run_task<K, R, A>(
    spec: &'static TaskSpec,
    attempts: A,
    behaviour: Behaviour<R, K::Error>,
    cache: Option<Cache<R>>,
    codec: Option<Codec<R>>,
) -> impl Future<Output = Finished<R, TaskRunRecord>>
where
    K: Outcome<R>,
    A: Attempts<Output = R>,
{
    let flow = FlowContext::current();
    let call_seq = flow.as_ref().map(|f| f.next_call());
    let called_at = Timestamp::now();
    async move {
        let store = Store::current();
        store.throttle().await;
        let run = LiveTaskRun::new(spec, store, flow, call_seq, called_at);
        let span = tracing::info_span!(
            target: "flowcore",
            "task_run",
            run = %run.record().name(),
            id = %run.record().id,
        );
        drive::<K, R, A>(run, attempts, behaviour, cache, codec)
            .instrument(span)
            .await
    }
}

async fn drive<K, R, A>(
    mut run: LiveTaskRun,
    mut attempts: A,
    behaviour: Behaviour<R, K::Error>,
    cache: Option<Cache<R>>,
    codec: Option<Codec<R>>,
) -> Finished<R, TaskRunRecord>
where
    K: Outcome<R>,
    A: Attempts<Output = R>,
{
    let spec = run.spec;
    tracing::info!(
        target: "flowcore",
        "Beginning task run '{}' for task '{}'",
        run.record().name(),
        spec.name
    );
    if let Some((out, earlier)) = run.resumed_output(codec.as_ref()) {
        // Kept again, so that a later resume of this flow run reuses it once more.
        run.keep_output(codec.as_ref(), &out);
        run.record_mut().cache = CacheStatus::Resumed;
        let message = format!("output reused from task run '{earlier}' of the resumed flow run");
        run.transition(StateKind::Cached, Some(message));
        return run.finish(out).await;
    }
    if let Some(cache) = &cache {
        if !spec.refresh_cache
            && let Some(out) = cache.lookup(run.store).await
        {
            run.keep_output(codec.as_ref(), &out);
            run.record_mut().cache = CacheStatus::Hit;
            run.transition(StateKind::Cached, Some("cache hit".to_owned()));
            return run.finish(out).await;
        }
        run.record_mut().cache = if spec.refresh_cache {
            CacheStatus::Refreshed
        } else {
            CacheStatus::Miss
        };
    }
    match attempt_loop::<K, R, A>(&mut run, &spec.retry, &mut attempts, &behaviour).await {
        Ending::Output(out) => {
            if run.history().current().kind == StateKind::Completed {
                if let Some(cache) = &cache {
                    cache.store(run.store, &out).await;
                }
                run.keep_output(codec.as_ref(), &out);
            }
            run.finish(out).await
        }
        Ending::Panicked(panic) => {
            run.abandon();
            resume_unwind(panic)
        }
    }
}

/// A task run in progress. Dropped before it finishes, it records `Cancelled`.
struct LiveTaskRun {
    spec: &'static TaskSpec,
    store: &'static Store,
    flow: Option<Arc<FlowContext>>,
    call_seq: Option<u32>,
    /// Taken when the run finishes.
    record: Option<TaskRunRecord>,
}

impl LiveTaskRun {
    fn new(
        spec: &'static TaskSpec,
        store: &'static Store,
        flow: Option<Arc<FlowContext>>,
        call_seq: Option<u32>,
        called_at: Timestamp,
    ) -> Self {
        let record = TaskRunRecord {
            id: new_run_id_at(called_at),
            task: Cow::Borrowed(spec.name),
            flow_run_id: flow.as_ref().map(|f| f.id),
            tags: Cow::Borrowed(spec.tags),
            history: History::starting_at(called_at),
            attempts: 0,
            cache: CacheStatus::Off,
        };
        store.send(Event::TaskRunCreated {
            id: record.id,
            flow_run_id: record.flow_run_id,
            task: record.task.clone(),
            tags: record.tags.clone(),
            call_seq,
            state: record.history.current().clone(),
        });
        LiveTaskRun {
            spec,
            store,
            flow,
            call_seq,
            record: Some(record),
        }
    }

    fn record(&self) -> &TaskRunRecord {
        self.record
            .as_ref()
            .expect("a finished run records nothing more")
    }

    fn record_mut(&mut self) -> &mut TaskRunRecord {
        self.record
            .as_mut()
            .expect("a finished run records nothing more")
    }

    /// Where this task run was called, inside a flow.
    fn position(&self) -> Option<CallPosition> {
        Some(CallPosition {
            flow_run_id: self.flow.as_ref()?.id,
            call_seq: self.call_seq?,
        })
    }

    /// Inside a flow, records the output for a resumed run of that flow to reuse.
    fn keep_output<R>(&self, codec: Option<&Codec<R>>, out: &R) {
        if let (Some(codec), Some(_)) = (codec, &self.flow)
            && let Some(json) = codec.encode(out)
        {
            self.store.send(Event::Output {
                kind: RunKind::Task,
                id: self.record().id,
                position: self.position(),
                json,
            });
        }
    }

    /// In a resumed flow run, the output this task's call produced before, at the same
    /// position, with the earlier run's name: if it completed (or was itself reused or a cache
    /// hit) and its output still decodes.
    fn resumed_output<R>(&self, codec: Option<&Codec<R>>) -> Option<(R, String)> {
        let earlier = self.flow.as_ref()?.prior(self.call_seq?)?;
        if earlier.kind != RunKind::Task
            || earlier.name != self.spec.name
            || !matches!(earlier.state, StateKind::Completed | StateKind::Cached)
        {
            return None;
        }
        let out = codec?.decode(earlier.output.as_deref()?)?;
        let name = TaskRunName {
            task: &earlier.name,
            id: earlier.id,
        };
        Some((out, name.to_string()))
    }

    /// The run ended normally: the call hands the record on. A task run outside any flow
    /// returns once its final state is committed.
    async fn finish<R>(&mut self, output: R) -> Finished<R, TaskRunRecord> {
        if self.flow.is_none()
            && let Err(e) = self.store.flush().await
        {
            tracing::error!(target: "flowcore", "The task run's final state was not recorded: {e}");
        }
        Finished {
            output,
            record: self.record.take().expect("a run finishes once"),
            parent: self.flow.take(),
        }
    }

    /// The run ended by a panic or by being dropped: no call will hand the record on.
    fn abandon(&mut self) {
        let record = self.record.take().expect("a run finishes once");
        if let Some(flow) = &self.flow {
            flow.add_task_run(record);
        }
    }
}

impl LiveRun for LiveTaskRun {
    fn history(&self) -> &History {
        &self.record().history
    }

    fn push(&mut self, state: State) {
        self.record_mut().history.push(state);
    }

    fn set_attempts(&mut self, attempts: u32) {
        self.record_mut().attempts = attempts;
    }

    fn hooks(&self) -> &'static Hooks {
        &self.spec.hooks
    }

    fn store(&self) -> &'static Store {
        self.store
    }

    fn transition_event(&self, state: &State) -> Event {
        let record = self.record();
        Event::Transition {
            kind: RunKind::Task,
            id: record.id,
            position: self.position(),
            seq: record.history.len() as u32,
            state: state.clone(),
            attempts: record.attempts,
            cache: record.cache,
        }
    }

    fn info(&self) -> RunInfo<'_> {
        let record = self.record();
        RunInfo {
            kind: RunKind::Task,
            id: record.id,
            label: &record.task,
            flow_run_name: None,
            flow_run_id: record.flow_run_id,
            attempt: record.attempts,
            history: &record.history,
            tags: &record.tags,
        }
    }
}

impl Drop for LiveTaskRun {
    fn drop(&mut self) {
        if self.record.is_some() {
            // Dropped while waiting for its final state to be committed, it has one already.
            if !self.history().current().is_final() {
                self.transition(
                    StateKind::Cancelled,
                    Some("the task run was dropped before it finished".to_owned()),
                );
            }
            self.abandon();
        }
    }
}
