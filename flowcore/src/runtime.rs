//! What code running inside a flow run can learn about it, as Prefect's
//! `prefect.runtime.flow_run` tells: the run's id and name.

use uuid::Uuid;

use crate::context::FlowContext;

/// The flow run this code runs in: in a flow's body, and in the task runs and hooks it calls.
///
/// ```
/// use flowcore::{flow, runtime};
///
/// #[flow(name = "whoami")]
/// async fn whoami() -> String {
///     runtime::flow_run().expect("inside a flow run").name
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # flowcore::Store::memory().install().unwrap();
/// let (name, run) = whoami().with_run().await;
/// assert_eq!(name, run.name);
/// assert!(runtime::flow_run().is_none(), "outside any flow run");
/// # }
/// ```
pub fn flow_run() -> Option<FlowRun> {
    FlowContext::with_current(|flow| FlowRun {
        id: flow.id,
        name: flow.name.clone(),
    })
}

/// A flow run, as [`flow_run`] names it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlowRun {
    /// Its id: the key of the run in the store.
    pub id: Uuid,
    /// Its name: `"light-potoo"`.
    pub name: String,
}
