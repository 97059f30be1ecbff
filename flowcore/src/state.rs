//! The states a task run or flow run passes through.

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;

/// What a run is doing, or how it ended.
///
/// A task run starts `Pending`, is `Running` during each attempt and `Retrying` while it waits
/// before the next one, and ends in exactly one final state: `Completed`, `Cached`, `Failed`,
/// `TimedOut`, `Cancelled`, `Crashed` or `Skipped`. A flow run of a deployment starts
/// `Scheduled` (for its scheduled time), passes through `Late` if it starts later than that,
/// then goes on as any flow run does.
///
/// ```
/// use flowcore::StateKind;
///
/// assert!(StateKind::TimedOut.is_failed());
/// assert!(StateKind::Cached.is_completed());
/// assert!(!StateKind::Retrying.is_final());
/// assert_eq!(StateKind::TimedOut.to_string(), "TimedOut");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum StateKind {
    /// A deployment's run, waiting for its scheduled time or for a process serving the
    /// deployment to take it ("scheduled for 2026-11-22T18:03:00Z").
    Scheduled,
    /// A deployment's run that started after its scheduled time, by more than the
    /// deployment's `late_after` ("started 45s late").
    Late,
    /// Created, not started yet.
    Pending,
    /// An attempt is running.
    Running,
    /// An attempt failed and the run waits before the next one.
    Retrying,
    /// A flow run waiting for input (`flowcore::pause`), with the question.
    Paused,
    /// A deployment's run asked to be cancelled from outside (`flowcore runs cancel`), whose
    /// process has not dropped it yet ("cancel requested by …"): it ends `Cancelled`.
    Cancelling,
    /// Finished successfully.
    Completed,
    /// Finished by returning a cached result; the body did not run.
    Cached,
    /// Finished with an error or a panic, after any retries.
    Failed,
    /// The last attempt ran out of time.
    TimedOut,
    /// The run's future was dropped before it finished (a flow timeout, Ctrl-C, `select!`).
    Cancelled,
    /// The process running it died; set by the run store, never by a live process.
    Crashed,
    /// Not run, because a task run it waited for did not complete ("upstream failed: NAME").
    Skipped,
}

impl StateKind {
    /// Every state, in the order a run can pass through them.
    pub const ALL: [StateKind; 14] = [
        StateKind::Scheduled,
        StateKind::Late,
        StateKind::Pending,
        StateKind::Running,
        StateKind::Retrying,
        StateKind::Paused,
        StateKind::Cancelling,
        StateKind::Completed,
        StateKind::Cached,
        StateKind::Failed,
        StateKind::TimedOut,
        StateKind::Cancelled,
        StateKind::Crashed,
        StateKind::Skipped,
    ];

    /// The state's name, as shown in logs and summaries.
    pub const fn as_str(self) -> &'static str {
        match self {
            StateKind::Scheduled => "Scheduled",
            StateKind::Late => "Late",
            StateKind::Pending => "Pending",
            StateKind::Running => "Running",
            StateKind::Retrying => "Retrying",
            StateKind::Paused => "Paused",
            StateKind::Cancelling => "Cancelling",
            StateKind::Completed => "Completed",
            StateKind::Cached => "Cached",
            StateKind::Failed => "Failed",
            StateKind::TimedOut => "TimedOut",
            StateKind::Cancelled => "Cancelled",
            StateKind::Crashed => "Crashed",
            StateKind::Skipped => "Skipped",
        }
    }

    /// The state's colour, as Prefect's UI shows it, in CSS hex: one table for the task
    /// graph's drawings and the dashboard. Completed green, Cached teal, Failed, TimedOut and
    /// Crashed red, Running blue, Scheduled, Late, Pending and Retrying yellow, Cancelled and
    /// Skipped grey.
    ///
    /// ```
    /// use flowcore::StateKind;
    ///
    /// assert_eq!(StateKind::Completed.colour(), "#2e7d32");
    /// assert_eq!(StateKind::Crashed.colour(), StateKind::Failed.colour());
    /// ```
    pub const fn colour(self) -> &'static str {
        match self {
            StateKind::Completed => "#2e7d32",
            StateKind::Cached => "#00897b",
            StateKind::Failed | StateKind::TimedOut | StateKind::Crashed => "#c62828",
            StateKind::Running => "#1565c0",
            StateKind::Scheduled
            | StateKind::Late
            | StateKind::Pending
            | StateKind::Retrying
            | StateKind::Paused => "#f9a825",
            StateKind::Cancelling | StateKind::Cancelled | StateKind::Skipped => "#757575",
        }
    }

    /// The colour of text written on [`colour`](StateKind::colour): dark on yellow, white on
    /// the others.
    pub const fn text_colour(self) -> &'static str {
        match self {
            StateKind::Scheduled
            | StateKind::Late
            | StateKind::Pending
            | StateKind::Retrying
            | StateKind::Paused => "#212121",
            _ => "#ffffff",
        }
    }

    /// `true` once the run is over: nothing follows a final state.
    pub const fn is_final(self) -> bool {
        !matches!(
            self,
            StateKind::Scheduled
                | StateKind::Late
                | StateKind::Pending
                | StateKind::Running
                | StateKind::Retrying
                | StateKind::Paused
                | StateKind::Cancelling
        )
    }

    /// `true` for `Failed` and `TimedOut`: the run ended in an error (as in Prefect, where
    /// `TimedOut` is a kind of failure).
    pub const fn is_failed(self) -> bool {
        matches!(self, StateKind::Failed | StateKind::TimedOut)
    }

    /// `true` for `Completed` and `Cached`: the run produced its result.
    pub const fn is_completed(self) -> bool {
        matches!(self, StateKind::Completed | StateKind::Cached)
    }
}

