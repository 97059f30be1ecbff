//! A store in this process's memory: nothing survives the process, nothing touches the disk.
//!
//! It keeps the flow runs of this process: every unfinished one, and of the finished ones the
//! most recent, up to [`KEEP_FLOW_RUNS`] top-level flow runs (with their task runs and subflow
//! runs) as long as they hold at most [`KEEP_TASK_RUNS`] task runs. Older ones are dropped with
//! their log lines and artifacts (see `per_run.rs`), so a long-lived process keeps a bounded
//! history. The newest finished flow run is kept whatever
//! its size until the next top-level flow run begins. Task runs called outside any flow are not kept:
//! nothing reads them back (their record is what the call returns).
//!
//! There is no writer thread: each event is applied by the thread that sends it, so nothing
//! waits for a commit. That puts this store on the path of every task run, so each flow run
//! owns its task runs, in a vector indexed by the call's position in the flow run (no hashing,
//! and dropping an old flow run drops them in one piece); flow runs live in a sharded map (runs
//! of different flows rarely meet on a lock); and rows keep the task's name and tags borrowed
//! from the task's static settings.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::BuildHasherDefault;
use std::sync::{Mutex, MutexGuard};

use dashmap::DashMap;
use uuid::Uuid;

use crate::clock::Timestamp;
use crate::hooks::RunKind;
// `History` here is this store's list of flow runs; a run's states are `States`.
use crate::record::{CacheStatus, History as States, Upstreams};
use crate::run_id_hasher::RunIdHasher;
use crate::state::{State, StateKind};
use crate::store::StoreError;
use crate::store::backend::Backend;
use crate::store::delete::{Deleted, Going, Prune};
use crate::store::deployments::{
    Change, DeploymentInfo, DeploymentRow, DeploymentRun, LAST_RUNS, REQUESTED, RequestedRun,
    ServedBy, Tick, WorkerInfo,
};
use crate::store::event::{Event, FlowRow, RowUpdate, TaskRow};
use crate::store::limits::{LimitInfo, Slot};
use crate::store::per_run::PerRun;
use crate::store::process::ProcessInfo;
use crate::store::query::{CacheEntry, LogLine, RunFilter};
use crate::store::short_text::ShortText;
use crate::store::task_requests::{ClaimedTask, DELAYED, DelayRequest, TaskResult};
use crate::store::task_states::TaskStates;

/// Finished top-level flow runs kept, at most.
pub(crate) const KEEP_FLOW_RUNS: usize = 1_000;

/// Task runs of finished flow runs kept, at most (the newest flow run is kept whatever its
/// size).
pub(crate) const KEEP_TASK_RUNS: usize = 100_000;

pub(crate) struct MemoryBackend {
    /// Every event of a task run takes its flow run's shard for writing: with many shards,
    /// flow runs on different threads rarely share one.
    flows: DashMap<Uuid, MemFlow, BuildHasherDefault<RunIdHasher>>,
    /// What only flow runs' creation and end touch.
    history: Mutex<History>,
    /// Log lines and artifacts, forgotten with their flow runs.
    logs: Mutex<PerRun<MemLog>>,
    artifacts: Mutex<PerRun<crate::artifact::Artifact>>,
    /// Each paused run's pauses, by position.
    inputs: Mutex<HashMap<Uuid, BTreeMap<u32, crate::pause::InputRequest>>>,
    cache: Mutex<HashMap<String, CachedValue>>,
    deployments: Mutex<BTreeMap<String, MemDeployment>>,
    /// Requested runs no process has claimed, oldest first.
    requests: Mutex<Vec<Uuid>>,
    /// Delayed task runs, kept apart from flow runs' task runs: their workers record them
    /// outside any flow run.
    delayed: Mutex<Delayed>,
}

/// A run's log line as kept here: a [`LogLine`] with its level as the `&'static str` it comes
/// as, an allocation less for each of the two lines of every task run when logging is on.
struct MemLog {
    run_id: Uuid,
    at: Timestamp,
    level: &'static str,
    message: Cow<'static, str>,
}

/// Delayed task runs, and those no worker has claimed yet, oldest first.
#[derive(Default)]
struct Delayed {
    runs: HashMap<Uuid, MemDelayed>,
    waiting: VecDeque<Uuid>,
}

struct MemDelayed {
    task: &'static str,
    args: String,
    flow_run_id: Option<Uuid>,
    states: States,
    claims: u32,
    output: Option<String>,
}

/// Shards of `MemoryBackend::flows`: two flow runs share one with odds 1 in 64, against 1 in 8
/// with DashMap's default on two cores.
const FLOW_SHARDS: usize = 64;

impl Default for MemoryBackend {
    fn default() -> Self {
        MemoryBackend {
            flows: DashMap::with_hasher_and_shard_amount(
                BuildHasherDefault::default(),
                FLOW_SHARDS,
            ),
            history: Mutex::default(),
            logs: Mutex::new(PerRun::new(|line| Some(line.run_id))),
            artifacts: Mutex::new(PerRun::new(|artifact| artifact.flow_run_id)),
            inputs: Mutex::default(),
            cache: Mutex::default(),
            deployments: Mutex::default(),
            requests: Mutex::default(),
            delayed: Mutex::default(),
        }
    }
}

struct MemDeployment {
    row: DeploymentRow,
    served: bool,
    next_run_at: Option<Timestamp>,
    paused_at: Option<Timestamp>,
}

#[derive(Default)]
struct History {
    /// Flow runs in the order they were created.
    order: Vec<Uuid>,
    children: HashMap<Uuid, Vec<Uuid>, BuildHasherDefault<RunIdHasher>>,
    /// Finished top-level flow runs, oldest first, with the task runs each holds.
    finished: VecDeque<(Uuid, usize)>,
    /// Task runs those hold in all.
    finished_task_runs: usize,
    /// How long `order` may grow before the ids of forgotten flow runs are taken out of it.
    /// Kept rather than worked out at each flow run: counting the live flow runs takes every
    /// shard's lock.
    order_limit: usize,
}

struct MemFlow {
    name: String,
    tags: Vec<Cow<'static, str>>,
    flow: Cow<'static, str>,
    parent_id: Option<Uuid>,
    parameters: Option<String>,
    call_seq: Option<u32>,
    deployment: Option<String>,
    attempts: u32,
    started_at: Option<Timestamp>,
    output: Option<String>,
    states: States,
    /// Its task runs by call position; subflow calls leave gaps.
    tasks: Vec<Option<MemTask>>,
    /// How many of `tasks` are task runs.
    task_runs: usize,
    kinds: Vec<TaskKind>,
}

