//! Waiting for other task runs: `.wait_for(&handle)`, `allow_failure`, and the Skipped state.

use std::fmt;
use std::sync::OnceLock;

use tokio::sync::Notify;
use uuid::Uuid;

use crate::names::TaskRunName;
use crate::record::TaskRunRecord;
use crate::state::StateKind;

/// How a task run that others wait for tells them it has ended.
#[derive(Debug)]
pub(crate) struct RunSlot {
    pub(crate) id: Uuid,
    pub(crate) task: &'static str,
    /// The name `task_run_name` gave the run.
    pub(crate) given: Option<String>,
    ended: OnceLock<StateKind>,
    notify: Notify,
}

impl RunSlot {
    pub(crate) fn new(id: Uuid, task: &'static str, given: Option<String>) -> Self {
        RunSlot {
            id,
            task,
            given,
            ended: OnceLock::new(),
            notify: Notify::new(),
        }
    }

    pub(crate) fn name(&self) -> String {
        TaskRunName::new(self.task, self.id, self.given.as_deref()).to_string()
    }

    /// The final state, once the run has one.
    pub(crate) fn ended(&self) -> Option<StateKind> {
        self.ended.get().copied()
    }

    /// Records the run's final state and wakes those waiting for it.
    pub(crate) fn end(&self, state: StateKind) {
        if self.ended.set(state).is_ok() {
            self.notify.notify_waiters();
        }
    }

    /// Waits for the run's final state.
    pub(crate) async fn wait(&self) -> StateKind {
        loop {
            let notified = self.notify.notified();
            if let Some(state) = self.ended() {
                return state;
            }
            notified.await;
        }
    }
}

/// A task run another one waits for, as [`TaskCall::wait_for`](crate::TaskCall::wait_for)
/// takes it: a [`TaskHandle`](crate::TaskHandle) (from `.submit()`), a finished run's
/// [`TaskRunRecord`] (from `.with_run()`), or either inside [`allow_failure`].
pub trait WaitFor: crate::sealed::WaitFor {
    #[doc(hidden)]
    fn upstream(&self) -> Waiting;
}

/// Implements the sealing trait for a `WaitFor` type elsewhere in the crate.
macro_rules! sealed_impl {
    ($ty:ty, $param:ident) => {
        impl<$param> $crate::sealed::WaitFor for $ty {}
    };
}
pub(crate) use sealed_impl;

/// What a downstream run waits for.
#[doc(hidden)]
#[derive(Clone, Debug)]
pub struct Waiting {
    pub(crate) id: Uuid,
    pub(crate) on: Waited,
    pub(crate) allow_failure: bool,
}

#[derive(Clone, Debug)]
pub(crate) enum Waited {
    /// A run that may still be going.
    Slot(std::sync::Arc<RunSlot>),
    /// A run that has ended: its name and final state.
    Ended(String, StateKind),
}

impl Waiting {
    /// Waits for the upstream run to end; `Err` with the reason if the downstream must be
    /// skipped.
    pub(crate) async fn wait(&self) -> Result<(), UpstreamFailed> {
        let state = match &self.on {
            Waited::Slot(slot) => slot.wait().await,
            Waited::Ended(_, state) => *state,
        };
        if state.is_completed() || self.allow_failure {
            return Ok(());
        }
        let name = match &self.on {
            Waited::Slot(slot) => slot.name(),
            Waited::Ended(name, _) => name.clone(),
        };
        Err(UpstreamFailed { name, state })
    }
}

impl crate::sealed::WaitFor for &TaskRunRecord {}

impl WaitFor for &TaskRunRecord {
    fn upstream(&self) -> Waiting {
        let state = self.state().kind;
        Waiting {
            id: self.id,
            // A record read while its run was still going (a hook's) counts as not completed.
            on: Waited::Ended(self.name().to_string(), state),
            allow_failure: false,
        }
    }
}

/// Lets the downstream run even if this upstream fails, like Prefect's `allow_failure`:
/// `.wait_for(flowcore::allow_failure(&cleanup))`.
///
/// ```
/// use flowcore::{allow_failure, flow, task};
///
/// #[task]
/// async fn flaky() -> Result<(), String> {
///     Err("no luck".into())
/// }
///
/// #[task]
/// async fn report() -> Result<&'static str, flowcore::UpstreamFailed> {
///     Ok("reported")
/// }
///
/// #[flow]
/// async fn nightly() -> Result<&'static str, flowcore::UpstreamFailed> {
///     let first = flaky().submit();
///     report().wait_for(allow_failure(&first)).await
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # flowcore::Store::memory().install().unwrap();
/// assert_eq!(nightly().await, Ok("reported"));
/// # }
/// ```
pub fn allow_failure<U: WaitFor>(upstream: U) -> AllowFailure<U> {
    AllowFailure(upstream)
}

/// See [`allow_failure`].
#[derive(Clone, Copy, Debug)]
pub struct AllowFailure<U>(U);

impl<U: WaitFor> crate::sealed::WaitFor for AllowFailure<U> {}

impl<U: WaitFor> WaitFor for AllowFailure<U> {
    fn upstream(&self) -> Waiting {
        Waiting {
            allow_failure: true,
            ..self.0.upstream()
        }
    }
}

/// Why a task run was Skipped: a task run it waited for did not complete. A task that waits
/// returns it as its `Err`, converted into the task's error type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamFailed {
    /// The upstream task run's name, `"create_table-3fa"`.
    pub name: String,
    /// How it ended: `Failed`, `TimedOut`, `Cancelled`, `Crashed` or `Skipped`.
    pub state: StateKind,
}

impl fmt::Display for UpstreamFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "upstream failed: {}", self.name)
    }
}

impl std::error::Error for UpstreamFailed {}

impl From<UpstreamFailed> for String {
    fn from(e: UpstreamFailed) -> String {
        e.to_string()
    }
}

/// The output of a task that can be Skipped: a `Result` whose error type converts from
/// [`UpstreamFailed`].
#[diagnostic::on_unimplemented(
    message = "`wait_for` needs the task to return `Result<T, E>` with `E: From<flowcore::UpstreamFailed>`; it returns `{Self}`",
    label = "a task run that is skipped returns `Err(UpstreamFailed)`",
    note = "`anyhow::Error`, `Box<dyn Error + Send + Sync>` and `String` work as they are; give an error enum a `#[from] flowcore::UpstreamFailed` variant"
)]
pub trait Skippable {
    #[doc(hidden)]
    fn skipped(reason: UpstreamFailed) -> Self;
}

// `do_not_recommend`: an `E` without the conversion is reported with the message above.
#[diagnostic::do_not_recommend]
impl<T, E: From<UpstreamFailed>> Skippable for Result<T, E> {
    fn skipped(reason: UpstreamFailed) -> Self {
        Err(E::from(reason))
    }
}
