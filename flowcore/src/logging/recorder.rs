//! The runs' log lines kept in the run store, with their run: what `flowcore runs show` and the
//! dashboard show.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use uuid::Uuid;

use crate::clock::Timestamp;
use crate::context::FlowContext;
use crate::logging::labels::event_run_id;
use crate::scratch::{KEPT_CAPACITY, with_kept};
use crate::store::{Event as StoreEvent, RunStore};

/// Sends each event written inside a run to the run store, as one of the run's log lines.
pub(crate) struct StoredLogs;

/// Marks a subscriber whose console layer keeps the runs' lines itself (see
/// [`crate::logging::layer_to`]), as [`StoredLogs`] would: what `check_recorder` looks for.
pub(crate) struct Recorded;

impl<S: Subscriber> Layer<S> for Recorded {}

impl<S> Layer<S> for StoredLogs
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(store) = store() else {
            return;
        };
        let Some(run_id) = event_run_id(event, &ctx) else {
            return;
        };
        let id = crate::names::new_run_id();
        keep(&store, event, run_id, message_text(event).text, id);
    }
}

/// The text of `event` as the store keeps it, in a string of its own length: formatted in a
/// buffer the thread keeps, rather than in a string that grows three or four times; not copied
/// at all when it is a task run's usual last line, which every store then shares.
pub(crate) fn message_text(event: &Event<'_>) -> Message {
    thread_local! {
        static SCRATCH: Cell<String> = const { Cell::new(String::new()) };
    }
    with_kept(&SCRATCH, KEPT_CAPACITY, |scratch| {
        let mut fields = MessageText {
            text: scratch,
            had_error: false,
            failed: false,
        };
        event.record(&mut fields);
        let MessageText {
            text: scratch,
            had_error,
            failed,
        } = fields;
        let text = if scratch == super::FINISHED_COMPLETED {
            Cow::Borrowed(super::FINISHED_COMPLETED)
        } else {
            Cow::Owned(String::from(scratch.as_str()))
        };
        Message {
            text,
            had_error,
            failed,
        }
    })
}

/// An event's text as [`message_text`] makes it.
pub(crate) struct Message {
    pub(crate) text: Cow<'static, str>,
    /// A field was an error: the console prints its sources too, so this text is not the
    /// console's (see `console.rs`).
    pub(crate) had_error: bool,
    /// A field's `Debug` failed: the text stops short.
    pub(crate) failed: bool,
}

/// The store of the run an event belongs to: its flow run's, else the one in scope.
pub(crate) fn store() -> Option<RunStore> {
    FlowContext::with_current(|flow| flow.store.clone()).or_else(RunStore::current_if_open)
}

thread_local! {
    /// The time of the line being logged on this thread, when it is known already: a run's
    /// final-state line is the state's, whose time was read a moment before.
    static LINE_AT: Cell<Option<Timestamp>> = const { Cell::new(None) };
}

/// Logs, with `log`, a line whose time in the store is `at` (taken by the first line that
/// is kept, if any, then forgotten), rather than the clock's at that moment.
pub(crate) fn logged_at(at: Timestamp, log: impl FnOnce()) {
    LINE_AT.set(Some(at));
    log();
    LINE_AT.set(None);
}

/// Keeps `message`, the text of `event`, in `store` as a line of the run `run_id`, with `id`
/// its own.
pub(crate) fn keep(
    store: &RunStore,
    event: &Event<'_>,
    run_id: Uuid,
    message: Cow<'static, str>,
    id: Uuid,
) {
    store.send(StoreEvent::Log {
        id,
        run_id,
        at: LINE_AT.take().unwrap_or_else(Timestamp::now),
        level: event.metadata().level().as_str(),
        message,
    });
}

/// Writes an event's message followed by its other fields as `key=value`.
struct MessageText<'a> {
    text: &'a mut String,
    had_error: bool,
    failed: bool,
}

impl Visit for MessageText<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        use std::fmt::Write as _;
        if !self.text.is_empty() {
            self.text.push(' ');
        }
        // One argument to format: each costs a pass through `fmt::write`.
        if field.name() != "message" {
            self.text.push_str(field.name());
            self.text.push('=');
        }
        let written = write!(self.text, "{value:?}");
        self.failed |= written.is_err();
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let sep = if self.text.is_empty() { "" } else { " " };
            self.text.push_str(sep);
            self.text.push_str(value);
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.had_error = true;
        self.record_debug(field, &tracing::field::display(value));
    }
}
