//! The `#[task]` and `#[flow]` attributes of [flowcore](https://docs.rs/flowcore-runtime).
//!
//! Use them through `flowcore` (`use flowcore::{task, flow};`); the code they generate refers
//! to `::flowcore`, or to the path given with `crate = "…"`. Each attribute runs in stages:
//! `item` reads the function (its body stays tokens), `args` parses the arguments into a
//! typed struct, `signature` and `validate` check the function and the arguments together,
//! and `expand` writes the wrapper. Every problem found is reported, each at its own tokens;
//! with any, `fallback` writes the function with its usual shape beside the errors, so that
//! its callers add none.

use proc_macro::TokenStream;

mod args;
mod duration;
mod errors;
mod expand;
mod fallback;
mod item;
mod lifetimes;
mod run_name;
mod signature;
#[cfg(test)]
mod tests;
mod validate;

use args::Macro;
use errors::Errors;
use expand::Krate;
use item::FnItem;

/// Turns an `async fn` into a tracked task.
///
/// Calling the function returns a [`TaskCall`]; awaiting it runs the task and gives exactly the
/// declared output. Inside a flow the task run belongs to the flow run; outside, it is a
/// standalone task run. A `Result` output fails the run on `Err` (after retries); any other
/// output fails only on a panic, which is recorded and then goes on to the caller.
///
/// Every argument is optional:
///
/// | argument | meaning |
/// |---|---|
/// | `name = "extract"` | the task's name (default: the function's) |
/// | `retries = 10` | attempts after the first; needs a `Result` output (only an `Err` is retried, never a panic), and the arguments must be `Clone` |
/// | `retry_delay = "15s"` or `["1s", "10s", "1m"]` | delay before each retry (a list's last entry repeats) |
/// | `retry_backoff = 2.0` | multiply the delay after each retry |
/// | `retry_jitter = 0.2` | move each delay randomly by up to ±20 % |
/// | `retry_if = path` | `fn(&E) -> bool`: errors for which it returns `false` are not retried; a timed-out attempt is always retried while retries remain |
/// | `timeout = "30s"` | an attempt running longer is cancelled and counts as `TimedOut`; needs `Result<T, E>` with `E: From<TimeoutError>` |
/// | `cache_for = "1d"` | reuse the result of a call with the same arguments for this long |
/// | `cache_key = path` | compute the cache key from references to the arguments instead |
/// | `refresh_cache = true` | always run and replace the cached result |
/// | `tags = ["db", "http"]` | labels on every run (a task run also carries its flow run's) |
/// | `task_run_name = "fetch-{url}"` or `= path` | the run's name: a template over the arguments, checked at compile time, or a function given references to them |
/// | `on_state = f` or `[f, g]` | `fn(&RunInfo, &State, &State)`, called on every transition |
/// | `on_failure = f`, `on_completion = f`, `on_cancellation = f` | `fn(&RunInfo, &State)`, called on the final state |
/// | `on_crashed = f` | `fn(&RunInfo, &State)`, called by the process that marks a run of a dead process `Crashed` (see `RunHooks::on_crashed`) |
/// | `crate = "my_reexport::flowcore"` | where the generated code finds flowcore, for a crate that re-exports it (default `::flowcore`) |
///
/// Durations are humantime strings ("250ms", "15s", "1h 30m", "1d"), checked at compile time.
/// A `Result` output is a type named `Result` (`Result<T, E>`, `io::Result<T>`,
/// `anyhow::Result<T>`); a task returning anything else fails only by panicking, so `retries`,
/// `retry_if` and `timeout` need a `Result`.
///
/// ```
/// use flowcore::{task, RunInfo, State};
///
/// fn alert_failed(run: &RunInfo, _old: &State, new: &State) {
///     if new.is_failed() {
///         println!("Failed! {}", run.name());
///     }
/// }
///
/// #[task(retries = 10, retry_delay = "15s", on_state = alert_failed, tags = ["http"])]
/// async fn get_data(topic: String) -> Result<String, std::io::Error> {
///     Ok(format!("a photo of {topic}"))
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), std::io::Error> {
/// let photo = get_data("cats".into()).await?;
/// assert_eq!(photo, "a photo of cats");
/// # Ok(())
/// # }
/// ```
///
/// A task is a free function: no `self`, no `impl Trait` arguments (use a named type
/// parameter). Argument types with lifetimes hidden in a path (`Cow<str>`) need them written
/// out (`Cow<'_, str>`).
///
/// [`TaskCall`]: https://docs.rs/flowcore/latest/flowcore/struct.TaskCall.html
#[proc_macro_attribute]
pub fn task(args: TokenStream, item: TokenStream) -> TokenStream {
    attribute(args, item, Macro::Task)
}

/// Turns an `async fn` into a flow: each call is a tracked flow run whose task runs, subflow
/// runs, states and summary are recorded.
///
/// Arguments: `name`, `retries`, `retry_delay`, `retry_backoff`, `retry_jitter`, `retry_if`,
/// `timeout`, `tags`, `flow_run_name` (as `task_run_name`), `on_state`, `on_failure`,
/// `on_completion`, `on_cancellation`, `on_crashed` and `crate`, with the meanings they
/// have on [`macro@task`] (`retries` needs a `Result` output here too: a panicking flow body is
/// not retried). A flow's final state is `Failed` if its body returns `Err` or panics,
/// `TimedOut` on timeout, `Cancelled` if its future is dropped, and `Completed` otherwise, even
/// when task runs inside it failed and the body handled them.
///
/// ```
/// use flowcore::{flow, task};
///
/// #[task]
/// async fn say_hello(name: &str) {
///     println!("Hello, {name}!");
/// }
///
/// #[flow(name = "hello")]
/// async fn hello_flow() {
///     say_hello("world").await;
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let ((), run) = hello_flow().with_run().await;
/// assert!(run.state().is_completed());
/// # }
/// ```
#[proc_macro_attribute]
pub fn flow(args: TokenStream, item: TokenStream) -> TokenStream {
    attribute(args, item, Macro::Flow)
}

fn attribute(args: TokenStream, item: TokenStream, which: Macro) -> TokenStream {
    expand_attribute(args.into(), item.into(), which).into()
}

/// The whole expansion: parse, check, then write the wrapper; on any error, the errors and a
/// function of the same shape (see [`fallback`]).
fn expand_attribute(
    args: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
    which: Macro,
) -> proc_macro2::TokenStream {
    let function = match syn::parse2::<FnItem>(item.clone()) {
        Ok(f) => f,
        Err(_) => {
            let mut out = not_a_function(&item, which).to_compile_error();
            out.extend(item);
            return out;
        }
    };
    let mut errors = Errors::default();
    let args = args::parse(args, which, &mut errors);
    let analyzed = signature::analyze(&function, which, &mut errors);
    if errors.is_empty() {
        validate::validate(&args, &analyzed, which, &mut errors);
    }
    match errors.into_error() {
        None => expand::expand(args, analyzed, which),
        Some(error) => {
            let mut out = error.to_compile_error();
            out.extend(fallback::expand(
                &function,
                which,
                &Krate::new(args.krate.as_ref()),
            ));
            out
        }
    }
}

/// The error for an attribute on something other than a function, at the item's keyword and
/// name.
fn not_a_function(item: &proc_macro2::TokenStream, which: Macro) -> syn::Error {
    use syn::Item;

    let at = |keyword: &dyn quote::ToTokens, ident: &dyn quote::ToTokens, what: &str| {
        let mut tokens = keyword.to_token_stream();
        ident.to_tokens(&mut tokens);
        syn::Error::new_spanned(
            tokens,
            format!("{} goes on an `async fn`, not on {what}", which.attr()),
        )
    };
    match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Struct(i)) => at(&i.struct_token, &i.ident, "a struct"),
        Ok(Item::Enum(i)) => at(&i.enum_token, &i.ident, "an enum"),
        Ok(Item::Union(i)) => at(&i.union_token, &i.ident, "a union"),
        Ok(Item::Trait(i)) => at(
            &i.trait_token,
            &i.ident,
            "a trait; put it on a free `async fn`",
        ),
        Ok(Item::Impl(i)) => at(
            &i.impl_token,
            &i.self_ty,
            "an `impl` block; a task or flow is a free `async fn`",
        ),
        Ok(Item::Mod(i)) => at(&i.mod_token, &i.ident, "a module"),
        Ok(Item::Const(i)) => at(&i.const_token, &i.ident, "a constant"),
        Ok(Item::Static(i)) => at(&i.static_token, &i.ident, "a static"),
        Ok(Item::Type(i)) => at(&i.type_token, &i.ident, "a type alias"),
        Ok(Item::Use(i)) => at(&i.use_token, &i.tree, "a `use` item"),
        _ => syn::Error::new(
            proc_macro2::Span::call_site(),
            format!("{} goes on an `async fn` with a body", which.attr()),
        ),
    }
}
