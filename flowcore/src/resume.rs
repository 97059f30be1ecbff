//! Resuming a flow run that failed or crashed: durable execution.

use std::cell::RefCell;
use std::rc::Rc;

use crate::flow::{FlowBody, FlowCall};
use crate::store::{ResumePoint, Store, StoreError};

/// The resume point handed from [`resume`] to the flow call made inside it.
struct Slot {
    point: Option<ResumePoint>,
    /// The flow the call was of.
    called: Option<&'static str>,
}

tokio::task_local! {
    static RESUMING: Rc<RefCell<Slot>>;
}

/// Runs a flow call as the continuation of an earlier flow run of the same flow that failed,
/// crashed, timed out or was cancelled: the same run (same id and name) goes on, and the task
/// runs that had completed are not run again: their recorded outputs are reused (they end in
/// state Cached, "output reused …"). Subflow runs are continued the same way.
///
/// `run` is the earlier run's name or id. `call` makes the flow call, with the same
/// arguments as the first time. A task call is matched to the earlier run by its position
/// among the flow run's calls and its task's name, so the flow must make its calls in the
/// same order, as Temporal and Restate also require. Only outputs that serialize with serde
/// are reused; other tasks run again.
///
/// A task's output is recorded with the group commit that follows its completion, and a task
/// run inside a flow does not wait for it: a task that completed just before its process was
/// killed may not be recorded yet, and then runs again on resume. Resuming is at least once,
/// like Temporal's activities: write tasks so that running one twice does no harm.
///
/// ```
/// use flowcore::{flow, task, Store, StateKind};
/// use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
///
/// static STEP_ONE_RAN: AtomicU32 = AtomicU32::new(0);
/// static FAIL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);
///
/// #[task]
/// async fn step_one() -> u32 {
///     STEP_ONE_RAN.fetch_add(1, SeqCst);
///     1
/// }
///
/// #[task]
/// async fn step_two(x: u32) -> Result<u32, String> {
///     if FAIL.load(SeqCst) { Err("flaky".into()) } else { Ok(x + 1) }
/// }
///
/// #[flow]
/// async fn two_steps() -> Result<u32, String> {
///     let x = step_one().await;
///     step_two(x).await
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), flowcore::StoreError> {
/// # Store::memory().install()?;
/// let (out, first) = two_steps().with_run().await;
/// assert!(out.is_err());
///
/// FAIL.store(false, SeqCst);
/// let (out, again) = flowcore::resume(&first.name, || two_steps())?.with_run().await;
/// assert_eq!(out, Ok(2));
/// assert_eq!(again.id, first.id);
/// assert_eq!(STEP_ONE_RAN.load(SeqCst), 1, "step one's output was reused");
/// assert_eq!(again.task_runs[0].state().kind, StateKind::Cached);
/// # Ok(())
/// # }
/// ```
pub fn resume<B: FlowBody>(
    run: &str,
    call: impl FnOnce() -> FlowCall<B>,
) -> Result<FlowCall<B>, StoreError> {
    let store = Store::current();
    let point = store.resume_point(store.find_flow_run(run)?)?;
    let (name, flow) = (point.name.clone(), point.flow.clone());
    let slot = Rc::new(RefCell::new(Slot {
        point: Some(point),
        called: None,
    }));
    let call = RESUMING.sync_scope(Rc::clone(&slot), call);
    let refuse = |reason: String| {
        Err(StoreError::CannotResume {
            name: name.clone(),
            reason,
        })
    };
    match slot.borrow().called {
        None => refuse("the closure given to `resume` made no flow call".to_owned()),
        Some(called) if called != flow => {
            refuse(format!("it is a run of flow '{flow}', not of '{called}'"))
        }
        Some(_) => Ok(call),
    }
}

/// For a flow call made inside [`resume`]: the point to resume from, if it is of this flow.
pub(crate) fn requested(flow: &'static str) -> Option<ResumePoint> {
    RESUMING
        .try_with(|slot| {
            let mut slot = slot.borrow_mut();
            if slot.called.is_some() {
                return None; // only the first flow call made inside resume continues the run
            }
            slot.called = Some(flow);
            match &slot.point {
                Some(point) if point.flow == flow => slot.point.take(),
                _ => None,
            }
        })
        .ok()
        .flatten()
}
