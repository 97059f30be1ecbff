//! The error a timed-out task or flow returns.

use std::fmt;
use std::time::Duration;

/// What a task or flow with `timeout = "…"` returns, converted into its error type with
/// `From`, when its last attempt runs out of time. The run's final state is `TimedOut`.
///
/// A task with a timeout must return `Result<T, E>` with `E: From<TimeoutError>`;
/// `anyhow::Error` and `Box<dyn Error + Send + Sync>` qualify as they are, and a `thiserror`
/// enum needs a `#[from] TimeoutError` variant.
///
/// ```
/// use flowcore::TimeoutError;
/// use std::time::Duration;
///
/// let err = TimeoutError::new(Duration::from_secs(30));
/// assert_eq!(err.to_string(), "timed out after 30s");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeoutError {
    after: Duration,
}

impl TimeoutError {
    /// A timeout that struck after `after`.
    pub fn new(after: Duration) -> Self {
        TimeoutError { after }
    }

    /// The time limit that was exceeded.
    pub fn after(&self) -> Duration {
        self.after
    }
}

impl fmt::Display for TimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timed out after {}",
            humantime::format_duration(self.after)
        )
    }
}

impl std::error::Error for TimeoutError {}
