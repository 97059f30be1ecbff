//! Pausing a flow run for input (Prefect's `pause_flow_run(wait_for_input=…)`): the run goes
//! `Paused` with a question and the JSON schema of the answer's type, the flow waits, and the
//! answer comes from outside (`flowcore runs resume RUN --input '…'`, the dashboard's form,
//! [`Store::give_input`](crate::Store::give_input)) as a typed value. Input that does not
//! deserialize into the type is refused with serde's reason, and the run stays paused.
//!
//! A deployment's flow run outlives its process while it waits: a server that stops lets it go
//! at once, and a killed one's run is let go by the next process that writes to the store; it
//! stays `Paused`, input can be given meanwhile, and the next process serving the deployment
//! takes it up as [`resume`](crate::resume) does: its completed task runs' outputs are reused,
//! and its pauses, matched by their order in the run, return the answers they took before or
//! ask again the question they waited at (taking any input given meanwhile). A pause's timeout
//! counts again from there. Other paused runs end with their process.

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::time::Duration;

/// The derive for the answer's type (`#[derive(flowcore::pause::JsonSchema)]`, with
/// `#[schemars(crate = "flowcore::pause::schemars")]`), or add `schemars` to your crate.
pub use schemars::{self, JsonSchema};
use serde::de::DeserializeOwned;

use crate::clock::Timestamp;
use crate::context::FlowContext;
use crate::state::{State, StateKind};
use crate::store::Event;

/// What a paused flow run asks, as the store keeps it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct InputRequest {
    /// Which of the run's pauses asks it: 0 for its first.
    pub pause: u32,
    /// The question, as `pause` was given it.
    pub question: String,
    /// The JSON schema of the answer (schemars's, of the type `pause` waits for).
    pub schema: String,
    /// When the run paused.
    pub asked_at: Timestamp,
    /// Input given and not yet taken or refused.
    pub input: Option<String>,
    /// Who gave it.
    pub given_by: Option<String>,
    /// Why the last input was refused: the run stays paused.
    pub refused: Option<String>,
    /// When the run took its input and went on.
    pub answered_at: Option<Timestamp>,
}

/// Why a pause gave no input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PauseError {
    /// `pause` is for a flow's body: only a flow run can wait for input.
    #[error("flowcore::pause is called outside any flow run; call it in a #[flow] function")]
    NotInFlow,
    /// No input came within the pause's timeout; the run goes on (`Running`).
    #[error("no input came within {}", humantime::format_duration(*.0))]
    TimedOut(Duration),
    /// The run store failed while the run waited.
    #[error("the run store failed while the run waited for input: {0}")]
    Store(#[from] crate::StoreError),
}

/// Pauses the flow run this is called in until input of type `T` is given; see the module.
///
/// ```
/// use flowcore::{flow, pause};
///
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct Approval {
///     ok: bool,
/// }
///
/// #[flow]
/// async fn load() -> Result<&'static str, pause::PauseError> {
///     let approval: Approval = pause::pause("approve the load?").await?;
///     Ok(if approval.ok { "loaded" } else { "skipped" })
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = flowcore::Store::memory();
/// let scoped = store.clone();
/// let run = tokio::spawn(async move { scoped.scope(load()).await });
/// // From outside: the run is paused with its question; an answer of the wrong shape is
/// // refused and the run stays paused, a good one resumes it.
/// # let id = loop {
/// #     let runs = store.flow_runs(&Default::default()).unwrap();
/// #     if let Some(r) = runs.iter().find(|r| r.state == flowcore::StateKind::Paused) { break r.id; }
/// #     tokio::task::yield_now().await;
/// # };
/// store.give_input(&id.to_string(), r#"{"ok": true}"#, "ada").unwrap();
/// assert_eq!(run.await.unwrap().unwrap(), "loaded");
/// # }
/// ```
pub fn pause<T: DeserializeOwned + schemars::JsonSchema + Send + 'static>(
    question: impl Into<String>,
) -> Pause<T> {
    Pause {
        question: question.into(),
        timeout: None,
        _answer: PhantomData,
    }
}

