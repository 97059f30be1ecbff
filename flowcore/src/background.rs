//! Background tasks, Prefect 3's `task.delay()` typed: a call of a `#[task(background)]`
//! function is recorded `Scheduled` with its arguments as JSON, and any process serving the
//! task ([`serve_tasks`](crate::serve_tasks)) claims it, runs it with its retries, timeout and
//! cache, and records its output, which the caller reads back from the store.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::call::{Finished, RunFuture};
use crate::clock::Timestamp;
use crate::context::FlowContext;
use crate::map::Map;
use crate::record::TaskRunRecord;
use crate::state::StateKind;
use crate::store::{ClaimedTask, DelayRequest, RunStore, Store, StoreError, TaskResult};
use crate::task::{CallOptions, TaskBody, TaskCall};

/// A task that workers can run: what `#[task(background)]` makes for each such task, found
/// with [`background`], and given to [`serve_tasks`](crate::serve_tasks).
pub struct BackgroundTask {
    #[doc(hidden)]
    pub name: &'static str,
    /// Decodes a delayed run's arguments and starts the run, or says why they do not decode.
    #[doc(hidden)]
    pub start: fn(&str, Claim) -> Result<ClaimedRun, String>,
}

impl BackgroundTask {
    /// The task's name, as its runs record it.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl fmt::Debug for BackgroundTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackgroundTask")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A claimed delayed task run, running.
#[doc(hidden)]
pub type ClaimedRun = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A delayed task run claimed by this process, for its task's `start` to run.
#[doc(hidden)]
pub struct Claim(pub(crate) ClaimedTask);

/// The background task of a `#[task(background)]` function, for
/// [`serve_tasks`](crate::serve_tasks):
///
/// ```no_run
/// use flowcore::task;
///
/// #[task(background, retries = 2)]
/// async fn resize(url: String, width: u32) -> Result<Vec<u8>, String> {
///     Ok(format!("{url} at {width}px").into_bytes())
/// }
///
/// #[tokio::main]
/// async fn main() -> Result<(), flowcore::ServeError> {
///     flowcore::serve_tasks([flowcore::background(resize)]).await
/// }
/// ```
pub fn background<F, Args>(task: F) -> &'static BackgroundTask
where
    F: BackgroundFn<Args>,
{
    task.background_task()
}

/// A `#[task(background)]` function, of any number of arguments: see [`background`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a background task",
    label = "not a `#[task(background)]` function",
    note = "write `#[task(background)]` on the task function to run it on workers"
)]
pub trait BackgroundFn<Args>: crate::sealed::BackgroundFn<Args> {
    #[doc(hidden)]
    fn background_task(&self) -> &'static BackgroundTask;
}

macro_rules! background_fn {
    ($($arg:ident),*) => {
        impl<F, B, $($arg),*> crate::sealed::BackgroundFn<($($arg,)*)> for F
        where
            F: Fn($($arg),*) -> TaskCall<B>,
            B: Background,
        {
        }

        impl<F, B, $($arg),*> BackgroundFn<($($arg,)*)> for F
        where
            F: Fn($($arg),*) -> TaskCall<B>,
            B: Background,
        {
            fn background_task(&self) -> &'static BackgroundTask {
                B::TASK
            }
        }
    };
}

background_fn!();
background_fn!(A1);
background_fn!(A1, A2);
background_fn!(A1, A2, A3);
background_fn!(A1, A2, A3, A4);
background_fn!(A1, A2, A3, A4, A5);
background_fn!(A1, A2, A3, A4, A5, A6);
background_fn!(A1, A2, A3, A4, A5, A6, A7);
background_fn!(A1, A2, A3, A4, A5, A6, A7, A8);
background_fn!(A1, A2, A3, A4, A5, A6, A7, A8, A9);
background_fn!(A1, A2, A3, A4, A5, A6, A7, A8, A9, A10);
background_fn!(A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11);
background_fn!(A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12);

/// The value a background task sends back from its worker: its output, or the `T` of
/// `Result<T, E>`; any serde type.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` must implement `serde::Serialize` and `serde::Deserialize`: the output of a background task is sent back from its worker as JSON",
    label = "not `Serialize` and `Deserialize`",
    note = "derive both for it (`#[derive(Serialize, Deserialize)]`), or remove `background`"
)]
pub trait BackgroundValue: Sized {
    /// The value read back from the JSON its worker recorded.
    fn from_json(json: &str) -> Result<Self, String>;
}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned + Send + 'static> BackgroundValue for T {
    fn from_json(json: &str) -> Result<Self, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }
}

