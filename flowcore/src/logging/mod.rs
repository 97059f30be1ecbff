//! Prefect-style console logs.
//!
//! [`init_logging`](crate::init_logging) prints lines like
//!
//! ```text
//! 18:02:00.123 | INFO    | Flow run 'enchanted-peacock' - Beginning flow run 'enchanted-peacock' for flow 'etl'
//! 18:02:00.140 | INFO    | Task run 'extract-a8e' - Finished in state Completed()
//! 18:02:01.002 | WARN    | Task run 'get_data-3f1' - Attempt 1/11 failed: connection refused. Retrying in 15s
//! ```
//!
//! Every task run and flow run is a tracing span, so a `tracing::info!` inside a task is
//! printed with that task run's name. To combine flowcore's format with your own subscriber
//! setup, add [`layer()`] to a `tracing_subscriber::registry()`.
//!
//! Log lines written inside runs are also kept in the run store, with their run (what
//! `flowcore runs show` and the dashboard show). That is the [`recorder()`] layer's work, apart
//! from any printing: [`init_logging`](crate::init_logging) and [`layer()`] include it; a subscriber of your own (a
//! JSON formatter, OpenTelemetry) keeps the lines in the store once you add it:
//!
//! ```
//! use tracing_subscriber::layer::SubscriberExt as _;
//!
//! let subscriber = tracing_subscriber::registry()
//!     .with(tracing_subscriber::fmt::layer())   // your printing, any format
//!     .with(flowcore::logging::recorder());     // the runs' lines into the store
//! # let _ = subscriber;
//! // tracing::subscriber::set_global_default(subscriber).unwrap();
//! ```
//!
//! A subscriber without it still prints what it prints, and flowcore says once, through it,
//! that the runs' lines are not being kept.
//!
//! Run names, messages and fields come from user code: their control characters are printed
//! escaped (`\u{1b}`, see [`crate::terminal`]), so that a message cannot clear the screen or
//! retitle the window. A message keeps its line feeds, and its later lines are indented, so
//! that none can pass for a line of its own:
//!
//! ```text
//! 18:02:03.500 | INFO    | Flow run 'enchanted-peacock' - Summary
//!     Flow run 'enchanted-peacock' for flow 'etl': Completed
//!     Task run     State      Attempts  Duration
//! ```

use std::fmt;
use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use uuid::Uuid;

pub(crate) mod init;

use crate::clock::Timestamp;
use crate::context::FlowContext;
use crate::state::{State, StateKind};
use crate::store::{Event as StoreEvent, RunStore};
use crate::terminal::{Escaping, LineFeeds, escape_controls};

/// flowcore's console format as a layer, for building your own subscriber.
///
/// ```
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let subscriber = tracing_subscriber::registry().with(flowcore::logging::layer());
/// tracing::subscriber::with_default(subscriber, || tracing::info!("hello"));
/// ```
pub fn layer<S>() -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    // https://no-color.org: a NO_COLOR that is set and not empty turns colour off.
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let ansi = std::io::stdout().is_terminal() && !no_color;
    layer_to(std::io::stdout, ansi)
}

/// flowcore's console format as a layer writing to `writer` (a file, a buffer in a test),
/// with ANSI colours or without.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use tracing_subscriber::layer::SubscriberExt;
///
/// #[derive(Clone, Default)]
/// struct Buffer(Arc<Mutex<Vec<u8>>>);
/// impl std::io::Write for Buffer {
///     fn write(&mut self, b: &[u8]) -> std::io::Result<usize> { self.0.lock().unwrap().write(b) }
///     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
/// }
///
/// let buffer = Buffer::default();
/// let out = buffer.clone();
/// let subscriber = tracing_subscriber::registry()
///     .with(flowcore::logging::layer_to(move || out.clone(), false));
/// tracing::subscriber::with_default(subscriber, || tracing::warn!("disk almost full"));
/// let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
/// assert!(text.contains(" | WARN    | "), "{text}");
/// assert!(text.ends_with(" - disk almost full\n"), "{text}");
/// ```
pub fn layer_to<S, W>(writer: W, ansi: bool) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    recorder().and_then(
        tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_ansi(ansi)
            .event_format(PrefectFormat { ansi }),
    )
}

