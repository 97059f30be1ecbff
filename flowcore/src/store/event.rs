//! What runs tell the store, and the rows a backend keeps.

use std::borrow::Cow;

use uuid::Uuid;

use crate::clock::Timestamp;
use crate::hooks::RunKind;
use crate::record::{CacheStatus, Upstream, Upstreams};
use crate::state::{State, StateKind};
use crate::store::{ShortText, StoreError};

/// One thing that happened, sent to the store's writer. Runs send these as they go; the
/// writer applies them in batches, one transaction each.
pub(crate) enum Event {
    /// A flow run began (or was resumed: then the row exists and only its state changes).
    FlowRunCreated {
        id: Uuid,
        name: String,
        tags: Vec<Cow<'static, str>>,
        flow: Cow<'static, str>,
        parent_id: Option<Uuid>,
        parameters: Option<String>,
        call_seq: Option<u32>,
        /// The first state recorded by this process, with its position in the history.
        seq: u32,
        state: State,
        resumed: bool,
        /// The deployment it is a run of.
        deployment: Option<String>,
    },
    /// A task run began.
    TaskRunCreated {
        id: Uuid,
        flow_run_id: Option<Uuid>,
        task: Cow<'static, str>,
        /// The name `task_run_name` gave it.
        name: Option<String>,
        tags: Cow<'static, [Cow<'static, str>]>,
        call_seq: Option<u32>,
        state: State,
        upstream: Upstreams,
        map_index: Option<u32>,
    },
    /// A run entered a new state; `seq` is its position in the run's history.
    Transition {
        kind: RunKind,
        id: Uuid,
        /// For a task run inside a flow: where it was called.
        position: Option<CallPosition>,
        seq: u32,
        state: State,
        attempts: u32,
        cache: CacheStatus,
        /// A task run's output, as JSON, with the final state it ends in (what
        /// a separate event would carry: one event fewer per task run).
        output: Option<ShortText>,
    },
    /// A task run that held slots of store-wide limits ended: they are free again. Sent after
    /// its final state, so that the slots are given back with it or after it, never before.
    ReleaseSlots {
        task_run: Uuid,
    },
    /// A deployment's flow run paused for input whose process stops serving: it is left
    /// `Paused` and no process's, for the next process that serves the deployment to take it
    /// up (`flowcore::pause`). Sent after its `Paused` state.
    ReleasePaused {
        flow_run_id: Uuid,
    },
    /// A completed flow run's output, as JSON, so a resumed parent flow run can reuse it. A
    /// task run's comes with its final state instead ([`Event::Transition`]'s `output`).
    FlowOutput {
        id: Uuid,
        json: String,
    },
    /// A log line written inside a run.
    Log {
        /// Its own key, made when it is written: a batch tried again adds it once.
        id: Uuid,
        run_id: Uuid,
        at: Timestamp,
        level: &'static str,
        /// Borrowed when it is one of flowcore's own fixed lines (a task run's "Finished in
        /// state Completed()"), which a store then keeps without a copy of its own.
        message: Cow<'static, str>,
    },
    /// A flow run paused for input (`flowcore::pause`): what it asks, and the schema of the
    /// answer, by the pause's position among the run's pauses (from 0).
    InputAsked {
        flow_run_id: Uuid,
        pause: u32,
        question: String,
        schema: String,
        at: Timestamp,
    },
    /// An artifact a run made (`flowcore::artifact`).
    Artifact(Box<crate::artifact::Artifact>),
    CachePut {
        key: String,
        task: String,
        json: String,
        created_at: Timestamp,
        expires_at: Timestamp,
    },
    Heartbeat(Timestamp),
    /// When a served deployment runs next (`None`: no more scheduled runs).
    NextRun {
        deployment: String,
        at: Option<Timestamp>,
    },
    /// Answered once everything sent before it is committed.
    Flush(Committed),
    /// Answered once everything sent before it is committed and the store's log is moved into
    /// its file ([`Backend::checkpoint`](crate::store::backend::Backend::checkpoint)): for a
    /// process about to exit. Sent for SQLite stores only, which have a log.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    Checkpoint(Committed),
}

/// Who waits for a flush, and how it is told.
pub(crate) enum Committed {
    /// An async caller.
    Async(tokio::sync::oneshot::Sender<Result<(), StoreError>>),
    /// A thread that blocks, with a timeout.
    Blocking(std::sync::mpsc::SyncSender<Result<(), StoreError>>),
}

impl Committed {
    pub(crate) fn send(self, result: Result<(), StoreError>) {
        // The waiter may have stopped waiting: then nobody needs the answer.
        let _ = match self {
            Committed::Async(done) => done.send(result).map_err(drop),
            Committed::Blocking(done) => done.send(result).map_err(drop),
        };
    }
}

/// Where a task run inside a flow was called: the flow run, and the call's position among
/// that flow run's calls (unique within it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CallPosition {
    pub flow_run_id: Uuid,
    pub call_seq: u32,
}

/// A flow run as a backend keeps it.
#[derive(Clone, Debug)]
pub(crate) struct FlowRow {
    pub id: Uuid,
    pub name: String,
    pub tags: Vec<String>,
    pub flow: String,
    pub parent_id: Option<Uuid>,
    pub parameters: Option<String>,
    pub state: StateKind,
    pub attempts: u32,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub error: Option<String>,
    pub call_seq: Option<u32>,
    pub output: Option<String>,
    pub deployment: Option<String>,
}

/// A task run as a backend keeps it.
#[derive(Clone, Debug)]
pub(crate) struct TaskRow {
    pub id: Uuid,
    pub flow_run_id: Option<Uuid>,
    pub task: String,
    /// The name `task_run_name` gave it.
    pub name: Option<String>,
    pub tags: Vec<String>,
    pub state: StateKind,
    pub attempts: u32,
    pub cache: CacheStatus,
    pub created_at: Timestamp,
    pub call_seq: Option<u32>,
    pub output: Option<String>,
    pub upstream: Vec<Upstream>,
    pub map_index: Option<u32>,
}

/// How a transition changes a run's row: its current state and the derived columns.
pub(crate) struct RowUpdate {
    pub state: StateKind,
    pub attempts: u32,
    pub cache: CacheStatus,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub error: Option<String>,
}

impl RowUpdate {
    pub(crate) fn from_state(state: &State, attempts: u32, cache: CacheStatus) -> Self {
        RowUpdate {
            state: state.kind,
            attempts,
            cache,
            started_at: (state.kind == StateKind::Running).then_some(state.at),
            ended_at: state.is_final().then_some(state.at),
            error: (state.is_failed() || state.kind == StateKind::Crashed)
                .then(|| state.message().to_owned()),
        }
    }

    /// A later transition of the same run in the same batch: the latest state wins, the
    /// first start is kept.
    pub(crate) fn merge(&mut self, later: RowUpdate) {
        let started_at = self.started_at.or(later.started_at);
        *self = RowUpdate {
            started_at,
            ..later
        };
    }
}

/// The name of a cache status as stored.
pub(crate) fn cache_name(c: CacheStatus) -> &'static str {
    match c {
        CacheStatus::Off => "off",
        other => other.as_str(),
    }
}

pub(crate) fn parse_cache(s: &str) -> CacheStatus {
    match s {
        "miss" => CacheStatus::Miss,
        "hit" => CacheStatus::Hit,
        "refreshed" => CacheStatus::Refreshed,
        "resumed" => CacheStatus::Resumed,
        _ => CacheStatus::Off,
    }
}
