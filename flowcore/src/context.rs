//! Which flow run the code is running in.
//!
//! The current flow run lives in a tokio task-local, never a thread-local, so it follows the
//! future across threads. A task or flow call reads it when it is *called*, not when it is
//! first polled: `tokio::spawn(extract(url))` and `join_all` keep the run attached to the
//! flow that called it.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::task::AtomicWaker;
use tokio::task::futures::TaskLocalFuture;
use uuid::Uuid;

use crate::producers::Producers;
use crate::record::{EdgeKind, FlowRunRecord, TaskRunRecord, Upstream, Upstreams};
use crate::run_hooks::ActiveHooks;
use crate::run_id_hasher::BuildRunIdHasher;
use crate::state::State;
use crate::store::{PriorRun, RunStore};
use crate::summary::Table;

tokio::task_local! {
    static CURRENT_FLOW: Arc<FlowContext>;
}

/// The shared part of a live flow run: what its task runs and subflows report into.
#[derive(Debug)]
#[doc(hidden)]
pub struct FlowContext {
    pub(crate) id: Uuid,
    pub(crate) name: String,
    /// The flow run's tags, which its task runs and subflow runs carry too.
    pub(crate) tags: Vec<Cow<'static, str>>,
    /// The run-time hooks of the flow run, which its task runs fire too.
    pub(crate) hooks: ActiveHooks,
    /// How many states the flow run's history holds, and the states its body added (a pause)
    /// that the run has not taken into its history yet.
    states: Mutex<BodyStates>,
    /// Where the flow run, its task runs and its subflow runs record.
    pub(crate) store: RunStore,
    /// Task and subflow calls made so far: each call's position, by which a resumed run
    /// finds what the crashed one did at the same point.
    calls: AtomicU32,
    /// For a resumed run: what the earlier attempt did at each call position.
    prior: BTreeMap<u32, PriorRun>,
    /// Pauses made so far (`flowcore::pause`): each one's position, by which a run picked up
    /// again finds the answers its pauses took before.
    pauses: AtomicU32,
    /// For a deployment's run served here: where the server learns that it waits for input.
    pub(crate) served: Option<Arc<crate::cancel::CancelSlot>>,
    /// What the flow run gathers of its task runs and subflow runs as each ends.
    pub(crate) gathering: Gathering,
    finished: Mutex<Finished>,
    /// Which task run produced each value seen lately, by fingerprint. A lock of the flow
    /// run's own: task runs submitted in it may end on other threads.
    produced: Mutex<Producers>,
    /// Whether `produced` holds anything: until then, arguments are not even fingerprinted.
    tracking: AtomicBool,
    /// Task runs submitted in this flow run and not finished yet: the flow run waits for them.
    submitted: AtomicUsize,
    /// Woken when the last of those finishes: only the flow run itself waits.
    submitted_done: AtomicWaker,
    /// How to drop each of those at once, by task run id, if the flow run ends without them.
    cancels: Cancels,
}

/// What a flow run gathers of the runs that end in it: only what someone will read. The store
/// has every run either way; a flow of a million task runs would otherwise hold 250 MB of
/// records that the call drops unread.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Gathering {
    /// Nothing: the call is awaited for its output alone, and no summary is logged.
    Nothing,
    /// What the summary logged at the end shows (a [`Table`]: counts, the first rows).
    Summary,
    /// Every record, for a caller's `with_run` (or a parent's record that holds this one).
    Records,
}

/// See [`FlowContext::body_state`].
#[derive(Debug, Default)]
pub(crate) struct BodyStates {
    pub(crate) recorded: u32,
    pub(crate) added: Vec<State>,
}

#[derive(Default)]
struct Cancels(Mutex<HashMap<Uuid, Arc<dyn CancelSubmitted>, BuildRunIdHasher>>);

impl std::fmt::Debug for Cancels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cancels")
    }
}

/// A submitted task run's future, which its flow run can drop if it ends first (dropped by a
/// `select!`, a timeout, a panic): the task run then records `Cancelled` before its flow run
/// records its own final state.
pub(crate) trait CancelSubmitted: Send + Sync {
    fn cancel(&self);
}

#[derive(Debug, Default)]
struct Finished {
    task_runs: Vec<TaskRunRecord>,
    subflow_runs: Vec<FlowRunRecord>,
    table: Table,
}

