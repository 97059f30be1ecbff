//! Concurrency limits held in the store, for every process that shares it: at most N task runs
//! with a tag at once, counted across processes and hosts (`flowcore limit set db 2`).
//!
//! A slot is a row of `limit_slots`, keyed by tag and slot number, naming the task run that
//! holds it and its process: taken by inserting the lowest free number below the limit,
//! given back with the task run's final state, and reclaimed when its process is found dead,
//! so that a crash never leaks one.

use serde::Serialize;

/// A store-wide limit, as `flowcore limit ls` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LimitInfo {
    /// The tag it limits.
    pub tag: String,
    /// How many task runs with the tag may run at once.
    pub max: u32,
    /// How many hold a slot now.
    pub running: usize,
}

/// What asking for a slot gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    /// The tag has no store-wide limit.
    Unlimited,
    /// A slot is the task run's until it ends.
    Taken,
    /// Every slot is held: ask again later.
    Full,
}
