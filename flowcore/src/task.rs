//! Task calls and task runs.

use std::borrow::Cow;
use std::future::Future;
use std::panic::resume_unwind;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::span::RunSpan;
use pin_project_lite::pin_project;
use tokio::sync::futures::OwnedNotified;
use uuid::Uuid;

use crate::attempt::{Attempts, Behaviour, Ending, LiveRun, attempt_loop};
use crate::cache::Cache;
use crate::call::{Finished, RunFuture, WithRun, poll_output};
use crate::clock::Timestamp;
use crate::codec::Codec;
use crate::context::FlowContext;
use crate::hooks::{Hooks, RunInfo, RunKind};
use crate::limits;
use crate::names::{TaskRunName, new_run_id, new_run_id_at};
use crate::outcome::Outcome;
use crate::record::{CacheStatus, EdgeKind, History, TaskRunRecord, Upstream, Upstreams};
use crate::retry::RetryPolicy;
use crate::run_hooks::ActiveHooks;
use crate::span::RunCallsite;
use crate::state::{State, StateKind};
use crate::store::{CallPosition, ClaimedTask, Event, RunStore, ShortText};
use crate::submit::TaskHandle;
use crate::upstream::{RunSlot, Skippable, UpstreamFailed, WaitFor, Waiting};

/// A task's settings from `#[task(...)]`, fixed at compile time.
#[doc(hidden)]
#[derive(Debug)]
pub struct TaskSpec {
    pub name: &'static str,
    pub retry: RetryPolicy,
    pub refresh_cache: bool,
    pub tags: &'static [Cow<'static, str>],
    pub hooks: Hooks,
    /// Its runs' tracing span, named for the task.
    pub span: RunCallsite,
    /// Whether its `on_crashed` hooks are known to this process.
    pub registration: crate::crash_hooks::Registration,
}

/// The future of a task run, as `#[task]` builds it; its `Output` is the task function's
/// declared return type.
pub trait TaskBody: RunFuture<Record = TaskRunRecord> + crate::sealed::TaskBody {
    /// How the call was set up after it was made, before it runs.
    #[doc(hidden)]
    fn options(&mut self) -> &mut CallOptions<Self::Output>;

    #[doc(hidden)]
    fn task_name(&self) -> &'static str;

    #[doc(hidden)]
    fn tags(&self) -> &'static [Cow<'static, str>];
}

/// What a task call is told between the call and its first poll: `.wait_for(…)`,
/// `.submit()`, and its position in a `map`.
#[doc(hidden)]
pub struct CallOptions<R> {
    /// Data edges, found when the task was called.
    upstream: Upstreams,
    waits: Vec<Waiting>,
    /// The output of a skipped run; set with the first wait.
    skip: Option<fn(UpstreamFailed) -> R>,
    /// For a submitted run: its id, and how it tells its handle (and waiters) it has ended.
    slot: Option<Arc<RunSlot>>,
    map_index: Option<u32>,
    /// For a delayed task run claimed by this process: the run it goes on. Boxed: rare, and
    /// every call carries the room for it until its run starts (a submitted one while it
    /// waits for its turn).
    claimed: Option<Box<ClaimedTask>>,
    /// The run's name, from `task_run_name`.
    pub(crate) name: Option<String>,
}

pin_project! {
    /// A task call that has not started yet, then the run. The run's future is made at the
    /// first poll, with the options set on the call by then.
    #[doc(hidden)]
    pub struct TaskStart<S, F, R> {
        spec: &'static TaskSpec,
        phase: Phase<S, F, R>,
        // Its flow run's store, or (outside any flow) the one in scope at the first poll.
        store: Option<RunStore>,
        // While the store's writer is far behind, the call waits before creating its run.
        room: Option<Pin<Box<OwnedNotified>>>,
        // The run's id once it started: the task run whose body runs while it is polled.
        id: Option<Uuid>,
    }
}

