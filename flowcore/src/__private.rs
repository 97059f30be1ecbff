//! Support for the code `#[task]` and `#[flow]` generate. Each check below exists to turn a
//! misuse into an error that names the problem and its fix, at the user's token.

use serde::Serialize;

use crate::error::TimeoutError;
use serde::de::DeserializeOwned;

pub use crate::attempt::{Behaviour, Once, Repeat, Timeout};
pub use crate::cache::Cache;
pub use crate::call::{Finished, Record, RunFuture};
pub use crate::flow::{FlowSpec, run_flow};
pub use crate::hooks::{Hook, Hooks, StateHook};
pub use crate::outcome::{Fallible, Outcome, Plain};
pub use crate::retry::RetryPolicy;
pub use crate::task::{TaskSpec, run_task};
pub use std::borrow::Cow;
pub use std::time::Duration;

/// An argument of a task or flow that may run more than once.
#[diagnostic::on_unimplemented(
    message = "`{Self}` must implement `Clone`: this argument is passed to every attempt",
    label = "not `Clone`, but the task or flow has `retries`",
    note = "each attempt gets its own copy of the arguments: derive or implement `Clone`, pass a reference or an `Arc`, or remove `retries`"
)]
pub trait RetryArg: Clone {}

impl<T: Clone> RetryArg for T {}

pub const fn assert_retry_arg<T: RetryArg>() {}

/// An argument of a task with `cache_for` and no `cache_key`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` must implement `serde::Serialize` to be part of the cache key",
    label = "not `Serialize`, but the task has `cache_for`",
    note = "`cache_for` keys a result by the task's serialized arguments: derive `Serialize`, or set `cache_key = path::to_fn` to compute the key yourself"
)]
pub trait CacheArg: Serialize {}

impl<T: Serialize + ?Sized> CacheArg for T {}

pub const fn assert_cache_arg<T: CacheArg + ?Sized>() {}

/// What a task with `cache_for` stores: its output, or the `Ok` value of a `Result`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` must implement `Serialize` and `DeserializeOwned` to be cached",
    label = "the cached result is stored as JSON",
    note = "derive `Serialize` and `Deserialize` for the task's output, or remove `cache_for`"
)]
pub trait CacheValue: Serialize + DeserializeOwned {}

impl<T: Serialize + DeserializeOwned> CacheValue for T {}

pub const fn assert_cache_output<K: Outcome<R>, R>()
where
    K::Value: CacheValue,
{
}

/// Coerces a hook to its function pointer type, so a wrong signature is reported at the
/// hook's path.
pub const fn state_hook(hook: StateHook) -> StateHook {
    hook
}

pub const fn hook(hook: Hook) -> Hook {
    hook
}

/// `retry_if = f`: coerces `f` to `fn(&E) -> bool` for the body's error type `E`.
pub const fn retry_if<K: Outcome<R>, R>(f: fn(&K::Error) -> bool) -> fn(&K::Error) -> bool {
    f
}

/// The error type of a task or flow with `timeout`.
#[diagnostic::on_unimplemented(
    message = "`timeout` needs the error type `{Self}` to implement `From<flowcore::TimeoutError>`",
    label = "the timeout is returned as this error",
    note = "`anyhow::Error` and `Box<dyn Error + Send + Sync>` work as they are; add a `#[from] flowcore::TimeoutError` variant to an error enum"
)]
pub trait FromTimeout: From<TimeoutError> {}

impl<E: From<TimeoutError>> FromTimeout for E {}

/// How a timed-out attempt becomes the body's output: `Err(E::from(timeout))`.
pub fn timeout_error<T, E: FromTimeout>(timeout: TimeoutError) -> Result<T, E> {
    Err(E::from(timeout))
}