/// A pause, waiting for input of type `T` once awaited.
#[must_use = "a pause does nothing until it is awaited"]
pub struct Pause<T> {
    question: String,
    timeout: Option<Duration>,
    _answer: PhantomData<fn() -> T>,
}

impl<T> Pause<T> {
    /// Gives up after `after` without input: the run goes on and the pause returns
    /// [`PauseError::TimedOut`]. Runs on tokio's clock.
    pub fn timeout(mut self, after: Duration) -> Self {
        self.timeout = Some(after);
        self
    }
}

/// How often a paused run looks for its input: the store is another process's to write.
const POLL_EVERY: Duration = Duration::from_millis(250);

impl<T: DeserializeOwned + schemars::JsonSchema + Send + 'static> IntoFuture for Pause<T> {
    type Output = Result<T, PauseError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<T, PauseError>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let Some(flow) = FlowContext::current() else {
                return Err(PauseError::NotInFlow);
            };
            let pause = flow.next_pause();
            // A run taken up again after its process stopped meets its pauses again: one
            // answered before takes its answer; one still asking keeps its question and any
            // input given meanwhile.
            let before = flow.store.input_at(flow.id, pause).await?;
            let before = before.filter(|asked| asked.question == self.question);
            if let Some(asked) = &before
                && asked.answered_at.is_some()
                && let Some(input) = &asked.input
                && let Ok(answer) = serde_json::from_str::<T>(input)
            {
                return Ok(answer);
            }
            if before
                .as_ref()
                .is_none_or(|asked| asked.answered_at.is_some())
            {
                let schema = serde_json::to_string(&schemars::schema_for!(T)).unwrap_or_default();
                flow.store.send(Event::InputAsked {
                    flow_run_id: flow.id,
                    pause,
                    question: self.question.clone(),
                    schema,
                    at: Timestamp::wall_now(),
                });
            }
            flow.body_state(State::new(
                StateKind::Paused,
                Timestamp::now(),
                Some(self.question.clone()),
            ));
            flow.store.flush().await?;
            let _waiting = Waiting::start(&flow);
            wait_for_input::<T>(&flow, pause, self.timeout).await
        })
    }
}

/// Tells the run's server, while it lasts, that the run waits for input.
struct Waiting<'a>(&'a FlowContext);

impl<'a> Waiting<'a> {
    fn start(flow: &'a FlowContext) -> Self {
        flow.waiting_for_input(true);
        Waiting(flow)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting_for_input(false);
    }
}

/// Polls the store for the input of pause `pause` until input that fits `T` comes, or the
/// timeout passes.
async fn wait_for_input<T: DeserializeOwned>(
    flow: &FlowContext,
    pause: u32,
    timeout: Option<Duration>,
) -> Result<T, PauseError> {
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    loop {
        let given = flow.store.input_at(flow.id, pause).await?;
        if let Some(input) = given.as_ref().and_then(|asked| asked.input.as_deref()) {
            let by = given
                .as_ref()
                .and_then(|asked| asked.given_by.as_deref())
                .unwrap_or("someone");
            match serde_json::from_str::<T>(input) {
                Ok(answer) => {
                    flow.store.answer_input(flow.id, pause, None).await?;
                    flow.body_state(State::new(
                        StateKind::Running,
                        Timestamp::now(),
                        Some(format!("resumed with input from {by}")),
                    ));
                    return Ok(answer);
                }
                Err(e) => {
                    let reason = format!("the input does not fit: {e}");
                    tracing::warn!(target: "flowcore", "Input from {by} refused: {reason}");
                    flow.store
                        .answer_input(flow.id, pause, Some(&reason))
                        .await?;
                }
            }
        }
        if let Some(deadline) = deadline
            && tokio::time::Instant::now() >= deadline
        {
            let waited = timeout.unwrap_or_default();
            flow.body_state(State::new(
                StateKind::Running,
                Timestamp::now(),
                Some(format!(
                    "no input within {}",
                    humantime::format_duration(waited)
                )),
            ));
            return Err(PauseError::TimedOut(waited));
        }
        let wait = match deadline {
            Some(deadline) => {
                POLL_EVERY.min(deadline.saturating_duration_since(tokio::time::Instant::now()))
            }
            None => POLL_EVERY,
        };
        tokio::time::sleep(wait).await;
    }
}