/// A task run, in 128 bytes (and its upstream edge, if it has one): what a flow of a million
/// task runs keeps a million of. Its task's name and tags live once in its flow run's `kinds`;
/// its call position is its index in the flow run's `tasks`.
struct MemTask {
    id: Uuid,
    /// Index into the flow run's `kinds`.
    kind: u32,
    attempts: u32,
    cache: CacheStatus,
    /// Its position in a `map`, or [`NOT_MAPPED`]: four bytes rather than an `Option`'s eight,
    /// which keep the run in 128 bytes with its edge inline.
    map_index: u32,
    output: Option<ShortText>,
    /// The name `task_run_name` gave it.
    name: Option<Box<str>>,
    states: TaskStates,
    upstream: Upstreams,
}

/// A task run's `map_index` when it was not started by `map`. No `map` reaches it: its inputs
/// would need more memory than a 64-bit machine has.
const NOT_MAPPED: u32 = u32::MAX;

/// A task's name and tags, shared by all its runs in one flow run.
struct TaskKind {
    task: Cow<'static, str>,
    tags: Cow<'static, [Cow<'static, str>]>,
}

struct CachedValue {
    task: String,
    json: String,
    created_at: Timestamp,
    expires_at: Timestamp,
}

/// A lock of this store: no code panics while holding one, but a poisoned map is still a map.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a row derives from its states.
fn derived(states: &[State]) -> (StateKind, Timestamp, Option<Timestamp>, Option<String>) {
    let first = states.first().map_or(Timestamp::from_micros(0), |s| s.at);
    let Some(last) = states.last() else {
        return (StateKind::Pending, first, None, None);
    };
    let update = RowUpdate::from_state(last, 0, CacheStatus::Off);
    (last.kind, first, update.ended_at, update.error)
}

impl MemFlow {
    fn row(&self, id: Uuid) -> FlowRow {
        let (state, created_at, ended_at, error) = derived(&self.states);
        FlowRow {
            id,
            name: self.name.clone(),
            tags: self.tags.iter().map(|t| t.to_string()).collect(),
            flow: self.flow.to_string(),
            parent_id: self.parent_id,
            parameters: self.parameters.clone(),
            state,
            attempts: self.attempts,
            created_at,
            started_at: self.started_at,
            ended_at,
            error,
            call_seq: self.call_seq,
            output: self.output.clone(),
            deployment: self.deployment.clone(),
        }
    }

    fn task(&mut self, call_seq: u32) -> Option<&mut MemTask> {
        self.tasks.get_mut(call_seq as usize)?.as_mut()
    }

    /// The index in `kinds` of this task name and tags, added if new. Runs of one task come
    /// in streaks, and their names and tags are the task's static settings: the last kind
    /// and a pointer comparison answer nearly every call.
    #[expect(
        clippy::ptr_arg,
        reason = "a new kind clones the `Cow`, which keeps a borrowed name borrowed"
    )]
    fn kind_of(
        &mut self,
        task: &Cow<'static, str>,
        tags: &Cow<'static, [Cow<'static, str>]>,
    ) -> u32 {
        let same = |k: &TaskKind| {
            (std::ptr::eq(k.task.as_ptr(), task.as_ptr()) && k.task.len() == task.len()
                || k.task == *task)
                && (std::ptr::eq(k.tags.as_ptr(), tags.as_ptr()) && k.tags.len() == tags.len()
                    || k.tags == *tags)
        };
        if let Some(at) = self.kinds.iter().rposition(same) {
            return at as u32;
        }
        // Most flow runs call one task or a few: room for one first, where a vector's first
        // push makes room for four (and the store keeps a thousand flow runs).
        if self.kinds.capacity() == 0 {
            self.kinds.reserve_exact(1);
        }
        self.kinds.push(TaskKind {
            task: task.clone(),
            tags: tags.clone(),
        });
        (self.kinds.len() - 1) as u32
    }

    fn task_rows(&self, flow_run: Uuid) -> Vec<TaskRow> {
        self.tasks
            .iter()
            .enumerate()
            .filter_map(|(call_seq, task)| {
                let task = task.as_ref()?;
                let kind = &self.kinds[task.kind as usize];
                let (state, created_at, _, _) = derived(&task.states.to_vec());
                Some(TaskRow {
                    id: task.id,
                    flow_run_id: Some(flow_run),
                    task: kind.task.to_string(),
                    name: task.name.as_deref().map(str::to_owned),
                    tags: kind.tags.iter().map(|t| t.to_string()).collect(),
                    state,
                    attempts: task.attempts,
                    cache: task.cache,
                    created_at,
                    call_seq: Some(call_seq as u32),
                    output: task.output.as_ref().map(|o| o.as_str().to_owned()),
                    upstream: task.upstream.to_vec(),
                    map_index: (task.map_index != NOT_MAPPED).then_some(task.map_index),
                })
            })
            .collect()
    }
}

