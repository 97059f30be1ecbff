//! Task runs started with `.submit()`, and the handles that await them.

use std::future::Future;
use std::panic::resume_unwind;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::state::StateKind;
use crate::upstream::{RunSlot, WaitFor, Waited, Waiting, sealed_impl};

/// A task run started with [`TaskCall::submit`](crate::TaskCall::submit), like a Prefect
/// future. Await it for the task's output; pass `&handle` to
/// [`wait_for`](crate::TaskCall::wait_for) to make another task run wait for it.
///
/// Dropping the handle does not stop the run: it goes on, and its flow run waits for it.
#[must_use = "a submitted task run goes on without its handle, but its output is lost"]
#[derive(Debug)]
pub struct TaskHandle<R> {
    join: JoinHandle<R>,
    slot: Arc<RunSlot>,
}

impl<R> TaskHandle<R> {
    pub(crate) fn new(join: JoinHandle<R>, slot: Arc<RunSlot>) -> Self {
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
            Ok(out) => Poll::Ready(out),
            Err(e) if e.is_panic() => resume_unwind(e.into_panic()),
            // Only a runtime shutting down cancels the spawned run, and then nothing awaits.
            Err(_) => Poll::Pending,
        }
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
