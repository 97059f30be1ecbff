//! What can be read back from a store, and how records are put together from its rows. The
//! backends only fetch rows; the assembly here is shared, so every backend answers alike.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use uuid::Uuid;

use crate::clock::Timestamp;
use crate::hooks::RunKind;
use crate::record::{FlowRunRecord, History, TaskRunRecord};
use crate::state::StateKind;
use crate::store::StoreError;
use crate::store::backend::Backend;
use crate::store::event::{FlowRow, TaskRow};

/// Which flow runs to list: `flowcore runs ls --flow etl --state Failed --limit 20`.
#[derive(Clone, Debug)]
pub struct RunFilter {
    /// Only runs of this flow.
    pub flow: Option<String>,
    /// Only runs in this state.
    pub state: Option<StateKind>,
    /// Only runs carrying this tag (`#[flow(tags = …)]`).
    pub tag: Option<String>,
    /// Only runs created at or after this time.
    pub since: Option<Timestamp>,
    /// At most this many, newest first.
    pub limit: usize,
    /// After skipping this many of the newest: the pages of a long list.
    pub offset: usize,
}

impl Default for RunFilter {
    fn default() -> Self {
        RunFilter {
            flow: None,
            state: None,
            tag: None,
            since: None,
            limit: 20,
            offset: 0,
        }
    }
}

/// One line of `flowcore runs ls`: a flow run without its task runs, with their counts.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct FlowRunSummary {
    /// The flow run's id.
    pub id: Uuid,
    /// `"enchanted-peacock"`.
    pub name: String,
    /// The flow's name.
    pub flow: String,
    /// Its tags: its flow's and its parent flow run's.
    pub tags: Vec<String>,
    /// For a subflow, the run that called it.
    pub parent_id: Option<Uuid>,
    /// And that run's name.
    pub parent_name: Option<String>,
    /// The current state.
    pub state: StateKind,
    /// When the run was created.
    pub created_at: Timestamp,
    /// When its first attempt started.
    pub started_at: Option<Timestamp>,
    /// When it reached its final state.
    pub ended_at: Option<Timestamp>,
    /// The error of a failed run.
    pub error: Option<String>,
    /// The deployment it is a run of, if any.
    pub deployment: Option<String>,
    /// How many of its task runs are in each state.
    pub task_runs: BTreeMap<StateKind, usize>,
}

impl FlowRunSummary {
    /// From the first attempt's start to the final state.
    pub fn duration(&self) -> Option<Duration> {
        Some(self.ended_at?.duration_since(self.started_at?))
    }
}

/// A cached result as `flowcore cache ls` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CacheEntry {
    /// The task whose result it is.
    pub task: String,
    /// The full key: task name and argument hash (or `cache_key` result).
    pub key: String,
    /// When it was stored.
    pub created_at: Timestamp,
    /// When it stops being used.
    pub expires_at: Timestamp,
    /// The size of the stored JSON, in bytes.
    pub size: usize,
}

/// A log line of a run, as it was printed.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct LogLine {
    /// The task run or flow run it was written in.
    pub run_id: Uuid,
    /// When.
    pub at: Timestamp,
    /// `"INFO"`, `"WARN"`, …
    pub level: String,
    /// The text.
    pub message: String,
}

/// An earlier run at one call position of a flow run, for resuming it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PriorRun {
    pub kind: RunKind,
    pub id: Uuid,
    /// The task's or flow's name.
    pub name: String,
    pub state: StateKind,
    pub output: Option<String>,
}

/// Where a resumed flow run picks up: the run as the store has it.
pub(crate) struct ResumePoint {
    pub id: Uuid,
    pub name: String,
    pub flow: String,
    pub history: Vec<crate::state::State>,
    pub attempts: u32,
    pub prior: BTreeMap<u32, PriorRun>,
}

