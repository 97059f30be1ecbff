//! Deleting flow runs (`flowcore runs delete | prune`, [`Store::delete_runs`] and
//! [`Store::prune`]): a flow run goes with everything that hangs off it (its subflow runs, all
//! their task runs, every state and log line of each, a delayed task run's arguments), in one
//! transaction, so that no row is left pointing at a run that is gone. Cached results, which
//! belong to tasks rather than runs, stay.
//!
//! [`Store::delete_runs`]: crate::Store::delete_runs
//! [`Store::prune`]: crate::Store::prune

use serde::Serialize;

use crate::clock::Timestamp;
use crate::state::StateKind;

/// What a deletion removed: the flow runs (subflow runs included) and their task runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Deleted {
    /// Flow runs, subflow runs included.
    pub flow_runs: usize,
    /// Their task runs.
    pub task_runs: usize,
}

impl std::ops::AddAssign for Deleted {
    fn add_assign(&mut self, other: Deleted) {
        self.flow_runs += other.flow_runs;
        self.task_runs += other.task_runs;
    }
}

/// Which flow runs [`Store::prune`](crate::Store::prune) deletes: top-level runs created
/// before `created_before` that ended in one of `states`, with their subflow runs.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Prune {
    /// Runs created before this time.
    pub created_before: Timestamp,
    /// In one of these final states; every final state when empty.
    pub states: Vec<StateKind>,
    /// At most this many top-level runs, the oldest first (automatic retention's passes).
    pub(crate) at_most: Option<usize>,
}

impl Prune {
    /// Runs created before `created_before` that ended, in any final state.
    pub fn created_before(created_before: Timestamp) -> Prune {
        Prune {
            created_before,
            states: Vec::new(),
            at_most: None,
        }
    }

    /// Only the `n` oldest of the runs selected, so that one transaction stays short.
    pub(crate) fn at_most(mut self, n: usize) -> Prune {
        self.at_most = Some(n);
        self
    }

    /// Only runs that ended in one of `states`, each of them final.
    pub fn in_states(mut self, states: impl IntoIterator<Item = StateKind>) -> Prune {
        self.states = states.into_iter().collect();
        self
    }

    /// The states a run to delete may be in: those asked for, or every final state.
    pub(crate) fn final_states(&self) -> Vec<StateKind> {
        if self.states.is_empty() {
            StateKind::ALL
                .into_iter()
                .filter(|s| s.is_final())
                .collect()
        } else {
            self.states.clone()
        }
    }
}

/// A run that a deletion may not take: it is going, in a process that is alive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Going {
    /// `flow run 'olive-grebe'`, `task run of 'extract'`.
    pub name: String,
    pub state: StateKind,
    pub pid: u32,
    pub host: String,
}

impl From<Going> for crate::store::StoreError {
    fn from(going: Going) -> Self {
        crate::store::StoreError::RunGoing {
            run: going.name,
            state: going.state,
            pid: going.pid,
            host: going.host,
        }
    }
}
