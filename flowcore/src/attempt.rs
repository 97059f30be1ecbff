//! The attempt loop shared by task runs and flow runs: run the body, judge the result, wait
//! and retry, time out.

use std::any::Any;
use std::borrow::Cow;
use std::fmt::Write as _;
use std::future::Future;
use std::ops::Range;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;

use crate::clock::Timestamp;
use crate::error::TimeoutError;
use crate::hooks::{Hooks, RunInfo};
use crate::logging::log_final_state;
use crate::outcome::Outcome;
use crate::panic::panic_message;
use crate::record::History;
use crate::retry::RetryPolicy;
use crate::run_hooks::ActiveHooks;
use crate::state::{State, StateKind, shared_text};

/// Makes the future of each attempt.
#[doc(hidden)]
pub trait Attempts {
    type Output;
    type Future: Future<Output = Self::Output>;

    /// The next attempt's future; `last` is true for the final one allowed.
    fn attempt(&mut self, last: bool) -> Self::Future;
}

/// A body that runs at most once: its arguments are moved in, so they need not be `Clone`.
#[doc(hidden)]
pub struct Once<A, F>(Option<(A, F)>);

impl<A, F> Once<A, F> {
    pub fn new(args: A, body: F) -> Self {
        Once(Some((args, body)))
    }
}

impl<A, F, Fut> Attempts for Once<A, F>
where
    F: FnOnce(A) -> Fut,
    Fut: Future,
{
    type Output = Fut::Output;
    type Future = Fut;

    fn attempt(&mut self, _last: bool) -> Fut {
        let (args, body) = self
            .0
            .take()
            .expect("the macros only use Once for runs without retries");
        body(args)
    }
}

/// A body that may run again: each attempt gets a copy of the arguments, made by `copy`,
/// except the last, which gets the originals.
///
/// `copy` is built by the macros from one `Clone` call per argument, each naming the
/// argument's type, so an argument that is not `Clone` is reported at its own type.
#[doc(hidden)]
pub struct Repeat<A, F> {
    args: Option<A>,
    copy: fn(&A) -> A,
    body: F,
}

impl<A, F> Repeat<A, F> {
    pub fn new(args: A, copy: fn(&A) -> A, body: F) -> Self {
        Repeat {
            args: Some(args),
            copy,
            body,
        }
    }
}

impl<A, F, Fut> Attempts for Repeat<A, F>
where
    F: FnMut(A) -> Fut,
    Fut: Future,
{
    type Output = Fut::Output;
    type Future = Fut;

    fn attempt(&mut self, last: bool) -> Fut {
        let args = if last {
            self.args.take()
        } else {
            self.args.as_ref().map(self.copy)
        };
        (self.body)(args.expect("no attempt follows the last one"))
    }
}

/// `timeout = "…"`: the limit, and how to turn [`TimeoutError`] into the body's output.
#[doc(hidden)]
pub struct Timeout<R> {
    pub after: Duration,
    pub error: fn(TimeoutError) -> R,
}

/// The typed parts of a task's or flow's behaviour, which the static spec cannot hold.
#[doc(hidden)]
pub struct Behaviour<R, E> {
    pub retry_if: Option<fn(&E) -> bool>,
    pub timeout: Option<Timeout<R>>,
}

/// A run that is going on: it records states and fires hooks.
pub(crate) trait LiveRun {
    fn history(&self) -> &History;

    fn push(&mut self, state: State);

    fn set_attempts(&mut self, attempts: u32);

    /// Makes room in the history for `additional` more states.
    fn reserve_states(&mut self, additional: usize);

    fn hooks(&self) -> &'static Hooks;

    /// The run-time hooks ([`RunHooks`](crate::RunHooks)) it fires.
    fn active_hooks(&self) -> &ActiveHooks;

    /// What the hooks are told about the run, its history included.
    fn info(&self) -> RunInfo<'_>;

    /// Tells the store that the run enters `state`, before it is pushed: the event made in
    /// the argument of the store's `send`, which takes it where it is (made first and then
    /// sent, an event of 200 bytes was copied on its way).
    fn send_transition(&mut self, state: &State);

    /// Records a new state (here and in the store), logs it if it is final, and fires the
    /// hooks.
    fn transition(&mut self, kind: StateKind, message: Option<Arc<str>>) {
        let state = State::with_text(kind, Timestamp::now(), message);
        if state.is_final() {
            log_final_state(&state);
            crate::span::record_final_state(state.kind);
        }
        self.send_transition(&state);
        self.push(state);
        let hooks = self.hooks();
        let active = self.active_hooks();
        if hooks.is_empty() && active.is_empty() {
            return;
        }
        // What the run logged comes out before what its hooks print or send (the console's
        // lines are written by a thread of their own: see `logging::writer`).
        crate::logging::flush();
        if !hooks.is_empty() {
            hooks.fire(&self.info());
        }
        if !active.is_empty() {
            active.fire(&self.info());
        }
    }
}

/// Writes `attempt 2/3`: a state message written without `format!`, whose machinery costs
/// more than the rest of a retried attempt's states.
fn write_attempt_of(into: &mut String, attempt: u32, max: u32) {
    into.push_str("attempt ");
    into.push_str(itoa::Buffer::new().format(attempt));
    into.push('/');
    into.push_str(itoa::Buffer::new().format(max));
}