impl MemoryBackend {
    fn history(&self) -> MutexGuard<'_, History> {
        lock(&self.history)
    }

    /// Records a flow run's creation from `event` (a `FlowRunCreated`), with its `name` and
    /// `parameters` taken out of it or copied.
    fn flow_run_created(&self, event: &Event, name: String, parameters: Option<String>) {
        let Event::FlowRunCreated {
            id,
            tags,
            flow,
            parent_id,
            call_seq,
            seq,
            state,
            deployment,
            ..
        } = event
        else {
            return;
        };
        if let Some(mut run) = self.flows.get_mut(id) {
            // A deployment's run is named and tagged when its flow is called.
            if run.name != name {
                run.name = name;
            }
            if run.tags != *tags {
                run.tags.clone_from(tags);
            }
            run.states.place(*seq, state);
            return;
        }
        let mut states = States::default();
        states.place(*seq, state);
        // In the map before its id goes into the creation order: trimming the order keeps the
        // ids the map has, and another thread may trim it at any time.
        self.flows.insert(
            *id,
            MemFlow {
                name,
                tags: tags.clone(),
                flow: flow.clone(),
                parent_id: *parent_id,
                parameters,
                call_seq: *call_seq,
                deployment: deployment.clone(),
                attempts: 0,
                started_at: None,
                output: None,
                states,
                tasks: Vec::new(),
                task_runs: 0,
                kinds: Vec::new(),
            },
        );
        let mut history = self.history();
        history.order.push(*id);
        if let Some(parent) = parent_id {
            history.children.entry(*parent).or_default().push(*id);
        } else {
            // The newest finished flow run was kept whatever its size; now that another
            // begins, it obeys the limits too, so a process running big flows one after
            // another keeps one of them, not two.
            let forgotten = self.forget_old_flow_runs(&mut history, 0);
            drop(history);
            drop(forgotten);
        }
    }

    fn apply(&self, event: &Event) {
        match event {
            Event::FlowRunCreated {
                name, parameters, ..
            } => self.flow_run_created(event, name.clone(), parameters.clone()),
            Event::TaskRunCreated { upstream, .. } => {
                self.create_task_run(event, upstream.clone());
            }
            Event::Transition {
                kind: RunKind::Task,
                output,
                ..
            } => self.task_transition(event, output.clone()),
            Event::Transition {
                kind: RunKind::Flow,
                id,
                seq,
                state,
                attempts,
                ..
            } => {
                let finished_top_level = {
                    let Some(mut run) = self.flows.get_mut(id) else {
                        return;
                    };
                    run.states.place(*seq, state);
                    run.attempts = run.attempts.max(*attempts);
                    if state.kind == StateKind::Running {
                        run.started_at = run.started_at.or(Some(state.at));
                    }
                    state.is_final() && run.parent_id.is_none()
                };
                if finished_top_level {
                    let mut history = self.history();
                    let task_runs = self.task_runs_under(&history, *id);
                    history.finished.push_back((*id, task_runs));
                    history.finished_task_runs += task_runs;
                    let forgotten = self.forget_old_flow_runs(&mut history, 1);
                    drop(history);
                    drop(forgotten);
                }
            }
            Event::FlowOutput { id, json } => {
                if let Some(mut run) = self.flows.get_mut(id) {
                    run.output = Some(json.clone());
                }
            }
            Event::Artifact(artifact) => lock(&self.artifacts).push((**artifact).clone()),
            Event::InputAsked {
                flow_run_id,
                pause,
                question,
                schema,
                at,
            } => {
                lock(&self.inputs).entry(*flow_run_id).or_default().insert(
                    *pause,
                    crate::pause::InputRequest {
                        pause: *pause,
                        question: question.clone(),
                        schema: schema.clone(),
                        asked_at: *at,
                        input: None,
                        given_by: None,
                        refused: None,
                        answered_at: None,
                    },
                );
            }
            Event::Log {
                run_id,
                at,
                id: _,
                level,
                message,
            } => lock(&self.logs).push(MemLog {
                run_id: *run_id,
                at: *at,
                level,
                message: message.clone(),
            }),
            Event::CachePut {
                key,
                task,
                json,
                created_at,
                expires_at,
            } => {
                lock(&self.cache).insert(
                    key.clone(),
                    CachedValue {
                        task: task.clone(),
                        json: json.clone(),
                        created_at: *created_at,
                        expires_at: *expires_at,
                    },
                );
            }
            Event::NextRun { deployment, at } => {
                if let Some(d) = lock(&self.deployments).get_mut(deployment) {
                    d.next_run_at = *at;
                }
            }
            // A memory store is one process's: its limits are `flowcore::limits`'s alone.
            Event::Heartbeat(_)
            | Event::Flush(_)
            | Event::Checkpoint(_)
            | Event::ReleaseSlots { .. }
            | Event::ReleasePaused { .. } => {}
        }
    }

    /// A task run's new state (its message shared with the event's), and its output if the
    /// state came with one: taken out of the event, or copied.
    fn task_transition(&self, event: &Event, output: Option<ShortText>) {
        let Event::Transition {
            kind: RunKind::Task,
            id,
            position,
            seq,
            state,
            attempts,
            cache,
            ..
        } = event
        else {
            return;
        };
        match position {
            Some(position) => {
                if let Some(mut flow) = self.flows.get_mut(&position.flow_run_id)
                    && let Some(run) = flow.task(position.call_seq)
                {
                    run.states.place(*seq, state);
                    run.attempts = *attempts;
                    run.cache = *cache;
                    if output.is_some() {
                        run.output = output;
                    }
                }
            }
            // A task run outside any flow is kept only if it was delayed.
            None => {
                if let Some(run) = lock(&self.delayed).runs.get_mut(id) {
                    run.states.place(*seq, state);
                    if let Some(json) = output {
                        run.output = Some(json.as_str().to_owned());
                    }
                }
            }
        }
    }

    /// Keeps the task run of a `TaskRunCreated` event, with these edges (the event's own,
    /// moved out of it where the event is owned).
    fn create_task_run(&self, event: &Event, upstream: Upstreams) {
        let Event::TaskRunCreated {
            id,
            flow_run_id: Some(flow_run_id),
            task,
            name,
            tags,
            call_seq: Some(call_seq),
            state,
            map_index,
            ..
        } = event
        else {
            return; // outside any flow: not kept
        };
        let Some(mut flow) = self.flows.get_mut(flow_run_id) else {
            return;
        };
        let at = *call_seq as usize;
        let kind = flow.kind_of(task, tags);
        let run = MemTask {
            id: *id,
            kind,
            attempts: 0,
            cache: CacheStatus::Off,
            map_index: map_index.unwrap_or(NOT_MAPPED),
            output: None,
            name: name.as_deref().map(Box::from),
            states: TaskStates::new(state),
            upstream,
        };
        // Calls come in order: the run is nearly always the next one, pushed as it is rather
        // than after an empty slot that it then overwrites.
        if flow.tasks.len() == at {
            // Room for one first, as for `kinds`: a one-task flow run keeps 128 bytes, not 512.
            if flow.tasks.capacity() == 0 {
                flow.tasks.reserve_exact(1);
            }
            flow.tasks.push(Some(run));
            flow.task_runs += 1;
            return;
        }
        if flow.tasks.len() < at {
            flow.tasks.resize_with(at + 1, || None);
        }
        if flow.tasks[at].is_none() {
            flow.task_runs += 1;
        }
        flow.tasks[at] = Some(run);
    }

    /// The task runs of a flow run and of its subflow runs.
    fn task_runs_under(&self, history: &History, id: Uuid) -> usize {
        let own = self.flows.get(&id).map_or(0, |f| f.task_runs);
        let children = history.children.get(&id).into_iter().flatten();
        own + children
            .map(|child| self.task_runs_under(history, *child))
            .sum::<usize>()
    }

    /// Forgets the oldest finished flow runs beyond what is kept, but for the newest `keep`,
    /// and returns them: the caller drops them (thousands of task runs) after letting go of
    /// the history, which every flow run's start and end take.
    #[must_use = "dropped after the history's lock is released"]
    fn forget_old_flow_runs(&self, history: &mut History, keep: usize) -> Vec<MemFlow> {
        let mut forgotten = Vec::new();
        while history.finished.len() > keep
            && (history.finished.len() > KEEP_FLOW_RUNS
                || history.finished_task_runs > KEEP_TASK_RUNS)
        {
            let Some((old, task_runs)) = history.finished.pop_front() else {
                break;
            };
            history.finished_task_runs -= task_runs;
            self.forget_flow_run(history, old, &mut forgotten);
        }
        if history.order.len() > history.order_limit {
            let flows = &self.flows;
            history.order.retain(|id| flows.contains_key(id));
            history.order_limit = 2 * history.order.len() + 1024;
        }
        forgotten
    }

    /// `root` and every flow run under it, added to `into` unless there already.
    fn tree(history: &History, root: Uuid, into: &mut Vec<Uuid>, seen: &mut HashSet<Uuid>) {
        if !seen.insert(root) {
            return;
        }
        into.push(root);
        for child in history.children.get(&root).into_iter().flatten() {
            Self::tree(history, *child, into, seen);
        }
    }

    /// The first of these flow runs, or of their task runs, still going: every run of a memory
    /// store is this process's, which is alive. A run requested by hand that no loop has
    /// claimed yet is held by nobody, as in a SQL store.
    fn first_going(&self, flows: &[Uuid], me: &ProcessInfo) -> Option<Going> {
        let going = |name: String, state: StateKind| Going {
            name,
            state,
            pid: me.pid,
            host: me.host.clone(),
        };
        let unclaimed: HashSet<Uuid> = lock(&self.requests).iter().copied().collect();
        for id in flows {
            let Some(flow) = self.flows.get(id) else {
                continue;
            };
            let state = flow.states.current().kind;
            if !state.is_final() && !unclaimed.contains(id) {
                return Some(going(format!("flow run '{}'", flow.name), state));
            }
            for task in flow.tasks.iter().flatten() {
                if let Some(state) = task.states.last_kind().filter(|s| !s.is_final()) {
                    let name = &flow.kinds[task.kind as usize].task;
                    return Some(going(format!("task run of '{name}'"), state));
                }
            }
        }
        None
    }

    /// Deletes these flow runs with their task runs, log lines, requests and delayed runs.
    fn delete_flows(&self, history: &mut History, flows: &[Uuid]) -> Deleted {
        let set: HashSet<Uuid> = flows.iter().copied().collect();
        let mut runs = set.clone();
        let mut deleted = Deleted::default();
        for id in flows {
            if let Some((_, flow)) = self.flows.remove(id) {
                deleted.flow_runs += 1;
                deleted.task_runs += flow.task_runs;
                runs.extend(flow.tasks.iter().flatten().map(|t| t.id));
                if let Some(siblings) = flow.parent_id.and_then(|p| history.children.get_mut(&p)) {
                    siblings.retain(|c| c != id);
                }
            }
            history.children.remove(id);
        }
        history.order.retain(|id| !set.contains(id));
        let History {
            finished,
            finished_task_runs,
            ..
        } = history;
        finished.retain(|(id, task_runs)| {
            let gone = set.contains(id);
            if gone {
                *finished_task_runs -= task_runs;
            }
            !gone
        });
        lock(&self.logs).retain(|l| !runs.contains(&l.run_id));
        lock(&self.artifacts).retain(|a| a.flow_run_id.is_none_or(|f| !set.contains(&f)));
        lock(&self.inputs).retain(|run, _| !set.contains(run));
        lock(&self.requests).retain(|id| !set.contains(id));
        let mut delayed = lock(&self.delayed);
        let Delayed { runs: all, waiting } = &mut *delayed;
        all.retain(|_, r| r.flow_run_id.is_none_or(|f| !set.contains(&f)));
        waiting.retain(|id| all.contains_key(id));
        deleted
    }

    /// Forgets a flow run, with its task runs, and its subflow runs.
    fn forget_flow_run(&self, history: &mut History, id: Uuid, forgotten: &mut Vec<MemFlow>) {
        if let Some((_, flow)) = self.flows.remove(&id) {
            let mut logs = lock(&self.logs);
            if !logs.is_empty() {
                logs.forget(id);
                for task in flow.tasks.iter().flatten() {
                    logs.forget(task.id);
                }
            }
            drop(logs);
            lock(&self.artifacts).forget(id);
            // Nearly always one flow run, forgotten as each new one ends: room for it alone
            // (350 bytes) rather than for four, an allocation too large for malloc's
            // per-thread cache.
            if forgotten.capacity() == 0 {
                forgotten.reserve_exact(1);
            }
            forgotten.push(flow);
        }
        for child in history.children.remove(&id).unwrap_or_default() {
            self.forget_flow_run(history, child, forgotten);
        }
    }
}