/// What `#[task(background)]` writes for each such task: its [`BackgroundTask`] and the type
/// of the value its runs' callers get back.
#[doc(hidden)]
pub trait BackgroundMarker: 'static {
    /// The output, or the `T` of `Result<T, E>`.
    type Value: BackgroundValue;
    const TASK: &'static BackgroundTask;
}

/// The body of a `#[task(background)]` call: a task call that can also be
/// [delayed](TaskCall::delay) for a worker.
#[diagnostic::on_unimplemented(
    message = "this task cannot be delayed: it is not a background task",
    label = "`.delay()` and `.on_workers()` need a `#[task(background)]` function",
    note = "write `#[task(background)]` on the task function: its arguments and output must then be serde types, which workers receive and send back as JSON"
)]
pub trait Background: TaskBody + crate::sealed::Background {
    /// What awaiting a delayed run gives: the task's output, or the `T` of `Result<T, E>`.
    type Value: BackgroundValue;
    #[doc(hidden)]
    const TASK: &'static BackgroundTask;
    /// The call's arguments as a JSON array, or why they do not serialize.
    #[doc(hidden)]
    fn arguments(&self) -> &Result<String, String>;
}

pin_project! {
    /// A task call of a `#[task(background)]` function: a task call like any other, that
    /// also holds its arguments as JSON, made at the call, for `.delay()`.
    #[doc(hidden)]
    pub struct Backgrounded<M, B> {
        #[pin]
        body: B,
        arguments: Result<String, String>,
        marker: PhantomData<fn() -> M>,
    }
}

impl<M, B> Backgrounded<M, B> {
    pub fn new(arguments: Result<String, String>, body: B) -> Self {
        Backgrounded {
            body,
            arguments,
            marker: PhantomData,
        }
    }
}

impl<M, B: TaskBody> Future for Backgrounded<M, B> {
    type Output = Finished<B::Output, TaskRunRecord>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        RunFuture::poll_run(self.project().body, cx)
    }
}

impl<M, B> crate::sealed::TaskBody for Backgrounded<M, B> {}
impl<M, B> crate::sealed::Background for Backgrounded<M, B> {}

impl<M, B: TaskBody> TaskBody for Backgrounded<M, B> {
    fn options(&mut self) -> &mut CallOptions<B::Output> {
        self.body.options()
    }

    fn task_name(&self) -> &'static str {
        self.body.task_name()
    }

    fn tags(&self) -> &'static [std::borrow::Cow<'static, str>] {
        self.body.tags()
    }
}

impl<M: BackgroundMarker, B: TaskBody> Background for Backgrounded<M, B> {
    type Value = M::Value;
    const TASK: &'static BackgroundTask = M::TASK;

    fn arguments(&self) -> &Result<String, String> {
        &self.arguments
    }
}

/// Why a delayed task run gave no value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DelayedError {
    /// The call's arguments did not serialize to JSON (a map with non-string keys, a
    /// `Serialize` impl that failed): nothing was recorded.
    #[error("the arguments of task '{task}' could not be sent to a worker: {reason}")]
    Arguments {
        /// The task's name.
        task: &'static str,
        /// What serde said.
        reason: String,
    },
    /// The store could not record the delayed run, or be read while waiting for it.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The run ended without a value: `Failed`, `TimedOut`, `Cancelled`, or `Crashed` with no
    /// takeover left.
    #[error("task run {task_run} ended {state}{}", .message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Ended {
        /// The delayed task run's id.
        task_run: Uuid,
        /// Its final state.
        state: StateKind,
        /// What its final state says.
        message: Option<String>,
    },
    /// The run completed, but its recorded output does not decode as the task's output type
    /// (the worker ran another version of the task).
    #[error("the output of task run {task_run} does not fit the task's output type: {reason}")]
    Output {
        /// The delayed task run's id.
        task_run: Uuid,
        /// What serde said.
        reason: String,
    },
}

