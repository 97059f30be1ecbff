//! Flow calls and flow runs.

use std::borrow::Cow;
use std::future::Future;
use std::panic::resume_unwind;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;

use crate::attempt::{Attempts, Behaviour, Ending, LiveRun, attempt_loop};
use crate::call::{Finished, RunFuture, WithRun, poll_output};
use crate::clock::Timestamp;
use crate::codec::Codec;
use crate::context::{FlowContext, Gathering};
use crate::hooks::{Hooks, RunInfo, RunKind};
use crate::launch;
use crate::names::{flow_run_name, new_run_id_at};
use crate::outcome::Outcome;
use crate::record::{CacheStatus, FlowRunRecord, History};
use crate::resume;
use crate::retry::RetryPolicy;
use crate::run_hooks::ActiveHooks;
use crate::span::RunCallsite;
use crate::state::{State, StateKind};
use crate::store::{Event, ResumePoint, RunStore, Store};
use crate::summary::Summary;

/// A flow's settings from `#[flow(...)]`, fixed at compile time.
#[doc(hidden)]
#[derive(Debug)]
pub struct FlowSpec {
    pub name: &'static str,
    pub retry: RetryPolicy,
    pub tags: &'static [Cow<'static, str>],
    pub hooks: Hooks,
    /// Its runs' tracing span, named for the flow.
    pub span: RunCallsite,
    /// Whether its `on_crashed` hooks are known to this process.
    pub registration: crate::crash_hooks::Registration,
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
    ///
    /// Only a flow run whose record someone reads gathers its task runs' records in memory:
    /// one called `with_run`, or a subflow of such a run. A flow awaited plainly keeps what
    /// its summary shows (counts by state, the first 100 rows) while flowcore logs at `INFO`,
    /// and nothing otherwise, so that a million task runs do not hold 250 MB nobody reads; the
    /// run store keeps every one of them either way.
    pub fn with_run(self) -> WithRun<B> {
        WithRun::flow(self.body)
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
    codec: Option<Codec<R>>,
    parameters: Option<String>,
    name: Option<String>,
) -> impl Future<Output = Finished<R, FlowRunRecord>>
where
    K: Outcome<R>,
    A: Attempts<Output = R>,
{
    let parent = FlowContext::current();
    let call_seq = parent.as_ref().map(|p| p.next_call());
    let resuming = resume::requested(spec.name);
    let launch = parent
        .is_none()
        .then(|| launch::requested(spec.name))
        .flatten();
    let called_at = Timestamp::now();
    spec.registration
        .register(RunKind::Flow, spec.name, spec.hooks.on_crashed);
    async move {
        // Before anything is awaited: the caller's `with_run` is told at the first poll alone.
        // A subflow gathers at least what its parent does, which includes it.
        let gathering = if crate::call::record_wanted() {
            Gathering::Records
        } else if tracing::enabled!(target: "flowcore", tracing::Level::INFO) {
            Gathering::Summary
        } else {
            Gathering::Nothing
        }
        .max(parent.as_ref().map_or(Gathering::Nothing, |p| p.gathering));
        // A subflow records where its parent does; a flow run called on its own, to the store in
        // scope where it is first polled (`store.scope(etl())` calls `etl` before the scope).
        let store = match &parent {
            Some(parent) => parent.store.clone(),
            None => RunStore::current(),
        };
        if let RunStore::Process(process) = store {
            crate::interrupt::arm(process);
        }
        if parent.is_none() {
            crate::logging::check_recorder();
        }
        store.throttle().await;
        let earlier = match resuming {
            Some(point) => Earlier::Resume(point),
            None => Earlier::find(&store, parent.as_deref(), call_seq, spec.name).await,
        };
        let resumed = matches!(earlier, Earlier::Resume(_));
        let tags = flow_run_tags(spec.tags, parent.as_deref());
        let hooks = match &parent {
            Some(parent) => parent.hooks.clone(),
            None => ActiveHooks::current(),
        };
        let mut cancelled_because = None;
        let mut cancel_slot = None;
        let mut deployment = None;
        // States the store lacks, sent after the first: a deployment's run comes with them.
        let mut unsent = Vec::new();
        let (context, history, attempts_before, reused) = match earlier {
            Earlier::None if launch.is_some() => {
                let launch = launch.expect("matched");
                cancelled_because = Some(launch.cancelled_because);
                cancel_slot = Some(launch.cancel);
                deployment = Some(launch.deployment);
                let stored = launch.stored;
                let mut history = History::from_states(launch.states);
                // Taken up again while paused: it goes on as a resumed run does.
                let note = (history.current().kind == StateKind::Paused)
                    .then(|| "resumed after Paused, in this process".to_owned());
                history.push(State::new(StateKind::Pending, called_at, note));
                unsent = (stored + 1..history.len()).collect();
                let mut context = FlowContext::new(
                    launch.id,
                    name.unwrap_or(launch.name),
                    tags,
                    hooks,
                    launch.prior,
                    store.clone(),
                );
                context.served = cancel_slot.clone();
                (context, history, 0, None)
            }
            Earlier::None => (
                FlowContext::new(
                    // From its Pending time, as a task run's: one reading of the clock fewer.
                    new_run_id_at(called_at),
                    name.unwrap_or_else(flow_run_name),
                    tags,
                    hooks,
                    Default::default(),
                    store.clone(),
                ),
                History::starting_at(called_at),
                0,
                None,
            ),
            Earlier::Completed {
                name: earlier,
                output,
            } => (
                FlowContext::new(
                    new_run_id_at(called_at),
                    name.unwrap_or_else(flow_run_name),
                    tags,
                    hooks,
                    Default::default(),
                    store.clone(),
                ),
                History::starting_at(called_at),
                0,
                Some((earlier, output)),
            ),
            Earlier::Resume(point) => {
                let mut history = History::from_states(point.history);
                let note = format!("resumed after {}", history.current().kind);
                history.push(State::new(StateKind::Pending, Timestamp::now(), Some(note)));
                (
                    // A resumed run keeps the name it was recorded under.
                    FlowContext::new(
                        point.id,
                        point.name,
                        tags,
                        hooks,
                        point.prior,
                        store.clone(),
                    ),
                    history,
                    point.attempts,
                    None,
                )
            }
        };
        let mut context = context;
        context.gathering = gathering;
        let context = Arc::new(context);
        let first = unsent.first().map_or(history.len(), |&seq| seq) - 1;
        store.send(Event::FlowRunCreated {
            id: context.id,
            name: context.name.clone(),
            tags: context.tags.clone(),
            flow: Cow::Borrowed(spec.name),
            parent_id: parent.as_ref().map(|p| p.id),
            parameters,
            call_seq,
            seq: first as u32,
            state: history[first].clone(),
            resumed: resumed || first > 0,
            deployment,
        });
        for seq in unsent {
            store.send(Event::Transition {
                kind: RunKind::Flow,
                id: context.id,
                position: None,
                seq: seq as u32,
                state: history[seq].clone(),
                attempts: 0,
                cache: CacheStatus::Off,
                output: None,
            });
        }
        // Committed before the body runs, so that a process killed during its first batch of
        // task runs still leaves the flow run for the next opener to mark Crashed (one small
        // commit per flow run: see benches/store.rs).
        if let Err(e) = store.flush_off_runtime().await {
            tracing::error!(target: "flowcore", "The flow run's start was not recorded: {e}");
        }
        let span = spec
            .span
            .span(spec.name, RunKind::Flow, &context.name, context.id);
        let run = LiveFlowRun {
            spec,
            store,
            parent,
            history,
            attempts_before,
            attempts: attempts_before,
            finished: false,
            cancelled_because,
            cancel_slot,
            context: Arc::clone(&context),
        };
        let attempts = InFlow {
            context,
            inner: attempts,
        };
        crate::span::InRun::new(
            span,
            drive::<K, R, _>(run, attempts, behaviour, codec, reused),
        )
        .await
    }
}