impl Backend for MemoryBackend {
    fn describe(&self) -> String {
        ":memory:".to_owned()
    }

    fn write(&self, batch: &[Event], _: &ProcessInfo) -> Result<(), StoreError> {
        for event in batch {
            self.apply(event);
        }
        Ok(())
    }

    fn writes_directly(&self) -> bool {
        true
    }

    fn write_now(&self, event: &mut Event, _: &ProcessInfo) -> Result<(), StoreError> {
        match event {
            // What an event carries to keep is moved, not copied.
            Event::TaskRunCreated { upstream, .. } => {
                let upstream = std::mem::take(upstream);
                self.create_task_run(event, upstream);
            }
            Event::Transition {
                kind: RunKind::Task,
                output,
                ..
            } => {
                let output = output.take();
                self.task_transition(event, output);
            }
            Event::FlowRunCreated {
                name, parameters, ..
            } => {
                let (name, parameters) = (std::mem::take(name), parameters.take());
                self.flow_run_created(event, name, parameters);
            }
            Event::FlowOutput { id, json } => {
                if let Some(mut run) = self.flows.get_mut(id) {
                    run.output = Some(std::mem::take(json));
                }
            }
            Event::Log {
                run_id,
                at,
                level,
                message,
                ..
            } => lock(&self.logs).push(MemLog {
                run_id: *run_id,
                at: *at,
                level,
                message: std::mem::take(message),
            }),
            event => self.apply(event),
        }
        Ok(())
    }