/// A Retrying state's message, `attempt 1/3 failed: {problem}; retrying {when}`, with where
/// its problem and its `when` are (for the warning logged with it).
struct RetryMessage {
    text: Arc<str>,
    problem: Range<usize>,
    when: Range<usize>,
}

impl RetryMessage {
    /// The message, the problem written straight into it by `write_problem`.
    fn new(attempt: u32, max: u32, when: &str, write_problem: impl FnOnce(&mut String)) -> Self {
        let (mut problem, mut when_at) = (0..0, 0..0);
        let text = shared_text(|text| {
            write_attempt_of(text, attempt, max);
            text.push_str(" failed: ");
            let start = text.len();
            write_problem(text);
            problem = start..text.len();
            text.push_str("; retrying ");
            let start = text.len();
            text.push_str(when);
            when_at = start..text.len();
        });
        RetryMessage {
            text,
            problem,
            when: when_at,
        }
    }
}

/// When the next attempt starts, for a Retrying state's message: `now`, `in 15s`.
fn when(delay: Duration) -> Cow<'static, str> {
    if delay.is_zero() {
        Cow::Borrowed("now")
    } else {
        Cow::Owned(format!("in {}", humantime::format_duration(delay)))
    }
}

/// How the attempts ended.
pub(crate) enum Ending<R> {
    /// The output to return; the run is in its final state (Completed, Failed or TimedOut).
    Output(R),
    /// The body panicked; the run is Failed and the panic must go on to the caller.
    Panicked(Box<dyn Any + Send>),
}

/// Runs attempts until one succeeds, retries run out, `retry_if` says stop, or the body
/// panics. Records Running, Retrying and the final state on `run`.
///
/// `succeeded` sees a successful output just before the run's `Completed` is recorded: what it
/// keeps of the output reaches the store with that state, never after.
pub(crate) async fn attempt_loop<K, R, A, L>(
    run: &mut L,
    policy: &RetryPolicy,
    attempts: &mut A,
    behaviour: &Behaviour<R, K::Error>,
    succeeded: impl FnOnce(&mut L, &R),
) -> Ending<R>
where
    K: Outcome<R>,
    A: Attempts<Output = R>,
    L: LiveRun,
{
    let max = policy.attempts();
    let mut attempt = 1;
    loop {
        run.set_attempts(attempt);
        let note = (max > 1).then(|| shared_text(|note| write_attempt_of(note, attempt, max)));
        run.transition(StateKind::Running, note);
        let last = attempt == max;
        let body = AssertUnwindSafe(attempts.attempt(last)).catch_unwind();
        let finished = match &behaviour.timeout {
            Some(t) => {
                let deadline = tokio::time::Instant::now() + t.after;
                // tokio cannot interrupt code that blocks its thread: such a body returns when
                // it returns, and the attempt is still TimedOut if its time ran out meanwhile
                // (what it returned is dropped; a panic still goes on).
                // Boxed, as the retry's sleep below: a timer is 112 bytes, which every run's
                // future would otherwise carry, with a timeout or not.
                Box::pin(tokio::time::timeout_at(deadline, body))
                    .await
                    .ok()
                    .filter(|out| out.is_err() || tokio::time::Instant::now() <= deadline)
            }
            None => Some(body.await),
        };
        // A failure that is retried: the Retrying state's message, with its problem and when
        // the next attempt starts.
        let (message, delay) = {
            let retry = |write_problem: &dyn Fn(&mut String)| {
                let delay = policy.delay_before_retry(attempt);
                (
                    RetryMessage::new(attempt, max, &when(delay), write_problem),
                    delay,
                )
            };
            match finished {
                Some(Ok(out)) => match K::error(&out) {
                    None => {
                        succeeded(run, &out);
                        run.transition(StateKind::Completed, None);
                        return Ending::Output(out);
                    }
                    Some(error) => {
                        let retryable = behaviour.retry_if.is_none_or(|retry_if| retry_if(error));
                        if last || !retryable {
                            let message = shared_text(|into| K::write_message(error, into));
                            run.transition(StateKind::Failed, Some(message));
                            return Ending::Output(out);
                        }
                        retry(&|into| K::write_message(error, into))
                    }
                },
                Some(Err(panic)) => {
                    // A panic is a bug, not a transient failure: it is not retried.
                    run.transition(StateKind::Failed, Some(panic_message(&*panic).into()));
                    return Ending::Panicked(panic);
                }
                None => {
                    let timeout = behaviour
                        .timeout
                        .as_ref()
                        .expect("only a timeout ends an attempt without a result");
                    let error = TimeoutError::new(timeout.after);
                    if last {
                        run.transition(StateKind::TimedOut, Some(error.to_string().into()));
                        return Ending::Output((timeout.error)(error));
                    }
                    retry(&|into| {
                        let _ = write!(into, "{error}");
                    })
                }
            }
        };
        tracing::warn!(
            target: "flowcore",
            "Attempt {attempt}/{max} failed: {}. Retrying {}",
            &message.text[message.problem.clone()],
            &message.text[message.when.clone()],
        );
        if attempt == 1 {
            // Room for every state still to come (Retrying and Running for each attempt
            // left, and the final one) at once, rather than the history growing by copying.
            // (At most 16: a run allowed 100 attempts seldom needs them.)
            run.reserve_states((2 * (max - attempt) as usize + 1).min(16));
        }
        run.transition(StateKind::Retrying, Some(message.text));
        if !delay.is_zero() {
            Box::pin(tokio::time::sleep(delay)).await;
        }
        attempt += 1;
    }
}
