//! Hooks registered at run time: closures that hold state built in `main` (an alert client, a
//! channel, a counter), for every run of the process or of a scope, beside the `fn` pointers of
//! `#[task(on_failure = f)]`.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use crate::hooks::{RunInfo, guard};
use crate::state::{State, StateKind};

type StateFn = Arc<dyn Fn(&RunInfo<'_>, &State, &State) + Send + Sync>;
type FinalFn = Arc<dyn Fn(&RunInfo<'_>, &State) + Send + Sync>;

/// Hooks that are closures, for every task run and flow run of the process
/// ([`install`](Self::install)) or of the runs called inside a future
/// ([`scope`](Self::scope)). Each is called as the hooks of `#[task(on_state = f)]` are: after
/// the state is recorded, a panic in it logged and ignored. Check
/// [`RunInfo::kind`](crate::RunInfo::kind) and
/// [`RunInfo::task_or_flow_name`](crate::RunInfo::task_or_flow_name) to pick runs.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use flowcore::{RunHooks, RunKind, flow, task};
///
/// #[task]
/// async fn fails() -> Result<(), String> {
///     Err("disk full".into())
/// }
///
/// #[flow]
/// async fn nightly() -> Result<(), String> {
///     fails().await
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # let store = flowcore::Store::memory();
/// // Built in `main`, moved into the hook: what a `fn` pointer cannot hold.
/// let alerts = Arc::new(AtomicUsize::new(0));
/// let counted = Arc::clone(&alerts);
/// let hooks = RunHooks::new().on_failure(move |run, state| {
///     if run.kind() == RunKind::Flow {
///         counted.fetch_add(1, Ordering::SeqCst);
///         eprintln!("flow run {} failed: {}", run.name(), state.message());
///     }
/// });
/// let _ = store.scope(hooks.scope(nightly())).await;
/// assert_eq!(alerts.load(Ordering::SeqCst), 1);
/// # }
/// ```
#[derive(Clone, Default)]
pub struct RunHooks {
    on_state: Vec<StateFn>,
    on_failure: Vec<FinalFn>,
    on_completion: Vec<FinalFn>,
    on_cancellation: Vec<FinalFn>,
    on_crashed: Vec<FinalFn>,
}

impl std::fmt::Debug for RunHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunHooks")
            .field("on_state", &self.on_state.len())
            .field("on_failure", &self.on_failure.len())
            .field("on_completion", &self.on_completion.len())
            .field("on_cancellation", &self.on_cancellation.len())
            .field("on_crashed", &self.on_crashed.len())
            .finish()
    }
}

tokio::task_local! {
    static SCOPED: Arc<RunHooks>;
}

/// Whether any hooks were installed: until then, a run reads no lock to find them.
static ANY_INSTALLED: AtomicBool = AtomicBool::new(false);
static INSTALLED: RwLock<Option<Arc<RunHooks>>> = RwLock::new(None);

impl RunHooks {
    /// No hooks yet.
    pub fn new() -> Self {
        RunHooks::default()
    }

