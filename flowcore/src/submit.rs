//! Task runs started with `.submit()`, and the handles that await them.

use std::future::Future;
use std::panic::resume_unwind;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, ready};

use tokio::task::{AbortHandle, JoinHandle};
use uuid::Uuid;

use crate::context::{CancelSubmitted, FlowContext};
use crate::state::StateKind;
use crate::upstream::{RunSlot, WaitFor, Waited, Waiting, sealed_impl};

/// A task run started with [`TaskCall::submit`](crate::TaskCall::submit), like a Prefect
/// future. Await it for the task's output; pass `&handle` to
/// [`wait_for`](crate::TaskCall::wait_for) to make another task run wait for it.
///
/// Dropping the handle does not stop the run: it goes on, and its flow run waits for it. A flow
/// run that ends without waiting for it (its future dropped by a `select!` or a timeout, or a
/// panic in its body) cancels it: the run is dropped and ends `Cancelled` before the flow
/// run's own final state, and its handle then never completes.
#[must_use = "a submitted task run goes on without its handle, but its output is lost"]
#[derive(Debug)]
pub struct TaskHandle<R> {
    join: JoinHandle<Option<R>>,
    slot: Arc<RunSlot>,
}

impl<R> TaskHandle<R> {
    /// Spawns `run` as the submitted task run of `slot`, cancelled with the flow run it was
    /// called in if that ends first.
    pub(crate) fn spawn<F>(run: F, slot: Arc<RunSlot>) -> Self
    where
        F: Future<Output = R> + Send + 'static,
        R: Send + 'static,
    {
        let shared = Arc::new(Shared {
            future: Mutex::new(Some(Box::pin(run))),
            cancelled: AtomicBool::new(false),
            abort: OnceLock::new(),
        });
        let submitted = FlowContext::current().map(|flow| {
            let cancel: Arc<dyn CancelSubmitted> = shared.clone();
            flow.submitted(slot.id, cancel)
        });
        let join = crate::context::spawn(RunSubmitted {
            shared: Arc::clone(&shared),
            _submitted: submitted,
        });
        let _ = shared.abort.set(join.abort_handle());
        TaskHandle { join, slot }
    }

    /// The task run's id, known from the moment it is submitted.
    pub fn id(&self) -> Uuid {
        self.slot.id
    }

    /// The task run's name, `"transform-a8e"`.
    pub fn name(&self) -> String {
        self.slot.name()
    }

    /// The run's final state once it has ended; `None` while it is going.
    pub fn state(&self) -> Option<StateKind> {
        self.slot.ended()
    }
}

impl<R> Future for TaskHandle<R> {
    type Output = R;

    /// The task's output. A panic in the task goes on to the awaiting code, as if the task
    /// had been awaited directly.
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<R> {
        match ready!(Pin::new(&mut self.join).poll(cx)) {
            Ok(Some(out)) => Poll::Ready(out),
            Err(e) if e.is_panic() => resume_unwind(e.into_panic()),
            // Cancelled with its flow run, or by a runtime shutting down: the code that would
            // await it is gone with them.
            Ok(None) | Err(_) => Poll::Pending,
        }
    }
}

/// A submitted task run's future, where both the task that runs it and its flow run can reach
/// it.
struct Shared<F: Future> {
    /// `None` once it has finished or was dropped.
    future: Mutex<Option<Pin<Box<F>>>>,
    /// Set by a flow run that could not drop it because it was being polled.
    cancelled: AtomicBool,
    abort: OnceLock<AbortHandle>,
}

impl<F: Future + Send> CancelSubmitted for Shared<F>
where
    F::Output: Send,
{
    fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        // Taken only if no thread is polling it; otherwise that thread drops it after its poll.
        if let Ok(mut future) = self.future.try_lock() {
            let dropped = future.take();
            drop(future);
            drop(dropped);
        }
        if let Some(abort) = self.abort.get() {
            abort.abort();
        }
    }
}

/// The spawned task of a submitted run: polls the shared future, or ends with `None` once its
/// flow run has dropped it.
struct RunSubmitted<F: Future> {
    shared: Arc<Shared<F>>,
    /// Tells the flow run when this run has ended.
    _submitted: Option<crate::context::Submitted>,
}

impl<F: Future> Future for RunSubmitted<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        let shared = &self.shared;
        let mut slot = shared.future.lock().unwrap_or_else(|e| e.into_inner());
        let Some(future) = slot.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = future.as_mut().poll(cx);
        if let Poll::Ready(out) = polled {
            *slot = None;
            return Poll::Ready(Some(out));
        }
        if shared.cancelled.load(Ordering::Acquire) {
            let dropped = slot.take();
            drop(slot);
            drop(dropped);
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}

sealed_impl!(&TaskHandle<R>, R);

impl<R> WaitFor for &TaskHandle<R> {
    fn upstream(&self) -> Waiting {
        Waiting {
            id: self.slot.id,
            on: Waited::Slot(Arc::clone(&self.slot)),
            allow_failure: false,
        }
    }
}