/// A task call before its first poll, then its run: one or the other, in the same room.
enum Phase<S, F, R> {
    /// How to start the run, and the options set on the call so far.
    Called(S, CallOptions<R>),
    /// The run, on the heap: a call is moved (returned, awaited, submitted) while it is small,
    /// and a submitted call waiting for its turn takes the room of its arguments, not of its
    /// run.
    Running(InSpan<F>),
    /// For the moment the run is being started.
    Starting,
}

impl<S, F, R> Future for TaskStart<S, F, R>
where
    S: FnOnce(RunStore, CallOptions<R>) -> (Uuid, InSpan<F>),
    F: Future<Output = Finished<R, TaskRunRecord>>,
{
    type Output = Finished<R, TaskRunRecord>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Phase::Called(..) = this.phase {
            let store = this.store.get_or_insert_with(RunStore::current);
            std::task::ready!(store.poll_room(cx, this.room));
            if let (Phase::Called(start, options), Some(store)) = (
                std::mem::replace(this.phase, Phase::Starting),
                this.store.take(),
            ) {
                let (id, running) = start(store, options);
                *this.id = Some(id);
                *this.phase = Phase::Running(running);
            }
        }
        let _current = crate::artifact::CurrentTaskRun::enter(*this.id);
        match this.phase {
            Phase::Running(running) => running.poll(cx),
            _ => panic!("a task call is not polled after it finished"),
        }
    }
}

/// A run's future on the heap with its span, entered while it is polled and dropped: what
/// `tracing::Instrumented` does, kept beside the box rather than in it, so that the box is the
/// run's future alone and small enough for glibc's per-thread cache (see [`drive`]).
#[doc(hidden)]
pub struct InSpan<F> {
    span: RunSpan,
    future: Option<Pin<Box<F>>>,
}