/// A flow run's tags: its flow's, then those of its parent flow run that it lacks.
fn flow_run_tags(
    flow: &'static [Cow<'static, str>],
    parent: Option<&FlowContext>,
) -> Vec<Cow<'static, str>> {
    let mut tags = flow.to_vec();
    for tag in parent.map_or(&[][..], |p| &p.tags) {
        if !tags.contains(tag) {
            tags.push(tag.clone());
        }
    }
    tags
}

/// What an earlier attempt of a resumed flow run did where this flow is called.
enum Earlier {
    None,
    /// The subflow completed: its output is reused.
    Completed {
        name: String,
        output: String,
    },
    /// The flow run did not complete: this call continues it.
    Resume(ResumePoint),
}

impl Earlier {
    async fn find(
        store: &Store,
        parent: Option<&FlowContext>,
        call_seq: Option<u32>,
        flow: &str,
    ) -> Earlier {
        let Some(prior) = parent.zip(call_seq).and_then(|(p, seq)| p.prior(seq)) else {
            return Earlier::None;
        };
        if prior.kind != RunKind::Flow || prior.name != flow {
            return Earlier::None;
        }
        // Completed, or itself reused by an earlier resume: its output is reused again.
        if let (StateKind::Completed | StateKind::Cached, Some(output)) =
            (prior.state, &prior.output)
        {
            let name = store
                .flow_run_name(prior.id)
                .unwrap_or_else(|| prior.id.to_string());
            return Earlier::Completed {
                name,
                output: output.clone(),
            };
        }
        match store.resume_point_async(prior.id).await {
            Ok(point) => Earlier::Resume(point),
            Err(e) => {
                tracing::warn!(target: "flowcore", "Running subflow '{flow}' afresh: {e}");
                Earlier::None
            }
        }
    }
}

