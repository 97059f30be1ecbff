//! What a process serving deployments knows of a flow run before the flow call makes it: its
//! id and name (given in advance to a run requested by hand), its deployment, and the states
//! it passed through before the call (`Scheduled`, and `Late` if it starts late).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};

use uuid::Uuid;

use crate::state::State;
use crate::store::PriorRun;

/// A flow run of a deployment, as the server hands it to the flow call.
pub(crate) struct Launch {
    pub id: Uuid,
    pub name: String,
    pub deployment: String,
    /// Its states before `Pending`, oldest first.
    pub states: Vec<State>,
    /// How many of `states` the store already has: a requested run was written `Scheduled`
    /// by whoever requested it.
    pub stored: usize,
    /// Why the run was given up, if the server gives it up (it stopped before the run
    /// ended): the message of its `Cancelled` state.
    pub cancelled_because: Arc<OnceLock<String>>,
    /// Where the run learns it was cancelled from outside (`flowcore runs cancel`).
    pub cancel: Arc<crate::cancel::CancelSlot>,
    /// For a run taken up again while it was paused for input: what it did before, by call
    /// position, for its completed task runs' outputs to be reused as `resume` does.
    pub prior: BTreeMap<u32, PriorRun>,
}

struct Slot {
    launch: Option<Launch>,
    /// The flow the call was of.
    called: Option<&'static str>,
}

tokio::task_local! {
    static LAUNCHING: Rc<RefCell<Slot>>;
}

/// Makes the flow call `call` with `launch` handed to it (or none, to learn which flow the
/// call is of); returns the call and the flow's name, `None` if `call` made no flow call.
pub(crate) fn with<C>(
    launch: Option<Launch>,
    call: impl FnOnce() -> C,
) -> (C, Option<&'static str>) {
    let slot = Rc::new(RefCell::new(Slot {
        launch,
        called: None,
    }));
    let call = LAUNCHING.sync_scope(Rc::clone(&slot), call);
    let called = slot.borrow().called;
    (call, called)
}

/// For a top-level flow call made inside [`with`]: the launch handed to it. Only the first
/// flow call made there takes it.
pub(crate) fn requested(flow: &'static str) -> Option<Launch> {
    LAUNCHING
        .try_with(|slot| {
            let mut slot = slot.borrow_mut();
            if slot.called.is_some() {
                return None;
            }
            slot.called = Some(flow);
            slot.launch.take()
        })
        .ok()
        .flatten()
}