    fn register_process(&self, _: &ProcessInfo) -> Result<bool, StoreError> {
        Ok(false)
    }

    /// Only this process can use a memory store, and it is alive.
    fn mark_crashed(
        &self,
        _: &ProcessInfo,
        _: Timestamp,
    ) -> Result<Vec<crate::crash_hooks::CrashedRun>, StoreError> {
        Ok(Vec::new())
    }

    fn reads_block(&self) -> bool {
        false
    }

    /// Only this process can use a memory store: no other serves its deployments.
    fn serve_deployments(
        &self,
        rows: &[DeploymentRow],
        _: &ProcessInfo,
    ) -> Result<Vec<String>, StoreError> {
        let mut deployments = lock(&self.deployments);
        let mut paused = Vec::new();
        for row in rows {
            // Served again, a deployment keeps its pause.
            let paused_at = deployments.get(&row.name).and_then(|d| d.paused_at);
            if paused_at.is_some() {
                paused.push(row.name.clone());
            }
            deployments.insert(
                row.name.clone(),
                MemDeployment {
                    row: row.clone(),
                    served: true,
                    next_run_at: None,
                    paused_at,
                },
            );
        }
        Ok(paused)
    }

    fn set_paused(&self, name: &str, at: Option<Timestamp>) -> Result<Option<Change>, StoreError> {
        let mut deployments = lock(&self.deployments);
        let Some(d) = deployments.get_mut(name) else {
            return Ok(None);
        };
        if d.paused_at.is_some() == at.is_some() {
            return Ok(Some(Change::Already));
        }
        d.paused_at = at;
        Ok(Some(Change::Changed))
    }

    fn unserve_deployments(&self, names: &[String], _: &ProcessInfo) -> Result<(), StoreError> {
        let mut deployments = lock(&self.deployments);
        for name in names {
            if let Some(d) = deployments.get_mut(name) {
                d.served = false;
                d.next_run_at = None;
            }
        }
        // Claimed runs are started at once in this process: none waits to be given back.
        Ok(())
    }

    fn deployments(&self) -> Result<Vec<DeploymentInfo>, StoreError> {
        let order = self.history().order.clone();
        let me = ProcessInfo::current();
        let deployments = lock(&self.deployments);
        Ok(deployments
            .values()
            .map(|d| DeploymentInfo {
                name: d.row.name.clone(),
                flow: d.row.flow.clone(),
                schedule: d.row.schedule.clone(),
                parameters: d.row.parameters.clone(),
                overlap: d.row.overlap.to_owned(),
                served_by: d.served.then(|| ServedBy {
                    pid: me.pid,
                    host: me.host.clone(),
                }),
                workers: d
                    .served
                    .then(|| ServedBy {
                        pid: me.pid,
                        host: me.host.clone(),
                    })
                    .into_iter()
                    .collect(),
                next_run_at: d.next_run_at,
                paused_at: d.paused_at,
                last_runs: order
                    .iter()
                    .rev()
                    .filter_map(|id| {
                        let run = self.flows.get(id)?;
                        (run.deployment.as_ref() == Some(&d.row.name)).then(|| {
                            let row = run.row(*id);
                            DeploymentRun {
                                id: *id,
                                name: row.name,
                                state: row.state,
                                created_at: row.created_at,
                            }
                        })
                    })
                    .take(LAST_RUNS)
                    .collect(),
            })
            .collect())
    }

    fn request_run(&self, run: &RequestedRun) -> Result<(), StoreError> {
        self.history().order.push(run.id);
        self.flows.insert(
            run.id,
            MemFlow {
                name: run.name.clone(),
                tags: Vec::new(),
                flow: Cow::Owned(run.flow.clone()),
                parent_id: None,
                parameters: Some(run.parameters.to_string()),
                call_seq: None,
                deployment: Some(run.deployment.clone()),
                attempts: 0,
                started_at: None,
                output: None,
                states: States::from_states(vec![State::new(
                    StateKind::Scheduled,
                    run.requested_at,
                    Some(REQUESTED.to_owned()),
                )]),
                tasks: Vec::new(),
                task_runs: 0,
                kinds: Vec::new(),
            },
        );
        lock(&self.requests).push(run.id);
        Ok(())
    }

    /// A memory store is this process's alone: a run it serves is dropped at once, any other
    /// never started here.
    fn cancel_run(
        &self,
        _: &ProcessInfo,
        id: Uuid,
        by: &str,
        now: Timestamp,
    ) -> Result<crate::cancel::CancelOutcome, StoreError> {
        use crate::cancel::{CancelOutcome, cancelled_message, cancelling_message, refusal};
        let Some(mut run) = self.flows.get_mut(&id) else {
            return Err(StoreError::UnknownRun {
                run: id.to_string(),
                store: "memory".to_owned(),
            });
        };
        let (state, ..) = derived(&run.states);
        if let Some(reason) = refusal(state, run.deployment.is_some(), run.parent_id) {
            return Err(StoreError::CannotCancel {
                name: run.name.clone(),
                reason,
            });
        }
        if state == StateKind::Cancelling {
            return Ok(CancelOutcome::Cancelling);
        }
        let seq = run.states.len() as u32;
        if crate::cancel::is_running_here(id) {
            let cancelling = State::new(StateKind::Cancelling, now, Some(cancelling_message(by)));
            run.states.place(seq, &cancelling);
            return Ok(CancelOutcome::Cancelling);
        }
        let message = format!("{} before it started", cancelled_message(by));
        run.states
            .place(seq, &State::new(StateKind::Cancelled, now, Some(message)));
        Ok(CancelOutcome::Cancelled)
    }

    fn cancel_requests(&self, _: &ProcessInfo) -> Result<Vec<(Uuid, State)>, StoreError> {
        Ok(Vec::new())
    }

    fn end_cancelled(&self, id: Uuid, message: &str, now: Timestamp) -> Result<(), StoreError> {
        if let Some(mut run) = self.flows.get_mut(&id) {
            let seq = run.states.len() as u32;
            run.states.place(
                seq,
                &State::new(StateKind::Cancelled, now, Some(message.to_owned())),
            );
        }
        Ok(())
    }