impl FlowContext {
    pub(crate) fn new(
        id: Uuid,
        name: String,
        tags: Vec<Cow<'static, str>>,
        hooks: ActiveHooks,
        prior: BTreeMap<u32, PriorRun>,
        store: RunStore,
    ) -> Self {
        FlowContext {
            id,
            name,
            tags,
            hooks,
            states: Mutex::default(),
            store,
            calls: AtomicU32::new(0),
            prior,
            pauses: AtomicU32::new(0),
            served: None,
            gathering: Gathering::Records,
            finished: Mutex::new(Finished::default()),
            produced: Mutex::default(),
            tracking: AtomicBool::new(false),
            submitted: AtomicUsize::new(0),
            submitted_done: AtomicWaker::new(),
            cancels: Cancels::default(),
        }
    }

    /// Records a state the flow's body enters (`Paused`, then `Running` again), after the
    /// run's own: the run takes it into its history before its next state.
    pub(crate) fn body_state(&self, state: State) {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let seq = states.recorded + states.added.len() as u32;
        self.store.send(crate::store::Event::Transition {
            kind: crate::hooks::RunKind::Flow,
            id: self.id,
            position: None,
            seq,
            state: state.clone(),
            attempts: 0,
            cache: crate::record::CacheStatus::Off,
            output: None,
        });
        states.added.push(state);
    }

    /// How many states the body added that the run has not taken yet.
    pub(crate) fn body_states_pending(&self) -> u32 {
        let states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        states.added.len() as u32
    }

    /// Pushes the run's own `state` onto its history, after the states its body added (which
    /// the store has at the positions before it), and notes the history's new length.
    pub(crate) fn push_state(&self, history: &mut crate::record::History, state: State) {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        for added in states.added.drain(..) {
            history.push(added);
        }
        history.push(state);
        states.recorded = history.len() as u32;
    }

    /// Notes that task run `id` produced the values of these fingerprints; a later producer of
    /// an equal value takes its place.
    pub(crate) fn produced(&self, id: Uuid, fingerprints: impl FnOnce(&mut dyn FnMut(u64))) {
        let mut any = false;
        // Locked for each fingerprint rather than around them all: taking them runs the value's
        // `Serialize`, user code that could call a task of this flow run.
        fingerprints(&mut |f| {
            self.producers().insert(f, id);
            any = true;
        });
        if any && !self.tracking.load(Ordering::Relaxed) {
            self.tracking.store(true, Ordering::Relaxed);
        }
    }

    fn producers(&self) -> MutexGuard<'_, Producers> {
        self.produced.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds to `upstream` a data edge from each task run that produced one of these
    /// fingerprints, once each.
    pub(crate) fn producers_of(
        &self,
        fingerprints: impl FnOnce(&mut dyn FnMut(u64)),
        upstream: &mut Upstreams,
    ) {
        if !self.tracking.load(Ordering::Relaxed) {
            return;
        }
        fingerprints(&mut |f| {
            if let Some(id) = self.producers().get(f) {
                // Most calls have one upstream, which the list keeps in place.
                upstream.push(Upstream {
                    id,
                    kind: EdgeKind::Data,
                    allow_failure: false,
                });
            }
        });
        // Once each, in the order first seen. A fan-in can bring thousands: past a few, a set.
        match upstream.len() {
            0 | 1 => {}
            2..=8 => {
                let mut kept: Vec<Upstream> = Vec::with_capacity(upstream.len());
                for u in upstream.iter() {
                    if !kept.iter().any(|k| k.id == u.id) {
                        kept.push(*u);
                    }
                }
                *upstream = kept.into();
            }
            n => {
                let mut seen = std::collections::HashSet::with_capacity(n);
                upstream.retain(|u| seen.insert(u.id));
            }
        }
    }

    /// Task run `id` was submitted in this flow run, to be dropped with `cancel` if the flow run
    /// ends first; [`Submitted`] ends it.
    pub(crate) fn submitted(
        self: &Arc<Self>,
        id: Uuid,
        cancel: Arc<dyn CancelSubmitted>,
    ) -> Submitted {
        self.submitted.fetch_add(1, Ordering::AcqRel);
        self.cancels().insert(id, cancel);
        Submitted {
            flow: Arc::clone(self),
            id,
        }
    }