impl<F: Future> InSpan<F> {
    fn new(span: RunSpan, future: F) -> Self {
        InSpan {
            span,
            future: Some(Box::pin(future)),
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<F::Output> {
        let InSpan { span, future } = self;
        let _entered = span.enter();
        future
            .as_mut()
            .expect("polled before it is dropped")
            .as_mut()
            .poll(cx)
    }
}

impl<F> Drop for InSpan<F> {
    /// A run dropped before it ends records `Cancelled`: inside its span, so the line is its.
    fn drop(&mut self) {
        let InSpan { span, future } = self;
        let _entered = span.enter();
        *future = None;
    }
}

impl<S, F, R> crate::sealed::TaskBody for TaskStart<S, F, R> {}

impl<S, F, R> TaskBody for TaskStart<S, F, R>
where
    S: FnOnce(RunStore, CallOptions<R>) -> (Uuid, InSpan<F>),
    F: Future<Output = Finished<R, TaskRunRecord>>,
{
    fn options(&mut self) -> &mut CallOptions<R> {
        match &mut self.phase {
            Phase::Called(_, options) => options,
            _ => panic!("options are set before the call is polled"),
        }
    }

    fn task_name(&self) -> &'static str {
        self.spec.name
    }

    fn tags(&self) -> &'static [Cow<'static, str>] {
        self.spec.tags
    }
}

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
    /// #[task]
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
        WithRun::task(self.body)
    }

    /// Makes this task run wait until `upstream` has ended, although no value passes between
    /// them, like Prefect's `wait_for=[…]`. If the upstream did not complete (Failed,
    /// TimedOut, Cancelled, Crashed or Skipped), this run does not run: it is recorded as
    /// `Skipped` with the message "upstream failed: NAME", and returns
    /// `Err(UpstreamFailed.into())`, unless the upstream is wrapped in
    /// [`allow_failure`](crate::allow_failure). Call it again to wait for several.
    ///
    /// The task must return a `Result` whose error converts from [`UpstreamFailed`]
    /// (`anyhow::Error`, `String`, boxed errors do): a skipped run has no output otherwise.
    ///
    /// ```
    /// use flowcore::{flow, task, StateKind};
    ///
    /// #[task]
    /// async fn create_table() -> Result<(), String> {
    ///     Err("disk full".into())
    /// }
    ///
    /// #[task]
    /// async fn load(rows: Vec<String>) -> Result<usize, String> {
    ///     Ok(rows.len())
    /// }
    ///
    /// #[flow]
    /// async fn etl() -> Result<usize, String> {
    ///     let table = create_table().submit();
    ///     load(vec!["a".into()]).wait_for(&table).await
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # flowcore::Store::memory().install().unwrap();
    /// let (out, run) = etl().with_run().await;
    /// let load = run.task_runs_of("load").next().unwrap();
    /// assert_eq!(load.state().kind, StateKind::Skipped);
    /// assert!(out.unwrap_err().starts_with("upstream failed: create_table-"));
    /// # }
    /// ```
    pub fn wait_for<U: WaitFor>(mut self, upstream: U) -> Self
    where
        B::Output: Skippable,
    {
        let options = self.body.options();
        options.waits.push(upstream.upstream());
        options.skip = Some(<B::Output as Skippable>::skipped);
        self
    }

    /// Starts the task run now, on the tokio runtime, and returns a handle to await its
    /// output later (Prefect's `task.submit()`). The run belongs to the flow run it was
    /// called in, which waits for it before finishing even if the handle is dropped.
    ///
    /// ```
    /// use flowcore::{flow, task};
    ///
    /// #[task]
    /// async fn square(x: u64) -> u64 {
    ///     x * x
    /// }
    ///
    /// #[flow]
    /// async fn squares() -> u64 {
    ///     let a = square(3).submit();
    ///     let b = square(4).submit();
    ///     a.await + b.await
    /// }
    ///
    /// # #[tokio::main]
    /// # async fn main() {
    /// # flowcore::Store::memory().install().unwrap();
    /// assert_eq!(squares().await, 25);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as `tokio::spawn` does.
    pub fn submit(mut self) -> TaskHandle<B::Output>
    where
        B: Send + 'static,
        B::Output: Send + 'static,
    {
        let given = self.body.options().name.clone();
        let slot = Arc::new(RunSlot::new(new_run_id(), self.body.task_name(), given));
        self.body.options().slot = Some(Arc::clone(&slot));
        TaskHandle::spawn(self, slot)
    }

    /// The call's body, not started.
    pub(crate) fn into_body(self) -> B {
        self.body
    }

    /// Makes the call run the delayed task run `claimed`, which this process claimed as a
    /// worker: its id, and its states so far, which the run's follow.
    pub(crate) fn claimed(mut self, claimed: ClaimedTask) -> Self {
        self.body.options().claimed = Some(Box::new(claimed));
        self
    }

    /// Marks the call as element `index` of a `map`.
    pub(crate) fn map_index(mut self, index: u32) -> Self {
        self.body.options().map_index = Some(index);
        self
    }
}

impl<B: TaskBody> Future for TaskCall<B> {
    type Output = B::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<B::Output> {
        poll_output(self.project().body, cx)
    }
}

/// Starts a task call: what a `#[task]` function's body calls, with the data edges found from
/// its arguments ([`upstream_of`](crate::__private::upstream_of)). The flow run it belongs to
/// and the Pending time are read now, at the call; the run begins at the first poll.
#[doc(hidden)]
pub fn run_task<K, R, A>(
    spec: &'static TaskSpec,
    attempts: A,
    behaviour: Behaviour<R, K::Error>,
    cache: Option<Cache<R>>,
    codec: Option<Codec<R>>,
    upstream: Upstreams,
    name: Option<String>,
) -> impl TaskBody<Output = R>
where
    K: Outcome<R>,
    A: Attempts<Output = R>,
{
    let flow = FlowContext::current();
    let call_seq = flow.as_ref().map(|f| f.next_call());
    let called_at = Timestamp::now();
    spec.registration
        .register(RunKind::Task, spec.name, spec.hooks.on_crashed);
    let options = CallOptions {
        upstream,
        waits: Vec::new(),
        skip: None,
        slot: None,
        map_index: None,
        claimed: None,
        name,
    };
    // A plain closure around `drive`, not an async block: each async layer would keep its own
    // copy of everything it captures, and the call is moved whole before it is awaited.
    let store = flow.as_ref().map(|flow| flow.store.clone());
    // Boxed: only tasks with `cache_for` have one, and every call carries the room for it
    // until its run starts (a submitted one while it waits for its turn).
    let cache = cache.map(Box::new);
    let start = move |store: RunStore, options: CallOptions<R>| {
        if let RunStore::Process(process) = store {
            crate::interrupt::arm(process);
        }
        crate::logging::check_recorder();
        let (run, waits, skip) = LiveTaskRun::new(spec, store, flow, call_seq, called_at, options);
        let span = spec.span.span(
            spec.name,
            RunKind::Task,
            run.record().name(),
            run.record().id,
        );
        let id = run.record().id;
        let running = InSpan::new(
            span,
            drive::<K, R, A>(run, attempts, behaviour, cache, codec, waits, skip),
        );
        (id, running)
    };
    TaskStart {
        spec,
        phase: Phase::Called(start, options),
        store,
        room: None,
        id: None,
    }
}