/// The layer that keeps each log line written inside a run in that run's store (the store of
/// its flow run, or the one in scope), and prints nothing: for a subscriber of your own. See
/// the module's documentation.
///
/// ```
/// use flowcore::{flow, testing};
/// use tracing_subscriber::layer::SubscriberExt as _;
///
/// #[flow]
/// async fn chatty() {
///     tracing::info!("loaded 10 rows");
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // A subscriber that prints nothing at all, and records.
/// let subscriber = tracing_subscriber::registry().with(flowcore::logging::recorder());
/// let _guard = tracing::subscriber::set_default(subscriber);
/// let ((_, run), store) = testing::isolated(chatty().with_run()).await;
/// let lines = store.logs(run.id).unwrap();
/// assert!(lines.iter().any(|line| line.message == "loaded 10 rows"));
/// # }
/// ```
pub fn recorder<S>() -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    RunLabels.and_then(StoredLogs)
}

/// Says once, through the subscriber in use, when it prints but does not keep the runs' log
/// lines: called as the first runs start, when the program has set its subscriber up.
pub(crate) fn check_recorder() {
    static CHECKED: AtomicBool = AtomicBool::new(false);
    if CHECKED.load(Ordering::Relaxed) || CHECKED.swap(true, Ordering::Relaxed) {
        return;
    }
    let missing = tracing::dispatcher::get_default(|d| {
        !d.is::<tracing::subscriber::NoSubscriber>() && !d.is::<StoredLogs>()
    });
    if missing {
        tracing::warn!(
            target: "flowcore",
            "The tracing subscriber in use has no flowcore::logging::recorder() layer: the log lines of runs are printed but not kept in the run store (flowcore runs show, the dashboard); add the layer to keep them"
        );
    }
}

/// Logs a run's final state at a level that matches it.
pub(crate) fn log_final_state(state: &State) {
    match state.kind {
        StateKind::Completed | StateKind::Cached => {
            tracing::info!(target: "flowcore", "Finished in state {state}")
        }
        StateKind::Cancelled => tracing::warn!(target: "flowcore", "Finished in state {state}"),
        _ => tracing::error!(target: "flowcore", "Finished in state {state}"),
    }
}

/// `Task run 'extract-a8e'` and the run's id, stored on the run's span when it is created.
struct RunLabel {
    label: String,
    id: Uuid,
}

/// Attaches a [`RunLabel`] to each task run and flow run span.
struct RunLabels;

impl<S> Layer<S> for RunLabels
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if !crate::span::is_run_span(attrs.metadata()) {
            return;
        }
        let mut run = RunFields::default();
        attrs.record(&mut run);
        let kind = match run.kind.as_deref() {
            Some("flow") => "Flow run",
            _ => "Task run",
        };
        if let (Some(name), Some(run_id), Some(span)) = (run.name, run.id, ctx.span(id)) {
            span.extensions_mut().insert(RunLabel {
                // Escaped once here, not at every line: a run name is user code's to choose.
                label: format!("{kind} '{}'", escape_controls(&name)),
                id: run_id,
            });
        }
    }
}

#[derive(Default)]
struct RunFields {
    name: Option<String>,
    id: Option<Uuid>,
    kind: Option<String>,
}

impl Visit for RunFields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "run" => self.name = Some(format!("{value:?}")),
            "id" => self.id = Uuid::parse_str(&format!("{value:?}")).ok(),
            "kind" => self.kind = Some(format!("{value:?}")),
            _ => {}
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "kind" => self.kind = Some(value.to_owned()),
            _ => self.record_debug(field, &value),
        }
    }
}

/// Sends each event written inside a run to the run store, as one of the run's log lines.
struct StoredLogs;

impl<S> Layer<S> for StoredLogs
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        // The store of the run the event belongs to: its flow run's, else the one in scope.
        let Some(store) =
            FlowContext::with_current(|flow| flow.store.clone()).or_else(RunStore::current_if_open)
        else {
            return;
        };
        let Some(run_id) = ctx.event_scope(event).and_then(|scope| {
            scope
                .into_iter()
                .find_map(|span| span.extensions().get::<RunLabel>().map(|l| l.id))
        }) else {
            return;
        };
        let mut message = MessageText(String::new());
        event.record(&mut message);
        store.send(StoreEvent::Log {
            id: crate::names::new_run_id(),
            run_id,
            at: Timestamp::now(),
            level: event.metadata().level().as_str(),
            message: message.0,
        });
    }
}