    fn cancels(&self) -> MutexGuard<'_, HashMap<Uuid, Arc<dyn CancelSubmitted>, BuildRunIdHasher>> {
        self.cancels.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops the submitted task runs that have not finished: the flow run ends without them.
    /// Each records `Cancelled` now, on this thread, unless it is being polled on another at
    /// this moment: then it stops as that poll returns.
    pub(crate) fn cancel_submitted(&self) {
        // Taken out first: a dropped run's `Submitted` removes itself from the map.
        let running = std::mem::take(&mut *self.cancels());
        for cancel in running.into_values() {
            cancel.cancel();
        }
    }

    /// Ready once every task run submitted in this flow run has finished.
    pub(crate) fn poll_submitted(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.submitted.load(Ordering::Acquire) == 0 {
            return std::task::Poll::Ready(());
        }
        self.submitted_done.register(cx.waker());
        if self.submitted.load(Ordering::Acquire) == 0 {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    }

    /// The position of a new call in this flow run.
    pub(crate) fn next_call(&self) -> u32 {
        self.calls.fetch_add(1, Ordering::Relaxed)
    }

    /// The position of a new pause in this flow run.
    pub(crate) fn next_pause(&self) -> u32 {
        self.pauses.fetch_add(1, Ordering::Relaxed)
    }

    /// Notes whether the flow's body waits for input: a served run that does when its server
    /// stops is left paused for the next server, not cancelled.
    pub(crate) fn waiting_for_input(&self, waiting: bool) {
        if let Some(served) = &self.served {
            served.set_waiting_for_input(waiting);
        }
    }

    /// What an earlier attempt of this flow run did at call position `seq`.
    pub(crate) fn prior(&self, seq: u32) -> Option<&PriorRun> {
        self.prior.get(&seq)
    }

    /// The flow run this code runs in, if any.
    pub(crate) fn current() -> Option<Arc<FlowContext>> {
        CURRENT_FLOW.try_with(Arc::clone).ok()
    }

    /// Calls `f` with the flow run this code runs in, without taking a reference to it.
    pub(crate) fn with_current<T>(f: impl FnOnce(&FlowContext) -> T) -> Option<T> {
        CURRENT_FLOW.try_with(|flow| f(flow)).ok()
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
        match self.gathering {
            Gathering::Records => {}
            Gathering::Summary => return self.finished().table.add(&run),
            Gathering::Nothing => return,
        }
        let mut finished = self.finished();
        if finished.task_runs.capacity() == 0 {
            // Room for one, not the four a vector starts with: a flow run of one task run
            // then needs no shrinking when its record is made (see `take_finished`).
            finished.task_runs.reserve_exact(1);
        }
        finished.task_runs.push(run);
    }

    /// Keeps a subflow run's record, if this run gathers records: a run gathering its summary
    /// alone took the subflow run's line as it ended (see [`Self::add_subflow_line`]).
    pub(crate) fn add_subflow_run(&self, run: FlowRunRecord) {
        if self.gathering == Gathering::Records {
            self.finished().subflow_runs.push(run);
        }
    }

    /// Takes a subflow run's summary line, for a run gathering its summary alone.
    pub(crate) fn add_subflow_line(&self, run: &FlowRunRecord, headline: &str) {
        self.finished().table.add_subflow(run, headline);
    }

    /// Takes the runs reported so far.
    pub(crate) fn take_finished(&self) -> (Vec<TaskRunRecord>, Vec<FlowRunRecord>, Table) {
        let mut finished = self.finished();
        let mut task_runs = std::mem::take(&mut finished.task_runs);
        let subflow_runs = std::mem::take(&mut finished.subflow_runs);
        let table = std::mem::take(&mut finished.table);
        drop(finished);
        // The record may be kept long after the run: without the room the vector grew into,
        // up to half of it (a large one is moved by remapping its pages, not copied).
        task_runs.shrink_to_fit();
        (task_runs, subflow_runs, table)
    }
}

/// A submitted task run that has not finished; dropped when it has (or was cancelled).
pub(crate) struct Submitted {
    flow: Arc<FlowContext>,
    id: Uuid,
}

impl Drop for Submitted {
    fn drop(&mut self) {
        // Also breaks the cycle flow -> cancel -> future -> this -> flow.
        self.flow.cancels().remove(&self.id);
        if self.flow.submitted.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.flow.submitted_done.wake();
        }
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
        // Runs made inside record to the flow run's store.
        Some(flow) => tokio::spawn(CURRENT_FLOW.scope(flow, fut)),
        // A store in scope goes along, so that runs made inside record where this code's do.
        None => tokio::spawn(RunStore::current().keep_in(fut)),
    }
}