impl std::str::FromStr for StateKind {
    type Err = String;

    /// Parses a state's name, in any case: `"failed"`, `"TimedOut"`.
    ///
    /// ```
    /// use flowcore::StateKind;
    ///
    /// assert_eq!("timedout".parse::<StateKind>(), Ok(StateKind::TimedOut));
    /// assert!("finished".parse::<StateKind>().unwrap_err().contains("Completed"));
    /// ```
    fn from_str(s: &str) -> Result<Self, String> {
        StateKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                let names: Vec<&str> = StateKind::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown state {s:?}; expected one of: {}", names.join(", "))
            })
    }
}

impl fmt::Display for StateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// One entry of a run's state history: which state, when, and why.
///
/// Displays the way Prefect prints states: `Completed()`, `Failed('status code 503')`.
///
/// ```
/// use flowcore::{State, StateKind, Timestamp};
///
/// let s = State::new(StateKind::Failed, Timestamp::now(), Some("status code 503".into()));
/// assert!(s.is_failed());
/// assert_eq!(s.to_string(), "Failed('status code 503')");
/// assert_eq!(State::new(StateKind::Completed, Timestamp::now(), None).to_string(), "Completed()");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Which state.
    pub kind: StateKind,
    /// When the run entered it.
    pub at: Timestamp,
    /// Why: the error text, `"attempt 2/11"`, `"cache hit"`. Shared rather than copied: the
    /// run's history, the event that takes it to the store and the store's own row of it hold
    /// one text (and a state is 32 bytes, as with a boxed `str`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Arc<str>>,
}

impl State {
    /// A state entered at `at`.
    pub fn new(kind: StateKind, at: Timestamp, message: Option<String>) -> Self {
        State::with_text(kind, at, message.map(Arc::from))
    }

    /// A state entered at `at`, with its message's text made already.
    pub(crate) fn with_text(kind: StateKind, at: Timestamp, message: Option<Arc<str>>) -> Self {
        State { kind, at, message }
    }

    /// The message, or `""`.
    pub fn message(&self) -> &str {
        self.message.as_deref().unwrap_or("")
    }

    /// See [`StateKind::is_final`].
    pub fn is_final(&self) -> bool {
        self.kind.is_final()
    }

    /// See [`StateKind::is_failed`].
    pub fn is_failed(&self) -> bool {
        self.kind.is_failed()
    }

    /// See [`StateKind::is_completed`].
    pub fn is_completed(&self) -> bool {
        self.kind.is_completed()
    }
}

/// A message's text, written by `write` into a buffer this thread keeps, then copied once
/// into the text that the run's history and the store share: one allocation, of its length.
pub(crate) fn shared_text(write: impl FnOnce(&mut String)) -> Arc<str> {
    thread_local! {
        static BUFFER: Cell<String> = const { Cell::new(String::new()) };
    }
    crate::scratch::with_kept(&BUFFER, 1024, |text| {
        write(text);
        Arc::from(text.as_str())
    })
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Piece by piece rather than with `write!`: every run's final state is logged.
        f.write_str(self.kind.as_str())?;
        match &self.message {
            Some(m) => {
                f.write_str("('")?;
                f.write_str(m)?;
                f.write_str("')")
            }
            None => f.write_str("()"),
        }
    }
}
