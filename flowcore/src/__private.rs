//! Support for the code `#[task]` and `#[flow]` generate. Each check below exists to turn a
//! misuse into one error that names the problem and its fix, at the user's token.
//!
//! - A check is a call with the user's type as an explicit generic argument
//!   (`retry_clone::<T>`), which the macros write with that type's span: rustc points at the
//!   type, and the trait's `on_unimplemented` names the fix.
//! - The runtime's own bounds must not fail again for the same mistake, at the attribute:
//!   [`Repeat`] and [`ArgsKey`] need nothing of the arguments (each argument is checked on its
//!   own), and [`Fallible`] needs `TaskError`, whose failure reads as flowcore's message.
//!   Where a runtime bound can still fail, the macros write its generic argument at the
//!   user's type, so the error lands there and rustc merges it with the check's.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::TimeoutError;
use crate::hooks::RunInfo;
use crate::state::State;

pub use crate::attempt::{Behaviour, Once, Repeat, Timeout};
pub use crate::cache::{ArgsKey, Cache, CacheArg};
pub use crate::call::{Finished, Record, RunFuture};
pub use crate::codec::{
    ArgProbe, Codec, NotRecordable, NotStorable, Probe, Recordable, Storable, TraceArg, parameters,
};
pub use crate::flow::{FlowSpec, run_flow};
pub use crate::hooks::{Hook, Hooks, StateHook};
pub use crate::outcome::{Fallible, Outcome, Plain};
pub use crate::retry::RetryPolicy;
pub use crate::span::RunCallsite;
pub use crate::task::{CallOptions, TaskSpec, run_task};
pub use std::borrow::Cow;
pub use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// The task graph: which task runs produced a call's arguments.

/// The data edges of a task call, from its arguments that serialize: the task runs of the
/// current flow run whose output equals an argument or an element of it (see
/// `flowcore::fingerprint`). Called before the arguments move into the run.
pub fn upstream_of(args: &[Option<&dyn TraceArg>]) -> Vec<crate::record::Upstream> {
    let mut upstream = Vec::new();
    crate::context::FlowContext::with_current(|flow| {
        flow.producers_of(
            |each| {
                for arg in args.iter().flatten() {
                    arg.fingerprints(each);
                }
            },
            &mut upstream,
        )
    });
    upstream
}

// ---------------------------------------------------------------------------------------------
// `retries`: every argument is copied for each attempt.

/// An argument of a task or flow that may run more than once.
#[diagnostic::on_unimplemented(
    message = "`{Self}` must implement `Clone`: with `retries`, each attempt gets its own copy of the arguments",
    label = "not `Clone`",
    note = "derive or implement `Clone` for it, take a reference or an `Arc` instead, or remove `retries`"
)]
pub trait RetryArg: Clone {}

impl<T: Clone> RetryArg for T {}

/// Copies one argument for the next attempt. The macros call it once per argument, with the
/// argument's type as written, so a type that is not `Clone` is reported at that type.
pub fn retry_clone<T: RetryArg>(arg: &T) -> T {
    arg.clone()
}

// ---------------------------------------------------------------------------------------------
// `Result` outputs: how the output is judged, found through the error type.

/// The error type of a `Result` output whose `E` is not written out (`io::Result<T>`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is taken for a `Result` because its name ends in `Result`, but it is not `std::result::Result`",
    label = "not `Result<T, E>`",
    note = "a task or flow fails on `Err` only when it returns `std::result::Result` or an alias of it"
)]
pub trait ResultError {
    type Error;
}

impl<T, E> ResultError for Result<T, E> {
    type Error = E;
}

// ---------------------------------------------------------------------------------------------
// `cache_for`: the arguments make the key, the output is stored as JSON.

/// One argument as a part of the cache key. Called with the argument's type as written, so a
/// type that is not `Serialize` is reported at that type; [`ArgsKey`] itself needs nothing
/// more, so no error is repeated for the arguments as a whole.
pub fn cache_arg<T: CacheArg>(arg: &T) -> &dyn CacheArg {
    arg
}

/// The value a task with `cache_for` stores: its output, or the `T` of `Result<T, E>`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` must implement `serde::Serialize`: with `cache_for`, the result is stored as JSON",
    label = "not `Serialize`",
    note = "derive `Serialize` and `Deserialize` for it, or remove `cache_for`"
)]
pub trait CacheSerialize: Serialize {}

#[diagnostic::do_not_recommend]
impl<T: Serialize> CacheSerialize for T {}

/// See [`CacheSerialize`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` must implement `serde::Deserialize`: with `cache_for`, the result is read back from JSON",
    label = "not `Deserialize`",
    note = "derive `Serialize` and `Deserialize` for it, or remove `cache_for`"
)]
pub trait CacheDeserialize: DeserializeOwned {}

#[diagnostic::do_not_recommend]
impl<T: DeserializeOwned> CacheDeserialize for T {}

/// Checks the cached value's type where the macros can write it out.
pub const fn assert_cache_value<T: CacheSerialize + CacheDeserialize>() {}

/// Checks the cached value's type where the macros cannot write it out.
pub const fn assert_cache_output<K: Outcome<R>, R>()
where
    K::Value: CacheSerialize + CacheDeserialize,
{
}

// ---------------------------------------------------------------------------------------------
// Hooks, `retry_if` and `timeout`.

/// `on_state = f`: coerces `f` to its function pointer type where it is written, so a wrong
/// signature is reported at `f`, and rustc's note shows this line, with the signature wanted.
pub const fn state_hook(hook: fn(&RunInfo<'_>, &State, &State)) -> StateHook {
    hook
}

/// `on_failure = f`, `on_completion = f`: as [`state_hook`].
pub const fn hook(hook: fn(&RunInfo<'_>, &State)) -> Hook {
    hook
}

/// `retry_if = f`: coerces `f` to `fn(&E) -> bool` for the body's error type `E`.
pub const fn retry_if<K: Outcome<R>, R>(f: fn(&K::Error) -> bool) -> fn(&K::Error) -> bool {
    f
}

/// The error type of a task or flow with `timeout`.
#[diagnostic::on_unimplemented(
    message = "`timeout` needs the error type `{Self}` to implement `From<flowcore::TimeoutError>`",
    label = "the timeout is returned as an `Err` of this type",
    note = "`anyhow::Error` and `Box<dyn Error + Send + Sync>` work as they are; give an error enum a `#[from] flowcore::TimeoutError` variant, or implement `From<flowcore::TimeoutError>`"
)]
pub trait FromTimeout: From<TimeoutError> {}

#[diagnostic::do_not_recommend]
impl<E: From<TimeoutError>> FromTimeout for E {}

/// How a timed-out attempt becomes the body's output: `Err(E::from(timeout))`. The macros
/// name `E`, so an `E` without the conversion is reported at the error type.
pub fn timeout_error<T, E: FromTimeout>(timeout: TimeoutError) -> Result<T, E> {
    Err(E::from(timeout))
}