impl<B: TaskBody> TaskCall<B> {
    /// Records this call as a task run `Scheduled` with its arguments, for any process serving
    /// the task ([`serve_tasks`](crate::serve_tasks)) to run, like Prefect's `task.delay()`;
    /// returns once it is recorded, with a handle that waits for its value.
    ///
    /// The run is the worker's: it runs there with the task's retries, timeout and cache, and
    /// if that worker dies, another takes it over as its next attempt. Called in a flow run,
    /// the delayed run is listed among that flow run's task runs.
    ///
    /// ```
    /// use flowcore::{task, Store};
    /// use std::future::IntoFuture as _;
    ///
    /// #[task(background)]
    /// async fn square(x: u64) -> u64 {
    ///     x * x
    /// }
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// Store::memory().install()?;
    /// // A worker, here in the same process; usually on other machines.
    /// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    /// let worker = tokio::spawn(
    ///     flowcore::serve_tasks([flowcore::background(square)])
    ///         .with_shutdown(async { stopped.await.ok(); })
    ///         .into_future(),
    /// );
    /// let run = square(7).delay().await?;
    /// assert_eq!(run.await?, 49);
    /// stop.send(()).ok();
    /// worker.await??;
    /// # Ok(())
    /// # }
    /// ```
    pub fn delay(self) -> impl Future<Output = Result<Delayed<B::Value>, DelayedError>> + Send
    where
        B: Background,
    {
        let flow_store = flow_store();
        let request = delay_request(self);
        async move {
            let store = flow_store.unwrap_or_else(RunStore::current);
            let request = request?;
            let id = request.id;
            store.delay_tasks(vec![request]).await?;
            Ok(Delayed::new(Store::clone(&store), id))
        }
    }
}

/// The store of the flow run this is called in: a delayed run is recorded there, as a task
/// run called there would be. Outside any flow, the store in scope when the returned future is
/// first polled.
fn flow_store() -> Option<RunStore> {
    FlowContext::with_current(|flow| flow.store.clone())
}

/// The record of a delayed call, made when it is delayed: in the flow run it was called in.
fn delay_request<B: Background>(call: TaskCall<B>) -> Result<DelayRequest, DelayedError> {
    let mut body = call.into_body();
    let task = B::TASK.name;
    let args = body
        .arguments()
        .clone()
        .map_err(|reason| DelayedError::Arguments { task, reason })?;
    let at = Timestamp::now();
    Ok(DelayRequest {
        id: crate::names::new_run_id_at(at),
        task,
        args,
        name: body.options().name.take(),
        tags: FlowContext::with_current(|flow| {
            crate::task::with_flow_tags(body.tags(), &flow.tags)
        })
        .unwrap_or_else(|| body.tags().to_vec()),
        flow_run_id: FlowContext::with_current(|flow| flow.id),
        at,
    })
}

impl<I, F, B> Map<I, F>
where
    I: Iterator,
    F: FnMut(I::Item) -> TaskCall<B>,
    B: TaskBody,
{
    /// Runs the calls on workers instead of here: every call is [delayed](TaskCall::delay),
    /// all recorded in one transaction, and the values are gathered in input order as the
    /// workers finish them, so 1,000 images are resized by every machine serving the task.
    ///
    /// The outer `Err` says the runs could not be recorded (then none was) or the store could
    /// not be read; each element says how its run ended.
    ///
    /// ```
    /// use flowcore::{task, Store};
    /// use std::future::IntoFuture as _;
    ///
    /// #[task(background)]
    /// async fn double(x: u64) -> u64 {
    ///     x * 2
    /// }
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// Store::memory().install()?;
    /// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    /// let worker = tokio::spawn(
    ///     flowcore::serve_tasks([flowcore::background(double)])
    ///         .with_shutdown(async { stopped.await.ok(); })
    ///         .into_future(),
    /// );
    /// let doubled = flowcore::map(1..=4, double).on_workers().await?;
    /// let doubled: Vec<u64> = doubled.into_iter().collect::<Result<_, _>>()?;
    /// assert_eq!(doubled, [2, 4, 6, 8]);
    /// stop.send(()).ok();
    /// worker.await??;
    /// # Ok(())
    /// # }
    /// ```
    pub fn on_workers(
        self,
    ) -> impl Future<Output = Result<Vec<Result<B::Value, DelayedError>>, DelayedError>> + Send
    where
        B: Background,
    {
        let flow_store = flow_store();
        let (inputs, mut task) = self.into_parts();
        let requests: Result<Vec<DelayRequest>, DelayedError> =
            inputs.map(|input| delay_request(task(input))).collect();
        async move {
            let store = flow_store.unwrap_or_else(RunStore::current);
            let requests = requests?;
            let ids: Arc<[Uuid]> = requests.iter().map(|r| r.id).collect();
            let store = Store::clone(&store);
            store.delay_tasks(requests).await?;
            let results = wait_for_all(&store, &ids).await?;
            Ok(results.iter().map(value_of::<B::Value>).collect())
        }
    }
}

