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
//! A `tracing::info!` inside a task is printed with that task run's name. Under a subscriber of
//! your own, every task run and flow run is a tracing span, which is where the line finds it;
//! under [`init_logging`](crate::init_logging)'s, which nothing but flowcore's layers listen
//! to, runs make no span and the line takes the run being polled on its thread (see
//! `span.rs`). To combine flowcore's format with your own subscriber setup, add [`layer()`] to
//! a `tracing_subscriber::registry()`.
//!
//! # How the lines reach stdout
//!
//! A task never waits for the terminal or the pipe its lines go to. Each line is formatted
//! once, in a buffer its thread keeps, and copied into the buffer of a [`NonBlocking`] writer,
//! whose own thread (`flowcore-log`) writes out everything that has come in at each turn, with
//! one `write` call; lines come out in the order they were logged. No line is ever dropped:
//! when a megabyte of them waits for a slow reader, the next line waits for room.
//!
//! What was logged is written out before each flow run's call returns (and a task run's called
//! outside any flow), when the process exits (`main` returning, `std::process::exit`, flowcore's
//! Ctrl-C handling, which ends with it), and whenever [`flush`] is called. So a program that
//! prints with `println!` after a flow run finds its line after the run's; a `println!` in the
//! middle of a flow run may come out before log lines logged before it (call [`flush`] first
//! to keep them in order). A process killed outright (`SIGKILL`, an abort) loses the lines
//! the writer had not written yet, those of the last few microseconds.
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

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

mod console;
pub(crate) mod init;
mod labels;
mod recorder;
mod time;
pub(crate) mod writer;

pub use writer::{NonBlocking, flush, non_blocking};

use crate::state::{State, StateKind};
use console::Console;
use labels::RunLabels;
use recorder::{Recorded, StoredLogs};

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
    layer_to(writer::stdout(), ansi)
}

/// flowcore's console format as a layer writing to `writer` (a file, a buffer in a test),
/// with ANSI colours or without.
///
/// Each line is written with one `write_all` call as it is logged, on the thread that logs
/// it: give it [`non_blocking`]`(file)` to have a thread of its own write the lines, as
/// [`layer()`] does for stdout.
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
    // The console layer keeps the runs' lines itself: each line's text is formatted once for
    // both.
    RunLabels
        .and_then(Console {
            writer,
            ansi,
            record: true,
        })
        .and_then(Recorded)
}

/// A layer that tells flowcore nothing but its own layers ([`layer()`], [`layer_to`],
/// [`recorder()`]) and filters listen to the subscriber, as in
/// [`init_logging`](crate::init_logging)'s: runs then make no tracing span, and a line is
/// labelled with the run being polled on its thread (a span per run was most of a logged task
/// run's cost). A future spawned from a task then logs without the task run's label, and
/// `tracing::Span::current()` inside a task is not the task run's. Leave it out when another
/// layer (OpenTelemetry, tokio-console) should see the runs as spans.
///
/// ```
/// use tracing_subscriber::layer::SubscriberExt as _;
///
/// let file = std::fs::File::create(std::env::temp_dir().join("flowcore-doc.log")).unwrap();
/// let subscriber = tracing_subscriber::registry()
///     .with(tracing_subscriber::filter::LevelFilter::INFO)
///     .with(flowcore::logging::layer_to(flowcore::logging::non_blocking(file), false))
///     .with(flowcore::logging::runs_without_spans());
/// # let _ = subscriber;
/// ```
pub fn runs_without_spans<S: Subscriber>() -> impl Layer<S> {
    crate::span::LabelsOnly
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
        !d.is::<tracing::subscriber::NoSubscriber>() && !d.is::<StoredLogs>() && !d.is::<Recorded>()
    });
    if missing {
        tracing::warn!(
            target: "flowcore",
            "The tracing subscriber in use has no flowcore::logging::recorder() layer: the log lines of runs are printed but not kept in the run store (flowcore runs show, the dashboard); add the layer to keep them"
        );
    }
}

/// Most task runs' one line.
pub(crate) const FINISHED_COMPLETED: &str = "Finished in state Completed()";

/// Logs a run's final state at a level that matches it; the line is kept in the store with
/// the state's time.
pub(crate) fn log_final_state(state: &State) {
    // Not when nothing listens at INFO (logging off): a run pays nothing for it then.
    if tracing::level_enabled!(tracing::Level::INFO) {
        recorder::logged_at(state.at, || log_state(state));
    } else {
        log_state(state);
    }
}

fn log_state(state: &State) {
    match state.kind {
        // Most task runs' one line: a `&str` field rather than a format string, so that each
        // layer copies it (`record_str`) instead of running it through `fmt::write`.
        StateKind::Completed if state.message.is_none() => {
            tracing::info!(target: "flowcore", message = FINISHED_COMPLETED)
        }
        StateKind::Completed | StateKind::Cached => {
            tracing::info!(target: "flowcore", "Finished in state {state}")
        }
        StateKind::Cancelled => tracing::warn!(target: "flowcore", "Finished in state {state}"),
        _ => tracing::error!(target: "flowcore", "Finished in state {state}"),
    }
}
