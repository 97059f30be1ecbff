//! Support for the code `#[task]` and `#[flow]` generate. Each check below exists to turn a
//! misuse into one error that names the problem and its fix, at the user's token.
//!
//! - A check names the user's type through a trait, `<T as RetryArg>::retry_clone(…)`, which
//!   the macros write with that type's span: rustc points at the type, and the trait's
//!   `on_unimplemented` names the fix. A trait's method, unlike a generic function's bound,
//!   adds no "required by a bound in `flowcore::__private::…`" note sending users here, and
//!   `#[diagnostic::do_not_recommend]` on a blanket impl reports the missing trait in our words
//!   (one error for `Serialize` and `Deserialize` together) instead of the impl's bounds.
//! - The runtime's own bounds must not fail again for the same mistake, at the attribute:
//!   [`Repeat`](crate::__private::Repeat) and [`ArgsKey`](crate::__private::ArgsKey) need nothing of the arguments (each argument is checked on its
//!   own), and [`Fallible`](crate::__private::Fallible) needs `TaskError`, which the macros check first at `E`.
//!   Where a runtime bound can still fail, the macros write its generic argument over the
//!   user's type, so the error lands there and rustc merges it with the check's.
//! - Hooks and `retry_if` are coerced to their function pointer types where they are written,
//!   so a wrong signature is reported at the user's function with the signature wanted.

use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::TimeoutError;
use crate::record::{FlowRunRecord, TaskRunRecord};
use crate::task::TaskBody;

pub use crate::attempt::{Behaviour, Once, Repeat, Timeout};
pub use crate::cache::{ArgsKey, Cache, CacheArg};
pub use crate::call::{Finished, Record, RunFuture};
pub use crate::codec::{
    ArgProbe, Codec, NotRecordable, NotStorable, Probe, Recordable, Storable, TraceArg, parameters,
};
pub use crate::crash_hooks::Registration;
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
pub fn upstream_of(args: &[Option<&dyn TraceArg>]) -> crate::record::Upstreams {
    let mut upstream = crate::record::Upstreams::default();
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
///
/// The blanket impl keeps its `Clone` bound visible to rustc (no `do_not_recommend`), so the
/// error also says "the trait `Clone` is not implemented" and suggests `#[derive(Clone)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` must implement `Clone`: with `retries`, each attempt gets its own copy of the arguments",
    label = "not `Clone`",
    note = "derive or implement `Clone` for it, take a reference or an `Arc` instead, or remove `retries`"
)]
pub trait RetryArg: Sized {
    /// Copies the argument for the next attempt. The macros call it once per argument, as
    /// `<T as RetryArg>::retry_clone(arg)` with the argument's type as written, so a type that
    /// is not `Clone` is reported at that type.
    fn retry_clone(&self) -> Self;
}

impl<T: Clone> RetryArg for T {
    fn retry_clone(&self) -> Self {
        self.clone()
    }
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

/// One argument as a part of the cache key. The macros call it as
/// `<T as CacheKeyArg>::key_part(&arg)` with the argument's type as written, so a type that is
/// not `Serialize` is reported at that type; [`ArgsKey`] itself needs nothing more, so no error
/// is repeated for the arguments as a whole.
#[diagnostic::on_unimplemented(
    message = "`{Self}` must implement `serde::Serialize`: with `cache_for`, the arguments make the cache key",
    label = "not `Serialize`",
    note = "derive `Serialize` for it, or set `cache_key = key_fn` (`fn(&A, &B, …) -> impl Display`) to compute the key yourself"
)]
pub trait CacheKeyArg {
    fn key_part(&self) -> &dyn CacheArg;
}

#[diagnostic::do_not_recommend]
impl<T: CacheArg> CacheKeyArg for T {
    fn key_part(&self) -> &dyn CacheArg {
        self
    }
}

/// The value a task with `cache_for` stores: its output, or the `T` of `Result<T, E>`.
///
/// One trait for both directions, so a type with neither gets one error. The supertraits let
/// rustc see that the cache's own `Serialize` and `DeserializeOwned` bounds fail for the same
/// reason, at the same type, and not report them again.
#[diagnostic::on_unimplemented(
    message = "`{Self}` must implement `serde::Serialize` and `serde::Deserialize`: with `cache_for`, the result is stored as JSON and read back",
    label = "not `Serialize` and `Deserialize`",
    note = "derive both for it (`#[derive(Serialize, Deserialize)]`), or remove `cache_for`"
)]
pub trait CacheValue: Serialize + DeserializeOwned {}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> CacheValue for T {}

/// Checks the cached value's type where the macros can write it out.
///
/// A generic bound, not a trait method as the other checks: rustc would report each supertrait
/// of a trait method's `Self` on its own, two errors for one mistake.
pub const fn assert_cache_value<T: CacheValue>() {}

/// Checks the cached value's type where the macros cannot write it out (`MyResult` for
/// `Result<T, E>`).
pub const fn assert_cache_output<K: Outcome<R>, R>()
where
    K::Value: CacheValue,
{
}

// ---------------------------------------------------------------------------------------------
// `background`: the arguments go to a worker as JSON, the output comes back as JSON.

