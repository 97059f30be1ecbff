//! `on_crashed`: the hooks fired for runs this process marks `Crashed` (runs of processes that
//! died). A crashed run's own process is gone, so its hooks can only be those this process
//! knows: the `#[task(on_crashed = f)]` / `#[flow(on_crashed = f)]` of tasks and flows it has
//! called since it started, registered at their first call, and its [`RunHooks`].
//!
//! [`RunHooks`]: crate::RunHooks

use std::borrow::Cow;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use uuid::Uuid;

use crate::hooks::{Hook, RunInfo, RunKind, guard};
use crate::run_hooks::ActiveHooks;
use crate::state::{State, StateKind};

/// The `on_crashed` hooks of the tasks and flows called so far, by kind and name.
static REGISTERED: Mutex<Vec<(RunKind, &'static str, &'static [Hook])>> = Mutex::new(Vec::new());

/// Whether a task's or flow's `on_crashed` hooks are registered: a spec's, so that a call
/// takes the registry's lock once per task, not once per call.
#[doc(hidden)]
#[derive(Debug)]
pub struct Registration(AtomicBool);

impl Registration {
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Registration(AtomicBool::new(false))
    }

    pub(crate) fn register(&self, kind: RunKind, name: &'static str, hooks: &'static [Hook]) {
        if hooks.is_empty() || self.0.load(Ordering::Relaxed) {
            return;
        }
        if !self.0.swap(true, Ordering::Relaxed) {
            lock().push((kind, name, hooks));
        }
    }
}

fn lock() -> std::sync::MutexGuard<'static, Vec<(RunKind, &'static str, &'static [Hook])>> {
    REGISTERED.lock().unwrap_or_else(|e| e.into_inner())
}

/// A run that this process has just marked `Crashed`, as the store holds it.
#[derive(Clone, Debug)]
pub(crate) struct CrashedRun {
    pub kind: RunKind,
    pub id: Uuid,
    /// The task's or the flow's name.
    pub label: String,
    /// A flow run's name, or the name `task_run_name` gave a task run.
    pub name: Option<String>,
    /// A task run's flow run, a flow run's parent.
    pub parent: Option<Uuid>,
    pub tags: Vec<Cow<'static, str>>,
    /// Every state, the last being `Crashed`.
    pub history: Vec<State>,
}

/// Fires the `on_crashed` hooks this process knows for each run.
pub(crate) fn fire(runs: &[CrashedRun]) {
    if runs.is_empty() {
        return;
    }
    let active = ActiveHooks::current();
    let registered = lock().clone();
    if active.is_empty() && registered.is_empty() {
        return;
    }
    for run in runs {
        // A run that was being cancelled ends Cancelled instead: no crash to tell.
        let Some(state) = run.history.last().filter(|s| s.kind == StateKind::Crashed) else {
            continue;
        };
        let info = RunInfo {
            kind: run.kind,
            id: run.id,
            label: &run.label,
            run_name: run.name.as_deref(),
            flow_run_id: run.parent,
            attempt: 0,
            history: &run.history,
            tags: &run.tags,
        };
        for (kind, name, hooks) in &registered {
            if *kind == run.kind && *name == run.label {
                for hook in *hooks {
                    guard(|| hook(&info, state));
                }
            }
        }
        active.fire_crashed(&info, state);
    }
}
