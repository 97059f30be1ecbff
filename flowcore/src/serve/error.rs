//! Why serving could not start, or stopped.

use crate::store::StoreError;

/// Deployments that cannot be served, said so that the user knows what to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A deployment is wrong: its schedule, its parameters, its name or its flow closure.
    #[error("deployment '{name}': {reason}")]
    Deployment {
        /// The deployment's name.
        name: String,
        /// What is wrong, and how to fix it.
        reason: String,
    },
    /// `serve` was given no deployment, and no background task.
    #[error(
        "nothing to serve: give `flowcore::serve` at least one Deployment, or `flowcore::serve_tasks` at least one background task"
    )]
    NothingToServe,
    /// Two background tasks given to serve have one name: a delayed run of that name could be
    /// either.
    #[error(
        "two background tasks are named '{name}': a delayed run names its task, so give each its own (`#[task(background, name = \"…\")]`)"
    )]
    TaskName {
        /// The name both have.
        name: String,
    },
    /// The run store refused: it cannot be written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another worker took this one for dead (it was cut off from the store, or paused, for
    /// longer than a worker's lease) and took over its runs; this one cancelled its runs in
    /// flight and stopped. Start it again to serve again.
    #[error(
        "another worker took this one for dead (its heartbeats stopped reaching the store for longer than the lease) and took over its runs; this worker stopped: start it again to serve again"
    )]
    TakenForDead,
}