    /// Called on every state transition, with the old state and the new.
    pub fn on_state(
        mut self,
        hook: impl Fn(&RunInfo<'_>, &State, &State) + Send + Sync + 'static,
    ) -> Self {
        self.on_state.push(Arc::new(hook));
        self
    }

    /// Called once when a run ends `Failed` or `TimedOut`.
    pub fn on_failure(
        mut self,
        hook: impl Fn(&RunInfo<'_>, &State) + Send + Sync + 'static,
    ) -> Self {
        self.on_failure.push(Arc::new(hook));
        self
    }

    /// Called once when a run ends `Completed` or `Cached`.
    pub fn on_completion(
        mut self,
        hook: impl Fn(&RunInfo<'_>, &State) + Send + Sync + 'static,
    ) -> Self {
        self.on_completion.push(Arc::new(hook));
        self
    }

    /// Called once when a run ends `Cancelled`: its future was dropped (a flow timeout,
    /// `select!`, Ctrl-C), or it was cancelled from outside (`flowcore runs cancel`).
    pub fn on_cancellation(
        mut self,
        hook: impl Fn(&RunInfo<'_>, &State) + Send + Sync + 'static,
    ) -> Self {
        self.on_cancellation.push(Arc::new(hook));
        self
    }

    /// Called when this process marks a run `Crashed`: a run of another process that died
    /// (its `kill -9`, its host lost), never a run of this one. The hook sees the run as
    /// the store has it: its name, tags and states, the last being `Crashed`.
    ///
    /// When it can fire: a process marks the runs of dead processes when it opens a store to
    /// record runs (install these hooks before that: before `Store::install`, or before the
    /// first run where the default store is opened), and every few seconds while it serves
    /// deployments or background tasks, which is how a worker's crash is found by the others.
    /// A `#[task(on_crashed = f)]` or `#[flow(on_crashed = f)]` hook fires the same way, in a
    /// process that has called that task or flow since it started.
    ///
    /// When it cannot: when the run is marked by `flowcore` commands or the dashboard (they
    /// run none of your code), by a process without these hooks, or by nobody (no process
    /// opens the store again); and for a run whose worker is alive but cut off, which is
    /// fenced and taken over, not crashed, until its lease expires.
    pub fn on_crashed(
        mut self,
        hook: impl Fn(&RunInfo<'_>, &State) + Send + Sync + 'static,
    ) -> Self {
        self.on_crashed.push(Arc::new(hook));
        self
    }

    /// Adds these hooks to every run of the process from now on, whatever its scope; hooks
    /// installed before stay.
    pub fn install(self) {
        let mut installed = INSTALLED.write().unwrap_or_else(|e| e.into_inner());
        let combined = match installed.take() {
            Some(before) => before.joined(&self),
            None => self,
        };
        *installed = Some(Arc::new(combined));
        ANY_INSTALLED.store(true, Ordering::Release);
    }

    /// Runs `fut` with these hooks on every run it calls (and their task runs and subflow
    /// runs), in addition to installed hooks and those of enclosing scopes.
    pub fn scope<F: Future>(self, fut: F) -> impl Future<Output = F::Output> {
        let hooks = match SCOPED.try_with(Arc::clone) {
            Ok(outer) => outer.joined(&self),
            Err(_) => self,
        };
        SCOPED.scope(Arc::new(hooks), fut)
    }

    fn joined(&self, more: &RunHooks) -> RunHooks {
        let join = |a: &[FinalFn], b: &[FinalFn]| a.iter().chain(b).cloned().collect();
        RunHooks {
            on_state: self
                .on_state
                .iter()
                .chain(&more.on_state)
                .cloned()
                .collect(),
            on_failure: join(&self.on_failure, &more.on_failure),
            on_completion: join(&self.on_completion, &more.on_completion),
            on_cancellation: join(&self.on_cancellation, &more.on_cancellation),
            on_crashed: join(&self.on_crashed, &more.on_crashed),
        }
    }

    fn fire(&self, run: &RunInfo<'_>) {
        let [.., old, new] = run.history else {
            return;
        };
        for hook in &self.on_state {
            guard(|| hook(run, old, new));
        }
        let finals = if new.is_failed() {
            &self.on_failure
        } else if new.is_completed() {
            &self.on_completion
        } else if new.kind == StateKind::Cancelled {
            &self.on_cancellation
        } else {
            return;
        };
        for hook in finals {
            guard(|| hook(run, new));
        }
    }

    fn fire_crashed(&self, run: &RunInfo<'_>, state: &State) {
        for hook in &self.on_crashed {
            guard(|| hook(run, state));
        }
    }
}

/// The run-time hooks a run fires: those installed and those of its scope, found once when it
/// starts (a task run inside a flow takes its flow run's).
#[derive(Clone, Default, Debug)]
pub(crate) struct ActiveHooks {
    installed: Option<Arc<RunHooks>>,
    scoped: Option<Arc<RunHooks>>,
}

impl ActiveHooks {
    pub(crate) fn current() -> ActiveHooks {
        let installed = if ANY_INSTALLED.load(Ordering::Acquire) {
            INSTALLED.read().unwrap_or_else(|e| e.into_inner()).clone()
        } else {
            None
        };
        ActiveHooks {
            installed,
            scoped: SCOPED.try_with(Arc::clone).ok(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.installed.is_none() && self.scoped.is_none()
    }

    pub(crate) fn fire(&self, run: &RunInfo<'_>) {
        for hooks in [&self.installed, &self.scoped].into_iter().flatten() {
            hooks.fire(run);
        }
    }

    pub(crate) fn fire_crashed(&self, run: &RunInfo<'_>, state: &State) {
        for hooks in [&self.installed, &self.scoped].into_iter().flatten() {
            hooks.fire_crashed(run, state);
        }
    }
}