/// The run, from its beginning to its final state. Not an `async fn`: an async fn's future
/// keeps its arguments and, once started, its own copy of them (the run alone is 320 bytes),
/// where an `async move` block uses what it captured in place. So a run's future stays under
/// the size glibc serves from its per-thread cache, and the rare steps' futures (limits, a
/// task run's own flush outside a flow) are boxed where they are awaited.
#[allow(clippy::manual_async_fn)] // on purpose: see above
fn drive<K, R, A>(
    mut run: LiveTaskRun,
    mut attempts: A,
    behaviour: Behaviour<R, K::Error>,
    cache: Option<Box<Cache<R>>>,
    codec: Option<Codec<R>>,
    waits: Vec<Waiting>,
    skip: Option<fn(UpstreamFailed) -> R>,
) -> impl Future<Output = Finished<R, TaskRunRecord>>
where
    K: Outcome<R>,
    A: Attempts<Output = R>,
{
    async move {
        let spec = run.spec;
        // At DEBUG, as Prefect 3 logs it: a task run's one INFO line is its final state, so that
        // logging on costs a line per task run, not two.
        tracing::debug!(
            target: "flowcore",
            "Beginning task run '{}' for task '{}'",
            run.record().name(),
            spec.name
        );
        if let Some(skip) = skip {
            for wait in &waits {
                if let Err(reason) = wait.wait().await {
                    run.transition(StateKind::Skipped, Some(reason.to_string().into()));
                    return run.finish(skip(reason)).await;
                }
            }
        }
        if let Some((out, earlier)) = run.resumed_output(codec.as_ref()) {
            // Kept again, so that a later resume of this flow run reuses it once more.
            run.keep_output(codec.as_ref(), &out);
            run.record_mut().cache = CacheStatus::Resumed;
            let message =
                format!("output reused from task run '{earlier}' of the resumed flow run");
            run.transition(StateKind::Cached, Some(message.into()));
            run.track_output(codec.as_ref(), &out);
            return run.finish(out).await;
        }
        if let Some(cache) = &cache {
            if !spec.refresh_cache
                && let Some(out) = cache.lookup(&run.store).await
            {
                run.keep_output(codec.as_ref(), &out);
                run.record_mut().cache = CacheStatus::Hit;
                run.transition(StateKind::Cached, Some("cache hit".into()));
                run.track_output(codec.as_ref(), &out);
                return run.finish(out).await;
            }
            run.record_mut().cache = if spec.refresh_cache {
                CacheStatus::Refreshed
            } else {
                CacheStatus::Miss
            };
        }
        // Held until the run ends, retries and their delays included; a slot of the store's is
        // given back after the final state (the permits' drop sends that), so never before it.
        let permits = if run.record().tags.is_empty() {
            None
        } else {
            Box::pin(limits::acquire(
                &run.record().tags,
                &run.store,
                run.record().id,
            ))
            .await
        };
        // The output is kept with the Completed state: whoever waits for a delayed run reads both.
        let keep = |run: &mut LiveTaskRun, out: &R| run.keep_output(codec.as_ref(), out);
        let ending =
            attempt_loop::<K, R, A, _>(&mut run, &spec.retry, &mut attempts, &behaviour, keep)
                .await;
        match ending {
            Ending::Output(out) => {
                if run.history().current().kind == StateKind::Completed {
                    if let Some(cache) = &cache {
                        // Boxed, as the rare steps are (see `drive`).
                        Box::pin(cache.store(&run.store, &out)).await;
                    }
                    run.track_output(codec.as_ref(), &out);
                }
                let out = run.finish(out).await;
                drop(permits);
                out
            }
            Ending::Panicked(panic) => {
                run.abandon();
                resume_unwind(panic)
            }
        }
    }
}