/// The run `id` as a resume point, if it ended in a way that can be resumed.
pub(crate) fn resume_point(backend: &dyn Backend, id: Uuid) -> Result<ResumePoint, StoreError> {
    let row = backend
        .flow_row(id)?
        .ok_or_else(|| StoreError::UnknownRun {
            run: id.to_string(),
            store: backend.describe(),
        })?;
    let refuse = |reason: String| StoreError::CannotResume {
        name: row.name.clone(),
        reason,
    };
    match row.state {
        StateKind::Failed | StateKind::Crashed | StateKind::Cancelled | StateKind::TimedOut => {}
        StateKind::Completed | StateKind::Cached => {
            return Err(refuse(
                "it completed; there is nothing to resume".to_owned(),
            ));
        }
        state => {
            return Err(refuse(format!(
                "it is still {state}; if its process died, any flowcore command (`flowcore runs ls`) marks it Crashed"
            )));
        }
    }
    Ok(ResumePoint {
        history: backend.states(id)?,
        prior: prior_runs(backend, id)?,
        id,
        attempts: row.attempts,
        name: row.name,
        flow: row.flow,
    })
}

pub(crate) fn summary(backend: &dyn Backend, row: FlowRow) -> Result<FlowRunSummary, StoreError> {
    let parent_name = match row.parent_id {
        Some(parent) => backend.flow_row(parent)?.map(|p| p.name),
        None => None,
    };
    Ok(FlowRunSummary {
        parent_name,
        task_runs: backend.task_counts(row.id)?,
        id: row.id,
        name: row.name,
        flow: row.flow,
        tags: row.tags,
        parent_id: row.parent_id,
        state: row.state,
        created_at: row.created_at,
        started_at: row.started_at,
        ended_at: row.ended_at,
        error: row.error,
        deployment: row.deployment,
    })
}

/// The whole record of a flow run: its history, its task runs and its subflow runs.
pub(crate) fn flow_record(
    backend: &dyn Backend,
    row: FlowRow,
) -> Result<FlowRunRecord, StoreError> {
    // The run's states first: each read sees what was committed by then, so a run read as
    // ended has every task run and subflow run it had when it ended (read after its states, a
    // run read mid-flight could show ended without the task runs it had by then).
    let history = History::from_states(backend.states(row.id)?);
    let mut task_runs = Vec::new();
    for task in backend.task_rows(row.id)? {
        task_runs.push(task_record(backend, task)?);
    }
    let mut subflow_runs = Vec::new();
    for child in backend.child_flows(row.id)? {
        subflow_runs.push(flow_record(backend, child)?);
    }
    Ok(FlowRunRecord {
        history,
        id: row.id,
        name: row.name,
        flow: Cow::Owned(row.flow),
        tags: row.tags,
        parent_id: row.parent_id,
        attempts: row.attempts,
        task_runs,
        subflow_runs,
        not_recorded: None,
    })
}

fn task_record(backend: &dyn Backend, row: TaskRow) -> Result<TaskRunRecord, StoreError> {
    Ok(TaskRunRecord {
        history: History::from_states(backend.states(row.id)?),
        id: row.id,
        task: Cow::Owned(row.task),
        given_name: row.name,
        flow_run_id: row.flow_run_id,
        tags: Cow::Owned(row.tags.into_iter().map(Cow::Owned).collect()),
        attempts: row.attempts,
        cache: row.cache,
        upstream: row.upstream.into(),
        map_index: row.map_index,
    })
}

/// The task runs and subflow runs of a flow run by call position; the latest at each.
pub(crate) fn prior_runs(
    backend: &dyn Backend,
    flow_run: Uuid,
) -> Result<BTreeMap<u32, PriorRun>, StoreError> {
    let mut prior = BTreeMap::new();
    let tasks = backend.task_rows(flow_run)?.into_iter().filter_map(|t| {
        Some((
            t.call_seq?,
            t.created_at,
            PriorRun {
                kind: RunKind::Task,
                id: t.id,
                name: t.task,
                state: t.state,
                output: t.output,
            },
        ))
    });
    let flows = backend.child_flows(flow_run)?.into_iter().filter_map(|f| {
        Some((
            f.call_seq?,
            f.created_at,
            PriorRun {
                kind: RunKind::Flow,
                id: f.id,
                name: f.flow,
                state: f.state,
                output: f.output,
            },
        ))
    });
    let mut all: Vec<_> = tasks.chain(flows).collect();
    all.sort_by_key(|(seq, created, _)| (*seq, *created));
    for (seq, _, run) in all {
        prior.insert(seq, run);
    }
    Ok(prior)
}