async fn drive<K, R, A>(
    mut run: LiveFlowRun,
    mut attempts: A,
    behaviour: Behaviour<R, K::Error>,
    codec: Option<Codec<R>>,
    reused: Option<(String, String)>,
) -> Finished<R, FlowRunRecord>
where
    K: Outcome<R>,
    A: Attempts<Output = R>,
{
    let spec = run.spec;
    // A deployment's run comes Scheduled (and maybe Late): that is no resumption.
    let resumed = run.history[..run.history.len() - 1]
        .iter()
        .any(|s| !matches!(s.kind, StateKind::Scheduled | StateKind::Late));
    if run.attempts_before > 0 || resumed {
        tracing::info!(
            target: "flowcore",
            "Resuming flow run '{}' for flow '{}' ({})",
            run.context.name,
            spec.name,
            run.history.current().message()
        );
    } else {
        tracing::info!(
            target: "flowcore",
            "Beginning flow run '{}' for flow '{}'",
            run.context.name,
            spec.name
        );
    }
    if let Some((earlier, json)) = reused
        && let Some(out) = codec.as_ref().and_then(|c| c.decode(&json))
    {
        // Kept again, so that a later resume of the parent flow run reuses it once more.
        run.store.send(Event::FlowOutput {
            id: run.context.id,
            json,
        });
        let message = format!("output reused from flow run '{earlier}' of the resumed flow run");
        run.transition(StateKind::Cached, Some(message.into()));
        return run.finish(out).await;
    }
    match attempt_loop::<K, R, A, _>(&mut run, &spec.retry, &mut attempts, &behaviour, |_, _| {})
        .await
    {
        Ending::Output(out) => {
            if run.history.current().kind == StateKind::Completed
                && let Some(json) = codec.as_ref().and_then(|c| c.encode(&out))
            {
                run.store.send(Event::FlowOutput {
                    id: run.context.id,
                    json,
                });
            }
            run.finish(out).await
        }
        Ending::Panicked(panic) => {
            run.context.cancel_submitted();
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
    type Future = AndSubmitted<A::Future>;

    fn attempt(&mut self, last: bool) -> Self::Future {
        AndSubmitted {
            context: Arc::clone(&self.context),
            body: self.context.scope(self.inner.attempt(last)),
            output: None,
        }
    }
}

pin_project! {
    /// An attempt of a flow's body, which ends once the task runs it submitted have ended
    /// too, so that they are in the flow run's record and its final state follows theirs.
    struct AndSubmitted<F: Future> {
        context: Arc<FlowContext>,
        #[pin]
        body: TaskLocalFuture<Arc<FlowContext>, F>,
        output: Option<F::Output>,
    }
}

impl<F: Future> Future for AndSubmitted<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        if this.output.is_none() {
            let out = std::task::ready!(this.body.as_mut().poll(cx));
            *this.output = Some(out);
        }
        std::task::ready!(this.context.poll_submitted(cx));
        Poll::Ready(this.output.take().expect("an attempt ends once"))
    }
}

