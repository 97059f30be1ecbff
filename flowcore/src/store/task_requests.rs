//! Task runs delayed for a worker (`.delay()`): what is recorded when one is delayed, what a
//! worker that claims one gets, and what the caller waiting for it reads back.

use uuid::Uuid;

use crate::clock::Timestamp;
use crate::state::{State, StateKind};

/// How many times a delayed task run is taken over after its worker died, before it is left
/// `Crashed`: as for a deployment's runs (see `Deployment::crash_retries`).
pub(crate) const TASK_CRASH_RETRIES: u32 = 1;

/// What `Scheduled` says while a delayed task run waits for a worker.
pub(crate) const DELAYED: &str = "delayed: waiting for a worker serving the task";

/// A task run to record `Scheduled`, for any process serving its task to claim.
#[derive(Clone, Debug)]
pub(crate) struct DelayRequest {
    pub id: Uuid,
    pub task: &'static str,
    /// The call's arguments, a JSON array.
    pub args: String,
    /// The name `task_run_name` gave it.
    pub name: Option<String>,
    /// The task's tags, then those of the flow run it was delayed in.
    pub tags: Vec<std::borrow::Cow<'static, str>>,
    /// The flow run it was delayed in, if any: it is listed among that run's task runs.
    pub flow_run_id: Option<Uuid>,
    pub at: Timestamp,
}

/// A delayed task run claimed by this process, to run now.
#[derive(Clone, Debug)]
pub(crate) struct ClaimedTask {
    pub id: Uuid,
    pub task: String,
    pub args: String,
    pub flow_run_id: Option<Uuid>,
    /// Which claim this is: 2 and more for a run taken over from a worker that died.
    pub attempt: u32,
    /// The states recorded so far (its `Scheduled`, and those of earlier attempts): the run's
    /// new states follow them.
    pub history: Vec<State>,
}

/// Where a delayed task run is, for whoever waits for it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TaskResult {
    pub id: Uuid,
    pub state: StateKind,
    /// Its output as JSON, for a run that completed (or was a cache hit).
    pub output: Option<String>,
    /// The message of its final state.
    pub message: Option<String>,
}
