//! Stage 2b: checks that need several arguments, or the arguments and the function together.

use crate::args::{Args, Macro};
use crate::errors::Errors;
use crate::expand::borrows;
use crate::run_name::{self, RunName};
use crate::signature::{Function, display_name};

pub(crate) fn validate(args: &Args, function: &Function, which: Macro, errors: &mut Errors) {
    let noun = which.noun();

    let retries = args.retries.as_ref().map_or(0, |r| r.value);
    if let Some(setting) = &args.retries
        && retries > 0
        && !function.fallible
    {
        // A panic is a bug and never retried, so an output that cannot be `Err` never is.
        errors.at(
            &setting.key,
            format!(
                "`retries` needs the {noun} to return a `Result`: only an `Err` is retried (a panic never is); return `Result<T, E>` (or an alias named `Result`, like `io::Result<T>`), or remove `retries`"
            ),
        );
    }
    if retries == 0 {
        let fix = match &args.retries {
            Some(_) => "with `retries = 0`; set `retries` above 0 or remove it",
            None => "without retries; add `retries = 3`",
        };
        let retry_keys = [
            args.retry_delay.as_ref().map(|s| &s.key),
            args.retry_backoff.as_ref().map(|s| &s.key),
            args.retry_jitter.as_ref().map(|s| &s.key),
            args.retry_if.as_ref().map(|s| &s.key),
        ];
        for key in retry_keys.into_iter().flatten() {
            errors.at(key, format!("`{key}` has no effect {fix}"));
        }
    }
    if let (Some(backoff), Some(delay)) = (&args.retry_backoff, &args.retry_delay)
        && delay.value.is_list
    {
        errors.at(
            &backoff.key,
            "`retry_backoff` cannot be combined with a list of delays: give one `retry_delay` to multiply, or list every delay",
        );
    }
    // `retry_if` without a `Result` is already an error: of `retries`, or of `retry_if`
    // without retries.
    if let Some(timeout) = &args.timeout
        && !function.fallible
    {
        errors.at(
            &timeout.key,
            format!(
                "`timeout` needs a {noun} that returns `Result<T, E>` with `E: From<flowcore::TimeoutError>`, so the timeout can be returned as an error (`anyhow::Error` works as is)"
            ),
        );
    }
    if args.background.is_some() {
        validate_background(function, errors);
    }
    if let Some(setting) = &args.run_name
        && let RunName::Template(template) = &setting.value
    {
        let arguments: Vec<String> = function
            .args
            .iter()
            .map(|a| display_name(&a.name))
            .collect();
        run_name::check(
            template,
            &setting.key.to_string(),
            &function.ident().to_string(),
            &arguments,
            errors,
        );
    }
    if args.cache_for.is_none() {
        if let Some(key) = &args.cache_key {
            errors.at(
                &key.key,
                "`cache_key` has no effect without `cache_for`; add `cache_for = \"1d\"`",
            );
        }
        if let Some(refresh) = &args.refresh_cache {
            errors.at(
                &refresh.key,
                "`refresh_cache` has no effect without `cache_for`; add `cache_for = \"1d\"`",
            );
        }
    }
}

/// A background task is called on another machine with its arguments decoded from JSON, and
/// named there without type arguments: its arguments and output own their data, and it is not
/// generic.
fn validate_background(function: &Function, errors: &mut Errors) {
    // Lifetimes are reported at the arguments that borrow.
    if let Some(param) = function
        .body
        .sig
        .generics
        .params
        .iter()
        .find(|p| !matches!(p, syn::GenericParam::Lifetime(_)))
    {
        errors.at(
            param,
            format!(
                "a `background` task cannot be generic: a worker decodes its arguments from JSON and must know their types; give `{}` concrete types, or remove `background`",
                function.ident()
            ),
        );
    }
    for arg in &function.args {
        if borrows(&arg.ty) {
            errors.at(
                &arg.ty,
                "the arguments of a `background` task are sent to a worker as JSON and must own their data: take an owned type (`String` for `&str`, `Vec<T>` for `&[T]`)",
            );
        }
    }
    if borrows(&function.output) {
        errors.at(
            &function.output,
            "the output of a `background` task is sent back from its worker as JSON and must own its data: return an owned type (`String` for `&str`)",
        );
    }
}