/// A flow run in progress. Dropped before it finishes, it records `Cancelled`.
struct LiveFlowRun {
    spec: &'static FlowSpec,
    store: RunStore,
    parent: Option<Arc<FlowContext>>,
    context: Arc<FlowContext>,
    history: History,
    /// Attempts made before this process resumed the run.
    attempts_before: u32,
    attempts: u32,
    finished: bool,
    /// For a deployment's run: why its server gave it up, if it did.
    cancelled_because: Option<Arc<OnceLock<String>>>,
    /// For a served run: where a cancel from outside is told.
    cancel_slot: Option<Arc<crate::cancel::CancelSlot>>,
}

impl LiveFlowRun {
    /// The run ended normally: gathers its task runs and subflow runs into the record, logs
    /// the summary, and returns once the final state is committed; the call hands the record
    /// on.
    async fn finish<R>(&mut self, output: R) -> Finished<R, FlowRunRecord> {
        // Each attempt waits for the task runs it submitted, unless it timed out: those that
        // are left are cancelled.
        self.context.cancel_submitted();
        // Ended: dropped while waiting for the commit below, it is not Cancelled after its
        // final state.
        self.finished = true;
        // Committed before the summary is logged, so that the summary can say if it was not.
        let not_recorded = match self.store.flush().await {
            Ok(()) => self.store.not_recording(),
            Err(e) => {
                tracing::error!(target: "flowcore", "The flow run's final state was not recorded: {e}");
                Some(e.reason())
            }
        };
        let record = self.record(not_recorded);
        // Its lines, the summary last, before what the program prints after the call.
        crate::logging::writer::flushed().await;
        Finished {
            output,
            record,
            parent: self.parent.take(),
        }
    }

    /// The run ended by a panic or by being dropped: no call will hand the record on.
    fn abandon(&mut self) {
        if let (Some(record), Some(parent)) =
            (self.record(self.store.not_recording()), &self.parent)
        {
            parent.add_subflow_run(record);
        }
    }

    /// The run's record, and its summary logged; `None` for a run whose record nobody reads
    /// (neither its caller nor its parent, nor a summary: [`Gathering::Nothing`]).
    fn record(&mut self, not_recorded: Option<String>) -> Option<FlowRunRecord> {
        self.finished = true;
        let (task_runs, subflow_runs, table) = self.context.take_finished();
        // Nothing gathered: no record, and no summary (logging turned on during the run would
        // find nothing to show: none rather than a wrong one).
        if self.context.gathering == Gathering::Nothing {
            return None;
        }
        let record = FlowRunRecord {
            id: self.context.id,
            name: self.context.name.clone(),
            flow: Cow::Borrowed(self.spec.name),
            tags: self.context.tags.iter().map(|t| t.to_string()).collect(),
            parent_id: self.parent.as_ref().map(|p| p.id),
            history: std::mem::take(&mut self.history),
            attempts: self.attempts,
            task_runs,
            subflow_runs,
            not_recorded,
        };
        let summary = if self.context.gathering == Gathering::Records {
            Summary::new(&record)
        } else {
            Summary::of_table(&record, &table)
        };
        if tracing::enabled!(target: "flowcore", tracing::Level::INFO) {
            tracing::info!(target: "flowcore", "Summary\n{summary}");
        }
        // A parent gathering its summary alone takes this run's line now: the record it is
        // handed after may hold no task runs to count.
        if let Some(parent) = &self.parent
            && parent.gathering == Gathering::Summary
        {
            parent.add_subflow_line(&record, &summary.headline());
        }
        Some(record)
    }
}

