//! Cancelling a deployment's flow run from outside (`flowcore runs cancel`, the dashboard,
//! [`Store::cancel_run`](crate::Store::cancel_run)): the store marks it `Cancelling`, and the
//! process running it drops its future when it next polls (or at once, when the request is
//! made in that process), so that its task runs end `Cancelled`, then the run.
//!
//! Only the runs a process serves can be dropped this way: their futures are flowcore's (the
//! server spawned them). A program's own `etl().await` has to produce the flow's output, which a
//! dropped run has not, so such runs are refused with the reason.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde::Serialize;
use tokio::task::AbortHandle;
use uuid::Uuid;

use crate::state::State;

/// What [`Store::cancel_run`](crate::Store::cancel_run) did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CancelOutcome {
    /// The run ended `Cancelled` at once: it had not started, or its process is gone.
    Cancelled,
    /// The run is `Cancelling`: the process running it drops it within about a second, and it
    /// ends `Cancelled`.
    Cancelling,
}

/// A request to cancel a run, as its process learns it: the `Cancelling` state the store
/// holds, and who asked.
#[derive(Clone, Debug)]
pub(crate) struct CancelRequest {
    pub state: State,
    pub by: String,
}

/// Where a served run learns that it was cancelled from outside: read by its drop, which
/// records the `Cancelling` state and then `Cancelled` with who asked. Also where it says that
/// it waits for input (`flowcore::pause`): a server that stops lets such a run go at once,
/// `Paused`, for the next server to take up, rather than cancel it.
#[derive(Debug, Default)]
pub(crate) struct CancelSlot {
    request: OnceLock<CancelRequest>,
    waiting_for_input: AtomicBool,
    /// Dropped by its server because it waited for input: its drop leaves it `Paused`.
    let_go: AtomicBool,
}

impl CancelSlot {
    pub(crate) fn get(&self) -> Option<&CancelRequest> {
        self.request.get()
    }

    pub(crate) fn set_waiting_for_input(&self, waiting: bool) {
        self.waiting_for_input.store(waiting, Ordering::Release);
    }

    /// Whether its server dropped it while it waited for input.
    pub(crate) fn let_go(&self) -> bool {
        self.let_go.load(Ordering::Acquire)
    }
}

enum Entry {
    /// A run going on in this process, and how to drop it.
    Running {
        abort: AbortHandle,
        slot: Arc<CancelSlot>,
    },
    /// A run cancelled before it started here (claimed, queued): it must not start.
    CancelledEarly,
}

/// The served runs of this process, by id: a lock taken when a run starts and ends, never per
/// task run.
static RUNS: Mutex<Option<HashMap<Uuid, Entry>>> = Mutex::new(None);

fn with<T>(f: impl FnOnce(&mut HashMap<Uuid, Entry>) -> T) -> T {
    let mut runs = RUNS.lock().unwrap_or_else(|e| e.into_inner());
    f(runs.get_or_insert_with(HashMap::new))
}

/// Registers a served run that has started; `false` if it was cancelled before it could (then
/// it must be dropped without running).
pub(crate) fn started(id: Uuid, abort: AbortHandle, slot: Arc<CancelSlot>) -> bool {
    with(|runs| match runs.remove(&id) {
        Some(Entry::CancelledEarly) => false,
        _ => {
            runs.insert(id, Entry::Running { abort, slot });
            true
        }
    })
}

/// Whether a run about to start was cancelled meanwhile (it is forgotten then).
pub(crate) fn cancelled_before_start(id: Uuid) -> bool {
    with(|runs| matches!(runs.remove(&id), Some(Entry::CancelledEarly)))
}

/// Forgets a served run that ended.
pub(crate) fn ended(id: Uuid) {
    with(|runs| {
        if matches!(runs.get(&id), Some(Entry::Running { .. })) {
            runs.remove(&id);
        }
    });
}

/// Drops the served run `id` with `request`. Returns `false` when the run is not going on in
/// this process: then it is noted as cancelled, so that it never starts here, and the caller
/// records it `Cancelled`.
pub(crate) fn request(id: Uuid, request: CancelRequest) -> bool {
    with(|runs| match runs.get(&id) {
        Some(Entry::Running { abort, slot }) => {
            let _ = slot.request.set(request);
            abort.abort();
            true
        }
        Some(Entry::CancelledEarly) => false,
        None => {
            runs.insert(id, Entry::CancelledEarly);
            false
        }
    })
}

/// Drops the served runs of this process that wait for input: their drop leaves them `Paused`
/// for the next process serving their deployment. Returns how many.
pub(crate) fn let_paused_go() -> usize {
    with(|runs| {
        let mut let_go = 0;
        for entry in runs.values() {
            if let Entry::Running { abort, slot } = entry
                && slot.waiting_for_input.load(Ordering::Acquire)
            {
                slot.let_go.store(true, Ordering::Release);
                abort.abort();
                let_go += 1;
            }
        }
        let_go
    })
}

/// Notes that run `id`, ended `Cancelled` in the store, must not start here.
pub(crate) fn forbid_start(id: Uuid) {
    with(|runs| {
        runs.entry(id).or_insert(Entry::CancelledEarly);
    });
}

/// Whether the served run `id` is going on in this process.
pub(crate) fn is_running_here(id: Uuid) -> bool {
    with(|runs| matches!(runs.get(&id), Some(Entry::Running { .. })))
}

/// Why a run cannot be cancelled from outside, or `None` if it can.
pub(crate) fn refusal(
    state: crate::state::StateKind,
    deployment: bool,
    parent: Option<Uuid>,
) -> Option<String> {
    if let Some(parent) = parent {
        return Some(format!(
            "it is a subflow run; cancel the flow run that called it ({parent})"
        ));
    }
    if state.is_final() {
        return Some(format!("it already ended: {state}"));
    }
    if !deployment {
        return Some(
            "it is not a deployment's run: the program that called it awaits its output, so only that program can stop it (Ctrl-C cancels its runs); runs of served deployments can be cancelled"
                .to_owned(),
        );
    }
    None
}

/// Who asked, as the `Cancelled` state says it: "cancelled by flowcore runs cancel (ada@build)".
pub(crate) fn cancelled_message(by: &str) -> String {
    format!("cancelled by {by}")
}

/// The `Cancelling` state's message.
pub(crate) fn cancelling_message(by: &str) -> String {
    format!("cancel requested by {by}")
}

/// Who asked, read back from a `Cancelling` state's message.
pub(crate) fn requester(state: &State) -> String {
    state
        .message()
        .strip_prefix("cancel requested by ")
        .unwrap_or("a request from outside")
        .to_owned()
}