/// A task run in progress. Dropped before it finishes, it records `Cancelled`.
struct LiveTaskRun {
    spec: &'static TaskSpec,
    store: RunStore,
    flow: Option<Arc<FlowContext>>,
    call_seq: Option<u32>,
    /// For a submitted run: where its end is announced.
    slot: Option<Arc<RunSlot>>,
    /// A delayed run, run by a worker: its output is kept for whoever waits for it.
    delayed: bool,
    /// Taken when the run finishes.
    record: Option<TaskRunRecord>,
    /// Its output's JSON, kept for the store until the final state it is sent with.
    output: Option<ShortText>,
    /// Its flow run's run-time hooks, or (outside any flow) those in scope.
    hooks: ActiveHooks,
}

impl LiveTaskRun {
    /// The run, with what it waits for and what it returns if skipped.
    #[allow(clippy::type_complexity)]
    fn new<R>(
        spec: &'static TaskSpec,
        store: RunStore,
        flow: Option<Arc<FlowContext>>,
        call_seq: Option<u32>,
        called_at: Timestamp,
        options: CallOptions<R>,
    ) -> (Self, Vec<Waiting>, Option<fn(UpstreamFailed) -> R>) {
        let CallOptions {
            mut upstream,
            waits,
            skip,
            slot,
            map_index,
            claimed,
            name,
        } = options;
        for wait in &waits {
            if let Some(edge) = upstream.iter_mut().find(|u| u.id == wait.id) {
                // Waited for and given its output: the wait is what can skip the run.
                edge.kind = EdgeKind::WaitFor;
                edge.allow_failure |= wait.allow_failure;
            } else {
                upstream.push(Upstream {
                    id: wait.id,
                    kind: EdgeKind::WaitFor,
                    allow_failure: wait.allow_failure,
                });
            }
        }
        let id = match (&claimed, &slot) {
            (Some(claimed), _) => claimed.id,
            (None, Some(slot)) => slot.id,
            (None, None) => new_run_id_at(called_at),
        };
        let tags = match &flow {
            Some(flow) if !flow.tags.is_empty() => {
                Cow::Owned(with_flow_tags(spec.tags, &flow.tags))
            }
            _ => Cow::Borrowed(spec.tags),
        };
        let mut record = TaskRunRecord {
            id,
            task: Cow::Borrowed(spec.name),
            given_name: name,
            flow_run_id: flow.as_ref().map(|f| f.id),
            tags,
            history: History::starting_at(called_at),
            attempts: 0,
            cache: CacheStatus::Off,
            upstream,
            map_index,
        };
        let delayed = claimed.is_some();
        match claimed {
            // The run's row is there, `Scheduled` since it was delayed: it goes on from its
            // states.
            Some(claimed) => {
                let claimed = *claimed;
                let pending = record.history.current().clone();
                record.flow_run_id = claimed.flow_run_id;
                record.history = History::from_states(claimed.history);
                record.history.push(pending.clone());
                store.send(Event::Transition {
                    kind: RunKind::Task,
                    id,
                    position: None,
                    seq: record.history.len() as u32 - 1,
                    state: pending,
                    attempts: 0,
                    cache: CacheStatus::Off,
                    output: None,
                });
            }
            None => store.send(Event::TaskRunCreated {
                id: record.id,
                flow_run_id: record.flow_run_id,
                task: record.task.clone(),
                name: record.given_name.clone(),
                tags: record.tags.clone(),
                call_seq,
                state: record.history.current().clone(),
                upstream: record.upstream.clone(),
                map_index: record.map_index,
            }),
        }
        let hooks = match &flow {
            Some(flow) => flow.hooks.clone(),
            None => ActiveHooks::current(),
        };
        let run = LiveTaskRun {
            hooks,
            spec,
            store,
            flow,
            call_seq,
            slot,
            delayed,
            record: Some(record),
            output: None,
        };
        (run, waits, skip)
    }

