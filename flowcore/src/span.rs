//! The tracing span of each run (under a subscriber other than `init_logging()`'s: see
//! [`RunSpan`]), named for its task or flow: `extract`, `etl`, so that
//! OpenTelemetry, tokio-console and any subscriber show a hundred `extract`s and `load`s rather
//! than a hundred `task_run`s. Its fields: `run` (the run's name), `id`, `kind` (`"task"` or
//! `"flow"`) and `state`, the final state, recorded when the run ends.
//!
//! tracing names a span by its callsite, which its macros make once per place in the code; a
//! task's name is only known to flowcore at run time, so each task and flow has a callsite of its
//! own, made with its spec the first time it runs ([`RunCallsite`]).

use std::borrow::Cow;
use std::cell::Cell;
use std::pin::Pin;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

use tracing::callsite::{Callsite, Identifier};
use tracing::field::{Empty, FieldSet, Value, display};
use tracing::metadata::Kind;
use tracing::subscriber::Interest;
use tracing::{Level, Metadata, Span};
use uuid::Uuid;

use crate::hooks::RunKind;
use crate::state::StateKind;
use crate::terminal::escape_controls;

/// The fields of a run's span, in this order.
const FIELDS: [&str; 4] = ["run", "id", "kind", "state"];

/// A run's name as a span is made with it: a flow run's, or a task run's, written out only
/// then.
pub(crate) trait RunName: std::fmt::Display {
    /// Appends the name to `out`.
    fn push_to(&self, out: &mut String);
}

impl RunName for &String {
    fn push_to(&self, out: &mut String) {
        out.push_str(self);
    }
}

impl RunName for crate::names::TaskRunName<'_> {
    fn push_to(&self, out: &mut String) {
        crate::names::TaskRunName::push_to(self, out);
    }
}

/// The callsite of one task's or flow's runs: in its static spec, so that it lives as long as
/// the program, as tracing needs.
#[doc(hidden)]
pub struct RunCallsite {
    metadata: OnceLock<Metadata<'static>>,
    /// tracing's interest in it: [`NEVER`], [`SOMETIMES`], [`ALWAYS`], or [`UNKNOWN`] until
    /// registered.
    interest: AtomicU8,
}

const UNKNOWN: u8 = 0;
const NEVER: u8 = 1;
const SOMETIMES: u8 = 2;
const ALWAYS: u8 = 3;

impl RunCallsite {
    /// What a spec holds before its first run.
    pub const fn new() -> Self {
        RunCallsite {
            metadata: OnceLock::new(),
            interest: AtomicU8::new(UNKNOWN),
        }
    }

    /// The span of a run named `run` with id `id` of the task or flow `name`: disabled (and
    /// free) when no subscriber wants it; only its label under `init_logging()`'s subscriber
    /// (see [`RunSpan`]).
    pub(crate) fn span<N: RunName>(
        &'static self,
        name: &'static str,
        kind: RunKind,
        run: N,
        id: Uuid,
    ) -> RunSpan {
        let metadata = self.metadata(name);
        let enabled = match self.interest.load(Ordering::Relaxed) {
            NEVER => false,
            ALWAYS => true,
            _ => tracing::dispatcher::get_default(|d| d.enabled(metadata)),
        };
        if !enabled || !tracing::level_enabled!(Level::INFO) {
            return RunSpan::none();
        }
        let (kind, kind_label) = match kind {
            RunKind::Task => ("task", "Task run '"),
            RunKind::Flow => ("flow", "Flow run '"),
        };
        // The label flowcore's console prints, made here from the name as it is rather than
        // by a layer from the field's text.
        let mut label = String::with_capacity(kind_label.len() + 40);
        label.push_str(kind_label);
        run.push_to(&mut label);
        // Escaped once, whole, rather than piece by piece as it is written: a run's name comes
        // in pieces (`extract`, `-a8e`) and is nearly always clean.
        if let Cow::Owned(escaped) = escape_controls(&label[kind_label.len()..]) {
            label.truncate(kind_label.len());
            label.push_str(&escaped);
        }
        label.push('\'');
        if tracing::dispatcher::get_default(|d| d.is::<LabelsOnly>()) {
            return RunSpan {
                span: Span::none(),
                label: Some((id, label)),
            };
        }
        let fields = metadata.fields();
        let [run_field, id_field, kind_field, state_field] =
            FIELDS.map(|f| fields.field(f).expect("a field of the span's own set"));
        let made = NewRun::set(id, label);
        let span = Span::new(
            metadata,
            &fields.value_set(&[
                (&run_field, Some(&display(&run) as &dyn Value)),
                (&id_field, Some(&display(id) as &dyn Value)),
                (&kind_field, Some(&kind as &dyn Value)),
                (&state_field, Some(&Empty as &dyn Value)),
            ]),
        );
        drop(made);
        RunSpan { span, label: None }
    }