    fn claim_requests(
        &self,
        deployments: &[String],
        _: &ProcessInfo,
    ) -> Result<Vec<RequestedRun>, StoreError> {
        let mut requests = lock(&self.requests);
        let mut claimed = Vec::new();
        requests.retain(|id| {
            let Some(run) = self.flows.get(id) else {
                return false; // forgotten
            };
            let Some(deployment) = run.deployment.as_ref().filter(|d| deployments.contains(d))
            else {
                return true;
            };
            claimed.push(RequestedRun {
                id: *id,
                name: run.name.clone(),
                deployment: deployment.clone(),
                flow: run.flow.to_string(),
                parameters: run
                    .parameters
                    .as_deref()
                    .and_then(|p| serde_json::from_str(p).ok())
                    .unwrap_or_default(),
                requested_at: run
                    .states
                    .first()
                    .map_or(Timestamp::from_micros(0), |s| s.at),
                attempt: 1,
                history: Vec::new(),
                paused: false,
                prior: Default::default(),
            });
            false
        });
        Ok(claimed)
    }

    /// A memory store is one process's: its limits are `flowcore::limits`'s.
    fn delay_tasks(&self, runs: &[DelayRequest]) -> Result<(), StoreError> {
        let mut delayed = lock(&self.delayed);
        for r in runs {
            let mut states = States::from_states(Vec::new());
            states.push(State::new(
                StateKind::Scheduled,
                r.at,
                Some(DELAYED.to_owned()),
            ));
            delayed.runs.insert(
                r.id,
                MemDelayed {
                    task: r.task,
                    args: r.args.clone(),
                    flow_run_id: r.flow_run_id,
                    states,
                    claims: 0,
                    output: None,
                },
            );
            delayed.waiting.push_back(r.id);
        }
        Ok(())
    }

    fn claim_tasks(
        &self,
        tasks: &[&str],
        limit: usize,
        _: &ProcessInfo,
    ) -> Result<Vec<ClaimedTask>, StoreError> {
        let mut delayed = lock(&self.delayed);
        let Delayed { runs, waiting } = &mut *delayed;
        let mut claimed = Vec::new();
        waiting.retain(|id| {
            let Some(run) = runs.get_mut(id) else {
                return false;
            };
            if claimed.len() >= limit || !tasks.contains(&run.task) {
                return true;
            }
            run.claims += 1;
            claimed.push(ClaimedTask {
                id: *id,
                task: run.task.to_owned(),
                args: run.args.clone(),
                flow_run_id: run.flow_run_id,
                attempt: run.claims,
                history: run.states.iter().cloned().collect(),
            });
            false
        });
        Ok(claimed)
    }

    fn task_results(&self, ids: &[Uuid]) -> Result<Vec<TaskResult>, StoreError> {
        let delayed = lock(&self.delayed);
        Ok(ids
            .iter()
            .filter_map(|id| {
                let run = delayed.runs.get(id)?;
                let state = run.states.current();
                Some(TaskResult {
                    id: *id,
                    state: state.kind,
                    output: run.output.clone(),
                    message: state.message.as_deref().map(str::to_owned),
                })
            })
            .collect())
    }

    fn limits(&self) -> Result<Vec<LimitInfo>, StoreError> {
        Ok(Vec::new())
    }

    fn set_limit(&self, _: &str, _: Option<u32>) -> Result<bool, StoreError> {
        Err(StoreError::Database {
            path: ":memory:".into(),
            detail: "a memory store is this process's alone: limit its task runs with flowcore::limits::set".to_owned(),
        })
    }

    fn take_slot(&self, _: &str, _: Uuid, _: &ProcessInfo) -> Result<Slot, StoreError> {
        Ok(Slot::Unlimited)
    }

    /// Only this process serves a memory store's deployments: every time is its own, and its
    /// runs in flight are its to count.
    fn delete_runs(&self, ids: &[Uuid], me: &ProcessInfo) -> Result<Deleted, StoreError> {
        let mut history = self.history();
        let (mut flows, mut seen) = (Vec::new(), HashSet::new());
        for id in ids {
            if !self.flows.contains_key(id) {
                return Err(StoreError::UnknownRun {
                    run: id.to_string(),
                    store: self.describe(),
                });
            }
            Self::tree(&history, *id, &mut flows, &mut seen);
        }
        if let Some(going) = self.first_going(&flows, me) {
            return Err(going.into());
        }
        Ok(self.delete_flows(&mut history, &flows))
    }

    fn prune(&self, prune: &Prune, me: &ProcessInfo) -> Result<Deleted, StoreError> {
        let states = prune.final_states();
        let mut history = self.history();
        let roots: Vec<Uuid> = history
            .order
            .iter()
            .filter(|id| {
                self.flows.get(id).is_some_and(|f| {
                    let row = f.row(**id);
                    row.parent_id.is_none()
                        && row.created_at < prune.created_before
                        && states.contains(&row.state)
                })
            })
            .take(prune.at_most.unwrap_or(usize::MAX))
            .copied()
            .collect();
        let mut deleted = Deleted::default();
        for root in roots {
            let mut flows = Vec::new();
            Self::tree(&history, root, &mut flows, &mut HashSet::new());
            if self.first_going(&flows, me).is_none() {
                deleted += self.delete_flows(&mut history, &flows);
            }
        }
        Ok(deleted)
    }

    fn claim_tick(&self, name: &str, _: Timestamp, _: &ProcessInfo) -> Result<Tick, StoreError> {
        let paused = lock(&self.deployments)
            .get(name)
            .is_some_and(|d| d.paused_at.is_some());
        Ok(if paused {
            Tick::Paused
        } else {
            Tick::Mine { going: 0 }
        })
    }

    fn workers(&self) -> Result<Vec<WorkerInfo>, StoreError> {
        let deployments: Vec<String> = lock(&self.deployments)
            .values()
            .filter(|d| d.served)
            .map(|d| d.row.name.clone())
            .collect();
        if deployments.is_empty() {
            return Ok(Vec::new());
        }
        let me = ProcessInfo::current();
        let runs_held = self
            .flows
            .iter()
            .filter(|f| f.deployment.is_some() && !f.states.current().is_final())
            .count();
        Ok(vec![WorkerInfo {
            id: me.id,
            pid: me.pid,
            host: me.host.clone(),
            started_at: me.started_at,
            heartbeat_at: Timestamp::wall_now(),
            deployments,
            runs_held,
            tasks: Vec::new(),
            task_runs_held: 0,
        }])
    }

