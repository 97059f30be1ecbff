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
    /// `serve` was given no deployment.
    #[error("nothing to serve: give `flowcore::serve` at least one Deployment")]
    NothingToServe,
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
