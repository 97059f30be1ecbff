//! What a kind of store must do: apply batches of events, and fetch rows.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::clock::Timestamp;
use crate::state::{State, StateKind};
use crate::store::StoreError;
use crate::store::delete::{Deleted, Prune};
use crate::store::deployments::{
    Change, DeploymentInfo, DeploymentRow, RequestedRun, Tick, WorkerInfo,
};
use crate::store::event::{Event, FlowRow, TaskRow};
use crate::store::limits::{LimitInfo, Slot};
use crate::store::process::ProcessInfo;
use crate::store::query::{CacheEntry, LogLine, RunFilter};
use crate::store::task_requests::{ClaimedTask, DelayRequest, TaskResult};

/// A place runs are kept: in memory, in a SQLite file (and later PostgreSQL).
///
/// `write` is called by the store's writer thread only, with everything that arrived since
/// the last call: one transaction per call is the group commit. The reads may be called from
/// any thread.
pub(crate) trait Backend: Send + Sync + 'static {
    /// Where it keeps runs, for messages: a path or `:memory:`.
    fn describe(&self) -> String;

    /// Applies every event of the batch at once, or none. `Flush` events are left to the
    /// caller.
    fn write(&self, batch: &[Event], process: &ProcessInfo) -> Result<(), StoreError>;

    /// Whether events are applied by the thread that sends them, with no writer thread: then
    /// every event is applied as soon as it is sent and a flush has nothing to wait for.
    fn writes_directly(&self) -> bool {
        false
    }

    /// Applies one event at once, for a backend that writes directly; it may take what it
    /// keeps out of the event instead of copying it. By reference: an event is some 200 bytes,
    /// and each move of one into a call was a copy (three a task run).
    fn write_now(&self, event: &mut Event, process: &ProcessInfo) -> Result<(), StoreError> {
        self.write(std::slice::from_ref(event), process)
    }

    /// Records that `process` uses the store, for crash detection. Returns whether the store
    /// holds another process not recorded as ended: only such a process can have left runs
    /// unfinished, so only then has [`Backend::mark_crashed`] anything to look for; otherwise
    /// the processes that ended long ago are forgotten here, as it would.
    fn register_process(&self, process: &ProcessInfo) -> Result<bool, StoreError>;

    /// Records `me` as ended, as what [`Backend::end_process`] does after ending its runs,
    /// unless a run of it is unfinished: for a process closing the store or exiting normally,
    /// so that the next process to open the store has no dead process to look for. A run left
    /// unfinished (the program exits in the middle of a flow) keeps `me` unended, for the next
    /// process to mark the run Crashed. Returns whether `me` was recorded ended.
    fn retire(&self, _me: &ProcessInfo, _now: Timestamp) -> Result<bool, StoreError> {
        Ok(false)
    }

    /// Takes back [`Backend::retire`]: a run of `me` was created after it.
    fn unretire(&self, _me: &ProcessInfo) -> Result<(), StoreError> {
        Ok(())
    }

    /// Marks Crashed the unfinished runs of processes that stopped; returns how many.
    fn mark_crashed(
        &self,
        me: &ProcessInfo,
        now: Timestamp,
    ) -> Result<Vec<crate::crash_hooks::CrashedRun>, StoreError>;

    /// Ends every unfinished run of `me` in state `kind` with `message`, and records `me` as
    /// ended: for a process about to exit on a signal. Returns how many runs it ended.
    fn end_process(
        &self,
        _me: &ProcessInfo,
        _kind: StateKind,
        _message: &str,
        _now: Timestamp,
    ) -> Result<usize, StoreError> {
        Ok(0)
    }

    /// Moves what sits in a write-ahead log into the store's file, so that the file alone holds
    /// every commit: for the writer, as the store closes. Nothing to do for most stores.
    fn checkpoint(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Whether it was opened for reading only: then it cannot record runs.
    fn opened_for_reading(&self) -> bool {
        false
    }

    /// Whether reads may block on I/O (then async callers move them off the runtime).
    fn reads_block(&self) -> bool;

    /// Top-level and subflow runs matching `filter`, newest first.
    fn flow_rows(&self, filter: &RunFilter) -> Result<Vec<FlowRow>, StoreError>;
    /// When each flow run created at or after `since` was created, and its state now.
    fn flow_states_since(
        &self,
        since: Timestamp,
    ) -> Result<Vec<(Timestamp, StateKind)>, StoreError>;
    fn flow_row(&self, id: Uuid) -> Result<Option<FlowRow>, StoreError>;
    /// The newest flow run with this name.
    fn flow_row_named(&self, name: &str) -> Result<Option<FlowRow>, StoreError>;
    /// Subflow runs of `parent`, oldest first.
    fn child_flows(&self, parent: Uuid) -> Result<Vec<FlowRow>, StoreError>;
    /// Task runs of `flow_run`, in the order they were created.
    fn task_rows(&self, flow_run: Uuid) -> Result<Vec<TaskRow>, StoreError>;
    fn task_counts(&self, flow_run: Uuid) -> Result<BTreeMap<StateKind, usize>, StoreError>;
    /// A run's states, in order.
    fn states(&self, run: Uuid) -> Result<Vec<crate::state::State>, StoreError>;
    /// Log lines of these runs, in the order they were written.
    fn logs(&self, runs: &[Uuid]) -> Result<Vec<LogLine>, StoreError>;

    /// What flow run `run` asks at its pause `pause` (its latest pause: `None`), and the input
    /// given so far.
    fn input_request(
        &self,
        run: Uuid,
        pause: Option<u32>,
    ) -> Result<Option<crate::pause::InputRequest>, StoreError>;

    /// Gives input to a paused run's latest question, if unanswered; `false` if it has none.
    fn give_input(&self, run: Uuid, input: &str, by: &str) -> Result<bool, StoreError>;

    /// The run took the input of its pause `pause` (`refused: None`) or refused it, with the
    /// reason.
    fn answer_input(
        &self,
        run: Uuid,
        pause: u32,
        refused: Option<&str>,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Artifacts, oldest first: those of a flow run, or those of a key, or (neither) the
    /// latest of each key.
    fn artifacts(
        &self,
        of: crate::artifact::ArtifactsOf<'_>,
    ) -> Result<Vec<crate::artifact::Artifact>, StoreError>;

    /// Deletes these flow runs with everything under them, in one transaction: all of them,
    /// or none when one is unknown ([`StoreError::UnknownRun`]) or has a run going in a live
    /// process ([`StoreError::RunGoing`]).
    fn delete_runs(&self, ids: &[Uuid], me: &ProcessInfo) -> Result<Deleted, StoreError>;
    /// Deletes the top-level flow runs `prune` selects with everything under them, in one
    /// transaction, leaving out those with a run going in a live process.
    fn prune(&self, prune: &Prune, me: &ProcessInfo) -> Result<Deleted, StoreError>;

    /// Records that `me` serves these deployments, as one of their workers; returns the names
    /// of those that are paused (a deployment's definition is written anew, its pause kept).
    fn serve_deployments(
        &self,
        rows: &[DeploymentRow],
        me: &ProcessInfo,
    ) -> Result<Vec<String>, StoreError>;
    /// Records that `me` no longer serves these deployments, and gives back the requested runs
    /// it claimed but did not start.
    fn unserve_deployments(&self, names: &[String], me: &ProcessInfo) -> Result<(), StoreError>;
    /// Every deployment, by name.
    fn deployments(&self) -> Result<Vec<DeploymentInfo>, StoreError>;
    /// Every deployment as defined (name, flow, schedule, parameters, overlap), without who
    /// serves it or its runs: what a request needs, in one read.
    fn deployment_definitions(&self) -> Result<Vec<DeploymentInfo>, StoreError> {
        self.deployments()
    }
    /// Pauses the schedule of the deployment `name` as of `at` (`Some`), or resumes it
    /// (`None`); `None` if no deployment has that name. Pausing a paused deployment keeps the
    /// time of its first pause.
    fn set_paused(&self, name: &str, at: Option<Timestamp>) -> Result<Option<Change>, StoreError>;
    /// Writes a requested run: a flow run in state `Scheduled`, claimed by no process.
    fn request_run(&self, run: &RequestedRun) -> Result<(), StoreError>;
    /// Asks for flow run `id` to be cancelled by `by`: see [`Store::cancel_run`].
    ///
    /// [`Store::cancel_run`]: crate::Store::cancel_run
    fn cancel_run(
        &self,
        me: &ProcessInfo,
        id: Uuid,
        by: &str,
        now: Timestamp,
    ) -> Result<crate::cancel::CancelOutcome, StoreError>;

    /// The runs of `me` asked to be cancelled, with their `Cancelling` state.
    fn cancel_requests(&self, me: &ProcessInfo) -> Result<Vec<(Uuid, State)>, StoreError>;

    /// Ends flow run `id` `Cancelled` with `message`, and its unfinished task runs: a run that
    /// was cancelled before it started here.
    fn end_cancelled(&self, id: Uuid, message: &str, now: Timestamp) -> Result<(), StoreError>;

    /// Claims for `me` the requested runs of these deployments that no process has claimed,
    /// oldest first.
    fn claim_requests(
        &self,
        deployments: &[String],
        me: &ProcessInfo,
    ) -> Result<Vec<RequestedRun>, StoreError>;
    /// Takes the scheduled time `at` of `deployment` for `me`, unless another worker took it or
    /// the deployment is paused.
    fn claim_tick(
        &self,
        deployment: &str,
        at: Timestamp,
        me: &ProcessInfo,
    ) -> Result<Tick, StoreError>;
    /// Records that `me` serves these background tasks (or no longer does: `serving` false),
    /// for `flowcore worker ls`.
    fn serve_tasks(
        &self,
        _tasks: &[&str],
        _serving: bool,
        _me: &ProcessInfo,
    ) -> Result<(), StoreError> {
        Ok(())
    }
    /// Records delayed task runs `Scheduled`, with their arguments, for workers serving their
    /// tasks to claim: all of them or none.
    fn delay_tasks(&self, runs: &[DelayRequest]) -> Result<(), StoreError>;
    /// Claims for `me` up to `limit` delayed task runs of these tasks that no process has
    /// claimed, oldest first.
    fn claim_tasks(
        &self,
        tasks: &[&str],
        limit: usize,
        me: &ProcessInfo,
    ) -> Result<Vec<ClaimedTask>, StoreError>;
    /// Where these task runs are: their state now, and the output or message of those that
    /// ended. Runs the store does not know are left out.
    fn task_results(&self, ids: &[Uuid]) -> Result<Vec<TaskResult>, StoreError>;
    /// The live processes serving deployments, oldest first.
    fn workers(&self) -> Result<Vec<WorkerInfo>, StoreError>;

    /// The store-wide concurrency limits, by tag.
    fn limits(&self) -> Result<Vec<LimitInfo>, StoreError>;
    /// Sets the store-wide limit of `tag` to `max`, or removes it (`None`); returns whether
    /// there was one.
    fn set_limit(&self, tag: &str, max: Option<u32>) -> Result<bool, StoreError>;
    /// Takes a slot of `tag`'s store-wide limit for `task_run` of `me`, if one is free.
    fn take_slot(&self, tag: &str, task_run: Uuid, me: &ProcessInfo) -> Result<Slot, StoreError>;

    fn cache_get(&self, key: &str, now: Timestamp) -> Result<Option<String>, StoreError>;

    /// [`Backend::cache_get`] if it can answer without waiting for a lock, another thread or
    /// another process; `None` if it would have to wait, and then the caller asks
    /// `cache_get` off the runtime's threads.
    fn cache_get_without_waiting(
        &self,
        _key: &str,
        _now: Timestamp,
    ) -> Option<Result<Option<String>, StoreError>> {
        None
    }
    fn cache_entries(&self) -> Result<Vec<CacheEntry>, StoreError>;
    /// Removes the cached results of `task`, or all; returns how many.
    fn cache_clear(&self, task: Option<&str>) -> Result<usize, StoreError>;
}