    fn flow_rows(&self, filter: &RunFilter) -> Result<Vec<FlowRow>, StoreError> {
        let order = self.history().order.clone();
        Ok(order
            .iter()
            .rev()
            .filter_map(|id| Some(self.flows.get(id)?.row(*id)))
            .filter(|row| filter.flow.as_ref().is_none_or(|f| *f == row.flow))
            .filter(|row| filter.state.is_none_or(|s| s == row.state))
            .filter(|row| filter.tag.as_ref().is_none_or(|t| row.tags.contains(t)))
            .filter(|row| filter.since.is_none_or(|t| row.created_at >= t))
            .skip(filter.offset)
            .take(filter.limit)
            .collect())
    }

    fn flow_states_since(
        &self,
        since: Timestamp,
    ) -> Result<Vec<(Timestamp, StateKind)>, StoreError> {
        let order = self.history().order.clone();
        Ok(order
            .iter()
            .filter_map(|id| {
                let run = self.flows.get(id)?;
                let (state, created_at, _, _) = derived(&run.states);
                (created_at >= since).then_some((created_at, state))
            })
            .collect())
    }

    fn flow_row(&self, id: Uuid) -> Result<Option<FlowRow>, StoreError> {
        Ok(self.flows.get(&id).map(|r| r.row(id)))
    }

    fn flow_row_named(&self, name: &str) -> Result<Option<FlowRow>, StoreError> {
        let order = self.history().order.clone();
        Ok(order.iter().rev().find_map(|id| {
            let run = self.flows.get(id)?;
            (run.name == name).then(|| run.row(*id))
        }))
    }

    fn child_flows(&self, parent: Uuid) -> Result<Vec<FlowRow>, StoreError> {
        let children = self.history().children.get(&parent).cloned();
        Ok(children
            .into_iter()
            .flatten()
            .filter_map(|id| Some(self.flows.get(&id)?.row(id)))
            .collect())
    }

    fn task_rows(&self, flow_run: Uuid) -> Result<Vec<TaskRow>, StoreError> {
        Ok(self
            .flows
            .get(&flow_run)
            .map(|f| f.task_rows(flow_run))
            .unwrap_or_default())
    }

    fn task_counts(&self, flow_run: Uuid) -> Result<BTreeMap<StateKind, usize>, StoreError> {
        let mut counts = BTreeMap::new();
        if let Some(flow) = self.flows.get(&flow_run) {
            for task in flow.tasks.iter().flatten() {
                if let Some(kind) = task.states.last_kind() {
                    *counts.entry(kind).or_insert(0) += 1;
                }
            }
        }
        Ok(counts)
    }

    fn states(&self, run: Uuid) -> Result<Vec<State>, StoreError> {
        if let Some(flow) = self.flows.get(&run) {
            return Ok(flow.states.to_vec());
        }
        for flow in self.flows.iter() {
            if let Some(task) = flow.tasks.iter().flatten().find(|t| t.id == run) {
                return Ok(task.states.to_vec());
            }
        }
        Ok(Vec::new())
    }

    fn artifacts(
        &self,
        of: crate::artifact::ArtifactsOf<'_>,
    ) -> Result<Vec<crate::artifact::Artifact>, StoreError> {
        use crate::artifact::ArtifactsOf;
        let all = lock(&self.artifacts);
        Ok(match of {
            ArtifactsOf::FlowRun(run) => all
                .iter()
                .filter(|a| a.flow_run_id == Some(run))
                .cloned()
                .collect(),
            ArtifactsOf::Key(key) => all.iter().filter(|a| a.key == key).cloned().collect(),
            ArtifactsOf::LatestOfEachKey => {
                let mut latest: BTreeMap<&str, &crate::artifact::Artifact> = BTreeMap::new();
                for a in all.iter() {
                    latest.insert(&a.key, a);
                }
                latest.into_values().cloned().collect()
            }
        })
    }

    fn input_request(
        &self,
        run: Uuid,
        pause: Option<u32>,
    ) -> Result<Option<crate::pause::InputRequest>, StoreError> {
        let inputs = lock(&self.inputs);
        let Some(pauses) = inputs.get(&run) else {
            return Ok(None);
        };
        Ok(match pause {
            Some(pause) => pauses.get(&pause).cloned(),
            None => pauses.values().next_back().cloned(),
        })
    }