pub use crate::background::{
    Background, BackgroundMarker, BackgroundTask, Backgrounded, Claim, run_claimed,
};

/// One argument of a background task. The macros call it as
/// `<T as BackgroundArg>::to_json(&arg)` and `<T as BackgroundArg>::from_json(value)` with the
/// argument's type as written, so a type that is not a serde type is reported once, at that
/// type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` must implement `serde::Serialize` and `serde::Deserialize`: the arguments of a background task are sent to a worker as JSON",
    label = "not `Serialize` and `Deserialize`",
    note = "derive both for it (`#[derive(Serialize, Deserialize)]`), pass an owned type (`String` for `&str`), or remove `background`"
)]
pub trait BackgroundArg: Sized {
    /// The argument as JSON, or why it does not serialize.
    fn to_json(&self) -> Result<serde_json::Value, String>;
    /// The argument read back by a worker.
    fn from_json(value: serde_json::Value) -> Result<Self, String>;
}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned + Send + 'static> BackgroundArg for T {
    fn to_json(&self) -> Result<serde_json::Value, String> {
        serde_json::to_value(self).map_err(|e| e.to_string())
    }

    fn from_json(value: serde_json::Value) -> Result<Self, String> {
        serde_json::from_value(value).map_err(|e| e.to_string())
    }
}

/// A call's arguments as the JSON array a worker decodes them from.
pub fn background_arguments(
    args: impl IntoIterator<Item = Result<serde_json::Value, String>>,
) -> Result<String, String> {
    let args: Vec<serde_json::Value> = args.into_iter().collect::<Result<_, _>>()?;
    serde_json::to_string(&args).map_err(|e| e.to_string())
}

/// A delayed run's arguments as a worker reads them: one JSON value per parameter of the
/// task, in order, each then decoded by [`BackgroundArg::from_json`].
pub fn decode_arguments(
    task: &str,
    json: &str,
    count: usize,
) -> Result<std::vec::IntoIter<serde_json::Value>, String> {
    let wrong = |why: String| {
        format!(
            "the arguments recorded for task '{task}' do not fit its parameters ({why}): was the run delayed by another version of the program?"
        )
    };
    let values: Vec<serde_json::Value> =
        serde_json::from_str(json).map_err(|e| wrong(e.to_string()))?;
    if values.len() != count {
        return Err(wrong(format!("{} recorded, {count} taken", values.len())));
    }
    Ok(values.into_iter())
}

/// An argument of [`decode_arguments`] decoded to its parameter's type, or why it does not
/// fit.
pub fn argument<T>(task: &str, decoded: Result<T, String>) -> Result<T, String> {
    decoded.map_err(|e| {
        format!("an argument recorded for task '{task}' does not fit its parameter ({e}): was the run delayed by another version of the program?")
    })
}

pub use crate::background::BackgroundValue;

// ---------------------------------------------------------------------------------------------
// `timeout`.

/// The error type of a task or flow with `timeout`.
#[diagnostic::on_unimplemented(
    message = "`timeout` needs the error type `{Self}` to implement `From<flowcore::TimeoutError>`",
    label = "the timeout is returned as an `Err` of this type",
    note = "`anyhow::Error` and `Box<dyn Error + Send + Sync>` work as they are; give an error enum a `#[from] flowcore::TimeoutError` variant, or implement `From<flowcore::TimeoutError>`"
)]
pub trait FromTimeout: Sized {
    /// How a timed-out attempt becomes the body's output: `Err(E::from(timeout))`. The macros
    /// name `E` (`<E as FromTimeout>::timeout_result`), so an `E` without the conversion is
    /// reported at the error type.
    fn timeout_result<T>(timeout: TimeoutError) -> Result<T, Self>;
}

#[diagnostic::do_not_recommend]
impl<E: From<TimeoutError>> FromTimeout for E {
    fn timeout_result<T>(timeout: TimeoutError) -> Result<T, E> {
        Err(E::from(timeout))
    }
}

// ---------------------------------------------------------------------------------------------
// An attribute with an error.

/// The body type of a call whose attribute has an error. The macros then write the function
/// with its usual shape, `fn f(…) -> TaskCall<UnexpandedTask<Output>>`, and
/// `unimplemented!()` as its code, beside the error: callers type-check against it, so the
/// user sees the attribute's error alone. It cannot be built.
pub struct Unexpanded<R, Rec>(Infallible, PhantomData<fn() -> (R, Rec)>);

/// See [`Unexpanded`].
pub type UnexpandedTask<R> = Unexpanded<R, TaskRunRecord>;

/// See [`Unexpanded`].
pub type UnexpandedFlow<R> = Unexpanded<R, FlowRunRecord>;

impl<R, Rec: Record> Future for Unexpanded<R, Rec> {
    type Output = Finished<R, Rec>;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        match self.0 {}
    }
}

impl<R> crate::sealed::TaskBody for Unexpanded<R, TaskRunRecord> {}

impl<R> TaskBody for Unexpanded<R, TaskRunRecord> {
    fn options(&mut self) -> &mut CallOptions<R> {
        match self.0 {}
    }

    fn task_name(&self) -> &'static str {
        match self.0 {}
    }

    fn tags(&self) -> &'static [Cow<'static, str>] {
        match self.0 {}
    }
}