/// A delayed task run: await it for the value its worker returned (the task's output, or the
/// `T` of its `Result<T, E>`), or why it has none.
///
/// Awaiting waits until the run has ended, however long no worker serves its task: wrap it in
/// `tokio::time::timeout` to give up sooner (the run stays delayed, for a worker to come).
/// Dropped, the handle leaves the run to its worker.
#[must_use = "a delayed run goes on without its handle, but its value is lost"]
pub struct Delayed<T> {
    store: Store,
    id: Uuid,
    value: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Delayed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delayed").field("id", &self.id).finish()
    }
}

impl<T: BackgroundValue> Delayed<T> {
    fn new(store: Store, id: Uuid) -> Self {
        Delayed {
            store,
            id,
            value: PhantomData,
        }
    }

    /// The delayed task run's id.
    pub fn id(&self) -> Uuid {
        self.id
    }
}

impl<T: BackgroundValue + Send + 'static> IntoFuture for Delayed<T> {
    type Output = Result<T, DelayedError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<T, DelayedError>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let ids: Arc<[Uuid]> = Arc::from([self.id]);
            let results = wait_for_all(&self.store, &ids).await?;
            value_of(&results[0])
        })
    }
}

/// How often the store is asked about runs that have not ended: soon after they were delayed,
/// then less and less often, never less often than this.
const POLL_AT_MOST_EVERY: Duration = Duration::from_millis(250);
const POLL_FIRST_AFTER: Duration = Duration::from_millis(5);

/// How long the store may fail to answer before the wait gives up: a database restarting
/// takes seconds.
const STORE_DOWN_FOR_AT_MOST: Duration = Duration::from_secs(60);

/// Waits until every run of `ids` has ended (a run given back for another worker has not), and
/// returns their ends in the order of `ids`.
async fn wait_for_all(store: &Store, ids: &Arc<[Uuid]>) -> Result<Vec<TaskResult>, StoreError> {
    let mut ended: Vec<Option<TaskResult>> = vec![None; ids.len()];
    let mut waiting: Vec<usize> = (0..ids.len()).collect();
    let mut pause = POLL_FIRST_AFTER;
    let mut failing_since: Option<tokio::time::Instant> = None;
    while !waiting.is_empty() {
        let asked: Arc<[Uuid]> = waiting.iter().map(|&i| ids[i]).collect();
        match store.task_results(asked).await {
            Ok(results) => {
                failing_since = None;
                let before = waiting.len();
                let mut by_id: std::collections::HashMap<Uuid, TaskResult> =
                    results.into_iter().map(|r| (r.id, r)).collect();
                waiting.retain(|&i| match by_id.remove(&ids[i]) {
                    Some(result) if result.state.is_final() => {
                        ended[i] = Some(result);
                        false
                    }
                    _ => true,
                });
                if waiting.len() < before {
                    pause = POLL_FIRST_AFTER;
                }
            }
            Err(e) => {
                let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() > STORE_DOWN_FOR_AT_MOST {
                    return Err(e);
                }
            }
        }
        if !waiting.is_empty() {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(POLL_AT_MOST_EVERY);
        }
    }
    Ok(ended.into_iter().flatten().collect())
}

/// The value of an ended run, or why it has none.
fn value_of<T: BackgroundValue>(result: &TaskResult) -> Result<T, DelayedError> {
    match (result.state, &result.output) {
        (StateKind::Completed | StateKind::Cached, Some(json)) => {
            T::from_json(json).map_err(|reason| DelayedError::Output {
                task_run: result.id,
                reason,
            })
        }
        (StateKind::Completed | StateKind::Cached, None) => Err(DelayedError::Output {
            task_run: result.id,
            reason: "no output was recorded".to_owned(),
        }),
        (state, _) => Err(DelayedError::Ended {
            task_run: result.id,
            state,
            message: result.message.clone(),
        }),
    }
}

/// Runs a claimed delayed task run: `call` is the task called with its decoded arguments.
#[doc(hidden)]
pub fn run_claimed<B>(call: TaskCall<B>, claim: Claim) -> ClaimedRun
where
    B: TaskBody + Send + 'static,
{
    let call = call.claimed(claim.0);
    Box::pin(async move {
        call.await;
    })
}
