//! The console layer: `HH:MM:SS.mmm | LEVEL   | Task run 'x' - message`, in local time like
//! Prefect.
//!
//! Each event is formatted once, into a buffer of the thread's that is kept from line to line,
//! and handed to the writer whole, with one `write` call (to [`super::writer`]'s buffer when
//! printing to stdout). tracing-subscriber's `fmt` layer, used before, also formatted every
//! span's fields when the span was made (a run's name, id and kind, for each task run) and again
//! when its state was recorded, for a line format that never shows them.
//!
//! With the recorder's work ([`layer_to`](crate::logging::layer_to)), a line whose only field is
//! its message is formatted once for both: the store keeps the text, the console prints it
//! escaped.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::logging::labels::event_run;
use crate::logging::recorder::{self, message_text};
use crate::scratch::{KEPT_CAPACITY, with_kept};
use crate::terminal::{Escaping, LineFeeds};

/// Prints each event as a line to `writer`, and with `record` keeps those written inside runs
/// in the run store.
pub(crate) struct Console<W> {
    pub(crate) writer: W,
    pub(crate) ansi: bool,
    pub(crate) record: bool,
}

impl<S, W> Layer<S> for Console<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        thread_local! {
            static LINE: Cell<String> = const { Cell::new(String::new()) };
        }
        // An event logged while this line is formatted (a field's `Debug` that logs) gets a
        // line of its own.
        with_kept(&LINE, KEPT_CAPACITY, |line| self.print(event, &ctx, line));
    }
}

impl<W> Console<W>
where
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn print<S>(&self, event: &Event<'_>, ctx: &Context<'_, S>, line: &mut String)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let meta = event.metadata();
        // One reading of the clock for the line's time and its id in the store.
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok();
        super::time::write(line, now);
        line.push_str(" | ");
        line.push_str(level_column(*meta.level(), self.ansi));
        let run = event_run(event, ctx, line);
        if run.is_none() {
            let _ = Escaping::new(line, LineFeeds::Escape).write_str(meta.target());
        }
        line.push_str(" - ");

        let store = run
            .filter(|_| self.record)
            .and_then(|id| Some((recorder::store()?, id)));
        let fields = meta.fields();
        let message_only = fields.len() == 1 && fields.field("message").is_some();
        let printed = match store {
            Some((store, run_id)) if message_only => {
                let message = message_text(event);
                let printed = if message.had_error || message.failed {
                    write_fields(line, event, self.ansi)
                } else if let Cow::Borrowed(fixed) = message.text {
                    // One of flowcore's own fixed lines: nothing in it to escape.
                    line.push_str(fixed);
                    Ok(())
                } else {
                    Escaping::new(line, LineFeeds::Indent).write_str(&message.text)
                };
                recorder::keep(&store, event, run_id, message.text, line_id(now));
                printed
            }
            Some((store, run_id)) => {
                let printed = write_fields(line, event, self.ansi);
                let message = message_text(event).text;
                recorder::keep(&store, event, run_id, message, line_id(now));
                printed
            }
            None => write_fields(line, event, self.ansi),
        };
        // A field whose `Debug` failed: the line is not printed (tracing-subscriber's `fmt`
        // layer drops it too), and the store keeps what could be written.
        if printed.is_err() {
            return;
        }
        line.push('\n');
        let _ = self.writer.make_writer_for(meta).write_all(line.as_bytes());
    }
}

/// A stored line's own id, made at `now`.
fn line_id(now: Option<Duration>) -> uuid::Uuid {
    crate::names::new_run_id_at(crate::clock::Timestamp::since_epoch(now))
}

/// `INFO    | `: the level padded to 7, coloured as tracing-subscriber colours it when `ansi`.
fn level_column(level: Level, ansi: bool) -> &'static str {
    match (level, ansi) {
        (Level::ERROR, false) => "ERROR   | ",
        (Level::WARN, false) => "WARN    | ",
        (Level::INFO, false) => "INFO    | ",
        (Level::DEBUG, false) => "DEBUG   | ",
        (Level::TRACE, false) => "TRACE   | ",
        (Level::ERROR, true) => "\x1b[31mERROR  \x1b[0m | ",
        (Level::WARN, true) => "\x1b[33mWARN   \x1b[0m | ",
        (Level::INFO, true) => "\x1b[36mINFO   \x1b[0m | ",
        (Level::DEBUG, true) => "\x1b[34mDEBUG  \x1b[0m | ",
        (Level::TRACE, true) => "\x1b[35mTRACE  \x1b[0m | ",
    }
}

fn write_fields(line: &mut String, event: &Event<'_>, ansi: bool) -> fmt::Result {
    let mut fields = ConsoleFields {
        writer: line,
        ansi,
        first: true,
        result: Ok(()),
    };
    event.record(&mut fields);
    fields.result
}

/// An event's fields as tracing-subscriber's default format writes them (the message, then
/// ` key=value` with the value's `Debug`, an error's sources after it), with their control
/// characters escaped as [`crate::terminal`] says. The message keeps its line feeds, its later
/// lines indented; every other field stays on the line.
///
/// tracing-subscriber escapes a few of them itself, but only in the message, not `\r` or the
/// other C0 controls, and in its own `\x1b` form; so the fields are written here.
struct ConsoleFields<'w> {
    writer: &'w mut String,
    ansi: bool,
    first: bool,
    result: fmt::Result,
}

impl ConsoleFields<'_> {
    fn field(&mut self, name: &str, value: &dyn fmt::Debug) -> fmt::Result {
        if !std::mem::take(&mut self.first) {
            self.writer.push(' ');
        }
        if name == "message" {
            return write!(
                Escaping::new(&mut *self.writer, LineFeeds::Indent),
                "{value:?}"
            );
        }
        let name = name.strip_prefix("r#").unwrap_or(name);
        if self.ansi {
            // Italic name, dimmed `=`, as tracing-subscriber's default fields.
            self.writer.push_str("\x1b[3m");
            Escaping::new(&mut *self.writer, LineFeeds::Escape).write_str(name)?;
            self.writer.push_str("\x1b[0m\x1b[2m=\x1b[0m");
        } else {
            Escaping::new(&mut *self.writer, LineFeeds::Escape).write_str(name)?;
            self.writer.push('=');
        }
        write!(
            Escaping::new(&mut *self.writer, LineFeeds::Escape),
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