impl LiveRun for LiveFlowRun {
    fn history(&self) -> &History {
        &self.history
    }

    fn push(&mut self, state: State) {
        self.context.push_state(&mut self.history, state);
    }

    fn set_attempts(&mut self, attempts: u32) {
        self.attempts = self.attempts_before + attempts;
    }

    fn reserve_states(&mut self, additional: usize) {
        self.history.reserve(additional);
    }

    fn hooks(&self) -> &'static Hooks {
        &self.spec.hooks
    }

    fn active_hooks(&self) -> &ActiveHooks {
        &self.context.hooks
    }

    fn send_transition(&mut self, state: &State) {
        self.store.send(self.transition_event(state));
    }

    fn info(&self) -> RunInfo<'_> {
        RunInfo {
            kind: RunKind::Flow,
            id: self.context.id,
            label: self.spec.name,
            run_name: Some(&self.context.name),
            flow_run_id: self.parent.as_ref().map(|p| p.id),
            attempt: self.attempts,
            history: &self.history,
            tags: &self.context.tags,
        }
    }
}

/// The state of a deployment's run let go by its server while it waited for input.
const LET_GO_PAUSED: &str = "its server stopped while it waited for input: the next process serving its deployment takes it up";

impl LiveFlowRun {
    /// What the store is told when the run enters `state`, before it is pushed.
    fn transition_event(&self, state: &State) -> Event {
        Event::Transition {
            kind: RunKind::Flow,
            id: self.context.id,
            position: None,
            seq: self.history.len() as u32 + self.context.body_states_pending(),
            state: state.clone(),
            attempts: self.attempts,
            cache: CacheStatus::Off,
            output: None,
        }
    }

    /// Whether this run, dropped now, is a deployment's run waiting for input that its server
    /// let go, for another process to take up.
    fn waits_for_input_elsewhere(&self) -> bool {
        self.cancel_slot.as_ref().is_some_and(|slot| slot.let_go())
            && self.store.shared_with_other_processes()
    }
}

impl Drop for LiveFlowRun {
    fn drop(&mut self) {
        if !self.finished {
            // Its submitted task runs end Cancelled first, and so are in its record.
            self.context.cancel_submitted();
            let requested = self.cancel_slot.as_ref().and_then(|s| s.get()).cloned();
            if requested.is_none() && self.waits_for_input_elsewhere() {
                let state = State::new(
                    StateKind::Paused,
                    Timestamp::now(),
                    Some(LET_GO_PAUSED.to_owned()),
                );
                let event = self.transition_event(&state);
                self.store.send(event);
                self.push(state);
                self.store.send(Event::ReleasePaused {
                    flow_run_id: self.context.id,
                });
                self.abandon();
                return;
            }
            let because = match requested {
                // Cancelled from outside: the `Cancelling` state the store has, then who asked.
                Some(request) => {
                    let event = self.transition_event(&request.state);
                    self.store.send(event);
                    self.push(request.state);
                    crate::cancel::cancelled_message(&request.by)
                }
                None => self
                    .cancelled_because
                    .as_ref()
                    .and_then(|b| b.get().cloned())
                    .unwrap_or_else(|| "the flow run was dropped before it finished".to_owned()),
            };
            self.transition(StateKind::Cancelled, Some(because.into()));
            self.abandon();
        }
    }
}
