//! Concurrency limits by tag: at most N task runs with a tag at once, in this process.
//!
//! For a limit across every process sharing a SQLite or PostgreSQL store (on any number of
//! hosts), set it in the store instead: `flowcore limit set db 2`, or
//! [`Store::set_limit`](crate::Store::set_limit). A task run then also waits for a slot of the
//! store's, held as a row in the store and given back with its final state (or, if its process
//! dies, when the process is found dead).
//!
//! Set a limit in code with [`set`], or with an environment variable named after the tag,
//! `FLOWCORE_LIMIT_db=2`, read when the first task run starts (a limit set in code wins). A
//! task run with limited tags waits in state Pending for a slot of each, taken in the order of
//! the tags' names so two runs never hold one each of the other's; it holds them until it ends,
//! its retries included. Tasks with no limited tag never touch the limits: while no limit is
//! set, the check is one atomic load.
//!
//! ```
//! use flowcore::task;
//!
//! #[task(tags = ["db"])]
//! async fn insert(row: u32) -> u32 {
//!     row
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! # flowcore::Store::memory().install().unwrap();
//! flowcore::limits::set("db", 2).unwrap();
//! assert_eq!(flowcore::limits::get("db"), Some(2));
//! assert_eq!(insert(7).await, 7);
//! flowcore::limits::remove("db");
//! # }
//! ```
//!
//! As with Prefect's tag limits, a task run holding a slot that calls another task with the
//! same limited tag can wait forever once every slot is held that way.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use crate::store::{Event, Slot, Store};

/// The prefix of the environment variables that set limits: `FLOWCORE_LIMIT_<tag>=<n>`.
pub const ENV_PREFIX: &str = "FLOWCORE_LIMIT_";

/// A limit that cannot be set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    /// `0` would stop every task run with the tag for good.
    #[error("the limit for tag '{tag}' must be at least 1; to lift a limit, remove it")]
    Zero {
        /// The tag.
        tag: String,
    },
    /// An environment variable that is not a positive number.
    #[error("{var}={value:?} is not a limit: expected a whole number of at least 1")]
    BadEnv {
        /// The variable's name.
        var: String,
        /// Its value.
        value: String,
    },
}

struct Limit {
    max: usize,
    slots: Arc<Semaphore>,
}

struct Limits {
    by_tag: DashMap<String, Limit>,
    /// Whether `by_tag` holds anything: the fast path for every task run.
    any: AtomicBool,
}

fn limits() -> &'static Limits {
    static LIMITS: OnceLock<Limits> = OnceLock::new();
    LIMITS.get_or_init(|| {
        let limits = Limits {
            by_tag: DashMap::new(),
            any: AtomicBool::new(false),
        };
        for (var, value) in std::env::vars_os() {
            let Some(tag) = var.to_str().and_then(|v| v.strip_prefix(ENV_PREFIX)) else {
                continue;
            };
            let value = value.to_string_lossy();
            match value.trim().parse::<usize>() {
                Ok(max) if max > 0 => {
                    insert(&limits, tag, max);
                }
                _ => {
                    let error = LimitError::BadEnv {
                        var: var.to_string_lossy().into_owned(),
                        value: value.into_owned(),
                    };
                    tracing::error!(target: "flowcore", "{error}; no limit set for tag '{tag}'");
                }
            }
        }
        limits
    })
}

fn insert(limits: &Limits, tag: &str, max: usize) {
    match limits.by_tag.get_mut(tag) {
        Some(mut limit) => {
            // Runs holding slots keep them; the count moves by the difference.
            if max > limit.max {
                limit.slots.add_permits(max - limit.max);
            } else {
                let fewer = limit.max - max;
                let owed = fewer - limit.slots.forget_permits(fewer);
                if owed > 0 {
                    // Slots are in use (so a runtime is running): take the rest as they are
                    // released, so that the new limit holds from then on.
                    let slots = Arc::clone(&limit.slots);
                    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                        runtime.spawn(async move {
                            if let Ok(permits) = slots.acquire_many(owed as u32).await {
                                permits.forget();
                            }
                        });
                    }
                }
            }
            limit.max = max;
        }
        None => {
            limits.by_tag.insert(
                tag.to_owned(),
                Limit {
                    max,
                    slots: Arc::new(Semaphore::new(max)),
                },
            );
        }
    }
    limits.any.store(true, Ordering::Release);
}