    fn give_input(&self, run: Uuid, input: &str, by: &str) -> Result<bool, StoreError> {
        let mut inputs = lock(&self.inputs);
        match inputs
            .get_mut(&run)
            .and_then(|p| p.values_mut().next_back())
        {
            Some(request) if request.answered_at.is_none() => {
                request.input = Some(input.to_owned());
                request.given_by = Some(by.to_owned());
                request.refused = None;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn answer_input(
        &self,
        run: Uuid,
        pause: u32,
        refused: Option<&str>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        if let Some(request) = lock(&self.inputs)
            .get_mut(&run)
            .and_then(|p| p.get_mut(&pause))
        {
            match refused {
                Some(reason) => {
                    request.refused = Some(reason.to_owned());
                    request.input = None;
                }
                None => request.answered_at = Some(now),
            }
        }
        Ok(())
    }

    fn logs(&self, runs: &[Uuid]) -> Result<Vec<LogLine>, StoreError> {
        Ok(lock(&self.logs)
            .iter()
            .filter(|l| runs.contains(&l.run_id))
            .map(|l| LogLine {
                run_id: l.run_id,
                at: l.at,
                level: l.level.to_owned(),
                message: l.message.clone().into_owned(),
            })
            .collect())
    }

    fn cache_get(&self, key: &str, now: Timestamp) -> Result<Option<String>, StoreError> {
        let mut cache = lock(&self.cache);
        match cache.get(key) {
            Some(v) if v.expires_at > now => Ok(Some(v.json.clone())),
            Some(_) => {
                cache.remove(key);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    fn cache_entries(&self) -> Result<Vec<CacheEntry>, StoreError> {
        let mut entries: Vec<CacheEntry> = lock(&self.cache)
            .iter()
            .map(|(key, v)| CacheEntry {
                task: v.task.clone(),
                key: key.clone(),
                created_at: v.created_at,
                expires_at: v.expires_at,
                size: v.json.len(),
            })
            .collect();
        entries.sort_by(|a, b| (&a.task, a.created_at).cmp(&(&b.task, b.created_at)));
        Ok(entries)
    }

    fn cache_clear(&self, task: Option<&str>) -> Result<usize, StoreError> {
        let mut cache = lock(&self.cache);
        let before = cache.len();
        cache.retain(|_, v| task.is_some_and(|t| t != v.task));
        Ok(before - cache.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CallPosition;

    fn state(kind: StateKind) -> State {
        State::new(kind, Timestamp::from_micros(1), None)
    }

    /// A top-level flow run of flow `f` created in state `kind`.
    fn flow_run_created(id: Uuid, kind: StateKind) -> Event {
        Event::FlowRunCreated {
            id,
            name: "n".into(),
            tags: Vec::new(),
            flow: Cow::Borrowed("f"),
            parent_id: None,
            parameters: None,
            call_seq: None,
            seq: 0,
            state: state(kind),
            resumed: false,
            deployment: None,
        }
    }

    fn task_run_created(id: Uuid, flow: Uuid, call_seq: u32, map_index: Option<u32>) -> Event {
        Event::TaskRunCreated {
            id,
            flow_run_id: Some(flow),
            task: Cow::Borrowed("t"),
            name: None,
            tags: Cow::Borrowed(&[]),
            call_seq: Some(call_seq),
            state: state(StateKind::Pending),
            upstream: Upstreams::default(),
            map_index,
        }
    }

    fn flow_run(backend: &MemoryBackend, tasks: usize) -> Uuid {
        let id = crate::names::new_run_id();
        let mut events = vec![flow_run_created(id, StateKind::Pending)];
        for call_seq in 0..tasks as u32 {
            let task = crate::names::new_run_id();
            events.push(task_run_created(task, id, call_seq, None));
            let position = CallPosition {
                flow_run_id: id,
                call_seq,
            };
            events.push(transition(
                RunKind::Task,
                task,
                Some(position),
                StateKind::Completed,
            ));
        }
        events.push(transition(RunKind::Flow, id, None, StateKind::Completed));
        backend.write(&events, &ProcessInfo::current()).unwrap();
        id
    }

    fn transition(kind: RunKind, id: Uuid, position: Option<CallPosition>, to: StateKind) -> Event {
        Event::Transition {
            kind,
            id,
            position,
            seq: 1,
            state: state(to),
            attempts: 1,
            cache: CacheStatus::Off,
            output: None,
        }
    }

    /// Task runs are kept at their call positions whatever order they come in: after a gap (a
    /// subflow call's position), into the gap, and again at a position already taken.
    #[test]
    fn task_runs_are_kept_by_position_in_any_order_and_counted_once() {
        let backend = MemoryBackend::default();
        let flow = crate::names::new_run_id();
        let created = |call_seq: u32| {
            let id = Uuid::from_u64_pair(1, u64::from(call_seq));
            task_run_created(id, flow, call_seq, Some(call_seq))
        };
        let events = [
            flow_run_created(flow, StateKind::Running),
            created(0),
            created(2),
            created(2),
            created(1),
        ];
        backend.write(&events, &ProcessInfo::current()).unwrap();
        let run = backend.flows.get(&flow).unwrap();
        assert_eq!(run.task_runs, 3);
        let rows = run.task_rows(flow);
        let positions: Vec<_> = rows.iter().map(|r| (r.call_seq, r.map_index)).collect();
        assert_eq!(
            positions,
            [(Some(0), Some(0)), (Some(1), Some(1)), (Some(2), Some(2))]
        );
    }

    /// A flow of a million task runs keeps a million of these, their one edge in place
    /// (`record.rs`: `one_edge_is_kept_in_place`).
    #[test]
    fn a_task_run_with_one_edge_takes_128_bytes() {
        assert_eq!(size_of::<MemTask>(), 128);
    }

    /// A flow run is listed from its creation on, the first one included, while the creation
    /// order is trimmed of forgotten runs (once, a flow run being created was trimmed away and
    /// never listed).
    #[test]
    fn a_flow_run_is_listed_from_its_creation_while_the_order_is_trimmed() {
        let backend = MemoryBackend::default();
        let going = |backend: &MemoryBackend| {
            let id = crate::names::new_run_id();
            let created = flow_run_created(id, StateKind::Running);
            backend.write(&[created], &ProcessInfo::current()).unwrap();
            id
        };
        let listed = |backend: &MemoryBackend| -> Vec<Uuid> {
            let filter = RunFilter {
                limit: usize::MAX,
                ..RunFilter::default()
            };
            backend
                .flow_rows(&filter)
                .unwrap()
                .iter()
                .map(|r| r.id)
                .collect()
        };
        let first = going(&backend);
        assert_eq!(listed(&backend), [first]);
        for _ in 0..3 * KEEP_FLOW_RUNS {
            flow_run(&backend, 0);
        }
        let last = going(&backend);
        let now = listed(&backend);
        assert_eq!(now[0], last, "the newest first");
        assert!(now.contains(&first), "a run still going is never forgotten");
        assert!(backend.history().order.len() <= 2 * backend.flows.len() + 1024);
    }

    #[test]
    fn finished_flow_runs_beyond_the_limits_are_forgotten() {
        let backend = MemoryBackend::default();
        let first = flow_run(&backend, 1);
        for _ in 0..KEEP_FLOW_RUNS {
            flow_run(&backend, 1);
        }
        assert!(backend.flow_row(first).unwrap().is_none());
        assert_eq!(backend.flows.len(), KEEP_FLOW_RUNS);

        // One big run pushes out the others, but is itself kept, with its task runs.
        let big = flow_run(&backend, KEEP_TASK_RUNS + 1);
        assert_eq!(backend.flows.len(), 1);
        assert_eq!(backend.task_rows(big).unwrap().len(), KEEP_TASK_RUNS + 1);
        assert_eq!(
            backend.task_counts(big).unwrap()[&StateKind::Completed],
            KEEP_TASK_RUNS + 1
        );

        // Until the next flow run begins: then only that one is kept.
        let next = flow_run(&backend, 1);
        assert!(backend.flow_row(big).unwrap().is_none());
        assert_eq!(backend.flows.len(), 1);
        assert_eq!(backend.task_rows(next).unwrap().len(), 1);
    }
}