    fn metadata(&'static self, name: &'static str) -> &'static Metadata<'static> {
        let mut made = false;
        let metadata = self.metadata.get_or_init(|| {
            made = true;
            Metadata::new(
                name,
                "flowcore",
                Level::INFO,
                None,
                None,
                None,
                FieldSet::new(&FIELDS, Identifier(self)),
                Kind::SPAN,
            )
        });
        if made {
            // Tells every subscriber of it, which sets its interest.
            tracing::callsite::register(self);
        }
        metadata
    }
}

impl Default for RunCallsite {
    fn default() -> Self {
        RunCallsite::new()
    }
}

impl std::fmt::Debug for RunCallsite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RunCallsite")
    }
}

impl Callsite for RunCallsite {
    fn set_interest(&self, interest: Interest) {
        let value = if interest.is_never() {
            NEVER
        } else if interest.is_always() {
            ALWAYS
        } else {
            SOMETIMES
        };
        self.interest.store(value, Ordering::Relaxed);
    }

    fn metadata(&self) -> &Metadata<'_> {
        self.metadata
            .get()
            .expect("registered only once its metadata is made")
    }
}

thread_local! {
    /// The id and label of the run whose span is being made on this thread, while it is:
    /// flowcore's own layers take them from here rather than print the fields and parse them
    /// back.
    static NEW_RUN: Cell<Option<(Uuid, String)>> = const { Cell::new(None) };
}

/// While alive, the run whose span is being made on this thread.
struct NewRun;

impl NewRun {
    fn set(id: Uuid, label: String) -> NewRun {
        NEW_RUN.with(|new| new.set(Some((id, label))));
        NewRun
    }
}

impl Drop for NewRun {
    fn drop(&mut self) {
        NEW_RUN.with(|new| new.set(None));
    }
}

/// The id and console label (`Task run 'extract-a8e'`) of the run whose span is being made on
/// this thread, taken: for a layer's `on_new_span`.
pub(crate) fn take_new_run() -> Option<(Uuid, String)> {
    NEW_RUN.with(Cell::take)
}

/// A run's span; or, under `init_logging()`'s subscriber, which has no layer but flowcore's,
/// no span at all, only what the run's console lines are labelled with.
///
/// A span costs the registry most of a logged task run (its slot, its extensions, entering
/// and leaving it at each poll, closing it): more than the line itself. When nothing but
/// flowcore's own layers listen, nothing else reads it: the label and id go into a slot of the
/// thread while the run is polled, where the console and the recorder find them for lines
/// written inside it. `Span::current()` inside a task is then not the task run's, and a future
/// spawned from a task does not carry its label (as it would not without `.instrument()`).
pub(crate) struct RunSpan {
    span: Span,
    label: Option<Labelled>,
}

/// A run's id and its console label, `Task run 'extract-a8e'`.
type Labelled = (Uuid, String);

/// The marker layer of `init_logging()`'s subscriber: runs are labelled without spans.
pub(crate) struct LabelsOnly;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LabelsOnly {}