/// Allows at most `max` task runs tagged `tag` at once in this process. Runs already holding
/// a slot keep it.
pub fn set(tag: &str, max: usize) -> Result<(), LimitError> {
    if max == 0 {
        return Err(LimitError::Zero {
            tag: tag.to_owned(),
        });
    }
    insert(limits(), tag, max);
    Ok(())
}

/// The limit for `tag`, if there is one.
pub fn get(tag: &str) -> Option<usize> {
    limits().by_tag.get(tag).map(|l| l.max)
}

/// Lifts the limit for `tag`: runs waiting for a slot go on.
pub fn remove(tag: &str) {
    let limits = limits();
    if let Some((_, limit)) = limits.by_tag.remove(tag) {
        // Runs waiting for a slot are told it is closed, and go on without one.
        limit.slots.close();
    }
}

/// The slots a task run holds; released when dropped: this process's at once, the store's
/// with the next commit (drop it after the run's final state is sent).
pub(crate) struct Permits {
    #[allow(dead_code)]
    here: Vec<OwnedSemaphorePermit>,
    /// The task run holding store-wide slots, and its store.
    in_store: Option<(Store, Uuid)>,
}

impl Drop for Permits {
    fn drop(&mut self) {
        if let Some((store, task_run)) = self.in_store.take() {
            store.send(Event::ReleaseSlots { task_run });
        }
    }
}

/// Takes a slot of each limited tag among `tags` for `task_run`, waiting for them: this
/// process's limits first, then the store's.
pub(crate) async fn acquire(
    tags: &[Cow<'static, str>],
    store: &Store,
    task_run: Uuid,
) -> Option<Permits> {
    if tags.is_empty() {
        return None;
    }
    let here = acquire_here(tags).await;
    let in_store = acquire_in_store(tags, store, task_run).await;
    if here.is_empty() && in_store.is_none() {
        return None;
    }
    Some(Permits { here, in_store })
}

/// A slot of each of `tags`' store-wide limits, in the order of their names; `None` if none
/// has one. A full limit is asked again after a pause that grows to half a second.
async fn acquire_in_store(
    tags: &[Cow<'static, str>],
    store: &Store,
    task_run: Uuid,
) -> Option<(Store, Uuid)> {
    let limited = store.store_limited(tags).await;
    if limited.is_empty() {
        return None;
    }
    let mut held = false;
    for tag in &limited {
        let mut pause = Duration::from_millis(20);
        loop {
            match store.take_slot(tag, task_run).await {
                Ok(Slot::Taken) => {
                    held = true;
                    break;
                }
                Ok(Slot::Unlimited) => break,
                Ok(Slot::Full) => {}
                // A store that cannot be asked is asked again, while runs wait for it; once
                // runs stop waiting for it (its write timeout), this one goes on too.
                Err(e) => {
                    if store.not_recording().is_some() {
                        tracing::warn!(target: "flowcore", "Task run goes on without a slot of the store-wide limit of tag '{tag}': {e}");
                        break;
                    }
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }
    held.then(|| (store.clone(), task_run))
}

/// A slot of each of `tags`' limits in this process.
async fn acquire_here(tags: &[Cow<'static, str>]) -> Vec<OwnedSemaphorePermit> {
    let limits = limits();
    if !limits.any.load(Ordering::Acquire) {
        return Vec::new();
    }
    let mut limited: Vec<(&str, Arc<Semaphore>)> = tags
        .iter()
        .filter_map(|tag| Some((&**tag, Arc::clone(&limits.by_tag.get(&**tag)?.slots))))
        .collect();
    if limited.is_empty() {
        return Vec::new();
    }
    limited.sort_by(|a, b| a.0.cmp(b.0));
    limited.dedup_by(|a, b| a.0 == b.0);
    let mut permits = Vec::with_capacity(limited.len());
    for (_, slots) in limited {
        // An error means the limit was removed meanwhile: no slot is needed.
        if let Ok(permit) = slots.acquire_owned().await {
            permits.push(permit);
        }
    }
    permits
}
