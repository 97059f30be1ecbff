//! Whether a finished attempt succeeded, decided by the body's declared output type.

use std::convert::Infallible;
use std::fmt::Display;

/// How a task's or flow's output is judged. The macros pick [`Fallible`] when the function
/// returns a `Result` (`Err` is a failure) and [`Plain`] otherwise (only a panic is one).
#[doc(hidden)]
pub trait Outcome<R> {
    /// What a failed attempt carries.
    type Error;
    /// What a cached result stores: the `Ok` value, never an error.
    type Value;

    fn error(out: &R) -> Option<&Self::Error>;
    /// Appends the error's text, its state's message, to `into`: written straight into the
    /// message (a Retrying state's holds it among other words) rather than into a string of
    /// its own first.
    fn write_message(error: &Self::Error, into: &mut String);
    fn value(out: &R) -> Option<&Self::Value>;
    fn from_value(value: Self::Value) -> R;
}

/// Any output: only a panic fails.
#[doc(hidden)]
pub struct Plain;

impl<R> Outcome<R> for Plain {
    type Error = Infallible;
    type Value = R;

    fn error(_: &R) -> Option<&Infallible> {
        None
    }
    fn write_message(error: &Infallible, _: &mut String) {
        match *error {}
    }
    fn value(out: &R) -> Option<&R> {
        Some(out)
    }
    fn from_value(value: R) -> R {
        value
    }
}

/// A `Result`: `Err` fails the attempt.
#[doc(hidden)]
pub struct Fallible;

impl<T, E: TaskError> Outcome<Result<T, E>> for Fallible {
    type Error = E;
    type Value = T;

    fn error(out: &Result<T, E>) -> Option<&E> {
        out.as_ref().err()
    }
    fn write_message(error: &E, into: &mut String) {
        error.write_text(into);
    }
    fn value(out: &Result<T, E>) -> Option<&T> {
        out.as_ref().ok()
    }
    fn from_value(value: T) -> Result<T, E> {
        Ok(value)
    }
}

/// The error type `E` of a task or flow returning `Result<T, E>`: anything `Display`, whose
/// text becomes the failed state's message.
#[diagnostic::on_unimplemented(
    message = "the error type `{Self}` of a task or flow must implement `Display`",
    label = "`{Self}` does not implement `Display`",
    note = "the error's text becomes the failed run's message: implement `Display` for it (`thiserror` derives it), or return `anyhow::Error`"
)]
pub trait TaskError {
    /// The text recorded as the failed state's message.
    fn text(&self) -> String;

    /// Appends [`text`](TaskError::text) to `into`.
    fn write_text(&self, into: &mut String) {
        into.push_str(&self.text());
    }
}

// `do_not_recommend`: a missing `Display` is reported as a missing `TaskError`, with the
// message above, rather than with `Display`'s own.
#[diagnostic::do_not_recommend]
impl<E: Display + ?Sized> TaskError for E {
    fn text(&self) -> String {
        let mut text = String::new();
        self.write_text(&mut text);
        text
    }

    fn write_text(&self, into: &mut String) {
        use std::fmt::Write as _;
        // `{:#}` gives anyhow's "context: cause" chain; other errors ignore the flag. Only the
        // `Display` can fail (a `String` takes every write): what it wrote is kept, and no
        // panic, as `format!` would.
        let _ = write!(into, "{self:#}");
    }
}
