//! `map`: one task run per input, concurrently, results in input order.

use std::future::{Future, IntoFuture};
use std::iter::Enumerate;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_util::StreamExt as _;
use futures_util::stream::FuturesOrdered;
use pin_project_lite::pin_project;

use crate::task::{TaskBody, TaskCall};

/// Calls a task once per input and runs the calls concurrently, like Prefect's `task.map`:
/// each element is its own task run, with its own retries; the outputs come back in input
/// order. `.limit(n)` runs at most `n` at once.
///
/// The calls are made as the previous ones start, on the awaiting task (as `join_all` would),
/// so inputs may borrow; for parallel work across threads, call `.submit()` in a loop. In the
/// flow run's summary and graph, the runs of one mapped task are folded into one line:
/// "transform ×1000: 998 Completed, 2 Failed".
///
/// ```
/// use flowcore::{flow, task};
///
/// #[task]
/// async fn double(x: u64) -> u64 {
///     x * 2
/// }
///
/// #[flow]
/// async fn doubles() -> Vec<u64> {
///     flowcore::map(1..=5, double).limit(2).await
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # flowcore::Store::memory().install().unwrap();
/// let (out, run) = doubles().with_run().await;
/// assert_eq!(out, [2, 4, 6, 8, 10]);
/// assert_eq!(run.task_runs.len(), 5);
/// assert_eq!(run.task_runs[0].map_index.is_some(), true);
/// # }
/// ```
pub fn map<I, F, B>(inputs: I, task: F) -> Map<I::IntoIter, F>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> TaskCall<B>,
    B: TaskBody,
{
    Map {
        inputs: inputs.into_iter(),
        task,
        limit: None,
    }
}

/// A [`map`] not started yet: await it for the outputs.
#[must_use = "a map does nothing until it is awaited"]
pub struct Map<I, F> {
    inputs: I,
    task: F,
    limit: Option<usize>,
}

impl<I, F> Map<I, F> {
    /// The inputs and the task, for `on_workers`.
    pub(crate) fn into_parts(self) -> (I, F) {
        (self.inputs, self.task)
    }

    /// Runs at most `n` of the task runs at once (at least one).
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n.max(1));
        self
    }
}

impl<I, F, B> IntoFuture for Map<I, F>
where
    I: Iterator,
    F: FnMut(I::Item) -> TaskCall<B>,
    B: TaskBody,
{
    type Output = Vec<B::Output>;
    type IntoFuture = MapFuture<I, F, B>;

    fn into_future(self) -> MapFuture<I, F, B> {
        MapFuture {
            outputs: Vec::with_capacity(self.inputs.size_hint().0),
            inputs: self.inputs.enumerate(),
            task: self.task,
            limit: self.limit.unwrap_or(usize::MAX),
            running: FuturesOrdered::new(),
        }
    }
}

pin_project! {
    /// A running [`map`].
    #[must_use = "a map does nothing until it is awaited"]
    pub struct MapFuture<I, F, B: TaskBody> {
        inputs: Enumerate<I>,
        task: F,
        limit: usize,
        running: FuturesOrdered<TaskCall<B>>,
        outputs: Vec<B::Output>,
    }
}

impl<I, F, B> Future for MapFuture<I, F, B>
where
    I: Iterator,
    F: FnMut(I::Item) -> TaskCall<B>,
    B: TaskBody,
{
    type Output = Vec<B::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Vec<B::Output>> {
        let this = self.project();
        loop {
            while this.running.len() < *this.limit {
                let Some((index, input)) = this.inputs.next() else {
                    break;
                };
                let index = u32::try_from(index).unwrap_or(u32::MAX);
                this.running.push_back((this.task)(input).map_index(index));
            }
            match ready!(this.running.poll_next_unpin(cx)) {
                Some(out) => this.outputs.push(out),
                None => return Poll::Ready(std::mem::take(this.outputs)),
            }
        }
    }
}