/// An event's message followed by its other fields as `key=value`.
struct MessageText(String);

impl Visit for MessageText {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        use std::fmt::Write as _;
        let sep = if self.0.is_empty() { "" } else { " " };
        let _ = if field.name() == "message" {
            write!(self.0, "{sep}{value:?}")
        } else {
            write!(self.0, "{sep}{}={value:?}", field.name())
        };
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let sep = if self.0.is_empty() { "" } else { " " };
            self.0.push_str(sep);
            self.0.push_str(value);
        } else {
            self.record_debug(field, &value);
        }
    }
}

/// `HH:MM:SS.mmm | LEVEL   | Task run 'x' - message`, in local time like Prefect.
struct PrefectFormat {
    ansi: bool,
}

impl<S, N> FormatEvent<S, N> for PrefectFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        write!(writer, "{} | ", chrono::Local::now().format("%H:%M:%S%.3f"))?;
        let level = meta.level();
        if self.ansi {
            let colour = match *level {
                Level::ERROR => "31",
                Level::WARN => "33",
                Level::INFO => "36",
                Level::DEBUG => "34",
                Level::TRACE => "35",
            };
            write!(writer, "\x1b[{colour}m{level:<7}\x1b[0m | ")?;
        } else {
            write!(writer, "{level:<7} | ")?;
        }
        let label = ctx.event_scope().and_then(|scope| {
            scope
                .into_iter()
                .find_map(|span| span.extensions().get::<RunLabel>().map(|l| l.label.clone()))
        });
        match label {
            Some(label) => write!(writer, "{label} - ")?,
            None => write!(writer, "{} - ", escape_controls(meta.target()))?,
        }
        let mut fields = ConsoleFields {
            writer: writer.by_ref(),
            ansi: self.ansi,
            first: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writeln!(writer)
    }
}

/// An event's fields as tracing-subscriber's default format writes them (the message, then
/// ` key=value` with the value's `Debug`, an error's sources after it), with their control
/// characters escaped as [`crate::terminal`] says. The message keeps its line feeds, its later
/// lines indented; every other field stays on the line.
///
/// tracing-subscriber escapes a few of them itself, but only in the message, not `\r` or the
/// other C0 controls, and in its own `\x1b` form; so the fields are written here.
struct ConsoleFields<'w> {
    writer: Writer<'w>,
    ansi: bool,
    first: bool,
    result: fmt::Result,
}

impl ConsoleFields<'_> {
    fn field(&mut self, name: &str, value: &dyn fmt::Debug) -> fmt::Result {
        use std::fmt::Write as _;
        if !std::mem::take(&mut self.first) {
            self.writer.write_char(' ')?;
        }
        if name == "message" {
            return write!(
                Escaping::new(&mut self.writer, LineFeeds::Indent),
                "{value:?}"
            );
        }
        let name = escape_controls(name.strip_prefix("r#").unwrap_or(name));
        if self.ansi {
            // Italic name, dimmed `=`, as tracing-subscriber's default fields.
            write!(self.writer, "\x1b[3m{name}\x1b[0m\x1b[2m=\x1b[0m")?;
        } else {
            write!(self.writer, "{name}=")?;
        }
        write!(
            Escaping::new(&mut self.writer, LineFeeds::Escape),
            "{value:?}"
        )
    }
}

impl Visit for ConsoleFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        match value.source() {
            Some(source) => {
                let name = field.name();
                let sources = Sources(source);
                self.record_debug(field, &format_args!("{value} {name}.sources={sources}"));
            }
            None => self.record_debug(field, &format_args!("{value}")),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // Metadata of events from the `log` crate (tracing-log), which the line already shows.
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        self.result = self.field(field.name(), value);
    }
}

/// An error's chain of sources: `[timed out, connection reset]`.
struct Sources<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for Sources<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        let mut next = Some(self.0);
        while let Some(error) = next {
            list.entry(&format_args!("{error}"));
            next = error.source();
        }
        list.finish()
    }
}
