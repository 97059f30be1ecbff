//! What task and flow calls return: a future around the run, which hands the finished run's
//! record to the flow run it belongs to (and to the caller, with `with_run`).

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use crate::context::FlowContext;
use crate::record::{FlowRunRecord, TaskRunRecord};

/// A finished run: its output, its record, and the flow run the record goes to. A flow run
/// whose record nobody reads (its caller, its parent, a summary) has none.
#[doc(hidden)]
pub struct Finished<R, Rec> {
    pub(crate) output: R,
    pub(crate) record: Option<Rec>,
    pub(crate) parent: Option<Arc<FlowContext>>,
}

impl<R, Rec: Record> Finished<R, Rec> {
    /// Hands the record to the parent flow run; returns the output, and the record too if
    /// `keep` (cloning it only when both need it).
    fn deliver(self, keep: bool) -> (R, Option<Rec>) {
        let Some(record) = self.record else {
            return (self.output, None);
        };
        let kept = match (&self.parent, keep) {
            (Some(parent), true) => {
                record.clone().add_to(parent);
                Some(record)
            }
            (Some(parent), false) => {
                record.add_to(parent);
                None
            }
            (None, true) => Some(record),
            (None, false) => None,
        };
        (self.output, kept)
    }
}

/// A run's record, which its flow run collects.
#[doc(hidden)]
pub trait Record: Clone {
    fn add_to(self, flow: &FlowContext);
}

impl Record for TaskRunRecord {
    fn add_to(self, flow: &FlowContext) {
        flow.add_task_run(self);
    }
}

impl Record for FlowRunRecord {
    fn add_to(self, flow: &FlowContext) {
        flow.add_subflow_run(self);
    }
}

/// The future of a run, as the macros build it.
#[doc(hidden)]
pub trait RunFuture {
    /// The task's or flow's declared output.
    type Output;
    type Record: Record;

    fn poll_run(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Finished<Self::Output, Self::Record>>;
}

impl<F, R, Rec> RunFuture for F
where
    F: Future<Output = Finished<R, Rec>>,
    Rec: Record,
{
    type Output = R;
    type Record = Rec;

    fn poll_run(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Finished<R, Rec>> {
        self.poll(cx)
    }
}

pin_project! {
    /// A call that resolves to its output together with its run's record.
    /// Returned by [`TaskCall::with_run`](crate::TaskCall::with_run) and
    /// [`FlowCall::with_run`](crate::FlowCall::with_run).
    #[must_use = "a call does nothing until it is awaited"]
    pub struct WithRun<B> {
        #[pin]
        body: B,
        // Until the first poll, for a flow call: its run learns there that its record is
        // wanted, and so keeps its task runs' records for it.
        tell_flow_run: bool,
    }
}

impl<B> WithRun<B> {
    pub(crate) fn task(body: B) -> Self {
        WithRun {
            body,
            tell_flow_run: false,
        }
    }

    pub(crate) fn flow(body: B) -> Self {
        WithRun {
            body,
            tell_flow_run: true,
        }
    }
}

impl<B: RunFuture> Future for WithRun<B> {
    type Output = (B::Output, B::Record);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let finished = if std::mem::take(this.tell_flow_run) {
            let _told = RecordWanted::tell();
            this.body.poll_run(cx)
        } else {
            this.body.poll_run(cx)
        };
        let (output, record) = ready!(finished).deliver(true);
        // A flow called `with_run` gathers its record, and a task run always has one.
        Poll::Ready((
            output,
            record.expect("a run called with_run has its record"),
        ))
    }
}

thread_local! {
    /// Set around the first poll of a flow call made `with_run`: a flow run's first poll runs
    /// on one thread, before anything it awaits.
    static RECORD_WANTED: Cell<bool> = const { Cell::new(false) };
}

/// Sets [`RECORD_WANTED`] while it lives. The flow run takes it as it starts; cleared anyway
/// when the poll returns or unwinds, so that no later run on this thread takes it for its own.
struct RecordWanted;

impl RecordWanted {
    fn tell() -> Self {
        RECORD_WANTED.set(true);
        RecordWanted
    }
}

impl Drop for RecordWanted {
    fn drop(&mut self) {
        RECORD_WANTED.set(false);
    }
}

/// Whether the flow run starting now was called `with_run` (read once, at its first poll,
/// before its body runs: a subflow the body calls then reads `false`).
pub(crate) fn record_wanted() -> bool {
    RECORD_WANTED.replace(false)
}

/// Polls a run for its output alone.
pub(crate) fn poll_output<B: RunFuture>(
    body: Pin<&mut B>,
    cx: &mut Context<'_>,
) -> Poll<B::Output> {
    Poll::Ready(ready!(body.poll_run(cx)).deliver(false).0)
}
