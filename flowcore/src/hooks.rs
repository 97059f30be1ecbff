//! State hooks: user functions called when a run changes state.

use std::borrow::Cow;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::names::TaskRunName;
use crate::panic::panic_message;
use crate::state::{State, StateKind};

/// Called on every state transition with the run, its old state and its new state, like the
/// `state_handlers` of Prefect 1. Attach with `#[task(on_state = f)]` or `#[flow(on_state = f)]`.
///
/// ```
/// use flowcore::{RunInfo, State};
///
/// fn alert_failed(run: &RunInfo, _old: &State, new: &State) {
///     if new.is_failed() {
///         println!("Failed! {} {}", run.name(), new.message());
///     }
/// }
/// let _hook: flowcore::StateHook = alert_failed;
/// ```
pub type StateHook = fn(&RunInfo<'_>, &State, &State);

/// Called once when a run reaches a final state: `on_failure` for `Failed` and `TimedOut`,
/// `on_completion` for `Completed` and `Cached`, `on_cancellation` for `Cancelled`,
/// `on_crashed` for `Crashed` (see [`RunHooks::on_crashed`](crate::RunHooks::on_crashed) for
/// when that one can fire).
pub type Hook = fn(&RunInfo<'_>, &State);

/// The hooks of one task or flow, as the macros write them.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct Hooks {
    pub on_state: &'static [StateHook],
    pub on_failure: &'static [Hook],
    pub on_completion: &'static [Hook],
    pub on_cancellation: &'static [Hook],
    /// Fired by the process that marks a run of this task or flow Crashed, never by the run.
    pub on_crashed: &'static [Hook],
}

impl Hooks {
    pub const NONE: Hooks = Hooks {
        on_state: &[],
        on_failure: &[],
        on_completion: &[],
        on_cancellation: &[],
        on_crashed: &[],
    };

    pub(crate) fn is_empty(&self) -> bool {
        self.on_state.is_empty()
            && self.on_failure.is_empty()
            && self.on_completion.is_empty()
            && self.on_cancellation.is_empty()
    }

    /// Calls the hooks for the run's latest transition. A panicking hook is logged and
    /// skipped: a bug in an alert must not corrupt the run's record.
    pub(crate) fn fire(&self, run: &RunInfo<'_>) {
        let [.., old, new] = run.history else {
            return; // Pending alone: no transition yet.
        };
        for hook in self.on_state {
            guard(|| hook(run, old, new));
        }
        if new.is_failed() {
            for hook in self.on_failure {
                guard(|| hook(run, new));
            }
        }
        if new.is_completed() {
            for hook in self.on_completion {
                guard(|| hook(run, new));
            }
        }
        if new.kind == StateKind::Cancelled {
            for hook in self.on_cancellation {
                guard(|| hook(run, new));
            }
        }
    }
}

pub(crate) fn guard(hook: impl FnOnce()) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(hook)) {
        tracing::error!(target: "flowcore", "A state hook panicked: {}", panic_message(&*payload));
    }
}

/// Whether a run is a task run or a flow run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RunKind {
    /// A run of a `#[task]`.
    Task,
    /// A run of a `#[flow]`.
    Flow,
}

/// What a hook learns about the run whose state changed.
#[derive(Clone, Copy, Debug)]
pub struct RunInfo<'a> {
    pub(crate) kind: RunKind,
    pub(crate) id: Uuid,
    /// The task's or the flow's name.
    pub(crate) label: &'a str,
    /// A flow run's name, or the name `task_run_name` gave a task run; other task runs
    /// derive theirs from the label and id.
    pub(crate) run_name: Option<&'a str>,
    pub(crate) flow_run_id: Option<Uuid>,
    pub(crate) attempt: u32,
    pub(crate) history: &'a [State],
    pub(crate) tags: &'a [Cow<'static, str>],
}

impl<'a> RunInfo<'a> {
    /// Task run or flow run.
    pub fn kind(&self) -> RunKind {
        self.kind
    }

    /// The run's id.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The run's name: `"extract-a8e"` for a task run, `"enchanted-peacock"` for a flow run,
    /// or the one `task_run_name` / `flow_run_name` gave it.
    pub fn name(&self) -> impl fmt::Display + 'a {
        RunNameDisplay(match (self.kind, self.run_name) {
            (RunKind::Flow, Some(name)) => Err(name),
            _ => Ok(TaskRunName::new(self.label, self.id, self.run_name)),
        })
    }

    /// The name of the task or flow this is a run of.
    pub fn task_or_flow_name(&self) -> &'a str {
        self.label
    }

    /// For a task run, the id of the flow run it belongs to; for a flow run, its parent's.
    pub fn flow_run_id(&self) -> Option<Uuid> {
        self.flow_run_id
    }

    /// The current attempt, from 1; 0 before the first.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Every state so far, oldest first; the last is the new state.
    pub fn history(&self) -> &'a [State] {
        self.history
    }

    /// The run's tags: a flow run's from `#[flow(tags = …)]` (and its parent flow run's), a
    /// task run's from `#[task(tags = …)]` and its flow run's.
    pub fn tags(&self) -> &'a [Cow<'static, str>] {
        self.tags
    }
}

struct RunNameDisplay<'a>(Result<TaskRunName<'a>, &'a str>);

impl fmt::Display for RunNameDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Ok(task) => task.fmt(f),
            Err(flow) => f.write_str(flow),
        }
    }
}