    /// Inside a flow, notes this run as the producer of its output's value, so that task
    /// calls given that value depend on it.
    fn track_output<R>(&self, codec: Option<&Codec<R>>, out: &R) {
        if let (Some(flow), Some(codec)) = (&self.flow, codec) {
            flow.produced(self.record().id, |each| codec.fingerprints(out, each));
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

    /// Inside a flow, records the output for a resumed run of that flow to reuse; for a
    /// delayed run, for whoever waits for it.
    /// Keeps `out` for the store, which gets it with the final state that follows.
    fn keep_output<R>(&mut self, codec: Option<&Codec<R>>, out: &R) {
        if let Some(codec) = codec
            && (self.flow.is_some() || self.delayed)
        {
            self.output = codec.encode_as(out, ShortText::copy_of);
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
        let name = TaskRunName::new(&earlier.name, earlier.id, None);
        Some((out, name.to_string()))
    }

    /// The run ended normally: the call hands the record on. A task run outside any flow
    /// returns once its final state is committed.
    async fn finish<R>(&mut self, output: R) -> Finished<R, TaskRunRecord> {
        if self.flow.is_none() {
            // Boxed: a task run in a flow never waits here, and its future need not have room.
            if let Err(e) = Box::pin(self.store.flush()).await {
                tracing::error!(target: "flowcore", "The task run's final state was not recorded: {e}");
            }
            // A task run called on its own: its lines before what the program prints next.
            Box::pin(crate::logging::writer::flushed()).await;
        }
        let record = self.record.take().expect("a run finishes once");
        if let Some(slot) = &self.slot {
            slot.end(record.state().kind);
        }
        Finished {
            output,
            record: Some(record),
            parent: self.flow.take(),
        }
    }

    /// The run ended by a panic or by being dropped: no call will hand the record on.
    fn abandon(&mut self) {
        let record = self.record.take().expect("a run finishes once");
        if let Some(slot) = &self.slot {
            slot.end(record.state().kind);
        }
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

    fn reserve_states(&mut self, additional: usize) {
        self.record_mut().history.reserve(additional);
    }

    fn hooks(&self) -> &'static Hooks {
        &self.spec.hooks
    }

    fn active_hooks(&self) -> &ActiveHooks {
        &self.hooks
    }

    fn send_transition(&mut self, state: &State) {
        let output = self.output.take();
        let record = self.record();
        self.store.send(Event::Transition {
            kind: RunKind::Task,
            id: record.id,
            position: self.position(),
            seq: record.history.len() as u32,
            state: state.clone(),
            attempts: record.attempts,
            cache: record.cache,
            output,
        });
    }

    fn info(&self) -> RunInfo<'_> {
        let record = self.record();
        RunInfo {
            kind: RunKind::Task,
            id: record.id,
            label: &record.task,
            run_name: record.given_name.as_deref(),
            flow_run_id: record.flow_run_id,
            attempt: record.attempts,
            history: &record.history,
            tags: &record.tags,
        }
    }
}

/// A task's tags followed by those of its flow run that it lacks, as Prefect's `tags()`
/// context adds a flow's tags to its task runs.
pub(crate) fn with_flow_tags(
    task: &'static [Cow<'static, str>],
    flow: &[Cow<'static, str>],
) -> Vec<Cow<'static, str>> {
    let mut tags = task.to_vec();
    for tag in flow {
        if !tags.contains(tag) {
            tags.push(tag.clone());
        }
    }
    tags
}

impl Drop for LiveTaskRun {
    fn drop(&mut self) {
        if self.record.is_some() {
            // Dropped while waiting for its final state to be committed, it has one already.
            if !self.history().current().is_final() {
                self.transition(
                    StateKind::Cancelled,
                    Some("the task run was dropped before it finished".into()),
                );
            }
            self.abandon();
        }
    }
}
