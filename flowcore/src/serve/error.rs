//! Why serving could not start.

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
    /// The run store refused: it cannot be written, or another process serves a deployment of
    /// the same name.
    #[error(transparent)]
    Store(#[from] StoreError),
}