thread_local! {
    /// The id and label of the run being polled on this thread, when runs have no span.
    static CURRENT_RUN: Cell<Option<Labelled>> = const { Cell::new(None) };
}

impl RunSpan {
    pub(crate) fn none() -> RunSpan {
        RunSpan {
            span: Span::none(),
            label: None,
        }
    }

    /// Enters the run: its span, or its label into the thread's slot until the guard drops.
    pub(crate) fn enter(&mut self) -> EnteredRun<'_> {
        let RunSpan { span, label } = self;
        let label = match label.take() {
            Some(run) => {
                let outer = CURRENT_RUN.replace(Some(run));
                Some((label, outer))
            }
            None => None,
        };
        EnteredRun {
            _span: span.enter(),
            label,
        }
    }
}

/// A run entered, until dropped.
pub(crate) struct EnteredRun<'a> {
    _span: tracing::span::Entered<'a>,
    /// Where the label goes back to, and the label of the run it was entered in.
    label: Option<(&'a mut Option<Labelled>, Option<Labelled>)>,
}

impl Drop for EnteredRun<'_> {
    fn drop(&mut self) {
        if let Some((home, outer)) = self.label.take() {
            *home = CURRENT_RUN.replace(outer);
        }
    }
}

/// Calls `f` with the id and label of the run being polled on this thread, when runs have no
/// span. Taken meanwhile: a line logged by `f` itself is not labelled.
pub(crate) fn with_current_run<T>(f: impl FnOnce(Uuid, &str) -> T) -> Option<T> {
    let (id, label) = CURRENT_RUN.take()?;
    let out = f(id, &label);
    CURRENT_RUN.set(Some((id, label)));
    Some(out)
}

pin_project_lite::pin_project! {
    /// A future polled (and dropped) inside its run: `tracing::Instrumented` for a
    /// [`RunSpan`].
    pub(crate) struct InRun<F> {
        run: RunSpan,
        #[pin]
        inner: std::mem::ManuallyDrop<F>,
    }

    impl<F> PinnedDrop for InRun<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let _entered = this.run.enter();
            // SAFETY: `inner` is pinned and dropped here, in place, once: this is its drop.
            unsafe { std::mem::ManuallyDrop::drop(this.inner.get_unchecked_mut()) }
        }
    }
}

impl<F> InRun<F> {
    pub(crate) fn new(run: RunSpan, inner: F) -> Self {
        InRun {
            run,
            inner: std::mem::ManuallyDrop::new(inner),
        }
    }
}

impl<F: std::future::Future> std::future::Future for InRun<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<F::Output> {
        let this = self.project();
        let _entered = this.run.enter();
        // SAFETY: a pinned `ManuallyDrop<F>` is a pinned `F`.
        let inner = unsafe { this.inner.map_unchecked_mut(|inner| &mut **inner) };
        inner.poll(cx)
    }
}

/// Records `state` as the final state of the run whose span is current: straight through the
/// subscriber, without a handle to the span (`Span::current()` clones one, and closes it).
pub(crate) fn record_final_state(state: StateKind) {
    tracing::dispatcher::get_default(|dispatch| {
        let current = dispatch.current_span();
        let (Some(id), Some(metadata)) = (current.id(), current.metadata()) else {
            return;
        };
        if !is_run_span(metadata) {
            return;
        }
        let fields = metadata.fields();
        if let Some(field) = fields.field("state") {
            let state = display(state);
            let values = [(&field, Some(&state as &dyn Value))];
            dispatch.record(id, &tracing::span::Record::new(&fields.value_set(&values)));
        }
    });
}

/// Whether `metadata` is a run's span, and of which kind: what the console format labels lines
/// with.
pub(crate) fn is_run_span(metadata: &Metadata<'_>) -> bool {
    metadata.target() == "flowcore"
        && metadata.is_span()
        && metadata.fields().field("kind").is_some()
}
