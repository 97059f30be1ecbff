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

/// Whether flowcore handles SIGINT (Ctrl-C) and SIGTERM: on by default. When the first flow or
/// task run of a process that records to a file starts, a handler is put in place; on the
/// signal it commits what the runs sent, ends every unfinished run of the process `Cancelled`
/// ("the process received SIGINT"), and exits with 130 (SIGINT) or 143 (SIGTERM). A second
/// signal exits at once. [`serve`](crate::serve) handles the signals itself while it runs.
///
/// A program with its own graceful shutdown (its own `tokio::signal::ctrl_c()`) turns this off
/// before its first run: `handle_interrupts(false)`. Its runs then end as it drops them
/// (`Cancelled`), or, if it exits with runs unfinished, the next program that opens the store
/// marks them `Crashed`. Returns whether the setting takes effect: `false` once the handler is
/// in place (after the first run), which no later call removes. Unix only; elsewhere there is
/// no handler.
///
/// ```
/// // First thing in `main`, before any flow runs.
/// assert!(flowcore::runtime::handle_interrupts(false));
/// ```
pub fn handle_interrupts(on: bool) -> bool {
    crate::interrupt::set_wanted(on)
}
